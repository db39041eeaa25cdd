"""The demo story of pilot scenario S2 (``pilotchain demo --scenario gov``), narrated step by step:
what each department and the Big-Data Bureau does, and what each of them sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from pilotchain.apps.catalogue.client import CatalogueClient, CatalogueRefused
from pilotchain.apps.catalogue.network import DEPARTMENTS, bureau_of, join_department
from pilotchain.apps.catalogue.records import day_of
from pilotchain.apps.catalogue.usage import collect_bundles, report_from_bundles, usage_chart_html
from pilotchain.apps.exchange.server import load_config
from pilotchain.network.processes import wait_until
from pilotchain.node.config import load_genesis
from pilotchain.sdk import Client, Identity
from pilotchain.sdk._network import load_network

__all__ = ["ENTRY_FIELDS", "enterprise_records", "run_story"]

MARKET, TAX = (org for org, _ in DEPARTMENTS)
ENTRY = "market.enterprises"
ENTRY_FIELDS = [
    {"name": "credit_code", "type": "string", "description": "unified social credit code (the key)"},
    {"name": "name", "type": "string", "description": "registered name"},
    {"name": "legal_representative", "type": "string"},
    {"name": "registered_capital", "type": "integer", "description": "CNY"},
    {"name": "founded", "type": "date"},
    {"name": "status", "type": "string", "description": "in business / revoked / cancelled"},
    {"name": "legal_rep_id_number", "type": "string", "sharing": "not_shared"},
]
AGREED = ["credit_code", "name", "registered_capital", "status"]
ANCHOR_TIMEOUT_S = 60.0


def enterprise_records(count: int) -> list[dict[str, Any]]:
    districts = ("Huangpu", "Xuhui", "Jing'an", "Pudong", "Minhang")
    return [{"credit_code": f"91310{index % 5}00MA1K{index:06d}", "name": f"{districts[index % 5]} Trading Co. {index}",
             "legal_representative": f"Representative {index}", "registered_capital": 100_000 * (1 + index % 50),
             "founded": f"20{10 + index % 14:02d}-{1 + index % 12:02d}-{1 + index % 28:02d}",
             "status": "revoked" if index % 11 == 5 else "in business",
             "legal_rep_id_number": f"31010{index % 9}19{70 + index % 30}0101{index % 10000:04d}"}
            for index in range(count)]


def _says(console: Any, who: str, text: str) -> None:
    console.print(f"[bold cyan]{who}[/] {text}")


def run_story(directory: Path, console: Any) -> None:
    console.rule("[bold]government directory chain[/] (S2) — departments share catalogue-listed data; "
                 "only agreed fields leave the provider's vault")
    for org, name in DEPARTMENTS:
        join_department(directory, org, name, console)
    bureau = bureau_of(directory)
    network = load_network(directory)

    def who(org: str, *, admin: bool = False) -> CatalogueClient:
        identity = Identity.load(directory / "orgs" / org / ("admin.id" if admin else "client.id"))
        return CatalogueClient(Client(network=network, identity=identity, timeout=30.0), identity,
                               vault_url=load_config(directory / "vaults" / org).public_url)

    the_bureau, bureau_admin, market, tax = who(bureau), who(bureau, admin=True), who(MARKET), who(TAX)

    # 1. the directory: departments, duties, entries (every change a version)
    bureau_admin.admit(MARKET, "Market Regulation Administration")
    bureau_admin.admit(TAX, "Tax Bureau")
    _says(console, "Big-Data Bureau", f"admits {MARKET} and {TAX} to the directory")
    market.publish_duty("market.registration", "Register enterprises and publish their registration",
                        "Company Law of the PRC, art. 29-32")
    tax.publish_duty("tax.collection", "Levy and collect taxes", "Tax Collection Administration Law, art. 5")
    spec: dict[str, Any] = {"title": "Enterprise registration (basic)", "duty_id": "market.registration",
                            "fields": ENTRY_FIELDS, "key_field": "credit_code", "sharing": "conditional",
                            "update_frequency": "weekly", "description": "every enterprise registered in the city"}
    market.publish_entry(ENTRY, spec)
    entry = market.publish_entry(ENTRY, {**spec, "update_frequency": "daily"})
    _says(console, "Market Regulation", f"publishes its duty and the catalogue entry {ENTRY} (version "
                                        f"{entry['version']}: updated daily; sharing [bold]{entry['sharing']}[/]; "
                                        "legal_rep_id_number never shared)")
    _says(console, "Tax Bureau", "publishes its duty tax.collection")
    history = Table(title=f"{ENTRY}: every change is a version", title_justify="left")
    for column in ("version", "update frequency", "status", "block"):
        history.add_column(column)
    for version in market.entry_history(ENTRY):
        history.add_row(str(version["version"]), version["update_frequency"], version["status"], str(version["height"]))
    console.print(history)

    # 2. the data stays in Market Regulation's vault; its field-level commitment goes on chain
    published = market.publish_dataset(ENTRY, enterprise_records(200))
    _says(console, "Market Regulation", f"stores {published['records']} records in its own vault; on chain: the "
                                        f"per-field commitment {published['root'][:16]}… (dataset version "
                                        f"{published['version']}, block {published['height']})")

    # 3. the request, the provider's approval: the agreement is final on chain
    requested = tax.request(ENTRY, duty_id="tax.collection", fields=AGREED, purpose="tax-administration", days=90)
    _says(console, "Tax Bureau", f"files request {requested['id'][:12]}… citing tax.collection: fields "
                                 f"{', '.join(AGREED)}, purpose tax-administration, 90 days → the entry's policy "
                                 f"says [bold]{requested['status']}[/] (awaiting the {requested['awaiting']})")
    approved = market.approve(requested["id"], "needed for the 2026 enterprise income tax audit")
    agreement = tax.agreement(requested["id"]) or {}
    _says(console, "Market Regulation", f"approves: agreement [bold]{approved['status']}[/], final on chain at block "
                                        f"{agreement.get('height')} (rule {approved['decision']['rule']})")

    # 4. calls: only the agreed fields, each value verified against the commitment
    bulk = tax.call(requested["id"], limit=200)
    wanted = enterprise_records(8)[7]["credit_code"]
    lookup = tax.call(requested["id"], fields=["name", "status"], where={"credit_code": [wanted]})
    calls = Table(title="the Tax Bureau's calls, answered by Market Regulation's vault", title_justify="left")
    for column in ("call", "asked", "received"):
        calls.add_column(column, overflow="fold")
    calls.add_row("every agreed field", ", ".join(AGREED), f"{len(bulk['records'])} records, each value verified "
                                                            "against the commitment on chain")
    calls.add_row("look-up by credit code", f"name, status of {wanted}",
                  ", ".join(f"{k}: {v}" for k, v in lookup["records"][0].items()) + " (verified)")
    try:
        tax.call(requested["id"], fields=["legal_representative"])
        outside = "released (unexpected)"
    except CatalogueRefused as exc:
        outside = f"[red]rejected: {exc.code}[/] (logged, with a signed receipt)"
    calls.add_row("legal_representative", "a field outside the agreement", outside)
    console.print(calls)
    sample = Table(title="what the Tax Bureau's vault holds now (first 3 records)", title_justify="left")
    for name in bulk["fields"]:
        sample.add_column(name)
    for record in bulk["records"][:3]:
        sample.add_row(*(str(record[name]) for name in bulk["fields"]))
    console.print(sample)
    _says(console, "Market Regulation's vault", "sent no field outside the agreement: legal_representative, founded "
                                                "and legal_rep_id_number travelled only as salted hashes")

    # 5. receipts: two matching signed receipts per call, anchored by both vaults
    day = day_of(bulk["at_ms"])

    def anchored() -> bool:
        rows = market.receipts(day) + tax.receipts(day)
        return bool(rows) and all(row["anchored"] for row in rows)

    wait_until(anchored, timeout_s=ANCHOR_TIMEOUT_S, interval_s=0.5)
    receipts = Table(title=f"receipts of {day} (UTC)", title_justify="left")
    for column in ("held by", "kind", "call", "records", "anchored in"):
        receipts.add_column(column)
    for holder, client in ((MARKET, market), (TAX, tax)):
        for row in sorted(client.receipts(day), key=lambda r: (r["at_ms"], r["kind"])):
            where = f"block {row['anchor']['height']}" if row["anchor"] else "pending"
            receipts.add_row(holder, row["kind"], row["call_id"][:10] + "…", str(row["records"]), where)
    console.print(receipts)

    # 6. withdrawing the entry stops new calls at once
    market.withdraw_entry(ENTRY, "the register moves to the new enterprise credit system")
    try:
        tax.call(requested["id"], fields=["name"])
        stopped = "still answered (unexpected)"
    except CatalogueRefused as exc:
        stopped = exc.code
    _says(console, "Market Regulation", f"withdraws {ENTRY}; the Tax Bureau's next call is refused at once: "
                                        f"[red]{stopped}[/]")

    # 7. the bureau's statistics, from the anchored receipts, checkable against them
    wait_until(anchored, timeout_s=ANCHOR_TIMEOUT_S, interval_s=0.5)
    vaults = {org: load_config(directory / "vaults" / org).public_url for org in (MARKET, TAX)}
    bundles = collect_bundles(Identity.load(directory / "orgs" / bureau / "client.id"), vaults, day, day)
    report = report_from_bundles(bundles, load_genesis(directory / "genesis.json"), day, day)
    usage = Table(title=f"Big-Data Bureau: usage on {day}, from the anchored receipts (verified against the genesis)",
                  title_justify="left")
    for column in ("provider", "service", "consumer", "calls", "records", "bytes", "rejected"):
        usage.add_column(column, justify="right" if column in ("calls", "records", "bytes", "rejected") else "left")
    for line in report.rows:
        usage.add_row(line.provider, line.service, line.consumer, str(line.calls), f"{line.records:,}",
                      f"{line.size_bytes:,}", str(line.rejected))
    console.print(usage)
    out = directory / "catalogue-usage"
    out.mkdir(exist_ok=True)
    for org, (bundle, _) in bundles.items():
        if bundle is not None:
            (out / f"{org}.evidence").write_bytes(bundle)
    (out / "usage.html").write_text(usage_chart_html(report))
    console.print(f"chart: {out / 'usage.html'}; try [bold]pilotchain catalogue usage --since {day} --until {day} "
                  f"--network {directory} -i {directory}/orgs/{bureau}/client.id[/] and [bold]pilotchain catalogue "
                  f"usage-verify {out} --since {day} --until {day} --genesis {directory}/genesis.json[/]")
    for client in (the_bureau, bureau_admin, market, tax):
        client.close()

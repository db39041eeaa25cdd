"""``pilotchain catalogue ...``: every step of the directory chain for a department and the Big-Data Bureau.

Mounted into ``pilotchain`` through the ``pilotchain.commands`` entry points. Identity with
``-i/--identity`` (or ``PILOTCHAIN_IDENTITY``); the chain with ``--network`` (or
``PILOTCHAIN_NETWORK``) or ``--node``; the organisation's vault with ``--vault`` or from the
network folder. Exit codes: 0 ok; 1 refused; 2 usage; 3 unreachable.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app"]

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3

app = typer.Typer(help="The government directory chain (S2): duties, catalogue entries, requests, agreements, "
                       "calls that release only agreed fields, usage statistics.", no_args_is_help=True)
duty_app = typer.Typer(help="A department's duties (the legal basis it holds or needs data under).", no_args_is_help=True)
entry_app = typer.Typer(help="Catalogue entries: fields, sharing class, update frequency, usage policy.",
                        no_args_is_help=True)
dataset_app = typer.Typer(help="An entry's data, kept in the department's vault; its commitment on chain.",
                          no_args_is_help=True)
policy_app = typer.Typer(help="The usage-policy language (an ODRL 2.2 subset): check and evaluate policies.",
                         no_args_is_help=True)
app.add_typer(duty_app, name="duty")
app.add_typer(entry_app, name="entry")
app.add_typer(dataset_app, name="dataset")
app.add_typer(policy_app, name="policy")

_out = Console()
_err = Console(stderr=True)

IdentityOption = Annotated[Path | None, typer.Option("--identity", "-i", envvar="PILOTCHAIN_IDENTITY",
                                                     help="Your identity file.")]
NetworkOption = Annotated[Path | None, typer.Option("--network", envvar="PILOTCHAIN_NETWORK",
                                                   help="A `pilotchain network init` folder.")]
NodeOption = Annotated[str | None, typer.Option("--node", envvar="PILOTCHAIN_NODE", help="A gateway URL.")]
VaultOption = Annotated[str | None, typer.Option("--vault", envvar="PILOTCHAIN_VAULT",
                                                 help="Your organisation's vault URL (default: from --network).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(message: str, code: int = EXIT_REFUSED) -> None:
    _err.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=lambda v: v.hex() if isinstance(v, bytes)
                          else str(v)))


def _catalogue(identity: Path | None, network: Path | None, node: str | None, vault: str | None = None,
               *, need_vault: bool = False) -> Any:
    from pilotchain.apps.catalogue.client import CatalogueClient
    from pilotchain.cli.client_cmd import connect
    from pilotchain.sdk import Identity
    from pilotchain.sdk._network import folder_identity

    path = identity or (folder_identity(network) if network is not None else None)
    if path is None:
        _fail("say who you are: --identity FILE (or PILOTCHAIN_IDENTITY, or --network DIR)", EXIT_USAGE)
    try:
        who = Identity.load(path)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any unreadable identity file
        _fail(f"cannot load {path}: {exc}", EXIT_USAGE)
    url = vault
    if url is None and network is not None:
        home = network / "vaults" / who.org / "vault.json"
        if home.is_file():
            url = str(json.loads(home.read_text())["public_url"])
    if need_vault and url is None:
        _fail(f"which vault? --vault URL, PILOTCHAIN_VAULT, or --network DIR whose vaults/{who.org} exists", EXIT_USAGE)
    chain = connect(node, network, None, timeout=30.0, identity=who)
    return CatalogueClient(chain, who, vault_url=url)


def _run(call: Any) -> Any:
    from pilotchain.apps.catalogue.client import CatalogueRefused

    try:
        return call()
    except CatalogueRefused as exc:
        _fail(f"{exc.code}: {exc.message}", EXIT_UNREACHABLE if exc.code == "UNREACHABLE" else EXIT_REFUSED)


def _ms(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        _fail(f"{option} is a time: 2026-12-07 or 2026-12-07T09:00:00+08:00", EXIT_USAGE)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def _when(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _today() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()


# ---------------------------------------------------------------------- the bureau


@app.command("admit")
def admit(
    org: Annotated[str, typer.Argument(help="The organisation to admit as a department.")],
    name: Annotated[str, typer.Option("--name", help="The department's name.")],
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None, as_json: JsonOption = False,
) -> None:
    """(Big-Data Bureau admin) admit a department to the directory."""
    client = _catalogue(identity, network, node)
    result = _run(lambda: client.admit(org, name))
    _print_json(result) if as_json else _out.print(f"admitted {org} ({name}) to the directory")


# ---------------------------------------------------------------------- duties


@duty_app.command("publish")
def duty_publish(
    duty_id: Annotated[str, typer.Argument(metavar="DUTY_ID")],
    title: Annotated[str, typer.Option(help="What the duty is.")],
    basis: Annotated[str, typer.Option(help="Its legal basis.")],
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None, as_json: JsonOption = False,
) -> None:
    """Publish (a new version of) one of your department's duties."""
    result = _run(lambda: _catalogue(identity, network, node).publish_duty(duty_id, title, basis))
    _print_json(result) if as_json else _out.print(f"duty {duty_id} version {result['version']} (block {result['height']})")


@duty_app.command("retire")
def duty_retire(
    duty_id: Annotated[str, typer.Argument(metavar="DUTY_ID")],
    reason: Annotated[str, typer.Option(help="Why (recorded on chain).")],
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None,
) -> None:
    """Retire a duty: agreements that cite it stop."""
    result = _run(lambda: _catalogue(identity, network, node).retire_duty(duty_id, reason))
    _out.print(f"duty {duty_id} retired (version {result['version']})")


@duty_app.command("show")
def duty_show(
    duty_id: Annotated[str, typer.Argument(metavar="DUTY_ID")],
    history: Annotated[bool, typer.Option("--history", help="Every version.")] = False,
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None,
) -> None:
    """A duty (or its history), as JSON."""
    client = _catalogue(identity, network, node)
    _print_json(_run(lambda: client.duty_history(duty_id) if history else client.duty(duty_id)))


# ---------------------------------------------------------------------- entries


@entry_app.command("publish")
def entry_publish(
    entry_id: Annotated[str, typer.Argument(metavar="ENTRY_ID")],
    spec: Annotated[Path, typer.Argument(metavar="SPEC.json", help="title, duty_id, fields, key_field, sharing, "
                                                                    "update_frequency; approver, policy, ... optional")],
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None, as_json: JsonOption = False,
) -> None:
    """Publish (a new version of) a catalogue entry of your department."""
    try:
        document = json.loads(spec.read_text())
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {spec}: {exc}", EXIT_USAGE)
    result = _run(lambda: _catalogue(identity, network, node).publish_entry(entry_id, document))
    if as_json:
        _print_json(result)
    else:
        _out.print(f"entry {entry_id} version {result['version']}: {result['sharing']}, {len(result['fields'])} fields, "
                   f"updated {result['update_frequency']} (block {result['height']})")


@entry_app.command("withdraw")
def entry_withdraw(
    entry_id: Annotated[str, typer.Argument(metavar="ENTRY_ID")],
    reason: Annotated[str, typer.Option(help="Why (recorded on chain).")],
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None,
) -> None:
    """Withdraw an entry (its department or the bureau): calls stop at once, its agreements end."""
    result = _run(lambda: _catalogue(identity, network, node).withdraw_entry(entry_id, reason))
    _out.print(f"withdrew {entry_id} (version {result['version']}); calls under its agreements are refused from now on")


@entry_app.command("show")
def entry_show(
    entry_id: Annotated[str, typer.Argument(metavar="ENTRY_ID")],
    history: Annotated[bool, typer.Option("--history", help="Every version.")] = False,
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None,
) -> None:
    """An entry (or its history), as JSON."""
    client = _catalogue(identity, network, node)
    _print_json(_run(lambda: client.entry_history(entry_id) if history else client.entry(entry_id)))


_PERIOD_MS = {"realtime": 3_600_000, "daily": 86_400_000, "weekly": 7 * 86_400_000, "monthly": 31 * 86_400_000,
              "quarterly": 92 * 86_400_000, "yearly": 366 * 86_400_000}


@app.command("list")
def list_entries(
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None, as_json: JsonOption = False,
) -> None:
    """The catalogue: every entry, its sharing class, and whether its data is as fresh as promised."""
    client = _catalogue(identity, network, node)
    entries = _run(client.entries)
    datasets = {e["id"]: _run(lambda e=e: client.dataset(e["id"])) for e in entries}
    if as_json:
        _print_json([{**e, "dataset": datasets[e["id"]]} for e in entries])
        return
    now = int(time.time() * 1000)
    table = Table(title="catalogue", title_justify="left")
    for column in ("entry", "v", "department", "sharing", "fields", "updated", "data", "status"):
        table.add_column(column, overflow="fold")
    for e in entries:
        data = datasets[e["id"]]
        if data is None:
            fresh = "none yet"
        else:
            late = now - data["ms"] > _PERIOD_MS.get(e["update_frequency"], 10**15)
            fresh = f"v{data['version']}, {data['records']:,} records" + (" [yellow](overdue)[/]" if late else "")
        table.add_row(e["id"], str(e["version"]), e["owner"], e["sharing"], str(len(e["fields"])),
                      e["update_frequency"], fresh, e["status"])
    _out.print(table)


# ---------------------------------------------------------------------- datasets


@dataset_app.command("publish")
def dataset_publish(
    entry_id: Annotated[str, typer.Argument(metavar="ENTRY_ID")],
    records: Annotated[Path, typer.Argument(metavar="RECORDS", help="A JSON array of records, or JSON lines (- for stdin).")],
    retention_days: Annotated[int, typer.Option("--retention-days", min=1, help="Days to keep it.")] = 5 * 365,
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None, vault: VaultOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a new version of an entry's data in your vault; its per-field commitment goes on chain."""
    try:
        text = sys.stdin.read() if str(records) == "-" else records.read_text()
        stripped = text.lstrip()
        rows = json.loads(text) if stripped.startswith("[") else [json.loads(line) for line in text.splitlines()
                                                                  if line.strip()]
    except (OSError, ValueError) as exc:
        _fail(f"cannot read records from {records}: {exc}", EXIT_USAGE)
    client = _catalogue(identity, network, node, vault, need_vault=True)
    result = _run(lambda: client.publish_dataset(entry_id, rows, retention_days=retention_days))
    if as_json:
        _print_json(result)
    else:
        _out.print(f"{entry_id} data version {result['version']}: {result['records']:,} records in your vault, "
                   f"commitment {result['root'][:16]}… on chain (block {result['height']})")


@dataset_app.command("show")
def dataset_show(
    entry_id: Annotated[str, typer.Argument(metavar="ENTRY_ID")],
    history: Annotated[bool, typer.Option("--history", help="Every version.")] = False,
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None,
) -> None:
    """An entry's current data record on chain (or every version), as JSON."""
    client = _catalogue(identity, network, node)
    _print_json(_run(lambda: client.dataset_history(entry_id) if history else client.dataset(entry_id)))


# ---------------------------------------------------------------------- requests and agreements


@app.command("request")
def request(
    entry_id: Annotated[str, typer.Argument(metavar="ENTRY_ID")],
    duty: Annotated[str, typer.Option("--duty", help="Your department's duty that needs the data.")],
    fields: Annotated[str, typer.Option("--fields", help="Comma-separated fields of the entry.")],
    purpose: Annotated[str, typer.Option(help="What for (the policy may test it).")],
    days: Annotated[int, typer.Option(min=1, max=1830, help="How long the agreement lasts.")] = 90,
    start: Annotated[str | None, typer.Option("--from", help="When it starts (default: now).")] = None,
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None, as_json: JsonOption = False,
) -> None:
    """File a request; the entry's policy decides at once, or names who must approve."""
    client = _catalogue(identity, network, node)
    result = _run(lambda: client.request(entry_id, duty_id=duty, fields=[f.strip() for f in fields.split(",") if f.strip()],
                                         purpose=purpose, from_ms=_ms(start, "--from"), days=days))
    if as_json:
        _print_json(result)
        return
    status = result["status"]
    tail = {"agreed": f"agreement {result['id']} is final on chain",
            "pending": f"waiting for the {result['awaiting']} ({result['awaiting_org']}) to approve",
            "denied": f"denied by the policy (rule {result['decision']['rule'] or 'none applies'})"}.get(status, status)
    _out.print(f"request {result['id']}: {status}; {tail}")
    if status == "denied":
        raise typer.Exit(EXIT_REFUSED)


@app.command("requests")
def requests(
    pending: Annotated[bool, typer.Option("--pending", help="Only those waiting for an approval.")] = False,
    everyone: Annotated[bool, typer.Option("--all", help="Every department's, not only yours.")] = False,
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None, as_json: JsonOption = False,
) -> None:
    """Requests you filed, received or must approve."""
    client = _catalogue(identity, network, node)
    rows = _run(lambda: client.requests(org="" if everyone else client.identity.org,
                                        status="pending" if pending else ""))
    if as_json:
        _print_json(rows)
        return
    table = Table(title="requests", title_justify="left")
    for column in ("request", "entry", "consumer", "fields", "purpose", "status", "awaiting"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r["id"], r["entry_id"], r["consumer"], ", ".join(r["fields"]), r["purpose"], r["status"],
                      r["awaiting_org"] or "-")
    _out.print(table)


@app.command("approve")
def approve(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST_ID")],
    note: Annotated[str, typer.Option(help="A note recorded with the approval.")] = "",
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None,
) -> None:
    """Approve a request waiting for your department's (or the bureau's) consent."""
    result = _run(lambda: _catalogue(identity, network, node).approve(request_id, note))
    _out.print(f"request {request_id}: {result['status']}" + (" — the agreement is final on chain"
                                                                if result["status"] == "agreed" else ""))


@app.command("reject")
def reject(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST_ID")],
    reason: Annotated[str, typer.Option(help="Why (recorded on chain).")],
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None,
) -> None:
    """Reject a request waiting for your consent."""
    _run(lambda: _catalogue(identity, network, node).reject(request_id, reason))
    _out.print(f"request {request_id}: rejected")


@app.command("revoke")
def revoke(
    agreement_id: Annotated[str, typer.Argument(metavar="AGREEMENT_ID")],
    reason: Annotated[str, typer.Option(help="Why (recorded on chain).")],
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None,
) -> None:
    """End an agreement (its provider or the bureau): calls under it are refused from now on."""
    _run(lambda: _catalogue(identity, network, node).revoke(agreement_id, reason))
    _out.print(f"agreement {agreement_id}: revoked")


@app.command("agreements")
def agreements(
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None, as_json: JsonOption = False,
) -> None:
    """Agreements your department is a party to."""
    client = _catalogue(identity, network, node)
    rows = _run(lambda: client.agreements(org=client.identity.org))
    if as_json:
        _print_json(rows)
        return
    table = Table(title="agreements", title_justify="left")
    for column in ("agreement", "entry", "provider", "consumer", "fields", "period", "status"):
        table.add_column(column, overflow="fold")
    for a in rows:
        table.add_row(a["id"], a["entry_id"], a["provider"], a["consumer"], ", ".join(a["fields"]),
                      f"{_when(a['from_ms'])} – {_when(a['until_ms'])}", a["status"])
    _out.print(table)


# ---------------------------------------------------------------------- calls


@app.command("call")
def call(
    agreement_id: Annotated[str, typer.Argument(metavar="AGREEMENT_ID")],
    fields: Annotated[str | None, typer.Option("--fields", help="Comma-separated (default: every agreed field).")] = None,
    where: Annotated[list[str] | None, typer.Option("--where", help="FIELD=VALUE (repeatable; a JSON value or text).")] = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the verified records (JSON) here.")] = None,
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None, vault: VaultOption = None,
    as_json: JsonOption = False,
) -> None:
    """Call the provider under an agreement through your vault; every value is checked against the
    provider's commitment on chain before you see it."""
    selection: dict[str, list[Any]] = {}
    for item in where or []:
        name, sep, raw = item.partition("=")
        if not sep:
            _fail(f"--where takes FIELD=VALUE, not {item!r}", EXIT_USAGE)
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        selection.setdefault(name.strip(), []).append(value)
    client = _catalogue(identity, network, node, vault, need_vault=True)
    chosen = [f.strip() for f in fields.split(",") if f.strip()] if fields else []
    result = _run(lambda: client.call(agreement_id, fields=chosen, where=selection, offset=offset, limit=limit))
    if out is not None:
        out.write_text(json.dumps(result["records"], indent=2, ensure_ascii=False) + "\n")
    if as_json:
        _print_json(result)
        return
    table = Table(title=f"{result['entry_id']} from {result['provider']} — {len(result['records'])} of "
                        f"{result['matched']} matching records, verified against dataset v{result['dataset_version']}",
                  title_justify="left")
    for name in result["fields"]:
        table.add_column(name, overflow="fold")
    for record in result["records"][:50]:
        table.add_row(*(str(record[name]) for name in result["fields"]))
    _out.print(table)
    if len(result["records"]) > 50:
        _out.print(f"… {len(result['records']) - 50} more" + (f" in {out}" if out else " (--out FILE for all)"))


@app.command("calls")
def calls(
    day: Annotated[str | None, typer.Option(help="A day, YYYY-MM-DD (UTC; default today).")] = None,
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None, vault: VaultOption = None,
    as_json: JsonOption = False,
) -> None:
    """The calls your vault made and answered on a day, rejections included."""
    client = _catalogue(identity, network, node, vault, need_vault=True)
    rows = _run(lambda: client.calls(day or _today()))
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"calls of {day or _today()}", title_justify="left")
    for column in ("call", "role", "peer", "entry", "outcome", "records", "bytes"):
        table.add_column(column, overflow="fold")
    for c in rows:
        table.add_row(c["call_id"][:8] + "…", c["role"], c["peer_org"], c["entry_id"], c["outcome"],
                      str(c["records"]), f"{c['size_bytes']:,}")
    _out.print(table)


@app.command("receipts")
def receipts(
    day: Annotated[str | None, typer.Option(help="A day, YYYY-MM-DD (UTC; default today).")] = None,
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None, vault: VaultOption = None,
    as_json: JsonOption = False,
) -> None:
    """The signed call receipts your vault holds for a day, and where each is anchored."""
    client = _catalogue(identity, network, node, vault, need_vault=True)
    rows = _run(lambda: client.receipts(day or _today()))
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"receipts of {day or _today()}", title_justify="left")
    for column in ("kind", "call", "provider", "consumer", "records", "code", "anchored in"):
        table.add_column(column, overflow="fold")
    for r in rows:
        where = f"block {r['anchor']['height']} (batch of {r['anchor']['count']})" if r["anchor"] else "pending"
        table.add_row(r["kind"], r["call_id"][:12] + "…", r["provider"], r["consumer"], str(r["records"]),
                      r["code"] or "-", where)
    _out.print(table)


# ---------------------------------------------------------------------- usage (the bureau)


def _usage_table(report: Any) -> Table:
    """The report's rows; the day column only for a range, refusals and unconfirmed calls only when any."""
    period = report.since if report.since == report.until else f"{report.since} – {report.until}"
    table = Table(title=f"usage {period} (UTC), from anchored, matching receipts", title_justify="left")
    names = [name for name, shown in (("day", report.since != report.until), ("provider", True), ("service", True),
                                      ("consumer", True), ("calls", True), ("records", True), ("size_bytes", True),
                                      ("rejected", True), ("refused", any(r.refused for r in report.rows)),
                                      ("unconfirmed", any(r.unconfirmed for r in report.rows))) if shown]
    for name in names:
        numeric = name in ("calls", "records", "size_bytes", "rejected", "refused", "unconfirmed")
        table.add_column("bytes" if name == "size_bytes" else name, justify="right" if numeric else "left",
                         overflow="fold")
    for row in report.rows:
        table.add_row(*(f"{getattr(row, name):,}" if isinstance(getattr(row, name), int) else str(getattr(row, name))
                        for name in names))
    return table


@app.command("usage")
def usage(
    since: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (UTC; default today).")] = None,
    until: Annotated[str | None, typer.Option(help="Last day (default: since).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Save the evidence bundles, usage.json and usage.html here.")] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="Write the HTML/SVG chart here.")] = None,
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """(Big-Data Bureau) calls, records and bytes per department, service and day, from the receipts
    every department's vault anchored — each bundle verified against the genesis."""
    from pilotchain.apps.catalogue.records import CatalogueError
    from pilotchain.apps.catalogue.usage import (
        collect_bundles,
        report_from_bundles,
        usage_chart_html,
    )
    from pilotchain.ledger.evidence import EvidenceInvalid

    first = since or _today()
    last = until or first
    client = _catalogue(identity, network, node)
    vaults: dict[str, str] = {}
    for department in _run(client.departments):
        record = client.chain.query("dataex", "org", {"org": department["org"]})
        if isinstance(record, dict) and record.get("endpoint"):
            vaults[department["org"]] = str(record["endpoint"])
    genesis = _genesis(network)
    try:
        bundles = collect_bundles(client.identity, vaults, first, last)
        report = report_from_bundles(bundles, genesis, first, last)
    except CatalogueError as exc:
        _fail(f"{exc.code}: {exc.message}", EXIT_UNREACHABLE if exc.code == "UNREACHABLE" else EXIT_REFUSED)
    except EvidenceInvalid as exc:
        _fail(f"a vault's evidence does NOT verify: {exc.where}: {exc.reason}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for org, (bundle, _) in bundles.items():
            if bundle is not None:
                (out / f"{org}.evidence").write_bytes(bundle)
        (out / "pending.json").write_text(json.dumps({org: pending for org, (_, pending) in bundles.items()}) + "\n")
        (out / "usage.json").write_text(json.dumps(report.as_json(), indent=2) + "\n")
        (out / "usage.html").write_text(usage_chart_html(report))
    if chart is not None:
        chart.write_text(usage_chart_html(report))
    if as_json:
        _print_json(report.as_json())
        return
    _out.print(_usage_table(report))
    pending = {org: info["pending"] for org, info in report.sources.items() if info["pending"]}
    if pending:
        _out.print(f"not anchored yet (not counted): {pending}")
    if out is not None:
        _out.print(f"evidence and report in {out}; check them offline: pilotchain catalogue usage-verify {out} "
                   f"--since {first} --until {last} --genesis genesis.json")


def _genesis(network: Path | None) -> Any:
    from pilotchain.node.config import load_genesis

    if network is None:
        _fail("usage statistics check the vaults' evidence against the genesis: pass --network DIR", EXIT_USAGE)
    return load_genesis(network / "genesis.json")  # type: ignore[operator]


@app.command("usage-verify")
def usage_verify(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="What `catalogue usage --out DIR` saved.")],
    genesis: Annotated[Path, typer.Option("--genesis", help="The chain's genesis.json: the trust anchor.")],
    since: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")],
    until: Annotated[str | None, typer.Option(help="Last day (default: since).")] = None,
) -> None:
    """Recompute the usage report from the saved evidence bundles with no network, and compare it
    with the saved usage.json."""
    from pilotchain.apps.catalogue.usage import report_from_bundles
    from pilotchain.ledger.evidence import EvidenceInvalid
    from pilotchain.node.config import NodeConfigError, load_genesis

    try:
        chain = load_genesis(genesis)
        pending = json.loads((folder / "pending.json").read_text()) if (folder / "pending.json").is_file() else {}
        bundles: dict[str, tuple[bytes | None, int]] = {
            org: (None, int(count)) for org, count in pending.items()}
        for path in sorted(folder.glob("*.evidence")):
            bundles[path.stem] = (path.read_bytes(), int(pending.get(path.stem, 0)))
        saved = json.loads((folder / "usage.json").read_text()) if (folder / "usage.json").is_file() else None
    except (NodeConfigError, OSError, ValueError) as exc:
        _fail(f"cannot read the inputs: {exc}", EXIT_USAGE)
        return
    try:
        report = report_from_bundles(bundles, chain, since, until or since)
    except EvidenceInvalid as exc:
        _fail(f"the evidence does NOT verify: {exc.where}: {exc.reason}")
        return
    _out.print(_usage_table(report))
    if saved is not None and saved != report.as_json():
        _fail("the saved usage.json does NOT match what the evidence shows")
    _out.print(f"[green]verified[/]: {sum(report.receipts.values())} signed receipts from {len(bundles)} vaults, "
               "every anchor proven against the genesis" + ("; usage.json matches" if saved is not None else ""))


# ---------------------------------------------------------------------- policies


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {path}: {exc}", EXIT_USAGE)


@policy_app.command("check")
def policy_check(policy: Annotated[Path, typer.Argument(metavar="POLICY.json")]) -> None:
    """Is a policy inside the accepted ODRL subset? (where and why, if not)"""
    from pilotchain.apps.catalogue.policy import PolicyError, check_policy

    try:
        check_policy(_read_json(policy))
    except PolicyError as exc:
        _fail(f"not in the accepted subset: {exc.where}: {exc.why}")
    _out.print(f"{policy}: a valid policy")


@policy_app.command("eval")
def policy_eval(
    policy: Annotated[Path, typer.Argument(metavar="POLICY.json")],
    facts: Annotated[Path, typer.Argument(metavar="FACTS.json", help="target, recipient, purpose, dateTime (ms), "
                                                                      "elapsedTime (ms), count, pc:fields, pc:duty, consented")],
) -> None:
    """Decide facts under a policy, as the contract and the vaults would."""
    from pilotchain.apps.catalogue.policy import PolicyError, evaluate

    try:
        decision = evaluate(_read_json(policy), _read_json(facts))
    except PolicyError as exc:
        _fail(f"{exc.where}: {exc.why}", EXIT_USAGE)
        return
    _print_json(decision.as_dict())
    if decision.outcome == "deny":
        raise typer.Exit(EXIT_REFUSED)


@policy_app.command("vectors")
def policy_vectors(
    vectors: Annotated[Path, typer.Argument(metavar="VECTORS.json", help="A vectors file (docs/catalogue.md).")],
    on_chain: Annotated[bool, typer.Option("--on-chain", help="Also ask the contract (a read-only query).")] = False,
    identity: IdentityOption = None, network: NetworkOption = None, node: NodeOption = None,
) -> None:
    """Run permit/deny vectors against this implementation (and, with --on-chain, the contract's)."""
    from pilotchain.apps.catalogue.policy import PolicyError, check_policy, evaluate

    document = _read_json(vectors)
    client = _catalogue(identity, network, node) if on_chain else None
    failures = []
    for vector in document["vectors"]:
        facts = {**document["base_context"], **vector.get("context", {})}
        try:
            if "invalid" in vector:
                try:
                    check_policy(vector["policy"])
                    failures.append(f"{vector['name']}: accepted, expected refused at {vector['invalid']}")
                except PolicyError as exc:
                    if exc.where != vector["invalid"]:
                        failures.append(f"{vector['name']}: refused at {exc.where}, expected {vector['invalid']}")
                continue
            got = evaluate(vector["policy"], facts).as_dict()
            got.pop("reason")
            if got != vector["expect"]:
                failures.append(f"{vector['name']}: {got} != {vector['expect']}")
            if client is not None:
                chained = _run(lambda v=vector, f=facts: client.evaluate_policy(v["policy"], f))
                if chained != vector["expect"]:
                    failures.append(f"{vector['name']} (on chain): {chained} != {vector['expect']}")
        except PolicyError as exc:
            failures.append(f"{vector['name']}: {exc}")
    for failure in failures:
        _err.print(f"[red]FAIL[/] {failure}", highlight=False)
    total = len(document["vectors"])
    if failures:
        _fail(f"{len(failures)} of {total} vectors failed")
    _out.print(f"[green]{total} vectors passed[/]" + (" here and on chain" if on_chain else ""))

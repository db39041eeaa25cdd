"""``pilotchain supply ...``: every step of S4's parties — the car maker, the suppliers, the banks and
the regulator — and the trace with one command. Mounted through the ``pilotchain.commands`` entry
points. Tables by default, ``--json`` for scripts; exit 1 when the contract refuses, 3 unreachable."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app", "recall_table", "supply_table"]

app = typer.Typer(help="S4: supply-chain receivables (issue, split, finance once, settle) and parts traceability "
                       "(GS1 EPCIS 2.0 events, recall trace).", no_args_is_help=True)
_out = Console()
_err = Console(stderr=True)

IdentityOption = Annotated[Path | None, typer.Option("--identity", "-i", envvar="PILOTCHAIN_IDENTITY",
                                                     help="Your member identity file.")]
NetworkOption = Annotated[Path | None, typer.Option("--network", envvar="PILOTCHAIN_NETWORK",
                                                   help="A `pilotchain network init` folder.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(message: str, code: int = 1) -> None:
    _err.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def _who(identity: Path | None, network: Path | None) -> Any:
    from pilotchain.sdk import Identity
    from pilotchain.sdk._network import folder_identity

    path = identity or (folder_identity(network) if network is not None else None)
    if path is None:
        _fail("say who you are: --identity FILE (or PILOTCHAIN_IDENTITY, or --network DIR)", 2)
    return Identity.load(path)  # type: ignore[arg-type]


def _clients(identity: Path | None, network: Path | None) -> Any:
    from pilotchain.apps.supply.client import SupplyClient, TraceClient
    from pilotchain.cli.client_cmd import connect

    who = _who(identity, network)
    client = connect(None, network, None, timeout=30.0, identity=who)
    return SupplyClient(client, who), TraceClient(client, who)


def _run(call: Any) -> Any:
    from pilotchain.apps.supply.client import SupplyError
    from pilotchain.apps.supply.epcis import EpcisError
    from pilotchain.sdk import PilotchainError

    try:
        return call()
    except (SupplyError, EpcisError, ValueError) as exc:
        _fail(str(exc))
    except PilotchainError as exc:
        _fail(str(exc), 3)


def _print(document: Any, as_json: bool, text: str) -> None:
    if as_json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=_plain))
    else:
        _out.print(text)


def _plain(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else str(value)


def _money(fen: int) -> str:
    return f"{fen / 100:,.2f}"


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z"


# ---------------------------------------------------------------------- documents in the vault


@app.command("document")
def document(
    payload_id: Annotated[str, typer.Argument(metavar="PAYLOAD_ID")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="An invoice, delivery note or financing terms.")],
    vault: Annotated[str | None, typer.Option(help="Your vault's URL (default: from --network).")] = None,
    identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False,
) -> None:
    """Store a confidential document in your vault, governed by the receivables contract."""
    from pilotchain.apps.exchange.client import VaultClient
    from pilotchain.apps.exchange.server import load_config
    from pilotchain.apps.supply.client import SupplyClient

    who = _who(identity, network)
    url = vault or (str(load_config(network / "vaults" / who.org).public_url) if network is not None else None)
    if url is None:
        _fail("name your vault: --vault URL (or --network DIR)", 2)
    with VaultClient(str(url), who) as client:
        stored = _run(lambda: SupplyClient.store_document(client, payload_id, file.read_bytes()))
    _print(stored, as_json, f"stored {payload_id} in {who.org}'s vault; commitment {stored['commitment'][:16]}… on chain")


# ---------------------------------------------------------------------- receivables


@app.command("issue")
def issue(
    receivable_id: Annotated[str, typer.Argument(metavar="ID")],
    to: Annotated[str, typer.Option("--to", help="The supplier (creditor) organisation.")],
    amount: Annotated[str, typer.Option(help="In yuan, e.g. 1,000,000.00.")],
    invoice: Annotated[str, typer.Option(help="The invoice's payload id in the data exchange.")],
    delivery_note: Annotated[str, typer.Option("--delivery-note", help="The delivery note's payload id.")],
    batch: Annotated[list[str], typer.Option("--batch", help="A part batch (GS1 Digital Link URI or EPC class URN).")],
    maturity_days: Annotated[int, typer.Option("--maturity-days")] = 90,
    identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False,
) -> None:
    """The car maker confirms a payable to its supplier: a receivable."""
    from pilotchain.apps.supply.client import minor_units
    from pilotchain.apps.supply.epcis import canonical_identifier

    supply, _ = _clients(identity, network)
    result = _run(lambda: supply.issue(receivable_id, to, minor_units(amount), int(time.time() * 1000) +
                                       maturity_days * 86_400_000, invoice=invoice, delivery_note=delivery_note,
                                       batches=[canonical_identifier(b) for b in batch]))
    _print(result, as_json, f"receivable {receivable_id}: {amount} owed to {to}, maturity in {maturity_days} days")


@app.command("split")
def split(
    receivable_id: Annotated[str, typer.Argument(metavar="ID")],
    piece: Annotated[list[str], typer.Option("--piece", help="ID:ORG:AMOUNT (yuan); the pieces add up to the whole.")],
    identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False,
) -> None:
    """Split a receivable you hold into pieces (value conserved); each piece goes to its holder."""
    from pilotchain.apps.supply.client import minor_units

    pieces = []
    for text in piece:
        parts = text.split(":")
        if len(parts) != 3:
            _fail(f"--piece {text}: write ID:ORG:AMOUNT", 2)
        pieces.append({"id": parts[0], "holder": parts[1], "amount": minor_units(parts[2])})
    supply, _ = _clients(identity, network)
    ids = _run(lambda: supply.split(receivable_id, pieces))
    _print(ids, as_json, f"{receivable_id} split into {', '.join(ids)}")


@app.command("transfer")
def transfer(receivable_id: Annotated[str, typer.Argument(metavar="ID")], to: Annotated[str, typer.Option("--to")],
             identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """Pass a whole receivable you hold to another organisation."""
    supply, _ = _clients(identity, network)
    _run(lambda: supply.transfer(receivable_id, to))
    _out.print(f"{receivable_id} now held by {to}")


@app.command("offer")
def offer(receivable_id: Annotated[str, typer.Argument(metavar="ID")], bank: Annotated[str, typer.Option("--bank")],
          terms: Annotated[str, typer.Option(help="The agreed terms' payload id (in your vault).")],
          identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """Offer a receivable you hold to a bank for financing (the bank may fetch the terms and documents)."""
    supply, _ = _clients(identity, network)
    _run(lambda: supply.offer(receivable_id, bank, terms))
    _out.print(f"{receivable_id} offered to {bank}")


@app.command("finance")
def finance(receivable_id: Annotated[str, typer.Argument(metavar="ID")],
            kind: Annotated[str, typer.Option(help="discount (the receivable passes to the bank) or pledge.")] = "discount",
            registration: Annotated[str, typer.Option(help="The statutory financing registration number.")] = "",
            identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """A bank finances a receivable offered to it — once: any other attempt is refused."""
    supply, _ = _clients(identity, network)
    _run(lambda: supply.finance(receivable_id, kind=kind, registration_no=registration))
    _out.print(f"{receivable_id} financed ({kind})")


@app.command("register")
def register(receivable_id: Annotated[str, typer.Argument(metavar="ID")],
             registration: Annotated[str, typer.Argument(metavar="NUMBER")],
             identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """The financing bank records the statutory registration number of its financing."""
    supply, _ = _clients(identity, network)
    _run(lambda: supply.record_registration(receivable_id, registration))
    _out.print(f"{receivable_id}: registration {registration} recorded")


@app.command("settle")
def settle(receivable_id: Annotated[str, typer.Argument(metavar="ID")],
           payment_ref: Annotated[str, typer.Option("--payment-ref")],
           identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False) -> None:
    """The car maker pays: the receivable and every piece of it are settled and closed."""
    supply, _ = _clients(identity, network)
    paid = _run(lambda: supply.settle(receivable_id, payment_ref))
    _print(paid, as_json, "paid: " + ", ".join(f"{p['holder']} {_money(p['amount'])} ({p['id']})" for p in paid))


@app.command("request-terms")
def request_terms(receivable_id: Annotated[str, typer.Argument(metavar="ID")], reason: Annotated[str, typer.Option()],
                  identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """The regulator asks for a financing's terms and documents (then `pilotchain data fetch ... SUPERVISION`)."""
    supply, _ = _clients(identity, network)
    granted = _run(lambda: supply.request_terms(receivable_id, reason))
    _out.print(f"PERMIT for {', '.join(granted)}: fetch with `pilotchain data fetch <payload> --purpose SUPERVISION`")


@app.command("show")
def show(receivable_id: Annotated[str, typer.Argument(metavar="ID")],
         identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False) -> None:
    """A receivable's whole lineage: who held which piece, financed by whom, settled when."""
    supply, _ = _clients(identity, network)
    rows = _run(lambda: supply.lineage(receivable_id))
    if as_json:
        _print(rows, True, "")
        return
    table = Table(title=f"lineage of {rows[0]['id']} (debtor {rows[0]['debtor']})", title_justify="left")
    for column in ("receivable", "from", "holder", "amount", "status", "financing", "settled"):
        table.add_column(column, overflow="fold")
    for row in rows:
        financing = row["financing"]
        table.add_row(row["id"], row["parent"] or "-", row["holder"], _money(row["amount"]), row["status"],
                      f"{financing['bank']} ({financing['kind']}) {financing['registration_no']}" if financing else "-",
                      _when(row["settlement"]["ms"]) if row["settlement"] else "-")
    _out.print(table)


@app.command("holdings")
def holdings(org: Annotated[str, typer.Argument(metavar="ORG")], identity: IdentityOption = None,
             network: NetworkOption = None, as_json: JsonOption = False) -> None:
    """The receivables an organisation holds."""
    supply, _ = _clients(identity, network)
    rows = _run(lambda: supply.holdings(org))
    if as_json:
        _print(rows, True, "")
        return
    table = Table(title=f"held by {org}", title_justify="left")
    for column in ("receivable", "debtor", "amount", "maturity", "status"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["id"], row["debtor"], _money(row["amount"]), _when(row["maturity_ms"]), row["status"])
    _out.print(table)


@app.command("supply")
def supply_command(height: Annotated[int | None, typer.Option(help="As of this block height.")] = None,
                   identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False) -> None:
    """Issued − settled = outstanding (and financed), now or at a height."""
    supply, _ = _clients(identity, network)
    totals = _run(lambda: supply.supply(height))
    if as_json:
        _print(totals, True, "")
    else:
        _out.print(supply_table(totals, "receivables"))


def supply_table(totals: dict[str, Any], what: str) -> Table:
    table = Table(title=f"{what} at block {totals['height']}", title_justify="left")
    for column in ("issued", "settled", "outstanding", "financed"):
        table.add_column(column, justify="right")
    table.add_row(*(_money(totals[c]) for c in ("issued", "settled", "outstanding", "financed")))
    return table


# ---------------------------------------------------------------------- traceability


def _events_from(file: Path) -> list[dict[str, Any]]:
    document = json.loads(file.read_text())
    if isinstance(document, dict) and "epcisBody" in document:
        context = document.get("@context")
        events = document["epcisBody"].get("eventList") or []
        return [{**e, "@context": context} if "@context" not in e and isinstance(context, list) else e for e in events]
    return document if isinstance(document, list) else [document]


@app.command("hash")
def hash_events(file: Annotated[Path, typer.Argument(metavar="EVENTS.json", help="An event, a list or an EPCIS document.")],
                pre_hash: Annotated[bool, typer.Option("--pre-hash", help="Also print the pre-hash strings.")] = False,
                as_json: JsonOption = False) -> None:
    """The EPCIS Event Hash ID of each event (offline)."""
    from pilotchain.apps.supply.epcis import event_hash_id, pre_hash_string

    events = _events_from(file)
    rows = _run(lambda: [{"hash_id": event_hash_id(e), **({"pre_hash": pre_hash_string(e)} if pre_hash else {})}
                         for e in events])
    if as_json:
        _print(rows, True, "")
    else:  # plain lines: an id must not be wrapped by the terminal's width
        typer.echo("\n".join(r["hash_id"] + (f"\n  {r['pre_hash']}" if pre_hash else "") for r in rows))


@app.command("capture")
def capture(file: Annotated[Path, typer.Argument(metavar="EVENTS.json", help="An event, a list or an EPCIS document.")],
            identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False) -> None:
    """Record EPCIS events on chain, each anchored by its Event Hash ID."""
    _, trace = _clients(identity, network)
    ids = [_run(lambda e=e: trace.capture(e)) for e in _events_from(file)]
    if as_json:
        _print(ids, True, "")
    else:
        typer.echo("\n".join(f"captured {i}" for i in ids))


@app.command("trace")
def trace(batch: Annotated[str, typer.Argument(metavar="BATCH", help="A batch: GS1 Digital Link URI or EPC class URN.")],
          batch_only: Annotated[bool, typer.Option("--batch-only", help="Only what was made from this batch, not "
                                                                       "from its sources.")] = False,
          identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False) -> None:
    """A recall with one command: the batch's sources (tier-2 batches) and every affected VIN."""
    _, tracer = _clients(identity, network)
    recall = _run(lambda: tracer.trace(batch, batch_only=batch_only))
    if as_json:
        _print({"batch": recall.batch, "sources": recall.sources, "batches": recall.batches, "units": recall.units,
                "vins": recall.vins, "affected": [dataclasses.asdict(a) for a in recall.affected],
                "events": recall.events}, True, "")
        return
    _out.print(recall_table(recall))


def _short(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def recall_table(recall: Any) -> Table:
    short = _short
    table = Table(title=f"recall of batch {short(recall.batch)}: made from {', '.join(map(short, recall.sources))}; "
                        f"{len(recall.vins)} vehicles affected", title_justify="left")
    for column in ("VIN", "fitted with batch", "assembled", "by", "event"):
        table.add_column(column, overflow="fold")
    for item in recall.affected:
        table.add_row(item.vin, short(item.via), item.event_time, item.org, item.hash_id[14:30] + "…")
    return table

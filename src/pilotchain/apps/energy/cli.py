"""``pilotchain green ...``: every step of S5's parties — the power exchange, the meter operator, the
wind farm, the manufacturer — and the auditor's offline check of a retirement from its QR code.
Mounted through the ``pilotchain.commands`` entry points. Tables by default, ``--json`` for scripts;
exit 1 when the contract (or the offline check) refuses, 3 unreachable."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app", "trace_table"]

app = typer.Typer(help="S5: green-power certificates — devices, signed meter readings, issuance never beyond "
                       "metered energy, transfer, retirement, the offline trace from a QR code.", no_args_is_help=True)
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


def _green(identity: Path | None, network: Path | None) -> Any:
    from pilotchain.apps.energy.client import GreenClient
    from pilotchain.cli.client_cmd import connect

    who = _who(identity, network)
    return GreenClient(connect(None, network, None, timeout=30.0, identity=who), who)


def _run(call: Any) -> Any:
    from pilotchain.apps.energy.client import GreenError
    from pilotchain.sdk import PilotchainError

    try:
        return call()
    except (GreenError, ValueError) as exc:
        _fail(str(exc))
    except PilotchainError as exc:
        _fail(str(exc), 3)


def _plain(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else str(value)


def _echo(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=_plain))


def _ms(text: str) -> int:
    """An ISO date or date-time (UTC) → ms."""
    import datetime

    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000)) + "Z"


@app.command("register-device")
def register_device(device_id: Annotated[str, typer.Argument(metavar="DEVICE")], owner: Annotated[str, typer.Option()],
                    meter_org: Annotated[str, typer.Option("--meter-org")], capacity_kw: Annotated[int, typer.Option("--capacity-kw")],
                    technology: Annotated[str, typer.Option()] = "wind", location: Annotated[str, typer.Option()] = "-",
                    identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """The power exchange registers a generating device, its owner and its meter operator."""
    green = _green(identity, network)
    _run(lambda: green.register_device(device_id, owner=owner, meter_org=meter_org, technology=technology,
                                       capacity_kw=capacity_kw, location=location))
    _out.print(f"device {device_id} registered for {owner} (meter operator {meter_org})")


@app.command("reading")
def reading(reading_id: Annotated[str, typer.Argument(metavar="READING")], device: Annotated[str, typer.Option()],
            start: Annotated[str, typer.Option(help="ISO date-time (UTC).")], end: Annotated[str, typer.Option()],
            kwh: Annotated[int, typer.Option()], file: Annotated[Path, typer.Option(help="The signed reading document.")],
            vault: Annotated[str | None, typer.Option(help="Your vault's URL (default: from --network).")] = None,
            identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """The meter operator stores a reading document in its vault and records its commitment and energy."""
    from pilotchain.apps.energy.client import GreenClient
    from pilotchain.apps.exchange.client import VaultClient
    from pilotchain.apps.exchange.server import load_config

    green = _green(identity, network)
    url = vault or (str(load_config(network / "vaults" / green.identity.org).public_url) if network else None)
    if url is None:
        _fail("name your vault: --vault URL (or --network DIR)", 2)
    with VaultClient(str(url), green.identity) as client:
        _run(lambda: GreenClient.store_reading(client, reading_id.lower(), json.loads(file.read_text())))
    commitment = _run(lambda: green.record_reading(reading_id, device, _ms(start), _ms(end), kwh, reading_id.lower()))
    _out.print(f"reading {reading_id}: {kwh:,} kWh of {device}; commitment {commitment.hex()[:16]}… on chain")


@app.command("issue")
def issue(batch_id: Annotated[str, typer.Argument(metavar="BATCH")], device: Annotated[str, typer.Option()],
          start: Annotated[str, typer.Option()], end: Annotated[str, typer.Option()],
          count: Annotated[int, typer.Option(help="0: as many as the readings cover.")] = 0,
          identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """The power exchange issues certificates for a device and period — never beyond the readings."""
    green = _green(identity, network)
    lot = _run(lambda: green.issue(batch_id, device, _ms(start), _ms(end), count))
    _out.print(f"issued lot {lot}")


@app.command("transfer")
def transfer(lot_id: Annotated[str, typer.Argument(metavar="LOT")], to: Annotated[str, typer.Option("--to")],
             mwh: Annotated[int, typer.Option("--count", help="Certificates (1 MWh each by default).")],
             identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """Transfer certificates you hold."""
    green = _green(identity, network)
    moved = _run(lambda: green.transfer(lot_id, to, mwh))
    _out.print(f"{to} now holds {moved['lot']}" + (f"; you keep {moved['rest']}" if moved["rest"] else ""))


@app.command("retire")
def retire(lot_id: Annotated[str, typer.Argument(metavar="LOT")], count: Annotated[int, typer.Option("--count")],
           beneficiary: Annotated[str, typer.Option()], year: Annotated[int, typer.Option()],
           retirement_id: Annotated[str, typer.Option("--id")],
           identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """Claim certificates for a beneficiary and reporting year; they never move or count again."""
    green = _green(identity, network)
    record = _run(lambda: green.retire(lot_id, count, beneficiary=beneficiary, year=year, retirement_id=retirement_id))
    _out.print(f"retirement {record['id']}: {record['kwh']:,} kWh for {beneficiary} ({year})")


@app.command("holdings")
def holdings(org: Annotated[str, typer.Argument(metavar="ORG")], identity: IdentityOption = None,
             network: NetworkOption = None, as_json: JsonOption = False) -> None:
    """The certificate lots an organisation holds."""
    green = _green(identity, network)
    rows = _run(lambda: green.holdings(org))
    if as_json:
        _echo(rows)
        return
    table = Table(title=f"certificates held by {org}", title_justify="left")
    for column in ("lot", "certificates", "status", "valid until"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["id"], str(row["count"]), row["status"], _when(row["expires_ms"]))
    _out.print(table)


@app.command("supply")
def supply(height: Annotated[int | None, typer.Option(help="As of this block height.")] = None,
           identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False) -> None:
    """Issued = outstanding + retired + cancelled, now or at a height."""
    green = _green(identity, network)
    totals = _run(lambda: green.supply(height))
    if as_json:
        _echo(totals)
        return
    table = Table(title=f"certificates at block {totals['height']}", title_justify="left")
    for column in ("issued", "outstanding", "retired", "cancelled"):
        table.add_column(column, justify="right")
    table.add_row(*(f"{totals[c]:,}" for c in ("issued", "outstanding", "retired", "cancelled")))
    _out.print(table)


@app.command("statement")
def statement(retirement_id: Annotated[str, typer.Argument(metavar="RETIREMENT")],
              out: Annotated[Path, typer.Option(help="Folder for the .evidence, .png and .json files.")] = Path("."),
              identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """A retirement statement: the evidence bundle of its whole line and the QR code that pins it."""
    from pilotchain.apps.energy.network import write_statement
    from pilotchain.network.consortium import load_genesis

    green = _green(identity, network)
    genesis = load_genesis(network / "genesis.json") if network is not None else None
    bundle, png, text = _run(lambda: write_statement(green, retirement_id, out, genesis))
    _out.print(f"wrote {bundle}, {png} (QR: {text})")


@app.command("beneficiary-statement")
def beneficiary_statement(beneficiary: Annotated[str, typer.Argument(metavar="BENEFICIARY")],
                          out: Annotated[Path, typer.Option(help="Folder for the .evidence and .png files.")] = Path("."),
                          identity: IdentityOption = None, network: NetworkOption = None,
                          as_json: JsonOption = False) -> None:
    """Every MWh retired for BENEFICIARY, each with its whole line, in one offline-verifiable
    bundle and the QR code that pins it (`pilotchain green verify-beneficiary`)."""
    import hashlib

    from pilotchain.apps.energy.qr import write_qr
    from pilotchain.apps.energy.verify import beneficiary_qr_text
    from pilotchain.network.consortium import load_genesis

    green = _green(identity, network)
    genesis = load_genesis(network / "genesis.json") if network is not None else None
    bundle = _run(lambda: green.export_beneficiary_statement(beneficiary, genesis=genesis))
    name = "beneficiary-" + hashlib.sha256(beneficiary.encode()).hexdigest()[:12]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.evidence").write_bytes(bundle)
    text = beneficiary_qr_text(beneficiary, bundle)
    write_qr(text, out / f"{name}.png")
    if as_json:
        _echo({"evidence": str(out / f"{name}.evidence"), "png": str(out / f"{name}.png"), "qr": text})
        return
    _out.print(f"wrote {out / (name + '.evidence')} and its QR code {out / (name + '.png')}: {text}")


@app.command("verify-beneficiary")
def verify_beneficiary(bundle: Annotated[Path, typer.Argument(metavar="FILE.evidence")],
                       qr: Annotated[str, typer.Option("--qr", help="The QR code's text (PCGB1:...).")],
                       genesis: Annotated[Path, typer.Option("--genesis", help="The chain's genesis.json.")],
                       as_json: JsonOption = False) -> None:
    """Offline: every retirement for the beneficiary the QR code names, each traced to its device."""
    from pilotchain.apps.energy.verify import verify_beneficiary_statement
    from pilotchain.ledger.evidence import EvidenceInvalid
    from pilotchain.network.consortium import load_genesis

    try:
        traces = verify_beneficiary_statement(qr, bundle.read_bytes(), load_genesis(genesis))
    except EvidenceInvalid as exc:
        _fail(f"the statement does NOT verify: {exc}")
        return
    if as_json:
        _echo({"beneficiary": traces[0].beneficiary, "kwh": sum(t.kwh for t in traces),
               "retirements": [{"retirement": t.retirement_id, "year": t.year, "kwh": t.kwh,
                                "device": t.device["device_id"], "batch": t.batch["batch_id"],
                                "metered_kwh": t.metered_kwh, "retired_tx": t.retirement.tx_id} for t in traces]})
        return
    for traced in traces:
        _out.print(trace_table(traced))
    _out.print(f"{sum(t.kwh for t in traces):,} kWh retired for {traces[0].beneficiary} in {len(traces)} "
               "retirement(s), every one verified offline against the genesis")


@app.command("verify")
def verify(bundle: Annotated[Path, typer.Argument(metavar="FILE.evidence")],
           qr: Annotated[str, typer.Option("--qr", help="The QR code's text (PCGC1:...).")],
           genesis: Annotated[Path, typer.Option("--genesis", help="The chain's genesis.json.")],
           as_json: JsonOption = False) -> None:
    """Offline: device → meter commitments → issuance → transfers → retirement, from the QR code."""
    from pilotchain.apps.energy.verify import verify_statement
    from pilotchain.ledger.evidence import EvidenceInvalid
    from pilotchain.network.consortium import load_genesis

    try:
        traced = verify_statement(qr, bundle.read_bytes(), load_genesis(genesis))
    except EvidenceInvalid as exc:
        _fail(f"the statement does NOT verify: {exc}")
        return
    if as_json:
        _echo({"retirement": traced.retirement_id, "beneficiary": traced.beneficiary, "year": traced.year,
               "kwh": traced.kwh, "device": traced.device, "batch": traced.batch, "readings": traced.readings,
               "transfers": traced.transfers, "retired_tx": traced.retirement.tx_id})
        return
    _out.print(trace_table(traced))


def trace_table(traced: Any) -> Table:
    table = Table(title=f"retirement {traced.retirement_id}: {traced.kwh:,} kWh for {traced.beneficiary} "
                        f"({traced.year}) — verified offline against the genesis", title_justify="left")
    for column in ("step", "what", "who", "block"):
        table.add_column(column, overflow="fold")
    device = traced.device
    table.add_row("device", f"{device['device_id']} ({device['technology']}, {device['capacity_kw']:,} kW, "
                            f"{device['location']})", device["signer"], "-")
    for row in traced.readings:
        table.add_row("meter reading", f"{row['reading_id']}: {row['kwh']:,} kWh {_when(row['start_ms'])} .. "
                                       f"{_when(row['end_ms'])}; commitment {row['commitment'][:16]}…",
                      row["signer"], str(row["height"]))
    batch = traced.batch
    table.add_row("issuance", f"{batch['batch_id']}: {batch['count']:,} certificates of {batch['kwh_per_certificate']:,}"
                              f" kWh ({batch['metered_kwh']:,} kWh metered)", batch["signer"], str(batch["height"]))
    for move in traced.transfers:
        table.add_row(move["what"], f"{move['count']} → {move.get('to') or '-'} ({move['lot']})", move["signer"],
                      str(move["height"]))
    step = traced.retirement
    table.add_row("retirement", f"{traced.count} certificates for {traced.beneficiary}, {traced.year}", step.signer,
                  str(step.height))
    return table

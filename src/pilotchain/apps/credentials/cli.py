"""``pilotchain credential ...``: issue diplomas, present them (files and QR codes), take chain
snapshots and verify presentations offline or online.

Mounted into the ``pilotchain`` command through the ``pilotchain.commands`` entry-point group
(``pyproject.toml``). Exit codes: 0 ok / verified; 1 refused / NOT verified; 2 usage;
3 unreachable.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["app"]

T = TypeVar("T")
EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3

app = typer.Typer(help="Verifiable credentials (SD-JWT VC diplomas): issue in anchored batches, present "
                       "selectively (file or QR code), revoke, verify offline from a chain snapshot.",
                  no_args_is_help=True)
issuer_app = typer.Typer(help="An issuer's home folder and its registration on chain.", no_args_is_help=True)
key_app = typer.Typer(help="Issuer signing keys on chain: rotate, retire.", no_args_is_help=True)
app.add_typer(issuer_app, name="issuer")
app.add_typer(key_app, name="key")

_out = Console()
_err = Console(stderr=True)

HomeArgument = Annotated[Path, typer.Argument(metavar="HOME", help="The issuer's home folder.")]
IdentityOption = Annotated[Path | None, typer.Option("--identity", "-i", envvar="PILOTCHAIN_IDENTITY",
                                                     help="Your identity file (admin for issuers and keys; a "
                                                          "client or admin of the issuer's organisation otherwise).")]
NetworkOption = Annotated[Path | None, typer.Option("--network", envvar="PILOTCHAIN_NETWORK",
                                                   help="A `pilotchain network init` folder.")]
NodeOption = Annotated[str | None, typer.Option("--node", help="A node's gateway URL (default: the network's first).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    _err.print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def _chain(call: Callable[[], T]) -> T:
    """Run chain work, turning its errors into one line and an exit code."""
    from pilotchain.apps.credentials.chain import ChainRefused
    from pilotchain.apps.credentials.issuer import IssuerError
    from pilotchain.sdk import PilotchainError, TransportError

    try:
        return call()
    except TransportError as exc:
        _fail(str(exc), EXIT_UNREACHABLE)
    except (ChainRefused, IssuerError, PilotchainError, TimeoutError) as exc:
        _fail(str(exc))


def _identity(identity: Path | None) -> Any:
    from pilotchain.sdk import Identity

    if identity is None:
        _fail("name your identity file with -i (or set PILOTCHAIN_IDENTITY)", EXIT_USAGE)
    try:
        return Identity.load(identity)
    except Exception as exc:  # noqa: BLE001 - every way an identity file is unusable says why
        _fail(f"cannot load the identity {identity}: {exc}", EXIT_USAGE)


def _client(node: str | None, network: Path | None, identity: Any) -> Any:
    from pilotchain.cli.client_cmd import connect

    return _chain(lambda: connect(node, network, None, timeout=60.0, identity=identity))


def _ms(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        _fail(f"{option} is a time: ISO 8601 (2026-12-07T09:00:00+08:00) or ms since 1970", EXIT_USAGE)


def _duration_ms(text: str) -> int:
    units = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    if text and text[-1] in units and text[:-1].isdigit():
        return int(text[:-1]) * units[text[-1]]
    if text.isdigit():
        return int(text) * 1000
    _fail(f"{text!r} is not a duration (30s, 10m, 12h, 7d)", EXIT_USAGE)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _home(path: Path) -> Any:
    from pilotchain.apps.credentials.issuer import IssuerHome

    return _chain(lambda: IssuerHome(path))


# ---------------------------------------------------------------------- issuers and keys


@issuer_app.command("init")
def issuer_init(
    home: HomeArgument,
    iss: Annotated[str, typer.Option("--iss", help="The issuer identifier credentials carry (a URI).")],
    name: Annotated[str, typer.Option("--name", help="The issuer's display name.")],
    valid_days: Annotated[int, typer.Option("--valid-days", min=1, max=7300, help="The first key's validity.")] = 1825,
    list_size: Annotated[int, typer.Option("--list-size", min=8, help="Entries in each status list.")] = 131_072,
    node: NodeOption = None, network: NetworkOption = None, identity: IdentityOption = None,
) -> None:
    """Create an issuer home and register on chain: the issuer (owned by your organisation), a
    signing key with its validity, a status list. Needs an admin identity."""
    from pilotchain.apps.credentials.issuer import create_issuer

    admin = _identity(identity)
    with _client(node, network, admin) as client:
        created = _chain(lambda: create_issuer(home, client, admin, iss=iss, name=name, now_ms=_now_ms(),
                                               valid_days=valid_days, list_size=list_size))
    key = created.config["keys"][-1]
    _out.print(f"issuer {iss} ({name}) registered for {admin.org}; key {key['kid']} valid until "
               f"{datetime.fromtimestamp(key['not_after_ms'] / 1000):%Y-%m-%d}; status list "
               f"{created.config['lists'][-1]['list_id']}; home {home}")


@key_app.command("rotate")
def key_rotate(
    home: HomeArgument,
    valid_days: Annotated[int, typer.Option("--valid-days", min=1, max=7300, help="The new key's validity.")] = 1825,
    node: NodeOption = None, network: NetworkOption = None, identity: IdentityOption = None,
) -> None:
    """A new signing key from now; the current one is retired now. Diplomas it signed stay
    valid: their batches were anchored while it was."""
    issuer = _home(home)
    admin = _identity(identity)
    with _client(node, network, admin) as client:
        new, old = _chain(lambda: issuer.rotate(client, admin, now_ms=_now_ms(), valid_days=valid_days))
    _out.print(f"key {new} registered" + (f"; key {old} retired from now" if old else ""))


@key_app.command("retire")
def key_retire(
    home: HomeArgument,
    kid: Annotated[str, typer.Option("--kid", help="The key to retire.")],
    at: Annotated[str | None, typer.Option("--at", help="Valid until (ISO 8601 or ms; default now). A compromised "
                                                          "key: when it was compromised — batches anchored after "
                                                          "that stop verifying.")] = None,
    node: NodeOption = None, network: NetworkOption = None, identity: IdentityOption = None,
) -> None:
    """End a key's validity (never extends it)."""
    issuer = _home(home)
    admin = _identity(identity)
    until = _ms(at, "--at") or _now_ms()
    with _client(node, network, admin) as client:
        _chain(lambda: issuer.retire_key(client, admin, kid, until))
    _out.print(f"key {kid} of {issuer.iss} valid until {datetime.fromtimestamp(until / 1000):%Y-%m-%d %H:%M:%S}")


# ---------------------------------------------------------------------- issuing and status


def _read_class(path: Path) -> list[dict[str, Any]]:
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as handle:
                return [{k: v for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(handle)]
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, csv.Error) as exc:
        _fail(f"cannot read the class file {path}: {exc}", EXIT_USAGE)
    if not isinstance(document, list):
        _fail(f"{path} holds a JSON list of graduates' records", EXIT_USAGE)
    return document


@app.command("issue")
def issue(
    home: HomeArgument,
    class_file: Annotated[Path, typer.Option("--class", help="The graduates: JSON list or CSV with given_name, "
                                                             "family_name, degree, graduation_year (and birthdate, "
                                                             "student_id, field_of_study, grade).")],
    batch_id: Annotated[str, typer.Option("--batch", help="The batch's id (letters, digits, . _ : -).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the diplomas (one file each).")],
    node: NodeOption = None, network: NetworkOption = None, identity: IdentityOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign one SD-JWT VC diploma per graduate and anchor the batch on chain in one transaction
    (its Merkle root); write each diploma with its inclusion proof and status index."""
    from pilotchain.apps.credentials.diploma import check_record

    issuer = _home(home)
    records = _read_class(class_file)
    for i, record in enumerate(records):
        try:
            check_record(record)
        except ValueError as exc:
            _fail(f"{class_file} record {i + 1}: {exc}", EXIT_USAGE)
    member = _identity(identity)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _client(node, network, member) as client:
        batch = _chain(lambda: issuer.issue(client, member, records, batch_id=batch_id))
    seconds = time.perf_counter() - started
    for diploma in batch.diplomas:
        name = diploma.student_id or f"{diploma.roll_position + 1:05d}"
        (out / f"{_safe(name)}.diploma.json").write_text(diploma.presentation.to_json() + "\n")
    summary = {"batch": batch_id, "diplomas": len(batch.diplomas), "root": batch.tree_head["root"].hex(),
               "status_list": batch.list_id, "seconds": round(seconds, 3), "out": str(out)}
    if as_json:
        _print_json(summary)
        return
    _out.print(f"issued {len(batch.diplomas)} diplomas in batch {batch_id} ({seconds:.2f} s, "
               f"{len(batch.diplomas) / seconds:,.0f}/s including the anchoring transaction); Merkle root "
               f"{summary['root'][:16]}… on chain; files in {out}")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64] or "diploma"


@app.command("revoke")
def revoke(
    home: HomeArgument,
    student: Annotated[str | None, typer.Option("--student", help="The graduate's student id.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="The batch (when the student has several).")] = None,
    suspend: Annotated[bool, typer.Option("--suspend", help="Suspend instead (reversible).")] = False,
    reinstate: Annotated[bool, typer.Option("--reinstate", help="Lift a suspension.")] = False,
    node: NodeOption = None, network: NetworkOption = None, identity: IdentityOption = None,
) -> None:
    """Revoke (final), suspend or reinstate a diploma: its status-list entry changes in one
    transaction."""
    from pilotchain.apps.credentials.statuslist import (
        STATUS_INVALID,
        STATUS_SUSPENDED,
        STATUS_VALID,
    )

    if suspend and reinstate:
        _fail("--suspend or --reinstate, not both", EXIT_USAGE)
    if student is None:
        _fail("name the diploma: --student ID (and --batch)", EXIT_USAGE)
    issuer = _home(home)
    record = _chain(lambda: issuer.find(student_id=student, batch=batch))
    status = STATUS_SUSPENDED if suspend else STATUS_VALID if reinstate else STATUS_INVALID
    member = _identity(identity)
    with _client(node, network, member) as client:
        height = _chain(lambda: issuer.set_status(client, member, [record], status))
    verb = "suspended" if suspend else "reinstated" if reinstate else "revoked"
    _out.print(f"{verb} the diploma of {student} (batch {record.batch}): entry {record.index} of status list "
               f"{record.list_id}, block {height}")


# ---------------------------------------------------------------------- the holder


def _read_presentation(source: str) -> Any:
    from pilotchain.apps.credentials.diploma import Presentation
    from pilotchain.apps.credentials.sdjwt import SdJwtInvalid

    text = sys.stdin.read() if source == "-" else _read_text(Path(source))
    try:
        return Presentation.from_text(text)
    except SdJwtInvalid as exc:
        _fail(f"{source} is not a credential: {exc.reason}", EXIT_USAGE)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {exc}", EXIT_USAGE)


@app.command("show")
def show(
    diploma: Annotated[str, typer.Argument(metavar="FILE", help="A diploma or presentation file (- for stdin).")],
    as_json: JsonOption = False,
) -> None:
    """What a diploma says (every claim it can disclose), without verifying it."""
    from pilotchain.apps.credentials.sdjwt import SdJwtInvalid, b64url_decode, parse_sd_jwt

    credential = _read_presentation(diploma)
    try:
        parsed = parse_sd_jwt(credential.sd_jwt)
        claims = {}
        for disclosure in parsed.disclosures:
            content = json.loads(b64url_decode(disclosure))
            claims[content[1]] = content[2]
    except (SdJwtInvalid, ValueError, IndexError) as exc:
        _fail(f"{diploma} does not parse: {exc}", EXIT_USAGE)
    document = {"iss": parsed.payload.get("iss"), "kid": parsed.header.get("kid"), "vct": parsed.payload.get("vct"),
                "claims": claims, "batch": credential.anchor.batch, "status": parsed.payload.get("status")}
    if as_json:
        _print_json(document)
        return
    _out.print(f"issuer {document['iss']} (key {document['kid']}), batch {document['batch']}")
    for name, value in claims.items():
        _out.print(f"  {name}: {escape(str(value))}")


@app.command("present")
def present(
    diploma: Annotated[str, typer.Argument(metavar="DIPLOMA", help="Your diploma file.")],
    disclose: Annotated[str, typer.Option("--disclose", help="Claims to show, comma-separated (name, degree, year, "
                                                             "field, birth, student_id, grade...).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the presentation (JSON).")] = None,
    qr: Annotated[Path | None, typer.Option("--qr", help="Write a QR code (.png or .svg).")] = None,
    qr_text: Annotated[Path | None, typer.Option("--qr-text", help="Write the QR code's content (text).")] = None,
    terminal: Annotated[bool, typer.Option("--terminal", help="Print the QR code in the terminal.")] = False,
) -> None:
    """Make a presentation that shows only the claims you choose; the others stay hidden behind
    salted digests. As a file and/or a QR code."""
    from pilotchain.apps.credentials.diploma import Presentation, disclosure_names
    from pilotchain.apps.credentials.sdjwt import SdJwtInvalid, select_disclosures

    credential = _read_presentation(diploma)
    try:
        names = disclosure_names([item.strip() for item in disclose.split(",") if item.strip()])
        shown = Presentation(chain=credential.chain, sd_jwt=select_disclosures(credential.sd_jwt, names),
                             anchor=credential.anchor)
    except (ValueError, SdJwtInvalid) as exc:
        _fail(str(exc), EXIT_USAGE)
    if out is None and qr is None and qr_text is None and not terminal:
        typer.echo(shown.to_json())
        return
    if out is not None:
        out.write_text(shown.to_json() + "\n")
        _out.print(f"presentation of {', '.join(names)} in {out}")
    if qr is not None or qr_text is not None or terminal:
        from pilotchain.apps.credentials.qr import write_qr

        content = shown.to_qr_text()
        if qr_text is not None:
            qr_text.write_text(content + "\n")
            _out.print(f"QR content ({len(content)} characters) in {qr_text}")
        if qr is not None:
            version = write_qr(content, qr)
            _out.print(f"QR code (version {version}) in {qr}")
        if terminal:
            from pilotchain.apps.credentials.qr import terminal_qr

            terminal_qr(content)


# ---------------------------------------------------------------------- snapshots and verification


def _genesis(path: Path | None, network: Path | None) -> Any:
    from pilotchain.node.config import NodeConfigError, load_genesis

    if path is None and network is not None:
        path = network / "genesis.json"
    if path is None:
        _fail("give the chain's genesis: --genesis genesis.json (the trust anchor)", EXIT_USAGE)
    try:
        return load_genesis(path)
    except (NodeConfigError, OSError) as exc:
        _fail(f"cannot read the genesis {path}: {exc}", EXIT_USAGE)


def _take_snapshot(client: Any, genesis: Any, *, issuers: list[str], batches: list[str]) -> bytes:
    from pilotchain.apps.credentials.chain import export_snapshot

    return _chain(lambda: export_snapshot(client, issuers=issuers, batches=batches, genesis=genesis))


@app.command("snapshot")
def snapshot(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the snapshot.")],
    issuer: Annotated[list[str] | None, typer.Option("--issuer", help="Everything about this issuer (repeatable).")] = None,
    batch: Annotated[list[str] | None, typer.Option("--batch", help="Only these batches (repeatable).")] = None,
    for_presentation: Annotated[str | None, typer.Option("--for", help="What this presentation needs (its issuer, "
                                                                       "all its batches: the node does not learn "
                                                                       "which one).")] = None,
    genesis: Annotated[Path | None, typer.Option("--genesis", help="Verify against this genesis before writing "
                                                                   "(default: the network's).")] = None,
    node: NodeOption = None, network: NetworkOption = None, identity: IdentityOption = None,
) -> None:
    """Fetch a chain snapshot from a node (every read proven) for verifying offline: certified
    headers back to genesis, the batches' anchoring transactions, issuer keys, status lists."""
    issuers = list(issuer or [])
    if for_presentation is not None:
        from pilotchain.apps.credentials.sdjwt import SdJwtInvalid, parse_sd_jwt

        credential = _read_presentation(for_presentation)
        try:
            issuers.append(str(parse_sd_jwt(credential.sd_jwt).payload.get("iss")))
        except SdJwtInvalid as exc:
            _fail(f"{for_presentation}: {exc.reason}", EXIT_USAGE)
    if not issuers and not batch:
        _fail("say what the snapshot covers: --issuer, --batch or --for PRESENTATION", EXIT_USAGE)
    chain_genesis = _genesis(genesis, network) if genesis is not None or network is not None else None
    reader = _identity(identity) if identity is not None else None
    with _client(node, network, reader) as client:
        data = _take_snapshot(client, chain_genesis, issuers=issuers, batches=list(batch or []))
    out.write_bytes(data)
    checked = "verified against genesis, " if chain_genesis is not None else ""
    _out.print(f"snapshot of {len(data):,} bytes ({checked}{', '.join(issuers or batch or [])}) in {out}")


@app.command("verify")
def verify(
    presentation: Annotated[str, typer.Argument(metavar="PRESENTATION",
                                                help="A presentation: its JSON file, a file with the QR code's "
                                                     "text, or - to read either from stdin (a scanner).")],
    snapshot_file: Annotated[Path | None, typer.Option("--snapshot", help="A chain snapshot (offline).")] = None,
    genesis: Annotated[Path | None, typer.Option("--genesis", help="The chain's genesis.json: the trust anchor.")] = None,
    online: Annotated[bool, typer.Option("--online", help="Fetch a fresh snapshot from a node first.")] = False,
    save_snapshot: Annotated[Path | None, typer.Option("--save-snapshot", help="With --online: keep the snapshot.")] = None,
    max_age: Annotated[str, typer.Option("--max-age", help="Oldest chain state accepted (7d, 12h, 30m).")] = "7d",
    node: NodeOption = None, network: NetworkOption = None, identity: IdentityOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify a presented diploma: signature, disclosures, batch inclusion, issuer-key validity at
    the certified issue time and status — offline from a snapshot and genesis, or online."""
    from pilotchain.apps.credentials.chain import contract_code
    from pilotchain.apps.credentials.sdjwt import SdJwtInvalid, parse_sd_jwt
    from pilotchain.apps.credentials.snapshot import SnapshotInvalid, verify_snapshot
    from pilotchain.apps.credentials.verify import Check, Report, verify_presentation

    if (snapshot_file is None) == (not online):
        _fail("verify offline with --snapshot FILE, or online with --online", EXIT_USAGE)
    chain_genesis = _genesis(genesis, network)
    max_age_ms = _duration_ms(max_age)
    text = sys.stdin.read() if presentation == "-" else _read_text(Path(presentation))
    if online:
        from pilotchain.apps.credentials.diploma import Presentation

        try:
            iss = str(parse_sd_jwt(Presentation.from_text(text).sd_jwt).payload.get("iss"))
        except SdJwtInvalid as exc:
            _fail(f"{presentation} is not a credential: {exc.reason}", EXIT_USAGE)
        reader = _identity(identity) if identity is not None else None
        with _client(node, network, reader) as client:
            data = _take_snapshot(client, chain_genesis, issuers=[iss], batches=[])
        if save_snapshot is not None:
            save_snapshot.write_bytes(data)
    else:
        if snapshot_file is None:
            raise typer.Exit(EXIT_USAGE)
        try:
            data = snapshot_file.read_bytes()
        except OSError as exc:
            _fail(f"cannot read the snapshot: {exc}", EXIT_USAGE)
    try:
        verified = verify_snapshot(data, chain_genesis, contract_code=contract_code())
        report = verify_presentation(text, verified, now_ms=_now_ms(), max_age_ms=max_age_ms)
    except SnapshotInvalid as exc:
        report = Report((Check("chain", False, f"the snapshot does NOT verify: {exc.where}: {exc.reason}"),))
    if as_json:
        _print_json(report.to_json())
    else:
        print_report(report, _out)
    if not report.ok:
        raise typer.Exit(EXIT_REFUSED)


def print_report(report: Any, console: Console) -> None:
    """The ✓/✗ report, one line per check, then the verdict and the disclosed claims."""
    width = max(len(check.name) for check in report.checks)
    for check in report.checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        console.print(f"{mark} {check.name.ljust(width)}  {escape(check.detail)}", overflow="fold")
    if report.ok:
        console.print("[bold green]VERIFIED[/]" + (f" — {len(report.disclosed)} claim(s) disclosed, "
                                                   f"{report.hidden} hidden" if report.disclosed else ""))
        for name, value in report.disclosed.items():
            console.print(f"    {name}: {escape(str(value))}")
    else:
        failed = ", ".join(check.name for check in report.failed())
        console.print(f"[bold red]NOT VERIFIED[/] ({failed})")

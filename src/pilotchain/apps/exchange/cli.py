"""``pilotchain vault ...`` (run an organisation's vault) and ``pilotchain data ...`` (use it).

Mounted into the ``pilotchain`` command through the ``pilotchain.commands`` entry-point group
(``pyproject.toml``): the platform's CLI finds applications, it never imports them.

Exit codes: 0 ok; 1 refused (no PERMIT, withdrawn, purged, ...); 2 usage; 3 unreachable.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

__all__ = ["audit_app", "data_app", "vault_app"]

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
VAULT_ENV = "PILOTCHAIN_VAULT"

vault_app = typer.Typer(help="Run an organisation's data-exchange vault.", no_args_is_help=True)
data_app = typer.Typer(help="Share data between organisations through the vaults: store, grant, fetch, "
                            "withdraw, purge, receipts.", no_args_is_help=True)

audit_app = typer.Typer(help="Audit files of the data exchange: export from your vault, verify offline.",
                        no_args_is_help=True)

_out = Console()
_err = Console(stderr=True)

HomeArgument = Annotated[Path, typer.Argument(metavar="HOME", help="The vault's home folder.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
IdentityOption = Annotated[Path | None, typer.Option("--identity", "-i", envvar="PILOTCHAIN_IDENTITY",
                                                     help="Your identity file (a member of the vault's organisation).")]
VaultOption = Annotated[str | None, typer.Option("--vault", envvar=VAULT_ENV,
                                                 help="Your organisation's vault URL (default: from --network).")]
NetworkOption = Annotated[Path | None, typer.Option("--network", envvar="PILOTCHAIN_NETWORK",
                                                   help="A `pilotchain network init` folder.")]


def _fail(message: str, code: int = EXIT_REFUSED) -> None:
    _err.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def _print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


# ---------------------------------------------------------------------- vault


@vault_app.command("init")
def vault_init(
    home: HomeArgument,
    network: Annotated[Path, typer.Option("--network", help="The `pilotchain network init` folder.")],
    org: Annotated[str, typer.Option("--org", help="The organisation this vault serves.")],
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 26700,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    as_json: JsonOption = False,
) -> None:
    """Create a vault home for ORG: configuration, genesis, a fresh encryption key."""
    from pilotchain.apps.exchange.server import init_vault

    try:
        config = init_vault(home, network=network, org=org, host=host, port=port)
    except (OSError, ValueError, KeyError) as exc:
        _fail(f"cannot create the vault: {exc}", EXIT_USAGE)
        return
    if as_json:
        _print_json({"home": str(config.home), "org": config.org, "url": config.public_url})
    else:
        _out.print(f"vault of {config.org} in {config.home}; start it: pilotchain vault serve {home}")


@vault_app.command("serve")
def vault_serve(home: HomeArgument) -> None:
    """Run the vault (HTTP service and background anchoring, acknowledgements, purges)."""
    import logging

    from pilotchain.apps.exchange.records import ExchangeError
    from pilotchain.apps.exchange.server import load_config, serve
    from pilotchain.apps.exchange.store import VaultStoreError

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request to the node
    try:
        serve(load_config(home))
    except (ExchangeError, VaultStoreError, OSError) as exc:
        _fail(f"the vault cannot start: {exc}", EXIT_USAGE)


@vault_app.command("register")
def vault_register(
    home: HomeArgument,
    admin: Annotated[Path, typer.Option("--admin", help="Your organisation's admin identity file.")],
) -> None:
    """Register (or update) the vault's encryption key and URL on chain."""
    from pilotchain.apps.exchange.records import ExchangeError
    from pilotchain.apps.exchange.server import load_config, open_vault
    from pilotchain.sdk import Identity

    config = load_config(home)
    vault = open_vault(config)
    try:
        tx_id = vault.register_org(Identity.load(admin), config.public_url)
    except ExchangeError as exc:
        _fail(exc.message)
    finally:
        vault.store.close()
        vault.book.close()
    _out.print(f"registered {config.org}'s vault at {config.public_url} (tx {tx_id[:16]}…)")


# ---------------------------------------------------------------------- data


def _identity(identity: Path | None, network: Path | None) -> Any:
    from pilotchain.sdk import Identity
    from pilotchain.sdk._network import folder_identity

    path = identity or (folder_identity(network) if network is not None else None)
    if path is None:
        _fail("say who you are: --identity FILE (or PILOTCHAIN_IDENTITY, or --network DIR)", EXIT_USAGE)
    try:
        return Identity.load(path)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any unreadable identity file
        _fail(f"cannot load {path}: {exc}", EXIT_USAGE)


def _vault_url(vault: str | None, network: Path | None, org: str) -> str:
    if vault:
        return vault
    if network is not None:
        home = network / "vaults" / org / "vault.json"
        if home.is_file():
            return str(json.loads(home.read_text())["public_url"])
    _fail(f"which vault? --vault URL, {VAULT_ENV}, or --network DIR whose vaults/{org} exists", EXIT_USAGE)
    return ""


def _client(vault: str | None, network: Path | None, identity: Path | None) -> Any:
    from pilotchain.apps.exchange.client import VaultClient

    who = _identity(identity, network)
    return VaultClient(_vault_url(vault, network, who.org), who)


def _run(call: Any) -> Any:
    from pilotchain.apps.exchange.client import VaultError

    try:
        return call()
    except VaultError as exc:
        _fail(f"{exc.code}: {exc.message}", EXIT_UNREACHABLE if exc.code == "UNREACHABLE" else EXIT_REFUSED)


def _payload_table(items: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("id", "owner", "role", "class", "bytes", "state"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(item["payload_id"], item["owner_org"], item["role"], item["classification"],
                      f"{item['size']:,}", item["state"])
    return table


@data_app.command("put")
def data_put(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The payload to store (- for stdin).")],
    payload_id: Annotated[str, typer.Option("--id", help="The payload's id (letters, digits, . _ : -).")],
    classification: Annotated[str, typer.Option(help="general, important or core (or the consortium's list).")] = "general",
    retention_days: Annotated[int, typer.Option("--retention-days", min=1, help="Days to keep it.")] = 365,
    media_type: Annotated[str, typer.Option("--media-type", help="Its media type.")] = "application/octet-stream",
    policy: Annotated[str, typer.Option(help="A contract that decides who receives it (default: you).")] = "",
    subject: Annotated[list[str] | None, typer.Option("--subject", help="A pseudonymous data-subject reference (repeatable).")] = None,
    vault: VaultOption = None, network: NetworkOption = None, identity: IdentityOption = None, as_json: JsonOption = False,
) -> None:
    """Store FILE in your vault (encrypted) and register its salted commitment on chain."""
    client = _client(vault, network, identity)
    retention = int(time.time() * 1000) + retention_days * 86_400_000
    source: Any = sys.stdin.buffer if str(file) == "-" else file
    if isinstance(source, Path) and not source.is_file():
        _fail(f"no file {file}", EXIT_USAGE)
    size = source.stat().st_size if isinstance(source, Path) else None
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=_err, disable=as_json or size is None or size < 1024 * 1024) as progress:
        task = progress.add_task(f"uploading {payload_id}", total=size)
        result = _run(lambda: client.put(payload_id, source, media_type=media_type, classification=classification,
                                         retention_until_ms=retention, policy=policy, subjects=subject or [],
                                         progress=lambda n: progress.advance(task, n)))
    if as_json:
        _print_json(result)
    else:
        _out.print(f"stored {payload_id}: {result['size']:,} bytes, commitment {result['commitment'][:16]}…, "
                   f"registered in block {result['height']}")


@data_app.command("get")
def data_get(
    payload_id: Annotated[str, typer.Argument(metavar="ID")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the bytes (- for stdout).")],
    vault: VaultOption = None, network: NetworkOption = None, identity: IdentityOption = None,
) -> None:
    """Write a payload (your own or a copy you fetched) to a file."""
    client = _client(vault, network, identity)

    def write() -> int:
        written = 0
        out = sys.stdout.buffer if str(output) == "-" else output.open("wb")
        try:
            for piece in client.content(payload_id):
                out.write(piece)
                written += len(piece)
        finally:
            if out is not sys.stdout.buffer:
                out.close()
        return written

    written = _run(write)
    if str(output) != "-":
        _err.print(f"wrote {written:,} bytes to {output}")


@data_app.command("fetch")
def data_fetch(
    payload_id: Annotated[str, typer.Argument(metavar="ID")],
    purpose: Annotated[str, typer.Option(help="Why you need it; must match the PERMIT (e.g. TREAT).")],
    owner: Annotated[str | None, typer.Option(help="The owner organisation (checked against the chain).")] = None,
    vault: VaultOption = None, network: NetworkOption = None, identity: IdentityOption = None, as_json: JsonOption = False,
) -> None:
    """Have your vault fetch a copy from the owner's vault (needs a current PERMIT)."""
    client = _client(vault, network, identity)
    result = _run(lambda: client.fetch(payload_id, purpose, owner_org=owner))
    if as_json:
        _print_json(result)
    else:
        _out.print(f"received {payload_id} from {result['owner_org']}: {result['size']:,} bytes, "
                   "commitment verified; receipts will be anchored")


@data_app.command("purge")
def data_purge(
    payload_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="Why (recorded on chain).")],
    vault: VaultOption = None, network: NetworkOption = None, identity: IdentityOption = None, as_json: JsonOption = False,
) -> None:
    """Purge your payload: on chain, here, and (as they learn of it) in every vault holding a copy."""
    client = _client(vault, network, identity)
    result = _run(lambda: client.purge(payload_id, reason))
    if as_json:
        _print_json(result)
    else:
        _out.print(f"purged {payload_id}; holders of copies delete theirs and confirm on chain")


@data_app.command("list")
def data_list(
    vault: VaultOption = None, network: NetworkOption = None, identity: IdentityOption = None, as_json: JsonOption = False,
) -> None:
    """Your organisation's payloads and copies."""
    client = _client(vault, network, identity)
    page = _run(lambda: client.payloads())
    if as_json:
        _print_json(page)
    else:
        _out.print(_payload_table(page["items"], "payloads"))


@data_app.command("receipts")
def data_receipts(
    payload_id: Annotated[str, typer.Argument(metavar="ID")],
    vault: VaultOption = None, network: NetworkOption = None, identity: IdentityOption = None, as_json: JsonOption = False,
) -> None:
    """Signed receipts for a payload, and where each is anchored."""
    client = _client(vault, network, identity)
    rows = _run(lambda: client.receipts(payload_id))
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"receipts of {payload_id}", title_justify="left")
    for column in ("kind", "request", "anchored in"):
        table.add_column(column, overflow="fold")
    for row in rows:
        proof = row["proof"]
        where = f"block {proof['height']} (batch of {proof['count']})" if proof else "pending"
        table.add_row(row["kind"], row["request_id"][:12] + "…", where)
    _out.print(table)


def _chain_call(network: Path | None, identity: Path | None, method: str, args: dict[str, Any]) -> Any:
    from pilotchain.cli.client_cmd import connect

    who = _identity(identity, network)
    with connect(None, network, None, timeout=30.0, identity=who) as client:
        try:
            result = client.invoke(who, "dataex", method, args, check=False)
        except Exception as exc:  # noqa: BLE001 - the SDK's errors say what to do
            _fail(str(exc), EXIT_UNREACHABLE)
    if result.receipt is None or result.receipt.status != "OK":
        _fail(result.receipt.message if result.receipt is not None else str(result.message))
    return result


@data_app.command("grant")
def data_grant(
    payload_id: Annotated[str, typer.Argument(metavar="ID")],
    to: Annotated[str, typer.Option("--to", help="The organisation that may receive it.")],
    purpose: Annotated[str, typer.Option(help="For what (a purpose-of-use code, e.g. TREAT).")],
    days: Annotated[int, typer.Option(min=1, help="How long the PERMIT lasts.")] = 30,
    network: NetworkOption = None, identity: IdentityOption = None,
) -> None:
    """Record a PERMIT on chain: ORG may receive ID for PURPOSE for DAYS (you must own ID)."""
    until = int(time.time() * 1000) + days * 86_400_000
    result = _chain_call(network, identity, "decide", {"payload_id": payload_id, "org": to, "purpose": purpose,
                                                         "until_ms": until})
    _out.print(f"PERMIT for {to} to receive {payload_id} for {purpose}, {days} days (block {result.height})")


@data_app.command("withdraw")
def data_withdraw(
    payload_id: Annotated[str, typer.Argument(metavar="ID")],
    org: Annotated[str, typer.Option("--from", help="The organisation whose PERMIT ends.")],
    reason: Annotated[str, typer.Option(help="Why (recorded on chain).")],
    network: NetworkOption = None, identity: IdentityOption = None,
) -> None:
    """End a PERMIT: the organisation's next fetch is refused."""
    result = _chain_call(network, identity, "withdraw", {"payload_id": payload_id, "org": org, "reason": reason})
    _out.print(f"withdrew {org}'s PERMIT for {payload_id} (block {result.height})")



# ---------------------------------------------------------------------- audit


def _ms(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    from datetime import datetime

    try:
        return int(text) if text.isdigit() else int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        _fail(f"{option} is a time: ISO 8601 (2026-12-07T09:00:00+08:00) or ms since 1970", EXIT_USAGE)
    return None


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the audit file.")],
    payload: Annotated[str | None, typer.Option("--payload", help="One payload's whole story.")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Everything an organisation did or received.")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Everything about a data subject (pseudonymous reference).")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601 or ms).")] = None,
    until: Annotated[str | None, typer.Option(help="Until this time (ISO 8601 or ms).")] = None,
    vault: VaultOption = None, network: NetworkOption = None, identity: IdentityOption = None,
) -> None:
    """Write one file with the transactions, receipts, proofs, headers, commit certificates and
    validator history that `pilotchain audit verify` checks offline."""
    selection = {"payload_id": payload, "org": org, "subject": subject, "since_ms": _ms(since, "--since"),
                 "until_ms": _ms(until, "--until")}
    if all(value is None for value in selection.values()):
        _fail("say what to export: --payload, --org, --subject, --since or --until", EXIT_USAGE)
    client = _client(vault, network, identity)
    with _err.status("the vault is collecting the evidence (it reads the chain)…"):
        bundle = _run(lambda: client.audit_export(**{k: v for k, v in selection.items() if v is not None}))
    out.write_bytes(bundle)
    _out.print(f"wrote {len(bundle):,} bytes to {out}; check it offline: pilotchain audit verify {out} --genesis genesis.json")


@audit_app.command("verify")
def audit_verify(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="An audit file from `pilotchain audit export`.")],
    genesis: Annotated[Path, typer.Option("--genesis", help="The chain's genesis.json: the trust anchor.")],
    as_json: JsonOption = False,
) -> None:
    """Check an audit file with no network: every transaction's proof, every header's commit
    certificate, the validator history from genesis, every receipt's anchoring and signature."""
    from pilotchain.apps.exchange.audit import verify_audit
    from pilotchain.ledger.evidence import EvidenceInvalid
    from pilotchain.node.config import NodeConfigError, load_genesis

    try:
        chain = load_genesis(genesis)
        bundle = file.read_bytes()
    except (NodeConfigError, OSError) as exc:
        _fail(f"cannot read the inputs: {exc}", EXIT_USAGE)
        return
    try:
        report = verify_audit(bundle, chain)
    except EvidenceInvalid as exc:
        if as_json:
            _print_json({"verified": False, "where": exc.where, "reason": exc.reason})
            raise typer.Exit(EXIT_REFUSED) from None
        _fail(f"the audit file does NOT verify: {exc.where}: {exc.reason}")
        return
    if as_json:
        _print_json({"verified": True, "chain_id": report.chain_id, "headers": report.headers,
                     "validator_changes": report.validator_changes, "transactions": report.transactions,
                     "receipts": [{k: v for k, v in r.items() if k != "document"} for r in report.receipts]})
        return
    _out.print(f"[green]verified[/] against {genesis}: chain {report.chain_id}, {len(report.transactions)} "
               f"transactions in {report.headers} certified blocks, {len(report.receipts)} signed receipts, "
               f"{report.validator_changes} validator-set changes since genesis")
    table = Table(title="transactions", title_justify="left")
    for column in ("block", "method", "payload", "org", "signed by", "status"):
        table.add_column(column, overflow="fold")
    for tx in report.transactions:
        table.add_row(str(tx["height"]), tx["method"], str(tx["payload_id"] or "-"), str(tx["org"] or "-"),
                      tx["signer"], tx["status"])
    _out.print(table)
    receipts = Table(title="receipts", title_justify="left")
    for column in ("kind", "payload", "from", "to", "purpose", "signed by"):
        receipts.add_column(column, overflow="fold")
    for r in report.receipts:
        receipts.add_row(r["kind"], r["payload_id"], r["provider"], r["consumer"], r["purpose"], r["signed_by"])
    _out.print(receipts)

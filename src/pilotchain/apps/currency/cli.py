"""``pilotchain currency ...``: every role's steps. Mounted through the ``pilotchain.commands``
entry points. Amounts are yuan with at most two decimals (``12.50``), turned into whole fen
without floating point. ``--json`` for scripts; exit 1 when the contract refuses, 2 on usage, 3
when the network cannot be reached.

    currency network init          the central bank's network (its validators, the operators as members)
    currency propose|approve|reject  officers: issue, redeem, add-operator, quota, reserve, config (maker-checker)
    currency open|load|tier|freeze|unfreeze|settle|reclaim   an operator's steps
    currency wallet keygen|show|history|pay|request|unload|close|fund-device|voucher|accept   a holder's
    currency disclose request|approve|show     the regulator
    currency audit supply|export|aml          the auditor
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pilotchain.apps.currency.holders import (
    holder_app,
    holders_app,
    payment_request,
    read_payment_request,
)

__all__ = ["app", "parse_yuan"]

app = typer.Typer(help="The digital currency: issuance, wallets, payments, offline vouchers, disclosure, audit.",
                  no_args_is_help=True)
network_app = typer.Typer(help="The currency network (the central bank runs its validators).", no_args_is_help=True)
wallet_app = typer.Typer(help="A holder's wallet: the holder's own key signs; the operator submits.",
                         no_args_is_help=True)
disclose_app = typer.Typer(help="The regulator: lawful disclosure of a wallet's holder.", no_args_is_help=True)
audit_app = typer.Typer(help="The auditor: supply at any height, history export, AML rules in SQL.",
                        no_args_is_help=True)
app.add_typer(network_app, name="network")
app.add_typer(wallet_app, name="wallet")
app.add_typer(disclose_app, name="disclose")
app.add_typer(audit_app, name="audit")
app.add_typer(holders_app, name="holders")
app.add_typer(holder_app, name="holder")

_out = Console()
_err = Console(stderr=True)
_YUAN_RE = re.compile(r"^(\d{1,13})(?:\.(\d{1,2}))?\Z")

IdentityOption = Annotated[Path | None, typer.Option("--identity", "-i", envvar="PILOTCHAIN_IDENTITY",
                                                     help="Your member identity (an officer's, an operator's client).")]
NetworkOption = Annotated[Path | None, typer.Option("--network", envvar="PILOTCHAIN_NETWORK",
                                                   help="A currency network folder.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
KeyOption = Annotated[Path, typer.Option("--key", help="The holder's own key file (currency wallet keygen).")]


def parse_yuan(text: str) -> int:
    """``"12.5"`` -> 1250 fen; refuses negatives, more than two decimals and anything else."""
    match = _YUAN_RE.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r}: an amount in yuan with at most two decimals, e.g. 12.50")
    whole, cents = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(cents)


def _fail(message: str, code: int = 1) -> None:
    _err.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def _emit(document: Any, as_json: bool, text: str) -> None:
    if as_json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=_jsonable))
    else:
        _out.print(text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def _identity(identity: Path | None, network: Path | None) -> Any:
    from pilotchain.sdk import Identity
    from pilotchain.sdk._network import folder_identity

    path = identity or (folder_identity(network) if network is not None else None)
    if path is None:
        _fail("say who you are: --identity FILE (or PILOTCHAIN_IDENTITY, or --network DIR)", 2)
    return Identity.load(path)  # type: ignore[arg-type]


def _currency(identity: Path | None, network: Path | None) -> Any:
    from pilotchain.apps.currency.client import CurrencyClient
    from pilotchain.cli.client_cmd import connect

    who = _identity(identity, network)
    return CurrencyClient(connect(None, network, None, timeout=60.0, identity=who), who)


def _run(call: Any) -> Any:
    from pilotchain.apps.currency.audit import AuditError
    from pilotchain.apps.currency.client import CurrencyError
    from pilotchain.apps.currency.offline import VoucherError
    from pilotchain.apps.currency.statements import StatementError
    from pilotchain.sdk import PilotchainError

    try:
        return call()
    except (CurrencyError, VoucherError, StatementError, AuditError) as exc:
        _fail(str(exc))
    except PilotchainError as exc:
        _fail(str(exc), 3)


def _suite(network: Path | None, fallback: str = "intl") -> str:
    if network is not None and (network / "network.json").is_file():
        return str(json.loads((network / "network.json").read_text())["suite"])
    return fallback


def _key(path: Path, network: Path | None) -> Any:
    from pilotchain.apps.currency.client import HolderKey

    try:
        return HolderKey.load(path, _suite(network))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the key {path}: {exc}", 2)


def _yuan(fen: int | None) -> str:
    from pilotchain.apps.currency.story import yuan

    return "no limit" if fen is None else yuan(fen)


# ------------------------------------------------------------------------------ the network

@network_app.command("init")
def network_init(
    directory: Annotated[Path, typer.Option("--dir", help="Folder for the currency network.")] = Path("net-cny"),
    operators: Annotated[str, typer.Option(help="Comma list of operator ids (id or id=Display Name).")] = "bank-a,bank-b",
    validators: Annotated[int, typer.Option(help="Validators, all the central bank's.")] = 4,
    crypto: Annotated[str, typer.Option("--crypto", help="intl or gm.")] = "intl",
    base_port: Annotated[int, typer.Option(help="Node i uses base+2i (P2P) and base+2i+1 (gateway).")] = 27600,
    quota: Annotated[str, typer.Option(help="Each operator's quota (and reserve), in yuan.")] = "100000000",
    json_output: JsonOption = False,
) -> None:
    """The central bank's currency network: its validators, the operators as members, two officers
    (maker and checker), an auditor; `pilotchain network up --dir DIR` starts and founds it."""
    from pilotchain.apps.currency.network import init_currency_network
    from pilotchain.network.consortium import parse_orgs
    from pilotchain.node.config import NodeConfigError

    try:
        manifest = init_currency_network(directory, operators=parse_orgs(operators), validators=validators,
                                         suite_name=crypto, base_port=base_port, now_ms=int(time.time() * 1000),
                                         quota=parse_yuan(quota))
    except NodeConfigError as exc:
        _fail(str(exc), 2)
        return
    _emit(manifest, json_output,
          f"currency network {manifest['chain_id']} ({manifest['suite']}) in {directory}: validators "
          + ", ".join(n["name"] for n in manifest["nodes"]) + "; operators " + operators
          + f"\nofficers: {directory}/orgs/central-bank/officer-1.id, officer-2.id; auditor: "
          f"{directory}/orgs/central-bank/auditor.id\nnext: pilotchain network up --dir {directory}")


# ------------------------------------------------------------------------------ officers

ACTIONS = {"issue": "issue", "redeem": "redeem", "add-operator": "add_operator", "quota": "set_quota",
           "reserve": "set_reserve", "config": "set_config"}


@app.command("propose")
def propose(
    action: Annotated[str, typer.Argument(help="issue, redeem, add-operator, quota, reserve or config.")],
    operator: Annotated[str | None, typer.Argument(help="The operator (not for config).")] = None,
    amount: Annotated[str | None, typer.Argument(help="Yuan (issue, redeem, quota, reserve, add-operator's quota).")] = None,
    changes: Annotated[str | None, typer.Option(help="config: the changes as JSON (amounts in fen).")] = None,
    proposal_id: Annotated[str | None, typer.Option("--id", help="A proposal id (default: generated).")] = None,
    identity: IdentityOption = None, network: NetworkOption = None, json_output: JsonOption = False,
) -> None:
    """An officer of the central bank proposes; another officer approves (maker-checker)."""
    if action not in ACTIONS:
        _fail(f"action is one of {', '.join(ACTIONS)}", 2)
    args: dict[str, Any]
    if action == "config":
        if changes is None:
            _fail('config takes --changes \'{"large_value": 5000000}\'', 2)
        args = {"changes": json.loads(changes or "{}")}
    else:
        if operator is None or amount is None:
            _fail(f"{action} takes OPERATOR AMOUNT", 2)
        fen = parse_yuan(amount or "0")
        name = {"issue": "amount", "redeem": "amount", "quota": "quota", "reserve": "reserve"}.get(action)
        args = {"operator": operator, "quota": fen, "reserve": fen} if action == "add-operator" else \
            {"operator": operator, str(name): fen}
    client = _currency(identity, network)
    result = _run(lambda: client.propose(ACTIONS[action], args, proposal_id))
    _emit(result, json_output, f"proposed {result['id']} ({result['action']}) by {result['maker']}; another officer "
                               f"approves: pilotchain currency approve {result['id']}")


@app.command("approve")
def approve(proposal_id: str, identity: IdentityOption = None, network: NetworkOption = None,
            json_output: JsonOption = False) -> None:
    """The checker approves a proposal: it runs now (checked again against the rules in force)."""
    client = _currency(identity, network)
    result = _run(lambda: client.approve(proposal_id))
    _emit(result, json_output, f"{proposal_id}: executed ({result['action']}; maker {result['maker']}, "
                               f"checker {result['checker']})")


@app.command("reject")
def reject(proposal_id: str, reason: Annotated[str, typer.Option()] = "", identity: IdentityOption = None,
           network: NetworkOption = None) -> None:
    client = _currency(identity, network)
    _run(lambda: client.reject(proposal_id, reason))
    _out.print(f"{proposal_id}: rejected")


@app.command("operator")
def operator_show(org: str, identity: IdentityOption = None, network: NetworkOption = None,
                  json_output: JsonOption = False) -> None:
    """An operator's quota, reserve, issued, redeemed, vault and wallets."""
    client = _currency(identity, network)
    record = _run(lambda: client.operator(org))
    if record is None:
        _fail(f"{org} is not an authorised operator")
    outstanding = record["issued"] - record["redeemed"]
    _emit(record, json_output, f"{org}: vault {_yuan(record['vault'])}, outstanding {_yuan(outstanding)} of quota "
                               f"{_yuan(record['quota'])}, reserve {_yuan(record['reserve'])}, {record['wallets']} wallets")


# ------------------------------------------------------------------------------ operators

@app.command("open")
def open_wallet(
    wallet: str,
    key: Annotated[Path, typer.Option("--key", help="The holder's key file (the holder signs the opening here).")],
    kind: Annotated[str, typer.Option(help="personal, corporate or merchant.")] = "personal",
    tier: Annotated[int, typer.Option(help="1..4 for personal wallets, 0 otherwise.")] = 4,
    linked: Annotated[str, typer.Option(help="The linked bank account (tiers 1 and 2).")] = "",
    kyc: Annotated[str, typer.Option(help="The KYC record's payload id in your vault (policy currency).")] = "",
    identity: IdentityOption = None, network: NetworkOption = None, json_output: JsonOption = False,
) -> None:
    """An operator opens a wallet for a holder (the holder's device signs the opening with its key)."""
    client = _currency(identity, network)
    holder = _key(key, network)
    result = _run(lambda: client.open_wallet(wallet, holder, kind=kind, tier=tier, linked=linked, kyc=kyc))
    _emit(result, json_output, f"opened {wallet} ({kind}{f', tier {tier}' if kind == 'personal' else ''}) at "
                               f"{result['operator']}")


@app.command("load")
def load(wallet: str, amount: str, identity: IdentityOption = None, network: NetworkOption = None,
         json_output: JsonOption = False) -> None:
    """The operator converts a deposit into currency in the wallet (from its vault)."""
    client = _currency(identity, network)
    result = _run(lambda: client.load(wallet, parse_yuan(amount)))
    _emit(result, json_output, f"{wallet}: balance {_yuan(result['balance'])}")


@app.command("tier")
def tier(wallet: str, new_tier: int, linked: Annotated[str, typer.Option()] = "",
         kyc: Annotated[str, typer.Option()] = "", identity: IdentityOption = None,
         network: NetworkOption = None) -> None:
    """Re-KYC: upgrade or downgrade a personal wallet."""
    client = _currency(identity, network)
    _run(lambda: client.set_tier(wallet, new_tier, linked=linked, kyc=kyc))
    _out.print(f"{wallet}: tier {new_tier}")


@app.command("freeze")
def freeze(wallet: str, mode: Annotated[str, typer.Option(help="full or receive_only.")] = "full",
           reason: Annotated[str, typer.Option()] = "", identity: IdentityOption = None,
           network: NetworkOption = None) -> None:
    client = _currency(identity, network)
    _run(lambda: client.freeze(wallet, mode, reason))
    _out.print(f"{wallet}: frozen ({mode})")


@app.command("unfreeze")
def unfreeze(wallet: str, reason: Annotated[str, typer.Option()] = "", identity: IdentityOption = None,
             network: NetworkOption = None) -> None:
    client = _currency(identity, network)
    _run(lambda: client.unfreeze(wallet, reason))
    _out.print(f"{wallet}: active")


@app.command("settle")
def settle(payee: str, vouchers: Annotated[list[Path], typer.Argument(help="Voucher files the payee received.")],
           identity: IdentityOption = None, network: NetworkOption = None, json_output: JsonOption = False) -> None:
    """The payee's operator settles offline vouchers: one verdict each."""
    from pilotchain.apps.currency.offline import voucher_from_json

    client = _currency(identity, network)
    items = [_run(lambda path=path: voucher_from_json(path.read_text()))[0] for path in vouchers]
    results = _run(lambda: client.settle(payee, items))
    table = Table(title=f"vouchers settled for {payee}", title_justify="left")
    for column in ("device", "counter", "amount", "verdict"):
        table.add_column(column)
    for row in results:
        table.add_row(row["device"], str(row["counter"]), _yuan(row["amount"]), row["status"])
    if json_output:
        _emit(results, True, "")
    else:
        _out.print(table)


@app.command("reclaim")
def reclaim(device: str, identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """After a device's validity and grace period, return what it did not spend to its wallet."""
    client = _currency(identity, network)
    result = _run(lambda: client.offline_reclaim(device))
    _out.print(f"{device}: {_yuan(result['reclaimed'])} back in the wallet")


# ------------------------------------------------------------------------------ holders

@wallet_app.command("keygen")
def keygen(out: Annotated[Path, typer.Option("--out", help="Where to write the private key (0600).")],
           suite: Annotated[str, typer.Option(help="intl or gm: the network's suite.")] = "intl") -> None:
    """A holder's (or an offline device's) own key pair; prints the suggested pseudonymous wallet id."""
    from pilotchain.apps.currency.client import HolderKey, wallet_id_of

    key = HolderKey.generate(suite)
    key.save(out)
    _out.print(f"wrote {out}; public key {key.public_key.hex()}; a wallet id for it: {wallet_id_of(key)}")


@wallet_app.command("show")
def show(wallet: str, identity: IdentityOption = None, network: NetworkOption = None,
         json_output: JsonOption = False) -> None:
    """Balance, envelopes, held value and what is left of the limits today (Asia/Shanghai)."""
    client = _currency(identity, network)
    record = _run(lambda: client.wallet(wallet))
    if record is None:
        _fail(f"no wallet {wallet}")
    if json_output:
        _emit(record, True, "")
        return
    table = Table(title=f"wallet {wallet} ({record['kind']}{', tier ' + str(record['tier']) if record['kind'] == 'personal' else ''}"
                        f", {record['status']}, operator {record['operator']})", title_justify="left")
    table.add_column("")
    table.add_column("", justify="right")
    table.add_row("balance (own funds)", _yuan(record["balance"]))
    for campaign, value in record["envelopes"].items():
        table.add_row(f"red envelope {campaign}", _yuan(value))
    table.add_row("held (escrow, holds)", _yuan(record["held"]))
    table.add_row(f"left today ({record['today']})", _yuan(record["left"]["daily"]))
    table.add_row("left this year", _yuan(record["left"]["annual"]))
    table.add_row("single payment up to", _yuan(record["left"]["payment"]))
    table.add_row("room below the balance cap", _yuan(record["left"]["balance"]))
    _out.print(table)


@wallet_app.command("history")
def history(wallet: str, identity: IdentityOption = None, network: NetworkOption = None,
            json_output: JsonOption = False) -> None:
    """Every movement in or out of the wallet (read from the certified blocks)."""
    from pilotchain.apps.currency.audit import movements

    client = _currency(identity, network)
    head = _run(lambda: client.client.status().height)
    rows = []
    for height in range(1, head + 1):
        block = _run(lambda height=height: client.client.get_block(height))
        for move in movements(block):
            sides = (move.source, move.target)
            if any(side == f"wallet:{wallet}" or side.startswith(f"env:{wallet}:") or side == f"held:{wallet}"
                   for side in sides):
                rows.append(move)
    if json_output:
        _emit([dataclasses.asdict(m) for m in rows], True, "")
        return
    table = Table(title=f"history of {wallet}", title_justify="left")
    for column in ("#", "block", "kind", "from", "to", "amount"):
        table.add_column(column)
    for move in rows:
        table.add_row(str(move.n), str(move.height), move.kind, move.source, move.target, _yuan(move.amount))
    _out.print(table)


@wallet_app.command("pay")
def pay(
    payer: Annotated[str, typer.Option("--from", help="Your wallet.")],
    key: KeyOption,
    payee: Annotated[str | None, typer.Option("--to", help="The payee's wallet.")] = None,
    amount: Annotated[str | None, typer.Argument(help="Yuan, e.g. 38.50.")] = None,
    request: Annotated[str | None, typer.Option(help="A payment request (currency wallet request) instead.")] = None,
    client_key: Annotated[str | None, typer.Option(help="An idempotency key: resubmitting it pays once.")] = None,
    identity: IdentityOption = None, network: NetworkOption = None, json_output: JsonOption = False,
) -> None:
    """Pay: the holder's key signs here; the operator's identity (-i) submits."""
    memo = ""
    if request is not None:
        try:
            payee, fen, memo = read_payment_request(request)
        except ValueError as exc:
            _fail(str(exc), 2)
            return
    else:
        if payee is None or amount is None:
            _fail("pay --to WALLET AMOUNT, or --request REQUEST", 2)
        fen = parse_yuan(amount or "0")
    client = _currency(identity, network)
    holder = _key(key, network)
    result = _run(lambda: client.pay(holder, payer, str(payee), fen, client_key, memo))
    _emit(result, json_output, f"paid {_yuan(result['amount'])} to {result['payee']} "
                               f"({_yuan(result['envelopes'])} from red envelopes); payment {result['id']}")


@wallet_app.command("request")
def request(to: Annotated[str, typer.Option("--to", help="Your wallet (the payee).")],
            amount: Annotated[str, typer.Argument(help="Yuan.")],
            memo: Annotated[str, typer.Option()] = "") -> None:
    """A payment request to show as text or a QR code; the payer pays it with `wallet pay --request`."""
    _out.print(_run(lambda: payment_request(to, parse_yuan(amount), memo)))


@wallet_app.command("unload")
def unload(wallet: str, amount: str, key: KeyOption, identity: IdentityOption = None,
           network: NetworkOption = None) -> None:
    """Back to a deposit at the operator."""
    client = _currency(identity, network)
    result = _run(lambda: client.unload(_key(key, network), wallet, parse_yuan(amount)))
    _out.print(f"{wallet}: balance {_yuan(result['balance'])}")


@wallet_app.command("close")
def close(wallet: str, key: KeyOption, to: Annotated[str, typer.Option(help="A wallet to sweep to (default: the "
                                                                      "linked bank account).")] = "",
          identity: IdentityOption = None, network: NetworkOption = None) -> None:
    client = _currency(identity, network)
    result = _run(lambda: client.close(_key(key, network), wallet, to))
    _out.print(f"{wallet}: closed; {_yuan(result['swept'])} swept to {result['to']}")


@wallet_app.command("fund-device")
def fund_device(wallet: str, amount: str, key: KeyOption,
                device: Annotated[str, typer.Option(help="The device's id.")],
                device_key: Annotated[Path, typer.Option(help="The device's key file (its public half is registered).")],
                state: Annotated[Path, typer.Option(help="The device's counter file (created).")],
                identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """Move funds into an offline device (a card, a phone's secure element)."""
    from pilotchain.apps.currency.offline import OfflineDevice

    client = _currency(identity, network)
    device_holder = _key(device_key, network)
    result = _run(lambda: client.offline_fund(_key(key, network), wallet, device, device_holder.public_key,
                                              parse_yuan(amount)))
    from pilotchain.apps.currency.offline import issue_device_certificate

    device_state = (OfflineDevice.load(state, device_holder) if state.exists()
                    else OfflineDevice(device, device_holder, client.chain_id, 0, state))
    recorded = _run(lambda: client.query("device", {"device_id": device}))
    device_state.certify(issue_device_certificate(client.identity, client.chain_id, recorded))
    _out.print(f"device {device}: {_yuan(result['balance'])} offline until {result['until_ms']} ms; "
               f"{client.identity.org}'s device certificate kept in {state}")


@wallet_app.command("voucher")
def voucher(amount: Annotated[str, typer.Argument(help="Yuan.")],
            to: Annotated[str, typer.Option("--to", help="The payee's wallet.")],
            device_key: Annotated[Path, typer.Option(help="The device's key file.")],
            state: Annotated[Path, typer.Option(help="The device's counter file.")],
            out: Annotated[Path, typer.Option("--out", help="Where to write the voucher.")],
            suite: Annotated[str, typer.Option(help="intl or gm.")] = "intl") -> None:
    """Offline: the device signs a counter-bound voucher (no network)."""
    from pilotchain.apps.currency.client import HolderKey
    from pilotchain.apps.currency.offline import OfflineDevice, voucher_to_json

    key = HolderKey.load(device_key, suite)
    device = OfflineDevice.load(state, key)
    made = device.voucher(to, parse_yuan(amount))
    out.write_text(voucher_to_json(made, key.public_key, device.certificate) + "\n")
    _out.print(f"voucher {device.device}#{made['counter']}: {_yuan(made['amount'])} to {to} -> {out}")


@wallet_app.command("accept")
def accept(path: Path,
           genesis: Annotated[Path, typer.Option(help="The currency network's genesis.json (the device keeps a "
                                                      "copy): the device certificate is checked against it.")]) -> None:
    """Offline: the payee's device checks a voucher — the device's signature and the operator's
    device certificate (funded on chain, within its balance and validity) — before handing over
    the goods."""
    from pilotchain.apps.currency.offline import check_voucher, voucher_from_json
    from pilotchain.node.config import NodeConfigError, load_genesis

    try:
        network_genesis = load_genesis(genesis)
    except NodeConfigError as exc:
        _fail(f"{exc}; give the currency network's genesis.json")
        raise  # (unreachable: _fail exits)
    item, device_key, certificate = _run(lambda: voucher_from_json(path.read_text()))
    _run(lambda: check_voucher(network_genesis.chain_id, item, device_key, network_genesis.suite,
                               certificate=certificate, genesis=network_genesis))
    certified = "" if certificate is None else (f"; device certified by {certificate.operator} for "
                                                f"{_yuan(certificate.balance)}")
    _out.print(f"[green]valid[/]: {_yuan(item['amount'])} from device {item['device']} (#{item['counter']}) to "
               f"{item['payee']}{certified}; settle it when online")


# ------------------------------------------------------------------------------ the regulator

@disclose_app.command("request")
def disclose_request(wallet: str, basis: Annotated[str, typer.Option(help="The legal basis.")],
                     reason: Annotated[str, typer.Option()] = "", identity: IdentityOption = None,
                     network: NetworkOption = None, json_output: JsonOption = False) -> None:
    client = _currency(identity, network)
    result = _run(lambda: client.disclosure_request(wallet, basis, reason))
    _emit(result, json_output, f"request {result['id']} filed; another officer approves: "
                               f"pilotchain currency disclose approve {result['id']}")


@disclose_app.command("approve")
def disclose_approve(request_id: str, identity: IdentityOption = None, network: NetworkOption = None,
                     json_output: JsonOption = False) -> None:
    client = _currency(identity, network)
    result = _run(lambda: client.disclosure_approve(request_id))
    follow = (f"; fetch it: pilotchain data fetch {result['kyc']} --purpose AML" if result["status"] == "approved" else "")
    _emit(result, json_output, f"{request_id}: {result['status']} — {result['rule']}{follow}")


# ------------------------------------------------------------------------------ the auditor

@audit_app.command("supply")
def audit_supply(height: Annotated[int | None, typer.Option(help="A past height (default: the head).")] = None,
                 identity: IdentityOption = None, network: NetworkOption = None,
                 json_output: JsonOption = False) -> None:
    """Replay the movement history to a height: issued − redeemed = Σ buckets; at the head, also
    against the contract's aggregates, history head and every bucket in state."""
    from pilotchain.apps.currency.audit import audit_chain

    client = _currency(identity, network)
    report = _run(lambda: audit_chain(client.client, height=height))
    if json_output:
        _emit(report, True, "")
        return
    table = Table(title=f"supply at block {report['height']}", title_justify="left")
    table.add_column("")
    table.add_column("", justify="right")
    for name in ("issued", "redeemed", "vaults", "wallets", "envelopes", "held", "offline"):
        table.add_row(name, _yuan(report[name]))
    table.add_row("balanced", "[green]yes[/]" if report["balanced"] else "[red]NO[/]")
    table.add_row("checked against state", "yes" if report["checked_against_state"] else "no (a past height)")
    _out.print(table)


@audit_app.command("export")
def audit_export(out: Annotated[Path, typer.Option("--out", help="Folder for moves.parquet and wallets.parquet.")],
                 identity: IdentityOption = None, network: NetworkOption = None) -> None:
    """The movement history as Parquet (for DuckDB here, Spark at scale)."""
    from pilotchain.apps.currency.analytics import export_history

    client = _currency(identity, network)
    result = _run(lambda: export_history(client.client, out))
    _out.print(f"{result['moves']:,} movements and {result['wallets']:,} wallets up to block {result['height']} -> {out}")


@audit_app.command("aml")
def audit_aml(directory: Annotated[Path, typer.Argument(help="An exported history folder.")],
              rule: Annotated[str, typer.Option(help="velocity, structuring, large_value or operator_flows.")] = "velocity",
              large_value: Annotated[str, typer.Option(help="Yuan.")] = "50000",
              velocity_per_day: Annotated[int, typer.Option()] = 50,
              structuring_margin_bp: Annotated[int, typer.Option()] = 1000,
              structuring_count: Annotated[int, typer.Option()] = 3,
              engine: Annotated[str, typer.Option(help="duckdb (this machine) or spark (the same SQL on "
                                                       "Apache Spark; needs pilotchain[spark] and Java).")] = "duckdb",
              master: Annotated[str, typer.Option(help="Spark's master: local[N], spark://HOST:PORT, yarn.")]
              = "local[2]",
              json_output: JsonOption = False) -> None:
    """Run an AML rule as SQL over an exported history (DuckDB here, or the same text on Spark)."""
    from pilotchain.apps.currency.analytics import (
        AML_QUERIES,
        Analytics,
        SparkAnalytics,
        SparkUnavailable,
    )

    if rule not in AML_QUERIES:
        _fail(f"rule is one of {', '.join(AML_QUERIES)}", 2)
    if engine not in ("duckdb", "spark"):
        _fail("engine is duckdb or spark", 2)
    try:
        opened = Analytics(directory) if engine == "duckdb" else SparkAnalytics(directory, master=master)
    except SparkUnavailable as exc:
        _fail(str(exc))
        raise
    with opened as analytics:
        rows = analytics.rule(rule, large_value=parse_yuan(large_value), velocity_per_day=velocity_per_day,
                              structuring_margin_bp=structuring_margin_bp, structuring_count=structuring_count)
    if json_output or not rows:
        _emit(rows, json_output, f"{rule}: nothing found")
        return
    table = Table(title=f"{rule}: {len(rows)} rows", title_justify="left")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    _out.print(table)

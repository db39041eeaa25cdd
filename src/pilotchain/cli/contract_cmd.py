"""`pilotchain contract ...`: deploy (as a governance proposal), approve, invoke and query Python
contracts. Mount with ``app.add_typer(contract_app, name="contract")``.

Deploying is a proposal of kind ``deploy_contract`` to the ``gov`` system contract, signed by an
organisation admin; it activates once the consortium's policy is met (``contract approve`` by
admins of other organisations). Upgrades take the same path with a higher ``--version``.

Tables by default, ``--json`` for scripts; ``--node``, ``--network`` and ``--expect-genesis`` as
for ``pilotchain tx`` (a node of another network is refused). Exit codes as for ``pilotchain tx``:
0 ok; 1 refused / failed / not found; 2 usage; 3 unreachable; 4 timed out; 5 another network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pilotchain.cli.client_cmd import (
    EXIT_REFUSED,
    EXIT_USAGE,
    GenesisOption,
    JsonOption,
    NetworkOption,
    NodeOption,
    TimeoutOption,
    _err,
    _fail,
    _out,
    _parse_args,
    _print_json,
    _print_tx,
    _run,
    _value_text,
    connect,
    tx_document,
)
from pilotchain.errors import InvariantBroken
from pilotchain.sdk import Client, TxResult, build_transaction
from pilotchain.sdk._identity import Identity
from pilotchain.sdk.wire import to_tagged_json

__all__ = ["app", "proposal_table", "sign_and_wait", "IdentityOption"]

app = typer.Typer(
    help="Python contracts: deploy and upgrade through governance, invoke, query.",
    no_args_is_help=True,
)

#: Source files larger than this are refused before anything is sent.
SOURCE_BYTES_MAX = 128 * 1024

IdentityOption = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        "-i",
        envvar="PILOTCHAIN_IDENTITY",
        help="Identity file that signs (env PILOTCHAIN_IDENTITY).",
    ),
]


def load_signer(identity: Path | None, *, admin: bool = False) -> Identity:
    if identity is None:
        example = "net/orgs/bank/admin.id" if admin else "net/orgs/bank/client.id"
        raise typer.BadParameter(
            f"say who signs, e.g. --identity {example}", param_hint="--identity"
        )
    signer = _run(lambda: Identity.load(identity))
    if admin and "admin" not in signer.roles:
        _fail(
            f"{identity} holds roles [{', '.join(signer.roles)}]; governance needs your organisation's "
            "admin identity (orgs/<org>/admin.id)",
            EXIT_USAGE,
        )
    return signer


def sign_and_wait(
    client: Client, signer: Identity, contract: str, method: str, args: Any, timeout: float
) -> TxResult:
    chain_id = _run(client.chain_id)
    tx = _run(lambda: build_transaction(signer, chain_id, contract, method, args))
    return _run(lambda: client.submit_and_wait(tx, timeout))


def proposal_table(documents: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("id", "kind", "summary", "approvals", "status"):
        table.add_column(column, overflow="fold")
    for document in documents:
        approvals = f"{len(document['approvals'])}/{document['needed']}: " + ", ".join(
            document["approvals"]
        )
        table.add_row(
            str(document["id"]),
            document["kind"],
            document["summary"],
            approvals,
            document["status"],
        )
    return table


def proposal_outcome(result: TxResult, as_json: bool, *, done: str = "activated") -> None:
    """Print what a governance transaction did to its proposal (``done`` names the effect when
    the policy was met); exit 1 when governance refused it."""
    if not result.ok:
        if not (result.receipt is not None):
            raise InvariantBroken('invariant broken: result.receipt is not None')
        if as_json:
            _print_json(tx_document(result))
        _fail(
            f"governance refused it ({result.receipt.status}): {result.receipt.message}",
            EXIT_REFUSED,
        )
    document = result.result
    if as_json:
        _print_json(document)
        return
    _out.print(proposal_table([document], f"proposal #{document['id']} (block {result.height})"))
    if document["status"] == "executed":
        _out.print(f"{done}: {document['summary']}")
    elif document["status"] == "open":
        still = document["needed"] - len(document["approvals"])
        _out.print(
            f"needs {still} more approval(s) ({document['policy']}); other organisations run: "
            f"pilotchain gov approve {document['id']} --identity orgs/<org>/admin.id"
        )


@app.command("deploy")
def deploy(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Contract source (.py).")],
    name: Annotated[str, typer.Option("--name", help="Contract name (lower-case identifier).")],
    version: Annotated[str, typer.Option("--version", help='Version, e.g. "1" or "1.2".')] = "1",
    init_json: Annotated[
        str | None,
        typer.Option("--init", help="Arguments for init() (or upgrade()) as JSON."),
    ] = None,
    permissions_json: Annotated[
        str | None,
        typer.Option(
            "--permissions",
            help='Who may call what, as JSON: {"mint": {"roles": ["admin"], "orgs": ["bank"]}, "*": {}}.',
        ),
    ] = None,
    identity: IdentityOption = None,
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Propose deploying (or upgrading) FILE as contract NAME; active once the policy is met."""
    signer = load_signer(identity, admin=True)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror}", param_hint="FILE") from exc
    if len(raw) > SOURCE_BYTES_MAX:
        raise typer.BadParameter(
            f"{file} is larger than {SOURCE_BYTES_MAX} bytes", param_hint="FILE"
        )
    try:
        code = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise typer.BadParameter(f"{file} is not UTF-8 text", param_hint="FILE") from exc
    permissions = _parse_args(permissions_json) if permissions_json is not None else {}
    payload = {
        "name": name,
        "version": version,
        "code": code,
        "code_hash": signer.suite.hash(code.encode("utf-8")),
        "init": _parse_args(init_json),
        "permissions": permissions,
    }
    with connect(node, network, expect_genesis, timeout=min(timeout, 30.0), identity=signer) as client:
        result = sign_and_wait(
            client,
            signer,
            "gov",
            "propose",
            {"kind": "deploy_contract", "payload": payload},
            timeout,
        )
    proposal_outcome(result, as_json)


def _find_deploy_proposal(client: Client, name: str, version: str) -> dict[str, Any]:
    documents = _run(lambda: client.query("gov", "list", {"status": "open", "limit": 256}))
    for document in documents:
        target = document.get("target", {})
        if (
            document["kind"] == "deploy_contract"
            and target.get("name") == name
            and target.get("version") == version
        ):
            return dict(document)
    _fail(
        f"no open proposal deploys {name} version {version}; list them with: pilotchain gov list --status open",
        EXIT_REFUSED,
    )


@app.command("approve")
def approve(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Contract name.")],
    version: Annotated[str, typer.Option("--version", help="The proposed version.")] = "1",
    identity: IdentityOption = None,
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Approve the open proposal that deploys NAME at --version (one vote per organisation)."""
    signer = load_signer(identity, admin=True)
    with connect(node, network, expect_genesis, timeout=min(timeout, 30.0), identity=signer) as client:
        document = _find_deploy_proposal(client, name, version)
        if not as_json:
            _err.print(
                f"approving #{document['id']}: {document['summary']} "
                f"(code hash {document['target'].get('code_hash', '?')})"
            )
        result = sign_and_wait(client, signer, "gov", "approve", {"id": document["id"]}, timeout)
    proposal_outcome(result, as_json)


@app.command("invoke")
def invoke(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Contract name.")],
    method: Annotated[str, typer.Argument(metavar="METHOD", help="Method name.")],
    args_json: Annotated[
        str | None,
        typer.Argument(
            metavar="[ARGS_JSON]", help='Arguments as JSON (bytes as {"$bytes": base64}).'
        ),
    ] = None,
    identity: IdentityOption = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until committed and show the receipt.")
    ] = False,
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Sign NAME.METHOD(ARGS_JSON) and submit it; --wait for the receipt."""
    args = _parse_args(args_json)
    signer = load_signer(identity)
    with connect(node, network, expect_genesis, timeout=min(timeout, 30.0), identity=signer) as client:
        chain_id = _run(client.chain_id)
        tx = _run(lambda: build_transaction(signer, chain_id, name, method, args))
        if not wait:
            tx_id = _run(lambda: client.submit(tx))
            if as_json:
                _print_json({"tx_id": tx_id, "state": "pending"})
            else:
                _out.print(
                    f"submitted {tx_id} (pending); follow it with: pilotchain tx get {tx_id}"
                )
            return
        result = _run(lambda: client.submit_and_wait(tx, timeout))
    if as_json:
        _print_json(tx_document(result))
    else:
        _print_tx(result)
    if not result.ok:
        if not (result.receipt is not None):
            raise InvariantBroken('invariant broken: result.receipt is not None')
        _err.print(
            f"error: committed in block {result.height} but failed ({result.receipt.status}): "
            f"{result.receipt.message}"
        )
        raise typer.Exit(EXIT_REFUSED)


@app.command("query")
def query(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Contract name.")],
    method: Annotated[str, typer.Argument(metavar="METHOD", help="Method name.")],
    args_json: Annotated[
        str | None, typer.Argument(metavar="[ARGS_JSON]", help="Arguments as JSON.")
    ] = None,
    identity: IdentityOption = None,
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Read-only call of NAME.METHOD against the head state (no transaction)."""
    args = _parse_args(args_json)
    caller = _run(lambda: Identity.load(identity)) if identity is not None else None
    with connect(node, network, expect_genesis, timeout=timeout) as client:
        result = _run(lambda: client.query(name, method, args, caller=caller))
    if as_json:
        _print_json({"result": to_tagged_json(result)})
    else:
        _out.print(_value_text(result))


@app.command("info")
def info(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Contract name.")],
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Show a deployed contract: version, code hash, frozen or not, permissions."""
    with connect(node, network, expect_genesis, timeout=timeout) as client:
        document = _run(lambda: client.query("gov", "contract", {"name": name}))
    if document is None:
        _fail(
            f"no contract {name!r} is deployed; propose it with: pilotchain contract deploy FILE --name {name}",
            EXIT_REFUSED,
        )
    if as_json:
        _print_json(document)
        return
    table = Table(title=f"contract {name}", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("version", document["version"])
    table.add_row("versions", ", ".join(document["versions"]))
    table.add_row("code hash", document["code_hash"])
    table.add_row(
        "activated", f"block {document['activated_height']} (proposal #{document['proposal_id']})"
    )
    state = "frozen" + (f": {document['frozen_reason']}" if document["frozen_reason"] else "")
    table.add_row("state", state if document["frozen"] else "active")
    for method, rule in document["permissions"].items():
        table.add_row(f"may call {method}", _value_text(rule))
    _out.print(table)

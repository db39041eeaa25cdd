"""`pilotchain tx ...`, `pilotchain block ...`, `pilotchain status`: the SDK on the command line.

Mount with::

    app.add_typer(tx_app, name="tx")
    app.add_typer(block_app, name="block")
    app.command(name="status")(status)

Human tables by default, ``--json`` for scripts. Errors are one line on stderr saying what to
do next.

Which node, and which chain it must serve (the pin): ``--network DIR`` (or
``$PILOTCHAIN_NETWORK``) reads DIR/network.json — its first gateway unless ``--node`` is given,
and its genesis hash, which the node must serve; ``--expect-genesis HASH`` or
``--genesis genesis.json`` pins an explicit ``--node``. Without any of them, ``./pilot-network``
(the default folder of ``network init``) is used when it exists; otherwise ``--node`` defaults to
``$PILOTCHAIN_NODE``, else http://127.0.0.1:26601, unpinned (a warning says so). A node of another
chain is refused before anything is sent to it.

Exit codes: 0 ok; 1 refused, failed in execution, or not found (also: a proof did not verify);
2 usage (bad arguments, unusable identity, network or genesis file); 3 the node is unreachable;
4 timed out waiting for a commit (the transaction may still commit); 5 the node serves another
network than the pinned one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from pilotchain.errors import InvariantBroken
from pilotchain.sdk import (
    DEFAULT_NODE_URL,
    NETWORK_ENV,
    NODE_URL_ENV,
    ApiError,
    BlockInfo,
    Client,
    IdentityError,
    NetworkFileError,
    NetworkPin,
    NodeInfo,
    NotFound,
    PilotchainError,
    ProofError,
    ResponseError,
    SignedRequests,
    TimeoutError,
    TransportError,
    TxRejectedError,
    TxResult,
    WrongNetwork,
    build_transaction,
    load_genesis_pin,
    load_network,
    pin_of,
)
from pilotchain.sdk._identity import Identity
from pilotchain.sdk.wire import WireError, b64, from_tagged_json, header_to_json, to_tagged_json

__all__ = [
    "tx_app",
    "block_app",
    "status",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "EXIT_UNREACHABLE",
    "EXIT_TIMEOUT",
    "EXIT_WRONG_NETWORK",
    "NetworkOption",
    "GenesisOption",
    "connect",
]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_TIMEOUT = 4
EXIT_WRONG_NETWORK = 5

#: ``network init``'s default folder: used as the pin when nothing else names a node or network
DEFAULT_NETWORK_DIR = Path("pilot-network")

tx_app = typer.Typer(help="Submit signed transactions and look them up.", no_args_is_help=True)
block_app = typer.Typer(help="Read committed blocks.", no_args_is_help=True)

# markup off: contract values and messages may contain "[...]", which must print as is
_out = Console(highlight=False, markup=False)
_err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)

NodeOption = Annotated[
    str | None,
    typer.Option(
        "--node",
        envvar=NODE_URL_ENV,
        help=f"Gateway URL of a node (env {NODE_URL_ENV}; default: the --network's first gateway, "
        f"else {DEFAULT_NODE_URL}).",
        show_default=False,
    ),
]
NetworkOption = Annotated[
    Path | None,
    typer.Option(
        "--network",
        envvar=NETWORK_ENV,
        help=f"Network folder (network.json, from `network init`): the node must serve its genesis; "
        f"its first gateway unless --node (env {NETWORK_ENV}; default ./pilot-network if it exists).",
        show_default=False,
    ),
]
GenesisOption = Annotated[
    str | None,
    typer.Option(
        "--expect-genesis",
        "--genesis",
        metavar="HASH|FILE",
        help="The genesis hash (hex) or genesis.json the node must serve; refuses another network.",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the node.")
]

T = TypeVar("T")


def _fail(message: str, code: int) -> NoReturn:
    _err.print(f"error: {message}")
    raise typer.Exit(code)


def _run(call: Callable[[], T]) -> T:
    """Run an SDK call, turning its errors into one line and an exit code."""
    try:
        return call()
    except WrongNetwork as exc:
        _fail(str(exc), EXIT_WRONG_NETWORK)
    except NetworkFileError as exc:
        _fail(str(exc), EXIT_USAGE)
    except TransportError as exc:
        _fail(str(exc), EXIT_UNREACHABLE)
    except TimeoutError as exc:
        _fail(str(exc), EXIT_TIMEOUT)
    except TxRejectedError as exc:
        _fail(f"refused ({exc.code}): {exc.message}", EXIT_REFUSED)
    except NotFound as exc:
        _fail(exc.message, EXIT_REFUSED)
    except ProofError as exc:
        _fail(f"{exc}; try another node", EXIT_REFUSED)
    except ResponseError as exc:
        _fail(f"{exc}", EXIT_UNREACHABLE)
    except ApiError as exc:
        _fail(f"the node answered {exc.status_code} {exc.code}: {exc.message}", EXIT_REFUSED)
    except IdentityError as exc:
        _fail(str(exc), EXIT_USAGE)
    except PilotchainError as exc:
        _fail(str(exc), EXIT_REFUSED)


def _pin(network: Path | None, expect_genesis: str | None) -> NetworkPin | None:
    pins: list[NetworkPin] = []
    if network is not None:
        pins.append(load_network(network))
    if expect_genesis is not None:
        text = expect_genesis.strip()
        looks_like_hash = len(text) >= 32 and all(c in "0123456789abcdefABCDEF" for c in text)
        pins.append(pin_of(text) if looks_like_hash else load_genesis_pin(text))
    if len(pins) == 2 and pins[1].genesis_hash != pins[0].genesis_hash:
        raise NetworkFileError(
            f"--expect-genesis {pins[1].genesis_hash} contradicts --network {network} ({pins[0].genesis_hash})"
        )
    return pins[0] if pins else None


def target(node: str | None, network: Path | None, expect_genesis: str | None) -> tuple[str, NetworkPin | None]:
    """The node URL and the pin for these options (see the module docstring)."""
    if node is None and network is None and expect_genesis is None and (DEFAULT_NETWORK_DIR / "network.json").is_file():
        network = DEFAULT_NETWORK_DIR
    pin = _run(lambda: _pin(network, expect_genesis))
    if node is None and pin is not None and pin.gateway_urls:
        node = pin.gateway_urls[0]
    if node is None:
        node = DEFAULT_NODE_URL
        if pin is None:
            _err.print(
                f"warning: not pinned to a network; whatever answers at {node} is trusted to be your chain "
                f"(pass --network DIR or set {NETWORK_ENV})"
            )
    return node, pin


def connect(
    node: str | None, network: Path | None, expect_genesis: str | None, *, timeout: float,
    identity: Identity | None = None,
) -> Client:
    """A client for these options, pinned when they name a network or a genesis, and signing its
    requests (the gateway answers consortium members only) as ``identity``, else the identity file
    ``$PILOTCHAIN_IDENTITY`` names, else the first organisation's client identity in the network
    folder (``network init``'s one-machine layout)."""
    url, pin = target(node, network, expect_genesis)
    reader = identity if identity is not None else _run(lambda: reader_identity(network))
    return Client(url, timeout=timeout, network=pin, identity=reader)


def reader_identity(network: Path | None) -> Identity | None:
    """The identity that signs a command's reads when none is named (see :func:`connect`)."""
    from pilotchain.network.processes import reader_identity as network_reader

    if network is None and (DEFAULT_NETWORK_DIR / "network.json").is_file():
        network = DEFAULT_NETWORK_DIR
    return network_reader(network)


def _print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _short(text: str | None, keep: int = 16) -> str:
    if not text:
        return "-"
    return text if len(text) <= keep + 1 else text[:keep] + "…"


def _value_text(value: Any) -> str:
    return json.dumps(to_tagged_json(value), ensure_ascii=False)


# ---------------------------------------------------------------------- documents for --json


def tx_document(result: TxResult) -> dict[str, Any]:
    document: dict[str, Any] = {"tx_id": result.tx_id, "state": result.state}
    if result.rejected:
        document.update(code=result.code, message=result.message)
    if result.committed:
        if not (result.receipt is not None and result.header is not None):
            raise InvariantBroken('invariant broken: result.receipt is not None and result.header is not None')
        document.update(
            height=result.height,
            index=result.index,
            block_hash=result.block_hash,
            contract=result.contract,
            method=result.method,
            signer_org=result.signer_org,
            status=result.status,
            message=result.receipt.message,
            result=to_tagged_json(result.result),
            events=[
                {"contract": e.contract, "name": e.name, "data": to_tagged_json(e.data)}
                for e in result.events
            ],
            verified=result.verified,
            header_trusted_from_node=True,
        )
    return document


def block_document(block: BlockInfo) -> dict[str, Any]:
    return {
        "height": block.height,
        "hash": block.hash,
        "header": header_to_json(block.header),
        "transactions": [
            {
                "tx_id": tx.tx_id,
                "signer_org": tx.signer_org,
                "signer_subject": tx.signer_subject,
                "contract": tx.contract,
                "method": tx.method,
                "args": to_tagged_json(tx.args),
                "status": receipt.status,
                "message": receipt.message,
            }
            for tx, receipt in zip(block.transactions, block.receipts, strict=True)
        ],
        "certificate": b64(block.certificate) if block.certificate is not None else None,
        "verified": block.verified,
    }


def status_document(info: NodeInfo) -> dict[str, Any]:
    return {
        "chain_id": info.chain_id,
        "node": info.node,
        "org": info.org,
        "suite": info.suite,
        "height": info.height,
        "last_block_hash": info.last_block_hash,
        "last_block_time_ms": info.last_block_time_ms,
        "state_root": info.state_root,
        "validators": list(info.validators),
        "genesis_hash": info.genesis_hash,
        "peers": info.peers,
        "mempool": {"size": info.mempool_size},
        "consensus": info.consensus,
        "syncing": info.syncing,
    }


# ---------------------------------------------------------------------- human output


def _print_tx(result: TxResult) -> None:
    table = Table(
        title=f"transaction {_short(result.tx_id)}", title_justify="left", show_header=False
    )
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("id", result.tx_id)
    table.add_row("state", result.state)
    if result.rejected:
        table.add_row("code", result.code or "-")
        table.add_row("reason", result.message or "-")
    if result.committed:
        if not (result.receipt is not None):
            raise InvariantBroken('invariant broken: result.receipt is not None')
        table.add_row(
            "block", f"{result.height} (index {result.index}, hash {_short(result.block_hash)})"
        )
        table.add_row("call", f"{result.contract}.{result.method}  by {result.signer_org or '?'}")
        table.add_row(
            "status",
            result.receipt.status
            + (f": {result.receipt.message}" if result.receipt.message else ""),
        )
        table.add_row("result", _value_text(result.result))
        for event in result.events:
            table.add_row("event", f"{event.contract}.{event.name} {_value_text(event.data)}")
        table.add_row(
            "proof",
            "verified against the block header (the header is trusted from the node)"
            if result.verified
            else "not checked",
        )
    _out.print(table)


def _print_block(block: BlockInfo) -> None:
    header = block.header
    summary = Table(title=f"block {block.height}", title_justify="left", show_header=False)
    summary.add_column("field")
    summary.add_column("value", overflow="fold")
    summary.add_row("hash", block.hash)
    summary.add_row("parent", header.parent_hash.hex())
    summary.add_row("time", _time(header.timestamp_ms))
    summary.add_row("proposer", header.proposer)
    summary.add_row("transactions", str(header.tx_count))
    summary.add_row("state root", header.state_root.hex())
    summary.add_row("certificate", "present" if block.certificate is not None else "none")
    summary.add_row("body", "matches the header" if block.verified else "not checked")
    _out.print(summary)
    if block.transactions:
        txs = Table(title="transactions", title_justify="left")
        for column in ("#", "id", "signer", "call", "status"):
            txs.add_column(column)
        for index, (tx, receipt) in enumerate(zip(block.transactions, block.receipts, strict=True)):
            signer = f"{tx.signer_org}/{tx.signer_subject}" if tx.signer_org else "?"
            txs.add_row(
                str(index), _short(tx.tx_id), signer, f"{tx.contract}.{tx.method}", receipt.status
            )
        _out.print(txs)


def _print_status(info: NodeInfo) -> None:
    table = Table(
        title=f"{info.chain_id} — node {info.node}", title_justify="left", show_header=False
    )
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("organisation", info.org or "-")
    table.add_row("crypto suite", info.suite)
    table.add_row("height", str(info.height))
    table.add_row(
        "last block", f"{_short(info.last_block_hash)} at {_time(info.last_block_time_ms)}"
    )
    table.add_row("state root", info.state_root)
    table.add_row("validators", ", ".join(info.validators))
    connected = sum(info.peers.values())
    table.add_row(
        "peers", f"{connected}/{len(info.peers)} connected" if info.peers else "none (single node)"
    )
    table.add_row("mempool", f"{info.mempool_size} waiting")
    table.add_row("syncing", "yes" if info.syncing else "no")
    table.add_row("genesis", info.genesis_hash)
    for key, value in info.consensus.items():
        if key == "halted":  # None or the reason it halted
            table.add_row("consensus halted", f"yes: {value}" if value else "no")
        else:
            table.add_row(f"consensus {key}", _human(value))
    _out.print(table)


def _human(value: Any) -> str:
    """A status value in words: yes/no, "none", "k: v, …" — never a Python repr."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{key} = {_human(item)}" for key, item in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(_human(item) for item in value) or "none"
    return str(value)


# ---------------------------------------------------------------------- commands


def _parse_args(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return from_tagged_json(json.loads(text))
    except ValueError as exc:  # json.JSONDecodeError and WireError are ValueErrors
        detail = str(exc) if isinstance(exc, WireError) else f"not JSON ({exc})"
        raise typer.BadParameter(
            f'{detail}; e.g. \'{{"key": "k", "value": 1}}\'', param_hint="ARGS_JSON"
        ) from exc


@tx_app.command("submit")
def submit(
    contract: Annotated[str, typer.Argument(metavar="CONTRACT", help="Contract name, e.g. kv.")],
    method: Annotated[str, typer.Argument(metavar="METHOD", help="Method name, e.g. put.")],
    args_json: Annotated[
        str | None,
        typer.Argument(
            metavar="[ARGS_JSON]",
            help='Arguments as JSON (bytes as {"$bytes": base64}); no floats.',
        ),
    ] = None,
    identity: Annotated[
        Path | None,
        typer.Option(
            "--identity",
            "-i",
            envvar="PILOTCHAIN_IDENTITY",
            help="Identity file that signs (env PILOTCHAIN_IDENTITY).",
        ),
    ] = None,
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until committed and show the receipt.")
    ] = False,
    timeout: TimeoutOption = 30.0,
    expires_in_s: Annotated[
        int,
        typer.Option(
            "--expires-in", min=1, max=3600, help="Seconds until the transaction expires."
        ),
    ] = 300,
    as_json: JsonOption = False,
) -> None:
    """Sign CONTRACT.METHOD(ARGS_JSON) with --identity and submit it; --wait for the commit."""
    args = _parse_args(args_json)
    if identity is None:
        raise typer.BadParameter(
            "say who signs, e.g. --identity net/orgs/bank/client.id", param_hint="--identity"
        )
    signer = _run(lambda: Identity.load(identity))
    with connect(node, network, expect_genesis, timeout=min(timeout, 30.0), identity=signer) as client:
        chain_id = _run(client.chain_id)
        tx = _run(
            lambda: build_transaction(
                signer, chain_id, contract, method, args, expires_in_ms=expires_in_s * 1000
            )
        )
        if not wait:
            tx_id = _run(lambda: client.submit(tx))
            if as_json:
                _print_json({"tx_id": tx_id, "state": "pending"})
            else:
                _out.print(
                    f"submitted {tx_id} (pending); follow it with: pilotchain tx get {tx_id} --node {client.base_url}"
                )
            return
        if as_json:
            result = _run(lambda: client.submit_and_wait(tx, timeout))
        else:
            with _err.status(f"waiting for {_short(tx.tx_id)} to commit…", spinner="dots"):
                result = _run(lambda: client.submit_and_wait(tx, timeout))
    if as_json:
        _print_json(tx_document(result))
    else:
        _print_tx(result)
    if not result.ok:
        if not (result.receipt is not None):
            raise InvariantBroken('invariant broken: result.receipt is not None')
        _err.print(
            f"error: the transaction is in block {result.height} but failed ({result.receipt.status}): "
            f"{result.receipt.message}"
        )
        raise typer.Exit(EXIT_REFUSED)


@tx_app.command("get")
def get_tx(
    tx_id: Annotated[str, typer.Argument(metavar="TX_ID", help="Transaction id (hex).")],
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Show a transaction: pending, committed (receipt, verified proof) or rejected."""
    if len(tx_id) % 2 or any(c not in "0123456789abcdefABCDEF" for c in tx_id):
        raise typer.BadParameter(
            "transaction ids are hex, as `tx submit` prints them", param_hint="TX_ID"
        )
    with connect(node, network, expect_genesis, timeout=timeout) as client:
        result = _run(lambda: client.get_tx(tx_id.lower()))
    if as_json:
        _print_json(tx_document(result))
    else:
        _print_tx(result)
    if result.rejected or (result.committed and not result.ok):
        raise typer.Exit(EXIT_REFUSED)


@block_app.command("get")
def get_block(
    height: Annotated[
        str, typer.Argument(metavar="HEIGHT|latest", help="Block height, or latest.")
    ],
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Show a committed block: header, transactions and their status."""
    if height != "latest" and not height.isdigit():
        raise typer.BadParameter(
            "give a non-negative block height or 'latest'", param_hint="HEIGHT"
        )
    with connect(node, network, expect_genesis, timeout=timeout) as client:
        block = _run(lambda: client.get_block(int(height) if height.isdigit() else "latest"))
    if as_json:
        _print_json(block_document(block))
    else:
        _print_block(block)


@block_app.command("verify")
def verify_block(
    height: Annotated[int, typer.Argument(metavar="HEIGHT", help="Block height (1 or more).", min=1)],
    genesis: Annotated[Path, typer.Option("--genesis", help="the chain's genesis.json: the trust anchor")],
    node: NodeOption = None,
    network: NetworkOption = None,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Check a block's commit certificate: more than 2/3 of the validators in force at that
    height signed the consensus header that certifies exactly these block contents. No replay
    of consensus or execution; the validator set comes from genesis (and, after governance
    changes, from the chain's validator schedule)."""
    import httpx

    from pilotchain.crypto import get_suite
    from pilotchain.ledger.block import block_hash
    from pilotchain.ledger.commit import InvalidCertificate, verify_header_commit
    from pilotchain.node.config import NodeConfigError, load_genesis
    from pilotchain.sdk import BlockInfo, ProofError, ResponseError

    try:
        chain = load_genesis(genesis)
    except NodeConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    suite = get_suite(chain.suite)
    node, pin = target(node, network, str(genesis))
    reader = _run(lambda: reader_identity(network))
    with Client(node, timeout=timeout, network=pin, identity=reader) as pinned:
        _run(pinned.status)  # refuses a node of another network (a different genesis hash)
        signer = pinned.identity
        pinned_tls = pinned.tls_verify
    try:
        with httpx.Client(base_url=node, timeout=timeout, verify=pinned_tls,
                          auth=SignedRequests(signer) if signer is not None else None) as http:
            answer = http.get(f"/v1/blocks/{height}")
            if answer.status_code == 404:
                _fail(f"no block {height} on {node} yet", EXIT_REFUSED)
            answer.raise_for_status()
            document = answer.json()
            validators = http.post("/v1/query/gov/validators", json={"args": None}).json()
    except httpx.HTTPStatusError as exc:
        _fail(f"{node} refused: {exc.response.status_code} {exc.response.text[:300]}", EXIT_REFUSED)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {node}: {exc}; is the node running? try `pilotchain network status`", EXIT_UNREACHABLE)
    try:
        # the body (transactions you may not read come as their Merkle leaf hashes) against the header
        block = BlockInfo.from_json(document, suite, None)
    except (ProofError, ResponseError) as exc:
        _fail(f"the node sent a block that does not match its header: {exc}", EXIT_REFUSED)
    if block.header.chain_id != chain.chain_id:
        _fail(f"block {height} is from chain {block.header.chain_id!r}, the genesis is {chain.chain_id!r}", EXIT_REFUSED)
    if block.certificate is None:
        _fail(f"the node has no commit certificate for block {height} (a development node?)", EXIT_REFUSED)
    in_force = _validators_at(chain, validators, height)
    try:
        record = verify_header_commit(block.header, block.certificate, in_force, suite)
    except InvalidCertificate as exc:
        _fail(f"block {height}: the commit certificate does NOT verify: {exc}", EXIT_REFUSED)
    result: dict[str, Any] = {
        "height": height,
        "block_hash": block_hash(suite, block.header).hex(),
        "verified": True,
        "signers": len(record.certificate.signatures),
        "validators": [v.name for v in in_force],
        "round": record.certificate.round,
    }
    if as_json:
        _print_json(result)
    else:
        _out.print(f"block {height} is certified: {result['signers']} of {len(in_force)} validators "
                   f"signed it in round {result['round']} (hash {result['block_hash'][:16]}…)")


def _validators_at(genesis: Any, answer: Any, height: int) -> list[Any]:
    """The validator set in force at ``height``: genesis's, then the chain's schedule of changes.

    The schedule comes from the node; each change was itself approved in certified blocks, so an
    auditor who distrusts the node can verify those blocks first."""
    from pilotchain.ledger.genesis import ValidatorInfo
    from pilotchain.sdk.wire import from_tagged_json

    current = list(genesis.validators)
    result = answer.get("result") if isinstance(answer, dict) else None
    try:
        result = from_tagged_json(result)
        changes = sorted(result["history"], key=lambda change: change["effective_height"])
        for change in changes:
            if change["effective_height"] <= height:
                current = [ValidatorInfo(name=v["name"], org=v["org"], public_key=v["public_key"], power=v["power"])
                           for v in change["validators"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        _fail(f"the node's validator schedule is not readable ({exc}); is it a pilotchain node?", EXIT_REFUSED)
    return current


def status(
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Show a node's view of the chain: height, last block, validators, peers, mempool."""
    with connect(node, network, expect_genesis, timeout=timeout) as client:
        info = _run(client.status)
    if as_json:
        _print_json(status_document(info))
    else:
        _print_status(info)

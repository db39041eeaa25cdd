"""``pilotchain explorer --network DIR --org ORG [--port N]``: serve the console for one organisation.

It reads as the organisation's client identity from the ``network init`` folder (``--identity``
names another) against the organisation's own node (its first validator's gateway; the network's
first gateway when the organisation runs no validator). Mounted through ``pilotchain.commands``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from pilotchain.apps.explorer.index import Indexer
    from pilotchain.identity.records import Certificate
    from pilotchain.sdk import AsyncClient, Client

__all__ = ["app", "connect", "connect_async", "org_certificates"]

app = typer.Typer(help="The explorer and operations console: a web page per organisation, showing what it may read, proven.")
_err = Console(stderr=True)

DEFAULT_PORT = 26900


def connect(directory: Path, org: str, identity: Path | None = None) -> tuple[Client, str]:
    """A client signing as ``org``'s identity against ``org``'s node, and that node's URL."""
    from pilotchain.sdk import Client, Identity

    url, path = _node_of(directory, org, identity)
    return Client(url, network=directory, identity=Identity.load(path), timeout=30.0), url


def connect_async(directory: Path, org: str, identity: Path | None = None) -> AsyncClient:
    """:func:`connect`'s asynchronous twin (the live feed reads with it)."""
    from pilotchain.sdk import AsyncClient, Identity

    url, path = _node_of(directory, org, identity)
    return AsyncClient(url, network=directory, identity=Identity.load(path), timeout=30.0)


def org_certificates(directory: Path, org: str, extra: Path | None = None) -> list[Certificate]:
    """The certificates of ``org``'s identity files in the network folder (and of ``extra``), read
    without their private keys; a file that is not an identity file is passed over."""
    import json

    from pilotchain.codec import CodecError
    from pilotchain.identity.armor import dearmor
    from pilotchain.identity.records import Certificate

    paths = sorted((directory / "orgs" / org).glob("*.id")) + ([extra] if extra is not None else [])
    found: dict[tuple[str, int], Certificate] = {}
    for path in paths:
        try:
            certificate = dearmor(json.loads(path.read_text())["certificate"], Certificate)
        except (OSError, ValueError, KeyError, TypeError, CodecError):
            continue
        found[(certificate.org_id, certificate.serial)] = certificate
    return [found[key] for key in sorted(found)]


def _node_of(directory: Path, org: str, identity: Path | None) -> tuple[str, Path]:
    """``org``'s node's gateway URL and the identity file to sign with."""
    from pilotchain.network.consortium import load_manifest

    manifest = load_manifest(directory)
    entries = {entry["org"]: entry for entry in manifest["organizations"]}
    if org not in entries:
        raise typer.BadParameter(f"{org!r} is not an organisation of this network (it has {', '.join(entries)})",
                                 param_hint="--org")
    path = identity or directory / entries[org]["client_identity"]
    nodes = [node for node in manifest["nodes"] if node.get("org") == org] or manifest["nodes"]
    return str(nodes[0]["gateway_url"]), path


@app.callback(invoke_without_command=True)
def explorer(
    network: Annotated[Path, typer.Option("--network", envvar="PILOTCHAIN_NETWORK", help="A `pilotchain network init` folder.")],
    org: Annotated[str, typer.Option("--org", help="The organisation the console reads as.")],
    port: Annotated[int, typer.Option("--port", help="The port to serve on.")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option("--host", help="The address to serve on (default: this machine only).")] = "127.0.0.1",
    identity: Annotated[Path | None, typer.Option("--identity", "-i", help="Read as this identity file instead of "
                                                  "the organisation's client identity.")] = None,
    index_path: Annotated[Path | None, typer.Option("--index", help="The index file (transactions by signer and "
                                                    "contract, events by name); default <network>/explorers/<org>/index.sqlite.")] = None,
    no_index: Annotated[bool, typer.Option("--no-index", help="Keep no index (search by block and tx id only).")] = False,
    rebuild_index: Annotated[bool, typer.Option("--rebuild-index", help="Empty the index first; it is rebuilt from block 1.")] = False,
    index_only: Annotated[bool, typer.Option("--index-only", help="Bring the index up to the node's height, print "
                                             "how fast (blocks/s, tx/s) and exit instead of serving.")] = False,
) -> None:
    """Serve the explorer for ORG until interrupted."""
    import uvicorn

    from pilotchain.apps.explorer.index import ExplorerIndex, Indexer
    from pilotchain.apps.explorer.server import create_app
    from pilotchain.crypto import get_suite
    from pilotchain.node.config import load_genesis
    from pilotchain.sdk import PilotchainError

    client, node_url = connect(network, org, identity)
    try:
        status = client.status()
    except PilotchainError as exc:
        _err.print(f"[red]error:[/] {org}'s node at {node_url} does not answer ({exc}); is the network up "
                   f"(`pilotchain network up --dir {network}`)?")
        raise typer.Exit(1) from exc
    genesis = load_genesis(network / "genesis.json")
    indexer = None
    if not no_index:
        path = index_path or network / "explorers" / org / "index.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        store = ExplorerIndex(path, status.genesis_hash)
        if rebuild_index:
            store.reset()
        indexer = Indexer(store, client, get_suite(genesis.suite))
    try:
        if index_only:
            if indexer is None:
                raise typer.BadParameter("--index-only needs the index (leave out --no-index)", param_hint="--index-only")
            _index_and_report(indexer)
            return
        _err.print(f"explorer for [b]{org}[/] (node {node_url}) at http://{host}:{port}/")
        app = create_app(client, org, genesis, live=lambda: connect_async(network, org, identity),
                         identities=org_certificates(network, org, identity), index=indexer)
        # a page's live stream stays open: give them 5 s to end, then stop anyway
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        if indexer is not None:
            indexer.index.close()
        client.close()


def _index_and_report(indexer: Indexer) -> None:
    """Catch the index up with the node and print the rate (the figure docs/explorer.md records)."""
    from pilotchain.sdk import PilotchainError

    first = indexer.index.indexed_height() + 1
    try:
        run = indexer.catch_up()
    except PilotchainError as exc:
        _err.print(f"[red]error:[/] the node stopped answering while indexing ({exc}); run again to go on "
                   f"from block {indexer.index.indexed_height() + 1}")
        raise typer.Exit(1) from exc
    if run.blocks == 0:
        print(f"the index is at block {first - 1}, the node's height: nothing to index (index {indexer.index.path})")
        return
    print(f"indexed blocks {first}..{indexer.index.indexed_height()}: {run.blocks} blocks, {run.txs} transactions "
          f"in {run.seconds:.2f} s — {run.blocks_per_s:.1f} blocks/s, {run.txs_per_s:.1f} tx/s (index {indexer.index.path})")

"""`pilotchain network ...`: create a consortium, start, watch and stop its local nodes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from pilotchain.network.consortium import (
    add_node,
    init_network,
    load_manifest,
    parse_orgs,
)
from pilotchain.node.config import NodeConfigError

app = typer.Typer(help="Create a consortium and run its nodes (one OS process per node).", no_args_is_help=True)

_DIR = typer.Option(Path("./pilot-network"), "--dir", help="the network folder")


def _err(message: str) -> None:
    """One line on stderr, printed as is (paths and log lines may hold "[...]")."""
    Console(stderr=True, soft_wrap=True, highlight=False).print(message, markup=False)


def _fail(message: str) -> NoReturn:
    _err(f"error: {message}")
    raise typer.Exit(1)


@app.command()
def init(
    directory: Path = _DIR,
    orgs: str = typer.Option("default", help="'default' (the 7 pilot organisations), a number N, or a list 'bank,hospital=People''s Hospital'"),
    validators: int = typer.Option(4, help="validator nodes (4 tolerate 1 faulty, 7 tolerate 2)"),
    crypto: str = typer.Option("intl", "--crypto", help="intl (Ed25519/SHA-256/AES-GCM) or gm (SM2/SM3/SM4-GCM)"),
    chain_id: str = typer.Option("pilot-city", help="the chain's name"),
    host: str = typer.Option("127.0.0.1", help="address the nodes listen on (0.0.0.0 for all interfaces)"),
    advertise: str | None = typer.Option(None, help="address peers and clients use to reach the nodes (default: --host)"),
    base_port: int = typer.Option(26600, help="node i uses base+2i (P2P) and base+2i+1 (gateway)"),
    tls: bool = typer.Option(False, "--tls", help="gateways serve HTTPS: a network TLS CA (tls-ca.pem, which "
                             "clients trust through network.json) and a certificate per node"),
    validator_orgs: str | None = typer.Option(None, help="comma list: only these organisations run validators "
                                              "(default: all, in turn)"),
    json_output: bool = typer.Option(False, "--json", help="print the manifest as JSON"),
) -> None:
    """Create the consortium: a CA per organisation, identities, genesis, a home per node, network.json."""
    try:
        manifest = init_network(
            directory, orgs=parse_orgs(orgs), validators=validators, suite_name=crypto, chain_id=chain_id,
            host=host, advertise_host=advertise, base_port=base_port, now_ms=int(time.time() * 1000), tls=tls,
            validator_orgs=None if validator_orgs is None else [o.strip() for o in validator_orgs.split(",")],
        )
    except NodeConfigError as exc:
        _fail(str(exc))
        return
    if json_output:
        typer.echo(json.dumps(manifest, indent=2))
        return
    console = Console()
    table = Table(title=f"consortium {manifest['chain_id']} ({manifest['suite']}) in {directory}, "
                        f"genesis {manifest['genesis_hash'][:16]}…", title_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("node", "org", "p2p", "gateway URL"):
        table.add_column(column, overflow="fold")
    for node in manifest["nodes"]:
        table.add_row(node["name"], node["org"], node["p2p_addr"], node["gateway_url"])
    console.print(table)
    console.print(f"node homes (configuration, keys, ledger, node.log) under {directory}/nodes/<node>/")
    console.print(f"{len(manifest['organizations'])} organisations; admin and client identities under {directory}/orgs/<org>/")
    from pilotchain.network.processes import nodes_of, taken_ports

    busy = taken_ports(nodes_of(directory))
    if busy:
        Console(stderr=True).print(
            f"[yellow]warning:[/] port {busy[0].port}" + (f" and {len(busy) - 1} more" if len(busy) > 1 else "")
            + " of this network are in use now (another network?); `network up` will refuse to start. "
            f"Create it elsewhere with --base-port (e.g. {base_port + 1000}), below 32768.")
    console.print(f"next: [bold]pilotchain network up --dir {directory}[/]; then point commands at it: "
                  f"[bold]export PILOTCHAIN_NETWORK={directory}[/]")


def _status_rows(directory: Path, *, log_since: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """One row per node: up only when its gateway serves this network's genesis hash."""
    from pilotchain.network.processes import node_state, nodes_of, reader_identity, tls_verify

    genesis = str(load_manifest(directory)["genesis_hash"])
    reader = reader_identity(directory)  # the gateways answer members only; without one: liveness
    verify = tls_verify(directory)
    rows = []
    now_ms = int(time.time() * 1000)
    for node in nodes_of(directory):
        state = node_state(node, genesis, timeout_s=1.5, log_since=(log_since or {}).get(node.name, 0),
                           identity=reader, verify=verify)
        status = state.status
        row: dict[str, Any] = {"node": node.name, "org": node.org, "pid": state.pid, "gateway_url": node.gateway_url,
                               "up": state.up, "state": state.state, "reason": state.reason}
        if status is not None and "height" in status:
            row.update(
                height=int(status["height"]),
                last_block_hash=status["last_block_hash"],
                last_commit_age_ms=max(0, now_ms - int(status["last_block_time_ms"])),
                peers_connected=sum(1 for ok in status.get("peers", {}).values() if ok),
                peers_total=len(status.get("peers", {})),
                mempool=status.get("mempool", {}).get("size"),
                syncing=bool(status.get("syncing")),
            )
        rows.append(row)
    top = max((row.get("height", -1) for row in rows), default=-1)
    for row in rows:
        row["lag"] = top - row["height"] if "height" in row else None
    return rows


_STATE_STYLE = {"up": "green", "syncing": "yellow", "starting": "yellow", "down": "red"}


def _print_rows(rows: list[dict[str, Any]], title: str, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    # node names and URLs keep their full width (never cut); the short columns fold if they must
    table.add_column("node", min_width=max((len(row["node"]) for row in rows), default=4))
    for column in ("height", "peers", "commit", "state"):
        table.add_column(column, overflow="fold")
    table.add_column("gateway URL", overflow="fold")
    for row in rows:
        state = f"[{_STATE_STYLE.get(row['state'], 'red')}]{row['state']}[/]"
        if "height" in row:
            height = str(row["height"]) + (f" (-{row['lag']})" if row["lag"] else "")
            table.add_row(row["node"], height, f"{row['peers_connected']}/{row['peers_total']}",
                          f"{row['last_commit_age_ms'] / 1000:.1f}s ago", state, row["gateway_url"])
        else:
            table.add_row(row["node"], "-", "-", "-", state, row["gateway_url"])
    console.print(table)
    for row in rows:
        if row["reason"] and not row["up"]:
            console.print(f"{row['node']}: {row['state']}, {row['reason']}", markup=False, highlight=False)


def _port_conflicts(directory: Path, genesis: str) -> tuple[str | None, set[str]]:
    """What says which ports another program holds (None: none), and the nodes already serving
    this network (started outside `network up`, e.g. `pilotchain node start`)."""
    from pilotchain.network.processes import (
        PortTaken,
        node_state,
        nodes_of,
        taken_ports,
        tls_verify,
    )

    nodes = {node.name: node for node in nodes_of(directory)}
    conflicts: list[PortTaken] = []
    running: set[str] = set()
    for taken in taken_ports(list(nodes.values())):
        if taken.node in running:
            continue
        if node_state(nodes[taken.node], genesis, timeout_s=1.0, verify=tls_verify(directory)).up:
            running.add(taken.node)
            continue
        conflicts.append(taken)
    conflicts = [taken for taken in conflicts if taken.node not in running]
    if not conflicts:
        return None, running
    first = conflicts[0]
    more = f" and {len(conflicts) - 1} more of its ports ({', '.join(str(t.port) for t in conflicts[1:])})" \
        if len(conflicts) > 1 else ""
    return (f"port {first.port} on {first.host} ({first.kind} port of node {first.node}){more} "
            f"{'are' if more else 'is'} in use by another program"), running


@app.command()
def up(
    directory: Path = _DIR,
    timeout: float = typer.Option(120.0, help="seconds to wait for the first commit"),
    json_output: bool = typer.Option(False, "--json", help="print the status as JSON"),
    services: bool = typer.Option(True, "--services/--no-services",
                                  help="also start what installed applications run beside the network "
                                       "(a data-exchange vault per organisation)"),
) -> None:
    """Start every local node as its own process and wait until the network commits; then the
    applications' services (a data-exchange vault per organisation, unless --no-services).

    Refuses to start anything when another program holds one of the nodes' ports; after the
    start, every node must stay alive and its gateway serve this network's genesis hash."""
    from pilotchain.network.processes import log_size, node_pid, nodes_of, start_node

    try:
        nodes = nodes_of(directory)
        manifest = load_manifest(directory)
    except NodeConfigError as exc:
        _fail(str(exc))
        return
    genesis = str(manifest["genesis_hash"])
    conflict, running = _port_conflicts(directory, genesis)
    if conflict is not None:
        first_port = min(int(n["p2p_addr"].rpartition(":")[2]) for n in manifest["nodes"])
        _fail(f"{conflict}; nothing was started. Another network may be running there: stop it, or create "
              f"this one on free ports with `pilotchain network init --dir NEW_DIR --base-port N` (this one "
              f"uses {first_port}-{first_port + 2 * len(nodes) - 1}, 2 ports per node)")
    console = Console(stderr=json_output)
    offsets = {node.name: log_size(node) for node in nodes}
    for node in nodes:
        if node.name in running:
            console.print(f"{node.name} is already running (outside `network up`)")
            continue
        already = node_pid(node.home)
        if already is not None:
            console.print(f"{node.name} is already running (pid {already})")
            continue
        pid = start_node(node)
        console.print(f"started {node.name} (pid {pid}), logs in {node.home / 'node.log'}")
    deadline = time.monotonic() + timeout
    rows = _status_rows(directory, log_since=offsets)
    with console.status("waiting for every node to serve this network and for a commit…"):
        while True:
            failed = [row for row in rows if row["state"] == "down"]
            committed = sum(1 for r in rows if r.get("height", 0) >= 1) * 3 > 2 * len(nodes)
            ready = committed and all(row["up"] for row in rows)
            if failed or ready or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
            rows = _status_rows(directory, log_since=offsets)
    if json_output:
        typer.echo(json.dumps({"chain_id": manifest["chain_id"], "genesis_hash": genesis, "committed": committed,
                               "ok": ready and not failed, "nodes": rows}, indent=2))
    else:
        _print_rows(rows, f"network {manifest['chain_id']} ({manifest['suite']})", console)
    if failed:
        for row in failed:
            _err(f"{row['node']} is down: {row['reason']}")
        _fail(f"{len(failed)} of {len(nodes)} nodes did not come up; the others keep running "
              f"(`pilotchain network down --dir {directory}` stops them)")
    if not ready:
        _fail(f"the network did not commit with every node up within {timeout:.0f}s; look at the node logs: "
              f"{directory}/nodes/*/node.log")
    if services:
        _services_up(directory, console)


def _services_up(directory: Path, console: Console) -> None:
    """Start what installed applications run beside the network (a vault per organisation...)."""
    from pilotchain.errors import CoreError
    from pilotchain.network.services import network_services

    for service in network_services():
        try:
            service.up(directory, console)
        except (CoreError, OSError) as exc:
            _fail(f"the {service.name} service did not start: {exc}; the network keeps running "
                  f"(`pilotchain network down --dir {directory}` stops it)")
        rows = service.status(directory)
        if rows:
            _print_service_rows(rows, console)


def _print_service_rows(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("service", min_width=max((len(row["name"]) for row in rows), default=7))
    table.add_column("state", overflow="fold")
    table.add_column("URL", overflow="fold")
    for row in rows:
        style = "green" if row["up"] else "red"
        table.add_row(row["name"], f"[{style}]{row['detail']}[/]", row["url"])
    console.print(table)


@app.command()
def status(
    directory: Path = _DIR,
    json_output: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Each node's height, peers, lag and last commit; a node is up only when its gateway serves
    this network's genesis hash (a dead process or another network's gateway is down, with the
    reason). Exit 1 when some node is not up."""
    try:
        rows = _status_rows(directory)
    except NodeConfigError as exc:
        _fail(str(exc))
        return
    from pilotchain.network.services import network_services

    services = [row for service in network_services() for row in service.status(directory)]
    if json_output:
        # one list: the nodes' rows, then a row per service (``"kind": "service"``)
        typer.echo(json.dumps(rows + [{"kind": "service", "node": row["name"], "state": "up" if row["up"] else "down",
                                       "reason": row["detail"], **row} for row in services], indent=2))
    else:
        _print_rows(rows, f"network in {directory}")
        if services:
            _print_service_rows(services, Console())
    if not all(row["up"] for row in rows) or not all(row["up"] for row in services):
        raise typer.Exit(1)


@app.command()
def down(
    directory: Path = _DIR,
    grace: float = typer.Option(15.0, help="seconds to wait after SIGTERM before SIGKILL"),
) -> None:
    """Stop every local node (SIGTERM, then SIGKILL after the grace period)."""
    from pilotchain.network.processes import nodes_of, stop_node

    try:
        nodes = nodes_of(directory)
    except NodeConfigError as exc:
        _fail(str(exc))
        return
    from pilotchain.network.services import network_services

    for service in network_services():
        service.down(directory, Console())
    for node in nodes:
        Console().print(f"{node.name}: {stop_node(node, grace_s=grace)}")


@app.command("add-node")
def add_node_command(
    directory: Path = _DIR,
    org: str = typer.Option(..., help="the organisation whose CA issues the node's validator identity"),
    host: str = typer.Option("127.0.0.1", help="address the node listens on"),
    advertise: str | None = typer.Option(None, help="address peers and clients use to reach it"),
    json_output: bool = typer.Option(False, "--json", help="print the node entry as JSON"),
) -> None:
    """Create a node home for ORG. It joins as an observer and syncs; it becomes a validator when
    governance approves `pilotchain gov propose add_validator` with its nodes/<name>/validator.json."""
    try:
        entry = add_node(directory, org=org, host=host, advertise_host=advertise, now_ms=int(time.time() * 1000))
    except NodeConfigError as exc:
        _fail(str(exc))
        return
    if json_output:
        typer.echo(json.dumps(entry, indent=2))
        return
    console = Console()
    console.print(f"created {entry['name']} ({entry['org']}) at {directory / entry['home']}: "
                  f"p2p {entry['p2p_addr']}, gateway {entry['gateway_url']}")
    console.print(f"start it: [bold]pilotchain network up --dir {directory}[/]; then propose it as a validator:\n"
                  f"  pilotchain gov propose add_validator \"$(cat {directory / entry['home'] / 'validator.json'})\" "
                  f"--identity {directory}/orgs/{org}/admin.id --network {directory}")

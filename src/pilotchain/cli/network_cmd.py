"""`pilotchain network ...`: create a consortium, start, watch and stop its local nodes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
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


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[red]error:[/] {message}")
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
    json_output: bool = typer.Option(False, "--json", help="print the manifest as JSON"),
) -> None:
    """Create the consortium: a CA per organisation, identities, genesis, a home per node, network.json."""
    try:
        manifest = init_network(
            directory, orgs=parse_orgs(orgs), validators=validators, suite_name=crypto, chain_id=chain_id,
            host=host, advertise_host=advertise, base_port=base_port, now_ms=int(time.time() * 1000),
        )
    except NodeConfigError as exc:
        _fail(str(exc))
        return
    if json_output:
        typer.echo(json.dumps(manifest, indent=2))
        return
    console = Console()
    table = Table(title=f"consortium {manifest['chain_id']} ({manifest['suite']}) in {directory}", title_justify="left")
    for column in ("node", "org", "p2p", "gateway", "home"):
        table.add_column(column)
    for node in manifest["nodes"]:
        table.add_row(node["name"], node["org"], node["p2p_addr"], node["gateway_url"], str(directory / node["home"]))
    console.print(table)
    console.print(f"{len(manifest['organizations'])} organisations; admin and client identities under {directory}/orgs/<org>/")
    console.print(f"next: [bold]pilotchain network up --dir {directory}[/]")


def _status_rows(directory: Path) -> list[dict[str, Any]]:
    from pilotchain.network.processes import node_pid, nodes_of, probe_status

    rows = []
    now_ms = int(time.time() * 1000)
    for node in nodes_of(directory):
        status = probe_status(node.gateway_url, timeout_s=1.5)
        pid = node_pid(node.home)
        row: dict[str, Any] = {"node": node.name, "org": node.org, "pid": pid, "gateway_url": node.gateway_url,
                               "up": status is not None}
        if status is not None:
            row.update(
                height=status["height"],
                last_block_hash=status["last_block_hash"],
                last_commit_age_ms=max(0, now_ms - int(status["last_block_time_ms"])),
                peers_connected=sum(1 for ok in status.get("peers", {}).values() if ok),
                peers_total=len(status.get("peers", {})),
                mempool=status.get("mempool", {}).get("size"),
                syncing=status.get("syncing"),
            )
        rows.append(row)
    top = max((row.get("height", -1) for row in rows), default=-1)
    for row in rows:
        row["lag"] = top - row["height"] if "height" in row else None
    return rows


def _print_rows(rows: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("node", "org", "height", "lag", "peers", "last commit", "gateway URL", "state"):
        table.add_column(column)
    for row in rows:
        if row["up"]:
            state = "[yellow]syncing[/]" if row.get("syncing") else "[green]up[/]"
            table.add_row(row["node"], row["org"], str(row["height"]), str(row["lag"]),
                          f"{row['peers_connected']}/{row['peers_total']}", f"{row['last_commit_age_ms'] / 1000:.1f}s ago",
                          row["gateway_url"], state)
        else:
            state = "[red]down[/]" if row["pid"] is None else "[yellow]starting[/]"
            table.add_row(row["node"], row["org"], "-", "-", "-", "-", row["gateway_url"], state)
    Console().print(table)


@app.command()
def up(
    directory: Path = _DIR,
    timeout: float = typer.Option(120.0, help="seconds to wait for the first commit"),
    json_output: bool = typer.Option(False, "--json", help="print the status as JSON"),
) -> None:
    """Start every local node as its own process and wait until the network commits."""
    from pilotchain.network.processes import nodes_of, start_node, wait_until

    try:
        nodes = nodes_of(directory)
    except NodeConfigError as exc:
        _fail(str(exc))
        return
    console = Console(stderr=json_output)
    for node in nodes:
        pid = start_node(node)
        console.print(f"started {node.name} (pid {pid}), logs in {node.home / 'node.log'}")
    manifest = load_manifest(directory)
    with console.status("waiting for the network to commit a block…"):
        committed = wait_until(
            lambda: sum(1 for r in _status_rows(directory) if r.get("height", 0) >= 1) * 3 > 2 * len(nodes),
            timeout_s=timeout, interval_s=0.5,
        )
    rows = _status_rows(directory)
    if json_output:
        typer.echo(json.dumps({"chain_id": manifest["chain_id"], "committed": committed, "nodes": rows}, indent=2))
    else:
        _print_rows(rows, f"network {manifest['chain_id']} ({manifest['suite']})")
    if not committed:
        Console(stderr=True).print(f"[red]no commit within {timeout:.0f}s[/]; look at the node logs: {directory}/nodes/*/node.log")
        raise typer.Exit(1)


@app.command()
def status(
    directory: Path = _DIR,
    json_output: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Each node's height, peers, lag and last commit."""
    try:
        rows = _status_rows(directory)
    except NodeConfigError as exc:
        _fail(str(exc))
        return
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
    else:
        _print_rows(rows, f"network in {directory}")


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
                  f"--identity {directory}/orgs/{org}/admin.id --node <gateway URL>")

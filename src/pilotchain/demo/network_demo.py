"""The multi-organisation demo: a consortium, 4 validator processes, a workload, a summary.

1. ``network init`` in a fresh folder (the pilot organisations, one CA each, identities, genesis),
   on ``--base-port`` if its 8 ports are free, else on the next free block below the ephemeral
   range (said on the console);
2. ``network up``: each validator as its own OS process, waits until every process is alive, its
   gateway serves *this* network's genesis hash and the first block is committed — a node that
   died (e.g. its port taken meanwhile) ends the demo with the last error line of its log;
3. a workload from every organisation's client identity: pre-signed kv transactions submitted
   through all gateways concurrently (clients pinned to the genesis hash), commit times taken
   from one node's event stream;
4. a summary: blocks, transactions, throughput, latency percentiles, and that every node reports
   the same block hash at every height and the same state root — only when every gateway serves
   this network's genesis;
5. keeps the network up (gateway URLs printed) until Ctrl-C, or stops with ``--exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pilotchain.network.consortium import NetworkError, init_network, load_manifest
from pilotchain.network.processes import (
    NodeProcess,
    free_port_block,
    node_state,
    nodes_of,
    port_is_free,
    probe_status,
    start_node,
    stop_node,
)
from pilotchain.sdk import (
    AsyncClient,
    Identity,
    PilotchainError,
    SignedRequests,
    TxRejectedError,
    build_transaction,
)

__all__ = ["DemoResult", "run_demo"]

#: signed transactions per submission request (each still signed by its own client key)
BATCH_TXS = 100
#: submission requests outstanding per gateway
BATCHES_IN_FLIGHT = 2


@dataclass
class DemoResult:
    chain_id: str
    suite: str
    transactions: int
    committed: int
    rejected: dict[str, int]
    seconds: float
    latencies_ms: list[float]
    blocks: int
    heights_agree: bool
    state_roots_agree: bool
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    gateways: dict[str, str] = field(default_factory=dict)
    #: why the demo stopped early (the network did not come up, or a gateway is another network's)
    failure: str | None = None

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _workload(nodes: list[NodeProcess], identities: list[Identity], chain_id: str, genesis: str,
                    count: int, progress: Progress) -> tuple[int, dict[str, int], list[float], float]:
    raws = [
        build_transaction(identities[i % len(identities)], chain_id, "kv", "put",
                          {"key": f"{identities[i % len(identities)].bundle.certificate.org_id}/reading-{i}", "value": i})
        for i in range(count)
    ]
    submitted_at: dict[str, float] = {}
    committed_at: dict[str, float] = {}
    rejected: dict[str, int] = {}
    all_committed = asyncio.Event()
    sign_task = progress.add_task("committing", total=count)

    async def watch_commits() -> None:
        """Commit times from block events (one per block), the block's transaction ids fetched."""
        async with AsyncClient(nodes[0].gateway_url, timeout=60.0, expected_genesis=genesis,
                               identity=identities[0]) as client:
            async for event in client.subscribe(["block"]):
                seen_at = time.perf_counter()
                if not event.data.get("tx_count"):
                    continue
                block = await client.get_block(int(event.data["height"]))
                for tx in block.transactions:
                    if tx.tx_id in submitted_at and tx.tx_id not in committed_at:
                        committed_at[tx.tx_id] = seen_at
                        progress.advance(sign_task)
                if len(committed_at) + sum(rejected.values()) >= count:
                    all_committed.set()
                    return

    watcher = asyncio.create_task(watch_commits())
    await asyncio.sleep(0.3)  # let the event stream attach before the first submission
    started = time.perf_counter()

    async def submit_through(node: NodeProcess, share: list[Any]) -> None:
        """Batches of BATCH_TXS signed transactions, BATCHES_IN_FLIGHT outstanding per gateway."""
        limit = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        async with AsyncClient(node.gateway_url, timeout=60.0, expected_genesis=genesis,
                               identity=identities[0]) as client:
            await client.status()  # WrongNetwork before any transaction if it is another chain's gateway

            async def one(batch: list[Any]) -> None:
                async with limit:
                    sent_at = time.perf_counter()
                    for tx in batch:
                        submitted_at[tx.tx_id] = sent_at
                    results = await client.submit_many(batch)
                    for tx, result in zip(batch, results, strict=True):
                        if isinstance(result, TxRejectedError):
                            rejected[result.code] = rejected.get(result.code, 0) + 1
                            submitted_at.pop(tx.tx_id, None)
                            progress.advance(sign_task)
                    if len(committed_at) + sum(rejected.values()) >= count:
                        all_committed.set()

            await asyncio.gather(*(one(share[i:i + BATCH_TXS]) for i in range(0, len(share), BATCH_TXS)))

    shares = [raws[i::len(nodes)] for i in range(len(nodes))]
    await asyncio.gather(*(submit_through(node, share) for node, share in zip(nodes, shares, strict=True)))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_committed.wait(), timeout=max(60.0, count / 50))
    elapsed = time.perf_counter() - started
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await watcher
    latencies = [(committed_at[t] - submitted_at[t]) * 1000 for t in committed_at if t in submitted_at]
    return len(committed_at), rejected, latencies, elapsed


def _agreement(nodes: list[NodeProcess], genesis: str, reader: Identity) -> tuple[bool, bool, dict[str, tuple[int, str]], int]:
    """Every node's hash at every common height, and state roots at the common head — all
    False unless every gateway serves this network's genesis."""
    statuses = {node.name: probe_status(node.gateway_url, identity=reader) for node in nodes}
    heights = [int(s["height"]) for s in statuses.values() if s is not None and s.get("genesis_hash") == genesis]
    if len(heights) != len(nodes):
        return False, False, {}, 0
    common = min(heights)
    hashes_agree = True
    roots: set[str] = set()
    with httpx.Client(timeout=10.0, auth=SignedRequests(reader)) as http:
        for height in range(1, common + 1):
            seen = {http.get(f"{node.gateway_url}/v1/blocks/{height}").json()["hash"] for node in nodes}
            hashes_agree &= len(seen) == 1
        for node in nodes:
            roots.add(http.get(f"{node.gateway_url}/v1/blocks/{common}").json()["header"]["state_root"])
    heads = {name: (int(s["height"]), s["last_block_hash"]) for name, s in statuses.items() if s is not None}
    return hashes_agree, len(roots) == 1, heads, common


VALIDATORS = 4
#: seconds to wait for every node to serve this network and for the first commit
START_TIMEOUT_S = 120.0


def _free_base_port(base_port: int, console: Console) -> int:
    """``base_port`` if its ports are free, else the next free block (said on the console)."""
    count = 2 * VALIDATORS
    if all(port_is_free("127.0.0.1", port) for port in range(base_port, base_port + count)):
        return base_port
    try:
        base = free_port_block(count, start=base_port + count)
    except NetworkError:
        base = free_port_block(count, start=20_000)
    console.print(f"[yellow]ports {base_port}-{base_port + count - 1} are in use (another network?)[/]; "
                  f"this demo uses {base}-{base + count - 1}")
    return base


def _wait_for_network(nodes: list[NodeProcess], genesis: str, timeout_s: float, reader: Identity) -> str | None:
    """None once every node is alive, its gateway serves ``genesis`` and all have committed a
    block; otherwise what went wrong (a node that died: the last error line of its log)."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = {node.name: node_state(node, genesis, timeout_s=1.0, identity=reader) for node in nodes}
        dead = [f"{name}: {state.reason}" for name, state in states.items() if state.state == "down"]
        if dead:
            return "a validator did not come up: " + "; ".join(dead)
        if all(state.up and (state.status or {}).get("height", 0) >= 1 for state in states.values()):
            return None
        if time.monotonic() >= deadline:
            waiting = ", ".join(f"{name} ({state.state})" for name, state in states.items() if not state.up)
            return f"the network did not commit within {timeout_s:.0f} s (waiting for: {waiting or 'a block'})"
        time.sleep(0.3)


def run_demo(directory: Path, *, suite: str, transactions: int, base_port: int, console: Console) -> DemoResult:
    console.rule(f"[bold]pilotchain demo[/] — {suite} suite")
    manifest = init_network(directory, suite_name=suite, validators=VALIDATORS,
                            base_port=_free_base_port(base_port, console), now_ms=int(time.time() * 1000))
    genesis = str(manifest["genesis_hash"])
    console.print(f"consortium [bold]{manifest['chain_id']}[/]: {len(manifest['organizations'])} organisations "
                  f"({', '.join(o['org'] for o in manifest['organizations'])}), {VALIDATORS} validators; "
                  f"genesis {genesis[:16]}…; folder {directory}")
    nodes = nodes_of(directory)
    gateways = {n.name: n.gateway_url for n in nodes}

    def failed(reason: str) -> DemoResult:
        return DemoResult(chain_id=manifest["chain_id"], suite=suite, transactions=transactions, committed=0,
                          rejected={}, seconds=0.0, latencies_ms=[], blocks=0, heights_agree=False,
                          state_roots_agree=False, gateways=gateways, failure=reason)

    identities = [Identity.load(directory / org["client_identity"]) for org in manifest["organizations"]]
    for node in nodes:
        start_node(node)
    with console.status(f"starting {VALIDATORS} validator processes and waiting for the first commit…"):
        problem = _wait_for_network(nodes, genesis, START_TIMEOUT_S, identities[0])
    if problem is not None:
        return failed(problem)
    try:
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            committed, rejected, latencies, seconds = asyncio.run(
                _workload(nodes, identities, manifest["chain_id"], genesis, transactions, progress)
            )
    except PilotchainError as exc:
        return failed(f"the workload stopped: {exc}")
    hashes_agree, roots_agree, heads, common = _agreement(nodes, genesis, identities[0])
    return DemoResult(
        chain_id=manifest["chain_id"], suite=suite, transactions=transactions, committed=committed,
        rejected=rejected, seconds=seconds, latencies_ms=latencies, blocks=common,
        heights_agree=hashes_agree, state_roots_agree=roots_agree, heads=heads,
        gateways=gateways,
    )


def print_result(result: DemoResult, console: Console) -> None:
    if result.failure is not None:
        console.print("[red]error:[/] ", end="")
        console.print(result.failure, markup=False, highlight=False)
        return
    table = Table(title=f"{result.chain_id} ({result.suite})", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("transactions submitted", f"{result.transactions:,}")
    table.add_row("committed", f"{result.committed:,}")
    table.add_row("rejected", ", ".join(f"{k}: {v}" for k, v in result.rejected.items()) or "0")
    table.add_row("throughput (committed tx/s)", f"{result.committed / result.seconds:,.0f}" if result.seconds else "-")
    table.add_row("latency p50 / p95 / p99 (ms)",
                  f"{result.percentile_ms(0.5):,.0f} / {result.percentile_ms(0.95):,.0f} / {result.percentile_ms(0.99):,.0f}")
    table.add_row("blocks (common height)", f"{result.blocks:,}")
    table.add_row("same block hash at every height", "[green]yes[/]" if result.heights_agree else "[red]NO[/]")
    table.add_row("same state root", "[green]yes[/]" if result.state_roots_agree else "[red]NO[/]")
    console.print(table)
    gateways = Table(title="gateways", title_justify="left")
    gateways.add_column("node")
    gateways.add_column("height", justify="right")
    gateways.add_column("URL", overflow="fold")
    for name, url in result.gateways.items():
        gateways.add_row(name, str(result.heads.get(name, (0, ""))[0]), url)
    console.print(gateways)


def run_services(directory: Path, console: Console, scenario: str | None = None) -> str | None:
    """Start the installed applications' services beside the network (a data-exchange vault per
    organisation...) and run their demo stories (``scenario``: only that one); what went wrong,
    or None."""
    from pilotchain.errors import CoreError
    from pilotchain.network.services import demo_scenarios, network_services

    for service in network_services():
        try:
            service.up(directory, console)
        except (CoreError, OSError) as exc:
            return f"the {service.name} service failed: {exc}"
    stories = demo_scenarios()
    if scenario is not None and scenario not in stories:
        return f"no demo scenario {scenario!r}; installed: {', '.join(stories) or 'none'}"
    for name, story in stories.items():
        if scenario is not None and name != scenario:
            continue
        try:
            story(directory, console)
        except (CoreError, OSError) as exc:
            return f"the {name} scenario failed: {exc}"
    return None


def print_where_to_look(directory: Path, console: Console) -> None:
    """One table at the end: every node's gateway and every installed service's page (an explorer
    per organisation, vaults, holder services), with whether it answers."""
    from pilotchain.network.services import network_services

    table = Table(title="where to look", title_justify="left")
    table.add_column("what")
    table.add_column("URL")
    table.add_column("up")
    for node in nodes_of(directory):
        table.add_row(f"gateway {node.name}", node.gateway_url, "")
    for service in network_services():
        try:
            rows = service.status(directory)
        except Exception as exc:  # noqa: BLE001 - an application's status must not end the demo
            rows = [{"name": service.name, "url": "", "up": False, "detail": str(exc)}]
        for row in rows:
            table.add_row(str(row.get("name", service.name)), str(row.get("url", "")),
                          "[green]yes[/]" if row.get("up") else f"[red]no[/] {row.get('detail', '')}")
    console.print(table)
    console.print("the explorers are web pages: open one in a browser (each shows what its organisation may read); "
                  f"[bold]pilotchain network status --dir {directory}[/] prints this again")


def stop_all(directory: Path, console: Console) -> None:
    from pilotchain.network.services import network_services

    for service in network_services():
        service.down(directory, console)
    for node in nodes_of(directory):
        console.print(f"{node.name}: {stop_node(node)}")


def keep_running(directory: Path, console: Console) -> None:
    manifest = load_manifest(directory)
    console.print(f"the network keeps running; try [bold]pilotchain status --node {manifest['nodes'][0]['gateway_url']}[/] "
                  f"or [bold]pilotchain network status --dir {directory}[/]. Ctrl-C stops it.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping…")

"""Helpers for tests that run real node processes on loopback (free ports, always cleaned up)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from pilotchain.bench.network import free_port_block  # noqa: F401  (re-exported for the live tests)
from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.network.processes import (
    NodeProcess,
    nodes_of,
    probe_status,
    start_node,
    stop_node,
    wait_until,
)


@contextmanager
def running_network(directory: Path, *, suite: str = "intl", validators: int = 4) -> Iterator[list[NodeProcess]]:
    base = free_port_block(2 * validators)
    init_network(directory, suite_name=suite, validators=validators, orgs=parse_orgs("4"), base_port=base,
                 now_ms=int(time.time() * 1000))
    nodes = nodes_of(directory)
    try:
        for node in nodes:
            start_node(node)
        assert wait_until(lambda: all(height(n) >= 1 for n in nodes), timeout_s=90), logs(nodes)
        yield nodes
    finally:
        for node in nodes:
            stop_node(node, kill=True, grace_s=10)


def height(node: NodeProcess) -> int:
    status = probe_status(node.gateway_url, timeout_s=1.0)
    return -1 if status is None else int(status["height"])


def logs(nodes: list[NodeProcess], lines: int = 15) -> str:
    out = []
    for node in nodes:
        path = node.home / "node.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        out.append(f"--- {node.name}\n" + "\n".join(text))
    return "\n".join(out)


def block_hashes(node: NodeProcess, up_to: int) -> list[str]:
    with httpx.Client(base_url=node.gateway_url, timeout=10.0) as http:
        return [http.get(f"/v1/blocks/{h}").json()["hash"] for h in range(1, up_to + 1)]


def state_root_at(node: NodeProcess, at: int) -> str:
    with httpx.Client(base_url=node.gateway_url, timeout=10.0) as http:
        root: str = http.get(f"/v1/blocks/{at}").json()["header"]["state_root"]
        return root


def assert_agreement(nodes: list[NodeProcess]) -> int:
    """Every node has the same block hash at every common height and the same state root there."""
    common = min(height(n) for n in nodes)
    assert common >= 1
    reference = block_hashes(nodes[0], common)
    for node in nodes[1:]:
        assert block_hashes(node, common) == reference, f"{node.name} disagrees with {nodes[0].name}"
    assert len({state_root_at(n, common) for n in nodes}) == 1
    return common

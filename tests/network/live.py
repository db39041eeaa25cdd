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
    reader_identity,
    start_node,
    stop_node,
    wait_until,
)
from pilotchain.sdk import Identity, SignedRequests


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


def reader(node: NodeProcess) -> Identity | None:
    """The identity that signs reads for ``node``'s network (the gateways answer members only)."""
    return reader_identity(node.home.parent.parent)


def member_auth(node: NodeProcess, identity: Identity | None = None) -> SignedRequests:
    identity = identity or reader(node)
    if identity is None:
        raise AssertionError(f"no client identity in {node.home.parent.parent}")
    return SignedRequests(identity)


def height(node: NodeProcess, identity: Identity | None = None) -> int:
    """``node``'s height read as ``identity`` (default: its network folder's client identity)."""
    status = probe_status(node.gateway_url, timeout_s=1.0, identity=identity or reader(node))
    # None: not answering; no height: it answered only /healthz (e.g. still starting)
    return -1 if status is None or "height" not in status else int(status["height"])


def logs(nodes: list[NodeProcess], lines: int = 15) -> str:
    out = []
    for node in nodes:
        path = node.home / "node.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        out.append(f"--- {node.name}\n" + "\n".join(text))
    return "\n".join(out)


def block_hashes(node: NodeProcess, up_to: int, identity: Identity | None = None) -> list[str]:
    with httpx.Client(base_url=node.gateway_url, auth=member_auth(node, identity), timeout=10.0) as http:
        return [http.get(f"/v1/blocks/{h}").json()["hash"] for h in range(1, up_to + 1)]


def state_root_at(node: NodeProcess, at: int, identity: Identity | None = None) -> str:
    with httpx.Client(base_url=node.gateway_url, auth=member_auth(node, identity), timeout=10.0) as http:
        root: str = http.get(f"/v1/blocks/{at}").json()["header"]["state_root"]
        return root


def assert_agreement(nodes: list[NodeProcess], identity: Identity | None = None) -> int:
    """Every node has the same block hash at every common height and the same state root there."""
    common = min(height(n, identity) for n in nodes)
    assert common >= 1
    reference = block_hashes(nodes[0], common, identity)
    for node in nodes[1:]:
        assert block_hashes(node, common, identity) == reference, f"{node.name} disagrees with {nodes[0].name}"
    assert len({state_root_at(n, common, identity) for n in nodes}) == 1
    return common

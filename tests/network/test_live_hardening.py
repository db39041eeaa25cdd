"""A stranger cannot stop a validator through its gateway; readiness tells the truth.

Four validators as real processes on loopback (free ports, killed in a finally block). The test
process opens thousands of raw sockets to ONE node's gateway — idle ones and ones that never
finish their request head — from other loopback addresses (127.0.0.2, 127.0.0.3), while the
test's own client uses 127.0.0.1: the per-address bound refuses the excess, the header timeout
closes what was admitted, and the node keeps committing and serving. Waits are bounded waits on
conditions.
"""

from __future__ import annotations

import contextlib
import resource
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pilotchain.network.processes import NodeProcess, node_pid, stop_node, wait_until

from .live import height, logs, member_auth, running_network

pytestmark = [pytest.mark.timeout(300)]  # ~20 s here: not marked slow

IDLE_CONNECTIONS = 1_100
SLOW_HEADER_CONNECTIONS = 2_000
#: the test's sockets, the client's and some headroom
FDS_NEEDED = IDLE_CONNECTIONS + SLOW_HEADER_CONNECTIONS + 200


def _raise_own_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
    return host, int(port)


@contextlib.contextmanager
def _sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _open(target: tuple[str, int], source: str, count: int, first_bytes: bytes, into: list[socket.socket]) -> int:
    """Open ``count`` connections from ``source`` (each sends ``first_bytes``, if any); how many
    connected. A refused or reset one still counts against the server: it had to accept it."""
    connected = 0
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        into.append(sock)
        sock.settimeout(5.0)
        try:
            sock.bind((source, 0))
            sock.connect(target)
            connected += 1
            if first_bytes:
                sock.sendall(first_bytes)
        except OSError:
            continue
    return connected


def _get(node: NodeProcess, path: str) -> httpx.Response:
    return httpx.get(f"{node.gateway_url}{path}", timeout=5.0)


def _ready(node: NodeProcess) -> bool:
    try:
        return _get(node, "/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def test_gateway_flood_does_not_stop_the_validator_and_readiness_is_honest(tmp_path: Path) -> None:
    fd_limit = _raise_own_fd_limit()
    if fd_limit < FDS_NEEDED:
        pytest.skip(f"the hard file descriptor limit ({fd_limit}) is below the {FDS_NEEDED} this test opens; "
                    "raise it (ulimit -Hn) to run it")
    with running_network(tmp_path / "net") as nodes:
        # a healthy network is ready everywhere (a block committed since each node started)
        assert wait_until(lambda: all(_ready(n) for n in nodes), timeout_s=30), logs(nodes)
        document = _get(nodes[0], "/readyz").json()
        assert document["ready"] is True
        assert {c["name"] for c in document["checks"]} == {"running", "quorum_peers", "recent_commit", "in_sync"}

        victim = nodes[0]
        pid = node_pid(victim.home)
        assert pid is not None
        target = _host_port(victim.gateway_url)
        with _sockets() as opened:
            idle = _open(target, "127.0.0.2", IDLE_CONNECTIONS, b"", opened)
            slow = _open(target, "127.0.0.3", SLOW_HEADER_CONNECTIONS,
                         b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", opened)
            assert idle + slow > 0.5 * (IDLE_CONNECTIONS + SLOW_HEADER_CONNECTIONS), (idle, slow)

            # while the attacker holds its sockets: every node keeps committing...
            start = {n.name: height(n) for n in nodes}
            assert wait_until(lambda: all(height(n) >= start[n.name] + 3 for n in nodes), timeout_s=60), logs(nodes)
            # ...the attacked process is alive and still answers another client
            assert node_pid(victim.home) == pid
            status = httpx.get(f"{victim.gateway_url}/v1/status", timeout=5.0, auth=member_auth(victim))
            assert status.status_code == 200 and status.json()["height"] >= start[victim.name] + 3
            metrics = _get(victim, "/metrics").text
            assert 'pilotchain_gateway_refused_total{reason="ADDRESS_LIMIT"}' in metrics
            # the connections it admitted it closes once their request head is overdue
            assert wait_until(lambda: 'pilotchain_gateway_refused_total{reason="HEADER_TIMEOUT"}'
                              in _get(victim, "/metrics").text, timeout_s=30)
            assert _ready(victim), _get(victim, "/readyz").text
        assert node_pid(victim.home) == pid
        log = (victim.home / "node.log").read_text(errors="replace")
        assert "Too many open files" not in log
        # one line per refusal reason per 10 s, not one per connection
        assert log.count('"event": "gateway.refused"') < 50, log.count('"event": "gateway.refused"')

        # a node whose peers are all stopped is alive but not ready, and says why
        for peer in nodes[1:]:
            stop_node(peer, kill=True, grace_s=10)
        assert wait_until(lambda: _get(victim, "/readyz").status_code == 503, timeout_s=30), logs(nodes)
        document = _get(victim, "/readyz").json()
        assert document["code"] == "NOT_READY" and document["ready"] is False
        failed = {f["name"] for f in document["failed"]}
        assert "quorum_peers" in failed, document
        assert "0 peers connected" in next(f["detail"] for f in document["failed"] if f["name"] == "quorum_peers")
        assert _get(victim, "/healthz").status_code == 200  # liveness is not readiness

"""The gateway's bounds over real sockets (uvicorn in the test's loop) and readiness.

Every wait is a bounded wait on a condition; servers and nodes are closed in finally blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pilotchain.gateway import GatewayLimits, RateLimitFilter, create_app, serve
from pilotchain.gateway._limits import RateLimiter, json_nesting_ok
from pilotchain.gateway.server import GatewayServer, connections_max_for
from pilotchain.node.local import LocalNode
from pilotchain.testing import Consortium
from tests.gateway.helpers import WAIT_S_MAX, gateway, run
from tests.p2p.helpers import wait_until

JSON = {"content-type": "application/json"}
DEEP = 5_000


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    assert document["code"] == code, document
    assert document["message"]
    return document


@contextlib.asynccontextmanager
async def served(
    consortium: Consortium, data_dir: Path, limits: GatewayLimits | None = None
) -> AsyncIterator[tuple[LocalNode, GatewayServer]]:
    node = LocalNode.open(data_dir, consortium.genesis, name=consortium.validator)
    server: GatewayServer | None = None
    try:
        await node.start()
        server = await serve(create_app(node), "127.0.0.1", 0, limits=limits)
        yield node, server
    finally:
        if server is not None:
            await server.close()
        await node.close()


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (bounded by WAIT_S_MAX)."""
    data = b""
    async with asyncio.timeout(WAIT_S_MAX):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionError:
                return data
            if not chunk:
                return data
            data += chunk


async def _raw_request(port: int, head: bytes, body: bytes = b"", local: str | None = None) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(local, 0) if local else None
    )
    try:
        writer.write(head + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return await _read_until_closed(reader)
    finally:
        writer.close()


def _json_of(response: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response.split(b"\r\n\r\n", 1)[1])
    return document


# ---------------------------------------------------------------------- request bounds


def test_oversized_body_is_413_even_when_the_client_closes(consortium: Consortium, tmp_path: Path) -> None:
    """8 MiB to /v1/txs: 413 in the error shape, read by a client that sends everything first
    and asked to close (before, the server closed with the body unread: a connection reset)."""

    async def main() -> None:
        async with served(consortium, tmp_path / "d") as (_node, server):
            body = b"\x00" * (8 * 1024 * 1024)
            for connection in (b"close", b"keep-alive"):
                head = (b"POST /v1/txs HTTP/1.1\r\nHost: x\r\ncontent-type: application/octet-stream\r\n"
                        b"connection: " + connection + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n")
                response = await _raw_request(server.port, head, body)
                assert response.startswith(b"HTTP/1.1 413 "), response[:100]
                document = _json_of(response)
                assert document["code"] == "TOO_LARGE" and "limit" in document["message"]
            async with httpx.AsyncClient(base_url=server.url) as client:
                _error(await client.post("/v1/txs", content=body,
                                         headers={"content-type": "application/octet-stream"}), 413, "TOO_LARGE")
                assert (await client.get("/healthz")).status_code == 200

    run(main())


def test_deep_json_is_400_before_parsing(consortium: Consortium, tmp_path: Path) -> None:
    deep = b"[" * DEEP + b"]" * DEEP

    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (_node, client):
            for path, body in (
                ("/v1/query/kv/get", b'{"args": ' + deep + b"}"),
                ("/v1/txs", b'{"tx": ' + deep + b"}"),
                ("/v1/txs/batch", b'{"txs": [' + deep + b"]}"),
                ("/v1/query/kv/get", b'{"args": {"key": ' + b"[" * 200 + b"1" + b"]" * 200 + b"}}"),
            ):
                document = _error(await client.post(path, content=body, headers=JSON), 400, "BAD_REQUEST")
                assert "nests deeper" in document["message"], document
            # brackets inside strings are not nesting; a normal query still works
            fine = {"args": {"key": "[[[[" * 100, "value": [[[1]]]}}
            response = await client.post("/v1/query/kv/get", json=fine)
            assert response.status_code != 400 or "nests" not in response.text, response.text

    run(main())


@pytest.mark.parametrize(
    ("body", "depth_max", "ok"),
    [
        (b"1", 0, True), (b"[]", 1, True), (b"[[1]]", 1, False), (b"[[1]]", 2, True),
        (b'{"a": "[[[[[[["}', 1, True), (b'["\\"[[[["]', 1, True), (b'{"a": {"b": [1]}}', 2, False),
        (b'{"a": {"b": [1]}}', 3, True), (b"[" * DEEP + b"]" * DEEP, 128, False),
        (b"[" * 128 + b"]" * 128, 128, True), (b"[" * 129 + b"]" * 129, 128, False),
        (b'"\\', 0, True), (b"[[]", 1, False),
    ],
)
def test_json_nesting_is_measured_without_parsing(body: bytes, depth_max: int, ok: bool) -> None:
    assert json_nesting_ok(body, depth_max) is ok


@pytest.mark.timeout(60)
def test_json_nesting_scan_is_linear() -> None:
    """An unterminated string full of escaped quotes cannot make the scan quadratic: linear, it
    answers at once (~0.1 s); quadratic (300,000² steps of a backtracking pattern), it would run for
    hours and the test's timeout fails it — no timing is asserted."""
    assert json_nesting_ok(b'["' + b'\\"[' * 300_000, 8) in (True, False)


# ---------------------------------------------------------------------- connection bounds


def test_slow_request_head_is_closed(consortium: Consortium, tmp_path: Path) -> None:
    limits = GatewayLimits(header_timeout_s=0.3)

    async def main() -> None:
        async with served(consortium, tmp_path / "d", limits) as (_node, server):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
                await writer.drain()
                started = time.monotonic()
                assert await _read_until_closed(reader) == b""
                assert time.monotonic() - started < WAIT_S_MAX
            finally:
                writer.close()
            # an idle connection that sends nothing is closed the same way
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                assert await _read_until_closed(reader) == b""
            finally:
                writer.close()
            # a keep-alive connection gets the same time for each next request head
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo")
                await writer.drain()
                data = await _read_until_closed(reader)
                assert data.startswith(b"HTTP/1.1 200 ") and data.count(b"HTTP/1.1 ") == 1
            finally:
                writer.close()
            async with httpx.AsyncClient(base_url=server.url) as client:
                metrics = (await client.get("/metrics")).text
                assert 'pilotchain_gateway_refused_total{reason="HEADER_TIMEOUT"} 3.0' in metrics
                assert (await client.get("/healthz")).status_code == 200

    run(main())


def test_connections_per_address_are_bounded(
    consortium: Consortium, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limits = GatewayLimits(connections_per_address_max=3)
    excess = 20

    async def main() -> None:
        async with served(consortium, tmp_path / "d", limits) as (_node, server):
            held = [await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.2", 0))
                    for _ in range(3)]
            try:
                await wait_until(lambda: server.guard.open >= 3, "the server to see the connections", WAIT_S_MAX)
                for _ in range(excess):
                    response = await _raw_request(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                                                  local="127.0.0.2")
                    if response:  # the answer can race the close; when it arrives, it is this
                        assert response.startswith(b"HTTP/1.1 503 "), response
                        assert _json_of(response)["code"] == "UNAVAILABLE"
                # another address is served meanwhile
                async with httpx.AsyncClient(base_url=server.url) as client:
                    assert (await client.get("/healthz")).status_code == 200
                    metrics = (await client.get("/metrics")).text
                assert f'pilotchain_gateway_refused_total{{reason="ADDRESS_LIMIT"}} {excess}.0' in metrics
            finally:
                for _reader, writer in held:
                    writer.close()
            # slots free up when connections close
            await wait_until(lambda: not server.guard.per_address.get("127.0.0.2"),
                             "closed connections to be released", WAIT_S_MAX)
            response = await _raw_request(
                server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n", local="127.0.0.2")
            assert response.startswith(b"HTTP/1.1 200 ")

    with caplog.at_level(logging.WARNING, logger="pilotchain.gateway"):
        run(main())
    lines = [r for r in caplog.records if getattr(r, "event", None) == "gateway.refused"
             and getattr(r, "reason", None) == "ADDRESS_LIMIT"]
    assert len(lines) == 1, [r.getMessage() for r in lines]  # 20 refusals, one line per 10 s


def test_connection_bound_is_a_share_of_the_fd_limit() -> None:
    limits = GatewayLimits(connections_max=1024)
    assert connections_max_for(limits, 20_000) == 1024
    assert connections_max_for(limits, 1024) == 256
    assert connections_max_for(limits, None) == 1024


# ---------------------------------------------------------------------- rate-limited logs


def test_rate_limiter_counts_what_it_holds_back() -> None:
    limiter = RateLimiter(10.0, keys_max=2)
    assert limiter.check(("a",), 0.0) == 0
    assert [limiter.check(("a",), t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert limiter.check(("b",), 1.0) == 0
    assert limiter.check(("a",), 10.0) == 3
    assert limiter.check(("c",), 10.0) == 0 and limiter.check(("d",), 10.5) is None  # shared overflow key
    assert limiter.suppressed_total == 4


def test_p2p_refusals_log_one_line_per_reason_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    counted: list[tuple[str, str]] = []
    suppressed: list[int] = []
    logger = logging.getLogger("pilotchain.p2p.test-limits")
    limit = RateLimitFilter(frozenset({"p2p.refused", "p2p.dropped"}), 10.0,
                            on_record=lambda event, code: counted.append((event, code)),
                            on_suppressed=lambda: suppressed.append(1))
    logger.addFilter(limit)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            for _ in range(100):
                logger.warning("refused", extra={"event": "p2p.refused", "reason": "MALFORMED"})
                logger.warning("refused", extra={"event": "p2p.refused", "reason": "TIMEOUT"})
                logger.warning("dropped", extra={"event": "p2p.dropped", "reason": "HANDSHAKES_FULL"})
            logger.info("connected", extra={"event": "p2p.connected"})  # not limited
            # after the interval the next line says how many were not logged
            record = logger.makeRecord(logger.name, logging.WARNING, __file__, 0, "refused", (), None,
                                       extra={"event": "p2p.refused", "reason": "MALFORMED"})
            record.created += 11
            logger.handle(record)
    finally:
        logger.removeFilter(limit)
    messages = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert len(messages) == 5, messages
    assert messages[-1] == "refused (99 more like this in the last 10 s not logged)"
    assert len(counted) == 301 and counted.count(("p2p.refused", "MALFORMED")) == 101
    assert len(suppressed) == 297


# ---------------------------------------------------------------------- readiness


def test_readyz_on_a_local_node(consortium: Consortium, tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (node, client):
            response = await client.get("/readyz")
            document = _error(response, 503, "NOT_READY")
            assert document["ready"] is False
            assert [f["name"] for f in document["failed"]] == ["producing"]
            assert "start()" in document["failed"][0]["detail"]
            assert (await client.get("/healthz")).status_code == 200  # alive, just not producing

            await node.start()
            response = await client.get("/readyz")
            assert response.status_code == 200, response.text
            assert response.json()["ready"] is True
            assert {c["name"] for c in response.json()["checks"]} == {"open", "producing"}

            await node.close()
            document = _error(await client.get("/readyz"), 503, "NOT_READY")
            assert {f["name"] for f in document["failed"]} == {"open", "producing"}

    run(main())


def test_readyz_and_healthz_are_in_the_openapi_description(consortium: Consortium, tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (_node, client):
            paths = (await client.get("/openapi.json")).json()["paths"]
            assert "/readyz" in paths and "/healthz" in paths
            assert "Readiness" in paths["/readyz"]["get"]["summary"]

    run(main())

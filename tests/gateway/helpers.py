"""Shared fixtures for gateway tests: a consortium per suite, a LocalNode per test, an ASGI client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from pilotchain.gateway import GatewayOptions, create_app
from pilotchain.node.local import LocalNode
from pilotchain.sdk import Identity, SignedRequests, build_transaction
from pilotchain.testing import Consortium

T = TypeVar("T")

BASE_URL = "http://gateway.test"
#: Bound on condition waits in tests (seconds; a failure, not a pace).
WAIT_S_MAX = 10.0


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop (which runs I/O) until ``condition()`` holds; fail after WAIT_S_MAX."""
    deadline = time.monotonic() + WAIT_S_MAX
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {WAIT_S_MAX} s waiting for {what}")
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def gateway(
    consortium: Consortium,
    data_dir: Path,
    *,
    start: bool = False,
    options: GatewayOptions | None = None,
    **node_options: Any,
) -> AsyncIterator[tuple[LocalNode, httpx.AsyncClient]]:
    """A LocalNode (producer not started unless ``start``: tests call produce_block) and a client
    for its gateway over ASGITransport (no sockets)."""
    node = LocalNode.open(data_dir, consortium.genesis, name=consortium.validator, **node_options)
    try:
        if start:
            await node.start()
        app = create_app(node, options)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL, auth=SignedRequests(consortium.reader())
        ) as client:
            yield node, client
    finally:
        await node.close()


def signed(
    identity: Identity,
    consortium: Consortium,
    args: Any = None,
    *,
    method: str = "put",
    contract: str = "kv",
    **options: Any,
) -> tuple[bytes, str]:
    tx = build_transaction(
        identity,
        consortium.genesis.chain_id,
        contract,
        method,
        args if args is not None else {"key": "k", "value": 1},
        **options,
    )
    return tx.raw, tx.tx_id

"""Test your application against a real chain in-process — no network, no node to run.

A :class:`LocalChain` is a throw-away consortium (real CAs, identities and genesis), a
:class:`~pilotchain.node.local.LocalNode` with a real ledger and mempool that commits blocks as
transactions arrive, and the real gateway app — wired to the SDK through an in-process
transport. Synchronous code::

    from pilotchain.testing import local_chain

    def test_my_app() -> None:
        with local_chain(suite="intl", orgs=2) as chain:
            client = chain.client()                      # a pilotchain.sdk.Client, no sockets
            alice = chain.identity("bank")               # the bank's client identity
            result = client.invoke(alice, "kv", "put", {"key": "greeting", "value": "hello"})
            assert result.ok
            assert client.query("kv", "get", {"key": "greeting"}) == "hello"

Asynchronous code runs the node on the test's own event loop::

    async with async_local_chain() as chain:
        async with chain.client() as client:
            info = await client.status()

The sync chain runs its node on a background event-loop thread; ``chain.serve_http()`` also
starts a real HTTP server on a free port (for the CLI or other processes). In-process event
streams are buffered by the transport: pass ``limit=`` to ``subscribe`` (or serve over HTTP for
a live stream). Everything is cleaned up when the ``with`` block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from pilotchain.gateway import GatewayServer, create_app, serve
from pilotchain.ledger.genesis import Genesis
from pilotchain.network.consortium import init_network, load_genesis, parse_orgs
from pilotchain.node.local import LocalNode
from pilotchain.sdk._client import AsyncClient, Client
from pilotchain.sdk._identity import Identity

__all__ = [
    "Consortium",
    "create_consortium",
    "LocalChain",
    "AsyncLocalChain",
    "local_chain",
    "async_local_chain",
    "InProcessTransport",
    "IN_PROCESS_URL",
]

T = TypeVar("T")

#: The base URL in-process clients use (never resolved).
IN_PROCESS_URL = "http://pilotchain.local"
#: Bound on any one call into the background loop.
CALL_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Consortium:
    """The consortium folder ``network init`` wrote, with its identities loaded."""

    directory: Path
    genesis: Genesis
    #: org id -> that organisation's client identity
    clients: dict[str, Identity]
    #: org id -> that organisation's admin identity
    admins: dict[str, Identity]
    validator: str

    def reader(self) -> Identity:
        """The identity a client of this chain signs its requests with unless told otherwise (the
        first organisation's client): the gateway answers consortium members only."""
        return next(iter(self.clients.values()))


def create_consortium(
    directory: str | Path, *, suite: str = "intl", orgs: int = 2, now_ms: int | None = None
) -> Consortium:
    """A fresh consortium under ``directory``: ``orgs`` organisations, one validator."""
    root = Path(directory)
    manifest = init_network(
        root,
        suite_name=suite,
        orgs=parse_orgs(str(orgs)),
        validators=1,
        now_ms=now_ms if now_ms is not None else int(time.time() * 1000),
    )
    genesis = load_genesis(root / "genesis.json")
    clients = {
        org["org"]: Identity.load(root / org["client_identity"])
        for org in manifest["organizations"]
    }
    admins = {
        org["org"]: Identity.load(root / org["admin_identity"]) for org in manifest["organizations"]
    }
    return Consortium(
        directory=root,
        genesis=genesis,
        clients=clients,
        admins=admins,
        validator=manifest["nodes"][0]["name"],
    )


class _LoopThread:
    """An asyncio loop on a daemon thread; ``run(coro)`` waits (bounded) for its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._main, name="pilotchain-local-chain", daemon=True
        )
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = CALL_TIMEOUT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(CALL_TIMEOUT_S)
        if not self._thread.is_alive():
            self.loop.close()


class InProcessTransport(httpx.BaseTransport):
    """A sync httpx transport that serves requests with an ASGI app on a background loop."""

    def __init__(self, app: Any, loop_thread: _LoopThread) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._loop_thread = loop_thread

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=body
        )

        async def exchange() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            response = await self._asgi.handle_async_request(forwarded)
            content = await response.aread()
            return response.status_code, response.headers.raw, content

        status, headers, content = self._loop_thread.run(exchange())
        return httpx.Response(status, headers=headers, content=content, request=request)


class LocalChain:
    """A consortium, a LocalNode producing blocks and its gateway, for synchronous code."""

    def __init__(self, consortium: Consortium, node: LocalNode, loop_thread: _LoopThread) -> None:
        self.consortium = consortium
        self.node = node
        self.app = create_app(node)
        self._loop_thread = loop_thread
        self._server: GatewayServer | None = None

    @property
    def genesis(self) -> Genesis:
        return self.consortium.genesis

    @property
    def chain_id(self) -> str:
        return self.consortium.genesis.chain_id

    def identity(self, org: str | None = None, *, admin: bool = False) -> Identity:
        """An organisation's client (or admin) identity; the first organisation by default."""
        identities = self.consortium.admins if admin else self.consortium.clients
        return identities[org] if org is not None else next(iter(identities.values()))

    def transport(self) -> httpx.BaseTransport:
        return InProcessTransport(self.app, self._loop_thread)

    def client(self, **options: Any) -> Client:
        """A :class:`~pilotchain.sdk.Client` talking to this chain in-process."""
        options.setdefault("identity", self.consortium.reader())
        return Client(IN_PROCESS_URL, transport=self.transport(), **options)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the node's loop and return its result (e.g. ``node.submit_tx``)."""
        return self._loop_thread.run(coro)

    def produce_block(self) -> int | None:
        """Commit one block from the mempool now (for ``auto_produce=False`` chains); its height."""

        async def produce() -> int | None:
            block = self.node.produce_block()
            return None if block is None else block.header.height

        return self._loop_thread.run(produce())

    def serve_http(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Also serve the gateway over HTTP (port 0: a free one); returns its URL."""
        if self._server is None:
            self._server = self._loop_thread.run(serve(self.app, host, port))
        return self._server.url

    def close(self) -> None:
        server, self._server = self._server, None
        try:
            if server is not None:
                self._loop_thread.run(server.close())
        finally:
            self._loop_thread.run(self.node.close())


@contextlib.contextmanager
def local_chain(
    directory: str | Path | None = None,
    *,
    suite: str = "intl",
    orgs: int = 2,
    serve_http: bool = False,
    block_interval_ms: int = 0,
    auto_produce: bool = True,
) -> Iterator[LocalChain]:
    """A running :class:`LocalChain` for the ``with`` block (a temporary folder unless given).

    With ``auto_produce=False`` no block is made until you call ``chain.produce_block()`` (put
    several transactions in one block, or look at pending ones)."""
    with contextlib.ExitStack() as stack:
        root = (
            Path(directory)
            if directory is not None
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pilotchain-test-")))
        )
        consortium = create_consortium(root / "network", suite=suite, orgs=orgs)
        loop_thread = _LoopThread()
        stack.callback(loop_thread.stop)

        async def open_node() -> LocalNode:
            node = LocalNode.open(
                root / "ledger",
                consortium.genesis,
                name=consortium.validator,
                org=next(iter(consortium.clients)),
                block_interval_ms=block_interval_ms,
            )
            if auto_produce:
                await node.start()
            return node

        chain = LocalChain(consortium, loop_thread.run(open_node()), loop_thread)
        stack.callback(chain.close)
        if serve_http:
            chain.serve_http()
        yield chain


class AsyncLocalChain:
    """A consortium, a LocalNode and its gateway on the caller's event loop."""

    def __init__(self, consortium: Consortium, node: LocalNode) -> None:
        self.consortium = consortium
        self.node = node
        self.app = create_app(node)

    @property
    def chain_id(self) -> str:
        return self.consortium.genesis.chain_id

    def identity(self, org: str | None = None, *, admin: bool = False) -> Identity:
        identities = self.consortium.admins if admin else self.consortium.clients
        return identities[org] if org is not None else next(iter(identities.values()))

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.app)

    def client(self, **options: Any) -> AsyncClient:
        options.setdefault("identity", self.consortium.reader())
        return AsyncClient(IN_PROCESS_URL, transport=self.transport(), **options)


@contextlib.asynccontextmanager
async def async_local_chain(
    directory: str | Path | None = None,
    *,
    suite: str = "intl",
    orgs: int = 2,
    block_interval_ms: int = 0,
    auto_produce: bool = True,
) -> AsyncIterator[AsyncLocalChain]:
    """A running :class:`AsyncLocalChain` on the current loop for the ``async with`` block."""
    with contextlib.ExitStack() as stack:
        root = (
            Path(directory)
            if directory is not None
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pilotchain-test-")))
        )
        consortium = create_consortium(root / "network", suite=suite, orgs=orgs)
        node = LocalNode.open(
            root / "ledger",
            consortium.genesis,
            name=consortium.validator,
            org=next(iter(consortium.clients)),
            block_interval_ms=block_interval_ms,
        )
        try:
            if auto_produce:
                await node.start()
            yield AsyncLocalChain(consortium, node)
        finally:
            await node.close()

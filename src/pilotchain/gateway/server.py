"""Run the gateway with uvicorn inside an existing event loop (beside the node's P2P).

``serve`` starts a uvicorn server as a task on the running loop and returns a
:class:`GatewayServer` handle; ``await handle.close()`` ends the event streams, stops accepting
connections and waits (bounded) for in-flight requests. uvicorn's signal handlers are not
installed: the node owns the process's signals.

Connections are bounded (:class:`~pilotchain.gateway._limits.GatewayLimits`): in total — at most
a quarter of the process's file descriptor limit, so the node's P2P links, WAL and store always
have descriptors — and per client address; a request head must arrive within a timeout, idle
keep-alive connections close, and the loop accepts at most ``backlog`` connections in one go.
WebSocket upgrades are off (the gateway has none).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn
from fastapi import FastAPI

from pilotchain.gateway._limits import (
    ConnectionGuard,
    GatewayLimits,
    RefusalLog,
    fd_soft_limit,
    guarded_protocol,
)

__all__ = ["GatewayServer", "serve", "GRACEFUL_SHUTDOWN_S", "GatewayLimits", "connections_max_for"]

_log = logging.getLogger("pilotchain.gateway")

#: How long close() lets in-flight requests finish before cancelling them.
GRACEFUL_SHUTDOWN_S = 3.0
#: How long serve() waits for the server to start listening.
STARTUP_TIMEOUT_S = 10.0


#: the gateway holds at most this share of the process's file descriptors
FD_SHARE_DIVISOR = 4


def connections_max_for(limits: GatewayLimits, fd_limit: int | None) -> int:
    """The gateway's connection bound: ``limits.connections_max``, at most a quarter of the
    file descriptor limit."""
    if fd_limit is None:
        return limits.connections_max
    return max(1, min(limits.connections_max, fd_limit // FD_SHARE_DIVISOR))


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says TCP; without it, keep-alive responses wait ~40 ms (Nagle + delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno,
            f"the gateway cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "is another node using it? choose another gateway address",
        ) from exc
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, started: asyncio.Event) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the node, not the gateway, handles SIGINT / SIGTERM

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._started_event.set()


class GatewayServer:
    """A running gateway: ``host``, ``port`` (the bound one, also when asked for port 0), ``url``."""

    def __init__(
        self, app: FastAPI, server: _Server, task: asyncio.Task[None], host: str, port: int,
        guard: ConnectionGuard,
    ) -> None:
        self.app = app
        #: the connection bounds and counts (``guard.open``, ``guard.connections_max``)
        self.guard = guard
        self._server = server
        self._task = task
        self.host = host
        self.port = port
        self.scheme = "https" if server.config.ssl_certfile else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return not self._task.done()

    async def close(self) -> None:
        """Stop serving (idempotent); event streams are told to end first."""
        closing: Any = getattr(self.app.state, "closing", None)
        if closing is not None:
            closing.set()
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), GRACEFUL_SHUTDOWN_S + 2)
        except TimeoutError:
            _log.warning("the gateway did not stop in time; forcing it")
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> GatewayServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def serve(
    app: FastAPI,
    host: str,
    port: int,
    *,
    ready: asyncio.Event | None = None,
    log_level: str = "warning",
    limits: GatewayLimits | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> GatewayServer:
    """Start serving ``app`` on ``host:port`` (0: any free port) on the running loop, with the
    connection bounds of ``limits`` (default: :class:`GatewayLimits`).

    Returns once the socket listens (and sets ``ready``); raises OSError when the address is
    taken or cannot be bound (the message names it and what to do)."""
    limits = limits or GatewayLimits()
    connections_max = connections_max_for(limits, fd_soft_limit())
    backlog = min(limits.backlog, connections_max)
    metrics: Any = getattr(app.state, "metrics", None)
    refused = metrics.refused if metrics is not None else RefusalLog(limits.log_interval_s)
    guard = ConnectionGuard(limits, connections_max, refused,
                            on_open=metrics.connections.set if metrics is not None else None)
    sock = _bind(host, port, backlog)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host=host,
        port=bound_port,
        log_level=log_level,
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
        server_header=False,
        http=guarded_protocol(guard),
        ws="none",
        timeout_keep_alive=limits.keep_alive_s,
        h11_max_incomplete_event_size=limits.header_bytes_max,
        backlog=backlog,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
    started = asyncio.Event()
    server = _Server(config, started)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"gateway-{host}:{bound_port}")
    waiter = asyncio.ensure_future(started.wait())
    done, _ = await asyncio.wait(
        {task, waiter}, timeout=STARTUP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
    )
    if waiter not in done:
        waiter.cancel()
        server.should_exit = True
        sock.close()
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise OSError(
            f"the gateway did not start serving on {host}:{bound_port} within {STARTUP_TIMEOUT_S} s; see the log"
        )
    handle = GatewayServer(app, server, task, host, bound_port, guard)
    if ready is not None:
        ready.set()
    return handle

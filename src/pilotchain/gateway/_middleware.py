"""Pure ASGI middleware for the gateway: JSON errors, request metrics, request body bounds."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pilotchain.errors import InvariantBroken
from pilotchain.gateway._limits import RefusalLog, json_error_body, json_nesting_ok

__all__ = [
    "JsonErrorMiddleware",
    "MetricsMiddleware",
    "BodyLimitMiddleware",
    "GatewayMetrics",
    "json_error_body",
]

_log = logging.getLogger("pilotchain.gateway")


async def _send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class JsonErrorMiddleware:
    """Any exception that escapes the app becomes a JSON 500 (never an HTML traceback)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except MemoryError:
            # the process is at its memory limit: shed this request, say so, keep serving
            _log.error("out of memory serving %s %s: request shed", scope.get("method"), scope.get("path"),
                       extra={"event": "gateway.out_of_memory"})
            if started:
                raise
            await _send_json(send, 503, json_error_body(
                "UNAVAILABLE", "the node is at its memory limit; retry after the Retry-After seconds"),
                [(b"retry-after", b"5")])
        except Exception as exc:
            _log.exception("unhandled error serving %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await _send_json(
                send,
                500,
                json_error_body(
                    "INTERNAL",
                    f"the gateway failed ({type(exc).__name__}); the node log has the details",
                ),
            )


class GatewayMetrics:
    """Request counters and latency histograms, refusals and connections, in the gateway's own
    registry; ``refused`` counts and logs (rate-limited) what the gateway refuses."""

    def __init__(self, log_interval_s: float = 10.0) -> None:
        self.registry = CollectorRegistry()
        self.refusals = Counter(
            "pilotchain_gateway_refused",
            "Connections and requests the gateway refused, by reason (GATEWAY_FULL, ADDRESS_LIMIT, "
            "HEADER_TIMEOUT, BAD_REQUEST, TOO_LARGE, TOO_DEEP, BODY_TIMEOUT)",
            ["reason"],
            registry=self.registry,
        )
        self.log_suppressed = Counter(
            "pilotchain_gateway_log_suppressed",
            "Refusal log lines not written (at most one per reason per interval is)",
            registry=self.registry,
        )
        self.connections = Gauge(
            "pilotchain_gateway_connections", "Connections the gateway holds", registry=self.registry
        )
        self.refused = RefusalLog(
            log_interval_s,
            on_refused=lambda reason: self.refusals.labels(reason=reason).inc(),
            on_suppressed=self.log_suppressed.inc,
        )
        self.requests = Counter(
            "pilotchain_gateway_requests",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pilotchain_gateway_request_seconds",
            "Time to the end of the response (event streams excluded)",
            ["method", "route"],
            registry=self.registry,
        )


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            # the route's template (bounded cardinality), never the raw path
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "?")
            self.metrics.requests.labels(method=method, route=template, status=str(status)).inc()
            if template != "/v1/events":
                self.metrics.latency.labels(method=method, route=template).observe(
                    time.perf_counter() - started
                )


def _remote(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"


#: an answer after which the connection closes (the client may still be sending the body)
_CLOSE = [(b"connection", b"close")]


class BodyLimitMiddleware:
    """Request bodies: over ``body_bytes_max`` (or the path's own limit) answered 413 before the
    app reads them — at once when Content-Length says so, else as soon as the count passes it;
    not complete within ``body_timeout_s``: 408; JSON nesting deeper than ``json_depth_max``
    (the path's own, if given): 400 before anything parses it. After a 413 or 408 the connection
    closes (the server reads and discards what the client still sends for a bounded time, so the
    client sees the answer). The body is read here (bounded) and replayed to the app."""

    def __init__(
        self,
        app: ASGIApp,
        body_bytes_max: int,
        path_limits: dict[str, int] | None = None,
        *,
        json_depth_max: int = 128,
        path_depths: dict[str, int] | None = None,
        body_timeout_s: float = 30.0,
        refused: Callable[[str, str, str], None] | None = None,
    ) -> None:
        if not (body_bytes_max > 0):
            raise InvariantBroken('invariant broken: body_bytes_max > 0')
        if not (json_depth_max > 0 and body_timeout_s > 0):
            raise InvariantBroken('invariant broken: json_depth_max > 0 and body_timeout_s > 0')
        self.app = app
        self.body_bytes_max = body_bytes_max
        #: larger limits for specific paths (the batch submission endpoint)
        self.path_limits = dict(path_limits or {})
        self.json_depth_max = json_depth_max
        self.path_depths = dict(path_depths or {})
        self.body_timeout_s = body_timeout_s
        self._refused = refused

    def _report(self, reason: str, scope: Scope, message: str) -> None:
        if self._refused is not None:
            remote = _remote(scope)
            self._refused(reason, remote, f"refused {scope.get('method')} {scope.get('path')} from {remote}: {message}")

    async def _too_large(self, send: Send, scope: Scope, size: int | None, limit: int) -> None:
        told = f"{size} bytes" if size is not None else "more"
        message = f"request body is {told}, limit {limit} bytes; split the call or store large data off-chain"
        self._report("TOO_LARGE", scope, message)
        await _send_json(send, 413, json_error_body("TOO_LARGE", message), _CLOSE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.path_limits.get(path, self.body_bytes_max)
        is_json = False
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(
                        send, 400, json_error_body("BAD_REQUEST", "Content-Length is not a number"), _CLOSE
                    )
                    return
                if declared > limit:
                    await self._too_large(send, scope, declared, limit)
                    return
            elif name == b"content-type":
                is_json = value.split(b";")[0].strip().lower() == b"application/json"
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        await self._too_large(send, scope, None, limit)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            text = f"the request body did not arrive within {self.body_timeout_s:g} s"
            self._report("BODY_TIMEOUT", scope, text)
            await _send_json(send, 408, json_error_body("TIMEOUT", text), _CLOSE)
            return
        body = b"".join(chunks)
        depth_max = self.path_depths.get(path, self.json_depth_max)
        if is_json and not json_nesting_ok(body, depth_max):
            text = f"the JSON body nests deeper than {depth_max} levels (or its brackets do not balance)"
            self._report("TOO_DEEP", scope, text)
            await _send_json(send, 400, json_error_body("BAD_REQUEST", text))
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

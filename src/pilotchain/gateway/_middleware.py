"""Pure ASGI middleware for the gateway: JSON errors, request metrics, request body bound."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pilotchain.errors import InvariantBroken

__all__ = [
    "JsonErrorMiddleware",
    "MetricsMiddleware",
    "BodyLimitMiddleware",
    "GatewayMetrics",
    "json_error_body",
]

_log = logging.getLogger("pilotchain.gateway")


def json_error_body(code: str, message: str, **extra: Any) -> bytes:
    return json.dumps({"code": code, "message": message, **extra}).encode()


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
    """Request counters and latency histograms, in the gateway's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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


class BodyLimitMiddleware:
    """Refuse request bodies over ``body_bytes_max`` with 413 before the app reads them.

    The body is read here (it is small by construction) and replayed to the app."""

    def __init__(self, app: ASGIApp, body_bytes_max: int, path_limits: dict[str, int] | None = None) -> None:
        if not (body_bytes_max > 0):
            raise InvariantBroken('invariant broken: body_bytes_max > 0')
        self.app = app
        self.body_bytes_max = body_bytes_max
        #: larger limits for specific paths (the batch submission endpoint)
        self.path_limits = dict(path_limits or {})

    def _too_large(self, size: int | None, limit: int) -> bytes:
        told = f"{size} bytes" if size is not None else "more"
        return json_error_body(
            "TOO_LARGE",
            f"request body is {told}, limit {limit} bytes; split the call or store large data off-chain",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.body_bytes_max)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(
                        send, 400, json_error_body("BAD_REQUEST", "Content-Length is not a number")
                    )
                    return
                if declared > limit:
                    await _send_json(send, 413, self._too_large(declared, limit))
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_json(send, 413, self._too_large(None, limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

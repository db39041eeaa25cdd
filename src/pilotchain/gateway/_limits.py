"""Connection-level bounds of the gateway and rate-limited refusal logs.

Theory of operation
-------------------
uvicorn's h11 protocol bounds the size of request headers but not the time a client may take
to send them, nor how many connections one client (or all of them) may hold. A stranger with a
few thousand idle or half-sent connections could therefore exhaust the node process's file
descriptors, and the node's own files (the consensus WAL, the store) and P2P links with them.
:func:`guarded_protocol` builds an :class:`~uvicorn.protocols.http.h11_impl.H11Protocol` subclass
bound to one :class:`ConnectionGuard` that

* admits a connection only while the gateway holds fewer than ``connections_max`` connections
  and its address fewer than ``connections_per_address_max``; a refused connection gets a short
  JSON 503 and is closed at once (no request is read);
* closes a connection that has not sent a complete request head within ``header_timeout_s`` —
  from the moment it connects, or from the end of the previous response on a keep-alive
  connection (a slow-header client cannot hold a slot longer than that);
* when it must close while the client is still sending a body it refused (413, 408), sends its
  answer, half-closes and reads and discards for at most ``linger_s`` / ``linger_bytes_max``
  first, so the client reads the answer instead of a connection reset.

:class:`RateLimiter` lets through at most one log line per key per interval and counts the rest;
the next line of that key says how many were suppressed. :class:`RateLimitFilter` applies it to
a logger's records keyed by their ``event`` and ``reason`` fields (the node process puts one on
the P2P logger). Everything here runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "ConnectionGuard",
    "RefusalLog",
    "json_error_body",
    "GatewayLimits",
    "RateLimitFilter",
    "RateLimiter",
    "fd_soft_limit",
    "guarded_protocol",
    "json_nesting_ok",
]

_log = logging.getLogger("pilotchain.gateway")


def json_error_body(code: str, message: str, **extra: Any) -> bytes:
    """The gateway's error shape: ``{"code": ..., "message": ...}`` (plus fields)."""
    return json.dumps({"code": code, "message": message, **extra}).encode()
#: uvicorn's per-connection messages ("Invalid HTTP request received.") go here, rate-limited
_http_log = logging.getLogger("pilotchain.gateway.http")
_http_log.setLevel(logging.DEBUG)  # uvicorn formats TRACE lines when its logger's level is below 5


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    """Connection-level bounds (request-level ones are in ``GatewayOptions``). See docs/api.md."""

    #: connections the gateway holds at once (further capped at a quarter of the process's
    #: file descriptor limit, so P2P links and the store always have descriptors)
    connections_max: int = 1024
    #: connections one client address holds at once (the benchmark's pool is 64 plus streams)
    connections_per_address_max: int = 128
    #: a connection must send a complete request head within this many seconds
    header_timeout_s: float = 10.0
    #: an idle keep-alive connection is closed after this many seconds
    keep_alive_s: int = 5
    #: request line and headers, in bytes (h11's default)
    header_bytes_max: int = 16 * 1024
    #: the listen backlog, and the most connections the loop accepts in one go (at most
    #: connections_max): bounds the descriptors a burst holds before the guard refuses it
    backlog: int = 512
    #: reading (and discarding) a refused body before closing: at most this long and this much
    linger_s: float = 5.0
    linger_bytes_max: int = 64 * 1024 * 1024
    #: at most one log line per refusal reason per this many seconds
    log_interval_s: float = 10.0

    def __post_init__(self) -> None:
        if self.connections_max < 1 or self.connections_per_address_max < 1 or self.backlog < 1:
            raise ValueError("connection bounds and the backlog must be at least 1")
        if self.header_timeout_s <= 0 or self.keep_alive_s <= 0 or self.linger_s < 0:
            raise ValueError("timeouts must be positive")


def fd_soft_limit() -> int | None:
    """The process's soft RLIMIT_NOFILE (None when unknown or unlimited)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not a Unix
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


# ---------------------------------------------------------------------- rate-limited logs


class RateLimiter:
    """At most one event per key per ``interval_s``; counts what it holds back.

    ``check(key, now_s)`` returns None when the event is suppressed, else how many events of that
    key were suppressed since the last one let through. At most ``keys_max`` keys are tracked;
    beyond that, new keys share one overflow key."""

    OVERFLOW: Final = ("(other)",)

    def __init__(self, interval_s: float, keys_max: int = 1024) -> None:
        if interval_s < 0 or keys_max < 1:
            raise ValueError("interval_s must not be negative and keys_max must be at least 1")
        self.interval_s = interval_s
        self.keys_max = keys_max
        self._last: dict[tuple[Any, ...], float] = {}
        self._held: dict[tuple[Any, ...], int] = {}
        #: events held back so far, all keys
        self.suppressed_total = 0

    def check(self, key: tuple[Any, ...], now_s: float) -> int | None:
        if key not in self._last and len(self._last) >= self.keys_max:
            key = self.OVERFLOW
        last = self._last.get(key)
        if last is not None and now_s - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            self.suppressed_total += 1
            return None
        self._last[key] = now_s
        return self._held.pop(key, 0)


#: a reason that is an enumerated code ("TIMEOUT", "FRAME_REJECTED: ...") and its code
_REASON_CODE = re.compile(r"([A-Z][A-Z0-9_]*)(?::|$)")


def reason_code(reason: Any) -> str | None:
    """The enumerated code a log record's ``reason`` starts with (bounded label values)."""
    match = _REASON_CODE.match(reason) if isinstance(reason, str) else None
    return match.group(1) if match else None


class RateLimitFilter(logging.Filter):
    """Rate-limits a logger's records whose ``event`` is in ``events``: one per (event, reason
    code) — or (event, peer) when the reason is free text — per ``interval_s`` (by the records'
    own timestamps). The line let through after a quiet spell says how many were suppressed
    (``suppressed`` field). ``on_record(event, code)`` sees every limited record, suppressed or
    not (the node counts refusals with it); ``on_suppressed()`` each suppressed one."""

    def __init__(
        self,
        events: frozenset[str],
        interval_s: float = 10.0,
        *,
        on_record: Callable[[str, str], None] | None = None,
        on_suppressed: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.events = events
        self.limiter = RateLimiter(interval_s)
        self.on_record = on_record
        self.on_suppressed = on_suppressed

    def filter(self, record: logging.LogRecord) -> bool:
        event = getattr(record, "event", None)
        if event not in self.events:
            return True
        code = reason_code(getattr(record, "reason", None))
        if self.on_record is not None:
            self.on_record(str(event), code or "OTHER")
        key = (event, code) if code is not None else (event, str(getattr(record, "peer", None)))
        held = self.limiter.check(key, record.created)
        if held is None:
            if self.on_suppressed is not None:
                self.on_suppressed()
            return False
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.limiter.interval_s:g} s not logged)"
            record.suppressed = held
        return True


class _ByMessageFilter(logging.Filter):
    """uvicorn's own per-connection lines: one per message per 10 s. "Invalid HTTP request
    received." is dropped: the protocol logs (rate-limited) and counts that refusal itself."""

    def __init__(self) -> None:
        super().__init__()
        self.limiter = RateLimiter(10.0)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Invalid HTTP request received.":
            return False
        return self.limiter.check((str(record.msg),), record.created) is not None


_http_log.addFilter(_ByMessageFilter())


# ---------------------------------------------------------------------- JSON nesting

_JSON_STRING: Final = re.compile(rb'"(?:[^"\\]++|\\.?)*+"?', re.DOTALL)
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_ONE_KIND: Final = bytes.maketrans(b"{}", b"[]")


@functools.lru_cache(maxsize=8)
def _balanced_within(depth_max: int) -> re.Pattern[bytes]:
    """Balanced brackets nested at most ``depth_max`` deep: ``(?:\\[(?:\\[...\\])*+\\])*+``.
    Possessive and unambiguous, so matching is linear and stops at the first bracket too deep."""
    pattern = b""
    for _ in range(depth_max):
        pattern = rb"(?:\[" + pattern + rb"\])*+"
    return re.compile(pattern)


def json_nesting_ok(body: bytes, depth_max: int) -> bool:
    """Whether the JSON text ``body`` nests arrays and objects at most ``depth_max`` deep
    (``[1]`` is depth 1) with balanced brackets — found without recursion, in linear time at C
    speed: strings are removed (a pattern that never backtracks), the rest is reduced to its
    brackets, and those must match :func:`_balanced_within`. False for unbalanced brackets too
    (that is not JSON either)."""
    if body.count(b"[") + body.count(b"{") <= depth_max:
        return True
    structure = _JSON_STRING.sub(b"", body).translate(_ONE_KIND, _NOT_BRACKETS)
    return _balanced_within(depth_max).fullmatch(structure) is not None


# ---------------------------------------------------------------------- connections


class RefusalLog:
    """What the gateway refuses (connections and requests): every refusal is counted by reason
    (``on_refused``); at most one log line per reason per ``interval_s`` says what happened and
    how many more were not logged (``on_suppressed`` counts those)."""

    def __init__(
        self,
        interval_s: float = 10.0,
        *,
        on_refused: Callable[[str], None] | None = None,
        on_suppressed: Callable[[], None] | None = None,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = RateLimiter(interval_s)
        self._on_refused = on_refused
        self._on_suppressed = on_suppressed
        self._clock_s = clock_s

    def __call__(self, reason: str, remote: str, message: str) -> None:
        if self._on_refused is not None:
            self._on_refused(reason)
        held = self.limiter.check((reason,), self._clock_s())
        if held is None:
            if self._on_suppressed is not None:
                self._on_suppressed()
            return
        suffix = f" ({held} more like this in the last {self.limiter.interval_s:g} s not logged)" if held else ""
        _log.warning("%s%s", message, suffix,
                     extra={"event": "gateway.refused", "reason": reason, "remote": remote, "suppressed": held})


class ConnectionGuard:
    """Counts a gateway's connections, in total and per client address, and refuses beyond the
    bounds; ``refused`` reports every refusal of the connection layer."""

    def __init__(
        self,
        limits: GatewayLimits,
        connections_max: int,
        refused: RefusalLog,
        *,
        on_open: Callable[[int], None] | None = None,
    ) -> None:
        self.limits = limits
        self.connections_max = connections_max
        self.refused = refused
        self.open = 0
        self.per_address: dict[str, int] = {}
        self._on_open = on_open

    def admit(self, address: str) -> str | None:
        """Take a slot for a connection from ``address``; the refusal reason when there is none."""
        if self.open >= self.connections_max:
            return "GATEWAY_FULL"
        held = self.per_address.get(address, 0)
        if held >= self.limits.connections_per_address_max:
            return "ADDRESS_LIMIT"
        self.per_address[address] = held + 1
        self.open += 1
        if self._on_open is not None:
            self._on_open(self.open)
        return None

    def release(self, address: str) -> None:
        held = self.per_address.get(address, 0) - 1
        if held > 0:
            self.per_address[address] = held
        else:
            self.per_address.pop(address, None)
        self.open -= 1
        if self._on_open is not None:
            self._on_open(self.open)


def _raw_response(status: bytes, code: str, message: str, extra_headers: bytes = b"") -> bytes:
    """A complete HTTP/1.1 answer in the gateway's error shape, written straight to a transport
    (for connections refused before, or outside, a request cycle)."""
    body = json_error_body(code, message)
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n" + extra_headers
            + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class _LingeringTransport:
    """The transport uvicorn sees: ``close()`` lingers when the client is still sending a body."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedH11Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        self._protocol._close_or_linger()

    def is_closing(self) -> bool:
        return self._protocol._lingering or self._transport.is_closing()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guard's bounds (see the module docstring). Use
    :func:`guarded_protocol` to get a subclass bound to a guard."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = _http_log
        self._raw: asyncio.Transport | None = None
        self._address: str | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._armed_cycle: object = None
        self._lingering = False
        self._linger_bytes = 0
        self._linger_timer: asyncio.TimerHandle | None = None

    # -- admission ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)
        self._raw = raw
        peer = raw.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        guard = self.guard
        reason = guard.admit(address)
        if reason is not None:
            if reason == "GATEWAY_FULL":
                message = f"the gateway serves at most {guard.connections_max} connections; retry shortly"
            else:
                message = (f"the gateway serves at most {guard.limits.connections_per_address_max} "
                           f"connections from one address; reuse connections or retry shortly")
            guard.refused(reason, address, f"refused a connection from {address}: {message}")
            with contextlib.suppress(Exception):
                raw.write(_raw_response(b"503 Service Unavailable", "UNAVAILABLE", message, b"retry-after: 1\r\n"))
            raw.close()
            return
        self._address = address
        super().connection_made(cast(asyncio.Transport, _LingeringTransport(raw, self)))
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is None:
            return  # refused: never admitted
        self.guard.release(self._address)
        self._address = None
        self._cancel_header_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)

    # -- the request head must arrive in time --------------------------------------------------

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._armed_cycle = self.cycle
        self._header_timer = self.loop.call_later(self.guard.limits.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        raw = self._raw
        if raw is None or raw.is_closing() or self.cycle is not self._armed_cycle:
            return
        address = self._address or "?"
        self.guard.refused("HEADER_TIMEOUT", address,
                           f"closed a connection from {address}: no complete request head within "
                           f"{self.guard.limits.header_timeout_s:g} s")
        raw.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self._header_timer is not None and self.cycle is not self._armed_cycle:
            self._cancel_header_timer()  # a new request's head arrived

    def on_response_complete(self) -> None:
        if self._raw is not None and not self._raw.is_closing() and not self._lingering:
            self._arm_header_timer()  # before super(): it may start a pipelined request
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        address = self._address or "?"
        self.guard.refused("BAD_REQUEST", address, f"refused a malformed request from {address}: {msg}")
        raw = self._raw
        if raw is None or raw.is_closing():
            return
        with contextlib.suppress(Exception):
            raw.write(_raw_response(b"400 Bad Request", "BAD_REQUEST", "malformed HTTP request (or a request "
                                    f"head over {self.guard.limits.header_bytes_max} bytes)"))
        raw.close()

    # -- lingering close -----------------------------------------------------------------------

    def _close_or_linger(self) -> None:
        raw = self._raw
        if raw is None:
            return
        if (
            self._lingering
            or raw.is_closing()
            or self.conn.their_state is not h11.SEND_BODY
            or not raw.can_write_eof()
            or self.guard.limits.linger_s <= 0
        ):
            if not self._lingering:
                raw.close()
            return
        # the client is still sending a body we answered without reading: finish our side (FIN
        # after the answer) and read and discard for a bounded time, so it reads the answer
        self._lingering = True
        self._cancel_header_timer()
        try:
            raw.write_eof()
            raw.resume_reading()
        except (OSError, RuntimeError):
            raw.close()
            return
        self._linger_timer = self.loop.call_later(self.guard.limits.linger_s, raw.close)

    def data_received(self, data: bytes) -> None:
        if self._address is None:
            return  # refused, closing
        if self._lingering:
            self._linger_bytes += len(data)
            if self._linger_bytes > self.guard.limits.linger_bytes_max and self._raw is not None:
                self._raw.close()
            return
        super().data_received(data)

    def eof_received(self) -> None:
        if self._lingering and self._raw is not None:
            self._raw.close()
            return
        super().eof_received()


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedH11Protocol]:
    """A protocol class for uvicorn's ``http=`` option whose connections ``guard`` bounds."""
    return type("BoundedH11Protocol", (GuardedH11Protocol,), {"guard": guard})

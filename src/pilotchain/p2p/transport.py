"""The asyncio shell: listens, dials, runs handshakes and moves sealed frames.

Theory of operation
-------------------
All protocol decisions live in the pure modules (:mod:`~pilotchain.p2p.handshake`,
:mod:`~pilotchain.p2p.framing`); this module only moves bytes and keeps bounded queues.

* **Links.** :meth:`PeerNetwork.start` listens on ``listen_address`` and starts one dial loop per
  configured peer. Every TCP connection, dialled or accepted, runs the handshake (bounded by
  ``handshake_timeout_ms``); a refused peer is logged (``p2p.refused``, with the reason) and
  disconnected before any frame is read. Once authenticated, a link runs three tasks: reader,
  writer and keepalive.
* **One link per peer.** Both sides dial, so two links can come up between a pair. The link
  dialled by the lexicographically lower node name is *preferred*: a new link replaces the current
  one unless the current one is preferred and the new one is not. Both ends apply the same rule,
  so they keep the same link; the other is closed.
* **Reconnect.** A dial loop sleeps while its peer is connected; after a drop or a failure it
  waits ``reconnect_delay_ms(attempt)`` — exponential from ``reconnect_delay_ms_min`` to
  ``reconnect_delay_ms_max``, times a random factor in [0.5, 1] — and dials again.
* **Send queues.** :meth:`PeerNetwork.send` never blocks. Each peer has a *priority* queue (kinds in
  ``priority_kinds``: control, consensus, membership) and a *bulk* queue (everything else), both
  bounded by messages and bytes; the writer always empties the priority queue first and awaits the
  socket's drain after every frame (write buffer bounded by ``write_buffer_bytes_high``). When the
  bulk queue is full the oldest bulk messages are dropped to make room (QUEUED_DROPPED_OLDEST);
  when the priority queue is full the new message is refused (BACKPRESSURE) and the caller
  decides. While a peer is disconnected :meth:`send` returns NOT_CONNECTED; what was already
  queued stays (bounded) and goes out on the next link. A link closed by the one-link-per-pair
  rule is *drained*: it stops sending (FIN) but reads until the other end closes too, so frames
  already in flight on it are delivered, not lost.
* **Receive.** :meth:`PeerNetwork.receive` returns messages, priority ones first, from a buffer
  bounded per class by messages and bytes. When a class is full the reader of that link waits,
  which stops reading the socket, which pushes back on the sender through TCP.
* **Keepalive.** A link sends a CONTROL frame after ``keepalive_interval_ms`` without sending
  and is dropped after ``idle_timeout_ms`` without receiving anything.

Logging: logger ``pilotchain.p2p``, every record has ``event`` and ``node`` attributes plus
fields per event: ``p2p.listening`` (address), ``p2p.connected`` (peer, org, remote, direction,
session), ``p2p.refused`` (peer claimed, remote, reason, identity_reason), ``p2p.dropped`` (peer,
remote, reason), ``p2p.reconnecting`` (peer, address, attempt, delay_ms), ``p2p.replaced``. Never
key material; the session id (a one-way function of the session secret) may be logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pilotchain.crypto import PrivateKey, Suite
from pilotchain.errors import InvariantBroken
from pilotchain.identity.errors import IdentityRejected
from pilotchain.identity.membership import Membership
from pilotchain.p2p.config import PEERS_MAX, NetworkConfig, format_address, parse_address
from pilotchain.p2p.errors import FrameRejected, HandshakeFailed, HandshakeFailure
from pilotchain.p2p.framing import (
    LENGTH_PREFIX_BYTES,
    FrameOpener,
    FrameSealer,
    MessageKind,
    encode_length,
    parse_length,
)
from pilotchain.p2p.handshake import (
    HANDSHAKE_MESSAGE_BYTES_MAX,
    Handshake,
    HandshakeResult,
    HandshakeRole,
    HandshakeState,
)

__all__ = [
    "InboundMessage",
    "PeerNetwork",
    "PeerStatus",
    "SendResult",
    "reconnect_delay_ms",
]

LOGGER_NAME: Final = "pilotchain.p2p"
#: frames at least this big are sealed / opened on a worker thread (AES-GCM and SM4-GCM release
#: the GIL), so a 16 MiB block does not stall the event loop
OFFLOAD_BYTES_MIN: Final = 256 * 1024
#: the writer coalesces queued frames into one socket write up to these bounds
WRITE_BATCH_BYTES_MAX: Final = 64 * 1024
WRITE_BATCH_FRAMES_MAX: Final = 256
_KEEPALIVE_PAYLOAD: Final = b"\x01"
_CLOSE_WAIT_S: Final = 2.0


class SendResult(enum.Enum):
    #: queued for the peer
    QUEUED = "queued"
    #: queued, after dropping the oldest bulk message(s) to stay within the bulk bound
    QUEUED_DROPPED_OLDEST = "queued-dropped-oldest"
    #: not queued: the peer's priority queue is full (the link is too slow); retry later
    BACKPRESSURE = "backpressure"
    #: not queued: no authenticated link to that peer right now
    NOT_CONNECTED = "not-connected"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    #: the sender's name (its certificate subject, authenticated)
    peer: str
    kind: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """One peer, as ``network status`` shows it."""

    name: str
    #: the configured address to dial (None for an unlisted inbound peer)
    address: str | None
    connected: bool
    #: "outbound" (we dialled) or "inbound", when connected
    direction: str | None
    remote_address: str | None
    org_id: str | None
    #: wall-clock ms when the current link came up
    since_ms: int | None
    #: the first 8 bytes of the session id, hex (public)
    session: str | None
    bytes_in: int
    bytes_out: int
    messages_in: int
    messages_out: int
    #: bulk messages dropped to make room for newer ones
    messages_dropped: int
    #: messages refused with BACKPRESSURE
    messages_refused: int
    queued_messages: int
    queued_bytes: int
    #: links established with this peer since start
    connects: int
    last_error: str | None


def reconnect_delay_ms(attempt: int, delay_ms_min: int, delay_ms_max: int, random_fraction: float) -> int:
    """Delay before reconnect ``attempt`` (1, 2, …): ``min · 2^(attempt-1)`` capped at ``max``,
    times ``0.5 + random_fraction / 2`` (``random_fraction`` in [0, 1]) so peers do not redial in
    lockstep."""
    if not (attempt >= 1 and 0 < delay_ms_min <= delay_ms_max and 0.0 <= random_fraction <= 1.0):
        raise InvariantBroken('invariant broken: attempt >= 1 and 0 < delay_ms_min <= delay_ms_max and 0.0 <= random_fraction <= 1.0')
    exponent = min(attempt - 1, 32)  # bound the shift; the cap applies long before
    base_ms = min(delay_ms_max, delay_ms_min << exponent)
    return max(1, int(base_ms * (0.5 + random_fraction / 2)))


class _MessageQueue:
    """A FIFO of (kind, payload) bounded by count and bytes."""

    __slots__ = ("items", "bytes", "messages_max", "bytes_max")

    def __init__(self, messages_max: int, bytes_max: int) -> None:
        self.items: deque[tuple[int, bytes]] = deque()
        self.bytes = 0
        self.messages_max = messages_max
        self.bytes_max = bytes_max

    def fits(self, size: int) -> bool:
        return len(self.items) < self.messages_max and self.bytes + size <= self.bytes_max

    def push(self, kind: int, payload: bytes) -> None:
        if not (self.fits(len(payload))):
            raise InvariantBroken('invariant broken: self.fits(len(payload))')
        self.items.append((kind, payload))
        self.bytes += len(payload)

    def pop(self) -> tuple[int, bytes] | None:
        if not self.items:
            return None
        kind, payload = self.items.popleft()
        self.bytes -= len(payload)
        return kind, payload

    def clear(self) -> int:
        count = len(self.items)
        self.items.clear()
        self.bytes = 0
        return count


class _Inbound:
    """Received messages waiting for :meth:`PeerNetwork.receive`, two classes, each bounded."""

    def __init__(self, messages_max: int, bytes_max: int) -> None:
        self._queues = {True: _MessageQueue(messages_max, bytes_max), False: _MessageQueue(messages_max, bytes_max)}
        self._senders: dict[bool, deque[str]] = {True: deque(), False: deque()}
        self._changed = asyncio.Condition()

    def buffered(self) -> tuple[int, int]:
        """(messages, bytes) waiting, both classes."""
        return (
            sum(len(q.items) for q in self._queues.values()),
            sum(q.bytes for q in self._queues.values()),
        )

    async def put(self, message: InboundMessage, priority: bool) -> None:
        queue = self._queues[priority]
        size = len(message.payload)
        async with self._changed:
            await self._changed.wait_for(lambda: queue.fits(size))
            queue.push(message.kind, message.payload)
            self._senders[priority].append(message.peer)
            self._changed.notify_all()

    def _pop(self) -> InboundMessage | None:
        for priority in (True, False):
            item = self._queues[priority].pop()
            if item is not None:
                return InboundMessage(self._senders[priority].popleft(), item[0], item[1])
        return None

    async def get(self) -> InboundMessage:
        async with self._changed:
            await self._changed.wait_for(lambda: any(q.items for q in self._queues.values()))
            message = self._pop()
            if not (message is not None):
                raise InvariantBroken('invariant broken: message is not None')
            self._changed.notify_all()
            return message

    async def get_nowait(self) -> InboundMessage | None:
        async with self._changed:
            message = self._pop()
            if message is not None:
                self._changed.notify_all()
            return message


class _Link:
    """One authenticated connection."""

    __slots__ = (
        "peer_name",
        "initiator_name",
        "direction",
        "remote_address",
        "result",
        "reader",
        "writer",
        "sealer",
        "opener",
        "tasks",
        "closed",
        "last_send_s",
        "last_receive_s",
    )

    def __init__(
        self,
        *,
        peer_name: str,
        initiator_name: str,
        direction: str,
        remote_address: str,
        result: HandshakeResult,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        sealer: FrameSealer,
        opener: FrameOpener,
        now_s: float,
    ) -> None:
        self.peer_name = peer_name
        self.initiator_name = initiator_name
        self.direction = direction
        self.remote_address = remote_address
        self.result = result
        self.reader = reader
        self.writer = writer
        self.sealer = sealer
        self.opener = opener
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self.last_send_s = now_s
        self.last_receive_s = now_s


class _Peer:
    """Everything this node keeps about one peer, across links."""

    def __init__(self, name: str, address: str | None, config: NetworkConfig) -> None:
        self.name = name
        self.address = address
        self.link: _Link | None = None
        self.priority = _MessageQueue(config.priority_queue_messages_max, config.priority_queue_bytes_max)
        self.bulk = _MessageQueue(config.bulk_queue_messages_max, config.bulk_queue_bytes_max)
        self.wakeup = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.disconnected.set()
        self.since_ms: int | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.messages_out = 0
        self.messages_dropped = 0
        self.messages_refused = 0
        self.connects = 0
        self.last_error: str | None = None
        #: bytes taken from the queues and not yet handed to the socket (being sealed)
        self.sealing_bytes = 0


class _DialFailed(Exception):
    pass


class PeerNetwork:
    """Authenticated, encrypted links to the other nodes of a consortium.

    Use from one event loop: ``await start()``, then :meth:`send` / :meth:`broadcast` (never
    block), ``await receive()``, :meth:`peers` for status, and ``await close()``.
    """

    def __init__(
        self,
        config: NetworkConfig,
        *,
        suite: Suite,
        membership: Membership,
        private_key: PrivateKey,
        certificate: bytes,
        clock_ms: Callable[[], int] | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        logger: logging.Logger | None = None,
    ) -> None:
        """``certificate``: this node's canonical Certificate bytes (subject = ``node_name``);
        ``membership`` is read at every handshake and by :meth:`reauthenticate`, so updates to it
        (revocations) apply to new links at once; ``clock_ms`` is the wall clock certificates are
        checked against (default: the system clock); ``random_bytes`` feeds ephemeral keys,
        nonces and jitter (default: the OS CSPRNG)."""
        self._config = config
        self._suite = suite
        self._membership = membership
        self._private_key = private_key
        self._certificate = bytes(certificate)
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._random_bytes = random_bytes
        self._logger = logger or logging.getLogger(LOGGER_NAME)
        # Fail at construction, not at the first handshake, when the identity is unusable.
        Handshake(
            role=HandshakeRole.INITIATOR,
            suite=suite,
            chain_id=config.chain_id,
            membership=membership,
            private_key=private_key,
            certificate=self._certificate,
            random_bytes=random_bytes,
            required_role=config.required_role,
        )
        self._peers: dict[str, _Peer] = {}
        self._inbound: _Inbound | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._pending_handshakes = 0
        #: handshakes in progress per remote host (the per-host share of the bound above)
        self._pending_by_host: dict[str, int] = {}
        self._started = False
        self._closing = False
        self._listen_port: int | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._config.node_name

    @property
    def config(self) -> NetworkConfig:
        return self._config

    @property
    def listen_port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if not (self._listen_port is not None):
            raise InvariantBroken("start() first")
        return self._listen_port

    async def start(self) -> None:
        """Listen, then dial every configured peer. Raises OSError when the address is taken."""
        if self._started:
            raise InvariantBroken("start() once")
        self._started = True
        self._inbound = _Inbound(self._config.inbound_messages_max, self._config.inbound_bytes_max)
        for name, address in self._config.peers.items():
            self._peers[name] = _Peer(name, address, self._config)
        host, port = parse_address(self._config.listen_address)
        self._server = await asyncio.start_server(self._on_inbound_connection, host, port)
        self._listen_port = self._server.sockets[0].getsockname()[1]
        self._log(logging.INFO, "p2p.listening", "listening", address=format_address(host, self.listen_port))
        for peer in self._peers.values():
            self._spawn(self._dial_loop(peer), f"dial {peer.name}")

    async def close(self) -> None:
        """Stop listening and dialling, close every link, wait for every task to end."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for peer in self._peers.values():
            if peer.link is not None:
                self._drop_link(peer.link, "node shutting down", logging.INFO)
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in list(self._writers):
            writer.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), _CLOSE_WAIT_S)
        self._writers.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), _CLOSE_WAIT_S)

    # -- the node's API ------------------------------------------------------------------------

    def send(self, peer_name: str, kind: int, payload: bytes) -> SendResult:
        """Queue ``payload`` for ``peer_name``; never blocks. ``kind`` is 1-255 (0 is the
        transport's own); a payload above ``config.payload_bytes_max`` is a caller bug
        (ValueError)."""
        self._check_message(kind, payload)
        peer = self._peers.get(peer_name)
        if self._closing or peer is None or peer.link is None:
            return SendResult.NOT_CONNECTED
        return self._enqueue(peer, kind, bytes(payload))

    def broadcast(self, kind: int, payload: bytes) -> dict[str, SendResult]:
        """:meth:`send` to every known peer; the result per peer."""
        self._check_message(kind, payload)
        return {name: self.send(name, kind, payload) for name in sorted(self._peers)}

    async def receive(self) -> InboundMessage:
        """The next received message (priority kinds first). Waits until there is one."""
        if not (self._inbound is not None):
            raise InvariantBroken("start() first")
        return await self._inbound.get()

    async def receive_nowait(self) -> InboundMessage | None:
        if not (self._inbound is not None):
            raise InvariantBroken("start() first")
        return await self._inbound.get_nowait()

    def inbound_buffered(self) -> tuple[int, int]:
        """(messages, bytes) received and not yet taken by :meth:`receive`."""
        return self._inbound.buffered() if self._inbound is not None else (0, 0)

    def peers(self) -> dict[str, PeerStatus]:
        """Every known peer's status, by name."""
        return {name: self._status(peer) for name, peer in sorted(self._peers.items())}

    def queued(self, peer_name: str) -> tuple[int, int]:
        """(messages, bytes) waiting in ``peer_name``'s send queues (cheap; for pacing)."""
        peer = self._peers.get(peer_name)
        if peer is None:
            return (0, 0)
        return (len(peer.priority.items) + len(peer.bulk.items), peer.priority.bytes + peer.bulk.bytes)

    def unsent_bytes(self) -> int:
        """Bytes sent to connected peers that have not reached the kernel yet: queued, being
        sealed, or in a link's write buffer (a caller about to block the event loop waits for 0,
        or the frames would leave only after it)."""
        total = 0
        for peer in self._peers.values():
            link = peer.link
            if link is None:
                continue
            total += peer.priority.bytes + peer.bulk.bytes + peer.sealing_bytes
            transport = link.writer.transport
            if transport is not None and not transport.is_closing():
                total += transport.get_write_buffer_size()
        return total

    def connected_peers(self) -> list[str]:
        return sorted(name for name, peer in self._peers.items() if peer.link is not None)

    def set_membership(self, membership: Membership) -> list[str]:
        """Use ``membership`` from now on (governance replaced it); re-check every link against it
        and return the names of the peers dropped."""
        self._membership = membership
        return self.reauthenticate()

    def reauthenticate(self) -> list[str]:
        """Check every link's certificate against the membership now (call it after applying
        a revocation or removing an org); drop the links that no longer pass. The dropped
        peers' names."""
        now_ms = self._clock_ms()
        dropped = []
        for peer in list(self._peers.values()):
            link = peer.link
            if link is None:
                continue
            try:
                self._membership.authenticate(
                    link.result.peer_certificate, now_ms, required_role=self._config.required_role
                )
            except IdentityRejected as exc:
                self._log(
                    logging.WARNING,
                    "p2p.refused",
                    f"peer {peer.name!r} no longer authenticates: {exc}",
                    peer=peer.name,
                    remote=link.remote_address,
                    reason=HandshakeFailure.IDENTITY_REJECTED.value,
                    identity_reason=exc.reason.value,
                )
                self._drop_link(link, f"identity rejected: {exc.reason.value}", logging.WARNING)
                dropped.append(peer.name)
        return dropped

    # -- sending -------------------------------------------------------------------------------

    def _check_message(self, kind: int, payload: bytes) -> None:
        if not 1 <= kind <= 255:
            raise ValueError(f"message kind must be 1-255 (0 is the transport's), got {kind}")
        if len(payload) > self._config.payload_bytes_max:
            raise ValueError(
                f"payload of {len(payload)} bytes exceeds the {self._config.payload_bytes_max}-byte "
                "frame bound; split it or raise frame_bytes_max"
            )

    def _enqueue(self, peer: _Peer, kind: int, payload: bytes) -> SendResult:
        size = len(payload)
        if kind in self._config.priority_kinds:
            if not peer.priority.fits(size):
                peer.messages_refused += 1
                return SendResult.BACKPRESSURE
            peer.priority.push(kind, payload)
            result = SendResult.QUEUED
        else:
            dropped = 0
            while not peer.bulk.fits(size):
                if not (peer.bulk.pop() is not None):
                    raise InvariantBroken("a single payload always fits an empty queue")
                dropped += 1
            peer.bulk.push(kind, payload)
            peer.messages_dropped += dropped
            result = SendResult.QUEUED_DROPPED_OLDEST if dropped else SendResult.QUEUED
        peer.wakeup.set()
        return result

    # -- dialling ------------------------------------------------------------------------------

    def _random_fraction(self) -> float:
        return int.from_bytes(self._random_bytes(2), "big") / 0xFFFF

    async def _dial_loop(self, peer: _Peer) -> None:
        if not (peer.address is not None):
            raise InvariantBroken('invariant broken: peer.address is not None')
        attempt = 0
        while not self._closing:
            if peer.link is not None:
                await peer.disconnected.wait()
                attempt = max(attempt, 1)  # after a drop, pause before redialling
                continue
            if attempt > 0 or self.name > peer.name:
                delay_ms = self._dial_delay_ms(attempt)
                self._log(
                    logging.INFO,
                    "p2p.reconnecting",
                    f"dialling {peer.name!r} in {delay_ms} ms (attempt {attempt})",
                    peer=peer.name,
                    address=peer.address,
                    attempt=attempt,
                    delay_ms=delay_ms,
                )
                await asyncio.sleep(delay_ms / 1000)
                if peer.link is not None:  # the peer dialled us meanwhile
                    attempt = 0
                    continue
            try:
                await self._dial(peer)
                attempt = 0
            except _DialFailed as exc:
                peer.last_error = str(exc)
                attempt += 1

    def _dial_delay_ms(self, attempt: int) -> int:
        config = self._config
        deferred_ms = 0
        if attempt == 0:  # the higher name lets the lower dial first
            deferred_ms = config.deferred_dial_ms
        else:
            deferred_ms = reconnect_delay_ms(
                attempt, config.reconnect_delay_ms_min, config.reconnect_delay_ms_max, self._random_fraction()
            )
        return max(1, int(deferred_ms))

    async def _dial(self, peer: _Peer) -> None:
        if not (peer.address is not None):
            raise InvariantBroken('invariant broken: peer.address is not None')
        host, port = parse_address(peer.address)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self._config.connect_timeout_ms / 1000
            )
        except (OSError, TimeoutError) as exc:
            raise _DialFailed(f"cannot connect to {peer.address}: {exc or type(exc).__name__}") from exc
        self._writers.add(writer)
        established = await self._handshake(
            reader, writer, HandshakeRole.INITIATOR, peer.address, expected_peer=peer.name
        )
        if established is None:
            raise _DialFailed(peer.last_error or "handshake failed")

    # -- accepting -----------------------------------------------------------------------------

    async def _on_inbound_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if not (task is not None):
            raise InvariantBroken('invariant broken: task is not None')
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._writers.add(writer)
        remote = _remote_address(writer)
        host = _remote_host(writer)
        from_host = self._pending_by_host.get(host, 0)
        refusal: tuple[str, str] | None = None
        if self._closing or self._pending_handshakes >= self._config.pending_handshakes_max:
            refusal = ("HANDSHAKES_FULL", "too many handshakes in progress")
        elif from_host >= self._config.pending_handshakes_per_host_max:
            refusal = ("HOST_HANDSHAKES_FULL", f"{from_host} handshakes from {host} in progress already")
        if refusal is not None:
            self._log(
                logging.WARNING,
                "p2p.dropped",
                f"refusing connection from {remote}: {refusal[1]}",
                remote=remote,
                reason=refusal[0],
            )
            self._close_writer(writer)
            return
        self._pending_handshakes += 1
        self._pending_by_host[host] = from_host + 1
        try:
            await self._handshake(reader, writer, HandshakeRole.RESPONDER, remote, expected_peer=None)
        finally:
            self._pending_handshakes -= 1
            left = self._pending_by_host[host] - 1
            if left:
                self._pending_by_host[host] = left
            else:
                del self._pending_by_host[host]

    # -- the handshake over a stream -----------------------------------------------------------

    async def _handshake(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        role: HandshakeRole,
        remote: str,
        *,
        expected_peer: str | None,
    ) -> _Link | None:
        """Authenticate the peer on a fresh connection, then attach the link. None (and the
        connection closed, the reason logged) when it fails."""
        handshake = Handshake(
            role=role,
            suite=self._suite,
            chain_id=self._config.chain_id,
            membership=self._membership,
            private_key=self._private_key,
            certificate=self._certificate,
            random_bytes=self._random_bytes,
            required_role=self._config.required_role,
            expected_peer=expected_peer,
        )
        transport = writer.transport
        transport.set_write_buffer_limits(high=self._config.write_buffer_bytes_high)
        try:
            async with asyncio.timeout(self._config.handshake_timeout_ms / 1000):
                await self._flush_handshake(handshake, writer)
                while handshake.state is not HandshakeState.ESTABLISHED:
                    header = await reader.readexactly(LENGTH_PREFIX_BYTES)
                    length = parse_length(header, 1, HANDSHAKE_MESSAGE_BYTES_MAX)
                    message = await reader.readexactly(length)
                    handshake.receive(message, self._clock_ms())
                    await self._flush_handshake(handshake, writer)
        except HandshakeFailed as exc:
            self._refuse(writer, remote, expected_peer, exc)
            return None
        except FrameRejected as exc:
            failure = HandshakeFailed(HandshakeFailure.MALFORMED, str(exc))
            self._refuse(writer, remote, expected_peer, failure)
            return None
        except TimeoutError:
            failure = HandshakeFailed(
                HandshakeFailure.TIMEOUT,
                f"no complete handshake within {self._config.handshake_timeout_ms} ms",
            )
            self._refuse(writer, remote, expected_peer, failure)
            return None
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            why = "closed by the peer during the handshake (did it refuse this node's identity?)"
            if not isinstance(exc, asyncio.IncompleteReadError):
                why = f"connection error during the handshake: {exc}"
            self._log(logging.WARNING, "p2p.dropped", f"{remote}: {why}", peer=expected_peer, remote=remote, reason="HANDSHAKE_ABORTED")
            if expected_peer in self._peers:
                self._peers[expected_peer].last_error = why
            self._close_writer(writer)
            return None
        return self._attach(handshake.result, reader, writer, role, remote)

    @staticmethod
    async def _flush_handshake(handshake: Handshake, writer: asyncio.StreamWriter) -> None:
        for message in handshake.messages_to_send():
            writer.write(encode_length(len(message)) + message)
        await writer.drain()

    def _refuse(
        self, writer: asyncio.StreamWriter, remote: str, expected_peer: str | None, exc: HandshakeFailed
    ) -> None:
        claimed = exc.peer_subject or expected_peer
        self._log(
            logging.WARNING,
            "p2p.refused",
            f"refused {claimed or 'unknown peer'} at {remote}: {exc}",
            peer=claimed,
            remote=remote,
            reason=exc.reason.value,
            identity_reason=exc.identity_reason.value if exc.identity_reason else None,
        )
        if claimed in self._peers:  # claimed, maybe not proven: status shows it as a hint
            self._peers[claimed].last_error = f"refused at {remote}: {exc}"
        self._close_writer(writer)

    # -- links ---------------------------------------------------------------------------------

    def _attach(
        self,
        result: HandshakeResult,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        role: HandshakeRole,
        remote: str,
    ) -> _Link | None:
        name = result.peer.subject
        if self._closing:
            self._close_writer(writer)
            return None
        peer = self._peers.get(name)
        if peer is None:
            if not self._config.accept_unlisted_peers or len(self._peers) >= PEERS_MAX:
                self._refuse(
                    writer,
                    remote,
                    None,
                    HandshakeFailed(
                        HandshakeFailure.UNLISTED_PEER,
                        f"{result.peer.org_id}/{name!r} authenticated but is not in this node's peer list "
                        f"(or the list is full at {PEERS_MAX})",
                        peer_subject=name,
                    ),
                )
                return None
            peer = self._peers[name] = _Peer(name, None, self._config)
        initiator = self.name if role is HandshakeRole.INITIATOR else name
        link = _Link(
            peer_name=name,
            initiator_name=initiator,
            direction="outbound" if role is HandshakeRole.INITIATOR else "inbound",
            remote_address=remote,
            result=result,
            reader=reader,
            writer=writer,
            sealer=FrameSealer(self._suite, result.keys.send_key, result.keys.send_iv, self._config.frame_bytes_max),
            opener=FrameOpener(self._suite, result.keys.receive_key, result.keys.receive_iv, self._config.frame_bytes_max),
            now_s=asyncio.get_running_loop().time(),
        )
        current = peer.link
        if current is not None and self._preferred(current) and not self._preferred(link):
            self._log(
                logging.DEBUG,
                "p2p.replaced",
                f"closing duplicate link to {name!r}: the link dialled by {current.initiator_name!r} is kept",
                peer=name,
                remote=remote,
            )
            link.tasks = [self._spawn(self._read_loop(link, peer), f"read retired {name}")]
            self._retire(link, drain=True)
            return None
        if current is not None:
            self._log(
                logging.DEBUG,
                "p2p.replaced",
                f"link to {name!r} dialled by {current.initiator_name!r} replaced by the one dialled by {initiator!r}",
                peer=name,
                remote=remote,
            )
            self._retire(current, drain=True)
        peer.link = link
        peer.disconnected.clear()
        if current is None:
            peer.since_ms = self._clock_ms()
            peer.connects += 1
            self._log(
                logging.INFO,
                "p2p.connected",
                f"connected to {result.peer.org_id}/{name!r} at {remote} ({link.direction})",
                peer=name,
                org=result.peer.org_id,
                remote=remote,
                direction=link.direction,
                session=result.session_id[:8].hex(),
            )
        link.tasks = [
            self._spawn(self._read_loop(link, peer), f"read {name}"),
            self._spawn(self._write_loop(link, peer), f"write {name}"),
            self._spawn(self._keepalive_loop(link, peer), f"keepalive {name}"),
        ]
        peer.wakeup.set()
        return link

    def _preferred(self, link: _Link) -> bool:
        return link.initiator_name == min(self.name, link.peer_name)

    def _retire(self, link: _Link, *, drain: bool = False) -> None:
        """Close ``link`` without touching its peer's state.

        ``drain`` (a duplicate or replaced link, not a faulty one): stop writing and send FIN,
        but keep reading until the peer closes too (at most ``handshake_timeout_ms``), so the
        frames it wrote before it switched links are still delivered, not lost."""
        link.closed = True
        current = asyncio.current_task()
        reader_task = link.tasks[0] if link.tasks else None
        for task in link.tasks:
            if task is not current and not (drain and task is reader_task):
                task.cancel()
        if drain and reader_task is not None and link.writer.can_write_eof():
            try:
                link.writer.write_eof()
            except (OSError, RuntimeError):
                self._close_writer(link.writer)
                return
            self._spawn(self._close_retired(link, reader_task), "close retired")
        else:
            self._close_writer(link.writer)

    async def _close_retired(self, link: _Link, reader_task: asyncio.Task[None]) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader_task), self._config.handshake_timeout_ms / 1000)
        finally:
            reader_task.cancel()
            link.writer.close()  # close() awaits every writer's wait_closed

    def _drop_link(self, link: _Link, reason: str, level: int = logging.WARNING) -> None:
        """Close ``link``; if it is its peer's current link, the peer is disconnected."""
        if link.closed:
            return
        self._retire(link)
        peer = self._peers.get(link.peer_name)
        if peer is None or peer.link is not link:
            return
        peer.link = None
        peer.since_ms = None
        # The queues are kept: the next link (a reconnect, or the other end's replacement
        # link) sends them, so a link switch loses nothing already queued. They stay bounded.
        peer.last_error = reason
        peer.disconnected.set()
        self._log(
            level,
            "p2p.dropped",
            f"link to {peer.name!r} at {link.remote_address} dropped: {reason}",
            peer=peer.name,
            remote=link.remote_address,
            reason=reason,
        )

    async def _read_loop(self, link: _Link, peer: _Peer) -> None:
        if not (self._inbound is not None):
            raise InvariantBroken('invariant broken: self._inbound is not None')
        loop = asyncio.get_running_loop()
        try:
            while True:
                header = await link.reader.readexactly(LENGTH_PREFIX_BYTES)
                length = link.opener.parse_length(header)
                sealed = await link.reader.readexactly(length)
                if length >= OFFLOAD_BYTES_MIN:
                    kind, payload = await asyncio.to_thread(link.opener.open, header, sealed)
                else:
                    kind, payload = link.opener.open(header, sealed)
                link.last_receive_s = loop.time()
                peer.bytes_in += LENGTH_PREFIX_BYTES + length
                if kind == MessageKind.CONTROL:
                    continue
                peer.messages_in += 1
                await self._inbound.put(
                    InboundMessage(peer.name, kind, payload), kind in self._config.priority_kinds
                )
        except FrameRejected as exc:
            self._end_read(link, f"FRAME_REJECTED: {exc}", logging.WARNING)
        except asyncio.IncompleteReadError:
            self._end_read(link, "closed by the peer", logging.INFO)
        except (ConnectionError, OSError) as exc:
            self._end_read(link, f"connection error: {exc}", logging.WARNING)

    def _end_read(self, link: _Link, reason: str, level: int) -> None:
        if link.closed:  # a retired link drained to its end (or failed while draining)
            if level >= logging.WARNING:
                self._log(level, "p2p.dropped", f"retired link to {link.peer_name!r}: {reason}",
                          peer=link.peer_name, remote=link.remote_address, reason=reason)
            self._close_writer(link.writer)
        else:
            self._drop_link(link, reason, level)

    async def _write_loop(self, link: _Link, peer: _Peer) -> None:
        loop = asyncio.get_running_loop()
        peer.sealing_bytes = 0  # what an earlier link had taken went with it
        try:
            while True:
                item = peer.priority.pop() or peer.bulk.pop()
                if item is None:
                    peer.wakeup.clear()
                    await peer.wakeup.wait()
                    continue
                # Seal a batch of queued frames (priority first, at most WRITE_BATCH_BYTES_MAX
                # unless one frame is bigger), write them at once, then wait for the socket.
                batch: list[bytes] = []
                batch_bytes = 0
                while item is not None:
                    kind, payload = item
                    peer.sealing_bytes += len(payload)
                    if len(payload) >= OFFLOAD_BYTES_MIN:
                        frame = await asyncio.to_thread(link.sealer.seal, kind, payload)
                    else:
                        frame = link.sealer.seal(kind, payload)
                    batch.append(frame)
                    batch_bytes += len(frame)
                    if kind != MessageKind.CONTROL:
                        peer.messages_out += 1
                    if batch_bytes >= WRITE_BATCH_BYTES_MAX or len(batch) >= WRITE_BATCH_FRAMES_MAX:
                        break
                    item = peer.priority.pop() or peer.bulk.pop()
                link.writer.write(b"".join(batch) if len(batch) > 1 else batch[0])
                peer.sealing_bytes = 0
                link.last_send_s = loop.time()
                peer.bytes_out += batch_bytes
                await link.writer.drain()
        except FrameRejected as exc:
            self._drop_link(link, f"cannot seal: {exc}")
        except (ConnectionError, OSError) as exc:
            self._drop_link(link, f"connection error while sending: {exc}")

    async def _keepalive_loop(self, link: _Link, peer: _Peer) -> None:
        loop = asyncio.get_running_loop()
        interval_s = self._config.keepalive_interval_ms / 1000
        idle_s = self._config.idle_timeout_ms / 1000
        while True:
            await asyncio.sleep(interval_s / 2)
            now_s = loop.time()
            if now_s - link.last_receive_s > idle_s:
                self._drop_link(link, f"nothing received for {self._config.idle_timeout_ms} ms")
                return
            idle_sending = now_s - link.last_send_s >= interval_s
            if idle_sending and not peer.priority.items:
                peer.priority.push(MessageKind.CONTROL, _KEEPALIVE_PAYLOAD)
                peer.wakeup.set()

    # -- helpers -------------------------------------------------------------------------------

    def _spawn(self, coroutine: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine, name=f"p2p {self.name}: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A bug, not a peer fault: make it loud (peer faults are caught inside the loops).
            self._logger.error(
                "p2p task %s crashed", task.get_name(), exc_info=task.exception(), extra={"event": "p2p.bug", "node": self.name}
            )

    def _close_writer(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        self._spawn(self._await_closed(writer), "close")

    async def _await_closed(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), _CLOSE_WAIT_S)
        self._writers.discard(writer)

    def _status(self, peer: _Peer) -> PeerStatus:
        link = peer.link
        return PeerStatus(
            name=peer.name,
            address=peer.address,
            connected=link is not None,
            direction=link.direction if link else None,
            remote_address=link.remote_address if link else None,
            org_id=link.result.peer.org_id if link else None,
            since_ms=peer.since_ms,
            session=link.result.session_id[:8].hex() if link else None,
            bytes_in=peer.bytes_in,
            bytes_out=peer.bytes_out,
            messages_in=peer.messages_in,
            messages_out=peer.messages_out,
            messages_dropped=peer.messages_dropped,
            messages_refused=peer.messages_refused,
            queued_messages=len(peer.priority.items) + len(peer.bulk.items),
            queued_bytes=peer.priority.bytes + peer.bulk.bytes,
            connects=peer.connects,
            last_error=peer.last_error,
        )

    def _log(self, level: int, event: str, message: str, **fields: Any) -> None:
        self._logger.log(level, message, extra={"event": event, "node": self.name, **fields})


def _remote_host(writer: asyncio.StreamWriter) -> str:
    peername = writer.get_extra_info("peername")
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return str(peername)


def _remote_address(writer: asyncio.StreamWriter) -> str:
    peername = writer.get_extra_info("peername")
    if isinstance(peername, tuple) and len(peername) >= 2:
        return format_address(str(peername[0]), int(peername[1]))
    return str(peername)

"""Network configuration: addresses, bounds and timers for :class:`~pilotchain.p2p.PeerNetwork`.

Addresses always come from here (``"host:port"``, ``"[v6 address]:port"``); nothing in the p2p
package assumes loopback. Every queue, frame and timer has a named bound with a default; the
constructor refuses combinations that cannot work (:class:`~pilotchain.p2p.errors.ConfigError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from pilotchain.identity.records import NAME_CHARS_MAX, Role
from pilotchain.p2p.errors import ConfigError
from pilotchain.p2p.framing import (
    FRAME_BYTES_MAX_DEFAULT,
    FRAME_BYTES_MAX_LIMIT,
    FRAME_OVERHEAD_BYTES,
    MessageKind,
)
from pilotchain.p2p.handshake import CHAIN_ID_CHARS_MAX

__all__ = ["PEERS_MAX", "NetworkConfig", "format_address", "parse_address"]

#: configured peers of one node
PEERS_MAX: Final = 1_000
_MIB: Final = 1024 * 1024


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """``(host, port)`` from ``"host:port"`` or ``"[ipv6]:port"``; ConfigError otherwise."""
    host, separator, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        separator = ""  # an unbracketed IPv6 address: ambiguous
    if not separator or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(
            f"{what} {text!r:.80} is not host:port (e.g. '10.0.0.5:7000' or '[fd00::5]:7000')"
        )
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """One node's view of the network. Times in milliseconds, sizes in bytes."""

    chain_id: str
    #: this node's name: the subject of its certificate
    node_name: str
    #: where to listen, "host:port" ("0.0.0.0:7000"; port 0 picks a free port)
    listen_address: str
    #: peer name (its certificate's subject) -> "host:port" to dial
    peers: Mapping[str, str] = field(default_factory=dict)
    #: the role a peer's certificate must hold; None accepts any member identity
    required_role: Role | str | None = Role.VALIDATOR
    #: accept inbound links from authenticated members that are not in ``peers``
    accept_unlisted_peers: bool = False
    #: bound on one sealed frame; bigger ones are refused and the link dropped
    frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT
    connect_timeout_ms: int = 3_000
    #: the node with the higher name waits this long before dialling a peer that has not dialled
    #: it (the lower name's link is the one both keep, so this avoids most duplicate links)
    deferred_dial_ms: int = 1_000
    handshake_timeout_ms: int = 5_000
    #: first reconnect delay; doubles per failed attempt up to the max, with jitter
    reconnect_delay_ms_min: int = 100
    reconnect_delay_ms_max: int = 10_000
    #: send a keepalive when nothing was sent for this long
    keepalive_interval_ms: int = 5_000
    #: drop a link when nothing was received for this long
    idle_timeout_ms: int = 30_000
    #: per peer: the priority queue (consensus and control messages)
    priority_queue_messages_max: int = 4_096
    priority_queue_bytes_max: int = 16 * _MIB
    #: per peer: the bulk queue (mempool, sync, applications)
    bulk_queue_messages_max: int = 1_024
    bulk_queue_bytes_max: int = 64 * _MIB
    #: received messages waiting for the node to :meth:`receive` them, per class
    inbound_messages_max: int = 4_096
    inbound_bytes_max: int = 64 * _MIB
    #: the socket write buffer above which the writer waits (bounds memory per link)
    write_buffer_bytes_high: int = 256 * 1024
    #: inbound connections still in their handshake
    pending_handshakes_max: int = 64
    #: of those, from one remote host (so one stranger cannot fill the slots peers need)
    pending_handshakes_per_host_max: int = 8
    #: kinds sent through the priority queue
    priority_kinds: frozenset[int] = frozenset(
        {MessageKind.CONTROL, MessageKind.CONSENSUS, MessageKind.MEMBERSHIP, MessageKind.PREVIEW}
    )

    def __post_init__(self) -> None:
        if not 1 <= len(self.chain_id) <= CHAIN_ID_CHARS_MAX:
            raise ConfigError(f"chain_id must be 1-{CHAIN_ID_CHARS_MAX} characters")
        if not 1 <= len(self.node_name) <= NAME_CHARS_MAX:
            raise ConfigError(f"node_name must be 1-{NAME_CHARS_MAX} characters")
        parse_address(self.listen_address, "listen_address")
        if len(self.peers) > PEERS_MAX:
            raise ConfigError(f"at most {PEERS_MAX} peers, got {len(self.peers)}")
        for name, address in self.peers.items():
            if name == self.node_name:
                raise ConfigError(f"peers lists this node itself ({name!r}); remove it")
            parse_address(address, f"address of peer {name!r}")
        object.__setattr__(self, "peers", MappingProxyType(dict(self.peers)))
        if not FRAME_OVERHEAD_BYTES < self.frame_bytes_max <= FRAME_BYTES_MAX_LIMIT:
            raise ConfigError(
                f"frame_bytes_max must be in ({FRAME_OVERHEAD_BYTES}, {FRAME_BYTES_MAX_LIMIT}]"
            )
        positive = (
            "connect_timeout_ms",
            "deferred_dial_ms",
            "handshake_timeout_ms",
            "reconnect_delay_ms_min",
            "keepalive_interval_ms",
            "priority_queue_messages_max",
            "bulk_queue_messages_max",
            "inbound_messages_max",
            "write_buffer_bytes_high",
            "pending_handshakes_max",
            "pending_handshakes_per_host_max",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.reconnect_delay_ms_max < self.reconnect_delay_ms_min:
            raise ConfigError("reconnect_delay_ms_max must be at least reconnect_delay_ms_min")
        if self.idle_timeout_ms <= self.keepalive_interval_ms:
            raise ConfigError("idle_timeout_ms must exceed keepalive_interval_ms (else idle links drop)")
        for name in ("priority_queue_bytes_max", "bulk_queue_bytes_max", "inbound_bytes_max"):
            if getattr(self, name) < self.frame_bytes_max:
                raise ConfigError(f"{name} must hold at least one frame ({self.frame_bytes_max} bytes)")
        if any(not 0 <= kind <= 255 for kind in self.priority_kinds):
            raise ConfigError("priority_kinds must be bytes (0-255)")
        if MessageKind.CONTROL not in self.priority_kinds:
            raise ConfigError("the CONTROL kind must stay in priority_kinds (keepalives)")

    @property
    def payload_bytes_max(self) -> int:
        """The largest payload :meth:`PeerNetwork.send` accepts."""
        return self.frame_bytes_max - FRAME_OVERHEAD_BYTES

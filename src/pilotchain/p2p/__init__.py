"""P2P between the validator nodes of a consortium: authenticated, encrypted, framed links.

Theory of operation
-------------------
Three layers, the lower two pure:

* :mod:`~pilotchain.p2p.handshake` — a sans-IO SIGMA-style handshake: both sides exchange
  ``Hello`` (version, chain, suite, ephemeral key share, nonce, certificate) and ``Auth``
  (a signature by the identity key over the transcript hash, plus a key confirmation). The
  membership must accept the peer's certificate with the required role (``validator``), and
  HKDF over the ECDH secret and the transcript yields one AEAD key per direction. X25519 /
  HKDF-SHA-256 / AES-256-GCM for ``intl``; ECDH on the SM2 curve / HKDF-SM3 / SM4-GCM for ``gm``.
* :mod:`~pilotchain.p2p.framing` — 4-byte length-prefixed frames, bounded, each sealed with a
  per-direction counter nonce; a kind byte multiplexes consensus, mempool and sync traffic.
* :mod:`~pilotchain.p2p.transport` — :class:`PeerNetwork`, the asyncio shell: listen, dial with
  backoff, one link per peer pair, priority and bulk send queues, bounded receive buffer,
  keepalives, structured logs. Addresses come from :class:`NetworkConfig` only.

See ``docs/p2p.md`` for the diagrams, the key schedule and every bound.

Error tree::

    P2PError
    ├── HandshakeFailed   the peer was not authenticated (HandshakeFailure code; the membership's
    │                     RejectReason when its certificate was refused)
    ├── FrameRejected     an oversized, malformed or undecryptable frame (the link is dropped)
    └── ConfigError       a configuration that cannot work (also ValueError)
"""

from __future__ import annotations

from pilotchain.p2p.config import NetworkConfig, format_address, parse_address
from pilotchain.p2p.errors import (
    ConfigError,
    FrameRejected,
    HandshakeFailed,
    HandshakeFailure,
    P2PError,
)
from pilotchain.p2p.framing import (
    FRAME_BYTES_MAX_DEFAULT,
    KIND_APPLICATION_MIN,
    FrameOpener,
    FrameSealer,
    MessageKind,
)
from pilotchain.p2p.handshake import (
    PROTOCOL_VERSION,
    Handshake,
    HandshakeResult,
    HandshakeRole,
    HandshakeState,
    SessionKeys,
)
from pilotchain.p2p.transport import (
    InboundMessage,
    PeerNetwork,
    PeerStatus,
    SendResult,
    reconnect_delay_ms,
)

__all__ = [
    "FRAME_BYTES_MAX_DEFAULT",
    "KIND_APPLICATION_MIN",
    "PROTOCOL_VERSION",
    "ConfigError",
    "FrameOpener",
    "FrameRejected",
    "FrameSealer",
    "Handshake",
    "HandshakeFailed",
    "HandshakeFailure",
    "HandshakeResult",
    "HandshakeRole",
    "HandshakeState",
    "InboundMessage",
    "MessageKind",
    "NetworkConfig",
    "P2PError",
    "PeerNetwork",
    "PeerStatus",
    "SendResult",
    "SessionKeys",
    "format_address",
    "parse_address",
    "reconnect_delay_ms",
]

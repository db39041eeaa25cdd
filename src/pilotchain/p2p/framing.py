"""Frames on an authenticated link: length prefix, AEAD seal, counter nonces, message kinds.

Theory of operation
-------------------
Pure (no I/O). Every frame on the wire is::

    length (4 bytes, big-endian, = len(sealed))  ‖  sealed
    sealed = AEAD(key_dir, nonce = iv_dir XOR counter_dir (96-bit big-endian),
                  plaintext = kind (1 byte) ‖ payload, associated data = the 4 length bytes)

Handshake messages use the same length prefix, unsealed, with the much smaller bound
:data:`HANDSHAKE_MESSAGE_BYTES_MAX`.

Each direction has its own key, IV and counter (from the handshake), starting at 0 and going up
by one per frame, so a nonce is never reused under a key, and a frame that is dropped, replayed,
reordered or moved to the other direction fails to open. The length is authenticated as
associated data. A frame whose length is above the bound is refused from its 4-byte header,
before a byte of its body is buffered; a frame that does not open is a
:class:`~pilotchain.p2p.errors.FrameRejected`, and the link is dropped: after a failure the
counters no longer agree, so nothing further on that link can be trusted.

Kinds multiplex the link: the transport gives payloads to the node untouched, with the kind byte.
Kinds below :data:`KIND_APPLICATION_MIN` are reserved for pilotchain (see :class:`MessageKind`).
"""

from __future__ import annotations

import enum
from typing import Final

from pilotchain.crypto import CryptoError, Suite
from pilotchain.errors import InvariantBroken
from pilotchain.p2p.errors import FrameRejected
from pilotchain.p2p.handshake import AEAD_IV_BYTES

__all__ = [
    "FRAME_BYTES_MAX_DEFAULT",
    "FRAME_BYTES_MAX_LIMIT",
    "FRAME_OVERHEAD_BYTES",
    "FRAMES_PER_KEY_MAX",
    "KIND_APPLICATION_MIN",
    "LENGTH_PREFIX_BYTES",
    "FrameOpener",
    "FrameSealer",
    "MessageKind",
    "encode_length",
    "parse_length",
]

LENGTH_PREFIX_BYTES: Final = 4
#: default bound on one sealed frame (a block must fit)
FRAME_BYTES_MAX_DEFAULT: Final = 16 * 1024 * 1024
#: no configuration may allow more (the codec refuses bigger values anyway)
FRAME_BYTES_MAX_LIMIT: Final = 64 * 1024 * 1024
_TAG_BYTES: Final = 16
_KIND_BYTES: Final = 1
#: sealed bytes beyond the payload: kind byte and AEAD tag (the length prefix not included)
FRAME_OVERHEAD_BYTES: Final = _KIND_BYTES + _TAG_BYTES
#: frames under one key before the link must be re-established (far below the 2^96 nonce space;
#: unreachable in practice, but a counter must have a bound)
FRAMES_PER_KEY_MAX: Final = 2**48
#: kinds from here up are free for applications and experiments
KIND_APPLICATION_MIN: Final = 64


class MessageKind(enum.IntEnum):
    """The kind byte of a frame. Reserved for pilotchain: 0-63."""

    #: transport-internal (keepalive); never delivered to the node
    CONTROL = 0
    #: consensus votes and proposals: small, latency-critical (priority queue)
    CONSENSUS = 1
    #: transaction gossip (bulk queue)
    MEMPOOL = 2
    #: block and state transfer (bulk queue)
    SYNC = 3
    #: membership updates (revocations, rotations) gossiped between nodes (priority queue)
    MEMBERSHIP = 4
    #: a proposer's next block, sent before it builds it, so validators execute it meanwhile
    #: (priority queue: it must arrive before the proposal that follows it)
    PREVIEW = 5


def encode_length(length: int) -> bytes:
    if not (0 <= length < 2**32):
        raise InvariantBroken(f"invariant broken: unexpected length {length!r}")
    return length.to_bytes(LENGTH_PREFIX_BYTES, "big")


def parse_length(header: bytes, bytes_min: int, bytes_max: int) -> int:
    """The body length announced by a 4-byte ``header``; :class:`FrameRejected` outside
    ``[bytes_min, bytes_max]``."""
    if not (len(header) == LENGTH_PREFIX_BYTES):
        raise InvariantBroken('invariant broken: len(header) == LENGTH_PREFIX_BYTES')
    length = int.from_bytes(header, "big")
    if length > bytes_max:
        raise FrameRejected(f"frame of {length} bytes announced, the limit is {bytes_max}")
    if length < bytes_min:
        raise FrameRejected(f"frame of {length} bytes announced, the minimum is {bytes_min}")
    return length


def _nonce(iv: bytes, counter: int) -> bytes:
    return (int.from_bytes(iv, "big") ^ counter).to_bytes(AEAD_IV_BYTES, "big")


class FrameSealer:
    """One direction's sending half: seals frames with consecutive nonces."""

    __slots__ = ("_suite", "_key", "_iv", "_counter", "_payload_bytes_max")

    def __init__(self, suite: Suite, key: bytes, iv: bytes, frame_bytes_max: int) -> None:
        if not (len(key) == suite.aead_key_size and len(iv) == AEAD_IV_BYTES):
            raise InvariantBroken('invariant broken: len(key) == suite.aead_key_size and len(iv) == AEAD_IV_BYTES')
        if not (FRAME_OVERHEAD_BYTES < frame_bytes_max <= FRAME_BYTES_MAX_LIMIT):
            raise InvariantBroken('invariant broken: FRAME_OVERHEAD_BYTES < frame_bytes_max <= FRAME_BYTES_MAX_LIMIT')
        self._suite = suite
        self._key = key
        self._iv = iv
        self._counter = 0
        self._payload_bytes_max = frame_bytes_max - FRAME_OVERHEAD_BYTES

    @property
    def frames_sealed(self) -> int:
        return self._counter

    def seal(self, kind: int, payload: bytes) -> bytes:
        """The whole frame (length prefix included) carrying ``payload`` of ``kind``."""
        if not (0 <= kind <= 255):
            raise InvariantBroken(f"invariant broken: unexpected kind {kind!r}")
        if not (len(payload) <= self._payload_bytes_max):
            raise InvariantBroken("the caller checks the payload bound")
        if self._counter >= FRAMES_PER_KEY_MAX:
            raise FrameRejected("this link's send key is exhausted; reconnect for fresh keys")
        header = encode_length(len(payload) + FRAME_OVERHEAD_BYTES)
        sealed = self._suite.aead_encrypt(
            self._key, _nonce(self._iv, self._counter), bytes([kind]) + payload, header
        )
        self._counter += 1
        if not (len(sealed) == len(payload) + FRAME_OVERHEAD_BYTES):
            raise InvariantBroken('invariant broken: len(sealed) == len(payload) + FRAME_OVERHEAD_BYTES')
        return header + sealed


class FrameOpener:
    """One direction's receiving half: opens frames in order."""

    __slots__ = ("_suite", "_key", "_iv", "_counter", "_frame_bytes_max")

    def __init__(self, suite: Suite, key: bytes, iv: bytes, frame_bytes_max: int) -> None:
        if not (len(key) == suite.aead_key_size and len(iv) == AEAD_IV_BYTES):
            raise InvariantBroken('invariant broken: len(key) == suite.aead_key_size and len(iv) == AEAD_IV_BYTES')
        if not (FRAME_OVERHEAD_BYTES < frame_bytes_max <= FRAME_BYTES_MAX_LIMIT):
            raise InvariantBroken('invariant broken: FRAME_OVERHEAD_BYTES < frame_bytes_max <= FRAME_BYTES_MAX_LIMIT')
        self._suite = suite
        self._key = key
        self._iv = iv
        self._counter = 0
        self._frame_bytes_max = frame_bytes_max

    @property
    def frames_opened(self) -> int:
        return self._counter

    def parse_length(self, header: bytes) -> int:
        """The sealed length a frame header announces (FrameRejected when out of bounds)."""
        return parse_length(header, FRAME_OVERHEAD_BYTES, self._frame_bytes_max)

    def open(self, header: bytes, sealed: bytes) -> tuple[int, bytes]:
        """``(kind, payload)`` of the next frame; :class:`FrameRejected` when it does not open."""
        if len(sealed) != self.parse_length(header):
            raise FrameRejected("frame body length differs from its header")
        if self._counter >= FRAMES_PER_KEY_MAX:
            raise FrameRejected("this link's receive key is exhausted; reconnect for fresh keys")
        try:
            plaintext = self._suite.aead_decrypt(self._key, _nonce(self._iv, self._counter), sealed, header)
        except CryptoError as exc:
            raise FrameRejected(
                f"frame {self._counter} does not decrypt (tampered, replayed, reordered or truncated)"
            ) from exc
        self._counter += 1
        return plaintext[0], plaintext[_KIND_BYTES:]

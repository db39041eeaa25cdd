"""The delivery package: how a payload travels from the provider's vault to the consumer's.

A package is a sequence of frames, each a 4-byte big-endian length and that many bytes: first
the canonical :class:`~pilotchain.apps.exchange.records.DeliveryHeader`, then the payload's
chunks sealed under a fresh data key (the vault store's STREAM construction,
:class:`~pilotchain.apps.exchange.store.ChunkCipher`, keyed by the request id). The data key is
sealed to the consumer organisation's registered encryption key (X25519 + HKDF + AES-256-GCM for
``intl``, SM2 encryption + SM4-GCM for ``gm``: :mod:`pilotchain.crypto.sealing`) with the request
id as associated data — only that organisation opens it, and only for that request.

Pure (no I/O): :func:`seal_frames` and :class:`FrameReader` turn iterators into iterators.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from pilotchain.apps.exchange.records import ExchangeError
from pilotchain.apps.exchange.store import ChunkCipher
from pilotchain.crypto import Suite

__all__ = ["FRAME_BYTES_MAX", "FrameReader", "chunk_count", "frame", "open_chunks", "seal_frames"]

#: no frame is larger than this (a 1 MiB chunk and its tag, or a header)
FRAME_BYTES_MAX = 17 * 1024 * 1024
HEADER_BYTES_MAX = 256 * 1024
_LENGTH = struct.Struct(">I")


def frame(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


def chunk_count(size: int, chunk_bytes: int) -> int:
    return max(1, -(-size // chunk_bytes))


def seal_frames(suite: Suite, data_key: bytes, nonce_prefix: bytes, request_id: str,
                chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Frames of ``chunks`` sealed in order, the last one marked last (one-chunk lookahead)."""
    cipher = ChunkCipher(suite, data_key, nonce_prefix, request_id)
    previous: bytes | None = None
    for chunk in chunks:
        if previous is not None:
            yield frame(cipher.seal(previous, last=False))
        previous = chunk
    yield frame(cipher.seal(previous if previous is not None else b"", last=True))


class FrameReader:
    """Frames out of a byte stream that arrives in arbitrary pieces (bounded buffering)."""

    def __init__(self, pieces: Iterable[bytes], frame_bytes_max: int = FRAME_BYTES_MAX) -> None:
        self._pieces = iter(pieces)
        self._buffer = bytearray()
        self._max = frame_bytes_max

    def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            piece = next(self._pieces, None)
            if piece is None:
                return False
            self._buffer += piece
        return True

    def next(self, limit: int | None = None) -> bytes:
        if not self._fill(4):
            raise ExchangeError("TRUNCATED", "the delivery ended before its last frame")
        (length,) = _LENGTH.unpack_from(self._buffer)
        if length > (limit if limit is not None else self._max):
            raise ExchangeError("MALFORMED", f"a delivery frame of {length} bytes is larger than allowed")
        if not self._fill(4 + length):
            raise ExchangeError("TRUNCATED", "the delivery ended inside a frame")
        data = bytes(self._buffer[4:4 + length])
        del self._buffer[:4 + length]
        return data

    def at_end(self) -> bool:
        return not self._fill(1)


def open_chunks(suite: Suite, data_key: bytes, nonce_prefix: bytes, request_id: str, reader: FrameReader,
                count: int) -> Iterator[bytes]:
    """The plaintext chunks of a package (``count`` of them); ExchangeError on any tampering."""
    cipher = ChunkCipher(suite, data_key, nonce_prefix, request_id)
    for index in range(count):
        sealed = reader.next()
        try:
            yield cipher.open(sealed, last=index == count - 1)
        except Exception as exc:  # the store's TAMPERED error, re-said for a delivery
            raise ExchangeError("TAMPERED", f"chunk {index} of the delivery does not authenticate: "
                                "it was altered in transit or by the provider") from exc
    if not reader.at_end():
        raise ExchangeError("MALFORMED", "the delivery has bytes after its last chunk")

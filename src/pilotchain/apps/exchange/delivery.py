"""The delivery package: how a payload travels from the provider's vault to the consumer's.

A package is a sequence of frames, each a 4-byte big-endian length and that many bytes: first
the canonical :class:`~pilotchain.apps.exchange.records.DeliveryHeader`, then the payload's
chunks sealed under a fresh data key (the vault store's STREAM construction,
:class:`~pilotchain.apps.exchange.store.ChunkCipher`, keyed by the request id). The data key is
sealed to the consumer organisation's registered encryption key (X25519 + HKDF + AES-256-GCM for
``intl``, SM2 encryption + SM4-GCM for ``gm``: :mod:`pilotchain.crypto.sealing`) with the request
id as associated data — only that organisation opens it, and only for that request.

Pure (no I/O): :func:`seal_frames` and :class:`FrameReader` turn iterators into iterators;
:func:`read_header` and :func:`open_payload` are the consumer's checks of what a provider sent
(a provider is a member, not trusted: every field is bounded before it drives the cipher).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from pilotchain.apps.exchange.records import (
    RECEIPT_DOMAIN,
    DeliveryHeader,
    ExchangeError,
    Receipt,
    SignedRecord,
    verify_signed,
)
from pilotchain.apps.exchange.store import CHUNK_BYTES, ChunkCipher
from pilotchain.codec import CodecError, decode
from pilotchain.crypto import Suite
from pilotchain.crypto.sealing import SealError, SealPrivateKey, open_sealed
from pilotchain.identity.records import Certificate

__all__ = ["FRAME_BYTES_MAX", "FrameReader", "chunk_count", "frame", "open_chunks", "open_payload", "read_header",
           "seal_frames", "verify_receipt"]

#: no frame is larger than this (a 1 MiB chunk and its tag, or a header)
FRAME_BYTES_MAX = 17 * 1024 * 1024
HEADER_BYTES_MAX = 256 * 1024
_LENGTH = struct.Struct(">I")


def frame(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


#: the most chunks a delivery may announce: a payload of 4 TiB at the store's chunk size
DELIVERY_CHUNKS_MAX = 4 * 1024 * 1024
_NONCE_PREFIX_BYTES = 7


def chunk_count(size: int, chunk_bytes: int) -> int:
    return max(1, -(-size // chunk_bytes))


def verify_receipt(suite: Suite, raw: bytes) -> tuple[SignedRecord, Certificate, Receipt]:
    """A signed receipt (SignedRecord bytes): checked signature, its certificate and the receipt;
    ExchangeError ``MALFORMED`` / ``BAD_SIGNATURE`` otherwise (membership is the caller's check)."""
    signed, certificate = verify_signed(suite, raw, RECEIPT_DOMAIN)
    try:
        return signed, certificate, decode(signed.body, Receipt)
    except CodecError as exc:
        raise ExchangeError("MALFORMED", f"the signed receipt holds no receipt: {exc}") from exc


def read_header(suite: Suite, reader: FrameReader) -> tuple[DeliveryHeader, SignedRecord, Certificate, Receipt]:
    """The first frame of a delivery package: the header and the provider's signed ``delivered``
    receipt it carries (signature checked); ExchangeError otherwise."""
    try:
        header = decode(reader.next(HEADER_BYTES_MAX), DeliveryHeader)
    except CodecError as exc:
        raise ExchangeError("MALFORMED", f"the delivery header does not decode: {exc}") from exc
    signed, certificate, receipt = verify_receipt(suite, header.receipt)
    return header, signed, certificate, receipt


def open_payload(suite: Suite, seal_key: SealPrivateKey, header: DeliveryHeader, request_id: str,
                 reader: FrameReader) -> Iterator[bytes]:
    """The plaintext chunks of the package ``header`` starts: its data key opened with
    ``seal_key``, its size, chunk size and nonce prefix within bounds; ExchangeError otherwise
    (``UNSEALABLE`` for a key that does not open, ``MALFORMED`` for fields out of bounds)."""
    try:
        data_key = open_sealed(seal_key, header.sealed_key, associated_data=request_id.encode())
    except SealError as exc:
        raise ExchangeError("UNSEALABLE", f"the delivery's key does not open with our key: {exc}") from exc
    if len(data_key) != suite.aead_key_size or len(header.nonce_prefix) != _NONCE_PREFIX_BYTES:
        raise ExchangeError("MALFORMED", f"the delivery's data key is {len(data_key)} bytes and its nonce prefix "
                            f"{len(header.nonce_prefix)}; a {suite.name} delivery uses {suite.aead_key_size} and "
                            f"{_NONCE_PREFIX_BYTES}")
    if not 1 <= header.chunk_bytes <= CHUNK_BYTES or header.size < 0 \
            or chunk_count(header.size, header.chunk_bytes) > DELIVERY_CHUNKS_MAX:
        raise ExchangeError("MALFORMED", f"the delivery announces {header.size} bytes in chunks of "
                            f"{header.chunk_bytes}; chunks are 1..{CHUNK_BYTES} bytes, at most "
                            f"{DELIVERY_CHUNKS_MAX} of them")
    return open_chunks(suite, data_key, header.nonce_prefix, request_id, reader,
                       chunk_count(header.size, header.chunk_bytes))


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

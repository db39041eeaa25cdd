"""Canonical, deterministic encoding for everything pilotchain hashes, signs or replicates.

Theory of operation
-------------------
Every replicated value (transactions, blocks, receipts, certificates, consensus messages) is a
frozen ``msgspec.Struct`` subclass of :class:`Record`. Records encode as MessagePack *arrays*
in declaration order (``array_like=True``), so a field's position, not its name, is on the wire,
and the same value always yields the same bytes:

* struct fields: fixed order (declaration order);
* integers: the shortest MessagePack form (msgspec always picks it);
* maps: keys sorted (``order="deterministic"``);
* no floats anywhere (a test walks every Record subclass and refuses float annotations).

:func:`decode` is strict: it rejects unknown or missing fields, wrong types, trailing bytes, and
any input whose re-encoding is not byte-identical to it (a non-minimal integer, unsorted map
keys, a float where an int belongs). So an id computed over received bytes equals the id computed
over the decoded value, and two nodes can never disagree about the hash of "the same" value.

This module is pure: no I/O, clock or randomness.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from pilotchain.errors import CoreError

__all__ = ["Record", "CodecError", "encode", "decode", "MAX_ENCODED_BYTES"]

#: No single encoded value pilotchain accepts may be larger than this (blocks included).
MAX_ENCODED_BYTES = 64 * 1024 * 1024


class CodecError(CoreError, ValueError):
    """Bytes that are not the canonical encoding of the expected type."""


class Record(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """Base of every canonically encoded value."""


T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder(order="deterministic")
_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def encode(value: Any) -> bytes:
    """The canonical bytes of ``value``; CodecError for values with no encoding (e.g. ints
    outside [-2**63, 2**64 - 1], unsupported types)."""
    try:
        return _encoder.encode(value)
    except (OverflowError, TypeError, msgspec.EncodeError) as exc:
        raise CodecError(f"cannot encode {type(value).__name__}: {exc}") from exc


def _decoder_for(type_: Any) -> msgspec.msgpack.Decoder[Any]:
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = msgspec.msgpack.Decoder(type_, strict=True)
        _decoders[type_] = decoder
    return decoder


def decode(data: bytes, type_: type[T], *, max_bytes: int = MAX_ENCODED_BYTES) -> T:
    """Decode ``data`` as ``type_``; raise :class:`CodecError` unless it is canonical."""
    if len(data) > max_bytes:
        raise CodecError(f"encoded value is {len(data)} bytes, limit {max_bytes}")
    try:
        value = _decoder_for(type_).decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, OverflowError, RecursionError) as exc:
        raise CodecError(f"cannot decode {getattr(type_, '__name__', type_)}: {exc}") from exc
    if _encoder.encode(value) != bytes(data):
        raise CodecError(f"non-canonical encoding of {getattr(type_, '__name__', type_)}")
    return value  # type: ignore[no-any-return]

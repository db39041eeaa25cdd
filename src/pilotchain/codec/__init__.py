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

__all__ = ["Record", "CodecError", "encode", "decode", "check_nesting", "nests_within", "MAX_ENCODED_BYTES", "ANY_DEPTH_MAX"]

#: No single encoded value pilotchain accepts may be larger than this (blocks included).
MAX_ENCODED_BYTES = 64 * 1024 * 1024
#: Free-form values (decoded as ``Any``) nest at most this deep; checked on the bytes, without
#: recursion, before the C decoder sees them. msgspec recurses once per level and stops at the
#: interpreter's recursion limit, which depends on how deep the caller's own stack happens to be:
#: without a fixed bound far below it, the same bytes could decode on one node and fail on another.
ANY_DEPTH_MAX = 64


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


def decode(data: bytes, type_: type[T], *, max_bytes: int = MAX_ENCODED_BYTES,
           depth_max: int = ANY_DEPTH_MAX) -> T:
    """Decode ``data`` as ``type_``; raise :class:`CodecError` unless it is canonical.

    A free-form ``Any`` value is first checked to nest at most ``depth_max`` levels
    (:func:`check_nesting`), so the answer never depends on the caller's stack depth."""
    if len(data) > max_bytes:
        raise CodecError(f"encoded value is {len(data)} bytes, limit {max_bytes}")
    if type_ is Any:
        depth = min(depth_max, ANY_DEPTH_MAX)
        if not nests_within(data, depth):
            check_nesting(data, depth)
    try:
        value = _decoder_for(type_).decode(data)
        canonical = _encoder.encode(value) == bytes(data)
    except (msgspec.DecodeError, msgspec.ValidationError, msgspec.EncodeError, ValueError, OverflowError,
            RecursionError, TypeError) as exc:  # TypeError: a map key the canonical encoder cannot order
        raise CodecError(f"cannot decode {getattr(type_, '__name__', type_)}: {exc}") from exc
    if not canonical:
        raise CodecError(f"non-canonical encoding of {getattr(type_, '__name__', type_)}")
    return value  # type: ignore[no-any-return]


# MessagePack lead bytes -> (bytes of length field or fixed payload, kind): kind 0 = a scalar with
# ``size`` payload bytes; 1 = str/bin with a ``size``-byte length; 2 = ext with a ``size``-byte
# length (+ 1 type byte); 3 = array with a ``size``-byte count; 4 = map with a ``size``-byte count
_LEADS: dict[int, tuple[int, int]] = {
    0xC0: (0, 0), 0xC2: (0, 0), 0xC3: (0, 0),
    0xC4: (1, 1), 0xC5: (2, 1), 0xC6: (4, 1),
    0xC7: (1, 2), 0xC8: (2, 2), 0xC9: (4, 2),
    0xCA: (4, 0), 0xCB: (8, 0),
    0xCC: (1, 0), 0xCD: (2, 0), 0xCE: (4, 0), 0xCF: (8, 0),
    0xD0: (1, 0), 0xD1: (2, 0), 0xD2: (4, 0), 0xD3: (8, 0),
    0xD4: (2, 0), 0xD5: (3, 0), 0xD6: (5, 0), 0xD7: (9, 0), 0xD8: (17, 0),
    0xD9: (1, 1), 0xDA: (2, 1), 0xDB: (4, 1),
    0xDC: (2, 3), 0xDD: (4, 3), 0xDE: (2, 4), 0xDF: (4, 4),
}  # fmt: skip


#: every byte that can start a MessagePack array or map (fixmap, fixarray, array 16/32, map 16/32)
_CONTAINER_LEADS = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])


def nests_within(data: bytes, depth_max: int) -> bool:
    """True when ``data`` cannot hold a value nested deeper than ``depth_max``: it has at most
    ``depth_max`` bytes that could start an array or a map (one C-level pass). Each level of
    nesting needs its own lead byte, so this never says True wrongly; False only means "count
    them" (:func:`check_nesting`). Most values — a wallet record, a transaction's arguments — are
    settled here, at a small fraction of the walk's cost."""
    return len(data) - len(bytes(data).translate(None, _CONTAINER_LEADS)) <= depth_max


def check_nesting(data: bytes, depth_max: int) -> int:
    """The nesting depth of the MessagePack value in ``data`` (a scalar is 0, ``[1]`` is 1),
    found without recursion; :class:`CodecError` when a value sits deeper than ``depth_max``
    (an empty container at ``depth_max`` is fine: it holds nothing deeper) or the bytes are not
    one complete MessagePack value. Linear in the input, constant stack."""
    view = memoryview(data)
    end = len(view)
    position = 0
    pending: list[int] = []  # items still to read in each open container, innermost last
    deepest = 0
    while True:
        if position >= end:
            raise CodecError("truncated MessagePack value")
        lead = view[position]
        position += 1
        count = -1
        if lead <= 0x7F or lead >= 0xE0:
            pass  # fixint
        elif lead <= 0x8F:
            count = 2 * (lead & 0x0F)
        elif lead <= 0x9F:
            count = lead & 0x0F
        elif lead <= 0xBF:
            position += lead & 0x1F
        else:
            entry = _LEADS.get(lead)
            if entry is None:
                raise CodecError(f"byte 0x{lead:02x} starts no MessagePack value")
            size, kind = entry
            if position + size > end:
                raise CodecError("truncated MessagePack value")
            if kind == 0:
                position += size
            else:
                length = int.from_bytes(view[position:position + size], "big")
                position += size
                if kind == 1:
                    position += length
                elif kind == 2:
                    position += length + 1
                else:
                    count = length if kind == 3 else 2 * length
        if count > 0:
            pending.append(count)
            if len(pending) > depth_max:
                raise CodecError(f"values nest deeper than {depth_max} levels")
            deepest = max(deepest, len(pending))
        else:
            if count == 0:
                deepest = max(deepest, len(pending) + 1)
            # a complete value: close every container it completes
            while pending:
                pending[-1] -= 1
                if pending[-1]:
                    break
                pending.pop()
            if not pending:
                break
    if position != end:
        raise CodecError("bytes after the MessagePack value" if position < end else "truncated MessagePack value")
    return deepest

"""Status lists (IETF Token Status List, draft-ietf-oauth-status-list) and privacy-preserving
index assignment. Pure: randomness comes in as a generator.

A list is a byte string of ``size`` entries of ``bits`` bits each; entry ``i`` sits in byte
``i * bits // 8`` at bit offset ``(i * bits) % 8``, least significant bits first — the Token
Status List layout, so ``{"bits": bits, "lst": base64url(zlib(list))}`` (:func:`status_list_claim`)
is the ``status_list`` claim of a standard Status List Token. Values: 0 VALID, 1 INVALID
(revoked), 2 SUSPENDED (two bits per entry leave 3 for an application).

Index assignment: a list's position says nothing about whom it belongs to. Each credential gets
an index drawn uniformly at random from the list's unused ones (never sequentially, never in the
order of the class roll), and lists are large — 131,072 entries by default, W3C Bitstring Status
List's minimum for herd privacy — and shared by every batch of an issuer until full. Seeing bit
``i`` flip tells an observer that *some* credential of the issuer was revoked, not whose.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = [
    "LIST_SIZE_DEFAULT",
    "STATUS_BITS_DEFAULT",
    "STATUS_INVALID",
    "STATUS_NAMES",
    "STATUS_SUSPENDED",
    "STATUS_VALID",
    "Sampler",
    "allocate",
    "mark_allocated",
    "status_at",
    "status_list_claim",
]

STATUS_VALID = 0
STATUS_INVALID = 1
STATUS_SUSPENDED = 2
STATUS_NAMES = {STATUS_VALID: "valid", STATUS_INVALID: "revoked", STATUS_SUSPENDED: "suspended"}
STATUS_BITS_DEFAULT = 2
#: W3C Bitstring Status List recommends at least 131,072 entries for herd privacy
LIST_SIZE_DEFAULT = 131_072


class Sampler(Protocol):
    def sample(self, population: Sequence[int], k: int) -> list[int]: ...


def status_at(lst: bytes, bits: int, index: int) -> int:
    """The status of entry ``index`` (IndexError when outside the list)."""
    if bits not in (1, 2, 4, 8):
        raise ValueError(f"bits is 1, 2, 4 or 8, not {bits}")
    per_byte = 8 // bits
    if not 0 <= index < len(lst) * per_byte:
        raise IndexError(f"index {index} is outside a list of {len(lst) * per_byte} entries")
    return (lst[index // per_byte] >> ((index % per_byte) * bits)) & ((1 << bits) - 1)


def allocate(allocated: bytes, count: int, rng: Sampler) -> list[int]:
    """``count`` indices not yet set in the bitmap ``allocated`` (bit i = entry i is taken),
    uniformly at random; ValueError when fewer are free."""
    free = [i for i in range(len(allocated) * 8) if not allocated[i >> 3] >> (i & 7) & 1]
    if len(free) < count:
        raise ValueError(f"the list has {len(free)} free entries, {count} are needed")
    return rng.sample(free, count)


def mark_allocated(allocated: bytes, indices: Sequence[int]) -> bytes:
    """The bitmap with ``indices`` set (each must be free)."""
    bitmap = bytearray(allocated)
    for index in indices:
        if bitmap[index >> 3] >> (index & 7) & 1:
            raise ValueError(f"index {index} is already allocated")
        bitmap[index >> 3] |= 1 << (index & 7)
    return bytes(bitmap)


def status_list_claim(bits: int, lst: bytes) -> dict[str, Any]:
    """The Token Status List ``status_list`` claim for this list (DEFLATE with the ZLIB format)."""
    import base64

    compressed = zlib.compress(lst, 9)
    return {"bits": bits, "lst": base64.urlsafe_b64encode(compressed).rstrip(b"=").decode("ascii")}

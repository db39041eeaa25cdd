"""Text armour for identity records: ``-----BEGIN PILOTCHAIN CERTIFICATE-----`` and friends.

The armoured body is the base64 of the record's canonical bytes, wrapped at 64 columns, like PEM.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pilotchain.codec import CodecError, encode
from pilotchain.identity.records import (
    RECORD_BYTES_MAX,
    CaRotation,
    Certificate,
    OrgCertificate,
    Revocation,
    S,
    SignedRecord,
    decode_record,
)

__all__ = ["ARMOR_LABELS", "armor", "armor_label", "dearmor"]

ARMOR_LABELS: dict[type[Any], str] = {
    Certificate: "PILOTCHAIN CERTIFICATE",
    OrgCertificate: "PILOTCHAIN ORG CERTIFICATE",
    Revocation: "PILOTCHAIN REVOCATION",
    CaRotation: "PILOTCHAIN CA ROTATION",
}
_LINE_CHARS = 64
_ARMOR_CHARS_MAX = 2 * RECORD_BYTES_MAX


def armor(record: SignedRecord) -> str:
    """``record`` as armoured text (ends with a newline)."""
    label = ARMOR_LABELS[type(record)]
    body = base64.b64encode(encode(record)).decode("ascii")
    lines = [body[i : i + _LINE_CHARS] for i in range(0, len(body), _LINE_CHARS)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"


def armor_label(text: str) -> str | None:
    """The label of the first armour block in ``text`` (e.g. ``"PILOTCHAIN CERTIFICATE"``), if any."""
    start = text.find("-----BEGIN ")
    if start < 0:
        return None
    end = text.find("-----", start + 11)
    return None if end < 0 else text[start + 11 : end]


def dearmor(text: str, type_: type[S]) -> S:
    """Decode the first ``type_`` armour block in ``text``; raises :class:`CodecError`."""
    if len(text) > _ARMOR_CHARS_MAX:
        raise CodecError(f"armoured text is {len(text)} characters, limit {_ARMOR_CHARS_MAX}")
    label = ARMOR_LABELS[type_]
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if start < 0 or stop < 0:
        found = armor_label(text)
        hint = f" (found a {found} block)" if found else ""
        raise CodecError(f"no {begin} ... {end} block{hint}")
    body = "".join(text[start + len(begin) : stop].split())
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CodecError(f"the {label} block is not valid base64: {exc}") from exc
    return decode_record(data, type_)

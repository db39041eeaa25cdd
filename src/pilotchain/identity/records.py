"""Certificate formats: canonical records signed by org certificate authorities.

Theory of operation
-------------------
Every record here is a :class:`pilotchain.codec.Record`: a MessagePack array in field order, the
last field being the signature. What is signed (the "to-be-signed" bytes, as X.509 calls them) is::

    DOMAIN[type] || canonical encoding of the array of every field except the signature

The domain prefix keeps a signature over one kind of record from ever being valid as another kind
(a certificate body can never be replayed as a revocation). The suite name is itself a field, so
an ``intl`` signature can never be presented as a ``gm`` one.

Structural rules (org id syntax, sorted unique roles, bounded lengths, ``not_before < not_after``)
are checked in ``__post_init__``, which msgspec also runs while decoding: a record that breaks
them cannot be built by the caller and cannot be decoded from the wire.

This module is pure: no I/O, clock or randomness (signing with Ed25519 is deterministic; SM2
signing draws its nonce inside the crypto suite).
"""

from __future__ import annotations

import enum
import re
from typing import Any, TypeVar

import msgspec

from pilotchain.codec import Record, decode, encode
from pilotchain.crypto import SUITE_NAMES, PrivateKey, Suite
from pilotchain.errors import InvariantBroken

__all__ = [
    "FORMAT_VERSION",
    "CaRotation",
    "Certificate",
    "OrgCertificate",
    "Revocation",
    "Role",
    "SignedRecord",
    "certificate_id",
    "decode_record",
    "key_id",
    "sign_record",
    "signing_bytes",
    "verify_record_signature",
]

#: version field of every record defined here
FORMAT_VERSION = 1

ORG_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
NAME_CHARS_MAX = 128
REASON_CHARS_MAX = 256
PUBLIC_KEY_DER_BYTES_MAX = 512
SIGNATURE_BYTES_MAX = 160
KEY_ID_BYTES = 32
SERIAL_MAX = 2**63 - 1
TIME_MS_MAX = 2**63 - 1
#: no encoded identity record is bigger than this (decode refuses larger input before parsing)
RECORD_BYTES_MAX = 4096


class Role(enum.StrEnum):
    """What a certificate's subject may do. A certificate carries a sorted tuple of these."""

    ADMIN = "admin"
    AUDITOR = "auditor"
    CLIENT = "client"
    VALIDATOR = "validator"


# -- field checks (run by __post_init__, i.e. on construction and on decode) --------------------


def _check_common(version: int, suite: str, org_id: str) -> None:
    if version != FORMAT_VERSION:
        raise ValueError(
            f"unsupported identity record version {version} (this build reads {FORMAT_VERSION})"
        )
    if suite not in SUITE_NAMES:
        raise ValueError(f"unknown crypto suite {suite!r}; choose one of {', '.join(SUITE_NAMES)}")
    if not ORG_ID_PATTERN.match(org_id):
        raise ValueError(
            f"org id {org_id!r} is not valid: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. 'bank-a')"
        )


def _check_text(what: str, value: str, chars_max: int) -> None:
    if not 1 <= len(value) <= chars_max or not value.isprintable():
        raise ValueError(f"{what} must be 1-{chars_max} printable characters, got {value!r:.80}")


def _check_serial(serial: int) -> None:
    if not 1 <= serial <= SERIAL_MAX:
        raise ValueError(f"serial must be between 1 and {SERIAL_MAX}, got {serial}")


def _check_validity(not_before_ms: int, not_after_ms: int) -> None:
    if not 0 <= not_before_ms < not_after_ms <= TIME_MS_MAX:
        raise ValueError(
            f"validity must satisfy 0 <= not_before_ms < not_after_ms, got [{not_before_ms}, {not_after_ms})"
        )


def _check_bytes(what: str, value: bytes, size_min: int, size_max: int) -> None:
    if not size_min <= len(value) <= size_max:
        raise ValueError(f"{what} must be {size_min}-{size_max} bytes, got {len(value)}")


# -- records --------------------------------------------------------------------------------------


# ``frozen=True`` is repeated on each record (Record already is) so type checkers see it too.


class OrgCertificate(Record, frozen=True):
    """An organisation's self-signed CA root, as the consortium's genesis lists it."""

    version: int
    suite: str
    #: the org's CA generation: 1 for the first CA key, +1 for every rotation
    serial: int
    org_id: str
    display_name: str
    #: the CA's SubjectPublicKeyInfo DER
    public_key_der: bytes
    not_before_ms: int
    not_after_ms: int
    #: by the CA key itself over the to-be-signed bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_common(self.version, self.suite, self.org_id)
        _check_serial(self.serial)
        _check_text("display name", self.display_name, NAME_CHARS_MAX)
        _check_bytes("CA public key", self.public_key_der, 1, PUBLIC_KEY_DER_BYTES_MAX)
        _check_validity(self.not_before_ms, self.not_after_ms)
        _check_bytes("signature", self.signature, 1, SIGNATURE_BYTES_MAX)


class Certificate(Record, frozen=True):
    """An identity an org CA issued to one of its nodes, admins, clients or auditors.

    Validity is the half-open interval ``[not_before_ms, not_after_ms)``. Network addresses are
    deliberately not part of an identity (they change far more often than keys do)."""

    version: int
    suite: str
    #: unique within the org, across CA rotations
    serial: int
    org_id: str
    subject: str
    #: sorted, unique
    roles: tuple[Role, ...]
    #: the subject's SubjectPublicKeyInfo DER
    public_key_der: bytes
    not_before_ms: int
    not_after_ms: int
    #: key id (suite hash of the SPKI DER) of the org CA key that signed this certificate
    issuer_key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_common(self.version, self.suite, self.org_id)
        _check_serial(self.serial)
        _check_text("subject name", self.subject, NAME_CHARS_MAX)
        if not self.roles:
            raise ValueError("a certificate needs at least one role")
        if list(self.roles) != sorted(set(self.roles)):
            raise ValueError("roles must be sorted and unique")
        _check_bytes("subject public key", self.public_key_der, 1, PUBLIC_KEY_DER_BYTES_MAX)
        _check_validity(self.not_before_ms, self.not_after_ms)
        _check_bytes("issuer key id", self.issuer_key_id, KEY_ID_BYTES, KEY_ID_BYTES)
        _check_bytes("signature", self.signature, 1, SIGNATURE_BYTES_MAX)


class Revocation(Record, frozen=True):
    """An org CA's statement that one of its certificates must no longer be trusted from
    ``revoked_at_ms`` on."""

    version: int
    suite: str
    org_id: str
    #: serial of the revoked certificate
    serial: int
    reason: str
    revoked_at_ms: int
    #: key id of the CA key that signed this revocation (the org's current CA key)
    issuer_key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_common(self.version, self.suite, self.org_id)
        _check_serial(self.serial)
        _check_text("revocation reason", self.reason, REASON_CHARS_MAX)
        if not 0 <= self.revoked_at_ms <= TIME_MS_MAX:
            raise ValueError(f"revoked_at_ms out of range: {self.revoked_at_ms}")
        _check_bytes("issuer key id", self.issuer_key_id, KEY_ID_BYTES, KEY_ID_BYTES)
        _check_bytes("signature", self.signature, 1, SIGNATURE_BYTES_MAX)


class CaRotation(Record, frozen=True):
    """An org moving to a new CA key: signed by the *old* CA key, carrying the new self-signed
    org certificate. Certificates issued by the old key stay valid until ``cutover_ms``."""

    version: int
    suite: str
    org_id: str
    old_key_id: bytes
    new_ca: OrgCertificate
    cutover_ms: int
    #: by the old CA key
    signature: bytes

    def __post_init__(self) -> None:
        _check_common(self.version, self.suite, self.org_id)
        _check_bytes("old key id", self.old_key_id, KEY_ID_BYTES, KEY_ID_BYTES)
        if self.new_ca.org_id != self.org_id or self.new_ca.suite != self.suite:
            raise ValueError(
                "the new CA certificate must be for the same org and suite as the rotation"
            )
        if not 0 <= self.cutover_ms <= TIME_MS_MAX:
            raise ValueError(f"cutover_ms out of range: {self.cutover_ms}")
        _check_bytes("signature", self.signature, 1, SIGNATURE_BYTES_MAX)


SignedRecord = OrgCertificate | Certificate | Revocation | CaRotation
S = TypeVar("S", OrgCertificate, Certificate, Revocation, CaRotation)

_DOMAINS: dict[type[Any], bytes] = {
    OrgCertificate: b"pilotchain/identity/org-certificate/v1\x00",
    Certificate: b"pilotchain/identity/certificate/v1\x00",
    Revocation: b"pilotchain/identity/revocation/v1\x00",
    CaRotation: b"pilotchain/identity/ca-rotation/v1\x00",
}


def _signing_bytes_of_fields(type_: type[Any], fields: tuple[Any, ...]) -> bytes:
    if not (len(fields) == len(type_.__struct_fields__) - 1):
        raise InvariantBroken("every field but the signature")
    return _DOMAINS[type_] + encode(fields)


def signing_bytes(record: SignedRecord) -> bytes:
    """The to-be-signed bytes of ``record``: domain prefix, then every field but the signature."""
    return _signing_bytes_of_fields(type(record), msgspec.structs.astuple(record)[:-1])


def sign_record(type_: type[S], private_key: PrivateKey, *fields: Any) -> S:
    """Build a ``type_`` from every field but the signature, signed by ``private_key``."""
    signature = private_key.sign(_signing_bytes_of_fields(type_, fields))
    return type_(*fields, signature)  # type: ignore[call-arg]  # positional Struct fields


def verify_record_signature(suite: Suite, record: SignedRecord, public_key_der: bytes) -> bool:
    """True when ``record.signature`` by ``public_key_der`` is valid under ``suite``."""
    return suite.verify(public_key_der, signing_bytes(record), record.signature)


def key_id(suite: Suite, public_key_der: bytes) -> bytes:
    """The id of a CA key: the suite hash of its SubjectPublicKeyInfo DER."""
    return suite.hash(public_key_der)


def certificate_id(suite: Suite, certificate: Certificate) -> bytes:
    """The id of a certificate: the suite hash of its canonical bytes (signature included)."""
    return suite.hash(encode(certificate))


def decode_record(data: bytes, type_: type[S]) -> S:
    """Strictly decode an identity record (raises :class:`pilotchain.codec.CodecError`)."""
    return decode(data, type_, max_bytes=RECORD_BYTES_MAX)

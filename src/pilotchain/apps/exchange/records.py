"""What vaults say to each other and sign: delivery requests, delivery packages, receipts.

Everything signed is a canonical :class:`~pilotchain.codec.Record` signed over a domain tag and
its bytes, with the signer's consortium certificate beside it, so a receipt can be checked by
anyone who trusts the consortium's membership — years later, offline, from an audit export.

Receipts
    ``delivered``  the provider: "I delivered payload P (commitment C) for request R to org X,
                   under the PERMIT I proved at certified block H (time T)"
    ``received``   the consumer: "I received R's payload, decrypted it and its bytes match C"
    ``refused``    the consumer: "R's payload did not match C" (also anchored as a complaint)

Pure: no I/O.
"""

from __future__ import annotations

import enum
import re

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.crypto import Suite
from pilotchain.errors import CoreError
from pilotchain.identity.records import Certificate, decode_record
from pilotchain.ledger import merkle
from pilotchain.sdk import Identity

__all__ = [
    "CONTRACT",
    "RECEIPT_DOMAIN",
    "DeliveryHeader",
    "DeliveryRequest",
    "ExchangeError",
    "Receipt",
    "ReceiptKind",
    "SignedRecord",
    "anchor_root",
    "check_request_id",
    "decision_key",
    "org_key",
    "payload_key",
    "receipt_leaf",
    "sign_record",
    "verify_signed",
]

#: the contract the vaults read and write (deployed through governance under this name)
CONTRACT = "dataex"
#: the signing domain of receipts (``delivered``, ``received``, ``refused``)
RECEIPT_DOMAIN = "receipt"
SIGNED_BYTES_MAX = 64 * 1024
_REQUEST_ID = re.compile(r"^[0-9a-f]{32}\Z")


class ExchangeError(CoreError):
    """A delivery, receipt or request that cannot be accepted; ``code`` says which check failed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ReceiptKind(enum.StrEnum):
    DELIVERED = "delivered"
    RECEIVED = "received"
    REFUSED = "refused"


class DeliveryRequest(Record, frozen=True):
    """What a consumer's vault asks of a provider's vault (the body of ``POST /v1/deliveries``)."""

    payload_id: str
    owner_org: str
    purpose: str
    #: 128 random bits, hex: names the delivery everywhere (receipts, complaints); used once
    request_id: str


class Receipt(Record, frozen=True):
    kind: str
    request_id: str
    payload_id: str
    commitment: bytes
    provider_org: str
    consumer_org: str
    purpose: str
    #: the certified block whose state proved the PERMIT (delivered) or the registration (received)
    proof_height: int
    proof_block_hash: bytes
    #: that block's certified time: the timestamp of the event (no outside timestamping service)
    at_ms: int
    #: for received/refused: the hash of the delivery receipt this answers
    answers: bytes = b""
    note: str = ""


class SignedRecord(Record, frozen=True):
    """A canonical record, the signer's certificate and the signature over domain ‖ record."""

    domain: str
    body: bytes
    certificate: bytes
    signature: bytes


class DeliveryHeader(Record, frozen=True):
    """The first frame of a delivery package; the ciphertext chunks follow."""

    request_id: str
    payload_id: str
    owner_org: str
    consumer_org: str
    media_type: str
    classification: str
    retention_until_ms: int
    size: int
    salt: bytes
    commitment: bytes
    #: the delivery's fresh data key, sealed to the consumer organisation's registered key
    #: (associated data: the request id)
    sealed_key: bytes
    nonce_prefix: bytes
    chunk_bytes: int
    #: the provider's signed ``delivered`` receipt (a SignedRecord)
    receipt: bytes


def check_request_id(request_id: object) -> str:
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise ExchangeError("BAD_REQUEST", "request_id is 32 lower-case hex digits (128 random bits)")
    return request_id


def sign_record(identity: Identity, domain: str, record: Record) -> bytes:
    """``record`` signed by ``identity`` under ``domain``: SignedRecord bytes."""
    body = encode(record)
    signature = identity.sign(_message(domain, body))
    return encode(SignedRecord(domain=domain, body=body, certificate=identity.certificate_bytes,
                               signature=signature))


def verify_signed(suite: Suite, raw: bytes, domain: str) -> tuple[SignedRecord, Certificate]:
    """Decode and check a SignedRecord's signature against the certificate it carries; whether
    that certificate was a member's at the time is the caller's question (membership)."""
    if len(raw) > SIGNED_BYTES_MAX:
        raise ExchangeError("MALFORMED", f"a signed record is at most {SIGNED_BYTES_MAX} bytes")
    try:
        signed = decode(raw, SignedRecord)
        certificate = decode_record(signed.certificate, Certificate)
    except (CodecError, ValueError) as exc:
        raise ExchangeError("MALFORMED", f"not a signed record: {exc}") from exc
    if signed.domain != domain:
        raise ExchangeError("MALFORMED", f"a {signed.domain!r} record where {domain!r} was expected")
    if certificate.suite != suite.name:
        raise ExchangeError("BAD_SIGNATURE", f"signed with a {certificate.suite} key on a {suite.name} network")
    if not suite.verify(certificate.public_key_der, _message(domain, signed.body), signed.signature):
        raise ExchangeError("BAD_SIGNATURE", f"the {domain} signature does not verify")
    return signed, certificate


def _message(domain: str, body: bytes) -> bytes:
    return b"pilotchain/exchange/" + domain.encode() + b"\x00" + body


def receipt_leaf(signed_receipt: bytes) -> bytes:
    """What a receipt batch's Merkle tree is built over: the signed receipt's bytes."""
    return signed_receipt


def anchor_root(suite: Suite, signed_receipts: list[bytes]) -> bytes:
    return merkle.merkle_root(suite.hash, [receipt_leaf(r) for r in signed_receipts])


def _map_key(name: str, key: str) -> bytes:
    """A contract ``Map(name)``'s state key for ``key`` (pilotchain.contracts.runtime's layout)."""
    return b"m/" + name.encode() + b"\x00" + encode(key)


def payload_key(payload_id: str) -> bytes:
    return _map_key("payloads", payload_id)


def decision_key(payload_id: str, org: str) -> bytes:
    return _map_key("decisions", payload_id + "/" + org)


def org_key(org: str) -> bytes:
    return _map_key("orgs", org)

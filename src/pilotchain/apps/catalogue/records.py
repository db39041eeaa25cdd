"""What departments' vaults say to each other and sign for a call: the call request, the sealed
package that answers it, and the receipts both sides sign.

Receipts (signed with :func:`pilotchain.apps.exchange.records.sign_record` under the domain
``catalogue-receipt``, the signer's certificate beside the signature, anchored in the vault's
receipt batches like the exchange's own receipts):

    ``delivered``  the provider: "for call C under agreement A I released these fields of N records
                   (S bytes, digest D) of dataset version V (root R), under the agreement I proved
                   at certified block H (time T)"
    ``received``   the consumer: the same facts, "and every value verified against R"; ``answers``
                   is the hash of the provider's signed receipt
    ``rejected``   the provider: "call C was outside agreement A" (``code`` says how); nothing released
    ``refused``    the consumer: "call C's delivery did not verify" (also filed as a dataex complaint)

A ``delivered`` and a ``received`` receipt *match* when they agree on every fact above and the
consumer's answers the provider's: the Big-Data Bureau counts a call only then.

Pure: no I/O.
"""

from __future__ import annotations

import enum
import re
from typing import Any

from pilotchain.apps.exchange.records import ExchangeError
from pilotchain.codec import Record, encode

__all__ = [
    "CONTRACT",
    "RECEIPT_DOMAIN",
    "CallPackage",
    "CallReceipt",
    "CallRequest",
    "CatalogueError",
    "ReceiptKind",
    "check_call_id",
    "day_of",
    "receipt_matches",
    "state_key",
    "usage_key",
]

#: the contract's name (deployed through governance under this name)
CONTRACT = "catalogue"
RECEIPT_DOMAIN = "catalogue-receipt"
_CALL_ID = re.compile(r"^[0-9a-f]{32}\Z")
_DAY_MS = 86_400_000


class CatalogueError(ExchangeError):
    """A call, publication or receipt that cannot be accepted; ``code`` says which check failed."""


class ReceiptKind(enum.StrEnum):
    DELIVERED = "delivered"
    RECEIVED = "received"
    REJECTED = "rejected"
    REFUSED = "refused"


class CallRequest(Record, frozen=True):
    """The body of ``POST /v1/catalogue/deliveries`` (a consumer's vault to the provider's)."""

    call_id: str
    agreement_id: str
    fields: tuple[str, ...]
    #: field -> the values a record's field must be one of (all given fields must match)
    where: dict[str, tuple[Any, ...]]
    offset: int
    limit: int


class CallReceipt(Record, frozen=True):
    kind: str
    call_id: str
    agreement_id: str
    entry_id: str
    provider_org: str
    consumer_org: str
    purpose: str
    fields: tuple[str, ...]
    records: int
    size_bytes: int
    dataset_version: int
    root: bytes
    #: the suite hash of the canonical Disclosure the consumer opened (b"" when nothing was released)
    disclosure_digest: bytes
    #: the certified block that proved the agreement (-1: none, e.g. a call refused before)
    proof_height: int
    proof_block_hash: bytes
    #: that block's certified time (the vault's clock when there is none): the call's time
    at_ms: int
    answers: bytes = b""
    code: str = ""
    note: str = ""


class CallPackage(Record, frozen=True):
    """The answer to a call: the provider's signed ``delivered`` receipt and the Disclosure,
    sealed to the consumer organisation's registered key (associated data: the call id)."""

    call_id: str
    receipt: bytes
    sealed: bytes


def check_call_id(call_id: object) -> str:
    if not isinstance(call_id, str) or not _CALL_ID.match(call_id):
        raise CatalogueError("BAD_REQUEST", "call_id is 32 lower-case hex digits (128 random bits)")
    return call_id


def day_of(at_ms: int) -> str:
    """The UTC day (YYYY-MM-DD) of a time in ms (integer arithmetic, as the policy module)."""
    days = at_ms // _DAY_MS
    # civil_from_days (H. Hinnant), the inverse of policy._days_from_civil
    z = days + 719468
    era = z // 146097
    day_of_era = z - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted + 2) // 5 + 1
    month = shifted + 3 if shifted < 10 else shifted - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    return f"{year:04d}-{month:02d}-{day:02d}"


def usage_key(day: str) -> str:
    """Where a vault's receipt book files the catalogue's receipts of a day (not a dataex payload
    id: '/' is outside their characters, so the exchange's audit export never mixes them in)."""
    return f"catalogue/{day}"


def receipt_matches(delivered: CallReceipt, received: CallReceipt, delivered_hash: bytes) -> bool:
    """Whether a consumer's ``received`` receipt answers the provider's ``delivered`` one."""
    facts = ("call_id", "agreement_id", "entry_id", "provider_org", "consumer_org", "purpose", "fields", "records",
             "size_bytes", "dataset_version", "root", "disclosure_digest", "proof_height", "proof_block_hash", "at_ms")
    return (delivered.kind == ReceiptKind.DELIVERED and received.kind == ReceiptKind.RECEIVED
            and received.answers == delivered_hash
            and all(getattr(delivered, name) == getattr(received, name) for name in facts))


def state_key(map_name: str, key: str) -> bytes:
    """The state key of ``Map(map_name)[key]`` in a contract (pilotchain.contracts.runtime's layout)."""
    return b"m/" + map_name.encode() + b"\x00" + encode(key)

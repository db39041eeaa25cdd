"""What a car maker, its suppliers, the banks and the regulator do in S4, as Python calls over the SDK:
every call is a signed transaction or query of the ``receivables`` or ``trace`` contract.

Documents (invoices, delivery notes, financing terms) go into the caller's vault first
(:meth:`SupplyClient.store_document`, through the data exchange's vault client) with
``policy="receivables"``: the chain gets their salted commitments and the ``receivables`` contract
decides who may fetch them.
"""

from __future__ import annotations

import time
from typing import Any

from pilotchain.apps.supply.epcis import EpcisError, event_hash_id, normalise_identifiers
from pilotchain.apps.supply.recall import Recall, trace_recall
from pilotchain.errors import CoreError
from pilotchain.sdk import Client, Identity, TxResult

__all__ = ["RECEIVABLES", "TRACE", "SupplyClient", "SupplyError", "TraceClient", "minor_units"]

RECEIVABLES = "receivables"
TRACE = "trace"
DOCUMENT_RETENTION_MS = 10 * 365 * 86_400_000


class SupplyError(CoreError):
    """A call the contract refused (``code``: its RejectCode), or an event that does not check."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def minor_units(amount: str | int) -> int:
    """``"1,000,000.00"`` (yuan) → 100000000 (fen)."""
    text = str(amount).replace(",", "").strip()
    whole, _, cents = text.partition(".")
    if not whole.isdigit() or len(cents) > 2 or (cents and not cents.isdigit()):
        raise ValueError(f"{amount!r} is not an amount with at most two decimals")
    return int(whole) * 100 + int((cents + "00")[:2])


def _checked(result: TxResult) -> Any:
    if result.receipt is None or result.receipt.status != "OK":
        raise SupplyError(result.receipt.status if result.receipt else (result.code or result.state),
                          result.receipt.message if result.receipt else str(result.message))
    return result.result


class SupplyClient:
    """One member (of the car maker, a supplier, a bank or the regulator) acting on ``receivables``."""

    def __init__(self, client: Client, identity: Identity) -> None:
        self.client = client
        self.identity = identity

    def _invoke(self, method: str, args: dict[str, Any]) -> Any:
        return _checked(self.client.invoke(self.identity, RECEIVABLES, method, args, check=False))

    def _query(self, method: str, args: dict[str, Any] | None = None) -> Any:
        return self.client.query(RECEIVABLES, method, args)

    @staticmethod
    def store_document(vault: Any, payload_id: str, content: bytes, *, media_type: str = "application/json",
                       classification: str = "important") -> dict[str, Any]:
        """Put a confidential document into your organisation's vault, governed by ``receivables``."""
        result: dict[str, Any] = vault.put(payload_id, content, media_type=media_type, classification=classification,
                                           retention_until_ms=int(time.time() * 1000) + DOCUMENT_RETENTION_MS,
                                           policy=RECEIVABLES)
        return result

    def issue(self, receivable_id: str, creditor: str, amount: int, maturity_ms: int, *, invoice: str,
              delivery_note: str, batches: list[str], currency: str = "CNY") -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("issue", {
            "receivable_id": receivable_id, "creditor": creditor, "amount": amount, "maturity_ms": maturity_ms,
            "invoice": invoice, "delivery_note": delivery_note, "batches": batches, "currency": currency})
        return result

    def split(self, receivable_id: str, pieces: list[dict[str, Any]]) -> list[str]:
        return list(self._invoke("split", {"receivable_id": receivable_id, "pieces": pieces}))

    def transfer(self, receivable_id: str, to: str) -> None:
        self._invoke("transfer", {"receivable_id": receivable_id, "to": to})

    def offer(self, receivable_id: str, bank: str, terms: str) -> None:
        self._invoke("offer", {"receivable_id": receivable_id, "bank": bank, "terms": terms})

    def finance(self, receivable_id: str, *, kind: str = "discount", registration_no: str = "") -> None:
        self._invoke("finance", {"receivable_id": receivable_id, "kind": kind, "registration_no": registration_no})

    def record_registration(self, receivable_id: str, registration_no: str) -> None:
        self._invoke("record_registration", {"receivable_id": receivable_id, "registration_no": registration_no})

    def settle(self, receivable_id: str, payment_ref: str) -> list[dict[str, Any]]:
        return list(self._invoke("settle", {"receivable_id": receivable_id, "payment_ref": payment_ref}))

    def request_terms(self, receivable_id: str, reason: str) -> list[str]:
        return list(self._invoke("request_terms", {"receivable_id": receivable_id, "reason": reason}))

    def receivable(self, receivable_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._query("receivable", {"receivable_id": receivable_id})
        return found

    def lineage(self, receivable_id: str) -> list[dict[str, Any]]:
        return list(self._query("lineage", {"receivable_id": receivable_id}) or [])

    def holdings(self, org: str) -> list[dict[str, Any]]:
        return list(self._query("holdings_of", {"org": org}) or [])

    def supply(self, height: int | None = None) -> dict[str, Any]:
        found: dict[str, Any] = (self._query("supply") if height is None
                                 else self._query("supply_at", {"height": height}))
        return found


class TraceClient:
    """Capture EPCIS events and trace recalls; every event read back is checked against its hash id."""

    def __init__(self, client: Client, identity: Identity) -> None:
        self.client = client
        self.identity = identity

    def capture(self, event: dict[str, Any]) -> str:
        """Record ``event`` (EPCIS 2.0 JSON-LD; EPC URNs are rewritten as Digital Link URIs, which
        keeps its hash id); returns its Event Hash ID."""
        try:
            canonical = normalise_identifiers(event)
            hash_id = event_hash_id(canonical)
        except EpcisError as exc:
            raise SupplyError("BAD_EVENT", str(exc)) from exc
        _checked(self.client.invoke(self.identity, TRACE, "capture", {"event": canonical, "hash_id": hash_id},
                                    check=False))
        return hash_id

    def events_of(self, identifier: str) -> list[dict[str, Any]]:
        """The events naming ``identifier`` (canonical Digital Link URI), each checked: its stored id
        must be its Event Hash ID, recomputed here."""
        records = list(self.client.query(TRACE, "events_of", {"identifier": identifier}) or [])
        for record in records:
            try:
                computed = event_hash_id(record["event"])
            except EpcisError as exc:
                raise SupplyError("BAD_EVENT", f"stored event {record['hash_id']} is not a valid event: {exc}") from exc
            if computed != record["hash_id"]:
                raise SupplyError("HASH_MISMATCH", f"event anchored as {record['hash_id']} hashes to {computed} "
                                                   f"(captured by {record['org']} in block {record['height']})")
        return records

    def trace(self, batch: str, *, batch_only: bool = False) -> Recall:
        """The recall for ``batch``: its sources upstream and the affected vehicles downstream."""
        return trace_recall(self.events_of, batch, batch_only=batch_only)

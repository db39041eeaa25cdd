"""What the power exchange, a wind farm, the meter operator, a manufacturer and an auditor do in S5, as
Python calls over the SDK: every call is a signed transaction or query of the ``greencert`` contract.
Meter readings go into the meter operator's vault first (:meth:`GreenClient.store_reading`); the chain
gets their salted commitments."""

from __future__ import annotations

import json
import time
from typing import Any

from pilotchain.errors import CoreError
from pilotchain.sdk import Client, Identity, TxResult
from pilotchain.sdk._tx import DEFAULT_EXPIRES_IN_MS
from pilotchain.sdk.evidence import export_evidence

__all__ = ["CONTRACT", "GreenClient", "GreenError"]

CONTRACT = "greencert"
READING_RETENTION_MS = 10 * 365 * 86_400_000


class GreenError(CoreError):
    """A call the contract refused (``code``: its RejectCode), with the contract's reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class GreenClient:
    def __init__(self, client: Client, identity: Identity, *, expires_in_ms: int = DEFAULT_EXPIRES_IN_MS) -> None:
        self.client = client
        self.identity = identity
        self.expires_in_ms = expires_in_ms

    def _invoke(self, method: str, args: dict[str, Any]) -> Any:
        result: TxResult = self.client.invoke(self.identity, CONTRACT, method, args, check=False,
                                              expires_in_ms=self.expires_in_ms)
        if result.receipt is None or result.receipt.status != "OK":
            raise GreenError(result.receipt.status if result.receipt else (result.code or result.state),
                             result.receipt.message if result.receipt else str(result.message))
        return result.result

    def _query(self, method: str, args: dict[str, Any] | None = None) -> Any:
        return self.client.query(CONTRACT, method, args)

    # -- the power exchange
    def register_device(self, device_id: str, *, owner: str, meter_org: str, technology: str, capacity_kw: int,
                        location: str) -> None:
        self._invoke("register_device", {"device_id": device_id, "owner": owner, "meter_org": meter_org,
                                         "technology": technology, "capacity_kw": capacity_kw, "location": location})

    def issue(self, batch_id: str, device_id: str, start_ms: int, end_ms: int, count: int = 0) -> str:
        return str(self._invoke("issue", {"batch_id": batch_id, "device_id": device_id, "start_ms": start_ms,
                                          "end_ms": end_ms, "count": count}))

    # -- the meter operator
    @staticmethod
    def store_reading(vault: Any, payload_id: str, reading: dict[str, Any]) -> dict[str, Any]:
        """The signed reading document into the operator's vault (policy: greencert decides)."""
        stored: dict[str, Any] = vault.put(payload_id, json.dumps(reading, sort_keys=True).encode(),
                                           media_type="application/json", classification="important",
                                           retention_until_ms=int(time.time() * 1000) + READING_RETENTION_MS,
                                           policy=CONTRACT)
        return stored

    def record_reading(self, reading_id: str, device_id: str, start_ms: int, end_ms: int, kwh: int,
                       payload_id: str) -> bytes:
        return bytes(self._invoke("record_reading", {"reading_id": reading_id, "device_id": device_id,
                                                     "start_ms": start_ms, "end_ms": end_ms, "kwh": kwh,
                                                     "payload_id": payload_id}))

    # -- holders
    def transfer(self, lot_id: str, to: str, count: int) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("transfer", {"lot_id": lot_id, "to": to, "count": count})
        return result

    def retire(self, lot_id: str, count: int, *, beneficiary: str, year: int, retirement_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("retire", {"lot_id": lot_id, "count": count, "beneficiary": beneficiary,
                                                         "year": year, "retirement_id": retirement_id})
        return result

    def cancel_expired(self, lot_id: str) -> None:
        self._invoke("cancel_expired", {"lot_id": lot_id})

    # -- reading
    def holdings(self, org: str) -> list[dict[str, Any]]:
        return list(self._query("holdings", {"org": org}) or [])

    def trace(self, lot_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._query("trace", {"lot_id": lot_id})
        return found

    def retirement(self, retirement_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._query("retirement", {"retirement_id": retirement_id})
        return found

    def retirements_of(self, beneficiary: str) -> list[dict[str, Any]]:
        return list(self._query("retirements_of", {"beneficiary": beneficiary}) or [])

    def supply(self, height: int | None = None) -> dict[str, Any]:
        found: dict[str, Any] = (self._query("supply") if height is None
                                 else self._query("supply_at", {"height": height}))
        return found

    def trace_transactions(self, retirement_id: str) -> list[str]:
        """Every transaction from the device to the retirement: registration, readings, issuance,
        each split or transfer, the retirement (hex ids, oldest first)."""
        record = self.retirement(retirement_id)
        if record is None:
            raise GreenError("NOT_FOUND", f"no retirement {retirement_id}")
        line = self.trace(record["lot"])
        txs = [line["device"]["registered"]["tx"], *(r["recorded"]["tx"] for r in line["readings"]),
               line["batch"]["issued"]["tx"]]
        for lot in reversed(line["lots"]):
            txs += [event["tx"] for event in lot["events"]]
        txs.append(record["retired"]["tx"])
        return list(dict.fromkeys(bytes(t).hex() for t in txs))

    def export_statement(self, retirement_id: str, *, genesis: Any = None) -> bytes:
        """The evidence bundle of a retirement's whole line (offline-verifiable with the genesis)."""
        return export_evidence(self.client, self.trace_transactions(retirement_id), genesis=genesis)

    def export_beneficiary_statement(self, beneficiary: str, *, genesis: Any = None) -> bytes:
        """One evidence bundle with every retirement for ``beneficiary`` and each one's whole line
        (device, meter readings, issuance, transfers): every retired MWh with its proof."""
        retirements = [r for r in self.retirements_of(beneficiary) if r is not None]
        if not retirements:
            raise GreenError("NOT_FOUND", f"no retirement for {beneficiary}")
        txs: list[str] = []
        for record in retirements:
            txs += self.trace_transactions(str(record["id"]))
        return export_evidence(self.client, list(dict.fromkeys(txs)), genesis=genesis)

"""Offline verification of a retirement: from a QR code, an evidence bundle and the chain's genesis, the
whole line device → meter commitments → issuance → transfers → retirement, with nothing else.

The QR code carries ``PCGC1:<SHA-256 of the bundle, hex>:<retirement id>`` — it pins the one bundle
that proves the claim (the statement file holds the bundle; a copy from anywhere will do, since the
hash decides). :func:`verify_statement`:

1. checks the bundle's hash against the QR code;
2. verifies the bundle with the platform's :func:`~pilotchain.ledger.evidence.verify_bundle` (every
   transaction's inclusion proof, every header's commit certificate by the validator set in force,
   that set derived from the genesis by the proven governance changes — docs/audit.md);
3. reads the line from the *events* of those verified receipts — what the ``greencert`` contract
   itself emitted when it executed each call, not what the exporter says: the ``retired`` event of
   the retirement, back through every ``transferred`` (and partial-retirement) event that produced
   its lot, to the ``issued`` event of the batch, its ``reading`` events and the device's
   registration; every step must be there and consistent (lots, counts, device, periods), the
   readings inside the certified period must cover the certificates (count x kWh per certificate),
   and the retirement must be before the lot's expiry.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pilotchain.codec import CodecError, decode
from pilotchain.ledger.evidence import EvidenceInvalid, VerifiedTx, verify_bundle
from pilotchain.ledger.genesis import Genesis

__all__ = ["BENEFICIARY_PREFIX", "QR_PREFIX", "RetirementTrace", "StatementInvalid", "beneficiary_qr_text", "qr_text",
           "verify_beneficiary_statement", "verify_statement"]

QR_PREFIX = "PCGC1"
#: a beneficiary's statement: every retirement for it in one bundle
BENEFICIARY_PREFIX = "PCGB1"
CONTRACT = "greencert"
LINE_MAX = 256


class StatementInvalid(EvidenceInvalid):
    """The QR code, the bundle or the line it proves does not hold (``where``, ``reason``)."""


def qr_text(retirement_id: str, bundle: bytes) -> str:
    return f"{QR_PREFIX}:{hashlib.sha256(bundle).hexdigest()}:{retirement_id}"


@dataclass(frozen=True, slots=True)
class Step:
    what: str
    tx_id: str
    height: int
    time_ms: int
    signer: str
    data: dict[str, Any]


@dataclass
class RetirementTrace:
    retirement_id: str
    beneficiary: str
    year: int
    count: int
    kwh: int
    device: dict[str, Any]
    batch: dict[str, Any]
    readings: list[dict[str, Any]]
    metered_kwh: int
    transfers: list[dict[str, Any]]
    retirement: Step
    steps: list[Step] = field(default_factory=list)
    chain_id: str = ""


def _events(tx: VerifiedTx, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for event in tx.events:
        if event.contract != CONTRACT or event.name != name:
            continue
        try:
            data = decode(event.data, Any)
        except CodecError as exc:
            raise StatementInvalid(f"tx {tx.tx_id.hex()[:16]}", f"its {name} event does not decode: {exc}") from exc
        if isinstance(data, dict):
            found.append(data)
    return found


def verify_statement(qr: str, bundle: bytes, genesis: Genesis) -> RetirementTrace:
    """Everything a retirement claims, checked offline; :class:`StatementInvalid` (or the platform's
    :class:`~pilotchain.ledger.evidence.EvidenceInvalid`) with where and why otherwise."""
    prefix, _, rest = qr.strip().partition(":")
    digest, _, retirement_id = rest.partition(":")
    if prefix != QR_PREFIX or len(digest) != 64 or not retirement_id:
        raise StatementInvalid("qr", f"not a green-certificate retirement code ({QR_PREFIX}:<sha-256>:<retirement>)")
    if hashlib.sha256(bundle).hexdigest() != digest:
        raise StatementInvalid("bundle", "is not the evidence this QR code names (its SHA-256 differs)")
    evidence = verify_bundle(bundle, genesis)
    return _line(_Index(evidence), retirement_id)


def beneficiary_qr_text(beneficiary: str, bundle: bytes) -> str:
    return f"{BENEFICIARY_PREFIX}:{hashlib.sha256(bundle).hexdigest()}:{beneficiary}"


def verify_beneficiary_statement(qr: str, bundle: bytes, genesis: Genesis) -> list[RetirementTrace]:
    """A beneficiary's statement: every retirement for it that the bundle proves, each traced back
    to its device and meter readings like :func:`verify_statement` (oldest first). The QR code
    (``PCGB1:<sha-256>:<beneficiary>``) pins the bundle."""
    prefix, _, rest = qr.strip().partition(":")
    digest, _, beneficiary = rest.partition(":")
    if prefix != BENEFICIARY_PREFIX or len(digest) != 64 or not beneficiary:
        raise StatementInvalid("qr", f"not a beneficiary statement code ({BENEFICIARY_PREFIX}:<sha-256>:<beneficiary>)")
    if hashlib.sha256(bundle).hexdigest() != digest:
        raise StatementInvalid("bundle", "is not the evidence this QR code names (its SHA-256 differs)")
    index = _Index(verify_bundle(bundle, genesis))
    mine = [rid for rid, (tx, data) in sorted(index.steps.items(), key=lambda item: (item[1][0].height, item[1][0].index))
            if data.get("beneficiary") == beneficiary]
    if not mine:
        raise StatementInvalid("retirement", f"the bundle proves no retirement for {beneficiary}")
    return [_line(index, rid) for rid in mine]


class _Index:
    """The greencert events of a verified bundle, by what they produced."""

    def __init__(self, evidence: Any) -> None:
        self.evidence = evidence
        self.steps: dict[str, tuple[VerifiedTx, dict[str, Any]]] = {}
        self.produced: dict[str, tuple[str, VerifiedTx, dict[str, Any]]] = {}  # lot -> (what, tx, event)
        self.issued: dict[str, tuple[VerifiedTx, dict[str, Any]]] = {}
        self.readings: dict[str, tuple[VerifiedTx, dict[str, Any]]] = {}
        self.devices: dict[str, tuple[VerifiedTx, dict[str, Any]]] = {}
        for tx in evidence.txs:
            if tx.contract != CONTRACT or tx.status != "OK":
                continue
            for data in _events(tx, "retired"):
                self.steps[str(data.get("retirement_id"))] = (tx, data)
                if data.get("rest"):
                    self.produced[str(data["rest"])] = ("rest after retirement", tx, data)
            for data in _events(tx, "transferred"):
                self.produced[str(data.get("lot"))] = ("transferred", tx, data)
                if data.get("rest"):
                    self.produced[str(data["rest"])] = ("rest after transfer", tx, data)
            for data in _events(tx, "issued"):
                self.issued[str(data.get("batch_id"))] = (tx, data)
                self.produced[str(data.get("lot"))] = ("issued", tx, data)
            for data in _events(tx, "reading"):
                self.readings[str(data.get("reading_id"))] = (tx, data)
            for data in _events(tx, "device"):
                self.devices[str(data.get("device_id"))] = (tx, data)


def _line(index: _Index, retirement_id: str) -> RetirementTrace:
    """One retirement's whole line from a verified bundle's events."""
    evidence = index.evidence
    steps, produced, issued = index.steps, index.produced, index.issued
    readings, devices = index.readings, index.devices
    if retirement_id not in steps:
        raise StatementInvalid("retirement", f"the bundle proves no retirement {retirement_id}")
    retire_tx, retired = steps[retirement_id]
    if retired.get("owner") != retire_tx.signer_org:
        raise StatementInvalid("retirement", "not signed by the certificates' owner")
    # back from the retired lot to its issuance
    transfers: list[dict[str, Any]] = []
    lot = str(retired.get("from_lot"))
    while True:
        if len(transfers) > LINE_MAX or lot not in produced:
            raise StatementInvalid("line", f"the bundle does not prove where lot {lot} came from")
        what, tx, data = produced[lot]
        if what == "issued":
            break
        transfers.append({"what": what, "lot": lot, "from_lot": data.get("from_lot"), "from": data.get("from"),
                          "to": data.get("to"), "count": data.get("count"), "tx_id": tx.tx_id.hex(),
                          "height": tx.height, "time_ms": tx.timestamp_ms, "signer": tx.signer_org})
        if what == "transferred" and data.get("from") != tx.signer_org:
            raise StatementInvalid("line", f"the transfer into {lot} was not signed by its owner")
        lot = str(data.get("from_lot"))
    if str(data.get("batch_id")) not in issued:
        raise StatementInvalid("issuance", f"no issuance of lot {lot}")
    issue_tx, batch = issued[str(data.get("batch_id"))]
    count, unit = int(retired.get("count", 0)), int(batch.get("kwh_per_certificate", 0))
    if retired.get("kwh") != count * unit or not 1 <= count <= int(batch.get("count", 0)):
        raise StatementInvalid("retirement", "its count or energy does not match the issued certificates")
    if retire_tx.timestamp_ms >= int(batch.get("expires_ms", 0)):
        raise StatementInvalid("retirement", "retired after the certificates expired")
    metered, used = 0, []
    for reading_id in batch.get("readings") or []:
        if reading_id not in readings:
            raise StatementInvalid("readings", f"the bundle does not prove meter reading {reading_id}")
        tx, reading = readings[reading_id]
        if reading.get("device_id") != batch.get("device_id") or not (
                batch["start_ms"] <= reading["start_ms"] < reading["end_ms"] <= batch["end_ms"]):
            raise StatementInvalid("readings", f"reading {reading_id} is not of this device and period")
        metered += int(reading["kwh"])
        used.append({**reading, "tx_id": tx.tx_id.hex(), "height": tx.height, "signer": tx.signer_org,
                     "commitment": bytes(reading["commitment"]).hex()})
    if metered != batch.get("metered_kwh") or int(batch["count"]) * unit > metered:
        raise StatementInvalid("issuance", f"{batch['count']} certificates of {unit} kWh are not covered by the "
                                           f"proven readings ({metered} kWh)")
    device_id = str(batch.get("device_id"))
    if device_id not in devices:
        raise StatementInvalid("device", f"the bundle does not prove the registration of {device_id}")
    device_tx, device = devices[device_id]
    if any(r["signer"] != device.get("meter_org") for r in used):
        raise StatementInvalid("readings", "a reading was not recorded by the device's meter operator")

    def step(what: str, tx: VerifiedTx, data: dict[str, Any]) -> Step:
        return Step(what, tx.tx_id.hex(), tx.height, tx.timestamp_ms, f"{tx.signer_name} ({tx.signer_org})", data)

    return RetirementTrace(
        retirement_id=retirement_id, beneficiary=str(retired.get("beneficiary")), year=int(retired.get("year", 0)),
        count=count, kwh=count * unit, device={**device, "tx_id": device_tx.tx_id.hex(), "signer": device_tx.signer_org},
        batch={**batch, "tx_id": issue_tx.tx_id.hex(), "signer": issue_tx.signer_org, "height": issue_tx.height},
        readings=used, metered_kwh=metered, transfers=list(reversed(transfers)),
        retirement=step("retired", retire_tx, retired),
        steps=[step("device registered", device_tx, device), step("issued", issue_tx, batch),
               step("retired", retire_tx, retired)],
        chain_id=evidence.chain_id)

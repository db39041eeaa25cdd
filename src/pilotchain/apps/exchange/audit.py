"""Audit export of the data exchange, and its offline verifier.

``pilotchain audit export`` asks an organisation's vault for one file about a payload, an
organisation, a data subject or a time range. The vault finds the ``dataex`` transactions
involved (registration, decisions, withdrawals, purges and their confirmations, complaints) by
reading the chain's blocks, adds the signed receipts it holds for those payloads with their
Merkle paths to the batch roots its ``anchor`` transactions carry, and has the platform build an
evidence bundle (:mod:`pilotchain.sdk.evidence`): the transactions with their inclusion proofs,
the block headers, their commit certificates and the validator-set history back to genesis.

``pilotchain audit verify FILE --genesis genesis.json`` checks all of it with no network: the
platform's :func:`~pilotchain.ledger.evidence.verify_bundle` (every proof, certificate and
validator change), then each receipt's signature by the organisation it names (provider for
``delivered``, consumer for ``received`` / ``refused``). Any changed byte fails, with the reason.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pilotchain.apps.exchange.receipts import BatchState
from pilotchain.apps.exchange.records import (
    CONTRACT,
    ExchangeError,
    Receipt,
    ReceiptKind,
    verify_signed,
)
from pilotchain.codec import CodecError, decode
from pilotchain.crypto import get_suite
from pilotchain.ledger.evidence import EvidenceInvalid, VerifiedEvidence, verify_bundle
from pilotchain.ledger.genesis import Genesis
from pilotchain.ledger.tx import decode_args
from pilotchain.sdk import Client
from pilotchain.sdk.evidence import AttachmentBatch, export_evidence

__all__ = ["AuditReport", "Selection", "export_audit", "find_transactions", "verify_audit"]

RECEIPT_DOMAIN = "receipt"


@dataclass(frozen=True, slots=True)
class Selection:
    """What an export covers (all given conditions must hold; at least one is given)."""

    payload_id: str | None = None
    org: str | None = None
    subject: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def describe(self) -> str:
        parts = [f"{name} {value}" for name, value in (("payload", self.payload_id), ("organisation", self.org),
                                                       ("subject", self.subject), ("since", self.since_ms),
                                                       ("until", self.until_ms)) if value is not None]
        return ", ".join(parts) or "everything"


@dataclass(frozen=True, slots=True)
class ChainTx:
    tx_id: str
    height: int
    timestamp_ms: int
    method: str
    args: dict[str, Any]
    signer_org: str
    contract: str = CONTRACT


def find_transactions(client: Client, selection: Selection, *,
                      progress: Callable[[int, int], None] | None = None) -> list[ChainTx]:
    """The transactions the selection covers, oldest first (every block is read and checked
    against its header by the client): the ``dataex`` calls about the selected payloads, and the
    calls of any other contract — a policy contract such as ``health`` — that name them, their
    subjects, or an identifier an earlier selected call introduced (a consent id, a request id),
    so a policy's grants, withdrawals, requests and reviews come with the decisions they made."""
    head = client.status().height
    owners: dict[str, str] = {}
    subjects: dict[str, list[str]] = {}
    related: set[str] = {v for v in (selection.payload_id, selection.subject) if v is not None}
    found: list[ChainTx] = []
    for height in range(1, head + 1):
        block = client.get_block(height)
        at = block.header.timestamp_ms
        in_window = not ((selection.since_ms is not None and at < selection.since_ms) or
                         (selection.until_ms is not None and at > selection.until_ms))
        for tx in block.transactions:
            if tx.redacted or not isinstance(tx.args, dict):
                continue
            args = tx.args
            if tx.contract != CONTRACT:
                if related and in_window and related & _strings(args):
                    related |= _identifiers(args)
                    found.append(ChainTx(tx_id=tx.tx_id, height=height, timestamp_ms=at, method=tx.method,
                                         args=args, signer_org=str(tx.signer_org), contract=tx.contract))
                continue
            payload_id = args.get("payload_id") if isinstance(args.get("payload_id"), str) else None
            if tx.method == "register" and payload_id is not None:
                owners.setdefault(payload_id, str(tx.signer_org))
                subjects.setdefault(payload_id, [str(s) for s in args.get("subjects") or []])
            if payload_id is None:
                continue  # anchors come in through the receipts they carry
            if selection.payload_id is not None and payload_id != selection.payload_id:
                continue
            if selection.org is not None and selection.org not in (tx.signer_org, args.get("org"), owners.get(payload_id)):
                continue
            if selection.subject is not None and selection.subject not in subjects.get(payload_id, []):
                continue
            related.add(payload_id)
            if not in_window:
                continue
            found.append(ChainTx(tx_id=tx.tx_id, height=height, timestamp_ms=at, method=tx.method, args=args,
                                 signer_org=str(tx.signer_org)))
        if progress is not None:
            progress(height, head)
    return found


def _strings(value: Any, depth: int = 0) -> set[str]:
    """Every string in a decoded argument value (bounded depth)."""
    if isinstance(value, str):
        return {value}
    if depth > 8:
        return set()
    if isinstance(value, dict):
        return {s for item in value.values() for s in _strings(item, depth + 1)}
    if isinstance(value, list | tuple):
        return {s for item in value for s in _strings(item, depth + 1)}
    return set()


def _identifiers(args: dict[str, Any]) -> set[str]:
    """The identifiers a call introduces (``id`` and ``*_id`` fields, one level into maps)."""
    found: set[str] = set()
    for key, value in args.items():
        if isinstance(value, str) and (key == "id" or key.endswith("_id")):
            found.add(value)
        elif isinstance(value, dict):
            found |= {v for k, v in value.items() if isinstance(v, str) and (k == "id" or k.endswith("_id"))}
    return found


def export_audit(vault: Any, selection: Selection, *, progress: Callable[[int, int], None] | None = None) -> bytes:
    """The evidence bundle for ``selection``, built by ``vault`` (a :class:`~.vault.Vault`)."""
    txs = find_transactions(vault.client, selection, progress=progress)
    payload_ids = list(dict.fromkeys(str(tx.args["payload_id"]) for tx in txs
                                     if tx.contract == CONTRACT and isinstance(tx.args.get("payload_id"), str)))
    if not txs:
        raise ExchangeError("NOT_FOUND", f"no data-exchange transaction matches {selection.describe()}")
    batches: dict[bytes, tuple[str, list[bytes], set[int]]] = {}
    for payload_id in payload_ids:
        for _, row in vault.book.receipts_of(payload_id):
            if not row.batch_root:
                continue
            batch = vault.book.batch(row.batch_root)
            if batch is None or batch.state != BatchState.ANCHORED or not batch.tx_id:
                continue
            if row.batch_root not in batches:
                documents = [vault.book.receipt(rid).signed for rid in batch.receipt_ids]
                batches[row.batch_root] = (batch.tx_id, documents, set())
            batches[row.batch_root][2].add(row.index)
    attachments = [AttachmentBatch(tx_id=tx_id, argument="batch", documents=tuple(documents),
                                   include=tuple(sorted(indices)))
                   for tx_id, documents, indices in batches.values()]
    return export_evidence(vault.client, [tx.tx_id for tx in txs], attachments=attachments,
                           genesis=vault.chain.genesis)


@dataclass
class AuditReport:
    """What an audit file proves, after every check passed."""

    chain_id: str
    transactions: list[dict[str, Any]] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    validator_changes: int = 0
    headers: int = 0


def verify_audit(bundle: bytes, genesis: Genesis) -> AuditReport:
    """Check an audit file offline; :class:`~pilotchain.ledger.evidence.EvidenceInvalid` (with
    where and why) when anything does not hold."""
    evidence: VerifiedEvidence = verify_bundle(bundle, genesis)
    suite = get_suite(evidence.suite)
    report = AuditReport(chain_id=evidence.chain_id, validator_changes=len(evidence.validator_changes),
                         headers=len(evidence.headers))
    for tx in sorted(evidence.txs, key=lambda t: (t.height, t.index)):
        try:
            args = decode_args(tx.args)
        except CodecError:
            args = None
        report.transactions.append({
            "tx_id": tx.tx_id.hex(), "height": tx.height, "time_ms": tx.timestamp_ms, "contract": tx.contract,
            "method": tx.method, "signer": f"{tx.signer_name} ({tx.signer_org})", "status": tx.status,
            "payload_id": args.get("payload_id") if isinstance(args, dict) else None,
            "org": args.get("org") if isinstance(args, dict) else None,
        })
    for index, attachment in enumerate(evidence.attachments):
        where = f"receipts[{index}]"
        try:
            signed, certificate = verify_signed(suite, attachment.document, RECEIPT_DOMAIN)
            receipt = decode(signed.body, Receipt)
        except (ExchangeError, CodecError) as exc:
            raise EvidenceInvalid(where, f"not a signed receipt: {exc}") from exc
        signer_should_be = receipt.provider_org if receipt.kind == ReceiptKind.DELIVERED else receipt.consumer_org
        if certificate.org_id != signer_should_be:
            raise EvidenceInvalid(where, f"a {receipt.kind} receipt signed by {certificate.org_id}, "
                                         f"not by {signer_should_be}")
        report.receipts.append({
            "kind": receipt.kind, "request_id": receipt.request_id, "payload_id": receipt.payload_id,
            "provider": receipt.provider_org, "consumer": receipt.consumer_org, "purpose": receipt.purpose,
            "at_ms": receipt.at_ms, "signed_by": f"{certificate.subject} ({certificate.org_id})",
            "anchored_by_tx": attachment.tx_id.hex(), "commitment": receipt.commitment.hex(),
            "note": receipt.note, "document": base64.b64encode(attachment.document).decode(),
        })
    return report

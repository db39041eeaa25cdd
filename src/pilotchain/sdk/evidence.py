"""Exporting an offline-verifiable evidence bundle from a running chain.

:func:`export_evidence` asks a node (through a :class:`~pilotchain.sdk.Client`, so every read is
a signed request and every proof the node sends is checked on arrival) for everything an auditor
needs to verify some transactions with nothing but the chain's genesis document:

* each transaction, its receipt and inclusion proof, and its block's header with the commit
  certificate (``GET /v1/txs/{id}``);
* the validator-set history up to the highest of those blocks: governance's schedule
  (``gov.validators``), then, per change, the proposal id (state ``gov`` ``v/<height>``), the
  heights it was filed and executed at (``gov.get``), the transactions there whose receipts say
  so (``GET /v1/blocks/{h}``), and those transactions with their proofs and certified headers;
* the documents of anchored batches (:class:`AttachmentBatch`) with their Merkle proofs.

The bundle format and what its verification proves are in :mod:`pilotchain.ledger.evidence`;
``verify_bundle(bundle, genesis)`` checks it offline (``pilotchain chain evidence verify``). Pass
``genesis=`` and the exporter verifies the bundle before returning it, so it never hands out a
bundle that does not verify.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilotchain.codec import CodecError, decode
from pilotchain.crypto import Suite, get_suite
from pilotchain.ledger.block import Receipt
from pilotchain.ledger.evidence import (
    CertifiedHeader,
    EvidenceInvalid,
    TxEvidence,
    ValidatorChange,
    make_attachments,
    make_bundle,
    make_tree_head,
    verify_bundle,
)
from pilotchain.ledger.genesis import Genesis, genesis_hash
from pilotchain.ledger.tx import TxRejected, decode_args, decode_transaction
from pilotchain.sdk._client import Client
from pilotchain.sdk._errors import EvidenceError, ProofError
from pilotchain.sdk._models import TxResult

__all__ = ["AttachmentBatch", "export_evidence"]

#: governance's contract and the state key prefix of its validator schedule (contracts/governance.py)
_GOV = "gov"
_SCHEDULE_KEY_PREFIX = b"v/"


@dataclass(frozen=True, slots=True)
class AttachmentBatch:
    """Documents one transaction anchors: its argument ``argument`` holds
    ``make_tree_head(suite, documents)`` (``{"root", "size"}``, documents in this order).
    ``include``: which documents go into the bundle (default: all of them)."""

    tx_id: str
    argument: str
    documents: tuple[bytes, ...]
    include: tuple[int, ...] | None = None


def export_evidence(client: Client, tx_ids: Sequence[str], *, attachments: Sequence[AttachmentBatch] = (),
                    genesis: Genesis | None = None) -> bytes:
    """The canonical bytes of an evidence bundle proving ``tx_ids`` (hex, committed) and the
    attached documents. A batch's anchoring transaction is added to the proven ones if missing.

    Raises :class:`~pilotchain.sdk.EvidenceError` when something cannot be proven (a transaction
    not committed, a node without commit certificates, a batch that does not match its anchor),
    :class:`~pilotchain.sdk.ProofError` when the node's answers do not verify (or, with
    ``genesis``, the bundle does not), and the client's errors for the requests themselves."""
    info = client.status()
    suite = get_suite(info.suite)
    if genesis is not None and genesis_hash(suite, genesis).hex() != info.genesis_hash:
        raise EvidenceError(f"the node serves the chain with genesis hash {info.genesis_hash}, "
                            "not the genesis given")
    wanted = list(dict.fromkeys([*tx_ids, *(batch.tx_id for batch in attachments)]))
    if not wanted:
        raise EvidenceError("name at least one transaction to prove")
    headers: dict[int, CertifiedHeader] = {}
    subjects = [_tx_evidence(client, tx_id, headers) for tx_id in wanted]
    changes = _validator_changes(client, max(entry.height for entry in subjects), headers)
    anchored = []
    for batch in attachments:
        position = wanted.index(batch.tx_id)
        _check_anchor(subjects[position], batch, suite)
        anchored.extend(make_attachments(suite, batch.documents, position, batch.argument,
                                         None if batch.include is None else list(batch.include)))
    bundle = make_bundle(bytes.fromhex(info.genesis_hash), headers, subjects, changes, anchored)
    if genesis is not None:
        try:
            verify_bundle(bundle, genesis)
        except EvidenceInvalid as exc:
            raise ProofError(f"the node's answers do not make a bundle that verifies: {exc}") from exc
    return bundle


def _tx_evidence(client: Client, tx_id: str, headers: dict[int, CertifiedHeader]) -> TxEvidence:
    result = client.get_tx(tx_id)
    if not result.committed:
        raise EvidenceError(f"transaction {tx_id} is {result.state}, not committed: nothing to prove yet")
    if result.certificate is None:
        raise EvidenceError(f"the node has no commit certificate for block {result.height} "
                            "(a development node certifies nothing): export from a validator")
    entry = _entry_of(result)
    headers.setdefault(entry.height, CertifiedHeader(header=result.header, commit=result.certificate))  # type: ignore[arg-type]
    return entry


def _entry_of(result: TxResult) -> TxEvidence:
    if result.height is None or result.tx_raw is None or result.receipt is None or result.proof is None:
        raise ProofError(f"the node's answer about transaction {result.tx_id} lacks its proof")
    return TxEvidence(height=result.height, tx=result.tx_raw, receipt=result.receipt, proof=result.proof)


def _validator_changes(client: Client, height_max: int, headers: dict[int, CertifiedHeader]) -> list[ValidatorChange]:
    """Every validator-set change effective at or below ``height_max``, in schedule order."""
    answer = client.query(_GOV, "validators")
    try:
        schedule = sorted(int(entry["effective_height"]) for entry in answer["history"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EvidenceError(f"the node's validator schedule is not readable: {exc}") from exc
    changes = []
    for effective_height in schedule:
        if effective_height > height_max:
            break
        proposal_id = _proposal_of(client, effective_height)
        document = client.query(_GOV, "get", {"id": proposal_id})
        try:
            filed_at, executed_at = int(document["created_height"]), int(document["closed_height"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EvidenceError(f"governance proposal #{proposal_id} is not readable: {exc}") from exc
        proposal_tx = _find_gov_tx(client, filed_at, "proposed", proposal_id)
        execution_tx = _find_gov_tx(client, executed_at, "executed", proposal_id)
        changes.append(ValidatorChange(
            proposal=_tx_evidence(client, proposal_tx, headers),
            execution=None if execution_tx == proposal_tx else _tx_evidence(client, execution_tx, headers),
        ))
    return changes


def _proposal_of(client: Client, effective_height: int) -> int:
    """The id of the proposal that scheduled the set in force from ``effective_height`` (governance's
    ``ValidatorSchedule(effective_height, validators, proposal_id)``, read with its state proof)."""
    value = client.read_state(_GOV, _SCHEDULE_KEY_PREFIX + effective_height.to_bytes(8, "big")).decoded
    if not (isinstance(value, list) and len(value) == 3 and value[0] == effective_height and isinstance(value[2], int)):
        raise EvidenceError(f"governance's schedule entry for height {effective_height} is not readable")
    return value[2]


def _find_gov_tx(client: Client, height: int, event: str, proposal_id: int) -> str:
    """The id of the transaction of block ``height`` whose receipt has the gov ``event`` for
    ``proposal_id``."""
    block = client.get_block(height)
    for tx, receipt in zip(block.transactions, block.receipts, strict=True):
        if receipt.status == "OK" and _has_gov_event(receipt, event, proposal_id):
            return tx.tx_id
    raise EvidenceError(f"block {height} has no transaction that {event} governance proposal #{proposal_id}")


def _has_gov_event(receipt: Receipt, name: str, proposal_id: int) -> bool:
    for event in receipt.events:
        if event.contract != _GOV or event.name != name:
            continue
        try:
            data = decode(event.data, Any)
        except CodecError:
            continue
        if isinstance(data, dict) and data.get("id") == proposal_id:
            return True
    return False


def _check_anchor(entry: TxEvidence, batch: AttachmentBatch, suite: Suite) -> None:
    """The batch hashes to the tree head its transaction anchors (else its proofs would not verify)."""
    if not batch.documents:
        raise EvidenceError(f"the batch anchored by {batch.tx_id} has no documents")
    try:
        args = decode_args(decode_transaction(suite, entry.tx).body.args)
    except (CodecError, TxRejected) as exc:
        raise ProofError(f"transaction {batch.tx_id} does not decode: {exc}") from exc
    anchored = args.get(batch.argument) if isinstance(args, dict) else None
    if anchored != make_tree_head(suite, batch.documents):
        raise EvidenceError(f"the {len(batch.documents)} documents do not hash to the tree head transaction "
                            f"{batch.tx_id} anchors in argument {batch.argument!r}")

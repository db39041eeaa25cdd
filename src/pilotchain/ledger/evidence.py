"""Offline-verifiable chain evidence: transactions proven committed, with only genesis as the anchor.

Theory of operation
-------------------
An :class:`EvidenceBundle` lets an auditor check, with no network and nothing but the chain's
genesis document, that some transactions (their receipts and events, and documents anchored by
them) were committed by the consortium. It holds:

* the genesis hash it is for (the auditor's genesis must hash to it);
* **certified headers** — ledger :class:`~pilotchain.ledger.block.BlockHeader`\\ s with the
  :class:`~pilotchain.ledger.commit.CommitRecord` a validator stores beside the block. The
  consensus header names the ledger header's hash, so a record certifies a header without the
  block's other transactions (:func:`~pilotchain.ledger.commit.verify_header_commit`);
* **transaction entries** — wire bytes, receipt and a :class:`~pilotchain.ledger.block.TxProof`
  into the header of their height;
* **validator-set changes** since genesis, each proven by the governance transactions that made it
  (see below), so the auditor knows the set in force at every height the bundle uses;
* **anchored attachments** — an opaque document and an RFC 6962 inclusion proof
  (:mod:`~pilotchain.ledger.merkle`) to a tree head ``{"root": bytes, "size": int}`` that one of the
  bundle's transactions carries as a named argument: an application anchors a batch of signed
  documents with one transaction and proves each document on its own. The size is part of the
  anchor because an RFC 6962 path alone does not fix it (index 0 with a two-node path verifies for
  3 and for 4 leaves) — as in a certificate-transparency signed tree head.

:func:`verify_bundle` checks all of it and returns :class:`VerifiedEvidence`, or raises
:class:`EvidenceInvalid` naming the part that failed (``txs[2]``, ``headers[0] (block 17)``...)
and why. Decoding is strict (canonical bytes only) and bounded (bundle size, counts, document
size, proof lengths), and every field is checked, so changing any byte of a bundle makes it fail.

Validator-set history: why it is sound
--------------------------------------
Governance changes the set with an ``add_validator`` / ``remove_validator`` proposal
(``contracts/governance.py``). The transaction that files it (``gov.propose``) carries the change
in its arguments (name, organisation, key, power; or the name to remove) and its receipt a
``proposed {id, kind}`` event. The transaction whose approval meets the policy (the same
``propose`` or a later ``gov.approve {id}``) applies it: its receipt carries ``executed {id,
kind}`` and ``validators_scheduled {effective_height, count}``, and from ``effective_height`` =
max(its height + 2, previous change's effective height + 1) the set in force is the *latest
scheduled* set with the validator appended (or removed, order kept). The event does not carry
the new set, so the verifier derives it exactly as governance computes it, from certified data:

1. start from the genesis validators;
2. for each change, in schedule order: both transactions are shown (inclusion proofs) in headers
   certified by the set in force *at their heights* — computed from the changes already
   verified, which include every change effective at or below those heights, because a change
   takes effect at least two blocks after its approval and the schedule is ordered;
3. the receipts must say OK with the events above (same proposal id and kind, exactly one
   ``validators_scheduled``), the derived effective height and count must equal the event's, and
   the new set is applied from that height on.

Every certified header is also checked to name the derived set (the ledger header's roster hash
covers names, organisations, keys and powers; the consensus header's hash keys and powers). So a
bundle that leaves out a change fails on its first real header at or above that change's
effective height; it cannot make a real header verify against a wrong set. What remains is the assumption every light client makes: a
certificate is only as good as the validators who signed it. A forged history needs more than
2/3 of the power of some set of the chain's past signing blocks it never decided — validators of
that set colluding, or their keys stolen after they left the set (a "long-range" forgery). Keys
of retired validators must therefore stay protected or be destroyed. A certificate also binds
the chain id, not the genesis hash: two chains with the same chain id *and* the same validator
keys cannot be told apart by certificates (``network init`` and the ceremony make fresh keys).

The signer of each transaction is read from its certificate and its signature verified; that
the certificate was a member's at the block's time is what the certifying validators checked
before including it (membership history is not replayed here).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.consensus.certificate import ConsensusError, InvalidCertificate
from pilotchain.crypto import Suite, get_suite
from pilotchain.errors import CoreError
from pilotchain.identity.records import Certificate, decode_record
from pilotchain.ledger import merkle
from pilotchain.ledger.block import (
    BlockHeader,
    Event,
    Receipt,
    TxProof,
    block_hash,
    verify_tx_proof,
)
from pilotchain.ledger.commit import verify_header_commit
from pilotchain.ledger.genesis import Genesis, ValidatorInfo, genesis_hash
from pilotchain.ledger.tx import (
    TX_SIGNING_DOMAIN,
    SignedTx,
    TxLimits,
    TxRejected,
    decode_args,
    decode_transaction,
)

__all__ = [
    "ATTACHMENTS_MAX",
    "BUNDLE_BYTES_MAX",
    "DOCUMENT_BYTES_MAX",
    "EVIDENCE_FORMAT",
    "HEADERS_MAX",
    "TXS_MAX",
    "VALIDATOR_CHANGES_MAX",
    "AnchoredAttachment",
    "CertifiedHeader",
    "EvidenceBundle",
    "EvidenceInvalid",
    "TxEvidence",
    "ValidatorChange",
    "VerifiedAttachment",
    "VerifiedEvidence",
    "VerifiedHeader",
    "VerifiedTx",
    "VerifiedValidatorChange",
    "make_attachments",
    "make_bundle",
    "make_tree_head",
    "verify_bundle",
]

#: The bundle's format name; a verifier refuses any other.
EVIDENCE_FORMAT = "pilotchain-evidence/1"
#: Bounds on what a verifier decodes and checks.
BUNDLE_BYTES_MAX = 64 * 1024 * 1024
TXS_MAX = 4096
#: governance remembers at most 1,000 validator-set changes (``VALIDATOR_SCHEDULE_MAX``)
VALIDATOR_CHANGES_MAX = 1000
#: one header per transaction, two per validator-set change at most
HEADERS_MAX = TXS_MAX + 2 * VALIDATOR_CHANGES_MAX
ATTACHMENTS_MAX = 65_536
DOCUMENT_BYTES_MAX = 1024 * 1024
#: a transaction in a block is at most a block's bytes (governance bounds it far lower)
_TX_LIMITS = TxLimits(tx_bytes_max=16 * 1024 * 1024)
#: event payloads are decoded as free-form values at most this deep (contracts bound theirs at 32)
_EVENT_DEPTH_MAX = 32

# What governance does (contracts/governance.py), restated here because the ledger layer may not
# import contracts; tests/ledger/test_evidence.py checks that they agree.
GOV_CONTRACT = "gov"
ADD_VALIDATOR = "add_validator"
REMOVE_VALIDATOR = "remove_validator"
VALIDATOR_CHANGE_DELAY_BLOCKS = 2
STATUS_OK = "OK"


class EvidenceInvalid(CoreError):
    """A bundle that does not prove what it claims: ``where`` names the part, ``reason`` why."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


# ------------------------------------------------------------------------------ the bundle


class CertifiedHeader(Record, frozen=True):
    """A ledger header and the commit record (canonical bytes, as stored beside the block)."""

    header: BlockHeader
    commit: bytes


class TxEvidence(Record, frozen=True):
    """A transaction, its receipt and the proof that both are in the block at ``height``."""

    height: int
    tx: bytes
    receipt: Receipt
    proof: TxProof


class ValidatorChange(Record, frozen=True):
    """A validator-set change: the ``gov.propose`` transaction that filed it and the transaction
    whose approval executed it (None when the proposal executed at once)."""

    proposal: TxEvidence
    execution: TxEvidence | None


class AnchoredAttachment(Record, frozen=True):
    """A document and its RFC 6962 inclusion proof (leaf ``index``, ``path`` from the leaf up) to
    the tree head ``{"root", "size"}`` in argument ``argument`` of the bundle's transaction
    ``tx`` (an index into :attr:`EvidenceBundle.txs`)."""

    document: bytes
    tx: int
    argument: str
    index: int
    path: tuple[bytes, ...]


class EvidenceBundle(Record, frozen=True):
    format: str
    genesis_hash: bytes
    #: strictly ascending heights, each used by a transaction of ``txs`` or ``validator_changes``
    headers: tuple[CertifiedHeader, ...]
    #: every validator-set change effective at or below the highest height used, in schedule order
    validator_changes: tuple[ValidatorChange, ...]
    txs: tuple[TxEvidence, ...]
    attachments: tuple[AnchoredAttachment, ...]


# ------------------------------------------------------------------------------ what was verified


@dataclass(frozen=True, slots=True)
class VerifiedHeader:
    height: int
    block_hash: bytes
    timestamp_ms: int
    proposer: str
    #: names of the validators whose precommits are in the certificate
    signers: tuple[str, ...]
    #: names of the validators in force at this height
    validators: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerifiedTx:
    tx_id: bytes
    height: int
    index: int
    block_hash: bytes
    timestamp_ms: int
    contract: str
    method: str
    #: canonical bytes of the arguments (``pilotchain.ledger.tx.decode_args`` reads them)
    args: bytes
    signer_org: str
    signer_name: str
    #: "OK" or the RejectCode value execution failed with (the transaction changed nothing)
    status: str
    message: str
    #: canonical bytes of the return value
    result: bytes
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class VerifiedValidatorChange:
    effective_height: int
    kind: str
    #: the validator added or removed
    validator: str
    #: the set in force from ``effective_height`` on
    validators: tuple[ValidatorInfo, ...]
    proposal_id: int
    proposal_tx_id: bytes
    execution_tx_id: bytes
    #: the height of the block whose transaction executed the proposal
    approved_height: int


@dataclass(frozen=True, slots=True)
class VerifiedAttachment:
    tx_id: bytes
    argument: str
    root: bytes
    size: int
    index: int
    document: bytes


@dataclass(frozen=True, slots=True)
class VerifiedEvidence:
    chain_id: str
    suite: str
    genesis_hash: bytes
    headers: tuple[VerifiedHeader, ...]
    validator_changes: tuple[VerifiedValidatorChange, ...]
    txs: tuple[VerifiedTx, ...]
    attachments: tuple[VerifiedAttachment, ...]


# ------------------------------------------------------------------------------ building


def make_tree_head(suite: Suite, documents: Sequence[bytes]) -> dict[str, Any]:
    """The argument value that anchors ``documents`` (in order): ``{"root": ..., "size": n}``."""
    if not documents:
        raise ValueError("a batch needs at least one document")
    return {"root": merkle.merkle_root(suite.hash, documents), "size": len(documents)}


def make_attachments(suite: Suite, documents: Sequence[bytes], tx: int, argument: str,
                     indexes: Sequence[int] | None = None) -> list[AnchoredAttachment]:
    """Attachments for ``documents[i]`` (every i, or ``indexes``) of a batch anchored by
    :func:`make_tree_head` in argument ``argument`` of the bundle's transaction number ``tx``."""
    chosen = range(len(documents)) if indexes is None else indexes
    return [AnchoredAttachment(document=documents[i], tx=tx, argument=argument, index=i,
                               path=tuple(merkle.inclusion_proof(suite.hash, documents, i)))
            for i in chosen]


def make_bundle(chain_genesis_hash: bytes, headers: Mapping[int, CertifiedHeader], txs: Sequence[TxEvidence],
                validator_changes: Sequence[ValidatorChange] = (),
                attachments: Sequence[AnchoredAttachment] = ()) -> bytes:
    """The canonical bundle bytes: the headers the transactions use (ascending; ``headers`` may
    hold more), the changes in the order given (schedule order), the transactions in the order
    given. Raises ValueError when a transaction's header is missing."""
    used: set[int] = {entry.height for entry in txs}
    for change in validator_changes:
        used.add(change.proposal.height)
        if change.execution is not None:
            used.add(change.execution.height)
    missing = sorted(used - set(headers))
    if missing:
        raise ValueError(f"no certified header for blocks {missing}")
    bundle = EvidenceBundle(
        format=EVIDENCE_FORMAT,
        genesis_hash=chain_genesis_hash,
        headers=tuple(headers[height] for height in sorted(used)),
        validator_changes=tuple(validator_changes),
        txs=tuple(txs),
        attachments=tuple(attachments),
    )
    return encode(bundle)


# ------------------------------------------------------------------------------ verifying


def verify_bundle(bundle_bytes: bytes, genesis: Genesis) -> VerifiedEvidence:
    """Verify ``bundle_bytes`` against ``genesis`` (the trust anchor); see the module docstring.
    Raises :class:`EvidenceInvalid` naming what failed."""
    try:
        genesis.check()
        suite = get_suite(genesis.suite)
    except CoreError as exc:
        raise EvidenceInvalid("genesis", f"not a usable genesis document: {exc}") from exc
    if len(bundle_bytes) > BUNDLE_BYTES_MAX:
        raise EvidenceInvalid("bundle", f"{len(bundle_bytes)} bytes, limit {BUNDLE_BYTES_MAX}")
    try:
        bundle = decode(bundle_bytes, EvidenceBundle, max_bytes=BUNDLE_BYTES_MAX)
    except CodecError as exc:
        raise EvidenceInvalid("bundle", f"not a canonical evidence bundle: {exc}") from exc
    if bundle.format != EVIDENCE_FORMAT:
        raise EvidenceInvalid("bundle", f"format {bundle.format!r}, this verifier reads {EVIDENCE_FORMAT!r}")
    expected = genesis_hash(suite, genesis)
    if bundle.genesis_hash != expected:
        raise EvidenceInvalid("bundle", f"made for the chain with genesis hash {bundle.genesis_hash.hex()}, "
                                        f"the genesis given hashes to {expected.hex()}")
    _check_shape(bundle)
    verifier = _Verifier(suite, genesis, bundle)
    changes = tuple(verifier.verify_change(i, change) for i, change in enumerate(bundle.validator_changes))
    txs = tuple(verifier.verify_subject(i, entry) for i, entry in enumerate(bundle.txs))
    attachments = tuple(verifier.verify_attachment(i, attachment, txs)
                        for i, attachment in enumerate(bundle.attachments))
    return VerifiedEvidence(
        chain_id=genesis.chain_id,
        suite=genesis.suite,
        genesis_hash=expected,
        headers=tuple(verifier.certified[certified.header.height] for certified in bundle.headers),
        validator_changes=changes,
        txs=txs,
        attachments=attachments,
    )


def _check_shape(bundle: EvidenceBundle) -> None:
    """Bounds and canonical form, before any signature or proof is checked."""
    for where, count, limit in (("headers", len(bundle.headers), HEADERS_MAX), ("txs", len(bundle.txs), TXS_MAX),
                                ("validator_changes", len(bundle.validator_changes), VALIDATOR_CHANGES_MAX),
                                ("attachments", len(bundle.attachments), ATTACHMENTS_MAX)):
        if count > limit:
            raise EvidenceInvalid(where, f"{count} entries, limit {limit}")
    if not bundle.txs:
        raise EvidenceInvalid("txs", "the bundle proves no transaction")
    previous = 0
    for i, certified in enumerate(bundle.headers):
        if certified.header.height <= previous:
            raise EvidenceInvalid(f"headers[{i}]", "heights must be strictly ascending, from 1")
        previous = certified.header.height
    used = {entry.height for entry in bundle.txs}
    for change in bundle.validator_changes:
        used.add(change.proposal.height)
        if change.execution is not None:
            used.add(change.execution.height)
    for i, certified in enumerate(bundle.headers):
        if certified.header.height not in used:
            raise EvidenceInvalid(f"headers[{i}] (block {certified.header.height})",
                                  "no transaction of the bundle is in this block")
    seen: set[tuple[int, str, int]] = set()
    for i, attachment in enumerate(bundle.attachments):
        key = (attachment.tx, attachment.argument, attachment.index)
        if key in seen:
            raise EvidenceInvalid(f"attachments[{i}]", "the same document of the same batch twice")
        seen.add(key)
        if len(attachment.document) > DOCUMENT_BYTES_MAX:
            raise EvidenceInvalid(f"attachments[{i}]", f"document of {len(attachment.document)} bytes, "
                                                       f"limit {DOCUMENT_BYTES_MAX}")
        if len(attachment.path) > merkle.PROOF_LENGTH_MAX:
            raise EvidenceInvalid(f"attachments[{i}]", f"proof of {len(attachment.path)} hashes, "
                                                       f"limit {merkle.PROOF_LENGTH_MAX}")


@dataclass(frozen=True, slots=True)
class _Checked:
    """A transaction entry shown in its certified block, decoded."""

    tx: SignedTx
    verified: VerifiedTx


class _Verifier:
    """State of one verification: the validator history so far and the headers certified."""

    def __init__(self, suite: Suite, genesis: Genesis, bundle: EvidenceBundle) -> None:
        self.suite = suite
        self.genesis = genesis
        self.headers = {certified.header.height: (i, certified) for i, certified in enumerate(bundle.headers)}
        #: (effective height, validators) of each verified change, in schedule order
        self.history: list[tuple[int, tuple[ValidatorInfo, ...]]] = []
        self.certified: dict[int, VerifiedHeader] = {}
        self.subject_ids: set[bytes] = set()
        #: decoded arguments of the transactions attachments name (decoded once each)
        self.anchor_args: dict[int, dict[Any, Any]] = {}

    # -------------------------------------------------------------- headers

    def validators_at(self, height: int) -> tuple[ValidatorInfo, ...]:
        current = self.genesis.validators
        for effective_height, validators in self.history:
            if effective_height > height:
                break
            current = validators
        return current

    def certify(self, where: str, height: int) -> VerifiedHeader:
        """The header of ``height``, certified by the set in force there (checked once)."""
        known = self.certified.get(height)
        if known is not None:
            return known
        found = self.headers.get(height)
        if found is None:
            raise EvidenceInvalid(where, f"the bundle has no certified header for block {height}")
        index, certified = found
        header = certified.header
        validators = self.validators_at(height)
        names = tuple(v.name for v in validators)
        try:
            record = verify_header_commit(header, certified.commit, validators, self.suite)
        except (InvalidCertificate, ConsensusError) as exc:
            raise EvidenceInvalid(f"headers[{index}] (block {height})",
                                  f"not certified by the validators in force at that height "
                                  f"({', '.join(names)}): {exc}") from exc
        if header.chain_id != self.genesis.chain_id:  # verify_header_commit bound record and header
            raise EvidenceInvalid(f"headers[{index}] (block {height})", f"a block of chain {header.chain_id!r}")
        verified = VerifiedHeader(
            height=height,
            block_hash=block_hash(self.suite, header),
            timestamp_ms=header.timestamp_ms,
            proposer=header.proposer,
            signers=tuple(names[entry.validator_index] for entry in record.certificate.signatures),
            validators=names,
        )
        self.certified[height] = verified
        return verified

    # -------------------------------------------------------------- transactions

    def check_tx(self, where: str, entry: TxEvidence) -> _Checked:
        """``entry`` is in a certified block; its body is well formed and signed by its signer."""
        certified = self.certify(where, entry.height)
        header = self.headers[entry.height][1].header
        if not verify_tx_proof(self.suite, header, entry.tx, entry.receipt, entry.proof):
            raise EvidenceInvalid(where, f"not in block {entry.height}: the transaction, its receipt or its "
                                         "proof does not reach the header's transaction and receipt roots")
        try:
            tx = decode_transaction(self.suite, entry.tx, _TX_LIMITS)
        except TxRejected as exc:
            raise EvidenceInvalid(where, f"not a well-formed transaction: {exc}") from exc
        body = tx.body
        if body.chain_id != self.genesis.chain_id:
            raise EvidenceInvalid(where, f"a transaction for chain {body.chain_id!r}")
        try:
            certificate = decode_record(body.signer_certificate, Certificate)
        except (CodecError, ValueError) as exc:
            raise EvidenceInvalid(where, f"the signer's certificate does not decode: {exc}") from exc
        if certificate.suite != self.genesis.suite or not self.suite.verify(
                certificate.public_key_der, TX_SIGNING_DOMAIN + tx.body_bytes, tx.signature):
            raise EvidenceInvalid(where, "the signature does not verify against the signer's certificate")
        receipt = entry.receipt
        verified = VerifiedTx(
            tx_id=tx.tx_id,
            height=entry.height,
            index=entry.proof.index,
            block_hash=certified.block_hash,
            timestamp_ms=certified.timestamp_ms,
            contract=body.contract,
            method=body.method,
            args=body.args,
            signer_org=certificate.org_id,
            signer_name=certificate.subject,
            status=receipt.status,
            message=receipt.message,
            result=receipt.result,
            events=receipt.events,
        )
        return _Checked(tx, verified)

    def verify_subject(self, i: int, entry: TxEvidence) -> VerifiedTx:
        checked = self.check_tx(f"txs[{i}]", entry)
        if checked.tx.tx_id in self.subject_ids:
            raise EvidenceInvalid(f"txs[{i}]", "the same transaction twice")
        self.subject_ids.add(checked.tx.tx_id)
        return checked.verified

    # -------------------------------------------------------------- validator-set changes

    def verify_change(self, i: int, change: ValidatorChange) -> VerifiedValidatorChange:
        where = f"validator_changes[{i}]"
        proposal = self.check_tx(f"{where}.proposal", change.proposal)
        execution = proposal
        if change.execution is not None:
            execution = self.check_tx(f"{where}.execution", change.execution)
            if execution.tx.tx_id == proposal.tx.tx_id:
                raise EvidenceInvalid(f"{where}.execution", "the proposal itself: leave execution empty")
            if execution.verified.height < proposal.verified.height:
                raise EvidenceInvalid(f"{where}.execution", "committed before the proposal")
        kind, payload, proposal_id = self._filed(f"{where}.proposal", proposal)
        effective_height, count = self._executed(f"{where}.execution" if change.execution else f"{where}.proposal",
                                                 execution, proposal_id, kind, separate=change.execution is not None)
        latest = self.history[-1][1] if self.history else self.genesis.validators
        validators, name = _apply(f"{where}.proposal", kind, payload, latest)
        approved = execution.verified.height
        expected = approved + VALIDATOR_CHANGE_DELAY_BLOCKS
        if self.history:
            expected = max(expected, self.history[-1][0] + 1)
        if effective_height != expected or count != len(validators):
            raise EvidenceInvalid(where, f"governance scheduled {count} validators from height {effective_height}; "
                                         f"replaying the changes gives {len(validators)} from {expected} "
                                         "(a change is missing or out of order)")
        self.history.append((effective_height, validators))
        return VerifiedValidatorChange(
            effective_height=effective_height,
            kind=kind,
            validator=name,
            validators=validators,
            proposal_id=proposal_id,
            proposal_tx_id=proposal.tx.tx_id,
            execution_tx_id=execution.tx.tx_id,
            approved_height=approved,
        )

    def _filed(self, where: str, proposal: _Checked) -> tuple[str, dict[Any, Any], int]:
        """The kind, payload and id of the validator proposal ``proposal`` filed."""
        body = proposal.tx.body
        if (body.contract, body.method) != (GOV_CONTRACT, "propose") or proposal.verified.status != STATUS_OK:
            raise EvidenceInvalid(where, f"not a successful gov.propose ({body.contract}.{body.method}, "
                                         f"{proposal.verified.status})")
        args = _decoded_args(where, body.args)
        kind, payload = args.get("kind"), args.get("payload")
        if kind not in (ADD_VALIDATOR, REMOVE_VALIDATOR) or not isinstance(payload, dict):
            raise EvidenceInvalid(where, f"proposes {kind!r}, not a validator change")
        events = _gov_events(where, proposal.verified.events, "proposed")
        if len(events) != 1 or events[0].get("kind") != kind or not _is_int(events[0].get("id")):
            raise EvidenceInvalid(where, "its receipt does not record the proposal (one 'proposed' event)")
        return kind, payload, events[0]["id"]

    def _executed(self, where: str, execution: _Checked, proposal_id: int, kind: str, *,
                  separate: bool) -> tuple[int, int]:
        """The effective height and size of the set the execution scheduled."""
        body = execution.tx.body
        if (body.contract != GOV_CONTRACT or execution.verified.status != STATUS_OK
                or body.method != ("approve" if separate else "propose")):
            raise EvidenceInvalid(where, f"not a successful gov approval ({body.contract}.{body.method}, "
                                         f"{execution.verified.status})")
        if separate and _decoded_args(where, body.args).get("id") != proposal_id:
            raise EvidenceInvalid(where, f"approves another proposal than #{proposal_id}")
        executed = _gov_events(where, execution.verified.events, "executed")
        scheduled = _gov_events(where, execution.verified.events, "validators_scheduled")
        if len(executed) != 1 or executed[0].get("id") != proposal_id or executed[0].get("kind") != kind:
            raise EvidenceInvalid(where, f"its receipt does not record proposal #{proposal_id} as executed")
        if len(scheduled) != 1:
            raise EvidenceInvalid(where, "its receipt does not record one validator-set schedule")
        effective_height, count = scheduled[0].get("effective_height"), scheduled[0].get("count")
        if not _is_int(effective_height) or not _is_int(count):
            raise EvidenceInvalid(where, "its 'validators_scheduled' event is malformed")
        return effective_height, count

    # -------------------------------------------------------------- attachments

    def verify_attachment(self, i: int, attachment: AnchoredAttachment,
                          txs: tuple[VerifiedTx, ...]) -> VerifiedAttachment:
        where = f"attachments[{i}]"
        if not 0 <= attachment.tx < len(txs):
            raise EvidenceInvalid(where, f"anchored by transaction {attachment.tx}, the bundle has {len(txs)}")
        anchor = txs[attachment.tx]
        if anchor.status != STATUS_OK:
            raise EvidenceInvalid(where, f"its anchoring transaction failed ({anchor.status})")
        args = self.anchor_args.get(attachment.tx)
        if args is None:
            args = self.anchor_args[attachment.tx] = _decoded_args(where, anchor.args)
        head = args.get(attachment.argument)
        root, size = (head.get("root"), head.get("size")) if isinstance(head, dict) else (None, None)
        if not isinstance(root, bytes) or len(root) != len(self.suite.hash(b"")) or not _is_int(size) or size < 1:
            raise EvidenceInvalid(where, f"transaction {anchor.tx_id.hex()} has no tree head "
                                         f"{{root, size}} in argument {attachment.argument!r}")
        if not merkle.verify_inclusion(self.suite.hash, root, attachment.document, attachment.index, size,
                                       attachment.path):
            raise EvidenceInvalid(where, f"the document's Merkle proof does not reach the root anchored in "
                                         f"argument {attachment.argument!r} of transaction {anchor.tx_id.hex()}")
        return VerifiedAttachment(tx_id=anchor.tx_id, argument=attachment.argument, root=root, size=size,
                                  index=attachment.index, document=attachment.document)


def _apply(where: str, kind: str, payload: dict[Any, Any],
           latest: tuple[ValidatorInfo, ...]) -> tuple[tuple[ValidatorInfo, ...], str]:
    """The latest scheduled set with the proposal applied, as governance applies it."""
    name = payload.get("name")
    if not isinstance(name, str):
        raise EvidenceInvalid(where, "the proposal names no validator")
    if kind == ADD_VALIDATOR:
        org, public_key, power = payload.get("org"), payload.get("public_key"), payload.get("power", 1)
        if not isinstance(org, str) or not isinstance(public_key, bytes) or not _is_int(power, allow_bool=True):
            raise EvidenceInvalid(where, "the proposal's validator is malformed")
        if any(v.name == name or v.public_key == public_key for v in latest):
            raise EvidenceInvalid(where, f"adds {name!r}, already in the set (a change is missing or out of order)")
        return (*latest, ValidatorInfo(name=name, org=org, public_key=public_key, power=power)), name
    remaining = tuple(v for v in latest if v.name != name)
    if len(remaining) == len(latest) or not remaining:
        raise EvidenceInvalid(where, f"removes {name!r}, not in the set (a change is missing or out of order)")
    return remaining, name


def _decoded_args(where: str, args: bytes) -> dict[Any, Any]:
    try:
        value = decode_args(args)
    except CodecError as exc:
        raise EvidenceInvalid(where, f"its arguments do not decode: {exc}") from exc
    if not isinstance(value, dict):
        raise EvidenceInvalid(where, "its arguments are not a map")
    return value


def _gov_events(where: str, events: tuple[Event, ...], name: str) -> list[dict[Any, Any]]:
    found: list[dict[Any, Any]] = []
    for event in events:
        if event.contract != GOV_CONTRACT or event.name != name:
            continue
        try:
            data = decode(event.data, Any, depth_max=_EVENT_DEPTH_MAX)
        except CodecError as exc:
            raise EvidenceInvalid(where, f"its {name!r} event does not decode: {exc}") from exc
        if not isinstance(data, dict):
            raise EvidenceInvalid(where, f"its {name!r} event is not a map")
        found.append(data)
    return found


def _is_int(value: Any, *, allow_bool: bool = False) -> TypeGuard[int]:
    return isinstance(value, int) and (allow_bool or not isinstance(value, bool))


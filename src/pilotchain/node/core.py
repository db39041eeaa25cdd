"""The node core: consensus, ledger and mempool glued together as one sans-IO state machine.

Theory of operation
-------------------
:class:`NodeCore` owns a :class:`~pilotchain.consensus.replica.Replica`, the node's
:class:`~pilotchain.node.chain.Ledger` and its :class:`~pilotchain.node.mempool.Mempool`, and
is the consensus :class:`~pilotchain.consensus.application.Application` over the ledger. It
reads no clock, opens no socket and starts no task: a shell feeds it inputs and executes the
effects it returns. Two shells run it — the validator process
(:class:`~pilotchain.node.daemon.ConsensusNode`: sockets, WAL file, timers, gateway) and the
simulator (:mod:`pilotchain.sim`: a virtual network, clock and disk, faults by seed) — so a seed
that finds a bug in the ledger glue, a validator change or a halt finds it in the code the
validators run.

Inputs (each takes the shell's ``now_ms``)::

    start(now_ms)                          once, after construction
    receive(message, sender, now_ms)       a consensus message from peer ``sender``
    tick(now_ms)                           the deadline of the last SetTimer passed
    propose(request, now_ms, txs_max)      answer a RequestPayload: build a block from the mempool
                                           (or plan_proposal, then propose_plan: see "Previews")
    preview(sender, preview)               the proposer's next block, executed ahead of its proposal

After each input the shell iterates :meth:`NodeCore.drain` and executes every effect **in
order** before taking the next one (so a ``Persist`` is durable before the ``Send`` it covers,
exactly as the replica's contract says). The core handles a replica ``Commit`` itself when the
shell reaches it: the certified ledger block is committed atomically with its
:class:`~pilotchain.ledger.commit.CommitRecord`, the mempool forgets its transactions, and the
shell receives :class:`Committed` in its place. Effects::

    Persist, Send, Broadcast, SetTimer, RequestPayload,
    EvidenceFound, ProposalEvidenceFound                                (the replica's, as they are)
    Committed(block, digest, header, certificate)                       (a block was applied)
    Note(level, event, message, fields)                                 (something worth a log line)

The consensus header's ``payload_hash`` is the ledger block's hash (:meth:`compute_payload_hash`:
the header's, once the body is checked against the header's roots), so a commit certificate proves
a ledger header on its own. Validation (:meth:`validate_payload`) accepts a proposal only when the
ledger block's height and timestamp equal the consensus header's, its proposer is the consensus
proposer and re-execution reproduces every root. Validator-set changes come from governance's
schedule in committed state (approval height + 2), so the set for ``h + 1`` is known when ``h`` is decided.

Previews: with every node of a machine's cores busy in turn — the proposer building, then the
validators re-executing — a height costs the two one after the other. A proposer's shell sends
:meth:`plan_proposal`'s :class:`ProposalPreview` (the transactions and the time it will use) before
building, and validators execute it meanwhile (:meth:`preview`): the same block the proposer builds,
because building is a function of the committed state, the transactions and the time. The proposal
then finds its execution done. Nothing is trusted: the proposal is checked against the header this
node computed, and a preview that differs from the proposal costs one execution, as a bad proposal does.

Halting: a certified block that the ledger cannot apply, or a commit at a height that does not
follow the ledger's, is a broken invariant. :meth:`drain` raises :class:`NodeHalted` and every
later input is refused with it: the node stops rather than sign or store something wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.consensus.certificate import compute_block_hash
from pilotchain.consensus.effects import (
    Broadcast,
    Commit,
    EvidenceFound,
    Persist,
    ProposalEvidenceFound,
    RequestPayload,
    Send,
    SetTimer,
)
from pilotchain.consensus.replica import ConsensusConfig, Replica
from pilotchain.consensus.types import (
    ChainTip,
    CommitCertificate,
    ConsensusBlock,
    ConsensusHeader,
    ConsensusMessage,
    ConsensusWal,
    ValidatorSet,
)
from pilotchain.crypto import PrivateKey
from pilotchain.errors import InvariantBroken
from pilotchain.ledger.block import Block, block_hash, verify_block_body
from pilotchain.ledger.commit import CommitRecord, consensus_validator_set
from pilotchain.ledger.tx import TxRejected
from pilotchain.node.chain import BlockInvalid, Ledger
from pilotchain.node.mempool import Mempool

__all__ = ["Committed", "NodeCore", "NodeEffect", "NodeHalted", "Note", "consensus_config_for"]

#: Ledger blocks kept decoded by their consensus payload (built, validated) so the same payload is
#: not decoded again at commit: a strict decode of a 2,000-transaction block is ~2 MB re-encoded.
DECODED_BLOCKS_MAX = 4


class NodeHalted(InvariantBroken):
    """A broken invariant: the node stops rather than sign or store something wrong."""


@dataclass(frozen=True, slots=True)
class Committed:
    """The ledger applied ``block`` (hash ``digest``), decided with ``header`` and ``certificate``."""

    block: Block
    digest: bytes
    header: ConsensusHeader
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class Note:
    """Something the shell should log (the core has no logger)."""

    level: str  # "info" | "warning" | "critical"
    event: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


class ProposalPreview(Record, frozen=True):
    """The block a proposer is about to build: its transactions (the mempool's, in order, before
    the ledger drops any it may not include) and its time, for ``height`` and ``round``."""

    height: int
    round: int
    timestamp_ms: int
    txs: tuple[bytes, ...]


@dataclass(slots=True)
class _DecodedPayload:
    """A consensus payload, its ledger block, and the block's hash once its body is known to match
    its header (built here, or checked by :meth:`NodeCore.compute_payload_hash`)."""

    payload: bytes
    block: Block
    bound_hash: bytes | None = None


NodeEffect: TypeAlias = (
    Persist | Send | Broadcast | SetTimer | RequestPayload | EvidenceFound | ProposalEvidenceFound | Committed | Note
)


def consensus_config_for(ledger: Ledger, **overrides: Any) -> ConsensusConfig:
    """The consensus configuration of ``ledger``'s chain: the chain id, and the timeouts from the
    governed parameters in force now (local liveness knobs: a change takes effect on each node at
    its next start). ``overrides`` set any other :class:`ConsensusConfig` field."""
    params = ledger.params
    options: dict[str, Any] = {
        "chain_id": ledger.genesis.chain_id.encode(),
        "timeout_propose_ms": params.timeout_propose_ms,
        "timeout_prevote_ms": params.timeout_vote_ms,
        "timeout_precommit_ms": params.timeout_vote_ms,
    }
    options.update(overrides)
    return ConsensusConfig(**options)


class NodeCore:
    """Replica + ledger + mempool of one node, driven by a shell (see the module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        mempool: Mempool,
        *,
        name: str,
        private_key: PrivateKey,
        config: ConsensusConfig,
        wal: ConsensusWal | None = None,
        replica_factory: Callable[..., Replica] = Replica,
    ) -> None:
        self.ledger = ledger
        self.mempool = mempool
        self.name = name
        self.suite = ledger.suite
        self.config = config
        self._halted: str | None = None
        self._notes: list[Note] = []
        #: (height, round) of the last block preview executed (one per round)
        self._previewed: tuple[int, int] | None = None
        self._decoded_blocks: list[_DecodedPayload] = []
        if wal is not None and wal.height != ledger.height + 1:
            wal = None  # a record of a height this ledger has already passed
        self.replica = replica_factory(
            config=config,
            suite=self.suite,
            private_key=private_key,
            application=self,
            chain_tip=self._chain_tip(),
            wal=wal,
        )

    # ------------------------------------------------------------------ state

    @property
    def halted(self) -> str | None:
        """Why the node halted, or None while it runs."""
        return self._halted

    def _chain_tip(self) -> ChainTip:
        ledger = self.ledger
        height = ledger.height
        if height == 0:
            return ChainTip(height=0, block_hash=ledger.head_hash, timestamp_ms=ledger.head().timestamp_ms,
                            validator_set=consensus_validator_set(ledger.validators_at(1)))
        slot = ledger.store.get_certificate(height)
        if slot is None:
            raise NodeHalted(f"block {height} has no commit record; the store is not a consensus node's store")
        record = decode(slot, CommitRecord)
        return ChainTip(height=height, block_hash=compute_block_hash(self.suite, record.header),
                        timestamp_ms=record.header.timestamp_ms,
                        validator_set=consensus_validator_set(ledger.validators_at(height + 1)))

    # ------------------------------------------------------------------ inputs

    def _check_running(self) -> None:
        if self._halted is not None:
            raise NodeHalted(self._halted)

    def _guarded(self, action: Callable[..., None], *args: Any) -> None:
        """Run a replica input; a broken invariant inside it halts the node."""
        self._check_running()
        try:
            action(*args)
        except NodeHalted:
            raise
        except InvariantBroken as exc:
            raise self._halt(f"broken invariant: {exc}") from exc

    def start(self, now_ms: int) -> None:
        self._guarded(self.replica.start, now_ms)

    def receive(self, message: ConsensusMessage, sender: int, now_ms: int) -> None:
        self._guarded(self.replica.receive, message, sender, now_ms)

    def tick(self, now_ms: int) -> None:
        self._guarded(self.replica.tick, now_ms)

    def propose(self, request: RequestPayload, now_ms: int, txs_max: int | None = None) -> Block | None:
        """Build a ledger block from the mempool on the committed state and propose it; returns
        the block, or None when ``request`` is stale (the replica moved on)."""
        plan = self.plan_proposal(request, now_ms, txs_max)
        return None if plan is None else self.propose_plan(plan)

    def plan_proposal(self, request: RequestPayload, now_ms: int, txs_max: int | None = None) -> ProposalPreview | None:
        """What :meth:`propose` would build now (the mempool's transactions and the block's time),
        without building it: a shell sends it to the validators first (MessageKind.PREVIEW), so
        they execute the block while this node builds it, then calls :meth:`propose_plan`. None
        when ``request`` is stale."""
        self._check_running()
        replica = self.replica
        if replica.height != request.height or request.height != self.ledger.height + 1:
            return None
        # the replica stamps max(now, parent + 1); the ledger block must carry the same time
        timestamp_ms = max(now_ms, replica.now_ms, replica.chain_tip.timestamp_ms + 1)
        params = self.ledger.params
        self.mempool.prune(now_ms)
        limit = params.block_txs_max if txs_max is None else max(1, min(txs_max, params.block_txs_max))
        batch = self.mempool.take(limit, params.block_bytes_max)
        return ProposalPreview(height=request.height, round=request.round, timestamp_ms=timestamp_ms, txs=tuple(batch))

    def propose_plan(self, plan: ProposalPreview) -> Block | None:
        """Build the block ``plan`` describes and propose it (None when the replica moved on)."""
        self._check_running()
        replica = self.replica
        if replica.height != plan.height or plan.height != self.ledger.height + 1 or replica.round != plan.round:
            return None
        timestamp_ms = plan.timestamp_ms

        def refused(raw: bytes, exc: TxRejected) -> None:
            if exc.tx_id is not None:
                self.mempool.remember_rejection(exc.tx_id, exc)
                self.mempool.remove_committed([exc.tx_id])

        block = self.ledger.build_block(plan.txs, proposer=self.name, timestamp_ms=timestamp_ms, on_rejected=refused)
        payload = encode(block)
        # built here, so its body matches its header: the payload hash needs no second look
        self._remember_block(payload, block, block_hash(self.suite, block.header))
        self._guarded(replica.propose_payload, plan.height, plan.round, payload, timestamp_ms, timestamp_ms)
        return block

    def preview(self, sender: str, preview: ProposalPreview) -> bool:
        """Execute the block that ``sender`` says it is about to propose, so that its proposal,
        when it comes, is checked without executing it again (the ledger keeps the executed block
        by hash between verify and commit). Only the proposer of the replica's current height and
        round is heard, once per round; the preview decides nothing: the proposal is still checked
        against this node's own execution, and one that differs from its preview is executed as
        usual. True when the block was executed."""
        self._check_running()
        replica = self.replica
        ledger = self.ledger
        key = (preview.height, preview.round)
        if (preview.height != replica.height or preview.height != ledger.height + 1 or preview.round != replica.round
                or key == self._previewed or sender == self.name):
            return False
        validators = ledger.validators_at(preview.height)
        index = replica.validators.get_proposer_index(preview.height, preview.round)
        if index >= len(validators) or validators[index].name != sender:
            self._note("warning", "preview.refused", f"refusing a block preview from {sender}: it is not the proposer "
                       f"of height {preview.height} round {preview.round}")
            return False
        params = ledger.params
        if len(preview.txs) > params.block_txs_max or sum(len(raw) for raw in preview.txs) > params.block_bytes_max:
            self._note("warning", "preview.refused", f"refusing a block preview from {sender}: above the block limits")
            return False
        self._previewed = key
        try:
            ledger.build_block(preview.txs, proposer=sender, timestamp_ms=preview.timestamp_ms)
        except (CodecError, BlockInvalid) as exc:
            self._note("warning", "preview.refused", f"a block preview from {sender} did not execute: {exc}")
            return False
        return True

    # ------------------------------------------------------------------ effects

    def drain(self) -> Iterator[NodeEffect]:
        """The effects of the inputs so far, in order. A ``Commit`` is applied to the ledger when
        the iteration reaches it (after the shell executed every effect before it) and comes out
        as :class:`Committed`; a block that cannot be applied raises :class:`NodeHalted`."""
        while True:
            if self._notes:
                notes, self._notes = self._notes, []
                yield from notes
            effects = self.replica.take_effects()
            if not effects:
                return
            for effect in effects:
                if isinstance(effect, Commit):
                    committed = self._apply_commit(effect)
                    yield from self._take_notes()
                    yield committed
                else:
                    yield effect
                    yield from self._take_notes()

    def _take_notes(self) -> list[Note]:
        notes, self._notes = self._notes, []
        return notes

    def _note(self, level: str, event: str, message: str, **fields: Any) -> None:
        self._notes.append(Note(level, event, message, fields))

    def _halt(self, reason: str) -> NodeHalted:
        self._halted = reason
        self._note("critical", "node.halted", reason)
        return NodeHalted(reason)

    def _apply_commit(self, effect: Commit) -> Committed:
        header = effect.block.header
        ledger = self.ledger
        if header.height != ledger.height + 1:
            raise self._halt(f"consensus committed height {header.height} but the ledger is at {ledger.height}")
        try:
            block = self.block_of(effect.block.payload)
            # the payload decoded strictly to this block, so it is the block's canonical encoding
            digest = ledger.commit_block(block, certificate=encode(CommitRecord(header, effect.certificate)),
                                         encoded=effect.block.payload)
        except (CodecError, BlockInvalid, InvariantBroken) as exc:
            raise self._halt(f"certified block {header.height} cannot be applied: {exc}") from exc
        if ledger.height != header.height:
            raise self._halt(f"the ledger is at {ledger.height} after committing block {header.height}")
        self.mempool.remove_committed(receipt.tx_id for receipt in block.receipts)
        return Committed(block, digest, header, effect.certificate)

    def block_of(self, payload: bytes) -> Block:
        """The ledger block a consensus payload carries (strict decode, remembered by payload)."""
        return self._decoded(payload).block

    def _decoded(self, payload: bytes) -> _DecodedPayload:
        for entry in reversed(self._decoded_blocks):
            known = entry.payload
            # the same object normally comes back (proposal -> validation -> commit); equal
            # bytes from elsewhere compare by memcmp, never by hashing megabytes into a dict key
            if known is payload or (len(known) == len(payload) and known == payload):
                return entry
        return self._remember_block(payload, decode(payload, Block))

    def _remember_block(self, payload: bytes, block: Block, bound_hash: bytes | None = None) -> _DecodedPayload:
        entry = _DecodedPayload(payload, block, bound_hash)
        self._decoded_blocks.append(entry)
        del self._decoded_blocks[:-DECODED_BLOCKS_MAX]
        return entry

    # ------------------------------------------------------------------ Application (for the replica)

    def compute_payload_hash(self, payload: bytes) -> bytes | None:
        """The ledger block's hash (its header's), once the body is checked against the header.

        The header commits to the transactions and receipts by their Merkle roots and counts, so
        a payload whose body matches them is the only one with this hash (binding, as the
        replica needs), and a commit certificate proves a ledger header without its body. None
        for a payload that is not a canonical ledger block or whose body the header does not
        describe."""
        try:
            entry = self._decoded(payload)
        except CodecError:
            return None
        if entry.bound_hash is None:
            if verify_block_body(self.suite, entry.block) is not None:
                return None
            entry.bound_hash = block_hash(self.suite, entry.block.header)
        return entry.bound_hash

    def validate_payload(self, header: ConsensusHeader, payload: bytes) -> bool:
        ledger = self.ledger
        height = header.height
        try:
            entry = self._decoded(payload)
        except CodecError as exc:
            self._note("warning", "proposal.refused", f"refusing a proposal whose payload is not a ledger block: {exc}")
            return False
        block = entry.block
        if block.header.height != height or height != ledger.height + 1:
            self._note("warning", "proposal.refused", f"refusing a proposal for height {height} (ledger block says "
                       f"{block.header.height}, head is {ledger.height})")
            return False
        if block.header.timestamp_ms != header.timestamp_ms:
            self._note("warning", "proposal.refused",
                       "refusing a proposal whose ledger timestamp differs from the consensus timestamp")
            return False
        names = [v.name for v in ledger.validators_at(height)]
        proposer = names[header.proposer_index] if header.proposer_index < len(names) else None
        if block.header.proposer != proposer:
            self._note("warning", "proposal.refused",
                       f"refusing a proposal that names proposer {block.header.proposer!r}, not {proposer!r}")
            return False
        try:
            # the replica checked the payload against its hash on arrival (compute_payload_hash):
            # the body matches the header's roots, which re-execution need not hash again
            ledger.verify_block(block, body_checked=entry.bound_hash is not None)
        except BlockInvalid as exc:
            self._note("warning", "proposal.refused", f"refusing an invalid proposal at height {height}: {exc}")
            return False
        return True

    def get_validator_set_update(self, height: int, payload: bytes) -> ValidatorSet | None:
        """Governance schedules validator changes two blocks after the approving block, so the
        set for ``height + 1`` is already in committed state when block ``height`` is decided."""
        ledger = self.ledger
        following = ledger.validators_at(height + 1)
        if following == ledger.validators_at(height):
            return None
        self._note("info", "validators.changed", "validator set changes", height=height + 1,
                   validators=",".join(v.name for v in following))
        return consensus_validator_set(following)

    def load_commit(self, height: int) -> tuple[ConsensusBlock, CommitCertificate] | None:
        store = self.ledger.store
        if height < 1 or height > store.height:
            return None
        raw = store.get_block(height)
        slot = store.get_certificate(height)
        if raw is None or slot is None:
            return None
        record = decode(slot, CommitRecord)
        return ConsensusBlock(record.header, raw), record.certificate

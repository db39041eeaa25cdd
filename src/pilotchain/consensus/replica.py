"""The Tendermint replica (Buchman, Kwon, Milosevic 2018, Algorithm 1) as a sans-IO state machine.

Theory of operation
-------------------
Everything that affects consensus state lives in this file. A :class:`Replica` is driven by four
inputs, each taking the shell's clock reading ``now_ms``:

* ``start(now_ms)`` once, after construction (fresh or restored from a :class:`ConsensusWal`);
* ``receive(message, sender, now_ms)`` for every decoded peer message;
* ``tick(now_ms)`` whenever the last :class:`SetTimer` deadline has passed;
* ``propose_payload(height, round, payload, now_ms)`` answering a :class:`RequestPayload`.

Each input appends effects (:mod:`pilotchain.consensus.effects`) that the shell pulls with
``take_effects()`` and executes in order. Handlers only record what arrived (after guard
clauses and signature checks); then ``_run_rules`` evaluates the upon-rules of Algorithm 1 until
none fires. Every rule is a method named after its line in the paper
(``_on_proposal_rule_22`` ... ``_on_higher_round_rule_55``), so the code reads beside the paper;
docs/protocol/consensus.md lists them and every deviation.

Blame: malformed or badly signed input from a peer is dropped and counted in ``drops`` by reason
and in ``drops_by_peer`` by the peer that sent it (two conflicting signed votes, or two signed
proposals for one round, are kept as evidence); a caller bug raises ``ValueError``; a broken
invariant fails an ``assert`` -- the node halts rather than sign something wrong.

No I/O, clock, randomness or threads here (a test enforces the import ban).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from pilotchain.consensus.application import Application
from pilotchain.consensus.certificate import (
    ConsensusError,
    InvalidCertificate,
    ValidatorSetInfo,
    compute_block_hash,
    get_proposal_signing_bytes,
    get_vote_signing_bytes,
    has_one_third,
    has_quorum,
    make_commit_certificate,
    verify_commit_certificate,
)
from pilotchain.consensus.effects import (
    Broadcast,
    Commit,
    Effect,
    EvidenceFound,
    PeerId,
    Persist,
    ProposalEvidenceFound,
    RequestPayload,
    Send,
    SetTimer,
)
from pilotchain.consensus.types import (
    BLOCK_HASH_NIL,
    CATCHUP_BLOCKS_PER_RESPONSE_MAX,
    HASH_BYTES,
    PAYLOAD_BYTES_MAX,
    ROUND_MAX,
    BlockRequest,
    BlockResponse,
    ChainTip,
    CommitCertificate,
    CommittedBlock,
    ConsensusBlock,
    ConsensusHeader,
    ConsensusMessage,
    ConsensusWal,
    DuplicateProposalEvidence,
    DuplicateVoteEvidence,
    Proposal,
    SignedProposalHeader,
    Step,
    Vote,
    VoteType,
)
from pilotchain.crypto import PrivateKey, Suite
from pilotchain.errors import InvariantBroken

__all__ = ["ConsensusConfig", "Replica"]

#: _run_rules stops after this many rule firings per input (each firing advances step, round
#: or height, so a legitimate input needs a handful).
RULE_FIRINGS_PER_INPUT_MAX = 64
#: Proposals kept per (height, round): the first, plus one conflicting (equivocating proposer).
PROPOSALS_PER_ROUND_MAX = 2
#: Peers remembered for catch-up and rate limiting.
PEERS_TRACKED_MAX = 256
#: A peer's unverifiable claim to be ahead is believed for at most this many heights at a time.
HEIGHT_AHEAD_CLAIM_MAX = 1_000_000
#: After this many retransmit intervals at one height, ask every peer for its block.
STALL_INTERVALS = 3
#: Messages held between a decision and the next input (the rest of a catch-up batch, replays).
HELD_MESSAGES_MAX = 4096
#: Own votes of rounds [round - this, round] are kept and re-broadcast by the retransmit timer.
OWN_ROUNDS_RETRANSMITTED = 2
#: (peer, reason) pairs counted in ``drops_by_peer``; beyond it new pairs count under DROPS_OTHER_PEER
DROPS_BY_PEER_KEYS_MAX = 4096
#: the peer ``drops_by_peer`` names once DROPS_BY_PEER_KEYS_MAX pairs are tracked
DROPS_OTHER_PEER = -1


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    """Static parameters; every duration in milliseconds, every limit named ``*_max``."""

    chain_id: bytes
    timeout_propose_ms: int = 1000
    timeout_propose_delta_ms: int = 500
    timeout_prevote_ms: int = 500
    timeout_prevote_delta_ms: int = 250
    timeout_precommit_ms: int = 500
    timeout_precommit_delta_ms: int = 250
    #: round backoff is linear in the round number and capped here
    timeout_max_ms: int = 30_000
    #: own votes (and own proposal) are re-broadcast this often while a height is undecided
    retransmit_interval_ms: int = 1000
    #: wait this long after first seeing a higher height before asking for blocks
    catchup_delay_ms: int = 200
    catchup_retry_ms: int = 500
    #: a proposal's timestamp may be at most this far ahead of the validator's clock
    clock_drift_max_ms: int = 1000
    payload_bytes_max: int = PAYLOAD_BYTES_MAX
    #: votes and proposals are stored for rounds [round - rounds_kept_below, round + rounds_ahead_max]
    rounds_kept_below: int = 8
    rounds_ahead_max: int = 4
    future_messages_per_peer_max: int = 64
    evidence_max: int = 256
    recent_commits_max: int = 16

    def __post_init__(self) -> None:
        if not (0 < len(self.chain_id) <= 64):
            raise InvariantBroken("chain id must be 1..64 bytes")
        if not (self.timeout_propose_ms > 0 and self.timeout_prevote_ms > 0 and self.timeout_precommit_ms > 0):
            raise InvariantBroken('invariant broken: self.timeout_propose_ms > 0 and self.timeout_prevote_ms > 0 and self.timeout_precommit_ms > 0')
        if not (self.retransmit_interval_ms > 0 and self.catchup_retry_ms > 0):
            raise InvariantBroken('invariant broken: self.retransmit_interval_ms > 0 and self.catchup_retry_ms > 0')
        if not (0 < self.payload_bytes_max <= PAYLOAD_BYTES_MAX):
            raise InvariantBroken('invariant broken: 0 < self.payload_bytes_max <= PAYLOAD_BYTES_MAX')
        if not (self.rounds_kept_below >= 1 and self.rounds_ahead_max >= 1):
            raise InvariantBroken('invariant broken: self.rounds_kept_below >= 1 and self.rounds_ahead_max >= 1')


class _VoteTally:
    """The votes of one type in one round: first vote per validator counts."""

    __slots__ = ("votes", "power_by_hash", "power_total")

    def __init__(self) -> None:
        self.votes: dict[int, Vote] = {}
        self.power_by_hash: dict[bytes, int] = {}
        self.power_total = 0

    def add(self, vote: Vote, power: int) -> None:
        if not (vote.validator_index not in self.votes):
            raise InvariantBroken('invariant broken: vote.validator_index not in self.votes')
        self.votes[vote.validator_index] = vote
        self.power_by_hash[vote.block_hash] = self.power_by_hash.get(vote.block_hash, 0) + power
        self.power_total += power

    def get_votes_for(self, block_hash: bytes) -> list[Vote]:
        return [vote for vote in self.votes.values() if vote.block_hash == block_hash]


class _ProposalEntry:
    __slots__ = ("proposal", "block_hash")

    def __init__(self, proposal: Proposal, block_hash: bytes) -> None:
        self.proposal = proposal
        self.block_hash = block_hash


class _RoundState:
    __slots__ = ("prevotes", "precommits", "proposals", "first_proposal")

    def __init__(self) -> None:
        self.prevotes = _VoteTally()
        self.precommits = _VoteTally()
        self.proposals: dict[bytes, _ProposalEntry] = {}
        self.first_proposal: _ProposalEntry | None = None

    def get_tally(self, vote_type: int) -> _VoteTally:
        return self.prevotes if vote_type == VoteType.PREVOTE else self.precommits


class Replica:
    """One validator's (or observer's) Tendermint state machine. See the module docstring."""

    # per-height state, (re)initialised by _enter_height
    _awaiting_payload: tuple[int, int] | None
    _timeout_propose_at_ms: int | None
    _timeout_prevote_at_ms: int | None
    _timeout_precommit_at_ms: int | None
    _retransmit_at_ms: int | None

    def __init__(
        self,
        *,
        config: ConsensusConfig,
        suite: Suite,
        private_key: PrivateKey,
        application: Application,
        chain_tip: ChainTip,
        wal: ConsensusWal | None = None,
    ) -> None:
        self.config = config
        self.suite = suite
        self.application = application
        self._private_key = private_key
        self.public_key = private_key.public_key().to_der()
        self._effects: list[Effect] = []
        self.now_ms = 0
        self.started = False
        #: inputs refused or ignored, by reason
        self.drops: Counter[str] = Counter()
        #: the same, by (sending peer, reason) for peer messages (bounded: DROPS_BY_PEER_KEYS_MAX)
        self.drops_by_peer: Counter[tuple[PeerId, str]] = Counter()
        #: the peer whose message is being handled (None: a local input)
        self._sender: PeerId | None = None
        #: DuplicateVoteEvidence found so far (oldest dropped beyond config.evidence_max)
        self.evidence: deque[DuplicateVoteEvidence] = deque(maxlen=config.evidence_max)
        self._evidence_keys: set[tuple[int, int, int, int]] = set()
        #: DuplicateProposalEvidence found so far (oldest dropped beyond config.evidence_max)
        self.proposal_evidence: deque[DuplicateProposalEvidence] = deque(maxlen=config.evidence_max)
        self._proposal_evidence_keys: set[tuple[int, int]] = set()
        self._recent_commits: deque[tuple[ConsensusBlock, CommitCertificate]] = deque(maxlen=config.recent_commits_max)
        self._future_messages: dict[PeerId, deque[ConsensusMessage]] = {}
        #: set by _decide: the rest of this input is held until the shell has run the Commit
        self._decided_in_input = False
        self._held_messages: deque[tuple[ConsensusMessage, PeerId]] = deque(maxlen=HELD_MESSAGES_MAX)
        self._resume_at_ms: int | None = None
        self._requested_height = 0
        self._peers_ahead: dict[PeerId, int] = {}
        self._catchup_height_seen = 0
        self._catchup_at_ms: int | None = None
        self._catchup_rotation = 0
        self._served_requests: dict[PeerId, tuple[int, int]] = {}
        self._pushed_at_ms: dict[PeerId, int] = {}
        self._timer_emitted_ms: int | None = None
        self._enter_height(chain_tip)
        self._wal_restored = wal is not None and wal.height == self.height
        if wal is not None:
            if wal.height > self.height:
                raise ValueError(f"WAL is for height {wal.height} but the chain tip is at {chain_tip.height}")
            if wal.height == self.height:
                self._restore_wal(wal)

    # ------------------------------------------------------------------ inputs

    def start(self, now_ms: int) -> None:
        """Begin (or resume after a restart); call once."""
        if self.started:
            raise ValueError("replica already started")
        self.started = True
        self._advance_clock(now_ms)
        if self._wal_restored:
            self._resume_round()
        else:
            self._start_round(0)
        self._retransmit_at_ms = self.now_ms + self.config.retransmit_interval_ms
        self._run_rules()
        self._update_timer()

    def receive(self, message: ConsensusMessage, sender: PeerId, now_ms: int) -> None:
        """A decoded message from peer ``sender``. Invalid messages are dropped and counted."""
        self._require_started()
        self._advance_clock(now_ms)
        self._resume_after_decision()
        self._dispatch(message, sender)
        self._run_rules()
        self._update_timer()

    def tick(self, now_ms: int) -> None:
        """Fire every timer whose deadline is at or before ``now_ms``."""
        self._require_started()
        self._advance_clock(now_ms)
        self._timer_emitted_ms = None  # the shell's timer is spent: always re-arm it
        self._resume_after_decision()
        self._on_timers()
        self._run_rules()
        self._update_timer()

    def propose_payload(self, height: int, round_: int, payload: bytes, now_ms: int,
                        timestamp_ms: int | None = None) -> None:
        """The payload for a :class:`RequestPayload`; stale answers are ignored. ``timestamp_ms``:
        the time the application built the payload for (the block's time; default: now), when
        other inputs have moved this replica's clock on since it chose it."""
        self._require_started()
        if len(payload) > self.config.payload_bytes_max:
            raise ValueError(f"payload is {len(payload)} bytes, limit {self.config.payload_bytes_max}")
        self._advance_clock(now_ms)
        self._resume_after_decision()
        if self._awaiting_payload != (height, round_) or self.round != round_ or self.step != Step.PROPOSE:
            self._drop("stale payload")
        else:
            self._awaiting_payload = None
            self._propose_new_block(payload, timestamp_ms)
            self._run_rules()
        self._update_timer()

    def take_effects(self) -> list[Effect]:
        """All effects produced so far, in the order the shell must execute them."""
        effects, self._effects = self._effects, []
        return effects

    # ------------------------------------------------------------------ queries

    @property
    def is_validator(self) -> bool:
        return self.validator_index is not None

    def get_wal_record(self) -> ConsensusWal:
        return ConsensusWal(
            height=self.height,
            round=self._signed_round,
            locked_round=self.locked_round,
            locked_block_hash=self.locked_block_hash,
            valid_round=self.valid_round,
            valid_block=self.valid_block,
            valid_polka=self._valid_polka,
            votes=tuple(vote for _, vote in sorted(self._own_votes.items())),
        )

    # ------------------------------------------------------------------ height and round

    def _enter_height(self, chain_tip: ChainTip) -> None:
        """Reset per-height state for height ``chain_tip.height + 1`` (line 53 of the paper)."""
        self.chain_tip = chain_tip
        self.height = chain_tip.height + 1
        self.validators = ValidatorSetInfo(self.suite, chain_tip.validator_set)
        self.validator_index = self.validators.get_index(self.public_key)
        self.round = -1
        self.step = Step.PROPOSE
        self.locked_round = -1
        self.locked_block_hash = BLOCK_HASH_NIL
        self.valid_round = -1
        self.valid_block: ConsensusBlock | None = None
        self.valid_block_hash = BLOCK_HASH_NIL
        self._valid_polka: tuple[Vote, ...] = ()
        self._signed_round = -1
        self._own_votes: dict[tuple[int, int], Vote] = {}
        self._proposed_round = -1
        self._rounds: dict[int, _RoundState] = {}
        self._round_seen = [-1] * len(self.validators)
        self._round_seen_dirty = False
        self._fired: set[tuple[int, int]] = set()
        self._validity: dict[bytes, bool] = {}
        self._awaiting_payload = None
        self._timeout_propose_at_ms = None
        self._timeout_prevote_at_ms = None
        self._timeout_precommit_at_ms = None
        self._retransmit_at_ms = None
        self._decided = False
        self._height_entered_ms = self.now_ms
        self._stall_request_at_ms = -(2**62)
        for peer, height in list(self._peers_ahead.items()):
            if height <= self.height:
                del self._peers_ahead[peer]

    def _restore_wal(self, wal: ConsensusWal) -> None:
        if not (wal.height == self.height):
            raise InvariantBroken('invariant broken: wal.height == self.height')
        if not (0 <= wal.round <= ROUND_MAX and -1 <= wal.locked_round <= wal.round and -1 <= wal.valid_round <= wal.round):
            raise ValueError("WAL record rounds are inconsistent")
        self._signed_round = wal.round
        self.locked_round = wal.locked_round
        self.locked_block_hash = wal.locked_block_hash
        if wal.valid_block is not None:
            self.valid_round = wal.valid_round
            self.valid_block = wal.valid_block
            self.valid_block_hash = compute_block_hash(self.suite, wal.valid_block.header)
            self._valid_polka = wal.valid_polka
        self._proposed_round = wal.round
        for vote in wal.votes:
            if vote.height != self.height or vote.round > wal.round or vote.validator_index != self.validator_index:
                raise ValueError("WAL record holds a vote that is not this replica's at its height")
            self._own_votes[(vote.round, vote.vote_type)] = vote
            self._get_round_state(vote.round).get_tally(vote.vote_type).add(
                vote, self.validators.powers[vote.validator_index]
            )

    def _resume_round(self) -> None:
        """After a restart: re-enter the last round we signed in, at the step our signed votes
        imply, never signing again what we already signed (and never proposing again in it).

        Resuming in that round rather than the next matters for liveness: the others may need
        this replica's remaining vote of that round to reach a quorum and time out.
        """
        round_ = self._signed_round
        if not (round_ >= 0):
            raise InvariantBroken('invariant broken: round_ >= 0')
        self.round = round_
        if (round_, VoteType.PRECOMMIT) in self._own_votes:
            self.step = Step.PRECOMMIT
        elif (round_, VoteType.PREVOTE) in self._own_votes:
            self.step = Step.PREVOTE
        else:
            self.step = Step.PROPOSE
            self._timeout_propose_at_ms = self.now_ms + self._get_timeout_ms(
                self.config.timeout_propose_ms, self.config.timeout_propose_delta_ms
            )
        for vote in self._own_votes.values():
            self._emit(Broadcast(vote))

    def _start_round(self, round_: int) -> None:
        """StartRound(round), lines 10-21."""
        if not (round_ > self.round):
            raise InvariantBroken(f"rounds only increase ({self.round} -> {round_})")
        if not (round_ <= ROUND_MAX):
            raise InvariantBroken('invariant broken: round_ <= ROUND_MAX')
        self.round = round_
        self.step = Step.PROPOSE
        self._timeout_prevote_at_ms = None
        self._timeout_precommit_at_ms = None
        self._awaiting_payload = None
        for stale_round in [r for r in self._rounds if r < round_ - self.config.rounds_kept_below]:
            del self._rounds[stale_round]
        self._fired = {key for key in self._fired if key[1] >= round_}
        for key in [key for key in self._own_votes if key[0] < round_ - OWN_ROUNDS_RETRANSMITTED]:
            del self._own_votes[key]
        self._timeout_propose_at_ms = self.now_ms + self._get_timeout_ms(
            self.config.timeout_propose_ms, self.config.timeout_propose_delta_ms
        )
        if self.validator_index is not None and self.validator_index == self.validators.get_proposer_index(
            self.height, round_
        ):
            if self.valid_block is not None:
                self._broadcast_proposal(self.valid_block, self.valid_block_hash, self.valid_round, self._valid_polka)
            else:
                self._awaiting_payload = (self.height, round_)
                self._emit(RequestPayload(self.height, round_, self.chain_tip.block_hash))

    def _get_timeout_ms(self, base_ms: int, delta_ms: int) -> int:
        return min(base_ms + delta_ms * self.round, self.config.timeout_max_ms)

    def _propose_new_block(self, payload: bytes, timestamp_ms: int | None = None) -> None:
        """getValue() (line 18): a fresh block on top of the committed tip."""
        if not (self.validator_index is not None):
            raise InvariantBroken('invariant broken: self.validator_index is not None')
        payload_hash = self.application.compute_payload_hash(payload)
        if payload_hash is None:
            raise ValueError("the application has no payload hash for its own payload (not well formed)")
        header = ConsensusHeader(
            chain_id=self.config.chain_id,
            height=self.height,
            round=self.round,
            parent_hash=self.chain_tip.block_hash,
            proposer_index=self.validator_index,
            timestamp_ms=max(self.now_ms if timestamp_ms is None else timestamp_ms, self.chain_tip.timestamp_ms + 1),
            validator_set_hash=self.validators.hash,
            payload_hash=payload_hash,
        )
        block = ConsensusBlock(header, payload)
        self._broadcast_proposal(block, compute_block_hash(self.suite, header), -1, ())

    def _broadcast_proposal(self, block: ConsensusBlock, block_hash: bytes, valid_round: int, polka: tuple[Vote, ...]) -> None:
        """broadcast ⟨PROPOSAL, h_p, round_p, proposal, validRound_p⟩ (line 19), persisted first."""
        if not (self.validator_index is not None):
            raise InvariantBroken('invariant broken: self.validator_index is not None')
        if self._proposed_round >= self.round:
            self._drop("already proposed this round")
            return
        self._proposed_round = self.round
        self._signed_round = max(self._signed_round, self.round)
        signature = self._private_key.sign(
            get_proposal_signing_bytes(self.config.chain_id, self.height, self.round, block_hash, valid_round)
        )
        proposal = Proposal(self.height, self.round, block, valid_round, polka, self.validator_index, signature)
        self._emit(Persist(self.get_wal_record()))
        self._emit(Broadcast(proposal))
        self._store_proposal(proposal, block_hash)

    def _cast_vote(self, vote_type: VoteType, block_hash: bytes) -> None:
        """Sign, persist, then broadcast one vote for (height, round). Observers only change step."""
        if self.validator_index is None:
            return
        key = (self.round, int(vote_type))
        if not (key not in self._own_votes):
            raise InvariantBroken(f"would sign a second {vote_type.name} in round {self.round}")
        if not (self.round >= self._signed_round):
            raise InvariantBroken("would sign in a round below one already signed in")
        signature = self._private_key.sign(
            get_vote_signing_bytes(self.config.chain_id, vote_type, self.height, self.round, block_hash)
        )
        vote = Vote(int(vote_type), self.height, self.round, block_hash, self.validator_index, signature)
        self._own_votes[key] = vote
        self._signed_round = self.round
        self._emit(Persist(self.get_wal_record()))
        self._emit(Broadcast(vote))
        tally = self._get_round_state(self.round).get_tally(vote_type)
        if self.validator_index not in tally.votes:
            tally.add(vote, self.validators.powers[self.validator_index])

    def _decide(self, block: ConsensusBlock, block_hash: bytes, certificate: CommitCertificate) -> None:
        """decision_p[h_p] = v (lines 51-54), then the next height.

        Nothing else happens in this input: later messages are held and the replica asks for a
        tick now (``SetTimer(now_ms)``). So the shell executes the ``Commit`` before any
        Application callback about the next height (``validate_payload`` runs on committed
        state).
        """
        if not (not self._decided and not self._decided_in_input):
            raise InvariantBroken('invariant broken: not self._decided and not self._decided_in_input')
        if not (block.header.height == self.height and block.header.parent_hash == self.chain_tip.block_hash):
            raise InvariantBroken('invariant broken: block.header.height == self.height and block.header.parent_hash == self.chain_tip.block_hash')
        self._decided = True
        self._emit(Commit(block, block_hash, certificate))
        self._recent_commits.append((block, certificate))
        update = self.application.get_validator_set_update(self.height, block.payload)
        next_validator_set = update if update is not None else self.chain_tip.validator_set
        try:
            next_tip = ChainTip(self.height, block_hash, block.header.timestamp_ms, next_validator_set)
            self._enter_height(next_tip)
        except ConsensusError as exc:
            raise AssertionError(f"a committed block installs an unusable validator set: {exc}") from exc
        self._start_round(0)
        self._retransmit_at_ms = self.now_ms + self.config.retransmit_interval_ms
        self._decided_in_input = True
        self._resume_at_ms = self.now_ms

    def _resume_after_decision(self) -> None:
        """Start of an input after a decision: replay what was held and queued for this height."""
        if not self._decided_in_input:
            return
        self._decided_in_input = False
        self._resume_at_ms = None
        held = list(self._held_messages)
        self._held_messages.clear()
        queued = self._future_messages
        self._future_messages = {}
        for message, peer in held:
            self._dispatch(message, peer)
        for peer, messages in queued.items():
            for message in messages:
                self._dispatch(message, peer)
        if not self._decided_in_input and self._catchup_height_seen > self.height and self._requested_height < self.height:
            self._send_block_request()

    # ------------------------------------------------------------------ message handlers

    def _dispatch(self, message: ConsensusMessage, sender: PeerId) -> None:
        if self._decided_in_input:
            self._held_messages.append((message, sender))
            return
        self._sender = sender
        try:
            self._handle(message, sender)
        finally:
            self._sender = None

    def _handle(self, message: ConsensusMessage, sender: PeerId) -> None:
        if isinstance(message, Vote):
            self._on_vote(message, sender)
        elif isinstance(message, Proposal):
            self._on_proposal(message, sender)
        elif isinstance(message, BlockRequest):
            self._on_block_request(message, sender)
        elif isinstance(message, BlockResponse):
            self._on_block_response(message, sender)
        else:
            raise ValueError(f"not a consensus message: {type(message).__name__}")

    def _is_current_height(self, message: Vote | Proposal, sender: PeerId) -> bool:
        """Guard shared by votes and proposals: route other heights, return True for ours."""
        if message.height == self.height:
            return True
        if message.height < self.height:
            self._drop("ignoring: past height")
            self._serve_commit(sender, message.height, requested=False)
            return False
        self._note_peer_ahead(sender, message.height)
        if message.height == self.height + 1:
            queue = self._future_messages.get(sender)
            if queue is None:
                if len(self._future_messages) >= PEERS_TRACKED_MAX:
                    self._drop("ignoring: too many peers queued")
                    return False
                queue = self._future_messages[sender] = deque(maxlen=self.config.future_messages_per_peer_max)
            queue.append(message)
        else:
            self._drop("ignoring: far future height")
        return False

    def _is_round_stored(self, round_: int) -> bool:
        return self.round - self.config.rounds_kept_below <= round_ <= self.round + self.config.rounds_ahead_max

    def _on_vote(self, vote: Vote, sender: PeerId) -> None:
        if vote.vote_type not in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            self._drop("bad vote: type")
            return
        if not self._is_current_height(vote, sender):
            return
        if not 0 <= vote.validator_index < len(self.validators):
            self._drop("bad vote: unknown validator")
            return
        if not 0 <= vote.round <= ROUND_MAX or len(vote.block_hash) not in (0, HASH_BYTES):
            self._drop("bad vote: field out of range")
            return
        stored = self._is_round_stored(vote.round)
        if not stored and vote.round < self.round:
            self._drop("ignoring: old round")
            return
        existing: Vote | None = None
        if stored:
            tally = self._get_round_state(vote.round).get_tally(vote.vote_type)
            existing = tally.votes.get(vote.validator_index)
            if existing is not None and existing.block_hash == vote.block_hash:
                self._drop("ignoring: duplicate vote")
                return
        if not self._verify_vote(vote):
            self._drop("bad vote: signature")
            return
        self._note_round_seen(vote.validator_index, vote.round)
        if not stored:
            return
        if existing is not None:
            self._record_evidence(existing, vote)
            return
        tally.add(vote, self.validators.powers[vote.validator_index])

    def _verify_vote(self, vote: Vote) -> bool:
        message = get_vote_signing_bytes(
            self.config.chain_id, vote.vote_type, vote.height, vote.round, vote.block_hash
        )
        return self.suite.verify(self.validators.public_keys[vote.validator_index], message, vote.signature)

    def _on_proposal(self, proposal: Proposal, sender: PeerId) -> None:
        if not self._is_current_height(proposal, sender):
            return
        round_ = proposal.round
        if not 0 <= round_ <= ROUND_MAX or not -1 <= proposal.valid_round < round_:
            self._drop("bad proposal: round out of range")
            return
        if not self._is_round_stored(round_):
            self._drop("ignoring: proposal round not stored")
            return
        if proposal.proposer_index != self.validators.get_proposer_index(self.height, round_):
            self._drop("bad proposal: not the proposer")
            return
        if len(proposal.block.payload) > self.config.payload_bytes_max:
            self._drop("bad proposal: payload too large")
            return
        block_hash = compute_block_hash(self.suite, proposal.block.header)
        round_state = self._get_round_state(round_)
        if block_hash in round_state.proposals:
            self._drop("ignoring: duplicate proposal")
            return
        if len(round_state.proposals) >= PROPOSALS_PER_ROUND_MAX:
            self._drop("ignoring: proposer equivocates beyond limit")
            return
        signing_bytes = get_proposal_signing_bytes(
            self.config.chain_id, self.height, round_, block_hash, proposal.valid_round
        )
        if not self.suite.verify(self.validators.public_keys[proposal.proposer_index], signing_bytes, proposal.signature):
            self._drop("bad proposal: signature")
            return
        if not self._is_polka_valid(proposal, block_hash):
            self._drop("bad proposal: polka does not justify valid_round")
            return
        self._note_round_seen(proposal.proposer_index, round_)
        if round_state.proposals:
            # the proposer of (height, round) signs one proposal: this one names another block
            other = next(iter(round_state.proposals.values()))
            self._record_proposal_evidence(other.proposal, other.block_hash, proposal, block_hash)
        if not self._is_payload_bound(proposal.block):
            # the proposer's signature covers the header, not the payload: a peer may relay a
            # signed header with other payload bytes, which must not take the real one's place
            self._drop("bad proposal: payload does not match the header's payload_hash")
            return
        self._store_proposal(proposal, block_hash)

    def _is_polka_valid(self, proposal: Proposal, block_hash: bytes) -> bool:
        """For valid_round >= 0: the attached prevotes are a quorum for the block at valid_round."""
        if proposal.valid_round < 0:
            return len(proposal.polka) == 0
        if len(proposal.polka) > len(self.validators):
            return False
        seen: set[int] = set()
        power = 0
        for vote in proposal.polka:
            if (
                vote.vote_type != VoteType.PREVOTE
                or vote.height != self.height
                or vote.round != proposal.valid_round
                or vote.block_hash != block_hash
                or not 0 <= vote.validator_index < len(self.validators)
                or vote.validator_index in seen
            ):
                return False
            seen.add(vote.validator_index)
            power += self.validators.powers[vote.validator_index]
        if not has_quorum(power, self.validators.total_power):
            return False
        known = self._rounds.get(proposal.valid_round)
        for vote in proposal.polka:
            if known is not None and known.prevotes.votes.get(vote.validator_index) == vote:
                continue  # already verified when it arrived
            if not self._verify_vote(vote):
                return False
        return True

    def _store_proposal(self, proposal: Proposal, block_hash: bytes) -> None:
        round_state = self._get_round_state(proposal.round)
        entry = _ProposalEntry(proposal, block_hash)
        round_state.proposals[block_hash] = entry
        if round_state.first_proposal is None:
            round_state.first_proposal = entry

    def _on_block_request(self, request: BlockRequest, sender: PeerId) -> None:
        if not 1 <= request.height < self.height:
            self._drop("ignoring: block request for an uncommitted height")
            return
        self._serve_commit(sender, request.height, requested=True)

    def _on_block_response(self, response: BlockResponse, sender: PeerId) -> None:
        """Catch-up: committed blocks are accepted on their certificates alone (no replay).

        One block per input: after each decision the rest of the batch is held (see _decide).
        """
        commits = response.commits
        if not 1 <= len(commits) <= CATCHUP_BLOCKS_PER_RESPONSE_MAX:
            self._drop("bad block response: block count")
            return
        if response.responder_height > self.height:
            self._note_peer_ahead(sender, min(response.responder_height, self.height + HEIGHT_AHEAD_CLAIM_MAX))
        for index, commit in enumerate(commits):
            height = commit.block.header.height
            if height < self.height:
                continue  # already have it (duplicate or overlapping responses)
            if height > self.height:
                self._note_peer_ahead(sender, height + 1)
                self._drop("ignoring: block response for a future height")
                return
            if not self._accept_committed_block(commit):
                return
            if index + 1 < len(commits):
                self._held_messages.append((BlockResponse(commits[index + 1 :], response.responder_height), sender))
            return

    def _accept_committed_block(self, commit: CommittedBlock) -> bool:
        block = commit.block
        if len(block.payload) > self.config.payload_bytes_max:
            self._drop("bad block response: payload too large")
            return False
        block_hash = compute_block_hash(self.suite, block.header)
        try:
            verify_commit_certificate(
                commit.certificate, block_hash, self.validators, self.suite,
                chain_id=self.config.chain_id, height=self.height,
            )
        except InvalidCertificate:
            self._drop("bad block response: certificate")
            return False
        if not self._is_payload_bound(block):
            # a certified header with other payload bytes: refused before _is_valid_block, whose
            # verdict is remembered by the header's hash and must hold for the real payload
            self._drop("bad block response: payload does not match the header's payload_hash")
            return False
        if not self._is_valid_block(block, block_hash):
            self._drop("bad block response: invalid block")
            return False
        self._decide(block, block_hash, commit.certificate)
        return True

    # ------------------------------------------------------------------ catch-up

    def _note_peer_ahead(self, sender: PeerId, height: int) -> None:
        if sender not in self._peers_ahead and len(self._peers_ahead) >= PEERS_TRACKED_MAX:
            return
        self._peers_ahead[sender] = max(height, self._peers_ahead.get(sender, 0))
        self._catchup_height_seen = max(self._catchup_height_seen, height)
        if self._catchup_at_ms is None:
            self._catchup_at_ms = self.now_ms + self.config.catchup_delay_ms

    def _send_block_request(self) -> None:
        peers = sorted(peer for peer, height in self._peers_ahead.items() if height > self.height)
        if not peers:
            self._catchup_at_ms = None
            return
        self._catchup_rotation += 1
        peer = peers[self._catchup_rotation % len(peers)]
        self._emit(Send(peer, BlockRequest(self.height)))
        self._requested_height = self.height
        self._catchup_at_ms = self.now_ms + self.config.catchup_retry_ms

    def _serve_commit(self, peer: PeerId, height: int, *, requested: bool) -> None:
        """Send a peer the committed block ``height`` with its certificate.

        Unrequested pushes (the peer sent a message of a past height) are limited to one per
        peer per retransmit interval whatever the height, so replayed old votes cannot make this
        replica stream blocks; an explicit request for the same height is answered at most
        once per half catch-up retry interval.
        """
        if height < 1:
            return
        if requested:
            last = self._served_requests.get(peer)
            if last is not None and last[0] == height and self.now_ms - last[1] < self.config.catchup_retry_ms // 2:
                return
        else:
            pushed_at_ms = self._pushed_at_ms.get(peer)
            if pushed_at_ms is not None and self.now_ms - pushed_at_ms < self.config.retransmit_interval_ms:
                return
        commits = self._load_commits(height)
        if not commits:
            return
        for table in (self._served_requests, self._pushed_at_ms):
            if len(table) >= PEERS_TRACKED_MAX and peer not in table:
                table.clear()
        if requested:
            self._served_requests[peer] = (height, self.now_ms)
        else:
            self._pushed_at_ms[peer] = self.now_ms
        self._emit(Send(peer, BlockResponse(tuple(commits), self.height)))

    def _load_commits(self, height: int) -> list[CommittedBlock]:
        """Committed blocks from ``height`` on, as many as fit in one response."""
        commits: list[CommittedBlock] = []
        payload_bytes = 0
        for next_height in range(height, min(self.height, height + CATCHUP_BLOCKS_PER_RESPONSE_MAX)):
            found = next(((b, c) for b, c in self._recent_commits if b.header.height == next_height), None)
            if found is None:
                found = self.application.load_commit(next_height)
            if found is None:
                break
            payload_bytes += len(found[0].payload)
            if commits and payload_bytes > self.config.payload_bytes_max:
                break
            commits.append(CommittedBlock(found[0], found[1]))
        return commits

    # ------------------------------------------------------------------ timers

    def _on_timers(self) -> None:
        now = self.now_ms
        if self._timeout_propose_at_ms is not None and now >= self._timeout_propose_at_ms:
            self._timeout_propose_at_ms = None
            self._on_timeout_propose_rule_57()
        if self._timeout_prevote_at_ms is not None and now >= self._timeout_prevote_at_ms:
            self._timeout_prevote_at_ms = None
            self._on_timeout_prevote_rule_61()
        if self._timeout_precommit_at_ms is not None and now >= self._timeout_precommit_at_ms:
            self._timeout_precommit_at_ms = None
            self._on_timeout_precommit_rule_65()
        if self._retransmit_at_ms is not None and now >= self._retransmit_at_ms:
            self._retransmit_at_ms = now + self.config.retransmit_interval_ms
            self._retransmit()
            self._ask_around_if_stalled()
        if self._catchup_at_ms is not None and now >= self._catchup_at_ms:
            self._send_block_request()

    def _retransmit(self) -> None:
        """Gossip substitute for lossy links: re-send own votes of the last few rounds."""
        for (round_, _), vote in sorted(self._own_votes.items()):
            if round_ >= self.round - OWN_ROUNDS_RETRANSMITTED:
                self._emit(Broadcast(vote))
        round_state = self._rounds.get(self.round)
        if self._proposed_round == self.round and round_state is not None and round_state.first_proposal is not None:
            entry = round_state.first_proposal
            if entry.proposal.proposer_index == self.validator_index:
                self._emit(Broadcast(entry.proposal))

    def _ask_around_if_stalled(self) -> None:
        """A replica stuck at one height asks every peer for the block of that height.

        Peers ahead of it usually reveal themselves by their messages (see _note_peer_ahead),
        but observers send nothing: a newly added validator that lags behind a validator set
        made only of observers-to-be would otherwise never learn it is behind.
        """
        stalled_ms = self.now_ms - self._height_entered_ms
        if stalled_ms < STALL_INTERVALS * self.config.retransmit_interval_ms:
            return
        if self.now_ms - self._stall_request_at_ms < STALL_INTERVALS * self.config.retransmit_interval_ms:
            return
        self._stall_request_at_ms = self.now_ms
        self._emit(Broadcast(BlockRequest(self.height)))

    def _on_timeout_propose_rule_57(self) -> None:
        if self.step == Step.PROPOSE:
            self._awaiting_payload = None
            self._cast_vote(VoteType.PREVOTE, BLOCK_HASH_NIL)
            self.step = Step.PREVOTE

    def _on_timeout_prevote_rule_61(self) -> None:
        if self.step == Step.PREVOTE:
            self._cast_vote(VoteType.PRECOMMIT, BLOCK_HASH_NIL)
            self.step = Step.PRECOMMIT

    def _on_timeout_precommit_rule_65(self) -> None:
        self._start_round(self.round + 1)

    # ------------------------------------------------------------------ upon-rules

    def _run_rules(self) -> None:
        for _ in range(RULE_FIRINGS_PER_INPUT_MAX):
            if self._decided_in_input or not self._fire_one_rule():
                return
        raise AssertionError("upon-rules keep firing: the state machine is not converging")

    def _fire_one_rule(self) -> bool:
        return (
            self._on_commit_rule_49()
            or self._on_higher_round_rule_55()
            or self._on_proposal_rule_22()
            or self._on_proposal_with_polka_rule_28()
            or self._on_prevote_quorum_rule_34()
            or self._on_polka_rule_36()
            or self._on_nil_polka_rule_44()
            or self._on_precommit_quorum_rule_47()
        )

    def _on_proposal_rule_22(self) -> bool:
        """⟨PROPOSAL, h, r, v, -1⟩ while step = propose: prevote v if valid and not locked elsewhere."""
        entry = self._get_first_proposal()
        if self.step != Step.PROPOSE or entry is None or entry.proposal.valid_round != -1:
            return False
        block_hash = entry.block_hash
        if (
            self._is_valid_block(entry.proposal.block, block_hash)
            and self._is_timely(entry.proposal.block)
            and self._may_prevote_fresh_proposal(block_hash)
        ):
            self._cast_vote(VoteType.PREVOTE, block_hash)
        else:
            self._cast_vote(VoteType.PREVOTE, BLOCK_HASH_NIL)
        self.step = Step.PREVOTE
        return True

    def _may_prevote_fresh_proposal(self, block_hash: bytes) -> bool:
        """Line 23's lock check: lockedRound_p = -1 or lockedValue_p = v."""
        return self.locked_round == -1 or self.locked_block_hash == block_hash

    def _on_proposal_with_polka_rule_28(self) -> bool:
        """⟨PROPOSAL, h, r, v, vr⟩ + 2f+1 ⟨PREVOTE, h, vr, id(v)⟩ (carried as its polka), vr < r."""
        entry = self._get_first_proposal()
        if self.step != Step.PROPOSE or entry is None or entry.proposal.valid_round < 0:
            return False
        valid_round = entry.proposal.valid_round
        if not (valid_round < self.round):
            raise InvariantBroken('invariant broken: valid_round < self.round')
        block_hash = entry.block_hash
        if self._is_valid_block(entry.proposal.block, block_hash) and self._may_prevote_polka_proposal(
            block_hash, valid_round
        ):
            self._cast_vote(VoteType.PREVOTE, block_hash)
        else:
            self._cast_vote(VoteType.PREVOTE, BLOCK_HASH_NIL)
        self.step = Step.PREVOTE
        return True

    def _may_prevote_polka_proposal(self, block_hash: bytes, valid_round: int) -> bool:
        """Line 29's lock check: lockedRound_p <= vr or lockedValue_p = v."""
        return self.locked_round <= valid_round or self.locked_block_hash == block_hash

    def _on_prevote_quorum_rule_34(self) -> bool:
        """2f+1 ⟨PREVOTE, h, r, *⟩ while step = prevote, first time: schedule timeoutPrevote."""
        key = (34, self.round)
        if self.step != Step.PREVOTE or key in self._fired:
            return False
        tally = self._get_round_state(self.round).prevotes
        if not has_quorum(tally.power_total, self.validators.total_power):
            return False
        self._fired.add(key)
        self._timeout_prevote_at_ms = self.now_ms + self._get_timeout_ms(
            self.config.timeout_prevote_ms, self.config.timeout_prevote_delta_ms
        )
        return True

    def _on_polka_rule_36(self) -> bool:
        """Proposal v + 2f+1 ⟨PREVOTE, h, r, id(v)⟩ while valid(v), step >= prevote, first time."""
        key = (36, self.round)
        if self.step < Step.PREVOTE or key in self._fired:
            return False
        round_state = self._get_round_state(self.round)
        block_hash = self._get_quorum_hash(round_state.prevotes)
        if block_hash is None or block_hash == BLOCK_HASH_NIL:
            return False
        entry = round_state.proposals.get(block_hash)
        if entry is None or not self._is_valid_block(entry.proposal.block, block_hash):
            return False
        self._fired.add(key)
        if self.step == Step.PREVOTE:
            self.locked_round = self.round
            self.locked_block_hash = block_hash
            self._set_valid(entry, round_state)
            self._cast_vote(VoteType.PRECOMMIT, block_hash)
            self.step = Step.PRECOMMIT
        else:
            self._set_valid(entry, round_state)
        return True

    def _set_valid(self, entry: _ProposalEntry, round_state: _RoundState) -> None:
        self.valid_round = self.round
        self.valid_block = entry.proposal.block
        self.valid_block_hash = entry.block_hash
        self._valid_polka = tuple(
            sorted(round_state.prevotes.get_votes_for(entry.block_hash), key=lambda vote: vote.validator_index)
        )

    def _on_nil_polka_rule_44(self) -> bool:
        """2f+1 ⟨PREVOTE, h, r, nil⟩ while step = prevote: precommit nil."""
        if self.step != Step.PREVOTE:
            return False
        tally = self._get_round_state(self.round).prevotes
        if not has_quorum(tally.power_by_hash.get(BLOCK_HASH_NIL, 0), self.validators.total_power):
            return False
        self._cast_vote(VoteType.PRECOMMIT, BLOCK_HASH_NIL)
        self.step = Step.PRECOMMIT
        return True

    def _on_precommit_quorum_rule_47(self) -> bool:
        """2f+1 ⟨PRECOMMIT, h, r, *⟩ for the first time: schedule timeoutPrecommit."""
        key = (47, self.round)
        if key in self._fired:
            return False
        tally = self._get_round_state(self.round).precommits
        if not has_quorum(tally.power_total, self.validators.total_power):
            return False
        self._fired.add(key)
        self._timeout_precommit_at_ms = self.now_ms + self._get_timeout_ms(
            self.config.timeout_precommit_ms, self.config.timeout_precommit_delta_ms
        )
        return True

    def _on_commit_rule_49(self) -> bool:
        """Proposal v of any round r + 2f+1 ⟨PRECOMMIT, h, r, id(v)⟩ while undecided: decide v."""
        for round_, round_state in sorted(self._rounds.items()):
            block_hash = self._get_quorum_hash(round_state.precommits)
            if block_hash is None or block_hash == BLOCK_HASH_NIL:
                continue
            entry = round_state.proposals.get(block_hash)
            if entry is None or not self._is_valid_block(entry.proposal.block, block_hash):
                continue
            certificate = make_commit_certificate(
                self.config.chain_id, self.height, round_, block_hash,
                round_state.precommits.get_votes_for(block_hash),
            )
            self._decide(entry.proposal.block, block_hash, certificate)
            return True
        return False

    def _on_higher_round_rule_55(self) -> bool:
        """f+1 messages of a round > round_p: StartRound(that round).

        Generalised to "the highest round R such that validators with more than 1/3 of the power
        sent a signed message of round >= R", tracked as one number per validator (bounded state).
        """
        if not self._round_seen_dirty:
            return False
        self._round_seen_dirty = False
        for round_ in sorted({r for r in self._round_seen if r > self.round}, reverse=True):
            power = sum(p for r, p in zip(self._round_seen, self.validators.powers, strict=True) if r >= round_)
            if has_one_third(power, self.validators.total_power):
                self._start_round(round_)
                return True
        return False

    # ------------------------------------------------------------------ helpers

    def _get_first_proposal(self) -> _ProposalEntry | None:
        round_state = self._rounds.get(self.round)
        return None if round_state is None else round_state.first_proposal

    def _get_quorum_hash(self, tally: _VoteTally) -> bytes | None:
        if not has_quorum(tally.power_total, self.validators.total_power):
            return None
        for block_hash, power in tally.power_by_hash.items():
            if has_quorum(power, self.validators.total_power):
                return block_hash
        return None

    def _is_payload_bound(self, block: ConsensusBlock) -> bool:
        """The payload is the one the header names (``Application.compute_payload_hash``, binding).

        Checked when a proposal or a certified block arrives, before it is stored: from then on a
        block is known by its header's hash alone (the proposals of a round, the validity memo,
        valid and locked values), which is sound only because no two payloads bind to one hash."""
        return self.application.compute_payload_hash(block.payload) == block.header.payload_hash

    def _is_valid_block(self, block: ConsensusBlock, block_hash: bytes) -> bool:
        """valid(v): deterministic, so every honest validator agrees; memoised per height.

        Every block that reaches here passed :meth:`_is_payload_bound` on arrival (own proposals
        and the WAL's valid block are bound by construction), so the verdict remembered for
        ``block_hash`` is the verdict on this payload."""
        cached = self._validity.get(block_hash)
        if cached is not None:
            return cached
        header = block.header
        valid = (
            header.chain_id == self.config.chain_id
            and header.height == self.height
            and header.parent_hash == self.chain_tip.block_hash
            and header.timestamp_ms > self.chain_tip.timestamp_ms
            and 0 <= header.round <= ROUND_MAX
            and header.proposer_index == self.validators.get_proposer_index(self.height, header.round)
            and header.validator_set_hash == self.validators.hash
            and len(block.payload) <= self.config.payload_bytes_max
            and self.application.validate_payload(header, block.payload)
        )
        if len(self._validity) < 4 * (self.config.rounds_kept_below + self.config.rounds_ahead_max + 2):
            self._validity[block_hash] = valid
        return valid

    def _is_timely(self, block: ConsensusBlock) -> bool:
        """The proposer's clock is not too far ahead of ours (checked only for fresh proposals)."""
        return block.header.timestamp_ms <= self.now_ms + self.config.clock_drift_max_ms

    def _note_round_seen(self, validator_index: int, round_: int) -> None:
        if round_ > self._round_seen[validator_index]:
            self._round_seen[validator_index] = round_
            if round_ > self.round:
                self._round_seen_dirty = True

    def _get_round_state(self, round_: int) -> _RoundState:
        round_state = self._rounds.get(round_)
        if round_state is None:
            if not (self._is_round_stored(round_) or round_ == self.round or self.round == -1):
                raise InvariantBroken('invariant broken: self._is_round_stored(round_) or round_ == self.round or self.round == -1')
            round_state = self._rounds[round_] = _RoundState()
        return round_state

    def _record_evidence(self, existing: Vote, conflicting: Vote) -> None:
        key = (existing.validator_index, existing.height, existing.round, existing.vote_type)
        if key in self._evidence_keys:
            return
        if len(self._evidence_keys) >= 4 * self.config.evidence_max:
            self._evidence_keys.clear()
        self._evidence_keys.add(key)
        pair = sorted((existing, conflicting), key=lambda vote: vote.block_hash)
        evidence = DuplicateVoteEvidence(pair[0], pair[1])
        self.evidence.append(evidence)
        self._emit(EvidenceFound(evidence))

    def _record_proposal_evidence(self, existing: Proposal, existing_hash: bytes,
                                  conflicting: Proposal, conflicting_hash: bytes) -> None:
        key = (existing.height, existing.round)
        if key in self._proposal_evidence_keys:
            return
        if len(self._proposal_evidence_keys) >= 4 * self.config.evidence_max:
            self._proposal_evidence_keys.clear()
        self._proposal_evidence_keys.add(key)
        pair = sorted(
            (SignedProposalHeader(p.height, p.round, h, p.valid_round, p.proposer_index, p.signature)
             for p, h in ((existing, existing_hash), (conflicting, conflicting_hash))),
            key=lambda signed: signed.block_hash,
        )
        evidence = DuplicateProposalEvidence(pair[0], pair[1])
        self.proposal_evidence.append(evidence)
        self._emit(ProposalEvidenceFound(evidence))

    def _drop(self, reason: str) -> None:
        """Count a refused or ignored input by reason, and by the peer that sent it."""
        self.drops[reason] += 1
        sender = self._sender
        if sender is not None:
            key = (sender, reason)
            if key not in self.drops_by_peer and len(self.drops_by_peer) >= DROPS_BY_PEER_KEYS_MAX:
                key = (DROPS_OTHER_PEER, reason)
            self.drops_by_peer[key] += 1

    def _advance_clock(self, now_ms: int) -> None:
        self.now_ms = max(self.now_ms, now_ms)

    def _require_started(self) -> None:
        if not self.started:
            raise ValueError("call start(now_ms) first")

    def _emit(self, effect: Effect) -> None:
        self._effects.append(effect)

    def _update_timer(self) -> None:
        deadlines = [
            deadline
            for deadline in (
                self._timeout_propose_at_ms,
                self._timeout_prevote_at_ms,
                self._timeout_precommit_at_ms,
                self._retransmit_at_ms,
                self._catchup_at_ms,
                self._resume_at_ms,
            )
            if deadline is not None
        ]
        deadline = min(deadlines) if deadlines else None
        if deadline is not None and deadline != self._timer_emitted_ms:
            self._timer_emitted_ms = deadline
            self._emit(SetTimer(deadline))

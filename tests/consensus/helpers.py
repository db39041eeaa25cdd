"""A four-validator fixture and signing helpers for driving one Replica by hand.

Validators 0..3 have voting power 1 each (n = 4, f = 1, quorum 3, one third + 1 = 2).
The proposer of (height, round) is validator (height + round) % 4, so at height 1 round 0 it
is validator 1; tests usually drive replica 0 so that it is *not* the proposer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pilotchain.codec import decode, encode
from pilotchain.consensus import (
    BLOCK_HASH_NIL,
    Broadcast,
    ChainTip,
    CommitCertificate,
    ConsensusBlock,
    ConsensusConfig,
    ConsensusHeader,
    Effect,
    Persist,
    Proposal,
    Replica,
    Validator,
    ValidatorSet,
    Vote,
    VoteType,
    compute_block_hash,
    compute_validator_set_hash,
    get_proposal_signing_bytes,
    get_vote_signing_bytes,
    make_commit_certificate,
)
from pilotchain.crypto import get_suite

SUITE = get_suite("intl")
CHAIN_ID = b"test-chain"
KEYS = [SUITE.private_key_from_seed(b"consensus test validator %d" % i + bytes(32)) for i in range(5)]
PUBLIC_KEYS = [key.public_key().to_der() for key in KEYS]
VALIDATOR_SET = ValidatorSet(tuple(Validator(PUBLIC_KEYS[i], 1) for i in range(4)))
GENESIS_HASH = SUITE.hash(b"test genesis")
GENESIS_TIME_MS = 1_000
TIP = ChainTip(0, GENESIS_HASH, GENESIS_TIME_MS, VALIDATOR_SET)
#: retransmission far away so that it never coincides with a protocol timeout in these tests
CONFIG = ConsensusConfig(chain_id=CHAIN_ID, retransmit_interval_ms=60_000)
NOW_MS = 10_000
PREVOTE = VoteType.PREVOTE
PRECOMMIT = VoteType.PRECOMMIT
NIL = BLOCK_HASH_NIL


@dataclass
class FakeApplication:
    """Payload b"invalid" is invalid; b"set:" + encode(ValidatorSet) installs a validator set."""

    commits: dict[int, tuple[ConsensusBlock, CommitCertificate]] = field(default_factory=dict)

    def compute_payload_hash(self, payload: bytes) -> bytes | None:
        return SUITE.hash(payload)

    def validate_payload(self, header: ConsensusHeader, payload: bytes) -> bool:
        return payload != b"invalid"

    def get_validator_set_update(self, height: int, payload: bytes) -> ValidatorSet | None:
        if payload.startswith(b"set:"):
            return decode(payload[4:], ValidatorSet)
        return None

    def load_commit(self, height: int) -> tuple[ConsensusBlock, CommitCertificate] | None:
        return self.commits.get(height)


def make_replica(
    index: int = 0,
    *,
    tip: ChainTip = TIP,
    wal: object = None,
    application: FakeApplication | None = None,
    config: ConsensusConfig = CONFIG,
    now_ms: int = NOW_MS,
    start: bool = True,
) -> Replica:
    replica = Replica(
        config=config,
        suite=SUITE,
        private_key=KEYS[index],
        application=application or FakeApplication(),
        chain_tip=tip,
        wal=wal,  # type: ignore[arg-type]
    )
    if start:
        replica.start(now_ms)
    return replica


def make_block(
    height: int = 1,
    round_: int = 0,
    payload: bytes = b"payload",
    *,
    tip: ChainTip = TIP,
    timestamp_ms: int | None = None,
    validator_set: ValidatorSet = VALIDATOR_SET,
) -> tuple[ConsensusBlock, bytes]:
    header = ConsensusHeader(
        chain_id=CHAIN_ID,
        height=height,
        round=round_,
        parent_hash=tip.block_hash,
        proposer_index=(height + round_) % len(validator_set.validators),
        timestamp_ms=timestamp_ms if timestamp_ms is not None else tip.timestamp_ms + 1,
        validator_set_hash=compute_validator_set_hash(SUITE, validator_set),
        payload_hash=SUITE.hash(payload),
    )
    return ConsensusBlock(header, payload), compute_block_hash(SUITE, header)


def sign_vote(index: int, vote_type: int, height: int, round_: int, block_hash: bytes) -> Vote:
    signature = KEYS[index].sign(get_vote_signing_bytes(CHAIN_ID, vote_type, height, round_, block_hash))
    return Vote(int(vote_type), height, round_, block_hash, index, signature)


def sign_proposal(
    block: ConsensusBlock,
    round_: int,
    *,
    valid_round: int = -1,
    polka: tuple[Vote, ...] = (),
    proposer: int | None = None,
) -> Proposal:
    height = block.header.height
    proposer = proposer if proposer is not None else (height + round_) % 4
    block_hash = compute_block_hash(SUITE, block.header)
    signature = KEYS[proposer].sign(get_proposal_signing_bytes(CHAIN_ID, height, round_, block_hash, valid_round))
    return Proposal(height, round_, block, valid_round, polka, proposer, signature)


def make_certificate(height: int, round_: int, block_hash: bytes, signers: list[int]) -> CommitCertificate:
    votes = [sign_vote(i, PRECOMMIT, height, round_, block_hash) for i in signers]
    return make_commit_certificate(CHAIN_ID, height, round_, block_hash, votes)


def broadcast_votes(effects: list[Effect], vote_type: int | None = None) -> list[Vote]:
    return [
        effect.message
        for effect in effects
        if isinstance(effect, Broadcast)
        and isinstance(effect.message, Vote)
        and (vote_type is None or effect.message.vote_type == vote_type)
    ]


def deliver(replica: Replica, message: object, sender: int = 9, now_ms: int = NOW_MS) -> list[Effect]:
    """Deliver through the wire encoding (as a shell would) and return the effects."""
    from pilotchain.consensus import decode_message

    replica.receive(decode_message(encode(message)), sender, now_ms)
    return replica.take_effects()


def persisted_before_sent(effects: list[Effect]) -> bool:
    """Every broadcast own vote is covered by an earlier Persist that contains it."""
    persisted: set[bytes] = set()
    for effect in effects:
        if isinstance(effect, Persist):
            persisted.update(vote.signature for vote in effect.record.votes)
        if isinstance(effect, Broadcast) and isinstance(effect.message, Vote) and effect.message.signature not in persisted:
            return False
    return True

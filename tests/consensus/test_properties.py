"""Property tests: whatever arrives, in whatever order, a replica's outputs keep the invariants
the paper's safety argument rests on."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotchain.consensus import Broadcast, Commit, Persist, Proposal, Vote, VoteType
from tests.consensus.helpers import (
    CONFIG,
    NIL,
    NOW_MS,
    make_block,
    make_replica,
    sign_proposal,
    sign_vote,
)

BLOCKS = [make_block(round_=0, payload=b"A"), make_block(round_=0, payload=b"B"), make_block(round_=1, payload=b"C")]
HASHES = [block_hash for _, block_hash in BLOCKS] + [NIL]

vote_inputs = st.tuples(
    st.just("vote"),
    st.integers(1, 3),  # sender validator (replica 0 is ours)
    st.sampled_from([VoteType.PREVOTE, VoteType.PRECOMMIT]),
    st.integers(0, 3),  # round
    st.integers(0, len(HASHES) - 1),
)
proposal_inputs = st.tuples(st.just("proposal"), st.integers(0, len(BLOCKS) - 1), st.integers(0, 3))
tick_inputs = st.tuples(st.just("tick"), st.integers(1, 3000))
inputs = st.lists(st.one_of(vote_inputs, proposal_inputs, tick_inputs), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs)
def test_invariants_hold_for_any_input_sequence(sequence: list[tuple]) -> None:  # type: ignore[type-arg]
    replica = make_replica(0)
    now_ms = NOW_MS
    effects = replica.take_effects()
    for item in sequence:
        if item[0] == "vote":
            _, sender, vote_type, round_, hash_index = item
            replica.receive(sign_vote(sender, vote_type, 1, round_, HASHES[hash_index]), sender, now_ms)
        elif item[0] == "proposal":
            _, block_index, round_ = item
            block, _ = BLOCKS[block_index]
            if (1 + round_) % 4 != 0:  # replica 0 proposes itself in round 3
                replica.receive(sign_proposal(block, round_), 9, now_ms)
        else:
            now_ms += item[1]
            replica.tick(now_ms)
        effects += replica.take_effects()

    own_votes: dict[tuple[int, int, int], bytes] = {}
    persisted: set[bytes] = set()
    locked_hashes_by_round: dict[int, bytes] = {}
    commits = 0
    for effect in effects:
        if isinstance(effect, Persist):
            persisted.update(vote.signature for vote in effect.record.votes)
            if effect.record.locked_round >= 0:
                locked_hashes_by_round[effect.record.locked_round] = effect.record.locked_block_hash
        elif isinstance(effect, Broadcast) and isinstance(effect.message, Vote) and effect.message.validator_index == 0:
            vote = effect.message
            # never two different votes for one (height, round, type)
            key = (vote.height, vote.round, vote.vote_type)
            assert own_votes.setdefault(key, vote.block_hash) == vote.block_hash
            if vote.height == 1 and replica.height == 1:
                assert vote.signature in persisted, "a vote left before the WAL record holding it"
        elif isinstance(effect, Broadcast) and isinstance(effect.message, Proposal):
            assert effect.message.proposer_index == 0
        elif isinstance(effect, Commit):
            commits += 1
    assert commits <= 1
    # a precommit for a block in round r implies the lock on that block in round r
    for (height, round_, vote_type), block_hash in own_votes.items():
        if height == 1 and vote_type == VoteType.PRECOMMIT and block_hash != NIL:
            assert locked_hashes_by_round.get(round_) == block_hash
    assert replica.locked_round <= replica.round or replica.height > 1
    assert replica.round <= 3 + CONFIG.rounds_ahead_max + 100

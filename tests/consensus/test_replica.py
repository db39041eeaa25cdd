"""Replica behaviour beyond the paper's rules: WAL and restart, evidence, catch-up, validator-set
changes, bounds, and the message codec."""

from __future__ import annotations

import pytest

from pilotchain.codec import CodecError, decode, encode
from pilotchain.consensus import (
    MESSAGE_BYTES_MAX,
    BlockRequest,
    BlockResponse,
    Broadcast,
    ChainTip,
    Commit,
    CommittedBlock,
    ConsensusWal,
    EvidenceFound,
    Persist,
    Send,
    SetTimer,
    Step,
    Validator,
    ValidatorSet,
    Vote,
    decode_message,
)
from tests.consensus.helpers import (
    CONFIG,
    GENESIS_HASH,
    NIL,
    NOW_MS,
    PRECOMMIT,
    PREVOTE,
    PUBLIC_KEYS,
    SUITE,
    TIP,
    FakeApplication,
    broadcast_votes,
    deliver,
    make_block,
    make_certificate,
    make_replica,
    sign_proposal,
    sign_vote,
)


def _last_wal(effects: list) -> ConsensusWal:
    record = [effect.record for effect in effects if isinstance(effect, Persist)][-1]
    return decode(encode(record), ConsensusWal)  # through the bytes a shell would write


# ---------------------------------------------------------------- WAL and restart


def test_restart_after_precommit_never_signs_a_conflicting_vote() -> None:
    replica = make_replica(0)
    block, block_hash = make_block()
    effects = deliver(replica, sign_proposal(block, 0))
    for index in (1, 2):
        effects += deliver(replica, sign_vote(index, PREVOTE, 1, 0, block_hash))
    wal = _last_wal(effects)
    assert wal.locked_round == 0 and wal.locked_block_hash == block_hash
    assert {(vote.round, vote.vote_type, vote.block_hash) for vote in wal.votes} == {(0, PREVOTE, block_hash), (0, PRECOMMIT, block_hash)}

    restarted = make_replica(0, wal=wal, now_ms=NOW_MS + 50)
    effects = restarted.take_effects()
    assert restarted.round == 0 and restarted.step == Step.PRECOMMIT
    assert {vote.signature for vote in broadcast_votes(effects)} == {vote.signature for vote in wal.votes}
    # timeouts in round 0 must not produce a second (nil) vote of either type
    restarted.tick(NOW_MS + 100_000)
    for vote in broadcast_votes(restarted.take_effects()):
        assert vote.round != 0 or vote.signature in {v.signature for v in wal.votes}


def test_restart_keeps_the_lock() -> None:
    replica = make_replica(0)
    block, block_hash = make_block()
    effects = deliver(replica, sign_proposal(block, 0))
    for index in (1, 2):
        effects += deliver(replica, sign_vote(index, PREVOTE, 1, 0, block_hash))
    restarted = make_replica(0, wal=_last_wal(effects))
    for index in (2, 3):
        deliver(restarted, sign_vote(index, PRECOMMIT, 1, 1, NIL))
    assert restarted.round == 1
    other, _ = make_block(round_=1, payload=b"other")
    effects = deliver(restarted, sign_proposal(other, 1))
    assert [vote.block_hash for vote in broadcast_votes(effects, PREVOTE)] == [NIL]


def test_restart_after_prevote_only_can_still_precommit() -> None:
    replica = make_replica(0)
    replica.tick(NOW_MS + CONFIG.timeout_propose_ms)  # prevote nil
    wal = _last_wal(replica.take_effects())
    restarted = make_replica(0, wal=wal)
    assert restarted.step == Step.PREVOTE
    deliver(restarted, sign_vote(1, PREVOTE, 1, 0, NIL))
    effects = deliver(restarted, sign_vote(2, PREVOTE, 1, 0, NIL))
    assert [vote.block_hash for vote in broadcast_votes(effects, PRECOMMIT)] == [NIL]


def test_restarted_proposer_does_not_propose_again_in_the_same_round() -> None:
    replica = make_replica(1)
    replica.take_effects()
    replica.propose_payload(1, 0, b"first", NOW_MS)
    wal = [e.record for e in replica.take_effects() if isinstance(e, Persist)][0]
    restarted = make_replica(1, wal=wal)
    effects = restarted.take_effects()
    assert not [e for e in effects if isinstance(e, Broadcast) and not isinstance(e.message, Vote)]
    assert restarted.round == 0


def test_wal_of_an_older_height_is_ignored() -> None:
    wal = ConsensusWal(1, 3, 3, SUITE.hash(b"x"), -1, None, (), ())
    block, block_hash = make_block()
    tip = ChainTip(1, block_hash, block.header.timestamp_ms, TIP.validator_set)
    replica = make_replica(0, tip=tip, wal=wal)
    assert replica.height == 2 and replica.round == 0 and replica.locked_round == -1


def test_wal_from_the_future_is_an_operating_error() -> None:
    with pytest.raises(ValueError, match="WAL is for height 5"):
        make_replica(0, wal=ConsensusWal(5, 0, -1, b"", -1, None, (), ()), start=False)


# ---------------------------------------------------------------- evidence


def test_conflicting_votes_are_kept_as_evidence_and_count_once() -> None:
    replica = make_replica(0)
    _, block_hash = make_block()
    first = sign_vote(2, PREVOTE, 1, 0, block_hash)
    second = sign_vote(2, PREVOTE, 1, 0, NIL)
    deliver(replica, first)
    effects = deliver(replica, second)
    found = [e.evidence for e in effects if isinstance(e, EvidenceFound)]
    assert len(found) == 1 and {found[0].vote_a, found[0].vote_b} == {first, second}
    assert list(replica.evidence) == found
    assert replica._rounds[0].prevotes.power_total == 1
    deliver(replica, second)  # the same pair again is not new evidence
    assert len(replica.evidence) == 1


def test_badly_signed_conflicting_vote_is_not_evidence() -> None:
    replica = make_replica(0)
    _, block_hash = make_block()
    deliver(replica, sign_vote(2, PREVOTE, 1, 0, block_hash))
    forged = Vote(PREVOTE, 1, 0, NIL, 2, bytes(64))
    deliver(replica, forged)
    assert not replica.evidence and replica.drops["bad vote: signature"] == 1


def test_evidence_is_bounded() -> None:
    replica = make_replica(0)
    for round_ in range(CONFIG.rounds_ahead_max + 1):
        deliver(replica, sign_vote(2, PRECOMMIT, 1, round_, NIL))
        deliver(replica, sign_vote(2, PRECOMMIT, 1, round_, SUITE.hash(b"%d" % round_)))
    assert 0 < len(replica.evidence) <= CONFIG.evidence_max


# ---------------------------------------------------------------- catch-up


def _committed_block(height: int = 1):
    block, block_hash = make_block(height)
    return block, block_hash, make_certificate(height, 0, block_hash, [1, 2, 3])


def test_block_response_with_a_valid_certificate_commits() -> None:
    replica = make_replica(0)
    block, block_hash, certificate = _committed_block()
    effects = deliver(replica, BlockResponse((CommittedBlock(block, certificate),), 2))
    assert [e.block_hash for e in effects if isinstance(e, Commit)] == [block_hash]
    assert replica.height == 2


@pytest.mark.parametrize("signers", [[1, 2], [1, 1, 2]])
def test_block_response_with_a_forged_certificate_is_dropped(signers: list[int]) -> None:
    replica = make_replica(0)
    block, block_hash, _ = _committed_block()
    certificate = make_certificate(1, 0, block_hash, signers)
    deliver(replica, BlockResponse((CommittedBlock(block, certificate),), 2))
    assert replica.height == 1 and replica.drops["bad block response: certificate"] == 1


def test_block_response_with_a_certificate_for_another_block_is_dropped() -> None:
    replica = make_replica(0)
    block, _, _ = _committed_block()
    _, _, other_certificate = _committed_block(2)
    deliver(replica, BlockResponse((CommittedBlock(block, other_certificate),), 2))
    assert replica.height == 1


def test_seeing_a_higher_height_requests_the_missing_block() -> None:
    replica = make_replica(0)
    replica.take_effects()
    deliver(replica, sign_vote(2, PREVOTE, 3, 0, NIL), sender=7)
    replica.tick(NOW_MS + CONFIG.catchup_delay_ms)
    assert Send(7, BlockRequest(1)) in replica.take_effects()


def test_block_request_is_served_from_committed_blocks() -> None:
    application = FakeApplication()
    replica = make_replica(0, application=application)
    block, _, certificate = _committed_block()
    deliver(replica, BlockResponse((CommittedBlock(block, certificate),), 2))
    effects = deliver(replica, BlockRequest(1), sender=5)
    assert Send(5, BlockResponse((CommittedBlock(block, certificate),), 2)) in effects
    assert not deliver(replica, BlockRequest(2), sender=5)  # not committed yet


def test_votes_from_a_lagging_peer_get_the_block_pushed() -> None:
    replica = make_replica(0)
    block, _, certificate = _committed_block()
    deliver(replica, BlockResponse((CommittedBlock(block, certificate),), 2))
    effects = deliver(replica, sign_vote(3, PREVOTE, 1, 2, NIL), sender=3)
    assert Send(3, BlockResponse((CommittedBlock(block, certificate),), 2)) in effects
    assert not deliver(replica, sign_vote(3, PRECOMMIT, 1, 2, NIL), sender=3)  # rate limited


def test_next_height_messages_are_queued_then_replayed() -> None:
    replica = make_replica(0)
    block, block_hash, certificate = _committed_block()
    tip2 = ChainTip(1, block_hash, block.header.timestamp_ms, TIP.validator_set)
    block2, hash2 = make_block(2, tip=tip2)
    deliver(replica, sign_proposal(block2, 0), sender=2)
    assert replica.height == 1
    effects = deliver(replica, BlockResponse((CommittedBlock(block, certificate),), 2))
    assert replica.height == 2
    # nothing about height 2 happens in the input that committed height 1: the shell first runs
    # the Commit (validate_payload must see committed state), then the replica asks for a tick
    assert not broadcast_votes(effects) and SetTimer(NOW_MS) in effects
    replica.tick(NOW_MS)
    assert [vote.block_hash for vote in broadcast_votes(replica.take_effects(), PREVOTE)] == [hash2]


def test_future_height_queue_is_bounded_per_peer() -> None:
    replica = make_replica(0)
    for round_ in range(CONFIG.future_messages_per_peer_max + 10):
        replica.receive(sign_vote(2, PREVOTE, 2, round_, NIL), 4, NOW_MS)
    assert len(replica._future_messages[4]) == CONFIG.future_messages_per_peer_max


# ---------------------------------------------------------------- validator-set changes


def test_validator_set_in_block_h_runs_height_h_plus_1() -> None:
    new_set = ValidatorSet(TIP.validator_set.validators[:3] + (Validator(PUBLIC_KEYS[4], 1),))
    replica = make_replica(0)
    block, block_hash = make_block(payload=b"set:" + encode(new_set))
    deliver(replica, BlockResponse((CommittedBlock(block, make_certificate(1, 0, block_hash, [1, 2, 3])),), 2))
    assert replica.height == 2 and replica.validators.validator_set == new_set
    # validator 3 is gone at height 2: its votes are now from an unknown key
    tip2 = ChainTip(1, block_hash, block.header.timestamp_ms, new_set)
    block2, hash2 = make_block(2, tip=tip2, validator_set=new_set)
    deliver(replica, sign_proposal(block2, 0))
    for index in (1, 2, 3):
        deliver(replica, sign_vote(index, PRECOMMIT, 2, 0, hash2))
    assert replica.height == 2 and replica.drops["bad vote: signature"] == 1


def test_removed_validator_becomes_an_observer_and_still_follows() -> None:
    new_set = ValidatorSet(TIP.validator_set.validators[1:] + (Validator(PUBLIC_KEYS[4], 1),))
    replica = make_replica(0)
    block, block_hash = make_block(payload=b"set:" + encode(new_set))
    deliver(replica, BlockResponse((CommittedBlock(block, make_certificate(1, 0, block_hash, [1, 2, 3])),), 2))
    assert not replica.is_validator
    replica.tick(NOW_MS + 100_000)
    assert not broadcast_votes(replica.take_effects())


# ---------------------------------------------------------------- bounds and codec


def test_decode_message_round_trips_and_rejects_garbage() -> None:
    vote = sign_vote(1, PREVOTE, 1, 0, NIL)
    assert decode_message(encode(vote)) == vote
    with pytest.raises(CodecError):
        decode_message(encode(vote) + b"\x00")
    with pytest.raises(CodecError):
        decode_message(b"\xff" * 10)
    with pytest.raises(CodecError, match="limit"):
        decode_message(bytes(MESSAGE_BYTES_MAX + 1))


def test_oversized_payload_is_refused_from_the_shell() -> None:
    replica = make_replica(1)
    with pytest.raises(ValueError, match="limit"):
        replica.propose_payload(1, 0, bytes(CONFIG.payload_bytes_max + 1), NOW_MS)


def test_votes_with_out_of_range_fields_are_dropped() -> None:
    replica = make_replica(0)
    deliver(replica, Vote(PREVOTE, 1, 0, NIL, 99, bytes(64)))
    deliver(replica, Vote(7, 1, 0, NIL, 1, bytes(64)))
    deliver(replica, Vote(PREVOTE, 1, 0, b"short", 1, bytes(64)))
    assert replica.drops["bad vote: unknown validator"] == 1
    assert replica.drops["bad vote: type"] == 1
    assert replica.drops["bad vote: field out of range"] == 1


def test_genesis_hash_is_the_first_parent() -> None:
    replica = make_replica(0)
    assert replica.chain_tip.block_hash == GENESIS_HASH


def _build_chain(length: int) -> list[CommittedBlock]:
    chain: list[CommittedBlock] = []
    tip = TIP
    for height in range(1, length + 1):
        block, block_hash = make_block(height, tip=tip, payload=b"block %d" % height)
        chain.append(CommittedBlock(block, make_certificate(height, 0, block_hash, [0, 1, 2])))
        tip = ChainTip(height, block_hash, block.header.timestamp_ms, TIP.validator_set)
    return chain


def test_catch_up_is_batched_and_continues_immediately() -> None:
    chain = _build_chain(40)
    application = FakeApplication(commits={c.block.header.height: (c.block, c.certificate) for c in chain})
    last = chain[-1].block
    tip = ChainTip(40, SUITE.hash(encode(last.header)), last.header.timestamp_ms, TIP.validator_set)
    server = make_replica(2, tip=tip, application=application)
    [response] = [e.message for e in deliver(server, BlockRequest(1), sender=0) if isinstance(e, Send)]
    assert isinstance(response, BlockResponse)
    assert len(response.commits) == 32 and response.responder_height == 41

    lagging = make_replica(0)
    effects = deliver(lagging, response, sender=2)
    for _ in range(40):  # one block per input, each after a SetTimer(now) asking for a tick
        lagging.tick(NOW_MS)
        step_effects = lagging.take_effects()
        assert len([e for e in step_effects if isinstance(e, Commit)]) <= 1
        effects += step_effects
    assert lagging.height == 33
    assert len([e for e in effects if isinstance(e, Commit)]) == 32
    assert [e for e in effects if isinstance(e, Send)] == [Send(2, BlockRequest(33))]


def test_batch_stops_at_the_first_bad_block() -> None:
    chain = _build_chain(3)
    bad = CommittedBlock(chain[1].block, chain[0].certificate)
    replica = make_replica(0)
    deliver(replica, BlockResponse((chain[0], bad, chain[2]), 4), sender=2)
    replica.tick(NOW_MS)
    assert replica.height == 2 and replica.drops["bad block response: certificate"] == 1


def test_inconsistent_wal_is_an_operating_error() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        make_replica(0, wal=ConsensusWal(1, -1, -1, b"", -1, None, (), ()), start=False)
    with pytest.raises(ValueError, match="inconsistent"):
        make_replica(0, wal=ConsensusWal(1, 2, 3, b"", -1, None, (), ()), start=False)


# ---------------------------------------------------------------- payload bound to its header


def test_a_relayed_copy_with_another_payload_does_not_displace_the_proposal() -> None:
    """The proposer signs the header, not the payload: a peer may relay the signed header with other
    payload bytes. That copy is dropped on arrival, so the real proposal that follows is stored and
    prevoted (were it stored, the real one would be a 'duplicate' and the round lost)."""
    replica = make_replica(0)
    block, block_hash = make_block()
    proposal = sign_proposal(block, 0)
    swapped = type(proposal)(proposal.height, proposal.round, type(block)(block.header, b"other bytes"),
                             proposal.valid_round, proposal.polka, proposal.proposer_index, proposal.signature)
    assert not broadcast_votes(deliver(replica, swapped, sender=3), PREVOTE)
    assert replica.drops["bad proposal: payload does not match the header's payload_hash"] == 1
    effects = deliver(replica, proposal, sender=1)
    assert [vote.block_hash for vote in broadcast_votes(effects, PREVOTE)] == [block_hash]


def test_a_certified_header_with_another_payload_does_not_block_catch_up() -> None:
    """A peer serves a real certificate with other payload bytes: dropped before the validity memo
    (kept by header hash), so the real block from another peer still commits."""
    replica = make_replica(0)
    block, block_hash, certificate = _committed_block()
    forged = CommittedBlock(type(block)(block.header, b"other bytes"), certificate)
    deliver(replica, BlockResponse((forged,), 2), sender=5)
    assert replica.height == 1
    assert replica.drops["bad block response: payload does not match the header's payload_hash"] == 1
    effects = deliver(replica, BlockResponse((CommittedBlock(block, certificate),), 2), sender=6)
    assert [e.block_hash for e in effects if isinstance(e, Commit)] == [block_hash]
    assert replica.height == 2

"""One test per rule of Algorithm 1 (Buchman, Kwon, Milosevic 2018), in the spirit of etcd-raft's
raft_paper_test.go. Each docstring quotes the line it checks. Replica 0 is driven by hand; the
proposer of (h=1, r) is validator (1 + r) % 4."""

from __future__ import annotations

from pilotchain.consensus import (
    Broadcast,
    Commit,
    Persist,
    RequestPayload,
    SetTimer,
    Step,
    verify_commit_certificate,
)
from tests.consensus.helpers import (
    CONFIG,
    NIL,
    NOW_MS,
    PRECOMMIT,
    PREVOTE,
    SUITE,
    VALIDATOR_SET,
    broadcast_votes,
    deliver,
    make_block,
    make_replica,
    persisted_before_sent,
    sign_proposal,
    sign_vote,
)


def _lock_replica_on(replica, round_: int, payload: bytes = b"first"):
    """Drive replica 0 to lock on a block of ``round_`` (proposal + 3 prevotes)."""
    block, block_hash = make_block(round_=round_, payload=payload)
    deliver(replica, sign_proposal(block, round_))
    for index in (1, 2):
        deliver(replica, sign_vote(index, PREVOTE, 1, round_, block_hash))
    assert replica.locked_round == round_ and replica.locked_block_hash == block_hash
    return block, block_hash


def _move_to_round(replica, round_: int) -> list:
    """Rule 55 with two validators (f + 1) precommitting nil in ``round_``; returns the effects."""
    effects = []
    for index in (2, 3):
        effects += deliver(replica, sign_vote(index, PRECOMMIT, 1, round_, NIL))
    assert replica.round == round_
    return effects


# ---------------------------------------------------------------- StartRound (lines 10-21)


def test_start_round_proposer_asks_for_a_payload_line_18() -> None:
    """"if proposer(h_p, round_p) = p ... proposal <- getValue()" — as a RequestPayload effect."""
    replica = make_replica(1)
    effects = replica.take_effects()
    assert RequestPayload(1, 0, VALIDATOR_SET and replica.chain_tip.block_hash) in effects
    assert replica.step == Step.PROPOSE


def test_proposer_broadcasts_a_signed_proposal_after_persisting_line_19() -> None:
    """"broadcast ⟨PROPOSAL, h_p, round_p, proposal, validRound_p⟩" — persisted first."""
    replica = make_replica(1)
    replica.take_effects()
    replica.propose_payload(1, 0, b"txs", NOW_MS)
    effects = replica.take_effects()
    kinds = [type(effect).__name__ for effect in effects]
    assert kinds.index("Persist") < kinds.index("Broadcast")
    proposal = next(e.message for e in effects if isinstance(e, Broadcast) and hasattr(e.message, "block"))
    assert proposal.valid_round == -1 and proposal.block.payload == b"txs"
    assert proposal.block.header.timestamp_ms == NOW_MS
    # the proposer then prevotes its own proposal (rule 22 applies to itself)
    assert [vote.block_hash for vote in broadcast_votes(effects, PREVOTE)] != [NIL]


def test_stale_payload_answer_is_ignored() -> None:
    replica = make_replica(1)
    replica.take_effects()
    replica.propose_payload(1, 5, b"txs", NOW_MS)
    assert not [e for e in replica.take_effects() if isinstance(e, Broadcast)]
    assert replica.drops["stale payload"] == 1


def test_non_proposer_schedules_timeout_propose_line_21() -> None:
    """"else schedule OnTimeoutPropose(h_p, round_p) to be executed after timeoutPropose(round_p)"."""
    replica = make_replica(0)
    effects = replica.take_effects()
    assert SetTimer(NOW_MS + CONFIG.timeout_propose_ms) in effects
    assert not [e for e in effects if isinstance(e, RequestPayload)]


def test_proposer_reproposes_its_valid_value_with_its_polka_lines_14_15() -> None:
    """"if validValue_p != nil then proposal <- validValue_p" (and vr = validRound_p)."""
    replica = make_replica(0)
    block, block_hash = _lock_replica_on(replica, 0)
    effects = _move_to_round(replica, 3)  # proposer of (1, 3) is validator 0
    proposals = [e.message for e in effects if isinstance(e, Broadcast) and hasattr(e.message, "block")]
    assert len(proposals) == 1
    assert proposals[0].block == block and proposals[0].valid_round == 0
    assert {vote.validator_index for vote in proposals[0].polka} >= {0, 1, 2}


# ---------------------------------------------------------------- line 22


def test_prevote_valid_proposal_when_unlocked_line_22() -> None:
    """"if valid(v) ∧ (lockedRound_p = −1 ∨ lockedValue_p = v) then broadcast ⟨PREVOTE, h_p, round_p, id(v)⟩"."""
    replica = make_replica(0)
    block, block_hash = make_block()
    effects = deliver(replica, sign_proposal(block, 0))
    assert [vote.block_hash for vote in broadcast_votes(effects, PREVOTE)] == [block_hash]
    assert replica.step == Step.PREVOTE
    assert persisted_before_sent(effects)


def test_prevote_nil_for_invalid_payload_line_25() -> None:
    """"else broadcast ⟨PREVOTE, h_p, round_p, nil⟩" when not valid(v)."""
    replica = make_replica(0)
    block, _ = make_block(payload=b"invalid")
    effects = deliver(replica, sign_proposal(block, 0))
    assert [vote.block_hash for vote in broadcast_votes(effects, PREVOTE)] == [NIL]


def test_prevote_nil_for_timestamp_not_after_parent() -> None:
    replica = make_replica(0)
    block, _ = make_block(timestamp_ms=replica.chain_tip.timestamp_ms)
    effects = deliver(replica, sign_proposal(block, 0))
    assert [vote.block_hash for vote in broadcast_votes(effects, PREVOTE)] == [NIL]


def test_prevote_nil_for_timestamp_too_far_ahead() -> None:
    replica = make_replica(0)
    block, _ = make_block(timestamp_ms=NOW_MS + CONFIG.clock_drift_max_ms + 1)
    effects = deliver(replica, sign_proposal(block, 0))
    assert [vote.block_hash for vote in broadcast_votes(effects, PREVOTE)] == [NIL]


def test_prevote_nil_when_locked_on_another_value_line_23() -> None:
    """The lock: lockedRound_p != -1 and lockedValue_p != v gives a nil prevote."""
    replica = make_replica(0)
    _lock_replica_on(replica, 0)
    _move_to_round(replica, 1)
    replica.take_effects()
    other, _ = make_block(round_=1, payload=b"second")
    effects = deliver(replica, sign_proposal(other, 1))
    assert [vote.block_hash for vote in broadcast_votes(effects, PREVOTE)] == [NIL]


def test_prevote_locked_value_again_line_23() -> None:
    replica = make_replica(0)
    block, block_hash = _lock_replica_on(replica, 0)
    _move_to_round(replica, 1)
    replica.take_effects()
    effects = deliver(replica, sign_proposal(block, 1))  # re-proposed fresh (vr = -1)
    assert [vote.block_hash for vote in broadcast_votes(effects, PREVOTE)] == [block_hash]


def test_proposal_from_wrong_proposer_is_dropped() -> None:
    replica = make_replica(0)
    block, _ = make_block()
    deliver(replica, sign_proposal(block, 0, proposer=2))
    assert replica.drops["bad proposal: not the proposer"] == 1 and replica.step == Step.PROPOSE


def test_proposal_with_bad_signature_is_dropped() -> None:
    replica = make_replica(0)
    block, _ = make_block()
    proposal = sign_proposal(block, 0)
    forged = type(proposal)(**{**{f: getattr(proposal, f) for f in proposal.__struct_fields__}, "signature": bytes(64)})
    deliver(replica, forged)
    assert replica.drops["bad proposal: signature"] == 1 and replica.step == Step.PROPOSE


# ---------------------------------------------------------------- line 28


def test_prevote_polka_proposal_when_lock_is_older_line_28() -> None:
    """"if valid(v) ∧ (lockedRound_p <= vr ∨ lockedValue_p = v)" with a polka for v at vr."""
    replica = make_replica(0)
    _lock_replica_on(replica, 0, payload=b"first")
    _move_to_round(replica, 2)
    replica.take_effects()
    block, block_hash = make_block(round_=1, payload=b"second")
    polka = tuple(sign_vote(i, PREVOTE, 1, 1, block_hash) for i in (1, 2, 3))
    effects = deliver(replica, sign_proposal(block, 2, valid_round=1, polka=polka))
    assert [vote.block_hash for vote in broadcast_votes(effects, PREVOTE)] == [block_hash]


def test_prevote_nil_for_polka_older_than_lock_line_31() -> None:
    """Locked in round 1, a proposal justified by a polka of round 0 for another value gets nil."""
    replica = make_replica(0)
    _move_to_round(replica, 1)
    _lock_replica_on(replica, 1, payload=b"locked")
    _move_to_round(replica, 4)
    replica.take_effects()
    block, block_hash = make_block(round_=0, payload=b"older")
    polka = tuple(sign_vote(i, PREVOTE, 1, 0, block_hash) for i in (1, 2, 3))
    effects = deliver(replica, sign_proposal(block, 4, valid_round=0, polka=polka))
    assert [vote.block_hash for vote in broadcast_votes(effects, PREVOTE)] == [NIL]


def test_polka_proposal_without_quorum_is_dropped() -> None:
    """The 2f+1 prevotes for vr must really be there (carried as the proposal's polka)."""
    replica = make_replica(0)
    _move_to_round(replica, 2)
    block, block_hash = make_block(round_=1)
    polka = tuple(sign_vote(i, PREVOTE, 1, 1, block_hash) for i in (1, 2))
    deliver(replica, sign_proposal(block, 2, valid_round=1, polka=polka))
    assert replica.drops["bad proposal: polka does not justify valid_round"] == 1
    assert replica.step == Step.PROPOSE


# ---------------------------------------------------------------- lines 34, 36, 44, 47


def test_prevote_quorum_of_mixed_votes_schedules_timeout_prevote_line_34() -> None:
    """"upon 2f+1 ⟨PREVOTE, h_p, round_p, ∗⟩ while step_p = prevote for the first time"."""
    replica = make_replica(0)
    block, block_hash = make_block()
    deliver(replica, sign_proposal(block, 0))
    deliver(replica, sign_vote(1, PREVOTE, 1, 0, NIL))
    effects = deliver(replica, sign_vote(2, PREVOTE, 1, 0, SUITE.hash(b"x")), now_ms=NOW_MS + 5)
    assert SetTimer(NOW_MS + 5 + CONFIG.timeout_prevote_ms) in effects
    replica.tick(NOW_MS + 5 + CONFIG.timeout_prevote_ms)
    assert [vote.block_hash for vote in broadcast_votes(replica.take_effects(), PRECOMMIT)] == [NIL]  # line 61
    assert replica.step == Step.PRECOMMIT


def test_polka_locks_and_precommits_line_36() -> None:
    """"lockedValue_p <- v; lockedRound_p <- round_p; broadcast ⟨PRECOMMIT, h_p, round_p, id(v)⟩"."""
    replica = make_replica(0)
    block, block_hash = make_block()
    deliver(replica, sign_proposal(block, 0))
    deliver(replica, sign_vote(1, PREVOTE, 1, 0, block_hash))
    effects = deliver(replica, sign_vote(2, PREVOTE, 1, 0, block_hash))
    assert [vote.block_hash for vote in broadcast_votes(effects, PRECOMMIT)] == [block_hash]
    assert (replica.locked_round, replica.locked_block_hash) == (0, block_hash)
    assert (replica.valid_round, replica.valid_block) == (0, block)
    persist = next(e for e in effects if isinstance(e, Persist))
    assert persist.record.locked_block_hash == block_hash  # the lock is durable before the vote leaves
    assert persisted_before_sent(effects)


def test_polka_after_precommit_step_updates_only_valid_value_line_42() -> None:
    """At step precommit only "validValue_p <- v; validRound_p <- round_p" happens."""
    replica = make_replica(0)
    block, block_hash = make_block()
    deliver(replica, sign_vote(1, PREVOTE, 1, 0, NIL))
    replica.tick(NOW_MS + CONFIG.timeout_propose_ms)  # prevote nil
    deliver(replica, sign_vote(2, PREVOTE, 1, 0, NIL))
    replica.tick(NOW_MS + CONFIG.timeout_propose_ms + CONFIG.timeout_prevote_ms)  # precommit nil
    assert replica.step == Step.PRECOMMIT
    replica.take_effects()
    deliver(replica, sign_proposal(block, 0))
    for index in (1, 2, 3):
        deliver(replica, sign_vote(index, PREVOTE, 1, 0, block_hash))  # 1 and 2 equivocate here
    deliver_effects = replica.take_effects()
    assert replica.locked_round == -1
    assert not broadcast_votes(deliver_effects)


def test_nil_polka_precommits_nil_line_44() -> None:
    """"upon 2f+1 ⟨PREVOTE, h_p, round_p, nil⟩ while step_p = prevote: broadcast ⟨PRECOMMIT, nil⟩"."""
    replica = make_replica(0)
    replica.tick(NOW_MS + CONFIG.timeout_propose_ms)
    deliver(replica, sign_vote(1, PREVOTE, 1, 0, NIL))
    effects = deliver(replica, sign_vote(2, PREVOTE, 1, 0, NIL))
    assert [vote.block_hash for vote in broadcast_votes(effects, PRECOMMIT)] == [NIL]


def test_precommit_quorum_schedules_timeout_precommit_then_next_round_lines_47_65() -> None:
    replica = make_replica(0)
    deliver(replica, sign_vote(1, PRECOMMIT, 1, 0, NIL))
    deliver(replica, sign_vote(2, PRECOMMIT, 1, 0, NIL))
    effects = deliver(replica, sign_vote(3, PRECOMMIT, 1, 0, SUITE.hash(b"y")), now_ms=NOW_MS + 7)
    assert SetTimer(NOW_MS + 7 + CONFIG.timeout_precommit_ms) in effects
    replica.tick(NOW_MS + 7 + CONFIG.timeout_precommit_ms)
    assert replica.round == 1 and replica.step == Step.PROPOSE


# ---------------------------------------------------------------- line 49


def test_decide_on_proposal_and_precommit_quorum_line_49() -> None:
    """"upon ⟨PROPOSAL, h_p, r, v, ∗⟩ AND 2f+1 ⟨PRECOMMIT, h_p, r, id(v)⟩ while decision_p[h_p] = nil"."""
    replica = make_replica(0)
    block, block_hash = make_block()
    deliver(replica, sign_proposal(block, 0))
    for index in (1, 2):
        deliver(replica, sign_vote(index, PRECOMMIT, 1, 0, block_hash))
    effects = deliver(replica, sign_vote(3, PRECOMMIT, 1, 0, block_hash))
    commits = [e for e in effects if isinstance(e, Commit)]
    assert len(commits) == 1 and commits[0].block == block
    verify_commit_certificate(commits[0].certificate, block_hash, VALIDATOR_SET, SUITE, chain_id=b"test-chain", height=1)
    assert replica.height == 2 and replica.round == 0 and replica.locked_round == -1  # line 53


def test_decide_in_an_earlier_round_line_49() -> None:
    """r in line 49 is any round, not only round_p."""
    replica = make_replica(0)
    block, block_hash = make_block()
    deliver(replica, sign_proposal(block, 0))
    _move_to_round(replica, 1)
    for index in (1, 2, 3):
        deliver(replica, sign_vote(index, PRECOMMIT, 1, 0, block_hash))
    assert replica.height == 2


def test_no_decision_without_the_proposal() -> None:
    replica = make_replica(0)
    _, block_hash = make_block()
    for index in (1, 2, 3):
        deliver(replica, sign_vote(index, PRECOMMIT, 1, 0, block_hash))
    assert replica.height == 1


def test_no_decision_on_invalid_block() -> None:
    replica = make_replica(0)
    block, block_hash = make_block(payload=b"invalid")
    deliver(replica, sign_proposal(block, 0))
    for index in (1, 2, 3):
        deliver(replica, sign_vote(index, PRECOMMIT, 1, 0, block_hash))
    assert replica.height == 1


# ---------------------------------------------------------------- line 55


def test_f_plus_one_messages_of_higher_round_start_it_line_55() -> None:
    """"upon f+1 ⟨∗, h_p, round, ∗, ∗⟩ with round > round_p do StartRound(round)"."""
    replica = make_replica(0)
    deliver(replica, sign_vote(2, PREVOTE, 1, 3, NIL))
    assert replica.round == 0
    deliver(replica, sign_vote(3, PRECOMMIT, 1, 3, NIL))
    assert replica.round == 3


def test_f_messages_of_higher_round_do_not_move_line_55() -> None:
    replica = make_replica(0)
    deliver(replica, sign_vote(2, PREVOTE, 1, 3, NIL))
    deliver(replica, sign_vote(2, PRECOMMIT, 1, 3, NIL))
    assert replica.round == 0


def test_far_round_votes_count_for_round_skip_but_are_not_stored() -> None:
    replica = make_replica(0)
    far = CONFIG.rounds_ahead_max + 10
    deliver(replica, sign_vote(2, PREVOTE, 1, far, NIL))
    assert far not in replica._rounds
    deliver(replica, sign_vote(3, PREVOTE, 1, far, NIL))
    assert replica.round == far


# ---------------------------------------------------------------- timeouts (lines 57-67)


def test_timeout_propose_prevotes_nil_line_57() -> None:
    replica = make_replica(0)
    replica.take_effects()
    replica.tick(NOW_MS + CONFIG.timeout_propose_ms - 1)
    assert not broadcast_votes(replica.take_effects())
    replica.tick(NOW_MS + CONFIG.timeout_propose_ms)
    assert [vote.block_hash for vote in broadcast_votes(replica.take_effects(), PREVOTE)] == [NIL]


def test_timeouts_grow_with_the_round() -> None:
    replica = make_replica(0)
    _move_to_round(replica, 2)
    assert replica._timeout_propose_at_ms == NOW_MS + CONFIG.timeout_propose_ms + 2 * CONFIG.timeout_propose_delta_ms


def test_a_vote_is_never_signed_twice_for_one_round_and_step() -> None:
    replica = make_replica(0)
    block, block_hash = make_block()
    deliver(replica, sign_proposal(block, 0))
    replica.tick(NOW_MS + CONFIG.timeout_propose_ms)  # step is prevote already: no nil prevote
    assert len(broadcast_votes(replica.take_effects(), PREVOTE)) == 0
    assert len([key for key in replica._own_votes if key == (0, PREVOTE)]) == 1


def test_broadcast_is_always_preceded_by_persist() -> None:
    replica = make_replica(1)
    all_effects = replica.take_effects()
    replica.propose_payload(1, 0, b"p", NOW_MS)
    all_effects += replica.take_effects()
    block_hash = replica._rounds[0].first_proposal.block_hash
    for index in (0, 2):
        all_effects += deliver(replica, sign_vote(index, PREVOTE, 1, 0, block_hash))
    assert broadcast_votes(all_effects, PRECOMMIT)
    assert persisted_before_sent(all_effects)

"""What the replica records about a byzantine peer, deterministically: a proposer that signs two
proposals for one round is kept as evidence (a few hundred bytes that verify offline with its
key), and every refused message is counted by the peer that sent it. The live test
(tests/node/test_byzantine_process.py) shows the same through a node's log and /metrics."""

from __future__ import annotations

import pytest

from pilotchain.codec import decode, encode
from pilotchain.consensus import (
    DuplicateProposalEvidence,
    ProposalEvidenceFound,
    Vote,
    compute_block_hash,
    get_proposal_signing_bytes,
)
from pilotchain.consensus import replica as replica_module
from tests.consensus.helpers import (
    CHAIN_ID,
    KEYS,
    NIL,
    PREVOTE,
    PUBLIC_KEYS,
    SUITE,
    deliver,
    make_block,
    make_replica,
    sign_proposal,
    sign_vote,
)


def _proposals(payloads: list[bytes], proposer: int | None = None) -> list[object]:
    return [sign_proposal(make_block(payload=payload)[0], 0, proposer=proposer) for payload in payloads]


def test_two_signed_proposals_for_one_round_are_evidence_that_verifies_offline() -> None:
    replica = make_replica(0)  # the proposer of height 1, round 0 is validator 1
    first, second, third = _proposals([b"block A", b"block B", b"block C"])
    assert not [e for e in deliver(replica, first, sender=5) if isinstance(e, ProposalEvidenceFound)]
    effects = deliver(replica, second, sender=6)
    found = [e.evidence for e in effects if isinstance(e, ProposalEvidenceFound)]
    assert len(found) == 1 and list(replica.proposal_evidence) == found
    evidence = found[0]
    # ordered by block hash, payloads left out, each half verifies with the proposer's key alone
    assert evidence.proposal_a.block_hash < evidence.proposal_b.block_hash
    hashes = {compute_block_hash(SUITE, p.block.header) for p in (first, second)}  # type: ignore[attr-defined]
    assert {evidence.proposal_a.block_hash, evidence.proposal_b.block_hash} == hashes
    wire = encode(evidence)
    assert len(wire) < 512 and decode(wire, DuplicateProposalEvidence) == evidence
    for half in (evidence.proposal_a, evidence.proposal_b):
        assert (half.height, half.round, half.proposer_index, half.valid_round) == (1, 0, 1, -1)
        signed = get_proposal_signing_bytes(CHAIN_ID, half.height, half.round, half.block_hash, half.valid_round)
        assert SUITE.verify(PUBLIC_KEYS[1], signed, half.signature)
    # the same round again (a third block, or the second resent) is not new evidence
    deliver(replica, second, sender=6)
    deliver(replica, third, sender=6)
    assert len(replica.proposal_evidence) == 1
    assert replica.drops["ignoring: duplicate proposal"] == 1
    assert replica.drops["ignoring: proposer equivocates beyond limit"] == 1


def test_a_resent_proposal_or_a_badly_signed_second_one_is_not_evidence() -> None:
    replica = make_replica(0)
    first, second = _proposals([b"block A", b"block B"])
    deliver(replica, first)
    deliver(replica, first)  # retransmitted: the same block
    forged = sign_proposal(make_block(payload=b"block B")[0], 0, proposer=1)
    forged = type(forged)(forged.height, forged.round, forged.block, forged.valid_round, forged.polka,
                          forged.proposer_index, KEYS[3].sign(b"not the signing bytes"))
    deliver(replica, forged)
    # signed by the wrong validator's key for the proposer's slot
    deliver(replica, _proposals([b"block B"], proposer=2)[0])
    assert not replica.proposal_evidence
    assert replica.drops["bad proposal: signature"] == 1
    assert replica.drops["bad proposal: not the proposer"] == 1
    assert replica.step.name == "PREVOTE"  # it prevoted the first block; nothing else changed that
    deliver(replica, second)
    assert len(replica.proposal_evidence) == 1


def test_refusals_are_counted_by_the_peer_that_sent_them() -> None:
    replica = make_replica(0)
    _, block_hash = make_block()
    deliver(replica, Vote(PREVOTE, 1, 0, block_hash, 2, bytes(64)), sender=7)  # garbage signature
    deliver(replica, Vote(PREVOTE, 1, 0, block_hash, 2, KEYS[3].sign(b"x")), sender=7)  # wrong key
    deliver(replica, sign_vote(3, PREVOTE, 1_000, 0, NIL), sender=8)  # far future height
    deliver(replica, sign_vote(3, PREVOTE, 1, 0, NIL), sender=8)
    deliver(replica, sign_vote(3, PREVOTE, 1, 0, NIL), sender=8)  # replayed
    replica.propose_payload(1, 0, b"not asked for", 10_000)  # a local input: no peer to blame
    assert replica.drops_by_peer == {
        (7, "bad vote: signature"): 2,
        (8, "ignoring: far future height"): 1,
        (8, "ignoring: duplicate vote"): 1,
    }
    assert replica.drops["stale payload"] == 1 and sum(replica.drops.values()) == 5


def test_refusals_by_peer_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replica_module, "DROPS_BY_PEER_KEYS_MAX", 3)
    replica = make_replica(0)
    for sender in range(6):
        deliver(replica, Vote(PREVOTE, 1, 0, NIL, 2, bytes(64)), sender=sender)
    assert len(replica.drops_by_peer) == 4  # three peers, then one key for the rest
    assert replica.drops_by_peer[(replica_module.DROPS_OTHER_PEER, "bad vote: signature")] == 3
    assert replica.drops["bad vote: signature"] == 6

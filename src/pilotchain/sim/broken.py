"""Deliberately broken replicas and node cores: the simulator must catch each of them.

They exist to prove the simulator has teeth (a checker that never fails proves nothing): the
replicas break the consensus rules, the cores break the ledger glue that the validator process
runs (:class:`~pilotchain.node.core.NodeCore`).
"""

from __future__ import annotations

from typing import Any

from pilotchain.consensus.effects import Commit
from pilotchain.consensus.replica import Replica
from pilotchain.consensus.types import ConsensusHeader
from pilotchain.node.core import Committed, NodeCore

__all__ = [
    "BROKEN",
    "BROKEN_CORES",
    "BROKEN_REPLICAS",
    "CoreApplyingCommitTwice",
    "CoreSkippingReexecution",
    "ReplicaForgettingWal",
    "ReplicaNeverChangingRound",
    "ReplicaSkippingLockCheck",
]


class ReplicaSkippingLockCheck(Replica):
    """Prevotes for any valid proposal, ignoring its lock (lines 23 and 29 without the lock check).

    This breaks the locking argument: a validator that precommitted v in round r (so v may be
    decided) prevotes v' in a later round, and a quorum for v' can form.
    """

    def _may_prevote_fresh_proposal(self, block_hash: bytes) -> bool:
        return True

    def _may_prevote_polka_proposal(self, block_hash: bytes, valid_round: int) -> bool:
        return True


class ReplicaForgettingWal(Replica):
    """Restarts as if its WAL were empty (a shell that skipped the Persist, or fsync that lies).

    After a crash it may sign a second, different vote in a round it already voted in: the
    simulator reports the honest node's equivocation as a safety violation.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs["wal"] = None
        super().__init__(**kwargs)


class ReplicaNeverChangingRound(Replica):
    """Never leaves a round (no timeoutPrecommit, no round skip): safe, but a lost proposal or a
    crashed proposer stalls it for ever. The simulator reports a liveness failure."""

    def _on_timeout_precommit_rule_65(self) -> None:
        return

    def _on_higher_round_rule_55(self) -> bool:
        return False


BROKEN_REPLICAS: dict[str, type[Replica]] = {
    "no-round-change": ReplicaNeverChangingRound,
    "skip-lock-check": ReplicaSkippingLockCheck,
    "forget-wal": ReplicaForgettingWal,
}


class CoreApplyingCommitTwice(NodeCore):
    """Applies a certified block to the ledger, then applies it again (a retried commit that the
    glue does not recognise as done). The second application fails: the node halts."""

    def _apply_commit(self, effect: Commit) -> Committed:
        committed = super()._apply_commit(effect)
        self.ledger.commit_block(committed.block)
        return committed


class CoreSkippingReexecution(NodeCore):
    """Accepts a proposal whose ledger block is bound to its consensus header (height, time,
    proposer) without re-executing it, so the state root is never checked before voting. A
    byzantine proposer's block with a state root that execution does not produce gets certified;
    the ledger then cannot apply it and the honest nodes halt."""

    def validate_payload(self, header: ConsensusHeader, payload: bytes) -> bool:
        block = self.block_of(payload)
        names = [v.name for v in self.ledger.validators_at(header.height)]
        return (block.header.height == header.height == self.ledger.height + 1
                and block.header.timestamp_ms == header.timestamp_ms
                and header.proposer_index < len(names) and block.header.proposer == names[header.proposer_index])


BROKEN_CORES: dict[str, type[NodeCore]] = {
    "commit-twice": CoreApplyingCommitTwice,
    "skip-reexecution": CoreSkippingReexecution,
}

#: every broken part the CLI's ``--broken`` knows
BROKEN: tuple[str, ...] = (*BROKEN_REPLICAS, *BROKEN_CORES)

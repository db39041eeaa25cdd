"""Deliberately broken replicas: the simulator must catch each of them.

They exist to prove the simulator has teeth (a checker that never fails proves nothing).
"""

from __future__ import annotations

from typing import Any

from pilotchain.consensus.replica import Replica

__all__ = ["BROKEN_REPLICAS", "ReplicaForgettingWal", "ReplicaNeverChangingRound", "ReplicaSkippingLockCheck"]


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

"""Deliberately broken replicas: the simulator must catch each of them.

They exist to prove the simulator has teeth (a checker that never fails proves nothing).
"""

from __future__ import annotations

from pilotchain.consensus.replica import Replica

__all__ = ["BROKEN_REPLICAS", "ReplicaSkippingLockCheck"]


class ReplicaSkippingLockCheck(Replica):
    """Prevotes for any valid proposal, ignoring its lock (lines 23 and 29 without the lock check).

    This breaks the locking argument: a validator that precommitted v in round r (so v may be
    decided) prevotes v' in a later round, and a quorum for v' can form.
    """

    def _may_prevote_fresh_proposal(self, block_hash: bytes) -> bool:
        return True

    def _may_prevote_polka_proposal(self, block_hash: bytes, valid_round: int) -> bool:
        return True


BROKEN_REPLICAS = {"skip-lock-check": ReplicaSkippingLockCheck}

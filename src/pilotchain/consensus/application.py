"""The application boundary: what consensus needs from the node above it.

Consensus is generic over the block payload (opaque bytes). The node implements
:class:`Application`; every method must be a deterministic function of committed state and its
arguments (no clock, no randomness, no network), because every honest validator must reach the
same answer for the same block.

How a payload gets proposed is an effect/input pair rather than a callback: the replica emits
``RequestPayload(height, round, parent_hash)`` and the shell answers with
``Replica.propose_payload(height, round, payload, now_ms)``. That lets the node execute the
transactions on committed state first (so the payload can carry the post-state root).
"""

from __future__ import annotations

from typing import Protocol

from pilotchain.consensus.types import (
    CommitCertificate,
    ConsensusBlock,
    ConsensusHeader,
    ValidatorSet,
)

__all__ = ["Application"]


class Application(Protocol):
    def validate_payload(self, header: ConsensusHeader, payload: bytes) -> bool:
        """valid(v): is ``payload`` acceptable as block ``header.height`` on top of
        ``header.parent_hash``? The header is passed so the application can bind its own
        block to the consensus one (same height, timestamp, proposer); the replica has already
        checked the header itself (proposer, timestamp order, payload hash)."""
        ...

    def get_validator_set_update(self, height: int, payload: bytes) -> ValidatorSet | None:
        """The validator set that block ``height`` installs for height ``height + 1``, if any.

        Called once per committed block (after ``validate_payload`` accepted it).
        """
        ...

    def load_commit(self, height: int) -> tuple[ConsensusBlock, CommitCertificate] | None:
        """A committed block and its certificate, to serve a lagging peer (None if unknown)."""
        ...

"""The application boundary: what consensus needs from the node above it.

Consensus is generic over the block payload (opaque bytes). The node implements
:class:`Application`; every method must be a deterministic function of committed state and its
arguments (no clock, no randomness, no network), because every honest validator must reach the
same answer for the same block.

How a payload gets proposed is an effect/input pair rather than a callback: the replica emits
``RequestPayload(height, round, parent_hash)`` and the shell answers with
``Replica.propose_payload(height, round, payload, now_ms)``. That lets the node execute the
transactions on committed state first (so the payload can carry the post-state root).

The consensus header commits to the payload through ``compute_payload_hash``, which the
application defines: the node makes it the ledger block's own hash (header only), so a commit
certificate proves a ledger header without the block's transactions — what a light client or an
audit bundle needs (see :func:`pilotchain.ledger.commit.verify_header_commit`).
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
    def compute_payload_hash(self, payload: bytes) -> bytes | None:
        """What the consensus header's ``payload_hash`` names for ``payload``, or None when
        ``payload`` is not well formed.

        Must be *binding*: two payloads with the same hash are the same payload (the replica
        identifies a block, remembers its validity and refuses a second copy by the header's hash
        alone). A plain hash of the bytes is; so is the hash of an application header that
        commits to the rest of the payload, provided this method checks that it does. Cheap
        next to ``validate_payload``: the replica calls it when a proposal or a certified block
        arrives, before storing it."""
        ...

    def validate_payload(self, header: ConsensusHeader, payload: bytes) -> bool:
        """valid(v): is ``payload`` acceptable as block ``header.height`` on top of
        ``header.parent_hash``? The header is passed so the application can bind its own
        block to the consensus one (same height, timestamp, proposer); the replica has already
        checked the header itself (proposer, timestamp order) and the payload against its
        ``payload_hash`` (:meth:`compute_payload_hash`)."""
        ...

    def get_validator_set_update(self, height: int, payload: bytes) -> ValidatorSet | None:
        """The validator set that block ``height`` installs for height ``height + 1``, if any.

        Called once per committed block (after ``validate_payload`` accepted it).
        """
        ...

    def load_commit(self, height: int) -> tuple[ConsensusBlock, CommitCertificate] | None:
        """A committed block and its certificate, to serve a lagging peer (None if unknown)."""
        ...

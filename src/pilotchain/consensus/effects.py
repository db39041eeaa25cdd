"""Effects: everything a :class:`~pilotchain.consensus.replica.Replica` asks its shell to do.

The replica never performs I/O. Each input (``start``, ``receive``, ``tick``,
``propose_payload``) appends effects to a queue that the shell drains with
``Replica.take_effects()`` and executes **in order**. Order is the contract:

* a :class:`Persist` precedes every :class:`Send`/:class:`Broadcast` of a vote or proposal it
  covers; the shell must make the record durable (fsync) before executing any later effect;
* a :class:`Commit` is final: the shell appends block + certificate to its ledger before later
  effects (the replica has already moved to the next height);
* :class:`SetTimer` replaces the previous deadline: call ``tick(now_ms)`` once ``now_ms`` reaches
  it (calling earlier or more often is harmless);
* :class:`RequestPayload` asks for a payload; answer with ``propose_payload(height, round, ...)``
  (late or never answering only costs the round).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from pilotchain.consensus.types import (
    CommitCertificate,
    ConsensusBlock,
    ConsensusMessage,
    ConsensusWal,
    DuplicateProposalEvidence,
    DuplicateVoteEvidence,
)

__all__ = [
    "Broadcast",
    "Commit",
    "Effect",
    "EvidenceFound",
    "Persist",
    "PeerId",
    "RequestPayload",
    "Send",
    "SetTimer",
]

#: The shell's name for a peer connection (the simulator uses node numbers).
PeerId: TypeAlias = int


@dataclass(frozen=True, slots=True)
class Persist:
    """Durably replace the WAL record with ``record`` before executing the next effect."""

    record: ConsensusWal


@dataclass(frozen=True, slots=True)
class Send:
    to: PeerId
    message: ConsensusMessage


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``message`` to every peer (validators and observers)."""

    message: ConsensusMessage


@dataclass(frozen=True, slots=True)
class Commit:
    """``block`` is decided at ``block.header.height``; ``certificate`` proves it."""

    block: ConsensusBlock
    block_hash: bytes
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class SetTimer:
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class RequestPayload:
    """This replica proposes at (height, round): build a payload on top of ``parent_hash``."""

    height: int
    round: int
    parent_hash: bytes


@dataclass(frozen=True, slots=True)
class EvidenceFound:
    """A validator signed two conflicting votes (also kept in ``Replica.evidence``)."""

    evidence: DuplicateVoteEvidence


@dataclass(frozen=True, slots=True)
class ProposalEvidenceFound:
    """A proposer signed two different proposals for one (height, round) (also kept in
    ``Replica.proposal_evidence``). A separate effect from :class:`EvidenceFound`, whose
    evidence is always two votes."""

    evidence: DuplicateProposalEvidence


Effect: TypeAlias = (
    Persist | Send | Broadcast | Commit | SetTimer | RequestPayload | EvidenceFound | ProposalEvidenceFound
)

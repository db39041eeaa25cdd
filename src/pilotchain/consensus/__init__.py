"""BFT consensus: Tendermint (arXiv:1807.04938, Algorithm 1) as a sans-IO state machine.

Public surface::

    Replica(config=ConsensusConfig(...), suite=..., private_key=..., application=...,
            chain_tip=ChainTip(...), wal=None | ConsensusWal)
      .start(now_ms) .receive(message, sender, now_ms) .tick(now_ms)
      .propose_payload(height, round, payload, now_ms) .take_effects() -> list[Effect]
      .evidence  (DuplicateVoteEvidence, bounded)  .proposal_evidence  (DuplicateProposalEvidence, bounded)
      .drops  (refused inputs by reason)  .drops_by_peer  (by (peer, reason), bounded)

    Effects: Persist, Send, Broadcast, Commit, SetTimer, RequestPayload, EvidenceFound,
             ProposalEvidenceFound
    verify_commit_certificate(certificate, block_hash, validator_set, suite, *, chain_id, height)

Errors::

    ConsensusError
    └── InvalidCertificate

See docs/protocol/consensus.md for the rules, their names in the code and every deviation.
"""

from __future__ import annotations

from pilotchain.consensus.application import Application
from pilotchain.consensus.certificate import (
    ConsensusError,
    InvalidCertificate,
    ValidatorSetInfo,
    compute_block_hash,
    compute_validator_set_hash,
    get_proposal_signing_bytes,
    get_vote_signing_bytes,
    has_one_third,
    has_quorum,
    make_commit_certificate,
    verify_commit_certificate,
)
from pilotchain.consensus.effects import (
    Broadcast,
    Commit,
    Effect,
    EvidenceFound,
    PeerId,
    Persist,
    ProposalEvidenceFound,
    RequestPayload,
    Send,
    SetTimer,
)
from pilotchain.consensus.replica import ConsensusConfig, Replica
from pilotchain.consensus.types import (
    BLOCK_HASH_NIL,
    MESSAGE_BYTES_MAX,
    PAYLOAD_BYTES_MAX,
    ROUND_MAX,
    VALIDATORS_MAX,
    BlockRequest,
    BlockResponse,
    ChainTip,
    CommitCertificate,
    CommitSignature,
    CommittedBlock,
    ConsensusBlock,
    ConsensusHeader,
    ConsensusMessage,
    ConsensusWal,
    DuplicateProposalEvidence,
    DuplicateVoteEvidence,
    Proposal,
    SignedProposalHeader,
    Step,
    Validator,
    ValidatorSet,
    Vote,
    VoteType,
    decode_message,
)

__all__ = [
    "Application",
    "BLOCK_HASH_NIL",
    "ConsensusBlock",
    "ConsensusHeader",
    "BlockRequest",
    "BlockResponse",
    "Broadcast",
    "ChainTip",
    "Commit",
    "CommitCertificate",
    "CommitSignature",
    "CommittedBlock",
    "ConsensusConfig",
    "ConsensusError",
    "ConsensusMessage",
    "ConsensusWal",
    "DuplicateProposalEvidence",
    "DuplicateVoteEvidence",
    "Effect",
    "EvidenceFound",
    "InvalidCertificate",
    "MESSAGE_BYTES_MAX",
    "PAYLOAD_BYTES_MAX",
    "PeerId",
    "Persist",
    "Proposal",
    "ProposalEvidenceFound",
    "ROUND_MAX",
    "Replica",
    "RequestPayload",
    "Send",
    "SetTimer",
    "SignedProposalHeader",
    "Step",
    "VALIDATORS_MAX",
    "Validator",
    "ValidatorSet",
    "ValidatorSetInfo",
    "Vote",
    "VoteType",
    "compute_block_hash",
    "compute_validator_set_hash",
    "decode_message",
    "get_proposal_signing_bytes",
    "get_vote_signing_bytes",
    "has_one_third",
    "has_quorum",
    "make_commit_certificate",
    "verify_commit_certificate",
]

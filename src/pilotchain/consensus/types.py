"""Consensus data: blocks, votes, proposals, certificates, validator sets and the WAL record.

Theory of operation
-------------------
Every value here is a :class:`pilotchain.codec.Record`, so it has exactly one byte encoding and
every signature and hash is taken over canonical bytes. Wire messages are the four tagged records
of :data:`ConsensusMessage`; :func:`decode_message` is the only way bytes from a peer become a
message, and it enforces :data:`MESSAGE_BYTES_MAX` before decoding.

What is signed (see :mod:`pilotchain.consensus.certificate`):

* a vote signs ``VoteSigningBody(domain, chain_id, vote_type, height, round, block_hash)``;
* a proposal signs ``ProposalSigningBody(domain, chain_id, height, round, block_hash, valid_round)``.

The block hash is the suite hash of the encoded :class:`ConsensusHeader`; the header commits to the
payload by ``payload_hash``, so a block id never requires re-hashing a large payload.

This module is pure: no I/O, clock or randomness.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, TypeAlias

from pilotchain.codec import Record, decode

__all__ = [
    "BLOCK_HASH_NIL",
    "PROPOSAL_DOMAIN",
    "VOTE_DOMAIN",
    "CATCHUP_BLOCKS_PER_RESPONSE_MAX",
    "MESSAGE_BYTES_MAX",
    "PAYLOAD_BYTES_MAX",
    "VALIDATORS_MAX",
    "ROUND_MAX",
    "ConsensusBlock",
    "ConsensusHeader",
    "BlockRequest",
    "BlockResponse",
    "ChainTip",
    "CommitCertificate",
    "CommitSignature",
    "CommittedBlock",
    "ConsensusMessage",
    "ConsensusWal",
    "DuplicateProposalEvidence",
    "DuplicateVoteEvidence",
    "Proposal",
    "SignedProposalHeader",
    "ProposalSigningBody",
    "Step",
    "Validator",
    "ValidatorSet",
    "Vote",
    "VoteSigningBody",
    "VoteType",
    "decode_message",
]

#: A nil vote ("no block this round") votes for the empty hash.
BLOCK_HASH_NIL: Final = b""
#: Domain separation: a vote signature can never be mistaken for any other pilotchain signature.
VOTE_DOMAIN: Final = b"pilotchain/consensus/vote/v1"
PROPOSAL_DOMAIN: Final = b"pilotchain/consensus/proposal/v1"

#: Upper bound on a block payload (the node batches thousands of transactions per block).
PAYLOAD_BYTES_MAX: Final = 16 * 1024 * 1024
#: A consortium validator set is small; all-to-all votes are O(n^2) messages (see the docs).
VALIDATORS_MAX: Final = 128
#: Rounds are bounded; a height that needs this many rounds means the network is broken.
ROUND_MAX: Final = 1_000_000
#: Catch-up responses carry at most this many blocks.
CATCHUP_BLOCKS_PER_RESPONSE_MAX: Final = 32
#: A message carries at most one payload's worth of bytes plus signatures.
MESSAGE_BYTES_MAX: Final = PAYLOAD_BYTES_MAX + 512 * 1024
#: Public keys and signatures of every supported suite are far below these.
PUBLIC_KEY_BYTES_MAX: Final = 256
SIGNATURE_BYTES_MAX: Final = 160
HASH_BYTES: Final = 32
CHAIN_ID_BYTES_MAX: Final = 64


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


class Step(IntEnum):
    """step_p of Algorithm 1 (ordered: propose < prevote < precommit)."""

    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2


class Validator(Record, frozen=True):
    public_key: bytes  # SubjectPublicKeyInfo DER of the suite
    voting_power: int


class ValidatorSet(Record, frozen=True):
    """The validators of one height, in index order (a vote names its signer by index)."""

    validators: tuple[Validator, ...]


class ConsensusHeader(Record, frozen=True):
    chain_id: bytes
    height: int
    round: int  # the round in which the block was first proposed
    parent_hash: bytes
    proposer_index: int  # get_proposer_index(validators, height, round)
    timestamp_ms: int  # the proposer's clock; > parent's, not far ahead of a validator's clock
    validator_set_hash: bytes  # hash of the ValidatorSet that must certify this block
    payload_hash: bytes


class ConsensusBlock(Record, frozen=True):
    header: ConsensusHeader
    payload: bytes  # opaque to consensus; the Application validates it


class VoteSigningBody(Record, frozen=True):
    domain: bytes
    chain_id: bytes
    vote_type: int
    height: int
    round: int
    block_hash: bytes


class ProposalSigningBody(Record, frozen=True):
    domain: bytes
    chain_id: bytes
    height: int
    round: int
    block_hash: bytes
    valid_round: int


class Vote(Record, frozen=True, tag=2):
    vote_type: int
    height: int
    round: int
    block_hash: bytes  # BLOCK_HASH_NIL for a nil vote
    validator_index: int
    signature: bytes


class Proposal(Record, frozen=True, tag=1):
    """⟨PROPOSAL, h, r, v, vr⟩, signed by proposer(h, r).

    When ``valid_round >= 0`` the proposal carries ``polka``: the 2f+1 prevotes for the block at
    ``valid_round`` that justify re-proposing it (a proof of lock change; see the docs).
    """

    height: int
    round: int
    block: ConsensusBlock
    valid_round: int
    polka: tuple[Vote, ...]
    proposer_index: int
    signature: bytes


class CommitSignature(Record, frozen=True):
    validator_index: int
    signature: bytes  # a PRECOMMIT signature over the block at (height, round)


class CommitCertificate(Record, frozen=True):
    """>2/3 of the voting power precommitted ``block_hash`` at ``(height, round)``."""

    chain_id: bytes
    height: int
    round: int
    block_hash: bytes
    signatures: tuple[CommitSignature, ...]  # strictly ascending validator_index


class BlockRequest(Record, frozen=True, tag=3):
    """Catch-up: "send me the committed block at ``height`` and its certificate"."""

    height: int


class CommittedBlock(Record, frozen=True):
    block: ConsensusBlock
    certificate: CommitCertificate


class BlockResponse(Record, frozen=True, tag=4):
    """Consecutive committed blocks from the requested height on (at most
    ``CATCHUP_BLOCKS_PER_RESPONSE_MAX``, payloads together at most ``PAYLOAD_BYTES_MAX``)."""

    commits: tuple[CommittedBlock, ...]
    #: the height the responder is working on, so a far-behind requester keeps asking it
    responder_height: int


ConsensusMessage: TypeAlias = Proposal | Vote | BlockRequest | BlockResponse


class DuplicateVoteEvidence(Record, frozen=True):
    """Two validly signed, conflicting votes by one validator for one (height, round, type)."""

    vote_a: Vote
    vote_b: Vote


class SignedProposalHeader(Record, frozen=True):
    """What a proposer's signature covers, without the payload: (height, round, block hash,
    valid round) and the signature (:data:`PROPOSAL_DOMAIN`), enough to check it offline."""

    height: int
    round: int
    block_hash: bytes
    valid_round: int
    proposer_index: int
    signature: bytes


class DuplicateProposalEvidence(Record, frozen=True):
    """Two validly signed proposals by one proposer for one (height, round) naming different
    blocks (ordered by block hash). Payloads are left out: a signature covers the block's
    header hash, so evidence stays a few hundred bytes whatever the blocks' size."""

    proposal_a: SignedProposalHeader
    proposal_b: SignedProposalHeader


class ChainTip(Record, frozen=True):
    """What the replica needs from committed state to run the next height."""

    height: int  # last committed height; 0 = genesis
    block_hash: bytes  # hash of that block (the genesis hash at height 0)
    timestamp_ms: int
    validator_set: ValidatorSet  # the set that runs height + 1


class ConsensusWal(Record, frozen=True):
    """The replica's durable voting state for one height (written by a Persist effect).

    ``round`` is the highest round in which the replica signed anything; ``votes`` are its own
    votes of the last few rounds. After a restart it resumes in ``round`` at the step those votes
    imply and never signs a vote type it already signed there (nor proposes again in it).
    """

    height: int
    round: int
    locked_round: int
    locked_block_hash: bytes
    valid_round: int
    valid_block: ConsensusBlock | None
    valid_polka: tuple[Vote, ...]
    votes: tuple[Vote, ...]


def decode_message(data: bytes) -> ConsensusMessage:
    """Bytes from a peer as a message; raises :class:`pilotchain.codec.CodecError`."""
    return decode(data, ConsensusMessage, max_bytes=MESSAGE_BYTES_MAX)  # type: ignore[arg-type]

"""Signing bytes, quorum arithmetic and commit certificates (pure functions).

A commit certificate proves that validators holding more than two thirds of the voting power of
a height's validator set precommitted one block hash in one round. Anyone who knows that
validator set checks it with :func:`verify_commit_certificate`, without replaying consensus:
the precommit signing bytes bind chain id, height, round, block hash and vote type, so a
certificate cannot be replayed for another chain, height, block or vote type.

Errors::

    ConsensusError
    └── InvalidCertificate   the certificate does not prove the block (reason in the message)
"""

from __future__ import annotations

from collections.abc import Iterable

from pilotchain.codec import encode
from pilotchain.consensus.types import (
    BLOCK_HASH_NIL,
    CHAIN_ID_BYTES_MAX,
    HASH_BYTES,
    PROPOSAL_DOMAIN,
    PUBLIC_KEY_BYTES_MAX,
    SIGNATURE_BYTES_MAX,
    VALIDATORS_MAX,
    VOTE_DOMAIN,
    CommitCertificate,
    CommitSignature,
    ConsensusHeader,
    ProposalSigningBody,
    ValidatorSet,
    Vote,
    VoteSigningBody,
    VoteType,
)
from pilotchain.crypto import Suite
from pilotchain.errors import CoreError, InvariantBroken

__all__ = [
    "ConsensusError",
    "InvalidCertificate",
    "ValidatorSetInfo",
    "compute_block_hash",
    "compute_validator_set_hash",
    "get_proposal_signing_bytes",
    "get_vote_signing_bytes",
    "has_quorum",
    "has_one_third",
    "make_commit_certificate",
    "verify_commit_certificate",
]

VOTING_POWER_MAX = 2**40  # so that 3 * total power never overflows anything downstream


class ConsensusError(CoreError):
    """Base of every error this package raises."""


class InvalidCertificate(ConsensusError):
    """A commit certificate that does not prove the block it is presented for."""


def has_quorum(power: int, total_power: int) -> bool:
    """More than two thirds of the total voting power (2f+1 of 3f+1 equal validators)."""
    return 3 * power > 2 * total_power


def has_one_third(power: int, total_power: int) -> bool:
    """More than one third: at least one correct validator is included (f+1 of 3f+1)."""
    return 3 * power > total_power


def get_vote_signing_bytes(
    chain_id: bytes, vote_type: int, height: int, round_: int, block_hash: bytes
) -> bytes:
    return encode(VoteSigningBody(VOTE_DOMAIN, chain_id, vote_type, height, round_, block_hash))


def get_proposal_signing_bytes(
    chain_id: bytes, height: int, round_: int, block_hash: bytes, valid_round: int
) -> bytes:
    return encode(
        ProposalSigningBody(PROPOSAL_DOMAIN, chain_id, height, round_, block_hash, valid_round)
    )


def compute_block_hash(suite: Suite, header: ConsensusHeader) -> bytes:
    return suite.hash(encode(header))


def compute_validator_set_hash(suite: Suite, validator_set: ValidatorSet) -> bytes:
    return suite.hash(encode(validator_set))


class ValidatorSetInfo:
    """A validated :class:`ValidatorSet` with its derived values computed once."""

    __slots__ = ("validator_set", "public_keys", "powers", "total_power", "hash", "_index_of")

    def __init__(self, suite: Suite, validator_set: ValidatorSet) -> None:
        validators = validator_set.validators
        if not 1 <= len(validators) <= VALIDATORS_MAX:
            raise ConsensusError(f"a validator set has 1..{VALIDATORS_MAX} validators, got {len(validators)}")
        keys = [validator.public_key for validator in validators]
        if len(set(keys)) != len(keys):
            raise ConsensusError("a validator set lists a public key twice")
        for validator in validators:
            if not 1 <= validator.voting_power <= VOTING_POWER_MAX:
                raise ConsensusError(f"voting power must be 1..{VOTING_POWER_MAX}")
            if not 0 < len(validator.public_key) <= PUBLIC_KEY_BYTES_MAX:
                raise ConsensusError("a validator public key is empty or too long")
        self.validator_set = validator_set
        self.public_keys: tuple[bytes, ...] = tuple(keys)
        self.powers: tuple[int, ...] = tuple(validator.voting_power for validator in validators)
        self.total_power = sum(self.powers)
        self.hash = compute_validator_set_hash(suite, validator_set)
        self._index_of = {key: index for index, key in enumerate(keys)}

    def __len__(self) -> int:
        return len(self.public_keys)

    def get_index(self, public_key: bytes) -> int | None:
        return self._index_of.get(public_key)

    def get_proposer_index(self, height: int, round_: int) -> int:
        """Round-robin over validator indexes (voting power does not change the rotation)."""
        if not (height >= 1 and round_ >= 0):
            raise InvariantBroken('invariant broken: height >= 1 and round_ >= 0')
        return (height + round_) % len(self.public_keys)


def make_commit_certificate(
    chain_id: bytes, height: int, round_: int, block_hash: bytes, precommits: Iterable[Vote]
) -> CommitCertificate:
    """A certificate from already verified precommits for ``block_hash`` (any order)."""
    signatures = sorted(
        (CommitSignature(vote.validator_index, vote.signature) for vote in precommits),
        key=lambda item: item.validator_index,
    )
    return CommitCertificate(chain_id, height, round_, block_hash, tuple(signatures))


def verify_commit_certificate(
    certificate: CommitCertificate,
    block_hash: bytes,
    validator_set: ValidatorSet | ValidatorSetInfo,
    suite: Suite,
    *,
    chain_id: bytes | None = None,
    height: int | None = None,
) -> None:
    """Return when ``certificate`` proves ``block_hash``; raise :class:`InvalidCertificate`.

    ``validator_set`` is the set of the certified height. ``chain_id`` / ``height``, when given,
    must match too (the block hash already binds both, since the header contains them).
    Every listed signature must be valid, signers strictly ascending (no duplicates), and their
    voting power must exceed two thirds of the set's total.
    """
    info = validator_set if isinstance(validator_set, ValidatorSetInfo) else ValidatorSetInfo(suite, validator_set)
    if block_hash == BLOCK_HASH_NIL or len(block_hash) != HASH_BYTES:
        raise InvalidCertificate("a certificate can only prove a 32-byte block hash")
    if certificate.block_hash != block_hash:
        raise InvalidCertificate("certificate is for another block")
    if chain_id is not None and certificate.chain_id != chain_id:
        raise InvalidCertificate("certificate is for another chain")
    if height is not None and certificate.height != height:
        raise InvalidCertificate(f"certificate is for height {certificate.height}, expected {height}")
    if not 0 < len(certificate.chain_id) <= CHAIN_ID_BYTES_MAX:
        raise InvalidCertificate("certificate chain id is empty or too long")
    if certificate.height < 1 or certificate.round < 0:
        raise InvalidCertificate("certificate height/round out of range")
    if len(certificate.signatures) > len(info):
        raise InvalidCertificate("certificate lists more signatures than there are validators")
    message = get_vote_signing_bytes(
        certificate.chain_id, VoteType.PRECOMMIT, certificate.height, certificate.round, block_hash
    )
    power = 0
    previous_index = -1
    items: list[tuple[bytes, bytes, bytes]] = []
    for entry in certificate.signatures:
        if entry.validator_index <= previous_index:
            raise InvalidCertificate("certificate signers are not strictly ascending (duplicate signer?)")
        if entry.validator_index >= len(info):
            raise InvalidCertificate(f"certificate names unknown validator {entry.validator_index}")
        if not 0 < len(entry.signature) <= SIGNATURE_BYTES_MAX:
            raise InvalidCertificate("certificate signature is empty or too long")
        previous_index = entry.validator_index
        power += info.powers[entry.validator_index]
        items.append((info.public_keys[entry.validator_index], message, entry.signature))
    if not has_quorum(power, info.total_power):
        raise InvalidCertificate(f"certificate voting power {power} of {info.total_power} is not above 2/3")
    for entry, ok in zip(certificate.signatures, suite.verify_batch(items), strict=True):
        if not ok:
            raise InvalidCertificate(f"bad signature by validator {entry.validator_index}")

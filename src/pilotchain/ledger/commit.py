"""Commit records: what proves a ledger block was decided by the consortium's validators.

A consensus node stores, in the certificate slot of block h, a :class:`CommitRecord`: the
consensus header that wrapped the ledger block (its ``payload_hash`` is the hash of the canonical
ledger block bytes) and the commit certificate (>2/3 of the voting power precommitted the hash of
that header). :func:`verify_block_commit` checks all of it against a validator set, without
replaying consensus or execution — what a light client, an auditor or block sync needs.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.consensus.certificate import (
    InvalidCertificate,
    compute_block_hash,
    verify_commit_certificate,
)
from pilotchain.consensus.types import CommitCertificate, ConsensusHeader, Validator, ValidatorSet
from pilotchain.crypto import Suite
from pilotchain.ledger.block import Block
from pilotchain.ledger.genesis import ValidatorInfo

__all__ = ["CommitRecord", "InvalidCertificate", "consensus_validator_set", "verify_block_commit"]


class CommitRecord(Record, frozen=True):
    """The consensus header around a ledger block and the certificate over that header's hash."""

    header: ConsensusHeader
    certificate: CommitCertificate


def consensus_validator_set(validators: Sequence[ValidatorInfo]) -> ValidatorSet:
    """The consensus engine's view of ledger validators (order = validator index)."""
    return ValidatorSet(validators=tuple(Validator(public_key=v.public_key, voting_power=v.power) for v in validators))


def verify_block_commit(block: Block, record: bytes | CommitRecord, validators: Sequence[ValidatorInfo],
                        suite: Suite) -> CommitRecord:
    """Return the record when ``validators`` (the set in force at the block's height) committed
    ``block``; raise :class:`InvalidCertificate` saying what does not hold."""
    if isinstance(record, bytes):
        try:
            record = decode(record, CommitRecord)
        except CodecError as exc:
            raise InvalidCertificate(f"not a commit record: {exc}") from exc
    header = record.header
    if header.height != block.header.height:
        raise InvalidCertificate(f"commit record is for height {header.height}, the block is {block.header.height}")
    if header.chain_id != block.header.chain_id.encode():
        raise InvalidCertificate("commit record is for another chain")
    if header.timestamp_ms != block.header.timestamp_ms:
        raise InvalidCertificate("commit record's timestamp differs from the block's")
    if header.payload_hash != suite.hash(encode(block)):
        raise InvalidCertificate("commit record certifies other block contents")
    verify_commit_certificate(record.certificate, compute_block_hash(suite, header), consensus_validator_set(validators),
                              suite, chain_id=header.chain_id, height=header.height)
    return record

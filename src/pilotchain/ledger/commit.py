"""Commit records: what proves a ledger block was decided by the consortium's validators.

A consensus node stores, in the certificate slot of block h, a :class:`CommitRecord`: the
consensus header that wrapped the ledger block and the commit certificate (>2/3 of the voting
power precommitted the hash of that header). The consensus header's ``payload_hash`` is the
ledger block's hash — the hash of the ledger *header* (``block.block_hash``), which commits to the
transactions, receipts and state by their roots — so a commit record certifies a ledger header
on its own:

* :func:`verify_header_commit` checks a :class:`~pilotchain.ledger.block.BlockHeader` and its
  record against a validator set, without the block's transactions — what a light client or an
  audit bundle needs (a transaction is then shown in the header by its inclusion proof);
* :func:`verify_block_commit` checks a whole block: its body against its header's roots, then
  the header.

Neither replays consensus or execution. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from pilotchain.codec import CodecError, Record, decode
from pilotchain.consensus.certificate import (
    InvalidCertificate,
    compute_block_hash,
    compute_validator_set_hash,
    verify_commit_certificate,
)
from pilotchain.consensus.types import CommitCertificate, ConsensusHeader, Validator, ValidatorSet
from pilotchain.crypto import Suite
from pilotchain.ledger.block import Block, BlockHeader, block_hash, verify_block_body
from pilotchain.ledger.genesis import ValidatorInfo, validator_roster_hash

__all__ = [
    "COMMIT_RECORD_BYTES_MAX",
    "CommitRecord",
    "InvalidCertificate",
    "consensus_validator_set",
    "verify_block_commit",
    "verify_header_commit",
]

#: A commit record is a consensus header and at most one signature per validator: far below this.
COMMIT_RECORD_BYTES_MAX = 64 * 1024


class CommitRecord(Record, frozen=True):
    """The consensus header around a ledger block and the certificate over that header's hash."""

    header: ConsensusHeader
    certificate: CommitCertificate


def consensus_validator_set(validators: Sequence[ValidatorInfo]) -> ValidatorSet:
    """The consensus engine's view of ledger validators (order = validator index)."""
    return ValidatorSet(validators=tuple(Validator(public_key=v.public_key, voting_power=v.power) for v in validators))


def verify_header_commit(header: BlockHeader, record: bytes | CommitRecord, validators: Sequence[ValidatorInfo],
                         suite: Suite) -> CommitRecord:
    """Return the record when ``validators`` (the set in force at the header's height, in their
    order) committed the ledger block ``header`` describes; raise :class:`InvalidCertificate`
    saying what does not hold.

    Checked: the record is a canonical commit record of this chain, height and time; it names
    this header's hash as its payload; both headers name ``validators`` (the ledger header by its
    roster hash — names, organisations, keys and powers —, the consensus header by keys and
    powers: a set that differs from the one the block was certified with, e.g. a validator history
    that misses a change, is refused here); and validators with more than 2/3 of the power signed
    precommits for the consensus header.
    """
    if isinstance(record, bytes):
        try:
            record = decode(record, CommitRecord, max_bytes=COMMIT_RECORD_BYTES_MAX)
        except CodecError as exc:
            raise InvalidCertificate(f"not a commit record: {exc}") from exc
    consensus = record.header
    if not validators:
        raise InvalidCertificate("no validators to check the certificate against")
    if consensus.height != header.height:
        raise InvalidCertificate(f"commit record is for height {consensus.height}, the block is {header.height}")
    if consensus.chain_id != header.chain_id.encode():
        raise InvalidCertificate("commit record is for another chain")
    if consensus.timestamp_ms != header.timestamp_ms:
        raise InvalidCertificate("commit record's timestamp differs from the block's")
    if consensus.payload_hash != block_hash(suite, header):
        raise InvalidCertificate("commit record certifies another block header")
    roster = tuple(validators)
    if header.validator_set_hash != validator_roster_hash(suite.hash, roster):
        raise InvalidCertificate("the block names another validator roster than the one in force at its height")
    validator_set = consensus_validator_set(roster)
    if consensus.validator_set_hash != compute_validator_set_hash(suite, validator_set):
        raise InvalidCertificate("commit record names another validator set than the one in force at its height")
    verify_commit_certificate(record.certificate, compute_block_hash(suite, consensus), validator_set,
                              suite, chain_id=consensus.chain_id, height=consensus.height)
    return record


def verify_block_commit(block: Block, record: bytes | CommitRecord, validators: Sequence[ValidatorInfo],
                        suite: Suite) -> CommitRecord:
    """Return the record when ``validators`` (the set in force at the block's height) committed
    ``block``: its body matches its header's counts and roots, and :func:`verify_header_commit`
    holds for the header. Raise :class:`InvalidCertificate` saying what does not hold."""
    problem = verify_block_body(suite, block)
    if problem is not None:
        raise InvalidCertificate(f"the block's contents do not match its header: {problem}")
    return verify_header_commit(block.header, record, validators, suite)

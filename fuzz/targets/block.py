"""Blocks (``ledger/block.py``, ``node/chain.py: decode_block``), transaction proofs and commit
records (``ledger/commit.py``): what block sync, light clients and auditors receive."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from fuzz.harness import NOW_MS, accepted, consortium, expect, round_trips
from pilotchain.codec import CodecError, decode, encode
from pilotchain.consensus.certificate import (
    ConsensusError,
    compute_block_hash,
    compute_validator_set_hash,
    get_vote_signing_bytes,
    make_commit_certificate,
)
from pilotchain.consensus.types import ConsensusHeader, Vote, VoteType
from pilotchain.ledger.block import (
    Block,
    BlockHeader,
    Event,
    Receipt,
    TxProof,
    block_hash,
    make_tx_proof,
    receipt_root,
    tx_root,
    verify_block_body,
    verify_tx_proof,
)
from pilotchain.ledger.commit import (
    CommitRecord,
    consensus_validator_set,
    verify_block_commit,
    verify_header_commit,
)
from pilotchain.ledger.genesis import validator_roster_hash
from pilotchain.ledger.tx import TxRejected, decode_transaction
from pilotchain.node.chain import BlockInvalid, decode_block

CONTRACT = """
decode_block accepts canonical blocks only (else BlockInvalid with a message) and an accepted
block re-encodes to its bytes; verify_block_body answers None or what is wrong, never raises; a
block whose body matches its header proves each of its transactions (make_tx_proof then
verify_tx_proof is True); verify_tx_proof on any decoded (header, tx, receipt, proof) answers a
bool, never raises; verify_header_commit / verify_block_commit on any record bytes return the
record or raise InvalidCertificate (a ConsensusError) with a message. Byte 0 picks the mode.
"""

MAX_LEN = 32 * 1024


@functools.cache
def _chain() -> tuple[Block, bytes]:
    """A committed-looking block of the fuzz consortium and its commit record bytes."""
    from fuzz.targets import transaction

    members = consortium("intl")
    suite = members.suite
    txs = tuple(raw[1:] for raw in transaction.seeds() if raw[0] == 0)
    receipts = tuple(
        Receipt(tx_id=decode_transaction(suite, raw).tx_id, status="OK", message="", result=encode(index),
                events=(Event(contract="kv", name="put", data=encode({"key": "k"})),), steps_used=index)
        for index, raw in enumerate(txs)
    )
    validators = members.genesis.validators
    header = BlockHeader(
        version=1, chain_id=members.genesis.chain_id, height=2, parent_hash=bytes(32), proposer="v1",
        timestamp_ms=NOW_MS, tx_count=len(txs), tx_root=tx_root(suite, txs),
        receipt_root=receipt_root(suite, receipts), state_root=bytes(32),
        validator_set_hash=validator_roster_hash(suite.hash, validators),
    )
    block = Block(header=header, txs=txs, receipts=receipts)
    consensus = ConsensusHeader(
        chain_id=header.chain_id.encode(), height=2, round=0, parent_hash=bytes(32), proposer_index=2,
        timestamp_ms=NOW_MS, validator_set_hash=compute_validator_set_hash(suite, consensus_validator_set(validators)),
        payload_hash=block_hash(suite, header),
    )
    digest = compute_block_hash(suite, consensus)
    message = get_vote_signing_bytes(consensus.chain_id, VoteType.PRECOMMIT, 2, 0, digest)
    votes = [Vote(VoteType.PRECOMMIT, 2, 0, digest, index, key.sign(message))
             for index, key in enumerate(members.validator_keys[:3])]
    record = CommitRecord(header=consensus, certificate=make_commit_certificate(consensus.chain_id, 2, 0, digest, votes))
    return block, encode(record)


def one_input(data: bytes) -> None:
    if not data:
        return
    members = consortium("intl")
    suite = members.suite
    mode, raw = data[0] % 4, data[1:]
    if mode == 0:
        block = accepted((BlockInvalid,), decode_block, raw)
        if block is None:
            return
        round_trips(block, raw, Block)
        if verify_block_body(suite, block) is None:
            for index, tx in enumerate(block.txs):
                proof = make_tx_proof(suite, block, index)
                expect(verify_tx_proof(suite, block.header, tx, block.receipts[index], proof) or
                       block.receipts[index].tx_id != _tx_id(tx),
                       f"transaction {index} of a block whose body matches its header has no valid proof")
        accepted((ConsensusError,), verify_block_commit, block, _chain()[1], members.genesis.validators, suite)
    elif mode == 1:
        parts = accepted((CodecError,), decode, raw, tuple[BlockHeader, bytes, Receipt, TxProof])
        if parts is not None:
            result = verify_tx_proof(suite, *parts)
            expect(isinstance(result, bool), "verify_tx_proof answered something other than a bool")
    elif mode == 2:
        block, _ = _chain()
        accepted((ConsensusError,), verify_header_commit, block.header, raw, members.genesis.validators, suite)
    else:
        parts = accepted((CodecError,), decode, raw, tuple[BlockHeader, bytes])
        if parts is not None:
            accepted((ConsensusError,), verify_header_commit, parts[0], parts[1], members.genesis.validators, suite)


def _tx_id(raw: bytes) -> bytes | None:
    signed = accepted((TxRejected,), decode_transaction, consortium("intl").suite, raw)
    return None if signed is None else signed.tx_id


def seeds() -> Iterator[bytes]:
    block, record = _chain()
    suite = consortium("intl").suite
    yield b"\x00" + encode(block)
    proof = make_tx_proof(suite, block, 1)
    yield b"\x01" + encode((block.header, block.txs[1], block.receipts[1], proof))
    yield b"\x02" + record
    yield b"\x03" + encode((block.header, record))

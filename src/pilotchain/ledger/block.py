"""Blocks, receipts and the proofs a header holder can check.

Theory of operation
-------------------
A :class:`Block` is a header, the ordered signed transactions (wire bytes) and one
:class:`Receipt` per transaction. The header commits to all of it:

* ``tx_root``      — Merkle root (see :mod:`pilotchain.ledger.merkle`) over the transactions' wire bytes;
* ``receipt_root`` — Merkle root over the canonical receipt bytes, in the same order;
* ``state_root``   — the world-state commitment *after* executing this block's transactions;
* ``timestamp_ms`` — the proposer's timestamp: the only clock execution ever sees;
* ``parent_hash``  — the hash of the previous header (hash links).

The block hash is ``H(BLOCK_HASH_DOMAIN || canonical header bytes)``. The consensus commit
certificate is *not* inside the block (its signatures are over the block hash); storage keeps it
in a slot beside the block, and block sync and light clients check it against the validator set.

:func:`make_tx_proof` / :func:`verify_tx_proof` let anyone holding a header check that a
transaction and its receipt are in that block. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.crypto import Suite
from pilotchain.ledger import merkle
from pilotchain.ledger.tx import Transaction, tx_id_of_body

__all__ = [
    "BLOCK_VERSION",
    "BLOCK_HASH_DOMAIN",
    "ZERO_HASH",
    "Event",
    "Receipt",
    "BlockHeader",
    "Block",
    "TxProof",
    "block_hash",
    "tx_root",
    "receipt_root",
    "make_tx_proof",
    "verify_tx_proof",
    "verify_block_body",
    "verify_block_leaves",
]

BLOCK_VERSION = 1
BLOCK_HASH_DOMAIN = b"pilotchain/block/v1\x00"
ZERO_HASH = bytes(32)

#: Receipt status for a transaction that executed successfully; anything else is a RejectCode value.
STATUS_OK = "OK"


class Event(Record, frozen=True):
    """A typed event a contract emitted; ``data`` is the canonical encoding of its payload."""

    contract: str
    name: str
    data: bytes


class Receipt(Record, frozen=True):
    tx_id: bytes
    #: "OK" or a RejectCode value (the transaction is in the block but changed nothing)
    status: str
    message: str
    #: canonical encoding of the return value (b"" when failed)
    result: bytes
    events: tuple[Event, ...]
    steps_used: int


class BlockHeader(Record, frozen=True):
    version: int
    chain_id: str
    height: int
    parent_hash: bytes
    #: name of the validator that proposed the block
    proposer: str
    timestamp_ms: int
    tx_count: int
    tx_root: bytes
    receipt_root: bytes
    state_root: bytes
    #: hash of the validator roster (names, organisations, keys, powers) that certifies this block:
    #: :func:`~pilotchain.ledger.genesis.validator_roster_hash` (the consensus header commits to
    #: the keys and powers alone, ``compute_validator_set_hash``; both are pinned in tests/vectors)
    validator_set_hash: bytes
    #: reserved, always empty: no node sets it and a validator refuses a block where it is not
    #: (kept so the header's bytes, and every stored block hash, stay what they are)
    consensus_data: bytes = b""


class Block(Record, frozen=True):
    header: BlockHeader
    txs: tuple[bytes, ...]
    receipts: tuple[Receipt, ...]


class TxProof(Record, frozen=True):
    """Where a transaction sits in a block and the Merkle paths that show it."""

    height: int
    index: int
    tx_count: int
    tx_path: tuple[bytes, ...]
    receipt_path: tuple[bytes, ...]


def block_hash(suite: Suite, header: BlockHeader) -> bytes:
    return suite.hash(BLOCK_HASH_DOMAIN + encode(header))


def tx_root(suite: Suite, txs: Sequence[bytes]) -> bytes:
    return merkle.merkle_root(suite.hash, txs)


def receipt_root(suite: Suite, receipts: Sequence[Receipt]) -> bytes:
    return merkle.merkle_root(suite.hash, [encode(receipt) for receipt in receipts])


def verify_block_body(suite: Suite, block: Block) -> str | None:
    """None when the body matches the header's counts and roots, else what is wrong."""
    header = block.header
    if header.tx_count != len(block.txs) or len(block.receipts) != len(block.txs):
        return f"header says {header.tx_count} transactions, body has {len(block.txs)} and {len(block.receipts)} receipts"
    if tx_root(suite, block.txs) != header.tx_root:
        return "transaction root does not match the transactions"
    if receipt_root(suite, block.receipts) != header.receipt_root:
        return "receipt root does not match the receipts"
    return None


def verify_block_leaves(suite: Suite, header: BlockHeader, tx_leaves: Sequence[bytes],
                        receipt_leaves: Sequence[bytes]) -> str | None:
    """:func:`verify_block_body` over Merkle leaf hashes: what a reader checks when some of the
    block's transactions were redacted for it (their leaf hashes stand in for their bytes)."""
    if header.tx_count != len(tx_leaves) or len(receipt_leaves) != len(tx_leaves):
        return f"header says {header.tx_count} transactions, body has {len(tx_leaves)} and {len(receipt_leaves)} receipts"
    if merkle.root_from_leaf_hashes(suite.hash, tx_leaves) != header.tx_root:
        return "transaction root does not match the transactions"
    if merkle.root_from_leaf_hashes(suite.hash, receipt_leaves) != header.receipt_root:
        return "receipt root does not match the receipts"
    return None


def make_tx_proof(suite: Suite, block: Block, index: int) -> TxProof:
    return TxProof(
        height=block.header.height,
        index=index,
        tx_count=len(block.txs),
        tx_path=tuple(merkle.inclusion_proof(suite.hash, block.txs, index)),
        receipt_path=tuple(
            merkle.inclusion_proof(suite.hash, [encode(r) for r in block.receipts], index)
        ),
    )


def verify_tx_proof(suite: Suite, header: BlockHeader, tx_raw: bytes, receipt: Receipt, proof: TxProof) -> bool:
    """True when ``tx_raw`` and ``receipt`` are item ``proof.index`` of the block ``header`` describes."""
    if proof.height != header.height or proof.tx_count != header.tx_count:
        return False
    try:
        envelope = decode(tx_raw, Transaction)
    except CodecError:
        return False
    if receipt.tx_id != tx_id_of_body(suite, envelope.body):
        return False
    return merkle.verify_inclusion(
        suite.hash, header.tx_root, tx_raw, proof.index, proof.tx_count, proof.tx_path
    ) and merkle.verify_inclusion(
        suite.hash, header.receipt_root, encode(receipt), proof.index, proof.tx_count, proof.receipt_path
    )

"""The proof material a page hands to the browser, which recomputes every check (``static/verify.js``).

Pure (no I/O): SDK results in, JSON-ready documents out. Every value is the canonical bytes the
platform hashes or signs, as hex — the header's encoding, a transaction's wire bytes, a receipt's
encoding, Merkle sibling hashes, the commit record the node stored — never a summary the server
derived, so the browser checks the same bytes the SDK checked on the server. The validator set is
the one in force at the block's height (:func:`~pilotchain.apps.explorer.certify.validators_at`);
the header names it by its roster hash, which the browser checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pilotchain.codec import encode
from pilotchain.errors import InvariantBroken
from pilotchain.ledger.block import BlockHeader
from pilotchain.ledger.genesis import ValidatorInfo
from pilotchain.sdk import BlockInfo, StateValue, TxResult

__all__ = ["block_proof", "state_proof", "tx_proof", "validators_json"]


def validators_json(validators: Sequence[ValidatorInfo]) -> list[dict[str, Any]]:
    return [{"name": v.name, "org": v.org, "public_key": v.public_key.hex(), "power": v.power} for v in validators]


def tx_proof(suite: str, result: TxResult, validators: Sequence[ValidatorInfo]) -> dict[str, Any]:
    """What shows that a committed transaction and its receipt are in a certified block."""
    if result.header is None or result.proof is None or result.receipt is None or result.tx_raw is None:
        raise InvariantBroken("a committed transaction comes with its header, proof, receipt and bytes")
    return {
        "kind": "tx",
        **_certified_header(suite, result.block_hash or "", result.header, result.certificate, validators),
        "tx_id": result.tx_id,
        "tx": result.tx_raw.hex(),
        "receipt": encode(result.receipt).hex(),
        "index": result.proof.index,
        "tx_count": result.proof.tx_count,
        "tx_path": [sibling.hex() for sibling in result.proof.tx_path],
        "receipt_path": [sibling.hex() for sibling in result.proof.receipt_path],
    }


def block_proof(suite: str, block: BlockInfo, validators: Sequence[ValidatorInfo]) -> dict[str, Any]:
    """What shows that a block's transactions and receipts are the ones its certified header names:
    each leaf's bytes, or, for what this organisation may not read, the leaf hash the node served."""
    receipt_leaves = block.receipt_leaf_hashes or (b"",) * len(block.receipts)
    tx_leaves = [{"leaf_hash": tx.leaf_hash.hex()} if tx.redacted else {"raw": tx.raw.hex()} for tx in block.transactions]
    receipts = [{"leaf_hash": given.hex()} if given else {"raw": encode(receipt).hex()}
                for given, receipt in zip(receipt_leaves, block.receipts, strict=True)]
    return {
        "kind": "block",
        **_certified_header(suite, block.hash, block.header, block.certificate, validators),
        "height": block.height,
        "tx_leaves": tx_leaves,
        "receipt_leaves": receipts,
    }


def state_proof(suite: str, state: StateValue, validators: Sequence[ValidatorInfo]) -> dict[str, Any]:
    """What shows that a contract's key holds a value (or none) under a certified header's state
    root: the key's whole bucket and the sibling hashes up to the root."""
    return {
        "kind": "state",
        **_certified_header(suite, state.block_hash, state.header, state.certificate, validators),
        "contract": state.contract,
        "key": state.key.hex(),
        "value": state.value.hex() if state.value is not None else None,
        "bucket_bits": state.proof.bucket_bits,
        "bucket": state.proof.bucket,
        "entries": [[key.hex(), value.hex()] for key, value in state.proof.entries],
        "siblings": [sibling.hex() for sibling in state.proof.siblings],
    }


def _certified_header(suite: str, reported_hash: str, header: BlockHeader, certificate: bytes | None,
                      validators: Sequence[ValidatorInfo]) -> dict[str, Any]:
    """The header's bytes, the hash the node reported for it, its commit record and the validators."""
    return {
        "suite": suite,
        "block_hash": reported_hash,
        "header": encode(header).hex(),
        "certificate": certificate.hex() if certificate is not None else None,
        "validators": validators_json(validators),
    }

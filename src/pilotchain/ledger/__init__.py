"""The ledger core: what a block, a transaction, a receipt, a state commitment and a genesis are,
and how transactions execute. Pure — no storage, clock, socket or thread; the node core
(:mod:`pilotchain.node.chain`) joins it to the store.

Modules, bottom up::

    merkle.py      RFC 6962 Merkle trees over the network's hash (tx and receipt roots, proofs)
    commitment.py  the bucket-tree state commitment: state roots and state proofs (pure; the
                   store keeps its rows, any client verifies a proof with verify_state_proof)
    tx.py          signed transaction envelopes, canonical ids, stateless checks, RejectCode
    block.py       block headers, receipts, events, tx proofs, block hashes
    genesis.py     the genesis document, chain parameters, the genesis hash
    execution.py   deterministic execution over a block overlay (the contract resolver is injected)
    auth.py        signer authentication against the consortium's membership
    commit.py      commit records: a ledger block's consensus header and commit certificate
    evidence.py    evidence bundles: transactions proven committed, verified offline from genesis

The names most callers need are re-exported here.
"""

from __future__ import annotations

from pilotchain.ledger.block import (
    Block,
    BlockHeader,
    Event,
    Receipt,
    TxProof,
    block_hash,
    verify_tx_proof,
)
from pilotchain.ledger.commitment import StateProof, compute_state_root, verify_state_proof
from pilotchain.ledger.genesis import (
    ChainParams,
    Genesis,
    GenesisError,
    ValidatorInfo,
    genesis_hash,
)
from pilotchain.ledger.tx import (
    RejectCode,
    SignedTx,
    Transaction,
    TxBody,
    TxLimits,
    TxRejected,
    decode_transaction,
    sign_transaction,
    tx_id_of_body,
)

__all__ = [
    "Block",
    "BlockHeader",
    "ChainParams",
    "Event",
    "Genesis",
    "GenesisError",
    "Receipt",
    "RejectCode",
    "SignedTx",
    "StateProof",
    "Transaction",
    "TxBody",
    "TxLimits",
    "TxProof",
    "TxRejected",
    "ValidatorInfo",
    "block_hash",
    "compute_state_root",
    "decode_transaction",
    "genesis_hash",
    "sign_transaction",
    "tx_id_of_body",
    "verify_state_proof",
    "verify_tx_proof",
]

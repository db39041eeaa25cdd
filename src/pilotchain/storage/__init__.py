"""Embedded storage: append-only block segments, LMDB indexes and a verifiable world state.

Theory of operation
-------------------
:class:`LedgerStore` is the node's only durable ledger state. Blocks are opaque bytes appended
to checksummed segment files; every index (height, block hash, transaction id, certificates)
and the world state live in one LMDB environment, whose write-transaction commit is the single
atomic point of :meth:`LedgerStore.commit_block`. The world state is committed to by a bucket
tree (:mod:`pilotchain.ledger.commitment`): :meth:`LedgerStore.get_with_proof` returns a
:class:`StateProof` that any client checks with the pure :func:`verify_state_proof`, for
present and for absent keys. Hashing is the network suite's ``hash_fn``, passed in.

Driving it::

    store = LedgerStore.open(path, suite.hash, bucket_bits=16)   # recovers on open
    prepared = store.prepare_state({b"k": b"v", b"gone": None})   # pure: prepared.root
    store.commit_block(store.height + 1, block_hash, block_bytes, tx_ids, prepared, cert)
    value, proof = store.get_with_proof(b"k")
    assert verify_state_proof(store.state_root, b"k", value, proof, suite.hash)

Error tree::

    StorageError
    ├── StorageCorrupted   on-disk contradiction of a committed invariant: halt the node
    ├── StorageFull        ENOSPC or LMDB map full; the store stayed at its previous height
    ├── StoreLocked        the directory is open in another LedgerStore
    ├── StoreClosed        closed, or a crash was injected (tests): reopen
    ├── LimitExceeded      an input over a configured bound (also a ValueError)
    └── InvalidCommit      wrong height, stale prepared state, duplicate ids (also a ValueError)

See docs/storage.md for the on-disk format, recovery rules and measured costs.
"""

from __future__ import annotations

from pilotchain.ledger.commitment import (
    BucketTree,
    StateProof,
    bucket_of,
    compute_state_root,
    verify_state_proof,
)
from pilotchain.storage.errors import (
    CrashInjected,
    InvalidCommit,
    LimitExceeded,
    StorageCorrupted,
    StorageError,
    StorageFull,
    StoreClosed,
    StoreLocked,
)
from pilotchain.storage.store import (
    CRASH_POINTS,
    LedgerStore,
    PreparedState,
    StateSnapshot,
    StorageLimits,
)

__all__ = [
    "LedgerStore",
    "PreparedState",
    "StorageLimits",
    "StateSnapshot",
    "StateProof",
    "BucketTree",
    "bucket_of",
    "compute_state_root",
    "verify_state_proof",
    "CRASH_POINTS",
    "StorageError",
    "StorageCorrupted",
    "StorageFull",
    "StoreLocked",
    "StoreClosed",
    "LimitExceeded",
    "InvalidCommit",
    "CrashInjected",
]

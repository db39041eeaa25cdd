"""LedgerStore: blocks in segment files, indexes and world state in LMDB, one atomic commit.

Theory of operation
-------------------
A data directory holds::

    <path>/LOCK            flock'ed while a LedgerStore has the directory open
    <path>/blocks/*.seg    framed block records (see :mod:`pilotchain.storage.segments`)
    <path>/lmdb/           one LMDB environment with the named databases below

    meta     b"format", b"bucket_bits", b"hash_probe", b"height", b"state_root", b"last_hash"
    blocks   height (8 bytes BE)            -> BlockLocation (segment, offset, length, hash)
    hashes   block hash                     -> height (8 bytes BE)
    txs      tx id                          -> height (8 bytes BE) || index in block (4 bytes BE)
             (blocks up to meta b"txs_merged"; later ones are in block_txs, see below)
    block_txs height (8 bytes BE)           -> the block's tx ids, canonical list
    certs    height (8 bytes BE)            -> commit certificate bytes
    state    bucket (4 bytes BE)            -> the bucket's entries: encode(sorted [(key, value)])
    leaves   bucket (4 bytes BE)            -> 32-byte bucket hash (as of meta b"leaves_at")
    leaf_log height (8 bytes BE)            -> that block's changed buckets: (bucket u32, hash)*

Commit protocol (:meth:`LedgerStore.commit_block`):

1. validate everything (height, prepared base, bounds, duplicate hash / tx ids): a caller error
   raises here and nothing has been written;
2. append the framed block record to the current segment and fsync it;
3. one LMDB write transaction: state puts/deletes, changed tree nodes, the block / hash / tx /
   certificate indexes, and the new ``height``, ``state_root``, ``last_hash``. LMDB is opened
   with ``sync=True``, so its commit is durable and is *the* atomic point;
4. only then update the in-memory tree and the cached height / root / hash.

State is stored one row per bucket, and the row is exactly the bytes the bucket's leaf hash
commits to (``leaf_hash = hash(0x00 || row)``, see :mod:`pilotchain.ledger.commitment`). A write
reads its bucket's row (one B-tree lookup and one C-level decode), changes the entry and writes the
row back; a read decodes the row and bisects it. One row per key (``bucket || key -> value``, the
layout of ``pilotchain-storage/1``) made every write walk its bucket's rows with a Python cursor:
a cost that grew with the number of keys per bucket, i.e. with the chain (~12 keys per bucket at
800,000 keys, 2^16 buckets). A ``/1`` store is converted in place, in one transaction, when opened.

The tx-id index is written in batches. A block's ids go to ``block_txs`` under its height (a
sequential key: one appended page) and into an in-memory map; every ``TX_INDEX_MERGE_BLOCKS``
blocks (or ``TX_INDEX_MERGE_TXS`` ids) the map is merged, sorted, into ``txs`` in that block's
transaction and ``txs_merged`` moves up. Random 32-byte ids inserted one block at a time dirtied a
B-tree page each, and the commit wrote and synced all of them: commit time per transaction grew
from ~1 to ~12 µs between 2 and 90 thousand transactions. Lookups read the map, then ``txs``;
opening rebuilds the map from ``block_txs`` above ``txs_merged``.

Bucket hashes are persisted the same way: each block appends its changed buckets to
``leaf_log``; every ``LEAF_CHECKPOINT_BLOCKS`` blocks the buckets changed since the last
checkpoint are written into ``leaves`` (sorted) and ``leaves_at`` moves up. Rewriting ~2,000
random rows of a 65,536-row table every block dirtied most of its pages each commit; opening now
loads the checkpoint and replays the log above it.

If step 2 or 3 fails (ENOSPC, LMDB map full, I/O error) the segment is truncated back and the
store stays at its previous height, usable. If the process dies anywhere, the next open
recovers: LMDB's committed height is authoritative; segment bytes after the last indexed record
are cut off (a torn record, or a whole record whose transaction never committed); the last
record's frame and CRC are checked; the persisted tree is checked node by node and its root must
equal the persisted state root. Any contradiction raises :class:`StorageCorrupted` (halt).

:meth:`LedgerStore.prepare_state` is pure with respect to the store: it reads committed state
and computes the new root and the changed tree nodes, changing nothing. A prepared state is
bound to the store and height it was computed on; committing it anywhere else raises.

Thread safety: every public method takes one re-entrant lock, so a proof server thread may read
while the node commits; reads always see committed state.

Test hook: ``store._crash_at = "<point>"`` (one of :data:`CRASH_POINTS`) makes the next commit
raise :class:`CrashInjected` at that point without any clean-up, like a process death; the store
is then unusable and must be closed and reopened. ``store._fault_error = OSError(...)`` raises
that error at the point instead, exercising the normal error path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import threading
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import lmdb
import msgspec

from pilotchain.codec import CodecError, decode, encode
from pilotchain.errors import InvariantBroken
from pilotchain.ledger.commitment import (
    DIGEST_BYTES,
    BucketTree,
    HashFn,
    StateProof,
    bucket_of,
    check_bucket_bits,
    leaf_hash_of_row,
)
from pilotchain.ledger.execution import STATE_KEY_BYTES_MAX
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
from pilotchain.storage.segments import BlockLocation, SegmentLog

__all__ = ["LedgerStore", "PreparedState", "StorageLimits", "CRASH_POINTS", "FORMAT"]

FORMAT = b"pilotchain-storage/2"
#: the layout with one LMDB row per state key; converted to ``FORMAT`` when opened
FORMAT_V1 = b"pilotchain-storage/1"
#: Named points of the commit path where the test hook can inject a crash.
CRASH_POINTS = (
    "before_append",
    "mid_append",
    "after_append",
    "after_segment_fsync",
    "before_lmdb_commit",
    "after_lmdb_commit",
)
_HASH_PROBE_INPUT = b"pilotchain/storage/hash-probe"
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_U32 = struct.Struct(">I")
_TX = struct.Struct(">QI")
#: state keys whose bucket row key is remembered (a few blocks' writes)
STATE_KEY_MEMO_MAX = 65_536
#: the tx-id index is merged into its B-tree after this many blocks or ids, whichever comes first
TX_INDEX_MERGE_BLOCKS = 64
TX_INDEX_MERGE_TXS = 100_000
#: bucket hashes are checkpointed into ``leaves`` every this many blocks (per-block log between)
LEAF_CHECKPOINT_BLOCKS = 64
_LEAF_ROW = struct.Struct(">I32s")
#: a bucket row as stored (the canonical encoding of its sorted entries; checked by audits)
_decode_bucket = msgspec.msgpack.Decoder(list[tuple[bytes, bytes]]).decode
_DATABASES = ("meta", "blocks", "hashes", "txs", "certs", "state", "leaves", "block_txs", "leaf_log")


@dataclass(frozen=True, slots=True)
class StorageLimits:
    """Bounds on everything a caller can hand the store. Exceeding one raises LimitExceeded."""

    block_bytes_max: int = 64 * 1024 * 1024
    #: every key execution can write (ledger.execution.STATE_KEY_BYTES_MAX, namespace included)
    key_bytes_max: int = STATE_KEY_BYTES_MAX
    value_bytes_max: int = 1024 * 1024
    certificate_bytes_max: int = 1024 * 1024
    tx_id_bytes_max: int = 64
    txs_per_block_max: int = 100_000
    writes_per_block_max: int = 1_000_000
    segment_bytes_max: int = 1024 * 1024 * 1024
    map_size_bytes: int = 64 * 1024 * 1024 * 1024

    def __post_init__(self) -> None:
        # state keys live inside their bucket's row, so LMDB's 511-byte key limit does not bind them
        if not (self.key_bytes_max > 0):
            raise InvariantBroken('invariant broken: self.key_bytes_max > 0')
        if not (0 < self.block_bytes_max < 2**31):
            raise InvariantBroken('invariant broken: 0 < self.block_bytes_max < 2**31')
        if not (self.segment_bytes_max > 0):
            raise InvariantBroken('invariant broken: self.segment_bytes_max > 0')
        if not (self.map_size_bytes > 0):
            raise InvariantBroken('invariant broken: self.map_size_bytes > 0')
        for name in ("value_bytes_max", "certificate_bytes_max", "tx_id_bytes_max"):
            if not (getattr(self, name) > 0):
                raise InvariantBroken(f"invariant broken: unexpected name {name!r}")
        if not (self.txs_per_block_max > 0 and self.writes_per_block_max > 0):
            raise InvariantBroken('invariant broken: self.txs_per_block_max > 0 and self.writes_per_block_max > 0')


@dataclass(frozen=True, slots=True)
class PreparedState:
    """The result of :meth:`LedgerStore.prepare_state`: a new root, not yet committed."""

    #: the state root after the writes
    root: bytes
    base_height: int
    base_root: bytes
    #: (bucket row key, the bucket's new encoded entries or None when it becomes empty), sorted
    writes: tuple[tuple[bytes, bytes | None], ...]
    #: tree node index -> new hash (changed leaves and their ancestors)
    node_changes: Mapping[int, bytes]
    #: bucket -> new hash, for the buckets whose hash changes (the leaf level of node_changes)
    leaf_changes: Mapping[int, bytes]
    store_token: object


class StateSnapshot:
    """Committed state as of one read transaction; valid inside :meth:`LedgerStore.snapshot`."""

    __slots__ = ("_store", "_txn")

    def __init__(self, store: LedgerStore, txn: Any) -> None:
        self._store: LedgerStore | None = store
        self._txn = txn

    def get(self, key: bytes) -> bytes | None:
        store = self._store
        if store is None:
            raise StorageError("this state snapshot is closed; read inside LedgerStore.snapshot()")
        with _translate_errors("reading state"):
            row_key = store._state_key(key)
            return store._lookup(self._txn.get(row_key), row_key, key)

    def close(self) -> None:
        # drop the read transaction too: py-lmdb keeps its reader slot while the Transaction
        # object lives, and a closed snapshot that something still references (a contract's
        # view, a membership cache) would otherwise hold one of the environment's 126 slots
        # until the garbage collector ran — enough leaked, and every reader fails (READERS_FULL)
        self._store = None
        self._txn = None


def _find(entries: Sequence[tuple[bytes, bytes]], key: bytes) -> bytes | None:
    """``key``'s value in a bucket's sorted entries (None: absent)."""
    index = bisect_left(entries, (key,))
    return entries[index][1] if index < len(entries) and entries[index][0] == key else None


def _height_key(height: int) -> bytes:
    return _U64.pack(height)


def _translate_errors(action: str) -> contextlib.AbstractContextManager[None]:
    return _ErrorTranslator(action)


class _ErrorTranslator:
    """Turn lmdb / OS errors into StorageError subclasses at the boundary."""

    def __init__(self, action: str) -> None:
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, StorageError | CrashInjected):
            return
        if isinstance(exc, lmdb.MapFullError):
            raise StorageFull(f"{self.action}: LMDB map is full (raise map_size_bytes)") from exc
        if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc):
            raise StorageFull(f"{self.action}: no space left on device") from exc
        if isinstance(exc, lmdb.Error | OSError):
            raise StorageError(f"{self.action}: {exc}") from exc


class LedgerStore:
    """The node's durable ledger: blocks, certificates, indexes and committed world state."""

    def __init__(self, *_: Any, **__: Any) -> None:
        raise TypeError("use LedgerStore.open(path, hash_fn, ...)")

    # -- opening and recovery ----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        hash_fn: HashFn,
        *,
        bucket_bits: int = 16,
        limits: StorageLimits | None = None,
        verify_state: bool = False,
        maintenance_phase: tuple[int, int] = (0, 0),
        durable: bool = True,
    ) -> LedgerStore:
        """Open (creating if empty) the store at ``path`` and recover it to its last commit.

        ``bucket_bits`` is fixed when the store is created; reopening with another value raises.
        ``verify_state=True`` also recomputes every bucket hash from the state (O(state)).
        ``maintenance_phase`` = (tx-index merge, bucket-hash checkpoint): at which heights modulo
        their periods this store does the two heavy commits (:meth:`spread_phases`); it changes
        nothing that is stored or replicated, only when the work happens.
        ``durable=False`` skips every fsync (LMDB ``sync``/``metasync`` and the segment files): for
        the simulator, whose simulated crashes end a node object, not the machine, so nothing it
        wrote is lost. Never for a real node: a power cut could then lose committed blocks.
        """
        check_bucket_bits(bucket_bits)
        self = object.__new__(cls)
        self._init_fields(Path(path), hash_fn, bucket_bits, limits or StorageLimits(), durable)
        self._merge_phase, self._checkpoint_phase = maintenance_phase
        try:
            self._open_files()
            self._recover(verify_state)
        except BaseException:
            self._close_handles()
            raise
        return self

    def _init_fields(
        self, path: Path, hash_fn: HashFn, bucket_bits: int, limits: StorageLimits, durable: bool = True
    ) -> None:
        self.path = path
        self._durable = durable
        self.limits = limits
        self._hash_fn = hash_fn
        self._bucket_bits = bucket_bits
        self._lock = threading.RLock()
        self._state_keys: dict[bytes, bytes] = {}
        #: ids of transactions in blocks above ``_txs_merged`` -> (height, index)
        self._recent_txs: dict[bytes, tuple[int, int]] = {}
        self._txs_merged = -1
        #: heights (modulo the periods) of this store's tx-index merges and bucket-hash checkpoints
        self._merge_phase = 0
        self._checkpoint_phase = 0
        #: buckets changed since the ``leaves`` checkpoint at ``_leaves_at`` -> their hash
        self._leaves_pending: dict[int, bytes] = {}
        self._leaves_at = -1
        self._token = object()
        self._lock_fd: int | None = None
        self._env: Any = None
        self._dbs: dict[str, Any] = {}
        self._segments = SegmentLog(path / "blocks", limits.segment_bytes_max, durable=durable)
        self._tree = BucketTree(bucket_bits, hash_fn)
        self._height = -1
        self._state_root = self._tree.root
        self._last_hash: bytes | None = None
        self._closed_reason: str | None = None
        self._crash_at: str | None = None
        self._fault_error: OSError | None = None

    def _open_files(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StoreLocked(f"{self.path} is already open by another LedgerStore") from exc
        with _translate_errors(f"opening LMDB in {self.path}"):
            self._env = lmdb.open(
                str(self.path / "lmdb"),
                map_size=self.limits.map_size_bytes,
                subdir=True,
                max_dbs=len(_DATABASES),
                sync=self._durable,
                metasync=self._durable,
                readahead=False,
                max_readers=126,
            )
            for name in _DATABASES:
                self._dbs[name] = self._env.open_db(name.encode())

    def _recover(self, verify_state: bool) -> None:
        hash_probe = self._hash_fn(_HASH_PROBE_INPUT)
        if not (len(hash_probe) == DIGEST_BYTES):
            raise InvariantBroken("hash_fn must return 32-byte digests")
        meta = self._dbs["meta"]
        with _translate_errors("reading store metadata"), self._env.begin(db=meta) as txn:
            stored_format = txn.get(b"format")
        if stored_format is None:
            self._refuse_orphan_segments()
            self._initialise(hash_probe)
        elif stored_format == FORMAT_V1:
            self._convert_v1_state()
        elif stored_format != FORMAT:
            raise StorageError(f"{self.path}: unknown storage format {stored_format!r}")
        with _translate_errors("reading store metadata"), self._env.begin() as txn:
            self._check_configuration(txn, hash_probe)
            self._height = _I64.unpack(self._meta(txn, b"height", 8))[0]
            self._state_root = self._meta(txn, b"state_root", DIGEST_BYTES)
            self._last_hash = self._meta(txn, b"last_hash", None) or None
            last = self._check_block_index(txn)
            self._pending_meta: dict[bytes, bytes] = {}
            self._load_recent_txs(txn)
            leaf_rows = self._load_leaves(txn)
            state_empty = txn.stat(self._dbs["state"])["entries"] == 0
        if self._pending_meta:
            with _translate_errors("upgrading store metadata"), self._env.begin(write=True, db=meta) as txn:
                for key, value in self._pending_meta.items():
                    txn.put(key, value)
        if leaf_rows == 0 and self._leaves_at >= 0 and not state_empty:
            self._rebuild_leaves_from_state()
        with _translate_errors(f"recovering segment files in {self.path}"):
            self._segments.recover(last, self._height)
        self._check_root()
        if verify_state:
            self.verify_integrity(blocks=False, state=True)

    def _refuse_orphan_segments(self) -> None:
        """A new index over non-empty block files means the index was lost: never truncate."""
        directory = self._segments.directory
        sizes = [
            (directory / f"{n:08d}.seg").stat().st_size for n in self._segments.existing_segments()
        ]
        if any(sizes):
            raise StorageCorrupted(
                f"{directory} holds {sum(sizes)} bytes of blocks but {self.path / 'lmdb'} has no "
                "index: refusing to initialise (recovery would discard the blocks)"
            )

    def _convert_v1_state(self) -> None:
        """Rewrite a ``pilotchain-storage/1`` state (one row per key) as one row per bucket, and
        the format, in one write transaction: a crash leaves the old layout, converted again.
        Streams bucket by bucket (a bucket's row sorts before its old per-key rows), so memory
        holds one bucket, not the state."""
        with _translate_errors("converting state to one row per bucket"), self._env.begin(write=True) as txn:
            cursor = txn.cursor(db=self._dbs["state"])
            more = cursor.first()
            while more:
                lmdb_key = cursor.key()
                prefix = lmdb_key[:4]
                entries: list[tuple[bytes, bytes]] = []
                while lmdb_key[:4] == prefix and lmdb_key:
                    if len(lmdb_key) < 5:
                        raise StorageCorrupted(f"state row {lmdb_key.hex()} of a /1 store is malformed")
                    entries.append((lmdb_key[4:], cursor.value()))
                    cursor.delete()  # moves to the next row
                    lmdb_key = cursor.key()  # b"" past the last row
                cursor.put(prefix, encode(entries))
                more = cursor.next()
            txn.put(b"format", FORMAT, db=self._dbs["meta"])

    def _initialise(self, hash_probe: bytes) -> None:
        with _translate_errors("initialising store"), self._env.begin(write=True) as txn:
            meta = self._dbs["meta"]
            txn.put(b"format", FORMAT, db=meta)
            txn.put(b"bucket_bits", _U32.pack(self._bucket_bits), db=meta)
            txn.put(b"hash_probe", hash_probe, db=meta)
            txn.put(b"height", _I64.pack(-1), db=meta)
            txn.put(b"state_root", self._tree.root, db=meta)
            txn.put(b"last_hash", b"", db=meta)
            txn.put(b"txs_merged", _I64.pack(-1), db=meta)
            txn.put(b"leaves_at", _I64.pack(-1), db=meta)

    def _meta(self, txn: Any, key: bytes, size: int | None) -> bytes:
        value: bytes | None = txn.get(key, db=self._dbs["meta"])
        if value is None or (size is not None and len(value) != size):
            raise StorageCorrupted(
                f"{self.path}: metadata {key.decode()!r} is missing or malformed"
            )
        return value

    def _check_configuration(self, txn: Any, hash_probe: bytes) -> None:
        stored_bits = _U32.unpack(self._meta(txn, b"bucket_bits", 4))[0]
        if stored_bits != self._bucket_bits:
            raise StorageError(
                f"{self.path} was created with bucket_bits={stored_bits}, "
                f"opened with {self._bucket_bits} (fixed at genesis)"
            )
        if self._meta(txn, b"hash_probe", None) != hash_probe:
            raise StorageError(f"{self.path} was created with a different hash function (suite)")

    def _check_block_index(self, txn: Any) -> BlockLocation | None:
        """The location of the last block, after checking the index agrees with ``height``."""
        cursor = txn.cursor(db=self._dbs["blocks"])
        if not cursor.last():
            if self._height != -1 or self._last_hash is not None:
                raise StorageCorrupted(f"meta says height {self._height} but no block is indexed")
            return None
        indexed_height = _U64.unpack(cursor.key())[0]
        if indexed_height != self._height:
            raise StorageCorrupted(
                f"meta says height {self._height} but the last indexed block is {indexed_height}"
            )
        location = self._decode_location(cursor.value(), indexed_height)
        if location.block_hash != self._last_hash:
            raise StorageCorrupted(f"last_hash does not match block {indexed_height}'s hash")
        return location

    def _load_recent_txs(self, txn: Any) -> None:
        merged_raw = txn.get(b"txs_merged", db=self._dbs["meta"])
        if merged_raw is None:
            # a store written before the batched index: every id is in txs (recorded at open)
            merged_raw = _I64.pack(self._height)
            self._pending_meta[b"txs_merged"] = merged_raw
        if len(merged_raw) != 8:
            raise StorageCorrupted(f"{self.path}: store metadata has a malformed txs_merged entry")
        merged = _I64.unpack(merged_raw)[0]
        if not -1 <= merged <= self._height:
            raise StorageCorrupted(f"tx index merged up to block {merged}, but the store is at {self._height}")
        recent: dict[bytes, tuple[int, int]] = {}
        block_txs = self._dbs["block_txs"]
        for height in range(merged + 1, self._height + 1):
            raw = txn.get(_height_key(height), db=block_txs)
            if raw is None:
                raise StorageCorrupted(f"the tx ids of block {height} are missing (index merged to {merged})")
            try:
                tx_ids = decode(raw, list[bytes])
            except CodecError as exc:
                raise StorageCorrupted(f"the tx ids of block {height} are malformed: {exc}") from exc
            for index, tx_id in enumerate(tx_ids):
                recent[tx_id] = (height, index)
        self._txs_merged = merged
        self._recent_txs = recent

    def _load_leaves(self, txn: Any) -> int:
        """Load the bucket-hash checkpoint, replay the per-block log above it and recompute the
        internal nodes; returns the number of checkpoint rows."""
        rows = 0
        changes: dict[int, bytes] = {}
        bucket_count = 1 << self._bucket_bits
        for key, value in txn.cursor(db=self._dbs["leaves"]):
            bucket = _U32.unpack(key)[0] if len(key) == 4 else bucket_count
            if bucket >= bucket_count or len(value) != DIGEST_BYTES:
                raise StorageCorrupted(f"bucket hash row {key.hex()} is malformed")
            changes[self._tree.leaf_index(bucket)] = value
            rows += 1
        leaves_at_raw = txn.get(b"leaves_at", db=self._dbs["meta"])
        if leaves_at_raw is None:
            # a store written before the log: every bucket hash is in leaves (recorded at open)
            leaves_at_raw = _I64.pack(self._height)
            self._pending_meta[b"leaves_at"] = leaves_at_raw
        if len(leaves_at_raw) != 8:
            raise StorageCorrupted(f"{self.path}: store metadata has a malformed leaves_at entry")
        leaves_at = _I64.unpack(leaves_at_raw)[0]
        if not -1 <= leaves_at <= self._height:
            raise StorageCorrupted(f"bucket hashes checkpointed at block {leaves_at}, but the store is at {self._height}")
        pending: dict[int, bytes] = {}
        for height in range(leaves_at + 1, self._height + 1):
            raw = txn.get(_height_key(height), db=self._dbs["leaf_log"])
            if raw is None or len(raw) % _LEAF_ROW.size:
                raise StorageCorrupted(f"the bucket-hash log of block {height} is missing or malformed")
            for bucket, digest in _LEAF_ROW.iter_unpack(raw):
                if bucket >= bucket_count:
                    raise StorageCorrupted(f"the bucket-hash log of block {height} names bucket {bucket}")
                pending[bucket] = digest
        for bucket, digest in pending.items():
            changes[self._tree.leaf_index(bucket)] = digest
        self._leaves_at = leaves_at
        self._leaves_pending = pending
        self._tree.apply(changes)
        self._tree.rebuild_internal()
        return rows

    def _rebuild_leaves_from_state(self) -> None:
        """Recompute every bucket hash from the state and persist them (rows missing)."""
        tree = BucketTree(self._bucket_bits, self._hash_fn)
        with _translate_errors("rebuilding bucket hashes"), self._env.begin() as txn:
            leaves = {b: leaf_hash_of_row(row, self._hash_fn) for b, row in self._iter_buckets(txn)}
        changes = tree.compute_update(leaves)
        with _translate_errors("rebuilding bucket hashes"), self._env.begin(write=True) as txn:
            txn.cursor(db=self._dbs["leaves"]).putmulti(
                [(_U32.pack(b), h) for b, h in sorted(leaves.items())]
            )
            txn.drop(self._dbs["leaf_log"], delete=False)
            txn.put(b"leaves_at", _I64.pack(self._height), db=self._dbs["meta"])
        tree.apply(changes)
        self._tree = tree
        self._leaves_at = self._height
        self._leaves_pending = {}

    def _check_tree(self) -> None:
        bad = self._tree.first_inconsistent_node()
        if bad is not None:
            raise StorageCorrupted(f"state tree node {bad} does not hash its children")
        self._check_root()

    def _check_root(self) -> None:
        if self._tree.root != self._state_root:
            raise StorageCorrupted(
                f"persisted state root {self._state_root.hex()} != tree root "
                f"{self._tree.root.hex()} at height {self._height}"
            )

    # -- properties ---------------------------------------------------------------------------

    @property
    def height(self) -> int:
        """Height of the last committed block; -1 when empty (genesis is height 0)."""
        return self._height

    @property
    def state_root(self) -> bytes:
        """Root of the committed state."""
        return self._state_root

    @property
    def last_block_hash(self) -> bytes | None:
        """Hash of the last committed block; None when empty."""
        return self._last_hash

    @property
    def bucket_bits(self) -> int:
        return self._bucket_bits

    # -- state ------------------------------------------------------------------------------

    def _state_key(self, key: bytes) -> bytes:
        """The LMDB key of the row holding ``key``: its bucket, 4 bytes big-endian."""
        known = self._state_keys.get(key)
        if known is not None:
            return known
        if not isinstance(key, bytes):
            raise TypeError(f"state keys are bytes, got {type(key).__name__}")
        if len(key) > self.limits.key_bytes_max:
            raise LimitExceeded(f"key is {len(key)} bytes, limit {self.limits.key_bytes_max}")
        row_key = _U32.pack(bucket_of(key, self._bucket_bits, self._hash_fn))
        # a block's execution reads a key and prepare_state writes it: hash it once (the memo is
        # cleared when it grows past a block's worth of keys)
        if len(self._state_keys) >= STATE_KEY_MEMO_MAX:
            self._state_keys.clear()
        self._state_keys[key] = row_key
        return row_key

    def _entries(self, row: bytes | None, row_key: bytes) -> list[tuple[bytes, bytes]]:
        """A bucket row's entries (sorted by key); [] for an absent row."""
        if row is None:
            return []
        try:
            entries: list[tuple[bytes, bytes]] = _decode_bucket(row)
        except msgspec.DecodeError as exc:
            raise StorageCorrupted(f"state bucket {row_key.hex()} is malformed: {exc}") from exc
        return entries

    def _lookup(self, row: bytes | None, row_key: bytes, key: bytes) -> bytes | None:
        """``key``'s value in a bucket row (None: absent)."""
        return None if row is None else _find(self._entries(row, row_key), key)

    def _iter_buckets(self, txn: Any) -> Iterator[tuple[int, bytes]]:
        """Every non-empty bucket and its row (the leaf hash's preimage), in bucket order."""
        for row_key, row in txn.cursor(db=self._dbs["state"]):
            if len(row_key) != 4 or not row:
                raise StorageCorrupted(f"state row {row_key.hex()} is malformed")
            yield _U32.unpack(row_key)[0], row

    def prepare_state(self, writes: Mapping[bytes, bytes | None]) -> PreparedState:
        """Compute the root of committed state + ``writes`` (None deletes). Changes nothing."""
        with self._lock:
            self._check_open()
            if len(writes) > self.limits.writes_per_block_max:
                raise LimitExceeded(
                    f"{len(writes)} writes, limit {self.limits.writes_per_block_max}"
                )
            value_max = self.limits.value_bytes_max
            by_bucket: dict[bytes, dict[bytes, bytes | None]] = {}
            for key, value in writes.items():
                row_key = self._state_key(key)
                if value is not None:
                    if not isinstance(value, bytes):
                        raise TypeError(f"state values are bytes, got {type(value).__name__}")
                    if len(value) > value_max:
                        raise LimitExceeded(f"value is {len(value)} bytes, limit {value_max}")
                by_bucket.setdefault(row_key, {})[key] = value
            leaves: dict[int, bytes] = {}
            lmdb_writes: list[tuple[bytes, bytes | None]] = []
            hash_fn = self._hash_fn
            with _translate_errors("reading state"), self._env.begin(db=self._dbs["state"]) as txn:
                for row_key, bucket_writes in by_bucket.items():
                    # the row is sorted: bisect each written key into it (no dict, no re-sort)
                    entries = self._entries(txn.get(row_key), row_key)
                    for key, value in bucket_writes.items():
                        index = bisect_left(entries, (key,))
                        found = index < len(entries) and entries[index][0] == key
                        if value is None:
                            if found:
                                del entries[index]
                        elif found:
                            entries[index] = (key, value)
                        else:
                            entries.insert(index, (key, value))
                    row = encode(entries) if entries else None
                    leaves[_U32.unpack(row_key)[0]] = leaf_hash_of_row(row, hash_fn)
                    lmdb_writes.append((row_key, row))
            changes = self._tree.compute_update(leaves)
            leaf_base = 1 << self._bucket_bits
            # the leaf level of the changes, from the ~writes buckets (not the ~10x more nodes)
            changed_leaves = {bucket: digest for bucket, digest in leaves.items() if leaf_base + bucket in changes}
            lmdb_writes.sort(key=lambda item: item[0])
            return PreparedState(
                root=changes.get(1, self._tree.root),
                base_height=self._height,
                base_root=self._state_root,
                writes=tuple(lmdb_writes),
                node_changes=MappingProxyType(changes),
                leaf_changes=MappingProxyType(changed_leaves),
                store_token=self._token,
            )

    def get(self, key: bytes) -> bytes | None:
        """The committed value of ``key``; None when absent."""
        with self._lock:
            self._check_open()
            row_key = self._state_key(key)
            with _translate_errors("reading state"), self._env.begin() as txn:
                return self._lookup(txn.get(row_key, db=self._dbs["state"]), row_key, key)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[StateSnapshot]:
        """A reader of committed state through one LMDB read transaction (what executing a block
        uses: a transaction per read was a fifth of the cost of a ``kv`` call)."""
        with self._lock:
            self._check_open()
            with _translate_errors("reading state"), self._env.begin(db=self._dbs["state"]) as txn:
                snapshot = StateSnapshot(self, txn)
                try:
                    yield snapshot
                finally:
                    snapshot.close()

    def get_with_proof(self, key: bytes) -> tuple[bytes | None, StateProof]:
        """The committed value of ``key`` (None: absent) and a proof against :attr:`state_root`."""
        with self._lock:
            self._check_open()
            row_key = self._state_key(key)
            bucket = _U32.unpack(row_key)[0]
            with _translate_errors("reading state"), self._env.begin(db=self._dbs["state"]) as txn:
                row: bytes | None = txn.get(row_key)
            entries = self._entries(row, row_key)
            value = _find(entries, key)
            proof = StateProof(
                bucket_bits=self._bucket_bits,
                bucket=bucket,
                entries=tuple(entries),
                siblings=self._tree.siblings(bucket),
            )
            return value, proof

    def iter_state(self) -> Iterator[tuple[bytes, bytes]]:
        """Every committed (key, value), in bucket order, from one consistent snapshot."""
        self._check_open()
        with _translate_errors("reading state"), self._env.begin() as txn:
            for bucket, row in self._iter_buckets(txn):
                yield from self._entries(row, _U32.pack(bucket))

    # -- blocks -----------------------------------------------------------------------------

    def commit_block(
        self,
        height: int,
        block_hash: bytes,
        block_bytes: bytes,
        tx_ids: Sequence[bytes],
        prepared: PreparedState,
        certificate: bytes | None = None,
    ) -> None:
        """Durably append block ``height`` and apply ``prepared``; all or nothing.

        Raises InvalidCommit / LimitExceeded (nothing written) for caller errors, StorageFull /
        StorageError (store still at its previous height) for operating errors.
        """
        with self._lock:
            self._check_open()
            self._check_commit(height, block_hash, block_bytes, tx_ids, prepared, certificate)
            with _translate_errors(f"appending block {height}"):
                location = self._segments.append(height, block_bytes, self._fault)
            location = BlockLocation(location.segment, location.offset, location.length, block_hash)
            try:
                with _translate_errors(f"committing block {height}"):
                    self._write_index(height, block_hash, tx_ids, prepared, certificate, location)
            except CrashInjected:
                raise
            except BaseException:
                self._undo_append()
                raise
            # committed: bring memory in line before anything else can interrupt
            if self._leaf_checkpoint_due(height):
                self._leaves_pending = {}
                self._leaves_at = height
            else:
                self._leaves_pending.update(prepared.leaf_changes)
            if self._merge_due(height, len(tx_ids)):
                self._recent_txs = {}
                self._txs_merged = height
            else:
                for index, tx_id in enumerate(tx_ids):
                    self._recent_txs[tx_id] = (height, index)
            self._segments.confirm_append()
            self._tree.apply(prepared.node_changes)
            self._height = height
            self._state_root = prepared.root
            self._last_hash = block_hash
            if not (self._tree.root == prepared.root):
                raise InvariantBroken('invariant broken: self._tree.root == prepared.root')
            self._fault("after_lmdb_commit")

    def _check_commit(
        self,
        height: int,
        block_hash: bytes,
        block_bytes: bytes,
        tx_ids: Sequence[bytes],
        prepared: PreparedState,
        certificate: bytes | None,
    ) -> None:
        limits = self.limits
        if height != self._height + 1:
            raise InvalidCommit(f"block height {height}, expected {self._height + 1}")
        if prepared.store_token is not self._token:
            raise InvalidCommit("prepared state was computed by another store (or before reopen)")
        if prepared.base_height != self._height or prepared.base_root != self._state_root:
            raise InvalidCommit(
                f"stale prepared state: based on height {prepared.base_height}, "
                f"store is at {self._height}"
            )
        if not isinstance(block_hash, bytes) or len(block_hash) != DIGEST_BYTES:
            raise InvalidCommit(f"block hash must be {DIGEST_BYTES} bytes")
        if not isinstance(block_bytes, bytes):
            raise TypeError(f"block bytes must be bytes, got {type(block_bytes).__name__}")
        if len(block_bytes) > limits.block_bytes_max:
            raise LimitExceeded(
                f"block is {len(block_bytes)} bytes, limit {limits.block_bytes_max}"
            )
        if certificate is not None:
            self._check_certificate(certificate)
        if len(tx_ids) > limits.txs_per_block_max:
            raise LimitExceeded(f"{len(tx_ids)} transactions, limit {limits.txs_per_block_max}")
        for tx_id in tx_ids:
            if not isinstance(tx_id, bytes) or not 0 < len(tx_id) <= limits.tx_id_bytes_max:
                raise LimitExceeded(f"tx ids are 1..{limits.tx_id_bytes_max} bytes")
        if len(set(tx_ids)) != len(tx_ids):
            raise InvalidCommit(f"block {height} lists a transaction id twice")
        with _translate_errors("checking indexes"), self._env.begin() as txn:
            if txn.get(block_hash, db=self._dbs["hashes"]) is not None:
                raise InvalidCommit(f"block hash {block_hash.hex()} is already stored")
            txs = self._dbs["txs"]
            recent = self._recent_txs
            for tx_id in tx_ids:
                if tx_id in recent or txn.get(tx_id, db=txs) is not None:
                    raise InvalidCommit(f"transaction {tx_id.hex()} is already in a block")

    @staticmethod
    def spread_phases(slot: int, slots: int) -> tuple[int, int]:
        """Maintenance phases for the ``slot``-th of ``slots`` stores that commit the same heights
        (a network's validators): their tx-index merges and bucket-hash checkpoints fall on
        different heights, so no two stores stall a commit at once and a BFT quorum can go on
        without the one that is busy. Merges and checkpoints interleave too."""
        slots = max(1, slots)
        merge = slot % slots * TX_INDEX_MERGE_BLOCKS // slots
        checkpoint = (slot % slots * 2 + 1) * LEAF_CHECKPOINT_BLOCKS // (2 * slots)
        return merge, checkpoint

    def _leaf_checkpoint_due(self, height: int) -> bool:
        return (height - self._leaves_at >= LEAF_CHECKPOINT_BLOCKS
                or (height + 1 + self._checkpoint_phase) % LEAF_CHECKPOINT_BLOCKS == 0)

    def _merge_due(self, height: int, new_txs: int) -> bool:
        """Whether committing ``height`` (with ``new_txs`` ids) merges the recent ids into ``txs``."""
        return (height - self._txs_merged >= TX_INDEX_MERGE_BLOCKS
                or (height + 1 + self._merge_phase) % TX_INDEX_MERGE_BLOCKS == 0
                or len(self._recent_txs) + new_txs >= TX_INDEX_MERGE_TXS)

    def _check_certificate(self, certificate: bytes) -> None:
        if not isinstance(certificate, bytes):
            raise TypeError(f"certificates are bytes, got {type(certificate).__name__}")
        if len(certificate) > self.limits.certificate_bytes_max:
            raise LimitExceeded(
                f"certificate is {len(certificate)} bytes, "
                f"limit {self.limits.certificate_bytes_max}"
            )

    def _write_index(
        self,
        height: int,
        block_hash: bytes,
        tx_ids: Sequence[bytes],
        prepared: PreparedState,
        certificate: bytes | None,
        location: BlockLocation,
    ) -> None:
        dbs = self._dbs
        height_key = _height_key(height)
        with self._env.begin(write=True) as txn:
            state = txn.cursor(db=dbs["state"])
            for state_key, value in prepared.writes:
                if value is None:
                    if state.set_key(state_key):
                        state.delete()
                else:
                    state.put(state_key, value)
            changed = prepared.leaf_changes
            if self._leaf_checkpoint_due(height):
                checkpoint = {**self._leaves_pending, **changed}
                txn.cursor(db=dbs["leaves"]).putmulti(
                    [(_U32.pack(bucket), digest) for bucket, digest in sorted(checkpoint.items())]
                )
                for logged_height in range(self._leaves_at + 1, height):
                    txn.delete(_height_key(logged_height), db=dbs["leaf_log"])
                txn.put(b"leaves_at", _I64.pack(height), db=dbs["meta"])
            else:
                stored = txn.put(height_key, b"".join(_LEAF_ROW.pack(b, d) for b, d in sorted(changed.items())),
                                 db=dbs["leaf_log"], overwrite=False)
                if not (stored):
                    raise InvariantBroken(f"bucket-hash log of block {height} is already stored above the committed height")
            stored = txn.put(height_key, encode(location), db=dbs["blocks"], overwrite=False)
            if not (stored):
                raise InvariantBroken(f"block {height} is already indexed above the committed height")
            stored = txn.put(block_hash, height_key, db=dbs["hashes"], overwrite=False)
            if not (stored):
                raise InvariantBroken("duplicate block hash passed the pre-check")
            block_txs = dbs["block_txs"]
            if self._merge_due(height, len(tx_ids)):
                rows = sorted([*self._recent_txs.items(), *((tx_id, (height, i)) for i, tx_id in enumerate(tx_ids))])
                _, added = txn.cursor(db=dbs["txs"]).putmulti(
                    [(tx_id, _TX.pack(at_height, index)) for tx_id, (at_height, index) in rows],
                    overwrite=False,
                )
                if not (added == len(rows)):
                    raise InvariantBroken("a merged tx id was already indexed (passed the pre-check)")
                # the per-block id lists below this height are in the B-tree now: drop them
                for merged_height in range(self._txs_merged + 1, height):
                    txn.delete(_height_key(merged_height), db=block_txs)
                txn.put(b"txs_merged", _I64.pack(height), db=dbs["meta"])
            else:
                stored = txn.put(height_key, encode(list(tx_ids)), db=block_txs, overwrite=False)
                if not (stored):
                    raise InvariantBroken(f"tx ids of block {height} are already stored above the committed height")
            if certificate is not None:
                txn.put(height_key, certificate, db=dbs["certs"])
            meta = dbs["meta"]
            txn.put(b"height", _I64.pack(height), db=meta)
            txn.put(b"state_root", prepared.root, db=meta)
            txn.put(b"last_hash", block_hash, db=meta)
            self._fault("before_lmdb_commit")

    def _undo_append(self) -> None:
        try:
            self._segments.undo_append()
        except OSError as exc:
            self._closed_reason = f"could not truncate an uncommitted block record: {exc}"
            raise StorageError(self._closed_reason + "; reopen the store to recover") from exc

    def _decode_location(self, raw: bytes, height: int) -> BlockLocation:
        try:
            return decode(raw, BlockLocation)
        except CodecError as exc:
            raise StorageCorrupted(f"index entry of block {height} is malformed: {exc}") from exc

    def _location(self, txn: Any, height: int) -> BlockLocation | None:
        raw = txn.get(_height_key(height), db=self._dbs["blocks"])
        return None if raw is None else self._decode_location(raw, height)

    def get_block(self, height: int) -> bytes | None:
        """The bytes of block ``height`` (CRC-checked), or None when not stored."""
        with self._lock:
            self._check_open()
            if not isinstance(height, int) or not 0 <= height <= self._height:
                return None
            with _translate_errors(f"reading block {height}"):
                with self._env.begin() as txn:
                    location = self._location(txn, height)
                if location is None:
                    raise StorageCorrupted(f"block {height} <= height {self._height} not indexed")
                return self._segments.read(location, height)

    def get_block_hash(self, height: int) -> bytes | None:
        """The hash of block ``height``, or None when not stored."""
        with self._lock:
            self._check_open()
            if not isinstance(height, int) or not 0 <= height <= self._height:
                return None
            with _translate_errors("reading block index"), self._env.begin() as txn:
                location = self._location(txn, height)
            return None if location is None else location.block_hash

    def get_height_by_hash(self, block_hash: bytes) -> int | None:
        with self._lock:
            self._check_open()
            with _translate_errors("reading block index"), self._env.begin() as txn:
                raw = txn.get(block_hash, db=self._dbs["hashes"])
            return None if raw is None else int(_U64.unpack(raw)[0])

    def get_block_by_hash(self, block_hash: bytes) -> bytes | None:
        """The bytes of the block whose hash is ``block_hash``, or None."""
        with self._lock:
            height = self.get_height_by_hash(block_hash)
            return None if height is None else self.get_block(height)

    def iter_blocks(self, start: int, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(height, block bytes)`` for stored heights in ``[start, stop)``, in order."""
        stop = self._height + 1 if stop is None else min(stop, self._height + 1)
        for height in range(max(start, 0), stop):
            block = self.get_block(height)
            if not (block is not None):
                raise InvariantBroken('invariant broken: block is not None')
            yield height, block

    def locate_tx(self, tx_id: bytes) -> tuple[int, int] | None:
        """``(block height, index in block)`` of a committed transaction, or None."""
        with self._lock:
            self._check_open()
            recent = self._recent_txs.get(tx_id)
            if recent is not None:
                return recent
            with _translate_errors("reading tx index"), self._env.begin() as txn:
                raw = txn.get(tx_id, db=self._dbs["txs"])
            if raw is None:
                return None
            height, index = _TX.unpack(raw)
            return int(height), int(index)

    def locate_txs(self, tx_ids: Sequence[bytes]) -> list[tuple[int, int] | None]:
        """:meth:`locate_tx` for many, from one read transaction (one answer each, in order)."""
        with self._lock:
            self._check_open()
            recent = self._recent_txs
            with _translate_errors("reading tx index"), self._env.begin(db=self._dbs["txs"]) as txn:
                found = [recent.get(tx_id) or txn.get(tx_id) for tx_id in tx_ids]
            out: list[tuple[int, int] | None] = []
            for raw in found:
                if raw is None or isinstance(raw, tuple):
                    out.append(raw)
                else:
                    height, index = _TX.unpack(raw)
                    out.append((int(height), int(index)))
            return out

    def get_certificate(self, height: int) -> bytes | None:
        """The commit certificate stored for block ``height``, or None."""
        with self._lock:
            self._check_open()
            if not isinstance(height, int) or not 0 <= height <= self._height:
                return None
            with _translate_errors("reading certificates"), self._env.begin() as txn:
                certificate: bytes | None = txn.get(_height_key(height), db=self._dbs["certs"])
            return certificate

    def set_certificate(self, height: int, certificate: bytes) -> None:
        """Store (or replace) the commit certificate of committed block ``height``; durable."""
        with self._lock:
            self._check_open()
            if not 0 <= height <= self._height:
                raise InvalidCommit(f"no block {height} (height is {self._height})")
            self._check_certificate(certificate)
            action = f"storing certificate {height}"
            with _translate_errors(action), self._env.begin(write=True) as txn:
                txn.put(_height_key(height), certificate, db=self._dbs["certs"])

    # -- integrity --------------------------------------------------------------------------

    def verify_integrity(self, *, blocks: bool = True, state: bool = True) -> None:
        """Full audit (O(ledger)): every block's CRC and index, every bucket hash, the root.

        Raises StorageCorrupted on the first contradiction.
        """
        with self._lock:
            self._check_open()
            if blocks:
                for height, _ in self.iter_blocks(0):
                    block_hash = self.get_block_hash(height)
                    if not (block_hash is not None):
                        raise InvariantBroken('invariant broken: block_hash is not None')
                    if self.get_height_by_hash(block_hash) != height:
                        raise StorageCorrupted(f"hash index of block {height} is wrong")
            if state:
                expected = BucketTree(self._bucket_bits, self._hash_fn)
                with _translate_errors("auditing state"), self._env.begin() as txn:
                    leaves = {b: self._audited_leaf(b, row) for b, row in self._iter_buckets(txn)}
                expected.apply(expected.compute_update(leaves))
                if expected.root != self._state_root:
                    raise StorageCorrupted("state entries do not hash to the committed root")
            self._check_tree()

    def _audited_leaf(self, bucket: int, row: bytes) -> bytes:
        """A bucket row's leaf hash after checking the row is what the store would write: sorted,
        unique keys, each key in this bucket, canonical bytes."""
        entries = self._entries(row, _U32.pack(bucket))
        keys = [key for key, _ in entries]
        if encode(entries) != row or sorted(set(keys)) != keys or not keys:
            raise StorageCorrupted(f"state bucket {bucket} is not a sorted, canonical entry list")
        if any(bucket_of(key, self._bucket_bits, self._hash_fn) != bucket for key in keys):
            raise StorageCorrupted(f"state bucket {bucket} holds a key of another bucket")
        return leaf_hash_of_row(row, self._hash_fn)

    # -- lifecycle --------------------------------------------------------------------------

    def _fault(self, point: str) -> None:
        """The test hook: a no-op unless ``_crash_at == point`` (then it fires once)."""
        if point not in CRASH_POINTS:
            raise InvariantBroken(f"invariant broken: unexpected point {point!r}")
        if self._crash_at != point:
            return
        self._crash_at = None
        if self._fault_error is not None:
            if not (point != "after_lmdb_commit"):
                raise InvariantBroken("an error after the commit point would lie")
            error, self._fault_error = self._fault_error, None
            raise error
        self._closed_reason = f"crash injected at {point}; reopen the store"
        raise CrashInjected(point)

    def _check_open(self) -> None:
        if self._closed_reason is not None:
            raise StoreClosed(f"{self.path}: {self._closed_reason}")

    def close(self) -> None:
        """Release files, LMDB and the directory lock. Idempotent; does no clean-up writes."""
        with self._lock:
            if self._closed_reason is None:
                self._closed_reason = "closed"
            self._close_handles()

    def _close_handles(self) -> None:
        with contextlib.suppress(OSError):
            self._segments.close()
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

"""LedgerStore API, bounds, errors and recovery of in-process failures."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import lmdb
import pytest

from pilotchain.codec import decode, encode
from pilotchain.ledger.commitment import bucket_of
from pilotchain.storage import (
    InvalidCommit,
    LedgerStore,
    LimitExceeded,
    StorageCorrupted,
    StorageError,
    StorageFull,
    StorageLimits,
    StoreClosed,
    StoreLocked,
    compute_state_root,
    verify_state_proof,
)

from .conftest import SMALL_LIMITS, open_store
from .workload import BUCKET_BITS, block_for, check_against_workload, commit_next, hash_fn


def commit(store: LedgerStore, writes: dict[bytes, bytes | None], **kwargs: object) -> None:
    height = store.height + 1
    block = b"block %d" % height
    store.commit_block(
        height,
        hash_fn(block),
        block,
        kwargs.pop("tx_ids", []),
        store.prepare_state(writes),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def test_empty_store(store: LedgerStore) -> None:
    assert store.height == -1
    assert store.last_block_hash is None
    assert store.state_root == compute_state_root([], BUCKET_BITS, hash_fn)
    assert store.get(b"k") is None
    assert store.get_block(0) is None
    assert list(store.iter_blocks(0)) == []
    value, proof = store.get_with_proof(b"k")
    assert value is None
    assert verify_state_proof(store.state_root, b"k", None, proof, hash_fn)


def test_commit_read_reopen(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for _ in range(60):  # 64 KiB segments: several roll-overs
        commit_next(store)
    check_against_workload(store)
    assert [h for h, _ in store.iter_blocks(10, 13)] == [10, 11, 12]
    assert len(list((tmp_path / "blocks").glob("*.seg"))) > 1
    assert store.get_certificate(1) is None
    store.set_certificate(3, b"replaced certificate")
    root = store.state_root
    store.close()
    with pytest.raises(StoreClosed):
        store.get(b"k")
    store = open_store(tmp_path, verify_state=True)
    assert store.height == 59 and store.state_root == root
    assert store.get_certificate(3) == b"replaced certificate"
    store.set_certificate(3, b"cert 3")  # restore for the workload check
    check_against_workload(store)
    store.verify_integrity()
    commit_next(store)
    check_against_workload(store)
    store.close()


def test_prepare_is_pure_and_stale_prepared_is_refused(store: LedgerStore) -> None:
    root = store.state_root
    first = store.prepare_state({b"a": b"1"})
    second = store.prepare_state({b"b": b"2"})
    assert store.state_root == root and store.get(b"a") is None
    assert first.root != root and second.root != first.root
    assert store.prepare_state({}).root == root
    store.commit_block(0, hash_fn(b"0"), b"0", [], first)
    with pytest.raises(InvalidCommit, match="stale"):
        store.commit_block(1, hash_fn(b"1"), b"1", [], second)
    with pytest.raises(InvalidCommit, match="height"):
        store.commit_block(5, hash_fn(b"1"), b"1", [], store.prepare_state({}))
    assert store.height == 0 and store.get(b"a") == b"1"


def test_deletes_and_empty_values(store: LedgerStore) -> None:
    commit(store, {b"a": b"", b"b": b"2", b"c": b"3"})
    commit(store, {b"b": None, b"never": None})
    assert store.get(b"a") == b"" and store.get(b"b") is None
    assert dict(store.iter_state()) == {b"a": b"", b"c": b"3"}
    assert store.state_root == compute_state_root([(b"a", b""), (b"c", b"3")], BUCKET_BITS, hash_fn)
    for key in (b"a", b"b", b"c", b"never"):
        value, proof = store.get_with_proof(key)
        assert verify_state_proof(store.state_root, key, value, proof, hash_fn)


def test_bounds_and_caller_errors_leave_store_unchanged(tmp_path: Path) -> None:
    limits = StorageLimits(
        block_bytes_max=100,
        key_bytes_max=8,
        value_bytes_max=8,
        certificate_bytes_max=8,
        tx_id_bytes_max=4,
        txs_per_block_max=2,
        writes_per_block_max=3,
        map_size_bytes=64 * 1024 * 1024,
    )
    store = open_store(tmp_path, limits=limits)
    commit(store, {b"k": b"v"}, tx_ids=[b"t1"])
    with pytest.raises(LimitExceeded):
        store.prepare_state({b"123456789": b"v"})
    with pytest.raises(LimitExceeded):
        store.prepare_state({b"k": b"123456789"})
    with pytest.raises(LimitExceeded):
        store.prepare_state({b"a": b"", b"b": b"", b"c": b"", b"d": b""})
    with pytest.raises(TypeError):
        store.prepare_state({"k": b"v"})  # type: ignore[dict-item]
    prepared = store.prepare_state({b"x": b"y"})
    cases: list[tuple[type[Exception], dict[str, object]]] = [
        (LimitExceeded, {"block_bytes": b"x" * 101}),
        (LimitExceeded, {"tx_ids": [b"a", b"b", b"c"]}),
        (LimitExceeded, {"tx_ids": [b"12345"]}),
        (LimitExceeded, {"tx_ids": [b""]}),
        (LimitExceeded, {"certificate": b"123456789"}),
        (InvalidCommit, {"tx_ids": [b"t2", b"t2"]}),
        (InvalidCommit, {"tx_ids": [b"t1"]}),  # already in block 0
        (InvalidCommit, {"block_hash": hash_fn(b"block 0")}),  # already stored
        (InvalidCommit, {"block_hash": b"short"}),
    ]
    for error, override in cases:
        args: dict[str, object] = {
            "height": 1,
            "block_hash": hash_fn(b"b1"),
            "block_bytes": b"b1",
            "tx_ids": [],
            "prepared": prepared,
            "certificate": None,
        }
        args.update(override)
        with pytest.raises(error):
            store.commit_block(**args)  # type: ignore[arg-type]
        assert store.height == 0 and store.get(b"x") is None
    store.commit_block(1, hash_fn(b"b1"), b"b1", [b"t2"], prepared)
    assert store.locate_tx(b"t2") == (1, 0) and store.get(b"x") == b"y"
    with pytest.raises(InvalidCommit):
        store.set_certificate(2, b"c")
    with pytest.raises(LimitExceeded):
        store.set_certificate(1, b"123456789")
    store.close()


def test_reopen_checks_configuration_and_lock(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    commit_next(store)
    with pytest.raises(StoreLocked):
        open_store(tmp_path)
    store.close()
    with pytest.raises(StorageError, match="bucket_bits"):
        open_store(tmp_path, bucket_bits=BUCKET_BITS + 1)
    with pytest.raises(StorageError, match="hash function"):
        LedgerStore.open(
            tmp_path, lambda b: hash_fn(b"other" + b), bucket_bits=BUCKET_BITS, limits=SMALL_LIMITS
        )
    store = open_store(tmp_path)  # the failed opens released the lock
    assert store.height == 0
    store.close()


@pytest.mark.parametrize(
    "point",
    ["before_append", "mid_append", "after_append", "after_segment_fsync", "before_lmdb_commit"],
)
def test_disk_full_leaves_previous_height_and_store_usable(tmp_path: Path, point: str) -> None:
    store = open_store(tmp_path)
    for _ in range(3):
        commit_next(store)
    segment_bytes = sum(p.stat().st_size for p in (tmp_path / "blocks").glob("*.seg"))
    store._crash_at = point
    store._fault_error = OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(StorageFull):
        commit_next(store)
    assert store.height == 2
    assert sum(p.stat().st_size for p in (tmp_path / "blocks").glob("*.seg")) == segment_bytes
    check_against_workload(store)
    commit_next(store)  # space is back
    check_against_workload(store)
    store.close()
    store = open_store(tmp_path)
    check_against_workload(store)
    store.close()


def test_lmdb_map_full_is_storage_full(tmp_path: Path) -> None:
    limits = StorageLimits(map_size_bytes=1024 * 1024, value_bytes_max=64 * 1024)
    store = open_store(tmp_path, limits=limits)
    height = -1
    with pytest.raises(StorageFull, match="map"):
        for height in range(100):  # noqa: B007
            commit(store, {b"k%d" % height: b"v" * 60_000})
    assert store.height == height - 1
    assert store.get(b"k%d" % height) is None
    root = store.state_root
    store.close()
    bigger = StorageLimits(map_size_bytes=64 * 1024 * 1024, value_bytes_max=64 * 1024)
    store = open_store(tmp_path, limits=bigger)
    assert store.height == height - 1 and store.state_root == root
    commit(store, {b"more": b"v" * 60_000})
    store.verify_integrity()
    store.close()


def _tamper_lmdb(path: Path, db: bytes, key: bytes, value: bytes | None) -> None:
    env = lmdb.open(str(path / "lmdb"), max_dbs=16, subdir=True)
    handle = env.open_db(db)
    with env.begin(write=True, db=handle) as txn:
        if value is None:
            txn.drop(handle, delete=False)
        else:
            txn.put(key, value)
    env.close()


def test_missing_tree_is_rebuilt_from_state(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for _ in range(5):
        commit_next(store)
    store.close()
    _tamper_lmdb(tmp_path, b"leaves", b"", None)
    store = open_store(tmp_path)
    check_against_workload(store)
    store.close()


def test_corrupted_tree_or_root_is_detected(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for _ in range(5):
        commit_next(store)
    store.close()
    _tamper_lmdb(tmp_path, b"leaves", (3).to_bytes(4, "big"), b"\x00" * 32)
    with pytest.raises(StorageCorrupted, match="state root"):
        open_store(tmp_path)
    _tamper_lmdb(tmp_path, b"leaves", b"\x00\x00\x01", b"\x00" * 32)
    with pytest.raises(StorageCorrupted, match="malformed"):
        open_store(tmp_path)
    _tamper_lmdb(tmp_path, b"leaves", b"", None)  # drop it: rebuilt, consistent again
    open_store(tmp_path).close()
    _tamper_lmdb(tmp_path, b"meta", b"state_root", b"\x01" * 32)
    with pytest.raises(StorageCorrupted, match="state root"):
        open_store(tmp_path)
    _tamper_lmdb(
        tmp_path,
        b"meta",
        b"state_root",
        compute_state_root([(k, v) for k, v in _replay(4).items()], BUCKET_BITS, hash_fn),
    )
    state = _replay(4)
    key = min(state)
    row_key = bucket_of(key, BUCKET_BITS, hash_fn).to_bytes(4, "big")
    row = _read_lmdb(tmp_path, b"state", row_key)
    entries = decode(row, list[tuple[bytes, bytes]])
    # a well-formed bucket row whose value changed: only the full audit sees it (root mismatch)
    changed = [(k, v + b"!" if k == key else v) for k, v in entries]
    _tamper_lmdb(tmp_path, b"state", row_key, encode(changed))
    store = open_store(tmp_path)
    with pytest.raises(StorageCorrupted, match="state entries"):
        store.verify_integrity()
    store.close()
    with pytest.raises(StorageCorrupted):
        open_store(tmp_path, verify_state=True)
    # rows the store would never write: unsorted, a key of another bucket, not an entry list
    stranger = next(k for k in (b"k%d" % i for i in range(1000))
                    if bucket_of(k, BUCKET_BITS, hash_fn) != int.from_bytes(row_key, "big"))
    for bad, message in (
        (encode(entries[::-1]) if len(entries) > 1 else encode(entries * 2), "sorted"),
        (encode(sorted([*entries, (stranger, b"v")])), "another bucket"),
        (b"planted", "malformed"),
    ):
        _tamper_lmdb(tmp_path, b"state", row_key, bad)
        store = open_store(tmp_path)
        with pytest.raises(StorageCorrupted, match=message):
            store.verify_integrity()
        store.close()
    _tamper_lmdb(tmp_path, b"state", row_key, row)
    open_store(tmp_path, verify_state=True).close()


def _read_lmdb(path: Path, db: bytes, key: bytes) -> bytes:
    env = lmdb.open(str(path / "lmdb"), max_dbs=16, subdir=True, readonly=True)
    with env.begin(db=env.open_db(db, create=False)) as txn:
        value = txn.get(key)
    env.close()
    assert value is not None
    return bytes(value)


def _replay(height: int) -> dict[bytes, bytes]:
    from .workload import expected_state

    return expected_state(height)


def test_block_bit_rot_is_detected_on_read(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for _ in range(3):
        commit_next(store)
    store.close()
    segment = tmp_path / "blocks" / "00000000.seg"
    data = bytearray(segment.read_bytes())
    data[30] ^= 0x01  # inside block 0's payload
    segment.write_bytes(bytes(data))
    store = open_store(tmp_path)  # only the last record is checked on open
    with pytest.raises(StorageCorrupted, match="CRC"):
        store.get_block(0)
    assert store.get_block(2) == block_for(2)[1]
    with pytest.raises(StorageCorrupted):
        store.verify_integrity()
    store.close()


def test_lost_index_never_discards_blocks(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for _ in range(3):
        commit_next(store)
    store.close()
    shutil.rmtree(tmp_path / "lmdb")
    segment_bytes = (tmp_path / "blocks" / "00000000.seg").stat().st_size
    with pytest.raises(StorageCorrupted, match="no index"):
        open_store(tmp_path)
    assert (tmp_path / "blocks" / "00000000.seg").stat().st_size == segment_bytes


def test_snapshot_reads_what_get_reads_and_closes(store: LedgerStore) -> None:
    for _ in range(5):
        commit_next(store)
    keys = [key for key, _ in store.iter_state()][:50] + [b"absent key"]
    with store.snapshot() as snapshot:
        assert [snapshot.get(key) for key in keys] == [store.get(key) for key in keys]
        assert snapshot.get(b"absent key") is None
    with pytest.raises(StorageError, match="snapshot is closed"):
        snapshot.get(keys[0])
    with pytest.raises(LimitExceeded), store.snapshot() as snapshot:
        snapshot.get(b"k" * (store.limits.key_bytes_max + 1))


def test_tx_index_merges_in_batches_and_survives_reopen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids live in the per-block log until a merge puts them, sorted, into the B-tree; lookups,
    duplicate refusals and a reopen between merges see both."""
    import lmdb as lmdb_module

    from pilotchain.storage import store as ledger_module

    monkeypatch.setattr(ledger_module, "TX_INDEX_MERGE_BLOCKS", 4)
    monkeypatch.setattr(ledger_module, "TX_INDEX_MERGE_TXS", 10_000)
    store = open_store(tmp_path)
    for _ in range(6):  # merge at height 3; heights 4, 5 recent
        commit_next(store)
    assert store._txs_merged == 3 and {h for h, _ in store._recent_txs.values()} <= {4, 5}
    check_against_workload(store)
    _, _, ids_of_5, _ = block_for(5)
    _, _, ids_of_2, _ = block_for(2)
    assert ids_of_2 and ids_of_5, "the workload's blocks 2 and 5 carry transactions"
    duplicate = [ids_of_2[0], ids_of_5[0]]  # one merged into the B-tree, one still in the log
    store.close()

    store = open_store(tmp_path)  # the recent ids come back from the per-block log
    assert store._txs_merged == 3
    check_against_workload(store)
    height = store.height + 1
    block_hash, block_bytes, _, writes = block_for(height)
    for tx_id in duplicate:
        assert store.locate_tx(tx_id) is not None
        with pytest.raises(InvalidCommit, match="already in a block"):
            store.commit_block(height, block_hash, block_bytes, [tx_id], store.prepare_state(writes))
    for _ in range(5):
        commit_next(store)
    check_against_workload(store)
    merged = store._txs_merged
    store.close()

    # a malformed entry is corruption
    env = lmdb_module.open(str(tmp_path / "lmdb"), subdir=True, max_dbs=16)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        saved = txn.get(b"txs_merged", db=meta)
        txn.put(b"txs_merged", b"\x01", db=meta)
    env.close()
    with pytest.raises(StorageCorrupted, match="txs_merged"):
        open_store(tmp_path)
    env = lmdb_module.open(str(tmp_path / "lmdb"), subdir=True, max_dbs=16)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"txs_merged", saved, db=meta)
    env.close()

    # a store from before the batched index has no txs_merged (every id is in the B-tree): it is
    # read as merged up to its height, and that is recorded
    store = open_store(tmp_path)
    assert store._txs_merged == merged
    while store._txs_merged != store.height:
        commit_next(store)
    store.close()
    env = lmdb_module.open(str(tmp_path / "lmdb"), subdir=True, max_dbs=16)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        assert txn.delete(b"txs_merged", db=meta)
    env.close()
    store = open_store(tmp_path)
    assert store._txs_merged == store.height and store._recent_txs == {}
    check_against_workload(store)
    store.close()
    store = open_store(tmp_path)  # the upgrade was written down
    assert store._txs_merged == store.height
    store.close()


def test_bucket_hashes_are_logged_per_block_and_checkpointed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between checkpoints a reopen replays the per-block bucket-hash log; a damaged log row is
    corruption; a store from before the log is read as checkpointed at its height."""
    from pilotchain.storage import store as ledger_module

    monkeypatch.setattr(ledger_module, "LEAF_CHECKPOINT_BLOCKS", 4)
    store = open_store(tmp_path)
    for _ in range(6):  # checkpoint at height 3; heights 4, 5 in the log
        commit_next(store)
    assert store._leaves_at == 3 and store._leaves_pending
    root = store.state_root
    store.close()
    store = open_store(tmp_path)
    assert store._leaves_at == 3 and store.state_root == root
    check_against_workload(store)
    store.close()

    _tamper_lmdb(tmp_path, b"leaf_log", (5).to_bytes(8, "big"), b"\x00" * 35)  # not a whole row
    with pytest.raises(StorageCorrupted, match="log of block 5"):
        open_store(tmp_path)
    _tamper_lmdb(tmp_path, b"leaf_log", (5).to_bytes(8, "big"), b"\x00\x00\x00\x01" + b"\x07" * 32)
    with pytest.raises(StorageCorrupted, match="state root"):  # a wrong hash: the root disagrees
        open_store(tmp_path)
    _tamper_lmdb(tmp_path, b"leaves", b"", None)  # checkpoint rows dropped: rebuilt from state
    store = open_store(tmp_path)
    assert store._leaves_at == store.height and not store._leaves_pending
    check_against_workload(store)
    for _ in range(5):
        commit_next(store)
    check_against_workload(store)
    while store._leaves_at != store.height:
        commit_next(store)
    store.close()

    _tamper_lmdb(tmp_path, b"meta", b"leaves_at", b"\x01")
    with pytest.raises(StorageCorrupted, match="leaves_at"):
        open_store(tmp_path)
    env = lmdb.open(str(tmp_path / "lmdb"), max_dbs=16, subdir=True)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.delete(b"leaves_at", db=meta)  # as written before the log existed
    env.close()
    store = open_store(tmp_path)
    assert store._leaves_at == store.height
    check_against_workload(store)
    store.close()


def test_spread_phases_give_each_validator_its_own_maintenance_heights() -> None:
    from pilotchain.storage import store as ledger_module

    assert ledger_module.TX_INDEX_MERGE_BLOCKS == 5  # this folder's fixture
    assert LedgerStore.spread_phases(0, 1) == (0, 2)
    assert [LedgerStore.spread_phases(slot, 4) for slot in range(4)] == [(0, 0), (1, 1), (2, 3), (3, 4)]


def test_staggered_stores_never_merge_or_checkpoint_at_the_same_height(tmp_path: Path) -> None:
    """Four stores committing the same blocks, each with its slot's phases: the tx-index merges
    fall on four different heights of every period, as do the checkpoints; each store still
    merges at least every period, and every store answers the same lookups and roots."""
    stores = [open_store(tmp_path / f"v{slot}", maintenance_phase=LedgerStore.spread_phases(slot, 4))
              for slot in range(4)]
    merges: dict[int, list[int]] = {slot: [] for slot in range(4)}
    checkpoints: dict[int, list[int]] = {slot: [] for slot in range(4)}
    for _ in range(23):
        for slot, store in enumerate(stores):
            commit_next(store)
            if store._txs_merged == store.height:
                merges[slot].append(store.height)
            if store._leaves_at == store.height:
                checkpoints[slot].append(store.height)
    assert merges == {0: [4, 9, 14, 19], 1: [3, 8, 13, 18], 2: [2, 7, 12, 17, 22], 3: [1, 6, 11, 16, 21]}
    every_merge = [height for heights in merges.values() for height in heights]
    assert len(every_merge) == len(set(every_merge))  # never two stores at one height
    every_checkpoint = [height for heights in checkpoints.values() for height in heights]
    assert len(every_checkpoint) == len(set(every_checkpoint))
    for slot in range(4):
        gaps = [b - a for a, b in zip([-1, *merges[slot]], merges[slot], strict=False)]
        assert max(gaps) <= 5
    assert len({store.state_root for store in stores}) == 1
    for store in stores:
        check_against_workload(store)
        store.close()
    # reopened with another phase (a governance change moved the node's slot): the backlog is
    # still bounded and the next aligned height merges
    store = open_store(tmp_path / "v0", maintenance_phase=LedgerStore.spread_phases(3, 4))
    merged_before = store._txs_merged
    while store._txs_merged == merged_before:
        commit_next(store)
    assert store._txs_merged == store.height and store.height - merged_before <= 5
    check_against_workload(store)
    store.close()


def _rewrite_as_v1(path: Path) -> int:
    """Turn a store's state into the pilotchain-storage/1 layout (one row per key)."""
    env = lmdb.open(str(path / "lmdb"), max_dbs=16, subdir=True)
    state, meta = env.open_db(b"state"), env.open_db(b"meta")
    with env.begin(write=True) as txn:
        rows = list(txn.cursor(db=state))
        txn.drop(state, delete=False)
        for row_key, row in rows:
            for key, value in decode(bytes(row), list[tuple[bytes, bytes]]):
                txn.put(bytes(row_key) + key, value, db=state)
        txn.put(b"format", b"pilotchain-storage/1", db=meta)
        entries = int(txn.stat(state)["entries"])
    env.close()
    return entries


def test_a_store_of_the_one_row_per_key_layout_is_converted_when_opened(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for _ in range(6):
        commit_next(store)
    root, keys = store.state_root, len(list(store.iter_state()))
    store.close()
    assert _rewrite_as_v1(tmp_path) == keys  # one row per key now
    store = open_store(tmp_path, verify_state=True)  # converted, then audited
    assert store.state_root == root
    check_against_workload(store)
    commit_next(store)  # and it goes on committing in the new layout
    check_against_workload(store)
    store.close()
    env = lmdb.open(str(tmp_path / "lmdb"), max_dbs=16, subdir=True, readonly=True)
    meta, state = env.open_db(b"meta", create=False), env.open_db(b"state", create=False)
    with env.begin() as txn:
        assert txn.get(b"format", db=meta) == b"pilotchain-storage/2"
        assert all(len(key) == 4 for key, _ in txn.cursor(db=state))
    env.close()


def test_an_unknown_storage_format_is_refused(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    _tamper_lmdb(tmp_path, b"meta", b"format", b"pilotchain-storage/9")
    with pytest.raises(StorageError, match="unknown storage format"):
        open_store(tmp_path)


def test_a_malformed_row_of_a_one_row_per_key_store_halts_the_conversion(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    commit_next(store)
    store.close()
    _rewrite_as_v1(tmp_path)
    _tamper_lmdb(tmp_path, b"state", b"\x00\x00\x00\x00", b"no key")  # a bucket prefix alone
    with pytest.raises(StorageCorrupted, match="malformed"):
        open_store(tmp_path)
    # the conversion never committed: the store is still /1, its rows untouched
    env = lmdb.open(str(tmp_path / "lmdb"), max_dbs=16, subdir=True, readonly=True)
    meta = env.open_db(b"meta", create=False)
    state = env.open_db(b"state", create=False)
    with env.begin() as txn:
        assert txn.get(b"format", db=meta) == b"pilotchain-storage/1"
        assert all(len(key) > 4 for key, _ in txn.cursor(db=state) if key != b"\x00\x00\x00\x00")
        assert txn.stat(state)["entries"] > 1
    env.close()


def test_closed_snapshots_that_are_still_referenced_hold_no_reader_slot(store: LedgerStore) -> None:
    """A block's execution may leave references to its snapshot behind (a contract's view, a
    cache); once closed, a snapshot must not keep its LMDB read transaction — and with it one of
    the environment's 126 reader slots — alive: more such snapshots than slots, then reads still work."""
    kept = []
    for _ in range(300):
        with store.snapshot() as snapshot:
            snapshot.get(b"kv\x00anything")
            kept.append(snapshot)  # still referenced after close
    with store.snapshot() as snapshot:  # without the fix: lmdb.ReadersFullError here
        assert snapshot.get(b"kv\x00anything") is None
    assert store.get_with_proof(b"kv\x00anything")[0] is None
    with pytest.raises(StorageError, match="closed"):
        kept[0].get(b"kv\x00anything")

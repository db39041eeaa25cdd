"""A model-checked random walk: commits, injected crashes, disk-full errors, reopens.

Hypothesis drives a LedgerStore and a trivial in-memory model (a list of blocks and a dict) in
lockstep; after every step the store must agree with the model on height, root, blocks,
certificates, values and proofs. Failures shrink to a minimal replayable sequence.
"""

from __future__ import annotations

import errno
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pilotchain.storage import (
    CRASH_POINTS,
    CrashInjected,
    LedgerStore,
    StorageFull,
    StorageLimits,
    compute_state_root,
    verify_state_proof,
)

from .workload import hash_fn

BITS = 3
LIMITS = StorageLimits(segment_bytes_max=600, map_size_bytes=64 * 1024 * 1024)
keys = st.sampled_from([b"k%d" % i for i in range(12)])
writes = st.dictionaries(keys, st.none() | st.binary(max_size=8), max_size=6)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="pilotchain-stateful-"))
        self.store = self.open()
        self.blocks: list[tuple[bytes, bytes, list[bytes], bytes | None]] = []
        self.state: dict[bytes, bytes] = {}

    def open(self) -> LedgerStore:
        return LedgerStore.open(self.directory, hash_fn, bucket_bits=BITS, limits=LIMITS)

    def next_block(self, payload: bytes) -> tuple[bytes, bytes, list[bytes]]:
        height = len(self.blocks)
        block = b"block %d:" % height + payload
        return (
            hash_fn(block),
            block,
            [hash_fn(b"tx %d %d" % (height, i)) for i in range(height % 3)],
        )

    def apply(self, batch: dict[bytes, bytes | None]) -> None:
        for key, value in batch.items():
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value

    @rule(batch=writes, payload=st.binary(max_size=300), certified=st.booleans())
    def commit(self, batch: dict[bytes, bytes | None], payload: bytes, certified: bool) -> None:
        block_hash, block, tx_ids = self.next_block(payload)
        certificate = b"cert" if certified else None
        prepared = self.store.prepare_state(batch)
        self.store.commit_block(len(self.blocks), block_hash, block, tx_ids, prepared, certificate)
        self.blocks.append((block_hash, block, tx_ids, certificate))
        self.apply(batch)

    @rule(batch=writes, payload=st.binary(max_size=300), point=st.sampled_from(CRASH_POINTS))
    def crash_then_reopen(
        self, batch: dict[bytes, bytes | None], payload: bytes, point: str
    ) -> None:
        block_hash, block, tx_ids = self.next_block(payload)
        prepared = self.store.prepare_state(batch)
        self.store._crash_at = point
        try:
            self.store.commit_block(len(self.blocks), block_hash, block, tx_ids, prepared)
        except CrashInjected:
            pass
        else:
            raise AssertionError("the crash point was not reached")
        self.store.close()
        if point == "after_lmdb_commit":
            self.blocks.append((block_hash, block, tx_ids, None))
            self.apply(batch)
        self.store = self.open()

    @rule(batch=writes, payload=st.binary(max_size=300), point=st.sampled_from(CRASH_POINTS[:-1]))
    def disk_full(self, batch: dict[bytes, bytes | None], payload: bytes, point: str) -> None:
        block_hash, block, tx_ids = self.next_block(payload)
        prepared = self.store.prepare_state(batch)
        self.store._crash_at = point
        self.store._fault_error = OSError(errno.ENOSPC, "No space left on device")
        try:
            self.store.commit_block(len(self.blocks), block_hash, block, tx_ids, prepared)
        except StorageFull:
            pass
        else:
            raise AssertionError("the fault point was not reached")

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = self.open()

    @precondition(lambda self: self.blocks)
    @rule(data=st.data())
    def late_certificate(self, data: st.DataObject) -> None:
        height = data.draw(st.integers(0, len(self.blocks) - 1))
        self.store.set_certificate(height, b"late")
        block_hash, block, tx_ids, _ = self.blocks[height]
        self.blocks[height] = (block_hash, block, tx_ids, b"late")

    @invariant()
    def agrees_with_model(self) -> None:
        store = self.store
        assert store.height == len(self.blocks) - 1
        assert store.state_root == compute_state_root(self.state.items(), BITS, hash_fn)
        for height, (block_hash, block, tx_ids, certificate) in enumerate(self.blocks):
            assert store.get_block(height) == block
            assert store.get_height_by_hash(block_hash) == height
            assert store.get_certificate(height) == certificate
            for index, tx_id in enumerate(tx_ids):
                assert store.locate_tx(tx_id) == (height, index)
        for key in (b"k0", b"k3", b"k7", b"k11"):
            value, proof = store.get_with_proof(key)
            assert value == self.state.get(key)
            assert verify_state_proof(store.state_root, key, value, proof, hash_fn)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.directory)


StoreMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
TestStoreMachine = StoreMachine.TestCase

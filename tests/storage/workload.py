"""A deterministic block workload for crash tests; also runnable as the kill -9 child.

``python workload.py <data dir> <last height> [trace]`` opens the store, commits the workload's
blocks from its current height up to ``last height`` and prints each committed height on its own
line (flushed), so a parent can kill it at a known point of progress. With ``trace`` it also
prints ``<crash point> <height>`` as each commit passes each named point of the commit path, so
the parent can aim its SIGKILL at every phase.
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

BUCKET_BITS = 6
KEY_SPACE = 400
WRITES_PER_BLOCK = 40


def hash_fn(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def block_for(height: int) -> tuple[bytes, bytes, list[bytes], dict[bytes, bytes | None]]:
    """(block hash, block bytes, tx ids, state writes) of block ``height``; pure."""
    rng = random.Random(height * 1_000_003 + 17)
    writes: dict[bytes, bytes | None] = {}
    for _ in range(WRITES_PER_BLOCK):
        key = b"key-%d" % rng.randrange(KEY_SPACE)
        if rng.random() < 0.2:
            writes[key] = None
        else:
            writes[key] = rng.randbytes(rng.randrange(0, 64))
    tx_ids = [hash_fn(b"tx/%d/%d" % (height, i)) for i in range(rng.randrange(0, 8))]
    block_bytes = b"block %d|" % height + rng.randbytes(rng.randrange(0, 3000))
    return hash_fn(block_bytes), block_bytes, tx_ids, writes


def expected_state(last_height: int) -> dict[bytes, bytes]:
    """The state after applying blocks 0..last_height from scratch."""
    state: dict[bytes, bytes] = {}
    for height in range(last_height + 1):
        for key, value in block_for(height)[3].items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
    return state


def commit_next(store):  # type: ignore[no-untyped-def]
    """Commit the workload's next block to ``store``."""
    height = store.height + 1
    block_hash, block_bytes, tx_ids, writes = block_for(height)
    prepared = store.prepare_state(writes)
    certificate = b"cert %d" % height if height % 3 == 0 else None
    store.commit_block(height, block_hash, block_bytes, tx_ids, prepared, certificate)
    return height


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from pilotchain.storage import LedgerStore, StorageLimits

    path, last_height = sys.argv[1], int(sys.argv[2])
    limits = StorageLimits(segment_bytes_max=64 * 1024, map_size_bytes=256 * 1024 * 1024)
    store = LedgerStore.open(path, hash_fn, bucket_bits=BUCKET_BITS, limits=limits)
    print(f"open {store.height}", flush=True)
    if len(sys.argv) > 3 and sys.argv[3] == "trace":
        fault = store._fault

        def traced(point: str) -> None:
            print(f"{point} {store.height + 1}", flush=True)
            fault(point)

        store._fault = traced  # type: ignore[method-assign]
    while store.height < last_height:
        print(commit_next(store), flush=True)
    store.close()


if __name__ == "__main__":
    main()


def check_against_workload(store) -> None:  # type: ignore[no-untyped-def]
    """Every block, index, certificate, value and proof of ``store`` equals the replay."""
    from pilotchain.storage import compute_state_root, verify_state_proof

    height = store.height
    for h in range(height + 1):
        block_hash, block_bytes, tx_ids, _ = block_for(h)
        assert store.get_block(h) == block_bytes, h
        assert store.get_block_hash(h) == block_hash
        assert store.get_block_by_hash(block_hash) == block_bytes
        for index, tx_id in enumerate(tx_ids):
            assert store.locate_tx(tx_id) == (h, index)
        assert store.get_certificate(h) == (b"cert %d" % h if h % 3 == 0 else None)
    assert store.get_block(height + 1) is None
    assert store.last_block_hash == (block_for(height)[0] if height >= 0 else None)
    state = expected_state(height)
    assert dict(store.iter_state()) == state
    root = compute_state_root(state.items(), BUCKET_BITS, hash_fn)
    assert store.state_root == root
    for i in range(0, KEY_SPACE, 7):
        key = b"key-%d" % i
        value, proof = store.get_with_proof(key)
        assert value == state.get(key)
        assert verify_state_proof(root, key, value, proof, hash_fn, bucket_bits=BUCKET_BITS)

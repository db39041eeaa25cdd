"""Storage benchmark: block commit throughput, state-commitment cost, proof speed.

Theory of operation
-------------------
:func:`run` builds a fresh :class:`~pilotchain.storage.LedgerStore` in a temporary directory,
preloads ``preload_keys`` keys (so buckets hold a realistic number of entries), then commits
``blocks`` blocks of ``writes_per_block`` writes each (70 % updates of existing keys, 30 % new
keys, values of ``value_bytes``), timing separately:

* ``prepare_state`` -- the whole state-commitment computation (bucket reads, leaf hashes, the
  Merkle path updates);
* ``commit_block`` -- segment append + fsync, then one synced LMDB transaction (state, tree
  nodes, indexes);
* a baseline: the same writes as one synced LMDB transaction *without* any commitment, and the
  verification of ``writes_per_block`` Ed25519 signatures (a lower bound for executing a block
  of that many transactions) to put the commitment cost in proportion;

then generates and verifies ``proofs`` state proofs (half for present keys, half for absent
ones) and times a reopen (recovery plus the full tree consistency check).

The workload is seeded, so two runs do the same work; the timings are wall-clock and vary by
machine. Rerun with ``python -m pilotchain.bench.storage`` (``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb

from pilotchain.codec import encode
from pilotchain.errors import InvariantBroken
from pilotchain.storage import LedgerStore, StorageLimits, verify_state_proof

__all__ = ["run", "main"]

_HASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "sm3": lambda data: hashlib.new("sm3", data).digest(),
}
#: Bounds on the knobs, so a typo cannot fill the disk.
BLOCKS_MAX = 10_000
WRITES_PER_BLOCK_MAX = 100_000
PRELOAD_KEYS_MAX = 10_000_000
PROOFS_MAX = 1_000_000


def _key(index: int) -> bytes:
    return b"account/%012d" % index


def _ed25519_verify_ms(count: int) -> float:
    """Milliseconds to verify ``count`` Ed25519 signatures (one per transaction)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    public = key.public_key()
    messages = [b"tx %d" % i for i in range(count)]
    signatures = [key.sign(m) for m in messages]
    start = time.perf_counter()
    for message, signature in zip(messages, signatures, strict=True):
        public.verify(signature, message)
    return (time.perf_counter() - start) * 1e3


def _raw_lmdb_commit_ms(
    directory: Path, preload: list[tuple[bytes, bytes]], batches: list[dict[bytes, bytes | None]]
) -> float:
    """Median milliseconds for one synced LMDB transaction of each batch, no commitment.

    The database is first loaded with the same ``preload`` keys, so its B-tree has the same size
    as the store's state and the comparison is fair.
    """
    env = lmdb.open(str(directory / "raw"), map_size=8 * 1024**3, sync=True, metasync=True)
    times = []
    try:
        with env.begin(write=True) as txn:
            txn.cursor().putmulti(preload)
        for batch in batches:
            start = time.perf_counter()
            with env.begin(write=True) as txn:
                for key, value in batch.items():
                    if value is None:
                        txn.delete(key)
                    else:
                        txn.put(key, value)
            times.append((time.perf_counter() - start) * 1e3)
    finally:
        env.close()
    return statistics.median(times)


def run(
    *,
    blocks: int = 20,
    writes_per_block: int = 1000,
    preload_keys: int = 200_000,
    bucket_bits: int = 16,
    value_bytes: int = 100,
    proofs: int = 2000,
    hash_name: str = "sha256",
    seed: int = 1,
) -> dict[str, Any]:
    """Run the benchmark; return the measurements (times in ms or µs as the key says)."""
    if not (0 < blocks <= BLOCKS_MAX and 0 < writes_per_block <= WRITES_PER_BLOCK_MAX):
        raise InvariantBroken('invariant broken: 0 < blocks <= BLOCKS_MAX and 0 < writes_per_block <= WRITES_PER_BLOCK_MAX')
    if not (0 <= preload_keys <= PRELOAD_KEYS_MAX and 0 < proofs <= PROOFS_MAX):
        raise InvariantBroken('invariant broken: 0 <= preload_keys <= PRELOAD_KEYS_MAX and 0 < proofs <= PROOFS_MAX')
    hash_fn = _HASHES[hash_name]
    rng = random.Random(seed)
    limits = StorageLimits(map_size_bytes=16 * 1024**3, writes_per_block_max=WRITES_PER_BLOCK_MAX)
    with tempfile.TemporaryDirectory(prefix="pilotchain-bench-") as scratch:
        directory = Path(scratch)
        store = LedgerStore.open(
            directory / "node", hash_fn, bucket_bits=bucket_bits, limits=limits
        )
        next_key = 0
        preload_batch = 10_000
        preload: list[tuple[bytes, bytes]] = []
        while next_key < preload_keys:
            count = min(preload_batch, preload_keys - next_key)
            writes: dict[bytes, bytes | None] = {
                _key(next_key + i): rng.randbytes(value_bytes) for i in range(count)
            }
            preload.extend((k, v) for k, v in writes.items() if v is not None)
            next_key += count
            height = store.height + 1
            block = b"preload %d" % height
            store.commit_block(height, hash_fn(block), block, [], store.prepare_state(writes))

        batches: list[dict[bytes, bytes | None]] = []
        prepare_ms: list[float] = []
        commit_ms: list[float] = []
        tree_nodes: list[int] = []
        block_bytes_total = 0
        for _ in range(blocks):
            writes = {}
            for _ in range(writes_per_block):
                if next_key and rng.random() < 0.7:
                    writes[_key(rng.randrange(next_key))] = rng.randbytes(value_bytes)
                else:
                    writes[_key(next_key)] = rng.randbytes(value_bytes)
                    next_key += 1
            batches.append(writes)
            height = store.height + 1
            block = rng.randbytes(200 * writes_per_block)  # ~200 bytes per transaction
            tx_ids = [hash_fn(b"%d/%d" % (height, i)) for i in range(writes_per_block)]
            start = time.perf_counter()
            prepared = store.prepare_state(writes)
            middle = time.perf_counter()
            store.commit_block(height, hash_fn(block), block, tx_ids, prepared)
            end = time.perf_counter()
            prepare_ms.append((middle - start) * 1e3)
            commit_ms.append((end - middle) * 1e3)
            tree_nodes.append(len(prepared.node_changes))
            block_bytes_total += len(block)

        present = [_key(rng.randrange(next_key)) for _ in range(proofs // 2)]
        absent = [b"missing/%d" % i for i in range(proofs - len(present))]
        start = time.perf_counter()
        generated = [(key, *store.get_with_proof(key)) for key in present + absent]
        generate_s = time.perf_counter() - start
        root = store.state_root
        start = time.perf_counter()
        for key, value, proof in generated:
            if not (verify_state_proof(root, key, value, proof, hash_fn, bucket_bits=bucket_bits)):
                raise InvariantBroken('invariant broken: verify_state_proof(root, key, value, proof, hash_fn, bucket_bits=bucket_bits)')
        verify_s = time.perf_counter() - start
        proof_bytes = statistics.mean(len(encode(proof)) for _, _, proof in generated)
        final_height = store.height
        store.close()

        start = time.perf_counter()
        store = LedgerStore.open(
            directory / "node", hash_fn, bucket_bits=bucket_bits, limits=limits
        )
        open_ms = (time.perf_counter() - start) * 1e3
        if not (store.height == final_height and store.state_root == root):
            raise InvariantBroken('invariant broken: store.height == final_height and store.state_root == root')
        store.close()
        raw_ms = _raw_lmdb_commit_ms(directory, preload, batches)

    prepare_median = statistics.median(prepare_ms)
    commit_median = statistics.median(commit_ms)
    ed25519_ms = _ed25519_verify_ms(writes_per_block)
    return {
        "hash": hash_name,
        "bucket_bits": bucket_bits,
        "preload_keys": preload_keys,
        "blocks": blocks,
        "writes_per_block": writes_per_block,
        "value_bytes": value_bytes,
        "block_bytes_avg": block_bytes_total // blocks,
        "blocks_per_s": 1e3 / (prepare_median + commit_median),
        "writes_per_s": writes_per_block * 1e3 / (prepare_median + commit_median),
        "prepare_ms_per_block": prepare_median,
        "commitment_us_per_key": prepare_median * 1e3 / writes_per_block,
        "commit_ms_per_block": commit_median,
        "tree_nodes_recomputed_per_block": statistics.median(tree_nodes),
        "raw_lmdb_commit_ms_per_block": raw_ms,
        "ed25519_verify_ms_per_block": ed25519_ms,
        "proofs_generated_per_s": len(generated) / generate_s,
        "proofs_verified_per_s": len(generated) / verify_s,
        "proof_bytes_avg": proof_bytes,
        "open_ms": open_ms,
    }


_ROWS = [
    ("blocks_per_s", "block commit throughput (prepare + commit)", "blocks/s", "{:.1f}"),
    ("writes_per_s", "state writes committed", "writes/s", "{:,.0f}"),
    ("prepare_ms_per_block", "state commitment (prepare_state) per block", "ms", "{:.2f}"),
    ("commitment_us_per_key", "state commitment per written key", "µs", "{:.2f}"),
    ("commit_ms_per_block", "commit_block (append+fsync, LMDB txn+sync)", "ms", "{:.2f}"),
    ("tree_nodes_recomputed_per_block", "tree nodes recomputed per block", "nodes", "{:,.0f}"),
    ("raw_lmdb_commit_ms_per_block", "baseline: same writes, bare LMDB txn", "ms", "{:.2f}"),
    ("ed25519_verify_ms_per_block", "reference: verify one Ed25519 sig per write", "ms", "{:.2f}"),
    ("proofs_generated_per_s", "proof generation", "proofs/s", "{:,.0f}"),
    ("proofs_verified_per_s", "proof verification", "proofs/s", "{:,.0f}"),
    ("proof_bytes_avg", "proof size (canonical encoding)", "bytes", "{:,.0f}"),
    ("open_ms", "reopen (recovery + full tree check)", "ms", "{:.1f}"),
]


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: run once and print a table (and optionally JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--writes-per-block", type=int, default=1000)
    parser.add_argument("--preload-keys", type=int, default=200_000)
    parser.add_argument("--bucket-bits", type=int, default=16)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--hash", choices=sorted(_HASHES), default="sha256")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = run(
        blocks=args.blocks,
        writes_per_block=args.writes_per_block,
        preload_keys=args.preload_keys,
        bucket_bits=args.bucket_bits,
        value_bytes=args.value_bytes,
        proofs=args.proofs,
        hash_name=args.hash,
    )
    from rich.console import Console
    from rich.table import Table

    title = (
        f"storage: {results['hash']}, bucket_bits={results['bucket_bits']}, "
        f"{results['preload_keys']:,} preloaded keys, {results['writes_per_block']:,} writes/block"
    )
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for key, label, unit, fmt in _ROWS:
        table.add_row(label, fmt.format(results[key]), unit)
    Console().print(table)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pilotchain.storage import LedgerStore, StorageLimits

from .workload import BUCKET_BITS, hash_fn

SMALL_LIMITS = StorageLimits(segment_bytes_max=64 * 1024, map_size_bytes=256 * 1024 * 1024)


def open_store(path: Path, **kwargs: object) -> LedgerStore:
    kwargs.setdefault("bucket_bits", BUCKET_BITS)
    kwargs.setdefault("limits", SMALL_LIMITS)
    return LedgerStore.open(path, hash_fn, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LedgerStore]:
    opened = open_store(tmp_path / "node")
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def small_tx_index_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Merge the batched tx-id index and checkpoint the bucket hashes every 5 blocks here, so
    crash and reopen tests cross merges and checkpoints (the crash tests' block 4 is both)."""
    monkeypatch.setattr("pilotchain.storage.store.TX_INDEX_MERGE_BLOCKS", 5)
    monkeypatch.setattr("pilotchain.storage.store.LEAF_CHECKPOINT_BLOCKS", 5)

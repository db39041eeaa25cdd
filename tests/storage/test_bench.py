"""The storage benchmark runs end to end (tiny sizes; no timing assertions)."""

from __future__ import annotations

from pilotchain.bench.storage import run


def test_bench_runs_and_reports_every_measure() -> None:
    results = run(blocks=2, writes_per_block=50, preload_keys=300, bucket_bits=6, proofs=20)
    for key in ("blocks_per_s", "commitment_us_per_key", "proofs_verified_per_s", "open_ms"):
        assert results[key] > 0
    assert results["writes_per_block"] == 50

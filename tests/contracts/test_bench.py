"""The contract benchmark runs and reports rates (the contract core's purity is part of the
layer contract in pyproject.toml, checked by tests/test_layers.py)."""

from __future__ import annotations

from pilotchain.contracts import bench


def test_bench_runs_and_reports_rates() -> None:
    report = bench.run(calls=300, loop_steps=10_000)
    for key in (
        "python_transfer_calls_per_s",
        "python_transfer_txs_per_s",
        "native_kv_calls_per_s",
    ):
        assert report[key] > 0
    assert report["metered_loop_steps_per_s"] > 0

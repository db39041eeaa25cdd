"""The crypto benchmark runs and reports every number it promises (no timing asserts)."""

from __future__ import annotations

import json

import pytest

from pilotchain.bench import crypto as bench

NUMBERS = (
    "sign_per_second",
    "verify_per_second",
    "batch_verify_per_second",
    "batch_speedup",
    "hash_mb_per_second",
    "aead_mb_per_second",
)


def test_run_reports_every_number_for_both_suites() -> None:
    results = bench.run(seconds_per_case=0.001)
    assert set(results["suites"]) == {"intl", "gm"}
    for numbers in results["suites"].values():
        for name in NUMBERS:
            assert numbers[name] > 0, name
    assert results["environment"]["verify_workers"] >= 1
    json.dumps(results)  # plain data, storable as-is


def test_run_rejects_a_nonpositive_duration() -> None:
    with pytest.raises(ValueError, match="positive"):
        bench.run(seconds_per_case=0)


def test_main_prints_a_table_or_json(capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--seconds", "0.001"])
    assert "batch verify/s" in capsys.readouterr().out
    bench.main(["--seconds", "0.001", "--json"])
    assert set(json.loads(capsys.readouterr().out)["suites"]) == {"intl", "gm"}

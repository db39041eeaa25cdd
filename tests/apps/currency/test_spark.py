"""The AML rules' SQL runs unchanged on Apache Spark and gives exactly what DuckDB gives, over the
same Parquet export of a generated history (60,000 payments and planted patterns).

Spark needs the ``spark`` extra (PySpark) and a Java runtime, ~300 MB and a JVM: this runs behind
``make spark`` (marker ``spark``, left out of ``make test``), and fails — not skips — when Spark
cannot start there."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pilotchain.apps.currency.analytics import AML_QUERIES, Analytics, SparkAnalytics, write_parquet
from tests.apps.currency.helpers import CNY
from tests.apps.currency.test_audit import _generated_history

pytestmark = [pytest.mark.spark, pytest.mark.timeout(900)]

THRESHOLDS = {"large_value": 50_000 * CNY, "velocity_per_day": 50, "structuring_margin_bp": 1_000,
              "structuring_count": 3}


def test_every_aml_rule_gives_the_same_rows_on_spark_as_on_duckdb(tmp_path: Path) -> None:
    moves, opened, planted = _generated_history(seed=18, wallets=2_000, payments=60_000)
    write_parquet(moves, opened, tmp_path / "h")
    timings: dict[str, tuple[float, float]] = {}
    with Analytics(tmp_path / "h") as duck, SparkAnalytics(tmp_path / "h", master="local[2]") as spark:
        assert spark.sql("SELECT count(*) AS n FROM moves") == [{"n": len(moves)}]
        for name in AML_QUERIES:
            started = time.perf_counter()
            expected = duck.rule(name, **THRESHOLDS)
            middle = time.perf_counter()
            got = spark.rule(name, **THRESHOLDS)
            timings[name] = (middle - started, time.perf_counter() - middle)
            assert got == expected, name
            assert got, f"{name} found nothing on the generated history"
        assert {r["wallet"] for r in spark.rule("velocity", **THRESHOLDS)} == planted["velocity"]
        assert {r["wallet"] for r in spark.rule("structuring", **THRESHOLDS)} == planted["structuring"]
    print({name: f"duckdb {d:.2f} s, spark {s:.2f} s" for name, (d, s) in timings.items()})

"""The network benchmark harness: its pure helpers, and one short run on a real 4-node network.

No timing is asserted anywhere: the live test checks that the result document has every field,
with the right types and sane values (something was sent, received and committed). The network
runs on free ports in pytest's temporary folder and is stopped by the harness's own finally.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pilotchain.bench import network
from pilotchain.bench.chart import render_html
from pilotchain.cli.main import app

NUMBER = (int, float)


# --------------------------------------------------------------------------- pure helpers

def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert network.percentile(values, 50) == 50.0
    assert network.percentile(values, 99) == 99.0
    assert network.percentile(values, 100) == 100.0
    assert network.percentile([], 50) is None


def test_latency_summary_in_milliseconds() -> None:
    summary = network.latency_summary_ms([0.1, 0.2, 0.3])
    assert summary == {"p50": 200.0, "p95": 300.0, "p99": 300.0, "mean": 200.0, "max": 300.0}
    assert network.latency_summary_ms([])["p50"] is None


def test_slope_per_minute() -> None:
    assert network.slope_per_minute([(0, 1.0), (60, 2.0), (120, 3.0)]) == pytest.approx(1.0)
    assert network.slope_per_minute([(0, 5.0), (30, 5.0), (60, 5.0)]) == pytest.approx(0.0)
    assert network.slope_per_minute([(0, 1.0)]) is None


def test_profile_summary_of_a_raw_py_spy_file(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "main (a.py:1);work (b.py:2);verify (c.py:3) 30\n"
        "main (a.py:1);work (b.py:2) 10\n"
        "main (a.py:1);idle (d.py:9) 60\n"
    )
    summary = network.profile_summary(raw)
    assert summary["samples"] == 100
    assert summary["self"][0] == {"where": "idle (d.py:9)", "percent": 60.0}
    by_file = {row["where"]: row["percent"] for row in summary["inclusive_by_file"]}
    assert by_file == {"a.py": 100.0, "b.py": 40.0, "c.py": 30.0, "d.py": 60.0}


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="mode"):
        network.BenchOptions(mode="soak").check()
    with pytest.raises(ValueError, match="suite"):
        network.BenchOptions(suite="rot13").check()
    network.BenchOptions().check()


def test_chart_is_self_contained_svg() -> None:
    document = {
        "timeline": [{"t": t, "sent": 10 * t, "committed": 9 * t, "p50_ms": 100.0, "p95_ms": None,
                      "cpu_total": 50.0, "rss_mb_total": 300.0} for t in range(5)],
        "phases": [{"name": "stress 250", "target_tps": 250, "start_s": 1.0, "end_s": 3.0}],
        "summary": {"mode": "stress", "committed_tps": 36.0, "received_tps": 40.0, "success_rate": 1.0,
                    "latency_ms": {"p50": 100.0, "p95": 120.0, "p99": 130.0}, "efficiency": 0.01},
    }
    page = render_html(document, "t <1>")
    assert page.count("<svg") == 4 and "<script" not in page and "http://www.w3.org/2000/svg" in page
    assert "t &lt;1&gt;" in page and "stress 250" in page


def test_bench_without_subcommand_is_the_network_benchmark_and_micro_stays() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "--help"])
    assert result.exit_code == 0
    for option in ("--nodes", "--mode", "--crypto", "--json", "--duration"):
        assert option in result.output
    assert "micro" in result.output
    assert runner.invoke(app, ["bench", "micro", "--help"]).exit_code == 0
    bad = runner.invoke(app, ["bench", "--mode", "soak"])
    assert bad.exit_code == 2


# --------------------------------------------------------------------------- a real network

def _check_phase_result(result: dict[str, Any]) -> None:
    for key in ("target_tps", "offered_tps", "received_tps", "committed_tps", "committed_tps_overall",
                "success_rate", "duration_s"):
        assert isinstance(result[key], NUMBER), key
    for key in ("sent", "received", "committed", "committed_within_deadline", "backfilled"):
        assert isinstance(result[key], int), key
    assert set(result["latency_ms"]) == {"p50", "p95", "p99", "mean", "max"}


@pytest.mark.slow
def test_short_stress_run_on_four_nodes_reports_every_field(tmp_path: Path) -> None:
    options = network.BenchOptions(
        nodes=4, mode="stress", suite="intl", step_s=2.0, rate_start=100.0, steps_max=2,
        deadline_s=10.0, catchup_s=1.5, query_s=0.5, query_concurrency=4, ceiling_s=0.2,
        clients_per_org=2, workdir=tmp_path / "net", sign_workers=1,
    )
    document = network.run(options)
    json.dumps(document)  # one machine-readable document

    summary = document["summary"]
    assert summary["mode"] == "stress"
    assert summary["success_rate"] > 0
    assert summary["committed_tps"] > 0 and summary["received_tps"] > 0
    assert isinstance(summary["efficiency"], float) and summary["efficiency"] > 0
    assert all(isinstance(summary["latency_ms"][k], float) for k in ("p50", "p95", "p99"))

    assert document["ceiling"]["verify_per_second"] > 0
    deployment = document["deployment"]
    assert 0 < deployment["first_block_s"] <= deployment["all_nodes_first_block_s"]
    assert document["clients"] == {"identities": 8, "orgs": 4}

    stress = document["stress"]
    assert 1 <= len(stress["steps"]) <= 2
    for step in stress["steps"]:
        _check_phase_result(step)
        assert isinstance(step["passed"], bool)
    assert stress["sustained_committed_tps"] == summary["committed_tps"]

    resources = document["resources"]
    assert len(resources["nodes"]) == 4
    for numbers in resources["nodes"].values():
        assert numbers["rss_mb_peak"] > 0 and numbers["data_dir_bytes"] > 0
        assert "rss_anon_mb_peak" in numbers
        assert isinstance(numbers["cpu_percent_mean"], float)
    assert resources["generator"]["rss_mb_peak"] > 0

    catchup = document["catchup"]
    assert catchup["reached_head"] is True
    assert catchup["head"] >= catchup["stopped_at_height"]
    for key in ("restart_to_head_s", "sync_s", "blocks_per_s", "txs_per_s"):
        assert key in catchup
    _check_phase_result(catchup["load"])

    query = document["query"]
    assert query["kv_get_query"]["ok"] > 0 and query["state_read_with_proof"]["ok"] > 0

    ledger = document["ledger"]
    assert ledger["committed_txs"] > 0 and ledger["bytes_per_tx"] > 0
    assert document["event_stream"]["drops"] >= 0
    assert [p["name"] for p in document["phases"]][-1] == "catch-up load"
    assert document["timeline"] and {"t", "sent", "committed", "p50_ms", "p95_ms"} <= set(document["timeline"][0])
    assert sum(row["committed"] for row in document["timeline"]) > 0

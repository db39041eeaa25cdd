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


def _windows(p50s: list[float], *, window_s: float = 60.0, txs: int = 24_000) -> list[network.LatencyWindow]:
    return [network.LatencyWindow((i + 0.5) * window_s, p50, txs) for i, p50 in enumerate(p50s)]


def _memory(mibs: list[float], *, every_s: float = 60.0) -> dict[str, list[tuple[float, float]]]:
    return {"a-v1": [(i * every_s, mib) for i, mib in enumerate(mibs)],
            "b-v1": [(i * every_s, 200.0) for i in range(len(mibs))]}


def test_drift_verdict_passes_a_flat_run_after_its_warm_up() -> None:
    # 30 min: latency and memory climb during the first 6 min (warm-up), then stay level
    latency = _windows([60.0, 70, 80, 90, 100, 110] + [100.0, 104] * 12)
    memory = _memory([80.0, 120, 160, 200, 230, 240] + [250.0] * 24)
    verdict = network.drift_verdict(latency, memory, 1800)
    assert verdict["warmup_s"] == 360.0 and verdict["split_at_s"] == 1080.0
    assert verdict["latency"]["change_pct"] == 0.0 and verdict["latency"]["met"] is True
    assert verdict["memory"]["nodes"]["a-v1"]["change_pct"] == 0.0
    assert verdict["met"] is True


def test_drift_verdict_fails_on_latency_that_keeps_rising() -> None:
    latency = _windows([100.0 + 3 * i for i in range(30)])  # +3 ms a minute, all the way
    verdict = network.drift_verdict(latency, _memory([200.0] * 30), 1800)
    assert verdict["latency"]["first_half_p50_ms"] == 134.5 and verdict["latency"]["second_half_p50_ms"] == 170.5
    assert verdict["latency"]["change_pct"] == 26.8
    assert verdict["latency"]["met"] is False and verdict["memory"]["met"] is True
    assert verdict["met"] is False


def test_drift_verdict_fails_on_memory_that_keeps_growing_on_one_node() -> None:
    memory = _memory([200.0 + 2 * i for i in range(30)])  # a leak of 2 MiB a minute on a-v1
    verdict = network.drift_verdict(_windows([100.0] * 30), memory, 1800)
    nodes = verdict["memory"]["nodes"]
    assert nodes["a-v1"] == {"samples": [12, 12], "met": False, "first_half_peak_mib": 234.0,
                             "second_half_peak_mib": 258.0, "change_pct": 10.3}
    assert nodes["b-v1"]["met"] is True
    assert verdict["memory"]["met"] is False and verdict["met"] is False


def test_drift_verdict_leaves_out_a_partial_last_window() -> None:
    # sending ran past the planned end: the 31st window holds a handful of slow transactions
    latency = _windows([100.0] * 30) + [network.LatencyWindow(1830.0, 900.0, 40)]
    latency += [network.LatencyWindow(1890.0, 900.0, 40), network.LatencyWindow(1950.0, 900.0, 40)]
    verdict = network.drift_verdict(latency, _memory([200.0] * 30), 1800)
    assert verdict["latency"]["windows"] == [12, 12] and verdict["latency"]["met"] is True


def test_drift_verdict_does_not_pass_a_run_too_short_to_judge() -> None:
    verdict = network.drift_verdict(_windows([100.0] * 12, window_s=5), _memory([200.0] * 60, every_s=1), 60)
    assert verdict["met"] is None and "too short" in verdict["why"]
    assert verdict["latency"]["windows"] == [0, 0]


def test_reuse_needs_a_network_folder_that_matches_the_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workdir and keep_workdir do not apply"):
        network.BenchOptions(reuse=tmp_path, workdir=tmp_path).check()
    with pytest.raises(ValueError, match="holds no network to reuse"):
        network.reused_manifest(tmp_path, network.BenchOptions(reuse=tmp_path))
    (tmp_path / "network.json").write_text(json.dumps({"suite": "gm", "nodes": [{}] * 4}))
    with pytest.raises(ValueError, match="pass --crypto gm"):
        network.reused_manifest(tmp_path, network.BenchOptions(reuse=tmp_path))
    with pytest.raises(ValueError, match="has 4 nodes; pass --nodes 4"):
        network.reused_manifest(tmp_path, network.BenchOptions(reuse=tmp_path, suite="gm", nodes=7))
    assert network.reused_manifest(tmp_path, network.BenchOptions(reuse=tmp_path, suite="gm"))["suite"] == "gm"
    runner = CliRunner()
    bad = runner.invoke(app, ["bench", "--reuse", str(tmp_path), "--record", "--json"])
    assert bad.exit_code == 2 and "pass --crypto gm" in bad.output


def test_bench_clients_of_an_earlier_run_are_kept(tmp_path: Path) -> None:
    from pilotchain.network.consortium import init_network, parse_orgs

    manifest = init_network(tmp_path, suite_name="intl", validators=4, orgs=parse_orgs("4"), base_port=41000,
                            now_ms=1_700_000_000_000)
    first = network.issue_bench_clients(tmp_path, manifest, 3, 1_700_000_000_000)
    contents = [path.read_bytes() for path in first]
    again = network.issue_bench_clients(tmp_path, manifest, 3, 1_700_000_100_000)
    assert again == first and len(first) == 12
    assert [path.read_bytes() for path in again] == contents  # the same keys: nothing re-issued


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


class _FakeSigner:
    def sign(self, count: int) -> list[tuple[bytes, str]]:
        return [(b"", str(i)) for i in range(count)]


class _FakeHarness:
    """A network that keeps up (in rate and in p99) up to ``capacity`` tx/s and falls behind above."""

    def __init__(self, options: network.BenchOptions, capacity: float, p99_ms_at: Any) -> None:
        self.options = options
        self.capacity = capacity
        self.p99_ms_at = p99_ms_at
        self.offered: list[float] = []

    def log(self, message: str) -> None:
        pass

    async def offer(self, name: str, txs: Any, rate_tps: float) -> float:
        self.offered.append(rate_tps)
        return rate_tps

    async def drain(self, phases: Any) -> None:
        pass

    def phase_result(self, phases: list[float]) -> dict[str, Any]:
        rate = phases[0]
        committed = min(rate, self.capacity)
        return {"target_tps": rate, "offered_tps": rate, "received_tps": rate, "committed_tps": committed,
                "success_rate": 1.0 if rate <= self.capacity else 0.97,
                "latency_ms": {"p50": 100.0, "p95": 150.0, "p99": self.p99_ms_at(rate)}}


def _ladder(capacity: float, p99_ms_at: Any, **options: Any) -> tuple[dict[str, Any], list[float]]:
    import asyncio

    opts = network.BenchOptions(rate_start=1000, step_s=1, **options)
    harness = _FakeHarness(opts, capacity, p99_ms_at)
    result = asyncio.run(network.stress_ladder(harness, _FakeSigner()))  # type: ignore[arg-type]
    return result, harness.offered


def test_stress_ladder_bisects_to_the_highest_rate_that_keeps_up() -> None:
    result, offered = _ladder(2100, lambda rate: 500.0)
    assert offered[:4] == pytest.approx([1000, 1400, 1960, 2744])
    assert result["found"] and result["first_failed_rate_tps"] < 2744
    best = result["sustained_committed_tps"]
    assert 2100 / 1.05 <= best <= 2100  # within the bisection precision below the capacity
    assert len(offered) <= network.BenchOptions().steps_max


def test_stress_ladder_counts_a_p99_over_the_bound_as_falling_behind() -> None:
    # committed keeps up to 3,000 tx/s but p99 passes 2 s above 1,500: the sustained rate is <= 1,500
    result, _ = _ladder(3000, lambda rate: 900.0 if rate <= 1500 else 2600.0)
    assert result["sustained_committed_tps"] <= 1500
    assert result["best_step"]["latency_ms"]["p99"] <= 2000
    unbounded, _ = _ladder(3000, lambda rate: 900.0 if rate <= 1500 else 2600.0, latency_p99_max_s=0)
    assert unbounded["sustained_committed_tps"] > 2500


def test_floor_verdict_needs_rate_success_and_p99() -> None:
    config = {"mode": "stress", "nodes": 4, "suite": "intl"}
    good = {"success_rate": 0.99, "latency_ms": {"p99": 1900.0}}
    assert network.floor_verdict(config, 2050, good)["met"]  # type: ignore[index]
    assert not network.floor_verdict(config, 1990, good)["met"]  # type: ignore[index]
    assert not network.floor_verdict(config, 2050, {**good, "latency_ms": {"p99": 2100.0}})["met"]  # type: ignore[index]
    assert not network.floor_verdict(config, 2050, {**good, "success_rate": 0.9})["met"]  # type: ignore[index]
    assert network.floor_verdict({**config, "suite": "gm"}, 850, good)["met"]  # type: ignore[index]
    assert network.floor_verdict({**config, "nodes": 16}, 5000, good) is None


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

    # the same network again, its nodes restarted on their ledgers (--reuse): a short stability run
    again = network.run(network.BenchOptions(
        nodes=4, mode="stability", suite="intl", rate=100.0, duration_s=3.0, deadline_s=10.0, catchup_s=0.0,
        query_s=0.0, ceiling_s=0.2, clients_per_org=2, reuse=tmp_path / "net", sign_workers=1,
    ))
    assert again["deployment"]["reused"] is True
    assert again["deployment"]["height_at_start"] >= catchup["head"]
    assert again["clients"] == {"identities": 8, "orgs": 4}
    stability = again["stability"]
    assert stability["result"]["committed"] > 0 and stability["result"]["success_rate"] > 0
    assert stability["drift"]["met"] is None and stability["passed"] is False  # 3 s: too short to judge
    # bytes per transaction count what this run added, not the chain it started on
    assert 0 < again["ledger"]["data_dir_bytes_per_node_mean"] < ledger["data_dir_bytes_per_node_mean"]


def test_stability_line_in_the_table_says_the_verdict_and_its_limits() -> None:
    from pilotchain.cli.bench_cmd import _stability_verdict

    judged = network.drift_verdict(_windows([100.0 + 3 * i for i in range(30)]), _memory([200.0] * 30), 1800)
    line = _stability_verdict({"passed": False, "drift": judged})
    assert line.startswith("FAILED: p50 134 → 170 ms (+26.8 %, limit +20 %)")
    assert "memory peak +0.0 % (limit +10 %)" in line and line.endswith("after 360 s warm-up")
    judged["machine_change_pct"] = -11.1
    line = _stability_verdict({"passed": False, "drift": judged})
    assert line.endswith("after 360 s warm-up; the machine's verify ceiling moved -11.1 % over the run")
    short = network.drift_verdict(_windows([100.0] * 12, window_s=5), _memory([200.0] * 60, every_s=1), 60)
    assert _stability_verdict({"passed": False, "drift": short}).startswith("NOT judged: too short")

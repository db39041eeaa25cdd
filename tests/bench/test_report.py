"""`pilotchain bench report` on fixture result files: the recorded figures appear in the HTML and
the JSON, the latest run of a kind is the one shown, every required run without a result is
named with its command, unreadable and unrelated files are reported, and the PDF is printed
by headless Chromium where it is installed (and said to be missing where it is not)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pilotchain.bench import report
from pilotchain.cli.main import app

MACHINE = {"cores": 2, "cpu_model": "Fixture CPU", "memory_gib": 8.0, "platform": "Linux", "python": "3.11.7"}


def _nodes(count: int, *, cpu: float, rss: float, data_bytes: int) -> dict[str, Any]:
    return {f"org{i}-v1": {"cpu_percent_mean": cpu + i, "cpu_percent_max": cpu + 30 + i, "rss_mb_peak": rss + i,
                           "rss_anon_mb_peak": rss - 50, "data_dir_bytes": data_bytes + i} for i in range(count)}


def _step(offered: float, committed: float, *, passed: bool) -> dict[str, Any]:
    return {"offered_tps": offered, "received_tps": offered, "committed_tps": committed, "success_rate": 1.0,
            "latency_ms": {"p50": 81.5, "p95": 120.25, "p99": 150.75}, "node_cpu_percent_total": 90.5,
            "passed": passed}


def _timeline() -> list[dict[str, Any]]:
    return [{"t": t, "sent": 500, "committed": 490, "p50_ms": 90.0, "p95_ms": 120.0, "cpu_total": 150.0,
             "rss_mb_total": 900.0} for t in range(12)]


def _stress(committed: float, *, nodes: int) -> dict[str, Any]:
    return {
        "summary": {"mode": "stress", "committed_tps": committed, "received_tps": 1234.5, "success_rate": 0.991,
                    "latency_ms": {"mean": 610.4, "p50": 598.7, "p95": 1400.2, "p99": 1777.7, "max": 1990.9}},
        "stress": {"found": True, "sustained_committed_tps": committed,
                   "steps": [_step(250.0, 249.4, passed=True), _step(3333.3, 2020.2, passed=False)]},
        "resources": {"nodes": _nodes(nodes, cpu=28.5, rss=302.4, data_bytes=110_000_000),
                      "generator": {"cpu_percent_mean": 6.5, "rss_mb_peak": 215.9}},
        "ledger": {"bytes_per_tx": 704.5},
        "ceiling": {"verify_per_second": 24324.4, "signature": "Ed25519"},
        "deployment": {"first_block_s": 3.38},
        "catchup": {"reached_head": True, "blocks_per_s": 4.5, "txs_per_s": 2945.3, "blocks_behind": 19},
        "query": {"kv_get_query": {"per_second": 1777.0, "errors": 0}},
        "phases": [{"name": "stress 250", "start_s": 1.0, "end_s": 10.0}], "timeline": _timeline(),
    }


def _spike() -> dict[str, Any]:
    phase = {"offered_tps": 447.0, "received_tps": 447.0, "committed_tps": 448.5, "success_rate": 1.0,
             "latency_ms": {"p50": 106.6, "p99": 141.9}}
    return {
        "summary": {"mode": "spike", "committed_tps": 900.0, "received_tps": 623.3, "success_rate": 1.0,
                    "latency_ms": {"p50": 163.4, "p99": 5711.2}},
        "spike": {"passed": False, "burst_tps": 1800.0, "stress_tps": 900.0, "burst_success_rate": 0.612,
                  "recovery_s_max": 3.78,
                  "overall": {"received_tps": 623.3, "committed_tps": 629.3, "success_rate": 0.93,
                              "latency_ms": {"mean": 1460.0, "p50": 163.4, "p99": 5711.2}},
                  "bursts": [{"baseline_before": phase, "burst": {**phase, "offered_tps": 1687.5},
                              "baseline_after": phase, "recovery_s": 3.78}]},
        "resources": {"nodes": _nodes(4, cpu=23.7, rss=171.0, data_bytes=40_298_140)},
    }


def _stability() -> dict[str, Any]:
    return {
        "summary": {"mode": "stability", "committed_tps": 400.0, "received_tps": 400.0, "success_rate": 1.0,
                    "latency_ms": {"mean": 94.7, "p50": 93.6, "p99": 162.1}},
        "stability": {"passed": True, "duration_s": 1800.0, "latency_p50_slope_ms_per_min": 1.685,
                      "rss_slope_mb_per_min": {"org0-v1": 0.2},
                      "drift": {"met": True, "latency_pct_max": 20.0, "memory_pct_max": 10.0,
                                "latency": {"first_half_p50_ms": 93.0, "second_half_p50_ms": 95.0, "change_pct": 2.2},
                                "memory": {"nodes": {"org0-v1": {"first_half_peak_mib": 242.2,
                                                                 "second_half_peak_mib": 249.3, "change_pct": 2.9,
                                                                 "met": True}}}}},
        "resources": {"nodes": _nodes(4, cpu=13.7, rss=400.3, data_bytes=463_393_199)},
    }


def _record(directory: Path, kind: str, when: str, results: dict[str, Any], commit: str = "abc1234") -> Path:
    path = directory / f"{kind}-{when}-{commit}.json"
    stamp = f"{when[:4]}-{when[4:6]}-{when[6:8]}T{when[9:11]}:{when[11:13]}:{when[13:15]}+00:00"
    path.write_text(json.dumps({"kind": kind, "time_utc": stamp, "commit": commit, "machine": MACHINE,
                                "results": results}))
    return path


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "results"
    directory.mkdir()
    # two stress runs of one kind: the later is the one reported
    _record(directory, "network-stress-intl-4n", "20261129T160000Z", _stress(1111.1, nodes=4), commit="old1111")
    _record(directory, "network-stress-intl-4n", "20261207T042225Z", _stress(2462.3, nodes=4))
    _record(directory, "network-stress-gm-16n", "20261207T050000Z", _stress(97.6, nodes=16), commit="abc1234-dirty")
    _record(directory, "network-spike-intl-4n", "20261207T051000Z", _spike())
    _record(directory, "network-stability-intl-4n", "20261207T052000Z", _stability())
    _record(directory, "network-stress-intl-7n", "20261207T053000Z", _stress(555.5, nodes=7))
    _record(directory, "payments-intl-4n", "20261207T064132Z", {
        "summary": {"sustained_ok_payments_per_s": 473.9, "success_rate": 1.0, "p99_ms": 1298.3,
                    "supply_balanced": True},
        "stress": {"steps": [_step(485.3, 473.9, passed=True)]},
        "resources": {"nodes": _nodes(4, cpu=35.8, rss=215.1, data_bytes=45_622_948)}})
    _record(directory, "exchange-intl-4n", "20261207T064513Z", {
        "summary": {"10KiB": {"deliveries_per_s": 12.8, "anchor_txs_per_delivery": 0.485, "latency_p99_ms": 305.6}}})
    _record(directory, "compare-plenum", "20261129T164355Z", {"pilotchain": {}, "plenum": {}})
    (directory / "broken.json").write_text("{not json")
    return directory


def _run(results_dir: Path, out: Path, *extra: str) -> Any:
    return CliRunner().invoke(app, ["bench", "report", "--results", str(results_dir), "--out", str(out), *extra])


def test_the_report_shows_the_recorded_figures_and_names_the_missing_runs(results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "report.html"
    result = _run(results_dir, out, "--no-pdf", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["html"] == str(out) and document["pdf"] is None
    page = out.read_text(encoding="utf-8")
    # self-contained: no script, nothing fetched
    assert "<script" not in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)

    shown = {run["title"]: run for run in document["runs"]}
    assert set(shown) == {"stress, intl, 4 nodes", "stress, gm, 16 nodes", "spike, intl, 4 nodes",
                          "stability, intl, 4 nodes", "payments workload, intl, 4 nodes",
                          "exchange workload, intl, 4 nodes"}
    stress = shown["stress, intl, 4 nodes"]
    assert stress["committed_tps"] == 2462.3 and stress["earlier_runs"] == 1 and stress["criterion_met"] is True
    assert stress["resources"]["bytes_per_tx"] == 704.5 and stress["network_traffic"] == "not recorded"
    # the spike's own figures, not the stress rate it ran at; its burst success is below 75 %
    spike = shown["spike, intl, 4 nodes"]
    assert spike["committed_tps"] == 629.3 and spike["criterion_met"] is False
    for figure in ("2,462.3", "1,234.5", "99.1%", "598.7", "1,777.7", "704.5", "28.5", "302.4", "104.9 MiB",
                   "3,333.3", "2,020.2", "629.3", "61.2%", "3.78", "93.0", "95.0", "2.9", "97.6",
                   "473.9", "1,298.3", "12.80", "0.485", "24,324", "4.5 blocks/s"):
        assert figure in page, figure
    assert "1,111.1" not in page  # the earlier stress run is counted, not shown
    assert "<svg" in page and "Throughput" in page  # the timeline charts
    assert "<b>-dirty</b>" in page

    missing = {row["run"]: row["command"] for row in document["missing"]}
    assert missing["stress, gm, 4 nodes"] == "pilotchain bench --mode stress --nodes 4 --crypto gm"
    assert missing["stability, intl, 16 nodes"] == "pilotchain bench --mode stability --nodes 16 --crypto intl"
    assert missing["payments workload, gm, 4 nodes"] == "pilotchain bench payments --nodes 4 --crypto gm"
    assert "stress, intl, 4 nodes" not in missing and "spike, intl, 4 nodes" not in missing
    workloads = set(report.installed_workloads()) | {"payments", "exchange"}
    assert len(missing) == (12 - 4) + (2 * len(workloads) - 2)  # network: 4 of 12 recorded; workloads: intl only
    for title in missing:
        assert title in page, title
    assert document["not_in_report"] == {"network-stress-intl-7n": 1, "compare-plenum": 1}
    assert [row["file"] for row in document["unreadable"]] == ["broken.json"]
    assert "network traffic (bytes sent and received per node)" in document["not_recorded_by_the_harnesses"]


def test_the_human_output_lists_what_is_missing(results_dir: Path, tmp_path: Path) -> None:
    result = _run(results_dir, tmp_path / "r.html", "--no-pdf")
    assert result.exit_code == 0, result.output
    assert "required runs recorded; missing" in result.stdout
    assert "stress, gm, 4 nodes" in result.stdout and "pilotchain bench --mode stress --nodes 4 --crypto gm" in result.stdout


def test_without_chromium_the_pdf_is_said_to_be_missing(results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    absent = tmp_path / "no-chromium"
    auto = _run(results_dir, out, "--chromium", str(absent), "--json")
    assert auto.exit_code == 0, auto.output
    assert out.exists() and json.loads(auto.stdout)["pdf"] is None
    assert "no PDF" in json.loads(auto.stdout)["pdf_note"] and "apt-get install chromium" in auto.stderr
    asked = _run(results_dir, out, "--chromium", str(absent), "--pdf")
    assert asked.exit_code == 1 and "no PDF" in asked.stderr
    assert "Traceback" not in asked.output


def test_a_folder_without_results_is_refused_with_what_to_do(tmp_path: Path) -> None:
    result = _run(tmp_path / "nowhere", tmp_path / "r.html", "--no-pdf")
    # the error box wraps where the (long) temporary path makes it: read the words, not the lines
    words = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())
    assert result.exit_code == 2 and "pilotchain bench" in words, result.output
    assert not (tmp_path / "r.html").exists()


def test_an_empty_folder_reports_every_required_run_missing(tmp_path: Path) -> None:
    built = report.build_report(tmp_path, ["payments"])
    assert not built.chosen and len(built.missing) == len(built.required) == 12 + 2
    page = report.render_html(built)
    assert "14 of 14 required runs are missing" in page and "No network benchmark result is recorded" in page


@pytest.mark.skipif(shutil.which(str(report.CHROMIUM)) is None, reason=f"{report.CHROMIUM} is not installed")
def test_the_pdf_is_printed_by_headless_chromium(results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = _run(results_dir, out, "--pdf", "--json")
    assert result.exit_code == 0, result.output
    pdf = Path(json.loads(result.stdout)["pdf"])
    assert pdf == out.with_suffix(".pdf") and pdf.read_bytes().startswith(b"%PDF-")
    assert pdf.stat().st_size > 10_000  # pages of tables and charts, not an empty page

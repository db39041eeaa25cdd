"""``pilotchain bench report``: the CAICT-style performance report from recorded results.

Theory of operation
-------------------
Benchmarks record one file per run under ``bench/results/`` (:mod:`pilotchain.bench.results`):
``{"kind", "time_utc", "commit", "machine", "results"}``. The report reads those files and
measures nothing itself. It sorts the runs by kind:

* the network benchmark, ``network-<mode>-<suite>-<n>n``. The CAICT method asks for stress, spike
  and stability runs on 4-node and 16-node networks, and pilotchain has two suites, so 3 × 2 × 2 =
  12 runs are **required**;
* application workloads, ``<workload>-<suite>-<n>n`` (``pilotchain bench payments``,
  ``pilotchain bench exchange``, …). The platform does not import applications. The workloads
  are the installed ``pilotchain.bench_workloads`` entry points' names, plus any that left
  results. Each is required on both suites at 4 nodes;
* everything else (micro benchmarks, the Plenum comparison, …) is listed as not part of the
  report.

For every required run the report uses the **latest** recorded file of that kind (by its
``time_utc``) and says how many earlier ones exist. A required run with no file is named as
missing, with the command that records it. Figures come from the file as recorded: received and
committed tx/s, success, latency (mean, p50, p95, p99, max), CPU, memory and disk (each node's
data folder) per node, the mode's own verdict (the stress ladder, the spike's bursts and recovery,
the stability drift verdict) and the timeline charts. The harnesses do not record network
traffic or disk I/O rates, and the report says so rather than leave a blank.

The output is one self-contained HTML document: inline CSS and inline SVG, no script, no
external resource. It can also be printed to PDF by a headless Chromium (:func:`write_pdf`) when
one is installed.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilotchain.bench.chart import timeline_panels
from pilotchain.errors import CoreError

__all__ = [
    "CHROMIUM",
    "MODES",
    "NODE_COUNTS",
    "SUITES",
    "WORKLOAD_NODES",
    "RecordedRun",
    "Report",
    "ReportError",
    "RequiredRun",
    "build_report",
    "installed_workloads",
    "render_html",
    "report_json",
    "write_pdf",
]

#: the CAICT method's modes, this platform's suites and the network sizes the method asks for
MODES = ("stress", "spike", "stability")
SUITES = ("intl", "gm")
NODE_COUNTS = (4, 16)
#: application workloads are required at this size, on both suites
WORKLOAD_NODES = 4
#: Debian's Chromium (apt-get install chromium); --print-to-pdf turns the page into a PDF
CHROMIUM = Path("/usr/bin/chromium")
#: a headless Chromium printing one local page takes seconds; past this it is stuck
PDF_TIMEOUT_S = 180.0
#: result files larger than this are not read (the largest recorded run, 30 min of stability
#: with its per-second timeline, is ~1 MB)
RESULT_BYTES_MAX = 64 * 1024 * 1024
#: the CAICT criteria, as the harness judges them (docs/benchmark.md, "Method")
STRESS_SUCCESS_MIN = 0.95
SPIKE_SUCCESS_MIN = 0.75
STABILITY_SUCCESS_MIN = 0.95

_NETWORK_KIND = re.compile(r"network-(stress|spike|stability)-(intl|gm)-([0-9]{1,4})n")
_WORKLOAD_KIND = re.compile(r"([a-z][a-z0-9_]*)-(intl|gm)-([0-9]{1,4})n")
_WORKLOAD_GROUP = "pilotchain.bench_workloads"
_SUITE_NAMES = {"intl": "intl (Ed25519 / SHA-256)", "gm": "gm (SM2 / SM3 / SM4)"}


class ReportError(CoreError):
    """The report cannot be written; the message says what to do."""


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """One result file."""

    path: Path
    kind: str
    #: ``network`` or the workload's name
    family: str
    #: stress | spike | stability for the network benchmark; None for a workload
    mode: str | None
    suite: str
    nodes: int
    time_utc: str
    commit: str
    machine: dict[str, Any]
    results: dict[str, Any]

    @property
    def key(self) -> tuple[str, str | None, str, int]:
        return (self.family, self.mode, self.suite, self.nodes)


@dataclass(frozen=True, slots=True)
class RequiredRun:
    family: str
    mode: str | None
    suite: str
    nodes: int

    @property
    def key(self) -> tuple[str, str | None, str, int]:
        return (self.family, self.mode, self.suite, self.nodes)

    @property
    def title(self) -> str:
        what = f"{self.mode}" if self.family == "network" else f"{self.family} workload"
        return f"{what}, {self.suite}, {self.nodes} nodes"

    @property
    def command(self) -> str:
        """The command that records this run (spike and stability take the stress rate of the
        same network size and suite with --rate, else they run the stress ladder first)."""
        if self.family == "network":
            return f"pilotchain bench --mode {self.mode} --nodes {self.nodes} --crypto {self.suite}"
        return f"pilotchain bench {self.family} --nodes {self.nodes} --crypto {self.suite}"


@dataclass
class Report:
    directory: Path
    generated_utc: str
    required: list[RequiredRun]
    #: the run shown for each required one that has results
    chosen: dict[tuple[str, str | None, str, int], RecordedRun] = field(default_factory=dict)
    #: earlier files of each chosen run's kind (not shown)
    earlier: dict[tuple[str, str | None, str, int], int] = field(default_factory=dict)
    #: runs of a kind the report does not require (another network size, say), by kind
    extra: dict[str, int] = field(default_factory=dict)
    #: files that are not network or workload results (micro, compare-plenum, …), by kind
    others: dict[str, int] = field(default_factory=dict)
    #: files that could not be read, and why
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def missing(self) -> list[RequiredRun]:
        return [run for run in self.required if run.key not in self.chosen]

    def run_for(self, required: RequiredRun) -> RecordedRun | None:
        return self.chosen.get(required.key)


def installed_workloads() -> list[str]:
    """Names of the installed ``pilotchain.bench_workloads`` entry points. This reads package
    metadata only and loads nothing."""
    from importlib.metadata import entry_points

    return sorted({entry.name for entry in entry_points(group=_WORKLOAD_GROUP)})


def _read(path: Path) -> RecordedRun | str:
    """The run a result file records, or why it is not one (a string)."""
    try:
        if path.stat().st_size > RESULT_BYTES_MAX:
            return f"larger than {RESULT_BYTES_MAX:,} bytes"
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"not readable as JSON ({exc})"
    if not isinstance(document, dict) or not isinstance(document.get("kind"), str) \
            or not isinstance(document.get("results"), dict):
        return "not a recorded result (no kind and results)"
    kind = document["kind"]
    network = _NETWORK_KIND.fullmatch(kind)
    workload = None if network else _WORKLOAD_KIND.fullmatch(kind)
    if network:
        family, mode, suite, nodes = "network", network[1], network[2], int(network[3])
    elif workload:
        family, mode, suite, nodes = workload[1], None, workload[2], int(workload[3])
    else:
        family, mode, suite, nodes = "", None, "", 0
    machine = document.get("machine")
    return RecordedRun(path=path, kind=kind, family=family, mode=mode, suite=suite, nodes=nodes,
                       time_utc=str(document.get("time_utc", "")), commit=str(document.get("commit", "unknown")),
                       machine=machine if isinstance(machine, dict) else {}, results=document["results"])


def required_runs(workloads: Iterable[str]) -> list[RequiredRun]:
    required = [RequiredRun("network", mode, suite, nodes)
                for mode in MODES for nodes in NODE_COUNTS for suite in SUITES]
    required += [RequiredRun(name, None, suite, WORKLOAD_NODES) for name in sorted(set(workloads)) for suite in SUITES]
    return required


def build_report(directory: Path, workloads: Iterable[str] = (), *, now: _dt.datetime | None = None) -> Report:
    """Read every ``*.json`` in ``directory`` and choose each required run's latest file."""
    if not directory.is_dir():
        raise ReportError(f"{directory} is not a folder of benchmark results; run a benchmark first "
                          "(pilotchain bench) or pass --results DIR")
    runs: list[RecordedRun] = []
    unreadable: list[tuple[Path, str]] = []
    for path in sorted(directory.glob("*.json")):
        read = _read(path)
        if isinstance(read, str):
            unreadable.append((path, read))
        else:
            runs.append(read)
    workload_names = set(workloads) | {run.family for run in runs if run.family not in ("", "network")}
    report = Report(directory=directory,
                    generated_utc=(now or _dt.datetime.now(_dt.UTC)).isoformat(timespec="seconds"),
                    required=required_runs(workload_names), unreadable=unreadable)
    wanted = {run.key for run in report.required}
    by_key: dict[tuple[str, str | None, str, int], list[RecordedRun]] = {}
    for run in runs:
        if not run.family:
            report.others[run.kind] = report.others.get(run.kind, 0) + 1
        elif run.key not in wanted:
            report.extra[run.kind] = report.extra.get(run.kind, 0) + 1
        else:
            by_key.setdefault(run.key, []).append(run)
    for key, found in by_key.items():
        found.sort(key=lambda run: (run.time_utc, run.path.name))
        report.chosen[key] = found[-1]
        report.earlier[key] = len(found) - 1
    return report


# -- figures ---------------------------------------------------------------------------------

_NOT_RECORDED = "not recorded"


def _number(value: Any, digits: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _figure(value: Any) -> str:
    """A workload's own figure, whatever its unit: small numbers keep three significant digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or abs(value) >= 100:
        return _number(value)
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"


def _share(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:.1%}"


def _mib(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value / 2**20:,.1f} MiB"


def _latency(latency: Any) -> dict[str, str]:
    values = latency if isinstance(latency, dict) else {}
    return {name: _number(values.get(name)) for name in ("mean", "p50", "p95", "p99", "max")}


def _dig(document: Any, *names: str) -> Any:
    for name in names:
        if not isinstance(document, dict):
            return None
        document = document.get(name)
    return document


def _section(document: Any, name: str) -> dict[str, Any]:
    """``document[name]`` when both are objects, else an empty one (older files lack fields)."""
    value = document.get(name) if isinstance(document, dict) else None
    return value if isinstance(value, dict) else {}


def _node_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    nodes = _dig(results, "resources", "nodes")
    if not isinstance(nodes, dict):
        return []
    rows = []
    for name, numbers in sorted(nodes.items()):
        numbers = numbers if isinstance(numbers, dict) else {}
        rows.append({"node": str(name), "cpu_mean": _number(numbers.get("cpu_percent_mean")),
                     "cpu_max": _number(numbers.get("cpu_percent_max")),
                     "rss_peak": _number(numbers.get("rss_mb_peak")),
                     "rss_anon_peak": _number(numbers.get("rss_anon_mb_peak")),
                     "disk": _mib(numbers.get("data_dir_bytes"))})
    return rows


def _resource_totals(results: dict[str, Any]) -> dict[str, Any]:
    """Across nodes: mean CPU of a node, the highest peak RSS, the mean data folder."""
    nodes = _dig(results, "resources", "nodes")
    values = [v for v in nodes.values() if isinstance(v, dict)] if isinstance(nodes, dict) else []

    def numbers(name: str) -> list[float]:
        return [float(v[name]) for v in values if isinstance(v.get(name), int | float)]

    cpu, rss, disk = numbers("cpu_percent_mean"), numbers("rss_mb_peak"), numbers("data_dir_bytes")
    return {"cpu_percent_mean_per_node": round(sum(cpu) / len(cpu), 1) if cpu else None,
            "rss_mb_peak_max": max(rss) if rss else None,
            "data_dir_bytes_mean": round(sum(disk) / len(disk)) if disk else None,
            "bytes_per_tx": _dig(results, "ledger", "bytes_per_tx")}


def verdict(run: RecordedRun) -> tuple[bool | None, str]:
    """Whether a network run meets its CAICT criterion, and the line that says why."""
    results = run.results
    summary = _section(results, "summary")
    success = summary.get("success_rate")
    if run.mode == "stress":
        found = _dig(results, "stress", "found")
        met = bool(found) and isinstance(success, int | float) and success >= STRESS_SUCCESS_MIN
        return met, (f"highest rate that kept up: {_number(summary.get('committed_tps'))} tx/s committed at "
                     f"{_share(success)} success (needs ≥ {STRESS_SUCCESS_MIN:.0%}, committed ≈ sent)"
                     if found else "no step of the ladder kept up")
    if run.mode == "spike":
        spike = _section(results, "spike")
        passed = spike.get("passed")
        return (passed if isinstance(passed, bool) else None,
                f"bursts at {_number(spike.get('burst_tps'))} tx/s (twice the stress rate "
                f"{_number(spike.get('stress_tps'))}): {_share(spike.get('burst_success_rate'))} success "
                f"(needs ≥ {SPIKE_SUCCESS_MIN:.0%}), recovered within {_number(spike.get('recovery_s_max'), 2)} s")
    stability = _section(results, "stability")
    drift = _section(stability, "drift")
    passed = stability.get("passed")
    if drift.get("met") is None:
        return False, f"not judged for drift: {drift.get('why', 'the file has no drift verdict')}"
    latency = _section(drift, "latency")
    memory = _dig(drift, "memory", "nodes")
    growth = [row.get("change_pct") for row in memory.values() if isinstance(row, dict)] \
        if isinstance(memory, dict) else []
    growth_max = max((g for g in growth if isinstance(g, int | float)), default=None)
    return (passed if isinstance(passed, bool) else None,
            f"{_number(stability.get('duration_s') or _dig(stability, 'result', 'duration_s'), 0)} s at "
            f"{_number(summary.get('committed_tps'))} tx/s, {_share(success)} success (needs > "
            f"{STABILITY_SUCCESS_MIN:.0%}); p50 {_number(latency.get('first_half_p50_ms'))} → "
            f"{_number(latency.get('second_half_p50_ms'))} ms ({_number(latency.get('change_pct'))} %, limit "
            f"+{_number(drift.get('latency_pct_max'))} %), memory peak {_number(growth_max)} % (limit "
            f"+{_number(drift.get('memory_pct_max'))} %)")


def _headline(run: RecordedRun) -> dict[str, Any]:
    summary = _section(run.results, "summary")
    if run.mode == "spike" and _section(run.results, "spike").get("overall"):
        # a spike's summary names the stress rate it was run at; what it did is its phases overall
        summary = {**summary, **_section(run.results["spike"], "overall")}
    met, why = verdict(run) if run.family == "network" else (None, "")
    return {"title": RequiredRun(run.family, run.mode, run.suite, run.nodes).title, "file": run.path.name,
            "time_utc": run.time_utc, "commit": run.commit,
            "received_tps": summary.get("received_tps"), "committed_tps": summary.get("committed_tps"),
            "success_rate": summary.get("success_rate"),
            "latency_ms": _section(summary, "latency_ms"),
            "resources": _resource_totals(run.results), "network_traffic": _NOT_RECORDED,
            "criterion_met": met, "criterion": why}


def report_json(report: Report, *, html_path: Path | None = None, pdf_path: Path | None = None,
                pdf_note: str = "") -> dict[str, Any]:
    """What ``--json`` prints: where the documents went, each shown run's headline figures, and
    the missing runs with the commands that record them."""
    shown = []
    for required in report.required:
        run = report.run_for(required)
        if run is None:
            continue
        headline = _headline(run)
        headline["earlier_runs"] = report.earlier.get(required.key, 0)
        if run.family != "network":
            headline["summary"] = run.results.get("summary")
        shown.append(headline)
    return {
        "html": str(html_path) if html_path else None, "pdf": str(pdf_path) if pdf_path else None,
        "pdf_note": pdf_note, "results_dir": str(report.directory), "generated_utc": report.generated_utc,
        "runs": shown,
        "missing": [{"run": run.title, "command": run.command} for run in report.missing],
        "not_in_report": {**report.extra, **report.others},
        "unreadable": [{"file": path.name, "why": why} for path, why in report.unreadable],
        "not_recorded_by_the_harnesses": ["network traffic (bytes sent and received per node)",
                                          "disk I/O rates (only each node's data folder size)"],
    }


# -- HTML ------------------------------------------------------------------------------------

_STYLE = """
body{font-family:"Noto Sans","DejaVu Sans",sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:2px solid #1f77b4}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f2f2f2}
.missing{color:#a00;font-weight:bold}.met{color:#070}.failed{color:#a00;font-weight:bold}
.note{color:#555;font-size:13px}code{font-size:12px;background:#f6f6f6;padding:1px 3px}
svg{max-width:100%;height:auto}section{page-break-inside:avoid}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], *, raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (cells already HTML)."""
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _verdict_html(met: bool | None) -> str:
    if met is None:
        return "—"
    return '<span class="met">met</span>' if met else '<span class="failed">NOT met</span>'


def _coverage(report: Report) -> str:
    columns = [(suite, nodes) for suite in SUITES for nodes in NODE_COUNTS]
    rows = []
    for mode in MODES:
        cells = [_e(mode)]
        for suite, nodes in columns:
            run = report.chosen.get(("network", mode, suite, nodes))
            if run is None:
                cells.append('<span class="missing">missing</span>')
            else:
                met, _ = verdict(run)
                cells.append(f"{_number(_dig(run.results, 'summary', 'committed_tps'))} tx/s, {_verdict_html(met)}")
        rows.append(cells)
    workloads = sorted({run.family for run in report.required if run.family != "network"})
    for name in workloads:
        cells = [_e(f"{name} workload")]
        for suite, nodes in columns:
            if nodes != WORKLOAD_NODES:
                cells.append('<span class="note">not required</span>')
            elif (run := report.chosen.get((name, None, suite, nodes))) is None:
                cells.append('<span class="missing">missing</span>')
            else:
                cells.append(f"recorded {_e(run.time_utc[:10])}")
        rows.append(cells)
    head = ["run"] + [f"{suite}, {nodes} nodes" for suite, nodes in columns]
    return _table(head, rows, raw=True)


def _missing(report: Report) -> str:
    missing = report.missing
    if not missing:
        return "<p>Every required run has a recorded result.</p>"
    items = "".join(f'<li><span class="missing">{_e(run.title)}</span>: no result file; record it with '
                    f"<code>{_e(run.command)}</code></li>" for run in missing)
    return (f"<p><b>{len(missing)} of {len(report.required)} required runs are missing</b>; this report does not "
            f"cover them:</p><ul>{items}</ul><p class=\"note\">Spike and stability runs take the stress rate of "
            "the same suite and network size with <code>--rate</code>; without it they run the stress ladder "
            "first.</p>")


def _headlines(report: Report) -> str:
    rows = []
    for required in report.required:
        run = report.run_for(required)
        if run is None or run.family != "network":
            continue
        figures = _headline(run)
        latency = _latency(figures["latency_ms"])
        resources = figures["resources"]
        rows.append([_e(required.title), _number(figures["received_tps"]), _number(figures["committed_tps"]),
                     _share(figures["success_rate"]), latency["mean"], latency["p50"], latency["p99"],
                     _number(resources["cpu_percent_mean_per_node"]), _number(resources["rss_mb_peak_max"]),
                     _mib(resources["data_dir_bytes_mean"]), _number(resources["bytes_per_tx"]),
                     _NOT_RECORDED, _verdict_html(figures["criterion_met"])])
    if not rows:
        return '<p class="missing">No network benchmark result is recorded.</p>'
    head = ["run", "received tx/s", "committed tx/s", "success", "latency mean ms", "p50 ms", "p99 ms",
            "CPU % per node (mean)", "peak RSS MiB (max node)", "disk per node", "ledger bytes per tx",
            "network", "CAICT criterion"]
    return _table(head, rows, raw=True)


def _run_header(run: RecordedRun, earlier: int) -> str:
    machine = run.machine
    dirty = (" — <b>-dirty</b>: tracked files differed from the commit when the run started"
             if run.commit.endswith("-dirty") else "")
    return (f"<p class=\"note\">file <code>{_e(run.path.name)}</code>, recorded {_e(run.time_utc)}, tree "
            f"<code>{_e(run.commit)}</code>{dirty}; machine: {_e(machine.get('cpu_model') or '?')}, "
            f"{_e(machine.get('cores') or '?')} cores, {_e(machine.get('memory_gib') or '?')} GiB, Python "
            f"{_e(machine.get('python') or '?')}. "
            + (f"{earlier} earlier run(s) of this kind are not shown.</p>" if earlier else "No earlier run of this kind.</p>"))


def _resources(results: dict[str, Any]) -> str:
    rows = [[r["node"], r["cpu_mean"], r["cpu_max"], r["rss_peak"], r["rss_anon_peak"], r["disk"]]
            for r in _node_rows(results)]
    if not rows:
        return "<p class=\"note\">No per-node resources recorded.</p>"
    generator = _dig(results, "resources", "generator")
    if isinstance(generator, dict):
        rows.append(["load generator", _number(generator.get("cpu_percent_mean")), "—",
                     _number(generator.get("rss_mb_peak")), "—", "—"])
    table = _table(["node", "CPU % mean", "CPU % max", "peak RSS MiB", "peak anonymous RSS MiB", "data folder"], rows)
    return table + ("<p class=\"note\">CPU: 100 % = one core. Disk: each node's data folder at the end of the run; "
                    "disk I/O rates and network traffic are not recorded by the harness.</p>")


def _steps(steps: Any, committed_key: str = "committed_tps") -> str:
    if not isinstance(steps, list) or not steps:
        return ""
    rows = []
    for step in steps:
        if not isinstance(step, dict):
            continue
        latency = _latency(step.get("latency_ms"))
        rows.append([_number(step.get("offered_tps")), _number(step.get("received_tps")),
                     _number(step.get(committed_key)), _share(step.get("success_rate")),
                     f"{latency['p50']} / {latency['p95']} / {latency['p99']}",
                     _number(step.get("node_cpu_percent_total")),
                     "yes" if step.get("passed") else "no"])
    return "<h3>Stress ladder</h3>" + _table(
        ["offered tx/s", "received tx/s", "committed tx/s", "success", "latency p50 / p95 / p99 ms",
         "node CPU % (all nodes)", "keeps up"], rows)


def _spike(results: dict[str, Any]) -> str:
    spike = results.get("spike")
    if not isinstance(spike, dict):
        return ""
    rows = []
    for number, burst in enumerate(spike.get("bursts") or [], start=1):
        if not isinstance(burst, dict):
            continue
        for phase in ("baseline_before", "burst", "baseline_after"):
            figures = _section(burst, phase)
            latency = _latency(figures.get("latency_ms"))
            rows.append([f"{number}: {phase.replace('_', ' ')}", _number(figures.get("offered_tps")),
                         _number(figures.get("received_tps")), _number(figures.get("committed_tps")),
                         _share(figures.get("success_rate")), f"{latency['p50']} / {latency['p99']}"])
        rows.append([f"{number}: recovery", "", "", "", "", f"{_number(burst.get('recovery_s'), 2)} s"])
    return "<h3>Bursts</h3>" + _table(
        ["phase", "offered tx/s", "received tx/s", "committed tx/s", "success", "latency p50 / p99 ms"], rows)


def _stability(results: dict[str, Any]) -> str:
    stability = results.get("stability")
    if not isinstance(stability, dict):
        return ""
    memory = _dig(stability, "drift", "memory", "nodes")
    rows = [[name, _number(row.get("first_half_peak_mib")), _number(row.get("second_half_peak_mib")),
             _number(row.get("change_pct")), "yes" if row.get("met") else "no"]
            for name, row in sorted(memory.items()) if isinstance(row, dict)] if isinstance(memory, dict) else []
    slopes = stability.get("rss_slope_mb_per_min")
    text = (f"<p>p50 latency slope {_number(stability.get('latency_p50_slope_ms_per_min'), 3)} ms/min over the "
            f"run; RSS slopes (MiB/min): "
            f"{_e(', '.join(f'{k} {v}' for k, v in sorted(slopes.items())) if isinstance(slopes, dict) else '—')}</p>")
    return "<h3>Drift (memory per node, after the warm-up)</h3>" + _table(
        ["node", "first half peak MiB", "second half peak MiB", "change %", "within limit"], rows) + text


def _extras(results: dict[str, Any]) -> str:
    rows = []
    deployment = results.get("deployment")
    if isinstance(deployment, dict) and "first_block_s" in deployment:
        rows.append(["deployment: network init → first block", f"{_number(deployment.get('first_block_s'), 2)} s"])
    catchup = results.get("catchup")
    if isinstance(catchup, dict) and catchup.get("reached_head"):
        rows.append(["catch-up (transaction synchronisation)",
                     f"{_number(catchup.get('blocks_per_s'))} blocks/s, {_number(catchup.get('txs_per_s'))} tx/s "
                     f"({_number(catchup.get('blocks_behind'))} blocks behind)"])
    for name, label in (("kv_get_query", "queries/s (kv.get)"), ("state_read_with_proof", "state reads/s with proof")):
        query = _dig(results, "query", name)
        if isinstance(query, dict):
            rows.append([label, f"{_number(query.get('per_second'), 0)} ({_number(query.get('errors'))} errors)"])
    ceiling = results.get("ceiling")
    if isinstance(ceiling, dict):
        rows.append(["signature verifications/s (all cores)",
                     f"{_number(ceiling.get('verify_per_second'), 0)} ({_e(ceiling.get('signature', ''))})"])
    return "<h3>On the same network</h3>" + _table(["measure", "value"], rows) if rows else ""


def _network_section(run: RecordedRun, earlier: int) -> str:
    figures = _headline(run)
    latency = _latency(figures["latency_ms"])
    summary = _table(["measure", "value"], [
        ["received tx/s", _number(figures["received_tps"])], ["committed tx/s", _number(figures["committed_tps"])],
        ["success (committed within the deadline)", _share(figures["success_rate"])],
        ["latency ms: mean / p50 / p95 / p99 / max",
         f"{latency['mean']} / {latency['p50']} / {latency['p95']} / {latency['p99']} / {latency['max']}"],
        ["network traffic", _NOT_RECORDED],
    ])
    verdict_line = f"<p>CAICT criterion: {_verdict_html(figures['criterion_met'])} — {_e(figures['criterion'])}</p>"
    charts = "".join(f"<div>{panel}</div>" for panel in timeline_panels(run.results)) \
        if run.results.get("timeline") else ""
    return (f"<section><h3>{_e(figures['title'])}</h3>{_run_header(run, earlier)}{verdict_line}{summary}"
            f"{_steps(_dig(run.results, 'stress', 'steps'))}{_spike(run.results)}{_stability(run.results)}"
            f"<h3>Nodes</h3>{_resources(run.results)}{_extras(run.results)}{charts}</section>")


def _flat(prefix: str, value: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix} · {key}" if prefix else str(key), item, out)
    else:
        out.append((prefix, value))


def _workload_section(run: RecordedRun, earlier: int) -> str:
    """A workload's summary as recorded (each application names its own figures), its stress
    ladder and its nodes when it recorded them."""
    flat: list[tuple[str, Any]] = []
    _flat("", run.results.get("summary", {}), flat)
    rows = [[name, _share(value) if "rate" in name or "share" in name else _figure(value)] for name, value in flat]
    title = RequiredRun(run.family, None, run.suite, run.nodes).title
    return (f"<section><h3>{_e(title)}</h3>{_run_header(run, earlier)}"
            + (_table(["measure", "value"], rows) if rows else "<p class=\"note\">No summary recorded.</p>")
            + _steps(_dig(run.results, "stress", "steps")) + f"<h3>Nodes</h3>{_resources(run.results)}</section>")


def render_html(report: Report) -> str:
    """The report as one self-contained HTML document (no script, no external resource)."""
    network = [(required, run) for required in report.required
               if required.family == "network" and (run := report.run_for(required)) is not None]
    workloads = [(required, run) for required in report.required
                 if required.family != "network" and (run := report.run_for(required)) is not None]
    others = {**report.extra, **report.others}
    not_in = "".join(f"<li><code>{_e(kind)}</code>: {count} file(s)</li>" for kind, count in sorted(others.items()))
    unreadable = "".join(f"<li><code>{_e(path.name)}</code>: {_e(why)}</li>" for path, why in report.unreadable)
    parts = [
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>pilotchain performance report (CAICT method)</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>pilotchain — performance report in the CAICT trusted-blockchain method</h1>",
        f"<p class=\"note\">Generated {_e(report.generated_utc)} by <code>pilotchain bench report</code> from the "
        f"recorded results in <code>{_e(report.directory)}</code> (nothing was measured to write it). For each "
        "required run the latest recorded file is shown. Suites: "
        + ", ".join(_e(_SUITE_NAMES[s]) for s in SUITES)
        + ". Method: docs/benchmark.md.</p>",
        "<h2>Coverage</h2>", _coverage(report), _missing(report),
        "<h2>Headline figures (network benchmark)</h2>", _headlines(report),
        "<p class=\"note\">Received = admitted by a gateway; committed = its commit event arrived; success = "
        "committed within the deadline ÷ sent. Stress: the highest step that kept up; spike: all its phases "
        "together; stability: the whole run. Network traffic and disk I/O rates are not recorded by the "
        "harness; disk is each node's data folder at the end of the run.</p>",
        "<h2>Network benchmark runs</h2>",
        "".join(_network_section(run, report.earlier.get(required.key, 0)) for required, run in network)
        or '<p class="missing">None recorded.</p>',
        "<h2>Application workloads</h2>",
        "".join(_workload_section(run, report.earlier.get(required.key, 0)) for required, run in workloads)
        or '<p class="missing">None recorded.</p>',
        "<h2>Recorded results not in this report</h2>",
        f"<ul>{not_in}</ul>" if not_in else "<p>None.</p>",
    ]
    if unreadable:
        parts.append(f"<h3>Files that could not be read</h3><ul>{unreadable}</ul>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_pdf(html_path: Path, pdf_path: Path, chromium: Path = CHROMIUM) -> Path:
    """Print ``html_path`` to ``pdf_path`` with a headless Chromium (its own throw-away profile,
    so it neither touches nor waits for a browser that is running). ReportError if it cannot."""
    if not chromium.exists():
        raise ReportError(f"no PDF: {chromium} is not installed (Debian: apt-get install chromium); "
                          "the HTML report is complete without it")
    pdf_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="pilotchain-report-chromium-") as profile:
        command = [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   f"--user-data-dir={profile}", "--no-pdf-header-footer",
                   f"--print-to-pdf={pdf_path.resolve()}", html_path.resolve().as_uri()]
        try:
            finished = subprocess.run(command, capture_output=True, text=True, timeout=PDF_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ReportError(f"no PDF: {chromium} did not finish within {PDF_TIMEOUT_S:.0f} s; "
                              "the HTML report is complete without it") from None
        except OSError as exc:
            raise ReportError(f"no PDF: {chromium} did not start ({exc})") from None
    if not pdf_path.exists() or pdf_path.stat().st_size == 0:
        tail = (finished.stderr or "").strip().splitlines()[-3:]
        raise ReportError(f"no PDF: {chromium} exited {finished.returncode} without writing one"
                          + (f" ({' | '.join(tail)})" if tail else ""))
    return pdf_path

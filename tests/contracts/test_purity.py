"""The contract core is deterministic: no clock, randomness, OS, threads or sockets — except the
benchmark shell, which measures it. And the benchmark runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pilotchain.contracts
from pilotchain.contracts import bench

BANNED = {
    "asyncio", "socket", "time", "random", "os", "threading", "multiprocessing", "subprocess",
    "select", "selectors", "datetime", "secrets", "concurrent", "signal", "logging", "tempfile",
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_contract_core_imports_no_io_clock_or_randomness() -> None:
    package = Path(pilotchain.contracts.__file__).parent
    files = [path for path in sorted(package.glob("*.py")) if path.name != "bench.py"]
    assert len(files) >= 7
    offenders = {path.name: sorted(_imports(path) & BANNED) for path in files}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_bench_runs_and_reports_rates() -> None:
    report = bench.run(calls=300, loop_steps=10_000)
    for key in (
        "python_transfer_calls_per_s",
        "python_transfer_txs_per_s",
        "native_kv_calls_per_s",
    ):
        assert report[key] > 0
    assert report["metered_loop_steps_per_s"] > 0

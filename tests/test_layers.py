"""The layer contract (pyproject.toml, checked by import-linter) holds, and breaks when it should.

import-linter follows imports transitively, including those inside functions. The contract fails
if a lower layer imports a higher one (e.g. ``ledger`` imports ``storage``), if the SDK reaches
the server, storage or node, if any platform package imports an application, or if the
deterministic core reaches a clock, socket, thread, log or unseeded randomness. What import-linter
cannot express — reading the clock through an allowed module (``datetime.now()``) — is checked
here by reading the source.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_contract() -> None:
    result = _lint(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    assert result.stdout.count("KEPT") >= 4


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("layers")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    shutil.copytree(ROOT / "src" / "pilotchain", copy / "src" / "pilotchain",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.mark.parametrize(
    ("module", "line", "contract", "culprit"),
    [
        ("ledger/tx.py", "import pilotchain.storage", "Layers:", "pilotchain.storage"),
        ("sdk/_client.py", "from pilotchain.gateway import app as _app", "SDK installs light", "pilotchain.gateway"),
        ("sdk/wire.py", "from pilotchain.node import chain as _chain", "SDK installs light", "pilotchain.node"),
        ("storage/store.py", "import pilotchain.apps", "never imports an application", "pilotchain.apps"),
        ("consensus/types.py", "import time as _time", "deterministic core", "time"),
        # indirect: the ledger reaches a thread pool through a module it imports
        ("ledger/genesis.py", "from pilotchain.crypto import parallel as _parallel", "deterministic core", "threading"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(tree_copy: Path, module: str, line: str, contract: str,
                                                culprit: str) -> None:
    path = tree_copy / "src" / "pilotchain" / module
    original = path.read_text()
    head, sep, rest = original.partition("from __future__ import annotations\n")
    assert sep, f"{module} has no __future__ import to anchor the probe"
    path.write_text(head + sep + line + "\n" + rest)
    try:
        result = _lint(tree_copy, tree_copy / "src")
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken and culprit in broken, result.stdout


#: the deterministic core: modules that may not read the clock even through an allowed import
_PURE_SOURCES = [
    "codec", "ledger", "consensus", "identity/records.py", "identity/authority.py",
    "identity/membership.py", "identity/expiry.py", "contracts/kv.py", "contracts/sandbox.py",
    "contracts/runtime.py", "contracts/governance.py", "contracts/membership.py",
    "contracts/resolver.py", "contracts/api.py", "node/mempool.py", "crypto/base.py",
]
_CLOCK_CALLS = {"now", "utcnow", "today", "fromtimestamp", "monotonic", "perf_counter", "time_ns"}


def _clock_calls(path: Path) -> list[str]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _CLOCK_CALLS:
            calls.append(f"{path.name}:{node.lineno} .{node.func.attr}()")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            calls.append(f"{path.name}:{node.lineno} __import__()")
    return calls


def test_the_core_never_reads_the_clock_through_an_allowed_module() -> None:
    package = ROOT / "src" / "pilotchain"
    files: list[Path] = []
    for entry in _PURE_SOURCES:
        target = package / entry
        files.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    assert len(files) >= 25
    assert [call for path in files for call in _clock_calls(path)] == []


def test_the_clock_scan_sees_a_clock_read(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import datetime\nstamp = datetime.datetime.now()\nm = __import__('time')\n")
    assert _clock_calls(probe) == ["probe.py:2 .now()", "probe.py:3 __import__()"]

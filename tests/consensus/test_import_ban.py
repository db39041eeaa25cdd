"""The consensus core is sans-IO: no clock, randomness, sockets, threads or OS access."""

from __future__ import annotations

import ast
from pathlib import Path

import pilotchain.consensus

BANNED = {"asyncio", "socket", "time", "random", "os", "threading", "multiprocessing", "subprocess", "select", "selectors", "datetime", "secrets", "concurrent", "signal", "logging"}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            names.add("__import__")
    return names


def test_consensus_imports_no_io_clock_or_randomness() -> None:
    package = Path(pilotchain.consensus.__file__).parent
    files = sorted(package.rglob("*.py"))
    assert len(files) >= 5
    offenders = {str(path.relative_to(package)): sorted(_imported_modules(path) & (BANNED | {"__import__"})) for path in files}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_the_scanner_catches_a_banned_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os.path\nfrom time import monotonic\nfrom . import sibling\n")
    assert _imported_modules(sample) & BANNED == {"os", "time"}

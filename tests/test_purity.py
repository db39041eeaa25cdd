"""The deterministic core imports no I/O, clock, randomness or threads (ARCHITECTURE.md, habit 1).

Consensus, the P2P core, storage's commitment and the contract sandbox have their own checks;
this one covers the rest of the replicated core.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "pilotchain"
PURE = [
    "codec/__init__.py",
    "ledger/tx.py",
    "ledger/block.py",
    "ledger/merkle.py",
    "ledger/execution.py",
    "ledger/genesis.py",
    "ledger/commit.py",
    "ledger/auth.py",
    "contracts/kv.py",
    "identity/records.py",
    "identity/membership.py",
    "identity/authority.py",
    "identity/expiry.py",
    "node/mempool.py",
]
BANNED = {"asyncio", "socket", "time", "random", "os", "threading", "subprocess", "secrets", "uuid"}
#: datetime may format a given timestamp, never read the clock
CLOCK_CALLS = (".now(", ".utcnow(", ".today(")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io(module: str) -> None:
    assert _imports(SRC / module) & BANNED == set()
    text = (SRC / module).read_text()
    assert [call for call in CLOCK_CALLS if call in text] == []


def test_the_checker_sees_a_banned_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom time import monotonic\n")
    assert _imports(probe) & BANNED == {"os", "time"}

"""The protocol core of p2p does no I/O: no event loop, sockets, clock or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pilotchain.p2p

PURE_MODULES = ["handshake.py", "framing.py", "keys.py", "_gm_kex.py", "config.py", "errors.py"]
BANNED = {"asyncio", "socket", "time", "random", "os", "secrets", "selectors"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_modules_import_no_io() -> None:
    package = Path(pilotchain.p2p.__file__).parent
    for name in PURE_MODULES:
        assert not imported_roots(package / name) & BANNED, name


def test_public_api_is_exported() -> None:
    for name in pilotchain.p2p.__all__:
        assert hasattr(pilotchain.p2p, name), name

"""docs/conformance.md names only what exists: every test file and test function, every
``pilotchain`` command group and every make target it cites. It also keeps a row for each
JR/T 0193-2020 item and each GB/T 42752-2023 component (the lists are those of the standards
summary the project works from: ../shared/reference/standards.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import typer

from pilotchain.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
MAP = ROOT / "docs" / "conformance.md"

BASIC_FUNCTIONS = ("ledger", "consensus protocol", "smart contracts", "node communication", "event distribution",
                   "key management", "state management", "member management", "transaction system",
                   "interface management")
PERFORMANCE = ("transaction throughput", "query throughput", "transaction synchronisation (catch-up)",
               "deployment efficiency", "ledger data growth rate")
SECURITY_AREAS = ("hardware", "base software", "cryptographic algorithms", "node communication", "ledger data",
                  "consensus", "smart contracts", "identity management", "privacy protection",
                  "supervision (regulator) support", "secure operations", "security governance")
ROLES = ("service customer", "service provider", "service partner", "operators", "auditors", "regulators")
COMPONENTS = ("ledger", "consensus", "smart contracts", "identity", "interoperability", "management")
CONCERNS = ("security", "privacy", "performance", "governance")

_TEST_REFERENCE = re.compile(r"(tests/[A-Za-z0-9_/]+\.py)(?:::([A-Za-z0-9_]+))?")


def _sections() -> dict[str, list[str]]:
    """The first cell of every table row, by the heading above it."""
    rows: dict[str, list[str]] = {}
    heading = ""
    for line in MAP.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("| ") and not line.startswith("|---"):
            rows.setdefault(heading, []).append(line.split("|")[1].strip())
    return rows


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_named_test_file_and_function_exists() -> None:
    text = MAP.read_text(encoding="utf-8")
    references = _TEST_REFERENCE.findall(text)
    assert len(references) > 80, "the map names the tests that demonstrate each item"
    wrong = []
    for file_name, function in references:
        path = ROOT / file_name
        if not path.is_file():
            wrong.append(f"{file_name}: no such file")
        elif function and function not in _functions(path):
            wrong.append(f"{file_name}::{function}: no such test function")
    assert not wrong, "docs/conformance.md names what does not exist:\n" + "\n".join(wrong)


def test_every_item_of_the_standards_has_a_row() -> None:
    sections = _sections()
    expected = {
        "JR/T 0193-2020: basic functions": BASIC_FUNCTIONS,
        "JR/T 0193-2020: performance": PERFORMANCE,
        "JR/T 0193-2020 (and JR/T 0184-2020): the twelve security areas": SECURITY_AREAS,
        "Roles": ROLES,
        "Functional components": COMPONENTS,
        "Cross-cutting concerns": CONCERNS,
    }
    for heading, items in expected.items():
        assert heading in sections, f"no section {heading!r}"
        first_cells = sections[heading][1:]  # after the header row
        assert sorted(first_cells) == sorted(items), (heading, first_cells)


def test_every_named_command_group_and_make_target_exists() -> None:
    text = MAP.read_text(encoding="utf-8")
    groups = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    named = set(re.findall(r"`pilotchain ([a-z][a-z-]*)", text))
    assert named and named <= groups, sorted(named - groups)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    cited = set(re.findall(r"`make ([a-z][a-z-]*)`", text))
    assert cited and cited <= targets, sorted(cited - targets)

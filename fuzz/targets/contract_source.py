"""Contract source (``contracts/sandbox.py``): the text a member proposes for deployment, which
every node checks and compiles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fuzz.harness import accepted, expect
from pilotchain.contracts.api import API_NAMES
from pilotchain.contracts.sandbox import (
    BUILTIN_NAMES,
    CheckedContract,
    CodeRejected,
    compile_contract,
)

CONTRACT = """
compile_contract (the allow-list checker, then the instrumenting compiler) on any source text
returns a checked, compiled contract or raises CodeRejected with a message — never SyntaxError,
RecursionError, MemoryError or another exception, and never takes seconds: a source the checker
accepts always compiles after instrumentation. Input: the source as UTF-8 (invalid bytes
replaced).
"""

MAX_LEN = 16 * 1024
_ALLOWED = BUILTIN_NAMES | frozenset(API_NAMES)


def one_input(data: bytes) -> None:
    source = data.decode("utf-8", "replace")
    checked = accepted((CodeRejected,), compile_contract, source, _ALLOWED)
    if checked is not None:
        expect(isinstance(checked, CheckedContract), "compile_contract answered something other than a contract")


def seeds() -> Iterator[bytes]:
    root = Path(__file__).resolve().parents[2]
    for path in sorted([*root.glob("examples/contracts/*.py"), *root.glob("src/pilotchain/apps/*/contracts/*.py")]):
        text = path.read_bytes()
        if len(text) <= MAX_LEN:
            yield text
    yield b"from pilotchain.contracts.api import Map, caller\n\nbalances = Map('b')\n\n\ndef put(key, value):\n" \
          b"    x = [i * 2 for i in range(10) if i % 3]\n    balances[key] = f'{value}-{len(x)}'\n    return x[1:]\n"

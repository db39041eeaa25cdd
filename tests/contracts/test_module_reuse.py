"""Reused module bodies: a call in a reused body gives exactly what a call in a fresh run gives —
result, error, steps, writes and events — whatever earlier calls did to module values, whatever
budget is left, and a module body that could differ between runs is never reused."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pilotchain.contracts.runtime import PythonContract, _acquire_module, _Api, _Execution
from pilotchain.contracts.sandbox import ModuleCache, SandboxLimits, module_is_definitional
from pilotchain.ledger.execution import BlockOverlay, ContractError, ContractState, TxContext
from tests.contracts.harness import CALLER, FAST_LIMITS, MemoryStore, contract_of

CURRENCY = Path(__file__).resolve().parents[2] / "src" / "pilotchain" / "apps" / "currency" / "contracts" / "currency.py"

PROBE = '''
"""A contract whose module values and defaults can be mutated by its methods."""
from pilotchain.contracts.api import Map, Variable, emit

BANNER = "ab" * 300
LIMITS = {"tiers": [1, 2, 3], "name": "x"}
SHARED = [0]
PAIR = (SHARED, 5)
NEGATIVE = -(2 ** 40) + 1
counts = Map("counts")
total = Variable("total")


def grow(extra, tag=("t", 1)):
    bucket = [tag]
    bucket.append(extra)
    LIMITS["tiers"].append(extra)
    LIMITS["name"] = LIMITS["name"] + "y"
    return [len(bucket), len(LIMITS["tiers"]), LIMITS["name"], len(BANNER), NEGATIVE]


def alias():
    into = SHARED
    into.append(1)
    PAIR[0].append(2)
    return [len(SHARED), len(into), PAIR[0] is SHARED]


def count(key):
    seen = counts.get(key, 0) + 1
    counts.set(key, seen)
    total.set(total.get(0) + 1)
    emit("counted", {"key": key, "seen": seen})
    return seen


def spend(size):
    return len("z" * size)


def fail_after_mutating():
    SHARED.append(99)
    LIMITS.clear()
    require(False, "refused on purpose")
'''


def _twins(code: str, limits: SandboxLimits = FAST_LIMITS) -> tuple[PythonContract, PythonContract]:
    """The same contract twice: one whose module body is reused, one run afresh every call."""
    reused = contract_of(code, limits=limits)
    fresh = PythonContract(reused.record, dataclasses.replace(reused.compiled, definitional=False,
                                                              modules=ModuleCache()), reused.resolver, limits)
    return reused, fresh


def _call(contract: PythonContract, store: MemoryStore, method: str, args: Any = None) -> tuple[Any, ...]:
    """Everything a receipt would hold of one call; the writes are committed into ``store``."""
    state = ContractState(contract.name, BlockOverlay(store))
    ctx = TxContext(chain_id="test", height=7, timestamp_ms=1_000, tx_id=b"\x01" * 32, caller=CALLER)
    try:
        result, steps = contract.call(method, args, ctx, state)
    except ContractError as exc:
        return ("error", exc.code, str(exc), sorted(state.writes.items()))
    for key, value in state.writes.items():
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
    return ("ok", result, steps, sorted(state.writes.items()), [(e.name, e.data) for e in state.events])


def _same_on_both(code: str, calls: list[tuple[str, Any]], limits: SandboxLimits = FAST_LIMITS) -> list[Any]:
    reused, fresh = _twins(code, limits)
    assert reused.compiled.definitional and not fresh.compiled.definitional
    store_a, store_b = MemoryStore(), MemoryStore()
    outcomes = []
    for method, args in calls:
        a, b = _call(reused, store_a, method, args), _call(fresh, store_b, method, args)
        assert a == b, (method, args)
        outcomes.append(a)
    assert store_a == store_b
    assert reused.compiled.modules.template is not None and not reused.compiled.modules.disabled
    assert fresh.compiled.modules.template is None
    return outcomes


def test_mutated_module_values_and_defaults_are_fresh_in_every_call() -> None:
    outcomes = _same_on_both(PROBE, [("grow", [7])] * 3 + [("alias", None)] * 3)
    assert [o[1] for o in outcomes[:3]] == [[2, 4, "xy", 600, -(2**40) + 1]] * 3
    # SHARED and the list in PAIR are one list, as in a fresh run
    assert [o[1] for o in outcomes[3:]] == [[3, 3, True]] * 3


def test_state_events_and_steps_agree_call_after_call() -> None:
    calls = [("count", ["a"]), ("count", ["b"]), ("fail_after_mutating", None), ("count", ["a"]),
             ("grow", [1]), ("count", ["a"])]
    outcomes = _same_on_both(PROBE, calls)
    assert [o[1] for o in outcomes if o[0] == "ok" and isinstance(o[1], int)] == [1, 1, 2, 3]
    assert outcomes[2][0] == "error" and "refused on purpose" in outcomes[2][2]


def test_a_budget_below_the_module_bodys_charge_fails_exactly_as_a_fresh_run() -> None:
    """BANNER costs 600 bytes of allocation when the body runs; a later call left with less
    than that fails at the module body in both, the same way, and reuse goes on afterwards."""
    reused, fresh = _twins(PROBE)
    store_a, store_b = MemoryStore(), MemoryStore()
    assert _call(reused, store_a, "count", ["a"]) == _call(fresh, store_b, "count", ["a"])
    template = reused.compiled.modules.template
    assert template.allocation >= 600
    for tight in (SandboxLimits(steps_max=FAST_LIMITS.steps_max, allocation_bytes_max=template.allocation - 1),
                  SandboxLimits(steps_max=3, allocation_bytes_max=FAST_LIMITS.allocation_bytes_max)):
        small_a = PythonContract(reused.record, reused.compiled, reused.resolver, tight)
        small_b = PythonContract(fresh.record, fresh.compiled, fresh.resolver, tight)
        a, b = _call(small_a, store_a, "count", ["a"]), _call(small_b, store_b, "count", ["a"])
        assert a == b and a[0] == "error"
    # the body's allocation is charged in a reused body too: what a method may still allocate
    # is the same
    roomy = SandboxLimits(steps_max=FAST_LIMITS.steps_max, allocation_bytes_max=template.allocation + 5_000)
    room_a = PythonContract(reused.record, reused.compiled, reused.resolver, roomy)
    room_b = PythonContract(fresh.record, fresh.compiled, fresh.resolver, roomy)
    for size in (4_000, 5_001):
        a, b = _call(room_a, store_a, "spend", [size]), _call(room_b, store_b, "spend", [size])
        assert a == b and a[0] == ("ok" if size == 4_000 else "error")
    assert _call(reused, store_a, "count", ["a"]) == _call(fresh, store_b, "count", ["a"])
    assert not reused.compiled.modules.disabled


def test_a_call_inside_a_call_gets_its_own_module_body() -> None:
    reused, _ = _twins(PROBE)
    store = MemoryStore()
    _call(reused, store, "count", ["a"])  # the first run: the template and one body in the pool
    ctx = TxContext(chain_id="test", height=7, timestamp_ms=1_000, tx_id=b"\x01" * 32, caller=CALLER)
    execution = _Execution(FAST_LIMITS, reused.resolver, ctx)
    outer_state = ContractState("probe", BlockOverlay(store))
    inner_state = ContractState("probe", BlockOverlay(store))
    outer = _acquire_module(reused.compiled, "probe", execution, _Api(execution, outer_state, reused, CALLER))
    inner = _acquire_module(reused.compiled, "probe", execution, _Api(execution, inner_state, reused, CALLER))
    assert outer.globals is not inner.globals
    assert outer.globals["counts"]._api._state is outer_state  # noqa: SLF001
    assert inner.globals["counts"]._api._state is inner_state  # noqa: SLF001
    inner.release()
    outer.release()
    assert len(reused.compiled.modules.free) == 2


@pytest.mark.parametrize(("source", "definitional"), [
    ("X = 1\ndef f():\n    return X\n", True),
    ("from pilotchain.contracts.api import Map\nm = Map('m')\nL = [1, {'a': (2, -3)}]\nY = L\n", True),
    ("X = (1, 'a')\ndef f(x=X, *, y=(2, b'z')):\n    return x\n", True),
    ("from pilotchain.contracts.api import Variable\nX = Variable('x').get()\n", False),  # reads state
    ("from pilotchain.contracts.api import context\nH = context.height\n", False),  # per transaction
    ("A = B = []\n", False),
    ("def g():\n    return 1\nX = g()\n", False),
    ("def g():\n    return 1\ndef f(x=g):\n    return x\n", False),
    ("X = len('abc')\n", False),
    ("Map = 1\n", False),
    ("X: int\nY: int = 2\n", True),
])
def test_which_module_bodies_are_definitional(source: str, definitional: bool) -> None:
    assert module_is_definitional(ast.parse(source)) is definitional


def test_a_module_body_that_reads_state_runs_afresh_every_call() -> None:
    code = ('from pilotchain.contracts.api import Variable\nseen = Variable("seen")\nAT_LOAD = seen.get(0)\n'
            'def bump():\n    seen.set(AT_LOAD + 1)\n    return AT_LOAD\n')
    contract = contract_of(code)
    assert not contract.compiled.definitional
    store = MemoryStore()
    assert [_call(contract, store, "bump")[1] for _ in range(3)] == [0, 1, 2]
    assert contract.compiled.modules.template is None


def test_the_currency_contract_reuses_its_module_body() -> None:
    """The application this was built for: its 1,700-line body is definitional."""
    assert module_is_definitional(ast.parse(CURRENCY.read_text()))

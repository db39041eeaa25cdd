"""``attempt(function, *args)``: a savepoint inside a transaction. What a refused attempt wrote
and emitted is undone, what a successful one did is kept; the transaction's budget and the
sandbox's bounds are never caught; reused and fresh module bodies agree."""

from __future__ import annotations

from typing import Any

import pytest

from pilotchain.contracts.sandbox import SandboxLimits
from pilotchain.ledger.execution import BlockOverlay, ContractError, ContractState, TxContext
from pilotchain.ledger.tx import RejectCode
from tests.contracts.harness import CALLER, FAST_LIMITS, MemoryStore, contract_of, run
from tests.contracts.test_module_reuse import _same_on_both

CODE = '''
from pilotchain.contracts.api import Map, Variable, attempt, call, deny, emit, require

balances = Map("balances")
count = Variable("count")


def _move(source, target, amount):
    have = balances.get(source, 0)
    balances.set(source, have - amount)
    balances.set(target, balances.get(target, 0) + amount)
    emit("moved", {"from": source, "to": target, "amount": amount})
    require(have >= amount, source + " has " + str(have))
    return have - amount


def _boom(kind):
    balances.set("ghost", 1)
    emit("ghost", kind)
    if kind == "deny":
        deny("not yours")
    if kind == "key":
        return {}["missing"]
    if kind == "type":
        return 1 + "x"
    return 0


def _nested(amount):
    ok, value = attempt(_move, "a", "b", amount)
    balances.set("outer", 1)
    require(amount < 100, "outer refuses")
    return [ok, value]


def _forever():
    while True:
        count.set(1)


def _deep(n):
    return _deep(n + 1)


def _big():
    return "x" * 10_000_000


def seed(amounts):
    for name in sorted(amounts):
        balances.set(name, amounts[name])


def batch(moves):
    out = []
    for source, target, amount in moves:
        out.append(attempt(_move, source, target, amount))
    count.set(len(out))
    return [out, balances.get("a", 0), balances.get("b", 0), balances.get("c", 0)]


def errors(kinds):
    return [attempt(_boom, kind) for kind in kinds] + [balances.contains("ghost")]


def nested(amount):
    return [attempt(_nested, amount), balances.get("a", 0), balances.get("outer", 0)]


def runaway(which):
    if which == "steps":
        return attempt(_forever)
    if which == "depth":
        return attempt(_deep, 0)
    return attempt(_big)


def not_a_function(which):
    if which == "builtin":
        return attempt(sorted, [2, 1])
    return attempt(which)


def fail_after(amount):
    attempt(_move, "a", "b", amount)
    require(False, "the transaction fails after a kept attempt")


def cross(amount):
    return attempt(_call_other, amount)


def _call_other(amount):
    call("other", "bump", {"amount": amount})
    require(amount < 10, "too much for the other contract")
    return "called"
'''


def _state(store: MemoryStore) -> ContractState:
    return ContractState("probe", BlockOverlay(store))


def _seeded(**amounts: int) -> MemoryStore:
    store = MemoryStore()
    result, state = run(CODE, "seed", [amounts], store=store)
    assert result is None
    store.update({k: v for k, v in state.writes.items() if v is not None})
    return store


def test_a_refused_attempt_changes_nothing_and_the_others_apply() -> None:
    store = _seeded(a=10, b=0, c=0)
    result, state = run(CODE, "batch", [[["a", "b", 4], ["a", "c", 7], ["a", "c", 6], ["b", "c", 1]]], store=store)
    outcomes, a, b, c = result
    assert outcomes[0] == [True, 6]
    assert outcomes[1] == [False, {"code": "EXECUTION_FAILED", "message": "a has 6"}]
    assert outcomes[2] == [True, 0]
    assert outcomes[3] == [True, 3]
    assert (a, b, c) == (0, 3, 7)
    # events: only the applied moves, in order
    assert [e.name for e in state.events] == ["moved"] * 3
    assert b"count" in b"".join(state.writes)


def test_every_kind_of_contract_error_is_an_answer_and_undone() -> None:
    result, state = run(CODE, "errors", [["deny", "key", "type", "fine"]])
    *answers, ghost = result
    assert answers[0] == [False, {"code": "PERMISSION_DENIED", "message": "not yours"}]
    assert answers[1][0] is False and answers[1][1]["code"] == "EXECUTION_FAILED"
    assert "KeyError" in answers[1][1]["message"]
    assert answers[2][0] is False and "TypeError" in answers[2][1]["message"]
    assert answers[3] == [True, 0]
    assert ghost is True  # the last attempt succeeded: its write is kept
    assert [e.name for e in state.events] == ["ghost"]  # only the successful attempt's event


def test_nested_attempts_undo_the_inner_with_the_outer() -> None:
    store = _seeded(a=500, b=0)
    result, state = run(CODE, "nested", [5], store=store)
    (ok, inner), a, outer = result
    assert ok is True and inner == [True, 495] and (a, outer) == (495, 1)
    result, state = run(CODE, "nested", [200], store=store)
    (ok, error), a, outer = result
    assert ok is False and error["message"] == "outer refuses"
    assert (a, outer) == (500, 0)  # the inner attempt succeeded, the outer undid it
    assert state.events == []


@pytest.mark.parametrize("which, code", [("steps", RejectCode.OUT_OF_STEPS), ("depth", RejectCode.EXECUTION_FAILED),
                                         ("memory", RejectCode.EXECUTION_FAILED)])
def test_the_transactions_budget_and_bounds_are_never_caught(which: str, code: RejectCode) -> None:
    limits = SandboxLimits(steps_max=20_000, allocation_bytes_max=1024 * 1024)
    result, state = run(CODE, "runaway", [which], limits=limits)
    assert isinstance(result, ContractError), result
    assert result.code == code


@pytest.mark.parametrize("which", ["builtin", "text"])
def test_attempt_takes_only_a_function_of_the_contract(which: str) -> None:
    result, _ = run(CODE, "not_a_function", [which])
    assert isinstance(result, ContractError)
    assert "attempt(function, *args) takes a function of this contract" in str(result)


def test_a_failure_after_a_kept_attempt_fails_the_whole_call() -> None:
    """A kept attempt's writes are the call's writes: a later failure fails the call, and the
    ledger throws a failed transaction's writes away, the attempt's with them."""
    store = _seeded(a=10)
    result, state = run(CODE, "fail_after", [3], store=store)
    assert isinstance(result, ContractError) and "fails after a kept attempt" in str(result)
    assert result.code == RejectCode.EXECUTION_FAILED
    assert any(key.endswith(b"b") for key in state.writes)  # the attempt's write went with the call


def test_a_call_to_another_contract_inside_a_refused_attempt_is_undone() -> None:
    other = contract_of('''
from pilotchain.contracts.api import Variable, emit
bumps = Variable("bumps")

def bump(amount):
    bumps.set(bumps.get(0) + amount)
    emit("bumped", amount)
''', name="other")
    probe = contract_of(CODE)

    class Resolver:
        def get(self, name: str, state: Any) -> Any:
            return other if name == "other" else None

        def suite_of(self, state: Any) -> Any:
            raise AssertionError("not needed")

    object.__setattr__(probe, "resolver", Resolver())
    store = MemoryStore()
    ctx = TxContext(chain_id="test", height=7, timestamp_ms=1_000, tx_id=b"\x01" * 32, caller=CALLER)
    state = ContractState("probe", BlockOverlay(store))
    result, _ = probe.call("cross", [50], ctx, state)
    assert result[0] is False and result[1]["message"] == "too much for the other contract"
    assert state.writes == {} and state.events == []
    state = ContractState("probe", BlockOverlay(store))
    result, _ = probe.call("cross", [5], ctx, state)
    assert result == [True, "called"]
    assert [e.name for e in state.events] == ["bumped"]
    assert any(key.startswith(b"other\x00") for key in state.writes)


def test_reused_and_fresh_module_bodies_agree_on_attempts() -> None:
    calls: list[tuple[str, Any]] = [
        ("seed", [{"a": 10, "b": 0, "c": 0}]),
        ("batch", [[["a", "b", 4], ["a", "c", 7], ["b", "c", 1]]]),
        ("errors", [["deny", "fine", "key"]]),
        ("nested", [5]), ("nested", [200]),
        ("batch", [[["c", "a", 100]]]),
    ]
    outcomes = _same_on_both(CODE, calls, FAST_LIMITS)
    assert outcomes[1][0] == "ok" and outcomes[1][1][0][1][0] is False

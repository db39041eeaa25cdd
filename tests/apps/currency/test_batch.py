"""Payments in batches (``pay_batch``): an operator submits many holders' signed instructions in one
transaction it signs. Each payment is applied whole or not at all, exactly as ``pay`` applies it on
its own — the same outcomes, balances, limits, sequence numbers and history as the same
instructions submitted one by one — a refused one changes nothing and stops no other, and the
supply audit balances."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import pytest

from pilotchain.apps.currency.audit import audit_chain
from pilotchain.apps.currency.client import CurrencyError, HolderKey
from tests.apps.currency.helpers import BANK_A, BANK_B, CNY, World, currency_chain
from tests.apps.currency.test_payments import Clock

pytestmark = pytest.mark.timeout(180)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
WALLET_FIELDS = ("balance", "seq", "day_out", "day_n", "year_out", "flags", "status")


def _instructions(world: World) -> list[dict[str, Any]]:
    """Bank A's instructions: some apply, some are refused, one repeats an earlier one."""
    bank = world.operator(BANK_A)
    keys = world.keys
    first = bank.pay_args(keys["alice"], "alice", "bob", 100 * CNY, client_key="order-1", seq=1)
    forged = bank.pay_args(HolderKey.generate(world.suite), "alice", "bob", 10 * CNY, client_key="order-2", seq=2)
    carol = world.operator(BANK_B).pay_args(keys["carol"], "carol", "alice", 5 * CNY, client_key="c-1", seq=1)
    too_much = bank.pay_args(keys["alice"], "alice", "bob", 2_000 * CNY, client_key="order-3", seq=3)
    replay = {**first, "client_key": "order-4"}  # the first instruction's seq is spent
    over_cap = bank.pay_args(keys["alice"], "alice", "dave", 300 * CNY, client_key="order-5", seq=4)
    fine = bank.pay_args(keys["alice"], "alice", "dave", 10 * CNY, client_key="order-6", memo="lunch", seq=5)
    to_self = bank.pay_args(keys["bob"], "bob", "bob", 1 * CNY, client_key="b-1", seq=1)
    bob_pays = bank.pay_args(keys["bob"], "bob", "alice", 40 * CNY, client_key="b-2", seq=2)
    return [first, forged, carol, too_much, dict(first), replay, over_cap, fine, to_self, bob_pays]


def _currency(stack: Any) -> World:
    """A currency chain whose clock starts now and, once it is set up, moves to noon tomorrow in
    Shanghai, so every payment of a test falls on one calendar day whenever the test runs."""
    clock = Clock(int(dt.datetime.now(dt.UTC).timestamp() * 1000))
    world: World = stack.enter_context(currency_chain(clock_ms=clock))
    tomorrow = dt.datetime.now(SHANGHAI).date() + dt.timedelta(days=1)
    clock.to(dt.datetime(tomorrow.year, tomorrow.month, tomorrow.day, 12, tzinfo=SHANGHAI))
    return world


def _world(stack: Any) -> World:
    world = _currency(stack)
    world.issue(BANK_A, 100_000 * CNY)
    world.issue(BANK_B, 100_000 * CNY)
    world.open(BANK_A, "alice", tier=3, balance=1_000 * CNY)
    world.open(BANK_A, "bob", tier=3)
    world.open(BANK_B, "carol", tier=3, balance=100 * CNY)
    world.open(BANK_A, "dave", tier=4, balance=9_800 * CNY)  # tier 4 holds at most 10,000 CNY
    return world


def _one_by_one(world: World, instructions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    bank = world.operator(BANK_A)
    out: list[tuple[Any, ...]] = []
    for args in instructions:
        try:
            result = bank.submit("pay", args)
        except CurrencyError as exc:
            out.append((False, exc.code, exc.message))
        else:
            out.append((True, _comparable(result)))
    return out


def _batched(world: World, instructions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    results = world.operator(BANK_A).pay_batch(instructions)
    assert len(results) == len(instructions)
    return [(True, _comparable(r["payment"])) if r["ok"] else (False, r["code"], r["message"]) for r in results]


def _comparable(payment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payment.items() if k not in ("height", "ms")}  # the twins' blocks differ


def _wallets(world: World) -> dict[str, tuple[Any, ...]]:
    return {name: tuple(world.wallet(name)[f] for f in WALLET_FIELDS) for name in ("alice", "bob", "carol", "dave")}


def test_a_batch_gives_exactly_what_the_same_payments_one_by_one_give() -> None:
    with contextlib.ExitStack() as stack:
        single, batch = _world(stack), _world(stack)
        expected = _one_by_one(single, _instructions(single))
        got = _batched(batch, _instructions(batch))
        assert [o[0] for o in got] == [True, False, False, False, True, False, False, True, False, True]
        assert got == expected
        assert got[1][1] == "PERMISSION_DENIED" and "only its holder" in got[1][2]
        assert got[2][1] == "PERMISSION_DENIED" and "managed by bank-b" in got[2][2]
        assert got[3][1] == "EXECUTION_FAILED" and "900.00 CNY available" in got[3][2]
        assert got[4] == got[0]  # the repeat returns the first result and moves nothing
        assert got[5][1] == "BAD_ARGUMENTS" and "seq must be above" in got[5][2]
        assert got[6][1] == "EXECUTION_FAILED" and "above its balance cap" in got[6][2]
        assert got[8][1] == "EXECUTION_FAILED" and "does not pay itself" in got[8][2]
        assert _wallets(batch) == _wallets(single)
        assert batch.wallet("alice")["balance"] == (1_000 - 100 - 10 + 40) * CNY
        assert batch.supply()["wallets"] == single.supply()["wallets"]
        for world in (single, batch):
            report = audit_chain(world.chain.client())
            assert report["checked_against_state"] and report["buckets_checked"] >= 5
        # the history holds the applied payments only, the same on both
        assert batch.supply()["history"]["count"] == single.supply()["history"]["count"]


def test_a_malformed_entry_is_refused_alone_and_the_batch_is_bounded() -> None:
    with contextlib.ExitStack() as stack:
        world = _currency(stack)
        world.issue(BANK_A, 10_000 * CNY)
        key = world.open(BANK_A, "alice", tier=3, balance=1_000 * CNY)
        world.open(BANK_A, "bob", tier=3)
        bank = world.operator(BANK_A)
        good = bank.pay_args(key, "alice", "bob", 1 * CNY)
        results = bank.pay_batch([{"payer": "alice"}, {**good, "extra": 1}, "not a map", good])
        assert [r["ok"] for r in results] == [False, False, False, True]
        assert all(r["code"] == "BAD_ARGUMENTS" and "memo optional" in r["message"] for r in results[:3])
        # a memo may be left out
        no_memo = {k: v for k, v in bank.pay_args(key, "alice", "bob", 1 * CNY).items() if k != "memo"}
        assert bank.pay_batch([no_memo])[0]["ok"]
        for payments in ([], [good] * 101, "x"):
            with pytest.raises(CurrencyError) as caught:
                bank.submit("pay_batch", {"payments": payments})
            assert caught.value.code == "BAD_ARGUMENTS" and "1..100 payments" in caught.value.message
        # the bound is configuration the central bank changes (maker-checker)
        world.passed("set_config", {"changes": {"batch_max": 2}})
        with pytest.raises(CurrencyError) as caught:
            bank.submit("pay_batch", {"payments": [good] * 3})
        assert "1..2 payments" in caught.value.message
        with pytest.raises(CurrencyError) as caught:
            world.officer(0).propose("set_config", {"changes": {"batch_max": 201}})
        assert caught.value.code == "BAD_ARGUMENTS"
        assert world.wallet("alice")["balance"] == 998 * CNY


def test_payments_in_one_batch_see_each_other_and_limits_count_across_them() -> None:
    """A tier-3 wallet pays at most 10,000 CNY a day: a batch of payments that crosses the daily
    limit applies those below it, in order, and refuses the rest; the payee's balance cap counts
    what earlier entries of the batch paid in."""
    with contextlib.ExitStack() as stack:
        world = _currency(stack)
        world.issue(BANK_A, 100_000 * CNY)
        key = world.open(BANK_A, "alice", tier=3, balance=19_000 * CNY)
        world.open(BANK_A, "bob", tier=1, linked="acct-bob")
        world.open(BANK_A, "dave", tier=4)
        bank = world.operator(BANK_A)
        batch = [bank.pay_args(key, "alice", "bob", 4_000 * CNY) for _ in range(3)]
        batch += [bank.pay_args(key, "alice", "bob", 2_000 * CNY)]
        batch += [bank.pay_args(key, "alice", "dave", 5_000 * CNY), bank.pay_args(key, "alice", "dave", 5_000 * CNY)]
        results = bank.pay_batch(batch)
        assert [r["ok"] for r in results] == [True, True, False, True, False, False]
        assert "daily limit" in results[2]["message"] and "daily limit" in results[4]["message"]
        alice = world.wallet("alice")
        assert alice["day_out"] == 10_000 * CNY and alice["balance"] == 9_000 * CNY
        assert world.wallet("bob")["balance"] == 10_000 * CNY
        assert audit_chain(world.chain.client())["checked_against_state"]

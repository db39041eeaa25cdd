"""Invariants at every block, and conflicting transactions in one block.

* Supply conservation: issued - redeemed == sum of operator vaults + wallets + envelopes + held +
  offline — read from the contract's aggregates *and* recomputed from every wallet and vault.
* No payment half-applied: a failed transaction changes nothing; a successful one moves exactly
  what its result says (checked against an independent model of every balance).
* Limits are never exceeded: no wallet above its cap, no day's total above the daily limit.

The state machine submits one to four transactions per block (so they conflict: two payments
from one wallet that cannot both be funded, a payment and a freeze, a close and a payment), then
commits the block and checks everything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from pilotchain.apps.currency.client import HolderKey, new_client_key
from pilotchain.sdk import TxResult
from tests.apps.currency.helpers import BANK_A, BANK_B, CNY, World, currency_chain

pytestmark = pytest.mark.timeout(600)
OPERATORS = (BANK_A, BANK_B)


def check_supply(world: World, wallets: list[str]) -> dict[str, Any]:
    """The aggregates balance, and they equal the sums over every wallet and vault."""
    bank = world.operator(BANK_A)
    supply = bank.supply()
    assert supply["balanced"], supply
    vaults = sum(bank.operator(org)["vault"] for org in OPERATORS)  # type: ignore[index]
    records = [bank.wallet(w) for w in wallets]
    own = sum(r["balance"] for r in records if r is not None)
    envelopes = sum(sum(r["envelopes"].values()) for r in records if r is not None)
    held = sum(r["held"] for r in records if r is not None)
    assert (supply["vaults"], supply["wallets"]) == (vaults, own), supply
    assert supply["envelopes"] >= envelopes and supply["held"] == held, supply
    assert supply["issued"] - supply["redeemed"] == (supply["vaults"] + supply["wallets"] + supply["envelopes"]
                                                     + supply["held"] + supply["offline"])
    return supply


def test_conflicting_payments_in_one_block_apply_one_and_refuse_the_other_whole() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 10_000 * CNY)
        alice = world.open(BANK_A, "alice", tier=3, balance=100 * CNY)
        for name in ("bob", "carol"):
            world.open(BANK_B, name, tier=3)
        bank = world.operator(BANK_A)
        first = bank.pay_args(alice, "alice", "bob", 80 * CNY)
        second = bank.pay_args(alice, "alice", "carol", 80 * CNY)
        results = world.in_one_block([(BANK_A, "pay", first), (BANK_A, "pay", second)])
        statuses = sorted(r.status for r in results)
        assert statuses == ["EXECUTION_FAILED", "OK"], [(r.status, r.receipt) for r in results]
        failed = next(r for r in results if not r.ok)
        assert "available" in failed.receipt.message  # type: ignore[union-attr]
        balances = {w: world.wallet(w)["balance"] for w in ("alice", "bob", "carol")}
        assert sorted(balances.values()) == [0, 20 * CNY, 80 * CNY]
        # the same instruction submitted twice in one block (an operator's retry): one payment
        bank.load("alice", 50 * CNY)
        again = bank.pay_args(alice, "alice", "bob", 30 * CNY, client_key="retry-1")
        results = world.in_one_block([(BANK_A, "pay", again), (BANK_A, "pay", again)])
        assert [r.status for r in results] == ["OK", "OK"] and results[0].result == results[1].result
        assert world.wallet("alice")["balance"] == (20 + 50 - 30) * CNY
        # a payment and a freeze of its payer in one block: the order in the block decides, wholly
        pay = bank.pay_args(alice, "alice", "bob", 5 * CNY)
        results = world.in_one_block([(BANK_A, "freeze", {"wallet": "alice", "mode": "full", "reason": "x"}),
                                      (BANK_A, "pay", pay)])
        assert results[0].ok and not results[1].ok and "frozen" in results[1].receipt.message  # type: ignore[union-attr]
        assert world.wallet("alice")["balance"] == 40 * CNY
        check_supply(world, ["alice", "bob", "carol"])


def test_two_operators_paying_the_same_capped_wallet_in_one_block() -> None:
    """Both payments are valid alone; together they would break the payee's balance cap: the
    second in the block is refused whole (nothing debited from its payer)."""
    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.issue(BANK_B, 100_000 * CNY)
        a = world.open(BANK_A, "a", tier=3, balance=5_000 * CNY)
        b = world.open(BANK_B, "b", tier=3, balance=5_000 * CNY)
        world.open(BANK_A, "capped", tier=4, balance=6_000 * CNY)  # cap 10,000
        results = world.in_one_block([
            (BANK_A, "pay", world.operator(BANK_A).pay_args(a, "a", "capped", 2_500 * CNY)),
            (BANK_B, "pay", world.operator(BANK_B).pay_args(b, "b", "capped", 2_500 * CNY))])
        assert [r.ok for r in results].count(True) == 1
        assert "balance cap" in next(r for r in results if not r.ok).receipt.message  # type: ignore[union-attr]
        assert world.wallet("capped")["balance"] == 8_500 * CNY
        assert world.wallet("a")["balance"] + world.wallet("b")["balance"] == 7_500 * CNY
        check_supply(world, ["a", "b", "capped"])


@contextlib.contextmanager
def _machine_world() -> Iterator[World]:
    with currency_chain(config={"tiers": {"4": {"balance_max": 3_000 * CNY, "payment_max": 800 * CNY,
                                                "daily_max": 1_500 * CNY, "annual_max": 20_000 * CNY}}}) as world:
        for org in OPERATORS:
            world.issue(org, 1_000_000 * CNY)
        yield world


class CurrencyMachine(RuleBasedStateMachine):
    """Randomised workload; one block per rule; every invariant after every block."""

    world: World
    #: every wallet of every example so far (the chain lives across examples; the supply covers them all)
    every_wallet: list[str] = []
    opened = 0

    def __init__(self) -> None:
        super().__init__()
        self.wallets: list[str] = []
        self.model: dict[str, int] = {}
        self.vaults: dict[str, int] = {}
        self.applied: set[str] = set()

    @initialize(tiers=st.lists(st.sampled_from([2, 3, 4]), min_size=3, max_size=3), data=st.data())
    def start(self, tiers: list[int], data: st.DataObject) -> None:
        bank = self.world.operator(BANK_A)
        self.vaults = {org: bank.operator(org)["vault"] for org in OPERATORS}  # type: ignore[index]
        for index, tier in enumerate(tiers):
            self.open_wallet(OPERATORS[index % 2], tier, data)

    # -- helpers

    def _apply(self, calls: list[tuple[str, str, dict[str, Any]]]) -> list[TxResult]:
        results = self.world.in_one_block(calls)
        for (org, method, args), result in zip(calls, results, strict=True):
            if not result.ok:
                continue
            if method == "pay":
                if result.result["id"] in self.applied:
                    continue  # an idempotent retry: the first submission's result, nothing moved
                self.applied.add(result.result["id"])
                self.model[args["payer"]] -= result.result["own"]
                self.model[args["payee"]] += result.result["amount"]
            elif method == "load":
                self.model[args["wallet"]] += args["amount"]
                self.vaults[org] -= args["amount"]
            elif method == "unload":
                self.model[args["wallet"]] -= args["amount"]
                self.vaults[org] += args["amount"]
        return results

    def _pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(self.wallets))

    # -- rules

    @rule(org=st.sampled_from(OPERATORS), tier=st.sampled_from([2, 3, 4]), data=st.data())
    def open_wallet(self, org: str, tier: int, data: st.DataObject) -> None:
        CurrencyMachine.opened += 1
        name = f"m-{CurrencyMachine.opened}"
        key = HolderKey.generate(self.world.suite)
        self.world.keys[name] = key
        self.world.operator(org).open_wallet(name, key, tier=tier, linked=f"acct-{name}" if tier <= 2 else "")
        self.wallets.append(name)
        self.every_wallet.append(name)
        self.model[name] = 0
        self.vaults[org] = self.vaults[org]
        amount = data.draw(st.integers(min_value=1, max_value=4_000)) * CNY
        self._apply([(org, "load", {"wallet": name, "amount": amount, "ref": ""})])

    @rule(org=st.sampled_from(OPERATORS), amount=st.integers(min_value=1, max_value=200_000))
    def issue(self, org: str, amount: int) -> None:
        self.world.issue(org, amount * CNY)
        self.vaults[org] += amount * CNY

    @rule(data=st.data(), count=st.integers(min_value=1, max_value=4))
    def payments_in_one_block(self, data: st.DataObject, count: int) -> None:
        if len(self.wallets) < 2:
            return
        calls = []
        for _ in range(count):
            payer = self._pick(data)
            payee = data.draw(st.sampled_from([w for w in self.wallets if w != payer]))
            amount = data.draw(st.integers(min_value=1, max_value=1_000)) * CNY
            org = self.world.operator(BANK_A).wallet(payer)["operator"]  # type: ignore[index]
            args = self.world.operator(org).pay_args(self.world.keys[payer], payer, payee, amount)
            calls.append((org, "pay", args))
        if data.draw(st.booleans()):  # an operator's retry of the same instruction in the same block
            calls.append(calls[0])
        self._apply(calls)

    @rule(data=st.data())
    def unload(self, data: st.DataObject) -> None:
        if not self.wallets:
            return
        wallet = self._pick(data)
        org = self.world.operator(BANK_A).wallet(wallet)["operator"]  # type: ignore[index]
        amount = data.draw(st.integers(min_value=1, max_value=2_000)) * CNY
        client = self.world.operator(org)
        key = new_client_key()
        seq, signature = client.sign(self.world.keys[wallet], "unload", wallet, [amount, key])
        self._apply([(org, "unload", {"wallet": wallet, "amount": amount, "client_key": key, "seq": seq,
                                      "signature": signature})])

    # -- invariants

    @invariant()
    def supply_is_conserved_and_every_balance_is_as_modelled(self) -> None:
        bank = self.world.operator(BANK_A)
        for wallet in self.wallets:
            record = bank.wallet(wallet)
            assert record is not None and record["balance"] == self.model[wallet], (wallet, record, self.model[wallet])
            limits = record["limits"]
            assert limits["balance_max"] is None or record["balance"] <= limits["balance_max"]
            assert limits["daily_max"] is None or record["day_out"] <= limits["daily_max"]
        for org in OPERATORS:
            assert bank.operator(org)["vault"] == self.vaults[org]  # type: ignore[index]
        check_supply(self.world, self.every_wallet)


def test_supply_and_limits_hold_after_every_block_of_a_random_workload() -> None:
    with _machine_world() as world:
        CurrencyMachine.world = world
        CurrencyMachine.every_wallet = []
        run_state_machine_as_test(CurrencyMachine, settings=settings(
            max_examples=5, stateful_step_count=25, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))

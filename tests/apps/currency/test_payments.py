"""Wallets and two-tier payments: the holder's key and the operator both sign; tier limits (balance
cap, single payment, daily and annual totals in Asia/Shanghai calendar days from the block's
certified time) are checked atomically with the payment; idempotent submission; no replay."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotchain.apps.currency.client import CurrencyError, HolderKey
from pilotchain.apps.currency.statements import StatementError, civil_from_day, day_of, statement
from tests.apps.currency.helpers import BANK_A, BANK_B, CNY, currency_chain

pytestmark = pytest.mark.timeout(180)
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _refused(call: Callable[[], Any], code: str, words: str = "") -> CurrencyError:
    with pytest.raises(CurrencyError) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert words in caught.value.message, caught.value.message
    return caught.value


class Clock:
    """A development chain's clock that moves 1 ms per reading and jumps when told."""

    def __init__(self, start_ms: int) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        self.ms += 1
        return self.ms

    def to(self, moment: dt.datetime) -> None:
        self.to_ms(int(moment.timestamp() * 1000))

    def to_ms(self, target: int) -> None:
        assert target > self.ms, "the chain's clock only moves forward"
        self.ms = target


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=-(10**13), max_value=10**14))
def test_the_calendar_matches_the_iana_zone_for_asia_shanghai(ms: int) -> None:
    """The contract's integer calendar (the same arithmetic as statements.civil_from_day) agrees
    with Python's zoneinfo for Asia/Shanghai from 1992 (after its last daylight saving) on."""
    ms = abs(ms) + 694_224_000_000  # 1992-01-01 (China observed daylight saving 1986-1991)
    local = dt.datetime.fromtimestamp(ms / 1000, tz=SHANGHAI)
    assert civil_from_day(day_of(ms)) == (local.year, local.month, local.day)


def test_open_load_pay_and_read_the_limits_left() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.issue(BANK_B, 100_000 * CNY)
        world.open(BANK_A, "alice", tier=4, balance=3_000 * CNY)
        world.open(BANK_B, "shop", kind="merchant", tier=0)
        paid = world.pay("alice", "shop", 1_500 * CNY, memo="groceries")
        assert paid["amount"] == paid["own"] == 1_500 * CNY and paid["envelopes"] == 0
        alice, shop = world.wallet("alice"), world.wallet("shop")
        assert alice["balance"] == 1_500 * CNY and shop["balance"] == 1_500 * CNY
        assert alice["left"] == {"daily": 3_500 * CNY, "annual": 48_500 * CNY, "balance": 8_500 * CNY,
                                 "payment": 2_000 * CNY}
        assert alice["operator"] == BANK_A and shop["operator"] == BANK_B  # across operators
        supply = world.supply()
        assert supply["wallets"] == 3_000 * CNY and supply["vaults"] == 197_000 * CNY and supply["balanced"]


def test_tier_limits_single_payment_daily_and_balance_cap() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 1_000_000 * CNY)
        world.open(BANK_A, "anon", tier=4, balance=9_000 * CNY)
        world.open(BANK_A, "real", tier=2, balance=400_000 * CNY)
        world.open(BANK_A, "shop", kind="merchant", tier=0)
        _refused(lambda: world.pay("anon", "shop", 2_001 * CNY), "EXECUTION_FAILED", "single-payment limit")
        for _ in range(2):
            world.pay("anon", "shop", 2_000 * CNY)
        world.pay("anon", "shop", 1_000 * CNY)  # 5,000 today: the daily limit
        refused = _refused(lambda: world.pay("anon", "shop", 1), "EXECUTION_FAILED", "daily")
        assert "0.00 CNY left" in refused.message and "Asia/Shanghai" in refused.message
        # the refused payment moved nothing
        assert world.wallet("anon")["balance"] == 4_000 * CNY and world.wallet("shop")["balance"] == 5_000 * CNY
        # balance cap of tier 4: 10,000
        _refused(lambda: world.pay("real", "anon", 6_001 * CNY), "EXECUTION_FAILED", "balance cap")
        world.pay("real", "anon", 6_000 * CNY)
        _refused(lambda: world.operator(BANK_A).load("anon", 1), "EXECUTION_FAILED", "balance cap")
        # tier 2: 50,000 single, 100,000 a day
        _refused(lambda: world.pay("real", "shop", 50_001 * CNY), "EXECUTION_FAILED", "single-payment")
        world.pay("real", "shop", 50_000 * CNY)
        world.pay("real", "shop", 44_000 * CNY)
        _refused(lambda: world.pay("real", "shop", 1 + 0 * CNY), "EXECUTION_FAILED", "daily")
        assert world.supply()["balanced"]


def test_days_and_years_are_calendar_days_in_shanghai_from_the_block_time() -> None:
    # the chain starts now and jumps to 23:50 Shanghai on Dec 31 of this year (15:50 UTC)
    now = dt.datetime.now(SHANGHAI)
    start = dt.datetime(now.year, 12, 31, 23, 50, tzinfo=SHANGHAI)
    if start <= now + dt.timedelta(minutes=2):
        pytest.skip("the test needs the chain's clock before the end of this year")
    clock = Clock(int(now.timestamp() * 1000))
    with currency_chain(clock_ms=clock, config={"tiers": {"4": {
            "balance_max": 10_000 * CNY, "payment_max": 2_000 * CNY, "daily_max": 3_000 * CNY,
            "annual_max": 4_000 * CNY}}}) as world:
        clock.to(start)
        world.issue(BANK_A, 100_000 * CNY)
        world.open(BANK_A, "anon", tier=4, balance=10_000 * CNY)
        world.open(BANK_A, "shop", kind="merchant", tier=0)
        world.pay("anon", "shop", 2_000 * CNY)
        world.pay("anon", "shop", 1_000 * CNY)
        _refused(lambda: world.pay("anon", "shop", 1), "EXECUTION_FAILED", f"({start.year}-12-31, Asia/Shanghai)")
        # 00:00:30 on Jan 1 in Shanghai (still Dec 31 in UTC): a new day and a new year
        clock.to(dt.datetime(start.year + 1, 1, 1, 0, 0, 30, tzinfo=SHANGHAI))
        world.pay("anon", "shop", 2_000 * CNY)
        assert world.wallet("anon")["year"] == start.year + 1
        world.pay("anon", "shop", 1_000 * CNY)
        _refused(lambda: world.pay("anon", "shop", 1), "EXECUTION_FAILED", "daily")
        # next day: the daily total resets; the annual one (4,000) does not
        clock.to(dt.datetime(start.year + 1, 1, 2, 0, 0, 1, tzinfo=SHANGHAI))
        world.pay("anon", "shop", 1_000 * CNY)
        _refused(lambda: world.pay("anon", "shop", 1), "EXECUTION_FAILED", "annual limit")
        assert world.wallet("anon")["left"]["annual"] == 0


def test_the_holder_signs_and_the_operator_submits() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 10_000 * CNY)
        key = world.open(BANK_A, "alice", tier=3, balance=1_000 * CNY)
        world.open(BANK_B, "bob", tier=3)
        bank_a, bank_b = world.operator(BANK_A), world.operator(BANK_B)
        # another operator cannot submit for alice, even with her signature
        _refused(lambda: bank_b.pay(key, "alice", "bob", 10), "PERMISSION_DENIED", "managed by bank-a")
        # the operator cannot pay without the holder's key
        forged = HolderKey.generate(world.suite)
        _refused(lambda: bank_a.pay(forged, "alice", "bob", 10), "PERMISSION_DENIED", "only its holder")
        # a signature over other fields (the amount changed in transit) does not verify
        args = bank_a.pay_args(key, "alice", "bob", 10)
        _refused(lambda: bank_a.submit("pay", {**args, "amount": 1_000}), "PERMISSION_DENIED", "does not verify")
        # a signature made for another chain does not verify here
        seq = key.next_seq()
        other = key.sign(statement("another-chain", "pay", "alice", seq, ["bob", 10, "k-1"]))
        _refused(lambda: bank_a.submit("pay", {"payer": "alice", "payee": "bob", "amount": 10, "client_key": "k-1",
                                               "seq": seq, "signature": other}), "PERMISSION_DENIED")
        # an instruction for the same fields signed as another kind (unload) does not pass for a payment
        seq = key.next_seq()
        unload_sig = key.sign(statement(bank_a.chain_id, "unload", "alice", seq, ["bob", 10, "k-2"]))
        _refused(lambda: bank_a.submit("pay", {"payer": "alice", "payee": "bob", "amount": 10, "client_key": "k-2",
                                               "seq": seq, "signature": unload_sig}), "PERMISSION_DENIED")
        assert world.wallet("alice")["balance"] == 1_000 * CNY


def test_submission_is_idempotent_and_instructions_cannot_be_replayed() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 10_000 * CNY)
        key = world.open(BANK_A, "alice", tier=3, balance=1_000 * CNY)
        world.open(BANK_A, "bob", tier=3)
        bank = world.operator(BANK_A)
        args = bank.pay_args(key, "alice", "bob", 100 * CNY, client_key="order-17")
        first = bank.submit("pay", args)
        again = bank.submit("pay", args)  # the operator retries after a timeout: same result, nothing moves
        assert again == first and world.wallet("alice")["balance"] == 900 * CNY
        # the same client key with another signed instruction still returns the first payment
        assert bank.pay(key, "alice", "bob", 300 * CNY, client_key="order-17") == first
        assert world.wallet("bob")["balance"] == 100 * CNY
        # an old signature under a new client key is a replay (its seq is spent)
        replay = {**args, "client_key": "order-18"}
        _refused(lambda: bank.submit("pay", replay), "BAD_ARGUMENTS", "seq must be above")
        # a lower seq than the last accepted is refused even with a valid signature
        low = bank.pay_args(key, "alice", "bob", 1, seq=args["seq"] - 1)
        _refused(lambda: bank.submit("pay", low), "BAD_ARGUMENTS", "seq must be above")


@pytest.mark.parametrize("amount", [0, -5, True, 10**15 + 1, "100"])
def test_malformed_amounts_are_refused(amount: Any) -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 1_000 * CNY)
        key = world.open(BANK_A, "alice", tier=3, balance=1_000 * CNY)
        world.open(BANK_A, "bob", tier=3)
        bank = world.operator(BANK_A)
        args = bank.pay_args(key, "alice", "bob", 1)
        _refused(lambda: bank.submit("pay", {**args, "amount": amount}), "BAD_ARGUMENTS", "positive whole number")


def test_unload_returns_currency_to_the_operator_vault() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 1_000 * CNY)
        key = world.open(BANK_A, "alice", tier=3, balance=600 * CNY)
        bank = world.operator(BANK_A)
        bank.unload(key, "alice", 250 * CNY)
        _refused(lambda: bank.unload(key, "alice", 351 * CNY), "EXECUTION_FAILED", "350.00 CNY available")
        assert world.wallet("alice")["balance"] == 350 * CNY
        assert bank.operator(BANK_A)["vault"] == 650 * CNY  # type: ignore[index]
        assert world.supply()["balanced"]


def test_opening_needs_the_holders_signature_and_the_tier_rules() -> None:
    with currency_chain() as world:
        bank = world.operator(BANK_A)
        key = HolderKey.generate(world.suite)
        _refused(lambda: bank.open_wallet("w1", key, tier=2), "EXECUTION_FAILED", "linked bank account")
        _refused(lambda: bank.open_wallet("w1", key, tier=5), "BAD_ARGUMENTS", "tier")
        # the client refuses an id that could smuggle a separator, and so does the contract
        with pytest.raises(StatementError):
            bank.open_wallet("w|1", key)
        _refused(lambda: bank.submit("open_wallet", {"wallet": "w|1", "public_key": key.public_key, "kind": "personal",
                                                     "tier": 4, "linked": "", "kyc": "", "signature": b"x"}),
                 "BAD_ARGUMENTS", "letters, digits")
        _refused(lambda: world.operator("central-bank").open_wallet("w1", key), "BAD_ARGUMENTS",
                 "not an authorised operator")
        bank.open_wallet("w1", key, tier=2, linked="acct-1")
        _refused(lambda: bank.open_wallet("w1", key), "EXECUTION_FAILED", "exists already")

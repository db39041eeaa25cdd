"""Programmable money that never impairs money: red envelopes (face value, merchant whitelist,
validity window, not transferable or redeemable, spent before own funds, refunds to own funds
first, unspent value back to the funder), prepaid escrow, holds and conditional payments,
interest on real-name wallets only — all idempotent by client key, all within the supply."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from pilotchain.apps.currency.client import CurrencyError
from tests.apps.currency.helpers import BANK_A, BANK_B, CNY, World, currency_chain
from tests.apps.currency.test_invariants import check_supply
from tests.apps.currency.test_payments import Clock

pytestmark = pytest.mark.timeout(240)
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def _refused(call: Callable[[], Any], code: str, words: str = "") -> CurrencyError:
    with pytest.raises(CurrencyError) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert words in caught.value.message, caught.value.message
    return caught.value


def _envelopes(world: World, wallet: str) -> dict[str, int]:
    return dict(world.wallet(wallet)["envelopes"])


def test_red_envelopes_from_campaign_to_expiry() -> None:
    clock = Clock(int(time.time() * 1000))
    with currency_chain(clock_ms=clock) as world:
        world.issue(BANK_A, 1_000_000 * CNY)
        world.issue(BANK_B, 1_000_000 * CNY)
        gov_key = world.open(BANK_A, "city-gov", kind="corporate", tier=0, balance=100_000 * CNY)
        world.open(BANK_A, "alice", tier=4, balance=50 * CNY)
        world.open(BANK_B, "bob", tier=3)
        shop_key = world.open(BANK_B, "noodles", kind="merchant", tier=0)
        world.open(BANK_B, "jeweller", kind="merchant", tier=0)
        bank_a, bank_b = world.operator(BANK_A), world.operator(BANK_B)
        start = clock.ms
        bank_a.envelope_campaign(gov_key, "city-gov", "spring-2027", face=100 * CNY, count=3, merchants=["noodles"],
                                 from_ms=start, until_ms=start + 30 * DAY_MS)
        assert world.wallet("city-gov")["balance"] == 99_700 * CNY
        assert world.supply()["envelopes"] == 300 * CNY
        # the funder's operator grants; another operator cannot; one envelope per wallet
        _refused(lambda: bank_b.envelope_grant("spring-2027", "bob"), "PERMISSION_DENIED", "grants")
        bank_a.envelope_grant("spring-2027", "alice")
        bank_a.envelope_grant("spring-2027", "bob")
        _refused(lambda: bank_a.envelope_grant("spring-2027", "alice"), "EXECUTION_FAILED", "already")
        assert _envelopes(world, "alice") == {"spring-2027": 100 * CNY}
        # not transferable: a payment to a wallet not on the whitelist uses own funds only
        world.pay("alice", "bob", 20 * CNY)
        assert _envelopes(world, "alice") == {"spring-2027": 100 * CNY} and world.wallet("alice")["balance"] == 30 * CNY
        _refused(lambda: world.pay("alice", "jeweller", 31 * CNY), "EXECUTION_FAILED", "available")
        # not redeemable: envelope value cannot be unloaded into a deposit
        _refused(lambda: bank_a.unload(world.keys["alice"], "alice", 31 * CNY), "EXECUTION_FAILED", "available")
        # spent before own funds at a whitelisted merchant
        paid = world.pay("alice", "noodles", 120 * CNY)
        assert (paid["envelopes"], paid["own"]) == (100 * CNY, 20 * CNY)
        assert _envelopes(world, "alice") == {} and world.wallet("alice")["balance"] == 10 * CNY
        # a refund returns own funds first, then envelope value to the envelope (the campaign runs)
        refund = bank_b.refund(shop_key, "noodles", paid["id"], 50 * CNY)
        assert (refund["own"], refund["envelopes"]) == (20 * CNY, 30 * CNY)
        assert world.wallet("alice")["balance"] == 30 * CNY and _envelopes(world, "alice") == {"spring-2027": 30 * CNY}
        _refused(lambda: bank_b.refund(shop_key, "noodles", paid["id"], 71 * CNY), "EXECUTION_FAILED", "has 7000 left")
        _refused(lambda: bank_b.refund(shop_key, "noodles", refund["id"], 1), "BAD_ARGUMENTS", "is not refunded")
        check_supply(world, ["city-gov", "alice", "bob", "noodles", "jeweller"])
        # the campaign ends: unspent and ungranted value returns to the funder, automatically on
        # the wallet's next payment, and for everyone by envelope_expire
        clock.to_ms(start + 30 * DAY_MS + 1)
        world.pay("alice", "noodles", 5 * CNY)
        assert _envelopes(world, "alice") == {} and world.wallet("alice")["balance"] == 25 * CNY
        ended = bank_b.envelope_expire("spring-2027")
        assert ended["done"] and ended["returned"] == 100 * CNY + 30 * CNY + 100 * CNY
        assert world.wallet("city-gov")["balance"] == 99_700 * CNY + 230 * CNY
        assert world.supply()["envelopes"] == 0
        _refused(lambda: bank_a.envelope_grant("spring-2027", "bob"), "EXECUTION_FAILED", "has ended")
        campaign = bank_a.query("campaign", {"campaign_id": "spring-2027"})
        assert (campaign["granted"], campaign["spent"], campaign["returned"]) == (2, 70 * CNY, 230 * CNY)
        # a later refund of envelope value goes to the funder, not back into an ended envelope
        bank_b.refund(shop_key, "noodles", paid["id"], 70 * CNY)
        assert world.wallet("alice")["balance"] == 25 * CNY
        assert world.wallet("city-gov")["balance"] == 99_700 * CNY + 300 * CNY
        check_supply(world, ["city-gov", "alice", "bob", "noodles", "jeweller"])


def test_prepaid_escrow_released_per_unit_and_refunded_when_the_service_stops() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        key = world.open(BANK_A, "alice", tier=3, balance=1_000 * CNY)
        gym_key = world.open(BANK_B, "gym", kind="merchant", tier=0)
        bank_a, bank_b = world.operator(BANK_A), world.operator(BANK_B)
        until = int(time.time() * 1000) + 90 * DAY_MS
        escrow = bank_a.escrow_open(key, "alice", "gym", unit_price=50 * CNY, units=10, until_ms=until,
                                    client_key="gym-2027")
        assert bank_a.escrow_open(key, "alice", "gym", unit_price=50 * CNY, units=10, until_ms=until,
                                  client_key="gym-2027") == escrow  # idempotent
        alice = world.wallet("alice")
        assert (alice["balance"], alice["held"], alice["total"]) == (500 * CNY, 500 * CNY, 1_000 * CNY)
        assert world.supply()["held"] == 500 * CNY
        _refused(lambda: bank_a.unload(key, "alice", 501 * CNY), "EXECUTION_FAILED", "available")  # frozen funds
        bank_b.escrow_deliver(gym_key, "gym", escrow["id"], 3)
        assert world.wallet("gym")["balance"] == 150 * CNY and world.wallet("alice")["held"] == 350 * CNY
        _refused(lambda: bank_b.escrow_deliver(gym_key, "gym", escrow["id"], 8), "BAD_ARGUMENTS", "1..7")
        # the payer cannot walk away before the service period ends
        _refused(lambda: bank_a.escrow_stop(escrow["id"], "payer", key, "alice"), "EXECUTION_FAILED", "has not ended")
        # the gym closes: its operator stops the service once its wallet is frozen; the rest is refunded
        _refused(lambda: bank_b.escrow_stop(escrow["id"], "operator"), "EXECUTION_FAILED", "stops the service itself")
        bank_b.freeze("gym", "full", "business closed")
        stopped = bank_b.escrow_stop(escrow["id"], "operator")
        assert stopped["status"] == "stopped" and stopped["refunded"] == 7
        alice = world.wallet("alice")
        assert (alice["balance"], alice["held"]) == (850 * CNY, 0)
        check_supply(world, ["alice", "gym"])


def test_holds_execute_or_release_and_conditional_payments_with_an_arbiter() -> None:
    clock = Clock(int(time.time() * 1000))
    with currency_chain(clock_ms=clock) as world:
        world.issue(BANK_A, 100_000 * CNY)
        key = world.open(BANK_A, "alice", tier=3, balance=1_000 * CNY)
        hotel = world.open(BANK_B, "hotel", kind="merchant", tier=0)
        notary = world.open(BANK_B, "notary", kind="corporate", tier=0)
        world.open(BANK_B, "seller", tier=3)
        bank_a, bank_b = world.operator(BANK_A), world.operator(BANK_B)
        # a hotel deposit: held, then executed by the payee
        deposit = bank_a.hold(key, "alice", "hotel", 300 * CNY, until_ms=clock.ms + DAY_MS, client_key="room-12")
        assert world.wallet("alice")["held"] == 300 * CNY and world.supply()["held"] == 300 * CNY
        bank_b.decide_hold("execute", hotel, "hotel", deposit["id"])
        assert world.wallet("hotel")["balance"] == 300 * CNY and world.wallet("alice")["held"] == 0
        _refused(lambda: bank_b.decide_hold("release", hotel, "hotel", deposit["id"]), "EXECUTION_FAILED", "executed")
        # a conditional payment: only the arbiter (the notary) confirms; the payee cannot take it
        house = bank_a.hold(key, "alice", "seller", 400 * CNY, until_ms=clock.ms + 2 * DAY_MS, arbiter="notary")
        _refused(lambda: bank_b.decide_hold("execute", world.keys["seller"], "seller", house["id"]),
                 "PERMISSION_DENIED", "notary can")
        # the payer cannot take it back before it ends; after that, the payer may release it
        _refused(lambda: bank_a.decide_hold("release", key, "alice", house["id"]), "PERMISSION_DENIED")
        clock.to_ms(clock.ms + 2 * DAY_MS + 1)
        released = bank_a.decide_hold("release", key, "alice", house["id"])
        assert released["status"] == "released" and world.wallet("alice")["balance"] == 700 * CNY
        third = bank_a.hold(key, "alice", "seller", 100 * CNY, until_ms=clock.ms + DAY_MS, arbiter="notary")
        bank_b.decide_hold("execute", notary, "notary", third["id"])
        assert world.wallet("seller")["balance"] == 100 * CNY
        check_supply(world, ["alice", "hotel", "notary", "seller"])


def test_interest_accrues_on_real_name_wallets_only() -> None:
    clock = Clock(int(time.time() * 1000))
    with currency_chain(clock_ms=clock, config={"interest_bp": 3_650}) as world:
        world.issue(BANK_A, 1_000_000 * CNY)
        world.open(BANK_A, "real", tier=2, balance=10_000 * CNY)
        world.open(BANK_A, "anon", tier=4, balance=5_000 * CNY)
        bank = world.operator(BANK_A)
        clock.to_ms(clock.ms + 10 * DAY_MS)
        paid = bank.pay_interest("real")
        # 10,000 CNY x 10 days x 36.50 % / 365 = 100 CNY (the holder's day changes at 00:00 Shanghai:
        # 10 or 11 day boundaries passed, depending on the hour the test starts)
        assert paid["interest"] in (100 * CNY, 110 * CNY)
        _refused(lambda: bank.pay_interest("anon"), "EXECUTION_FAILED", "earns no interest")
        # an anonymous wallet upgraded to real name starts accruing from then on
        bank.set_tier("anon", 3)
        assert world.wallet("anon")["interest"] is not None
        check_supply(world, ["real", "anon"])

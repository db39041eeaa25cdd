"""A wallet's life: upgrade and downgrade by re-KYC, freeze (full or receive-only) and unfreeze,
close with the balance swept to a linked account or another wallet, corporate and merchant
wallets, sub-wallets pushed to merchants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pilotchain.apps.currency.client import CurrencyError
from tests.apps.currency.helpers import BANK_A, BANK_B, CB, CNY, currency_chain

pytestmark = pytest.mark.timeout(180)


def _refused(call: Callable[[], Any], code: str, words: str = "") -> CurrencyError:
    with pytest.raises(CurrencyError) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert words in caught.value.message, caught.value.message
    return caught.value


def test_upgrade_and_downgrade_by_re_kyc() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.open(BANK_A, "w", tier=4, balance=9_000 * CNY)
        bank = world.operator(BANK_A)
        _refused(lambda: bank.set_tier("w", 2), "EXECUTION_FAILED", "linked bank account")
        bank.set_tier("w", 2, linked="acct-9")
        bank.load("w", 50_000 * CNY)  # tier 2's cap is 500,000
        assert world.wallet("w")["limits"]["payment_max"] == 50_000 * CNY
        _refused(lambda: bank.set_tier("w", 3), "EXECUTION_FAILED", "unload first")
        key = world.keys["w"]
        bank.unload(key, "w", 49_500 * CNY)
        bank.set_tier("w", 3)
        assert world.wallet("w")["tier"] == 3
        # only the wallet's operator does re-KYC
        _refused(lambda: world.operator(BANK_B).set_tier("w", 4), "PERMISSION_DENIED", "managed by bank-a")


def test_freeze_full_and_receive_only_and_who_unfreezes() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.open(BANK_A, "w", tier=3, balance=1_000 * CNY)
        world.open(BANK_A, "other", tier=3, balance=1_000 * CNY)
        bank, cb = world.operator(BANK_A), world.officer(0)
        bank.freeze("w", "receive_only", "suspected fraud report")
        _refused(lambda: world.pay("w", "other", 1), "EXECUTION_FAILED", "receive_only: it cannot pay")
        world.pay("other", "w", 10 * CNY)  # still receives
        cb.freeze("w", "full", "court order 2026-17")
        _refused(lambda: world.pay("other", "w", 1), "EXECUTION_FAILED", "frozen: it cannot receive")
        _refused(lambda: world.pay("w", "other", 1), "EXECUTION_FAILED", "frozen: it cannot pay")
        _refused(lambda: bank.unload(world.keys["w"], "w", 1), "EXECUTION_FAILED", "is frozen")
        # the operator cannot lift the central bank's freeze; the central bank can
        _refused(lambda: bank.unfreeze("w", "customer asks"), "PERMISSION_DENIED", "frozen by central-bank")
        _refused(lambda: world.operator(BANK_B).freeze("other", "full", "x"), "PERMISSION_DENIED",
                 "the wallet's operator, the central bank or a regulator")
        cb.unfreeze("w", "court order lifted")
        world.pay("w", "other", 10 * CNY)
        assert world.wallet("w")["balance"] == 1_000 * CNY
        assert world.operator(CB).wallet("w")["status"] == "active"  # type: ignore[index]


def test_close_sweeps_to_the_linked_account_or_to_a_wallet() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.open(BANK_A, "real", tier=2, linked="acct-77", balance=5_000 * CNY)
        world.open(BANK_A, "anon", tier=4, balance=700 * CNY)
        world.open(BANK_B, "friend", tier=3)
        bank = world.operator(BANK_A)
        vault_before = bank.operator(BANK_A)["vault"]  # type: ignore[index]
        closed = bank.close(world.keys["real"], "real")
        assert closed["swept"] == 5_000 * CNY and closed["to"] == "linked"
        assert bank.operator(BANK_A)["vault"] == vault_before + 5_000 * CNY  # type: ignore[index]
        _refused(lambda: world.pay("real", "anon", 1), "EXECUTION_FAILED", "closed")
        _refused(lambda: world.pay("anon", "real", 1), "EXECUTION_FAILED", "closed")
        # an anonymous wallet has no linked account: it names a wallet
        _refused(lambda: bank.close(world.keys["anon"], "anon"), "EXECUTION_FAILED", "no linked bank account")
        bank.close(world.keys["anon"], "anon", to="friend")
        assert world.wallet("friend")["balance"] == 700 * CNY and world.wallet("anon")["status"] == "closed"
        _refused(lambda: bank.close(world.keys["anon"], "anon", to="friend"), "EXECUTION_FAILED", "closed already")
        assert world.supply()["balanced"]


def test_corporate_and_merchant_wallets_follow_their_own_configured_limits() -> None:
    limits = {"balance_max": None, "payment_max": 1_000_000 * CNY, "daily_max": None, "annual_max": None}
    with currency_chain(config={"kinds": {"corporate": limits}}) as world:
        world.issue(BANK_A, 5_000_000 * CNY)
        world.open(BANK_A, "city-gov", kind="corporate", tier=0, balance=3_000_000 * CNY)
        world.open(BANK_B, "shop", kind="merchant", tier=0)
        world.pay("city-gov", "shop", 1_000_000 * CNY)
        _refused(lambda: world.pay("city-gov", "shop", 1_000_000 * CNY + 1), "EXECUTION_FAILED", "single-payment")
        _refused(lambda: world.operator(BANK_A).open_wallet("x", world.keys["shop"], kind="merchant", tier=2),
                 "BAD_ARGUMENTS", "tier 0")


def test_sub_wallets_pushed_to_a_merchant() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.issue(BANK_B, 100_000 * CNY)
        alice = world.open(BANK_A, "alice", tier=4, balance=9_000 * CNY)
        shop_key = world.open(BANK_B, "video-app", kind="merchant", tier=0)
        world.open(BANK_B, "other-shop", kind="merchant", tier=0)
        bank_a, bank_b = world.operator(BANK_A), world.operator(BANK_B)
        bank_a.open_sub_wallet(alice, "alice", "sub-x1", "video-app", 500 * CNY)
        _refused(lambda: bank_a.fund_sub(alice, "alice", "sub-x1", 501 * CNY), "EXECUTION_FAILED", "balance cap 500.00 CNY")
        bank_a.fund_sub(alice, "alice", "sub-x1", 300 * CNY)
        # the merchant charges the sub-wallet; it never learns "alice"
        charged = bank_b.charge(shop_key, "video-app", "sub-x1", 30 * CNY)
        assert charged["payer"] == "sub-x1" and "alice" not in str(charged)
        # another merchant cannot charge it, nor can the merchant charge more than is in it
        _refused(lambda: bank_b.charge(world.keys["other-shop"], "other-shop", "sub-x1", 1), "EXECUTION_FAILED",
                 "not pushed to other-shop")
        _refused(lambda: bank_b.charge(shop_key, "video-app", "sub-x1", 271 * CNY), "EXECUTION_FAILED", "available")
        # nobody pays into a sub-wallet but its holder
        _refused(lambda: world.pay("other-shop", "sub-x1", 1), "EXECUTION_FAILED", "funded only by its holder")
        # the holder's daily limit (5,000) counts the charges: 30 charged + 4,900 paid leaves 70
        world.open(BANK_B, "grocer", kind="merchant", tier=0)
        for amount in (2_000, 2_000, 900):
            world.pay("alice", "grocer", amount * CNY)
        assert world.wallet("alice")["left"]["daily"] == 70 * CNY
        _refused(lambda: bank_b.charge(shop_key, "video-app", "sub-x1", 100 * CNY), "EXECUTION_FAILED", "daily limit")
        returned = bank_a.close_sub(alice, "alice", "sub-x1")
        assert returned["returned"] == 270 * CNY
        assert world.wallet("alice")["balance"] == (9_000 - 300 - 4_900 + 270) * CNY
        _refused(lambda: bank_b.charge(shop_key, "video-app", "sub-x1", 1), "EXECUTION_FAILED", "closed")
        assert world.supply()["balanced"]


def test_closing_a_wallet_sweeps_its_open_sub_wallets_first() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        alice = world.open(BANK_A, "alice", tier=3, balance=1_000 * CNY)
        world.open(BANK_A, "shop", kind="merchant", tier=0)
        world.open(BANK_A, "bob", tier=3)
        bank = world.operator(BANK_A)
        bank.open_sub_wallet(alice, "alice", "sub-1", "shop", 400 * CNY)
        bank.fund_sub(alice, "alice", "sub-1", 400 * CNY)
        closed = bank.close(alice, "alice", to="bob")
        assert closed["swept"] == 1_000 * CNY and world.wallet("sub-1")["status"] == "closed"
        assert world.wallet("bob")["balance"] == 1_000 * CNY and world.supply()["balanced"]

"""Offline payments: both parties offline, counter-bound vouchers from a pre-funded offline
balance with amount / count / time limits; settlement on reconnection; a double-spent voucher is
detected, rejected and attributed to the device that signed it — also when its two copies reach
two operators in the same block."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pilotchain.apps.currency.client import CurrencyError, HolderKey
from pilotchain.apps.currency.offline import (
    DeviceCertificate,
    OfflineDevice,
    VoucherError,
    check_device_certificate,
    check_voucher,
    issue_device_certificate,
    voucher_from_json,
    voucher_to_json,
)
from tests.apps.currency.helpers import BANK_A, BANK_B, CNY, World, currency_chain
from tests.apps.currency.test_invariants import check_supply
from tests.apps.currency.test_payments import Clock

pytestmark = pytest.mark.timeout(240)
DAY_MS = 86_400_000


def _refused(call: Callable[[], Any], code: str, words: str = "") -> CurrencyError:
    with pytest.raises(CurrencyError) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert words in caught.value.message, caught.value.message
    return caught.value


def _funded(world: World, wallet: str, device_id: str, amount: int) -> OfflineDevice:
    key = HolderKey.generate(world.suite)
    org = world.operator_of(wallet)
    world.operator(org).offline_fund(world.keys[wallet], wallet, device_id, key.public_key, amount)
    return OfflineDevice(device_id, key, world.chain.chain_id)


def test_vouchers_settle_and_a_double_spend_is_caught_and_attributed(tmp_path: Path) -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.open(BANK_A, "alice", tier=3, balance=2_000 * CNY)
        world.open(BANK_B, "kiosk", kind="merchant", tier=0)
        world.open(BANK_B, "taxi", kind="merchant", tier=0)
        device = _funded(world, "alice", "card-01", 800 * CNY)
        assert world.wallet("alice")["balance"] == 1_200 * CNY and world.supply()["offline"] == 800 * CNY
        # offline: the payer's card signs, the payee's device checks it with the card's key, no network
        v1 = device.voucher("kiosk", 30 * CNY)
        carried, device_key, _ = voucher_from_json(voucher_to_json(v1, device.key.public_key))
        check_voucher(world.chain.chain_id, carried, device_key, world.suite)
        with pytest.raises(VoucherError):
            check_voucher(world.chain.chain_id, {**carried, "amount": 3_000 * CNY}, device_key, world.suite)
        v2 = device.voucher("taxi", 45 * CNY)
        # a tampered card re-uses counter 1 for another payee: both copies look fine offline
        forged = device.forge_with_counter(1, "taxi", 60 * CNY, int(time.time() * 1000))
        check_voucher(world.chain.chain_id, forged, device.key.public_key, world.suite)
        bank_b = world.operator(BANK_B)
        # reconnected: the kiosk's operator settles first; replaying it is a no-op
        assert [r["status"] for r in bank_b.settle("kiosk", [v1])] == ["settled"]
        assert [r["status"] for r in bank_b.settle("kiosk", [v1])] == ["duplicate"]
        # the taxi settles its honest voucher and the forged copy: the copy is rejected and attributed
        verdicts = bank_b.settle("taxi", [v2, forged])
        assert [r["status"] for r in verdicts] == ["settled", "double_spend"]
        record = bank_b.query("device", {"device_id": "card-01"})
        assert record["status"] == "compromised" and record["wallet"] == "alice"
        evidence = record["double_spends"][0]
        assert evidence["counter"] == 1 and evidence["first"] != evidence["second"] and evidence["voucher"]["payee"] == "taxi"
        assert world.wallet("kiosk")["balance"] == 30 * CNY and world.wallet("taxi")["balance"] == 45 * CNY
        assert record["balance"] == 725 * CNY and world.supply()["offline"] == 725 * CNY
        check_supply(world, ["alice", "kiosk", "taxi"])


def test_a_device_certificate_proves_the_funding_offline() -> None:
    """The payee's device, offline, with only the network's genesis: a funded device's vouchers
    pass; a key nobody funded, a certificate moved to another key, one signed by another operator
    for this one, an altered one, and vouchers beyond the certified balance or validity do not."""
    import dataclasses

    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.open(BANK_A, "alice", tier=3, balance=2_000 * CNY)
        world.open(BANK_B, "kiosk", kind="merchant", tier=0)
        device = _funded(world, "alice", "card-07", 300 * CNY)
        genesis, chain_id, suite = world.chain.genesis, world.chain.chain_id, world.suite
        recorded = world.operator(BANK_A).query("device", {"device_id": "card-07"})
        certificate = issue_device_certificate(world.chain.identity(BANK_A), chain_id, recorded)
        assert (certificate.operator, certificate.wallet, certificate.balance) == (BANK_A, "alice", 300 * CNY)
        device.certify(certificate)
        voucher = device.voucher("kiosk", 30 * CNY, time_ms=recorded["from_ms"] + 1)
        carried, key, travelled = voucher_from_json(voucher_to_json(voucher, device.key.public_key, device.certificate))
        assert travelled == certificate
        check_voucher(chain_id, carried, key, suite, certificate=travelled, genesis=genesis)

        def refused(words: str, v: dict[str, Any], k: bytes, c: DeviceCertificate | None) -> None:
            with pytest.raises(VoucherError, match=words):
                check_voucher(chain_id, v, k, suite, certificate=c, genesis=genesis)

        refused("no device certificate", carried, key, None)
        # a key nobody funded signs a voucher in card-07's name and carries card-07's certificate
        rogue = OfflineDevice("card-07", HolderKey.generate(suite), chain_id)
        refused("not for the key", rogue.voucher("kiosk", 30 * CNY, time_ms=recorded["from_ms"] + 1),
                rogue.key.public_key, certificate)
        # bank-b's identity signs a certificate naming bank-a as the operator
        impostor = issue_device_certificate(world.chain.identity(BANK_B), chain_id, recorded)
        refused("signed it", carried, key,
                dataclasses.replace(impostor, operator=BANK_A))
        refused("does not verify", carried, key, dataclasses.replace(certificate, balance=10**12))
        refused("funded with", device.voucher("kiosk", 301 * CNY, time_ms=recorded["from_ms"] + 1), key, certificate)
        refused("validity", device.voucher("kiosk", 1, time_ms=recorded["until_ms"]), key, certificate)
        with pytest.raises(VoucherError, match="other-chain"):
            check_device_certificate(dataclasses.replace(certificate, chain_id="other-chain"), genesis)


def test_the_two_copies_of_a_double_spend_in_one_block_at_two_operators() -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.open(BANK_A, "alice", tier=3, balance=1_000 * CNY)
        world.open(BANK_A, "bakery", kind="merchant", tier=0)
        world.open(BANK_B, "florist", kind="merchant", tier=0)
        device = _funded(world, "alice", "phone-se", 500 * CNY)
        now = int(time.time() * 1000)
        first = device.forge_with_counter(7, "bakery", 100 * CNY, now)
        second = device.forge_with_counter(7, "florist", 100 * CNY, now)
        results = world.in_one_block([(BANK_A, "settle", {"payee": "bakery", "vouchers": [first]}),
                                      (BANK_B, "settle", {"payee": "florist", "vouchers": [second]})])
        assert [r.result[0]["status"] for r in results] == ["settled", "double_spend"]
        events = [e.name for r in results for e in r.events]
        assert "double_spend" in events
        assert world.wallet("bakery")["balance"] == 100 * CNY and world.wallet("florist")["balance"] == 0
        check_supply(world, ["alice", "bakery", "florist"])


def test_amount_count_and_time_limits_and_overspending_a_device() -> None:
    clock = Clock(int(time.time() * 1000))
    config = {"offline": {"balance_max": 300 * CNY, "voucher_max": 100 * CNY, "vouchers_max": 3,
                          "valid_ms": 2 * DAY_MS, "grace_ms": DAY_MS}}
    with currency_chain(clock_ms=clock, config=config) as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.open(BANK_A, "alice", tier=3, balance=2_000 * CNY)
        world.open(BANK_A, "shop", kind="merchant", tier=0)
        bank = world.operator(BANK_A)
        _refused(lambda: _funded(world, "alice", "card-x", 301 * CNY), "EXECUTION_FAILED", "at most 30000")
        device = _funded(world, "alice", "card-1", 250 * CNY)
        start = clock.ms
        big = device.voucher("shop", 101 * CNY, start + 10)
        early = device.voucher("shop", 10 * CNY, start - DAY_MS)
        assert [r["status"] for r in bank.settle("shop", [big, early])] == ["over_limit", "out_of_window"]
        vouchers = [device.voucher("shop", 90 * CNY, start + 20 + i) for i in range(3)]
        # 90 + 90 settle; the third would go past the funded 250: an overspend, attributed
        assert [r["status"] for r in bank.settle("shop", vouchers)] == ["settled", "settled", "overspend"]
        assert bank.query("device", {"device_id": "card-1"})["overspends"] == 1
        more = device.voucher("shop", 10 * CNY, start + 30)
        assert [r["status"] for r in bank.settle("shop", [more])] == ["settled"]
        assert [r["status"] for r in bank.settle("shop", [device.voucher("shop", 1 * CNY, start + 40)])] == ["over_limit"]
        # the rest comes back only after validity + grace; a voucher after that is late
        _refused(lambda: bank.offline_reclaim("card-1"), "EXECUTION_FAILED", "may settle until")
        _refused(lambda: bank.close(world.keys["alice"], "alice", to="shop"), "EXECUTION_FAILED", "offline device")
        clock.to_ms(start + 3 * DAY_MS + 5)
        late = device.forge_with_counter(99, "shop", 5 * CNY, start + 50)
        assert [r["status"] for r in bank.settle("shop", [late])] == ["late"]
        assert bank.offline_reclaim("card-1")["reclaimed"] == 60 * CNY
        assert world.wallet("alice")["balance"] == (2_000 - 250 + 60) * CNY and world.supply()["offline"] == 0
        check_supply(world, ["alice", "shop"])


def test_a_voucher_for_another_payee_or_with_a_bad_signature_pays_nothing(tmp_path: Path) -> None:
    with currency_chain() as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.open(BANK_A, "alice", tier=3, balance=1_000 * CNY)
        world.open(BANK_B, "shop", kind="merchant", tier=0)
        world.open(BANK_B, "other", kind="merchant", tier=0)
        device = _funded(world, "alice", "card-9", 100 * CNY)
        stranger = OfflineDevice("card-9", HolderKey.generate(world.suite), world.chain.chain_id)
        bank_b = world.operator(BANK_B)
        verdicts = bank_b.settle("shop", [device.voucher("other", 5 * CNY), stranger.voucher("shop", 5 * CNY),
                                          {**device.voucher("shop", 5 * CNY), "device": "card-404"}])
        assert [r["status"] for r in verdicts] == ["wrong_payee", "bad_signature", "unknown_device"]
        assert world.wallet("shop")["balance"] == 0
        # the counter survives a restart of the device (persisted before a voucher leaves it)
        state = tmp_path / "card-9.json"
        keeper = OfflineDevice("card-9", device.key, world.chain.chain_id, state_file=state)
        keeper.voucher("shop", 1)
        assert OfflineDevice.load(state, device.key).counter == 1

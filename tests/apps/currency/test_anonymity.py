"""Managed anonymity: the chain holds pseudonymous wallet ids; the operator keeps the KYC record
that links a holder to a wallet in its vault (the data exchange). Above the large-value threshold
and for the AML rules (velocity; structuring just under the threshold) the regulator may obtain
the link on a lawful request: a request, a second officer's approval and a delivery through the
data exchange, all logged. Small payments stay anonymous."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pilotchain.apps.currency.client import CurrencyError
from pilotchain.apps.exchange.client import VaultError
from pilotchain.sdk import TxRejectedError
from tests.apps.currency.helpers import BANK_A, BANK_B, CB, CNY, WithVaults, currency_with_vaults

pytestmark = pytest.mark.timeout(240)


def _refused(call: Callable[[], Any], code: str, words: str = "") -> Exception:
    with pytest.raises((CurrencyError, VaultError)) as caught:
        call()
    assert caught.value.code == code, caught.value  # type: ignore[union-attr]
    assert words in str(caught.value), caught.value
    return caught.value


def _kyc(net: WithVaults, org: str, wallet: str, name: str, payload_id: str = "") -> str:
    """The operator keeps the holder's KYC record in its own vault, governed by the currency."""
    record = json.dumps({"wallet": wallet, "name": name, "national_id": "110101199003077777",
                         "mobile": "+86 138 0000 0000"}).encode()
    payload_id = payload_id or f"kyc-{wallet}"
    with net.vault(org) as vault:
        vault.put(payload_id, record, media_type="application/json", classification="core",
                  retention_until_ms=int(time.time() * 1000) + 10 * 365 * 86_400_000, policy="currency",
                  subjects=[wallet])
    return payload_id


def test_lawful_disclosure_needs_a_ground_a_second_officer_and_goes_through_the_exchange(tmp_path: Path) -> None:
    with currency_with_vaults(tmp_path, config={"large_value": 10_000 * CNY,
                                                "aml": {"velocity_per_day": 3, "structuring_margin_bp": 1_000,
                                                        "structuring_count": 2}}) as net:
        world = net.world
        world.issue(BANK_A, 1_000_000 * CNY)
        world.issue(BANK_B, 1_000_000 * CNY)
        for wallet, org, tier in [("w-big", BANK_A, 2), ("w-small", BANK_A, 3), ("w-split", BANK_B, 2),
                                  ("w-busy", BANK_B, 3)]:
            world.open(org, wallet, tier=tier, balance=100_000 * CNY if tier == 2 else 10_000 * CNY,
                       kyc=_kyc(net, org, wallet, f"holder of {wallet}"))
        world.open(BANK_B, "shop", kind="merchant", tier=0, kyc=_kyc(net, BANK_B, "shop", "Shop Ltd"))
        world.pay("w-big", "shop", 10_000 * CNY)              # at the threshold: large value
        world.pay("w-small", "shop", 800 * CNY)                # small: stays anonymous
        world.pay("w-split", "shop", 9_500 * CNY)              # structuring: two just under it in a day
        world.pay("w-split", "shop", 9_900 * CNY)
        for _ in range(4):                                     # velocity: more than 3 payments a day
            world.pay("w-busy", "shop", 10 * CNY)
        flags = {w: world.wallet(w)["flags"] for w in ("w-big", "w-small", "w-split", "w-busy")}
        assert flags["w-big"]["large"] == 1 and flags["w-split"]["structuring"] == 1 and flags["w-busy"]["velocity"] == 1
        assert flags["w-small"] == {"large": 0, "velocity": 0, "structuring": 0}
        # the chain holds pseudonyms only: no holder's name is in any block
        blocks = b"".join(path.read_bytes() for path in (world.chain.consortium.directory.parent / "ledger").rglob("*")
                          if path.is_file())
        assert b"w-big" in blocks and b"holder of" not in blocks and b"110101199003077777" not in blocks

        aml_a, aml_b = world.officer(0), world.officer(1)
        # an operator is no regulator; the regulator cannot read the record before an approval
        _refused(lambda: world.operator(BANK_A).disclosure_request("w-big", "AML-law-art-16"), "PERMISSION_DENIED",
                 "only a regulator")
        with net.vault(CB) as regulator_vault:
            _refused(lambda: regulator_vault.fetch("kyc-w-big", "AML"), "NO_PERMIT")
            decisions = {}
            for wallet in ("w-big", "w-split", "w-busy", "w-small"):
                request = aml_a.disclosure_request(wallet, "AML-law-art-16", reason="suspicious flows report 2027-3")
                _refused(lambda request=request: aml_a.disclosure_approve(request["id"]), "PERMISSION_DENIED",
                         "maker-checker")
                decisions[wallet] = aml_b.disclosure_approve(request["id"])
            assert {w: d["status"] for w, d in decisions.items()} == {
                "w-big": "approved", "w-split": "approved", "w-busy": "approved", "w-small": "refused"}
            assert decisions["w-big"]["grounds"] == ["large"] and decisions["w-split"]["grounds"] == ["structuring"]
            assert "small payments stay anonymous" in decisions["w-small"]["rule"]
            # approved: the regulator's vault fetches the KYC record from the operator's vault
            fetched = regulator_vault.fetch("kyc-w-big", "AML")
            assert fetched["size"] > 0
            content = b"".join(regulator_vault.content("kyc-w-big"))
            assert json.loads(content)["name"] == "holder of w-big"
            # refused: the small wallet's link stays in its operator's vault
            _refused(lambda: regulator_vault.fetch("kyc-w-small", "AML"), "NO_PERMIT")
        # every step is logged: the request and decision on chain, the delivery as signed receipts
        record = world.operator(CB).query("disclosure", {"request_id": decisions["w-big"]["id"]})
        assert record["requester"] == "officer-a" and record["approver"] == "officer-b"
        with net.vault(BANK_A) as operator_vault:
            receipts = operator_vault.receipts("kyc-w-big")
        assert "delivered" in {r["kind"] for r in receipts}
        # the operator itself cannot hand the record out: the currency contract decides
        with pytest.raises(TxRejectedError, match="made by contract currency"):
            world.operator(BANK_A).client.invoke(world.chain.identity(BANK_A), "dataex", "decide", {
                "payload_id": "kyc-w-small", "org": CB, "purpose": "AML", "until_ms": int(time.time() * 1000) + 10**6})


def test_wallets_need_a_kyc_record_of_their_operator(tmp_path: Path) -> None:
    with currency_with_vaults(tmp_path) as net:
        world = net.world
        _refused(lambda: world.open(BANK_A, "w1"), "EXECUTION_FAILED", "KYC record")
        kyc = _kyc(net, BANK_B, "w1", "someone", payload_id="kyc-b-w1")
        _refused(lambda: world.open(BANK_A, "w1", kyc=kyc), "EXECUTION_FAILED", "belongs to bank-b")
        other = _kyc(net, BANK_A, "w2", "someone else")
        _refused(lambda: world.open(BANK_A, "w1", kyc=other), "EXECUTION_FAILED", "subject w1")
        world.open(BANK_A, "w1", kyc=_kyc(net, BANK_A, "w1", "someone"))
        assert world.wallet("w1")["kyc"] == "kyc-w1"

"""Issuance and redemption between the central bank and authorised operators: maker-checker,
quotas, full and partial reserve, operators cannot mint, every number is configuration."""

from __future__ import annotations

import pytest

from pilotchain.apps.currency.client import CurrencyError
from tests.apps.currency.helpers import BANK_A, BANK_B, CB, CNY, QUOTA, currency_chain

pytestmark = pytest.mark.timeout(120)


def _refused(call: object, code: str, words: str = "") -> CurrencyError:
    with pytest.raises(CurrencyError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.code == code, caught.value
    assert words in caught.value.message, caught.value.message
    return caught.value


def test_issuance_needs_a_maker_and_a_different_checker_and_respects_the_quota() -> None:
    with currency_chain() as world:
        maker, checker = world.officer(0), world.officer(1)
        proposed = maker.propose("issue", {"operator": BANK_A, "amount": 1_000_000 * CNY}, "issue-1")
        assert proposed["status"] == "proposed" and world.operator(BANK_A).operator(BANK_A)["vault"] == 0  # type: ignore[index]
        _refused(lambda: maker.approve("issue-1"), "PERMISSION_DENIED", "maker-checker")
        # an operator can neither propose nor approve: it cannot mint
        _refused(lambda: world.operator(BANK_A).propose("issue", {"operator": BANK_A, "amount": 1}),
                 "PERMISSION_DENIED", "officers of the central bank")
        _refused(lambda: world.operator(BANK_A).approve("issue-1"), "PERMISSION_DENIED", "officers of the central bank")
        approved = checker.approve("issue-1")
        assert approved["status"] == "executed" and approved["maker"] != approved["checker"]
        _refused(lambda: checker.approve("issue-1"), "EXECUTION_FAILED", "is executed")
        op = world.operator(BANK_A).operator(BANK_A)
        assert op is not None and op["vault"] == op["issued"] == 1_000_000 * CNY
        # outstanding per operator <= its quota: the proposal is refused, and so is its approval
        _refused(lambda: maker.propose("issue", {"operator": BANK_A, "amount": QUOTA}), "EXECUTION_FAILED", "above its quota")
        supply = world.supply()
        assert supply["issued"] == 1_000_000 * CNY and supply["vaults"] == 1_000_000 * CNY and supply["balanced"]


def test_redemption_is_maker_checker_and_only_of_what_the_vault_holds() -> None:
    with currency_chain() as world:
        world.issue(BANK_B, 500 * CNY)
        _refused(lambda: world.officer(0).propose("redeem", {"operator": BANK_B, "amount": 501 * CNY}),
                 "EXECUTION_FAILED", "cannot redeem")
        world.passed("redeem", {"operator": BANK_B, "amount": 200 * CNY})
        op = world.operator(BANK_B).operator(BANK_B)
        assert op is not None and (op["issued"], op["redeemed"], op["vault"]) == (500 * CNY, 200 * CNY, 300 * CNY)
        supply = world.supply()
        assert supply["outstanding"] == 300 * CNY and supply["redeemed"] == 200 * CNY and supply["balanced"]


def test_full_and_partial_reserve_are_configuration() -> None:
    with currency_chain() as world:
        world.passed("set_reserve", {"operator": BANK_A, "reserve": 1_000 * CNY})
        # full reserve (10,000 bp): outstanding <= reserve
        _refused(lambda: world.officer(0).propose("issue", {"operator": BANK_A, "amount": 1_001 * CNY}),
                 "EXECUTION_FAILED", "reserve ratio 10000 bp")
        world.issue(BANK_A, 1_000 * CNY)
        # the central bank moves to partial reserve (20 %) by the same maker-checker
        world.passed("set_config", {"changes": {"reserve_ratio_bp": 2_000}})
        assert world.operator(BANK_A).config()["reserve_ratio_bp"] == 2_000
        world.issue(BANK_A, 4_000 * CNY)  # outstanding 5,000 = reserve 1,000 / 20 %
        _refused(lambda: world.officer(0).propose("issue", {"operator": BANK_A, "amount": 1}),
                 "EXECUTION_FAILED", "reserve ratio 2000 bp")


def test_a_proposal_approved_after_the_rules_changed_is_checked_again() -> None:
    with currency_chain() as world:
        first = world.officer(0).propose("issue", {"operator": BANK_A, "amount": 600 * CNY})
        world.passed("set_quota", {"operator": BANK_A, "quota": 500 * CNY})
        _refused(lambda: world.officer(1).approve(first["id"]), "EXECUTION_FAILED", "above its quota")
        world.officer(1).reject(first["id"], "quota lowered")
        assert world.officer(0).query("proposal", {"proposal_id": first["id"]})["status"] == "rejected"


def test_configuration_changes_only_by_maker_checker_and_are_checked() -> None:
    with currency_chain() as world:
        _refused(lambda: world.officer(0).propose("set_config", {"changes": {"tiers": {"4": {"balance_max": 1}}}}),
                 "BAD_ARGUMENTS", "exactly")
        _refused(lambda: world.officer(0).propose("set_config", {"changes": {"no_such": 1}}), "BAD_ARGUMENTS",
                 "unknown setting")
        limits = {"balance_max": 20_000 * CNY, "payment_max": 3_000 * CNY, "daily_max": 8_000 * CNY,
                  "annual_max": 80_000 * CNY}
        world.passed("set_config", {"changes": {"tiers": {"4": limits}, "large_value": 20_000 * CNY}})
        config = world.operator(BANK_A).config()
        assert config["tiers"]["4"] == limits and config["large_value"] == 20_000 * CNY
        assert config["tiers"]["3"]["balance_max"] == 20_000 * CNY  # the other tiers kept


def test_only_listed_officers_act_when_the_central_bank_lists_them() -> None:
    with currency_chain(config={"officers": ["officer-a", "officer-b"]}) as world:
        cb_client = world.operator(CB)  # the central bank's generic client identity, not an officer
        _refused(lambda: cb_client.propose("issue", {"operator": BANK_A, "amount": 1}), "PERMISSION_DENIED",
                 "listed officers")
        world.issue(BANK_A, 10)

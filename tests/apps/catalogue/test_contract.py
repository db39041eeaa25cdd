"""The catalogue contract on a governed chain: the policy language's vectors decide the same on chain
as in pilotchain.apps.catalogue.policy; departments, duties and entries are versioned with history;
requests are decided by the entry's policy, by the provider or by the Big-Data Bureau; only the
parties named may act; the agreement is final on chain."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotchain.apps.catalogue.client import CatalogueClient, CatalogueRefused
from pilotchain.apps.catalogue.policy import parse_date_time, parse_duration
from pilotchain.testing import LocalChain
from tests.apps.catalogue.helpers import (
    BUREAU,
    CATALOGUE_SOURCE,
    DAY_MS,
    ENTERPRISE_FIELDS,
    MARKET,
    SOCIAL,
    TAX,
    directory_chain,
    now_ms,
    request_id,
)

pytestmark = pytest.mark.timeout(240)

VECTORS = json.loads(Path(__file__).with_name("policy_vectors.json").read_text())


@pytest.fixture(scope="module")
def chain() -> Any:
    with directory_chain() as running:
        yield running


def client(chain: LocalChain, org: str, *, admin: bool = False) -> CatalogueClient:
    identity = chain.identity(org, admin=admin)
    return CatalogueClient(chain.client(identity=identity), identity)


def refused(call: Any, code: str, text: str = "") -> CatalogueRefused:
    with pytest.raises(CatalogueRefused) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert text in caught.value.message, caught.value
    return caught.value


def test_the_contract_decides_every_policy_vector(chain: LocalChain) -> None:
    anyone = client(chain, TAX)
    for vector in VECTORS["vectors"]:
        if "expect" in vector:
            facts = {**VECTORS["base_context"], **vector["context"]}
            assert anyone.evaluate_policy(vector["policy"], facts) == vector["expect"], vector["name"]
        else:
            error = refused(lambda v=vector: anyone.query("check_policy", {"policy": v["policy"]}), "BAD_ARGUMENTS")
            assert f"policy {vector['invalid']}:" in error.message, (vector["name"], error.message)


def _contract_functions() -> dict[str, Any]:
    """The contract's pure helpers run as plain Python (its API names stubbed: they are not used)."""
    module = ast.parse(CATALOGUE_SOURCE)
    module.body = [node for node in module.body if not isinstance(node, ast.ImportFrom)]
    names: dict[str, Any] = {name: (lambda *_args: None) for name in
                             ("Map", "Variable", "call", "context", "deny", "emit", "reject_arguments", "require")}
    exec(compile(module, "catalogue.py", "exec"), names)  # noqa: S102 - our own contract's source
    return names


CONTRACT = _contract_functions()
DURATIONS = st.one_of(
    st.from_regex(r"P([0-9]{1,10}D)?(T([0-9]{1,10}H)?([0-9]{1,10}M)?([0-9]{1,10}S)?)?", fullmatch=True),
    st.text(alphabet="PTDHMS0123456789Y.-", max_size=12))
DATE_TIMES = st.one_of(
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", fullmatch=True),
    st.text(alphabet="0123456789-T:Z+ ", max_size=22))


def _typed(parse: Any, text: str) -> int:
    try:
        return int(parse(text))
    except ValueError:
        return -1


@settings(max_examples=400, deadline=None)
@given(DURATIONS)
def test_the_contract_and_the_module_read_durations_alike(text: str) -> None:
    assert CONTRACT["_duration_ms"](text) == _typed(parse_duration, text)


@settings(max_examples=400, deadline=None)
@given(DATE_TIMES)
def test_the_contract_and_the_module_read_date_times_alike(text: str) -> None:
    assert CONTRACT["_date_time_ms"](text) == _typed(parse_date_time, text)


def entry_spec(**changes: Any) -> dict[str, Any]:
    spec = {"title": "Enterprise registration (basic)", "duty_id": "market.registration",
            "fields": ENTERPRISE_FIELDS, "key_field": "credit_code", "sharing": "conditional",
            "update_frequency": "daily", "description": "registered enterprises of the city"}
    spec.update(changes)
    return spec


def test_a_directory_from_admission_to_agreement(chain: LocalChain) -> None:
    bureau, market, tax, social = (client(chain, org) for org in (BUREAU, MARKET, TAX, SOCIAL))
    bureau_admin = client(chain, BUREAU, admin=True)
    refused(lambda: market.publish_duty("market.registration", "Register enterprises", "Company Law art. 29"),
            "PERMISSION_DENIED", "not a department")
    refused(lambda: bureau.admit(MARKET, "Market Regulation"), "PERMISSION_DENIED", "admin admits")
    refused(lambda: client(chain, MARKET, admin=True).admit(TAX, "Tax"), "PERMISSION_DENIED")
    for org, name in ((MARKET, "Market Regulation Administration"), (TAX, "Tax Bureau"), (SOCIAL, "Social Security")):
        assert bureau_admin.admit(org, name)["name"] == name

    # duties: versions with history; only the owner changes one
    first = market.publish_duty("market.registration", "Register enterprises", "Company Law art. 29")
    second = market.publish_duty("market.registration", "Register and publish enterprises", "Company Law art. 29, 32")
    assert (first["version"], second["version"]) == (1, 2)
    assert [d["title"] for d in market.duty_history("market.registration")] == ["Register enterprises",
                                                                             "Register and publish enterprises"]
    refused(lambda: tax.publish_duty("market.registration", "x", "y"), "PERMISSION_DENIED", "only market-regulation")
    tax.publish_duty("tax.collection", "Levy and collect taxes", "Tax Collection Administration Law art. 5")
    social.publish_duty("social.contributions", "Collect social insurance", "Social Insurance Law art. 60")

    # entries: checked, versioned, default policy by sharing class
    refused(lambda: market.publish_entry("market.enterprises", entry_spec(duty_id="tax.collection")), "BAD_ARGUMENTS",
            "active duty of market-regulation")
    refused(lambda: market.publish_entry("market.enterprises", entry_spec(fields=[{"name": "x", "type": "float"}])),
            "BAD_ARGUMENTS", "type is one of")
    refused(lambda: market.publish_entry("market.enterprises", entry_spec(policy={"@type": "Set", "uid": "p"})),
            "BAD_ARGUMENTS", "policy $: a policy has at least one")
    refused(lambda: market.publish_entry("market.enterprises", entry_spec(sharing="unconditional", policy={
        "@type": "Set", "uid": "p", "permission": [{"action": "use", "duty": [
            {"action": "obtainConsent", "consentingParty": "provider"}]}]})), "BAD_ARGUMENTS", "make it conditional")
    v1 = market.publish_entry("market.enterprises", entry_spec(update_frequency="weekly"))
    v2 = market.publish_entry("market.enterprises", entry_spec())
    assert (v1["version"], v2["version"], v2["update_frequency"]) == (1, 2, "daily")
    assert v2["policy"]["permission"][0]["duty"][0]["consentingParty"] == "provider"
    assert [e["update_frequency"] for e in market.entry_history("market.enterprises")] == ["weekly", "daily"]
    assert {f["name"]: f["sharing"] for f in v2["fields"]}["legal_rep_id_number"] == "not_shared"
    market.publish_entry("market.licences", entry_spec(title="Business licences", sharing="unconditional",
                                                       fields=ENTERPRISE_FIELDS[:3]))
    market.publish_entry("market.inspections", entry_spec(title="Inspection records", approver="bureau",
                                                          fields=ENTERPRISE_FIELDS[:2]))
    market.publish_entry("market.complaints", entry_spec(title="Consumer complaints", sharing="not_shared",
                                                         fields=ENTERPRISE_FIELDS[:2]))
    assert [e["id"] for e in tax.entries()] == ["market.enterprises", "market.licences", "market.inspections",
                                                "market.complaints"]

    # requests: the policy decides at once, or waits for the party it names
    refused(lambda: tax.request("market.enterprises", duty_id="market.registration", fields=["name"],
                                purpose="tax-administration"), "EXECUTION_FAILED", "active duty of tax-bureau")
    refused(lambda: tax.request("market.enterprises", duty_id="tax.collection", fields=["legal_rep_id_number"],
                                purpose="tax-administration"), "EXECUTION_FAILED", "not a shared field")
    refused(lambda: tax.request("market.complaints", duty_id="tax.collection", fields=["name"],
                                purpose="tax-administration"), "EXECUTION_FAILED", "not shared")
    refused(lambda: market.request("market.licences", duty_id="market.registration", fields=["name"], purpose="x"),
            "EXECUTION_FAILED", "own")
    at_once = tax.request("market.licences", duty_id="tax.collection", fields=["name", "credit_code"],
                          purpose="tax-administration", days=30)
    assert at_once["status"] == "agreed" and at_once["decision"] == {
        "outcome": "permit", "rule": "share", "by": "policy", "policy_uid": "urn:pilotchain:catalogue:market.licences"}
    agreement = tax.agreement(at_once["id"])
    assert agreement is not None and agreement["fields"] == ["credit_code", "name"]  # entry order
    assert agreement["until_ms"] - agreement["from_ms"] == 30 * DAY_MS and agreement["provider"] == MARKET

    waiting = tax.request("market.enterprises", duty_id="tax.collection", purpose="tax-administration",
                          fields=["credit_code", "name", "registered_capital", "status"])
    assert (waiting["status"], waiting["awaiting"], waiting["awaiting_org"]) == ("pending", "provider", MARKET)
    assert tax.agreement(waiting["id"]) is None
    refused(lambda: tax.approve(waiting["id"]), "PERMISSION_DENIED", "waits for the consent of the provider")
    refused(lambda: bureau.approve(waiting["id"]), "PERMISSION_DENIED")
    assert [r["id"] for r in market.requests(org=MARKET, status="pending")] == [waiting["id"]]
    approved = market.approve(waiting["id"], "for the 2026 tax audit")
    assert approved["status"] == "agreed" and approved["decision"]["by"] == MARKET
    assert tax.agreement(waiting["id"])["consented"] == ["provider"]
    refused(lambda: market.approve(waiting["id"]), "EXECUTION_FAILED", "is agreed, not pending")

    by_bureau = social.request("market.inspections", duty_id="social.contributions", fields=["name"],
                               purpose="social-insurance-audit")
    assert by_bureau["awaiting_org"] == BUREAU
    refused(lambda: market.approve(by_bureau["id"]), "PERMISSION_DENIED", "bureau")
    assert bureau.approve(by_bureau["id"])["status"] == "agreed"
    turned_down = tax.request("market.inspections", duty_id="tax.collection", fields=["name"], purpose="curiosity")
    assert bureau.reject(turned_down["id"], "no legal basis for this purpose")["status"] == "rejected"
    refused(lambda: tax.request("market.licences", duty_id="tax.collection", fields=["name"], purpose="x",
                                request_id=at_once["id"]), "EXECUTION_FAILED", "fresh request_id")

    # a custom policy that denies: the denial is recorded on chain with the rule that decided
    market.publish_entry("market.licences", entry_spec(
        title="Business licences", sharing="unconditional", fields=ENTERPRISE_FIELDS[:3],
        policy={"@type": "Set", "uid": "urn:market:licences:2", "profile": "urn:pilotchain:odrl:catalogue:1",
                "permission": [{"uid": "tax-only", "action": "use", "assignee": TAX}],
                "prohibition": [{"uid": "no-id-numbers", "action": "use", "constraint": [
                    {"leftOperand": "pc:fields", "operator": "isAnyOf", "rightOperand": ["legal_representative"]}]}]}))
    denied = social.request("market.licences", duty_id="social.contributions", fields=["name"], purpose="audit")
    assert denied["status"] == "denied" and denied["decision"]["rule"] == ""
    prohibited = tax.request("market.licences", duty_id="tax.collection", fields=["legal_representative"],
                             purpose="audit")
    assert prohibited["status"] == "denied" and prohibited["decision"]["rule"] == "no-id-numbers"
    assert tax.get_request(prohibited["id"])["status"] == "denied"

    # revocation and withdrawal; only the provider or the bureau
    refused(lambda: tax.revoke(at_once["id"], "x"), "PERMISSION_DENIED")
    assert bureau.revoke(at_once["id"], "duplicate of a newer agreement")["status"] == "revoked"
    refused(lambda: tax.withdraw_entry("market.enterprises", "x"), "PERMISSION_DENIED")
    withdrawn = market.withdraw_entry("market.inspections", "merged into market.enterprises")
    assert (withdrawn["status"], withdrawn["withdrawals"], withdrawn["version"]) == ("withdrawn", 1, 2)
    refused(lambda: tax.request("market.inspections", duty_id="tax.collection", fields=["name"], purpose="x"),
            "EXECUTION_FAILED", "no active catalogue entry")
    assert {a["id"] for a in tax.agreements(org=TAX)} == {at_once["id"], waiting["id"]}
    assert bureau.config() == {"bureau": BUREAU}
    assert {d["org"] for d in bureau.departments()} == {MARKET, TAX, SOCIAL}
    assert now_ms() > 0 and len(request_id()) == 32


def test_publishing_a_dataset_needs_a_live_payload_the_catalogue_governs(chain: LocalChain) -> None:
    market = client(chain, MARKET)
    client(chain, BUREAU, admin=True).admit(MARKET, "Market Regulation Administration")
    market.publish_duty("market.registration", "Register enterprises", "Company Law art. 29")
    market.publish_entry("market.stats", entry_spec(title="Statistics", fields=ENTERPRISE_FIELDS[:2]))
    identity = chain.identity(MARKET)
    chain_client = chain.client(identity=identity)
    retention = now_ms() + 10 * DAY_MS
    for payload_id, policy in (("plain-1", ""), ("governed-1", "catalogue")):
        chain_client.invoke(identity, "dataex", "register", {
            "payload_id": payload_id, "commitment": b"c" * 32, "size": 10, "media_type": "x", "classification": "general",
            "retention_until_ms": retention, "policy": policy})
    args = {"entry_id": "market.stats", "root": b"r" * 32, "records": 3, "fields": ["credit_code", "name"]}
    refused(lambda: market._invoke("publish_dataset", {**args, "payload_id": "plain-1"}), "EXECUTION_FAILED",
            "must name catalogue as its policy")
    refused(lambda: market._invoke("publish_dataset", {**args, "payload_id": "nope"}), "EXECUTION_FAILED",
            "not registered")
    refused(lambda: market._invoke("publish_dataset", {**args, "payload_id": "governed-1", "fields": ["name"]}),
            "EXECUTION_FAILED", "entry's fields")
    refused(lambda: client(chain, TAX)._invoke("publish_dataset", {**args, "payload_id": "governed-1"}),
            "PERMISSION_DENIED")
    published = market._invoke("publish_dataset", {**args, "payload_id": "governed-1"})
    assert (published["version"], published["records"]) == (1, 3)
    assert market.dataset("market.stats")["payload_id"] == "governed-1"
    # the exchange's own path never releases it: only the catalogue contract could decide on it
    error = chain_client.invoke(identity, "dataex", "decide", {"payload_id": "governed-1", "org": TAX,
                                                               "purpose": "x", "until_ms": retention}, check=False)
    assert error.receipt is not None and error.receipt.status == "PERMISSION_DENIED"

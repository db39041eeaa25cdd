"""Scenario S2 at the vaults, in process: Market Regulation publishes structured records; the Tax
Bureau's vault calls under an agreement and receives only the agreed fields, each value checked
against the salted per-field commitment on chain; every call leaves two matching signed receipts,
anchored; calls outside the agreement (fields, period, party, policy, withdrawn entry, replays) are
rejected and logged with a signed receipt; a provider that alters a value is caught."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from pilotchain.apps.catalogue.calls import CatalogueVault
from pilotchain.apps.catalogue.client import CatalogueRefused
from pilotchain.apps.catalogue.disclosure import DatasetCommitment, Disclosure
from pilotchain.apps.catalogue.records import (
    RECEIPT_DOMAIN,
    CallPackage,
    CallReceipt,
    CallRequest,
    day_of,
    receipt_matches,
)
from pilotchain.apps.exchange.records import verify_signed
from pilotchain.codec import decode, encode
from pilotchain.crypto.sealing import open_sealed
from pilotchain.ledger import merkle
from pilotchain.sdk import SignedRequests
from tests.apps.catalogue.helpers import (
    BUREAU,
    DAY_MS,
    ENTERPRISE_FIELDS,
    MARKET,
    SOCIAL,
    TAX,
    Directory,
    directory,
    endpoint,
    enterprises,
    request_id,
)

pytestmark = pytest.mark.timeout(300)

AGREED = ["credit_code", "name", "registered_capital", "status"]


def refused(call: Any, code: str, text: str = "") -> CatalogueRefused:
    with pytest.raises(CatalogueRefused) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert text in caught.value.message, caught.value
    return caught.value


def set_up(world: Directory, *, policy: dict[str, Any] | None = None, records: int = 25) -> dict[str, Any]:
    """The directory of S2: departments admitted, duties and the enterprise entry published, its
    data in Market Regulation's vault, the Tax Bureau's request approved by Market Regulation."""
    bureau_admin = world.catalogue(BUREAU, admin=True)
    for org, name in ((MARKET, "Market Regulation Administration"), (TAX, "Tax Bureau"), (SOCIAL, "Social Security")):
        bureau_admin.admit(org, name)
    market, tax = world.catalogue(MARKET), world.catalogue(TAX)
    market.publish_duty("market.registration", "Register enterprises", "Company Law art. 29")
    tax.publish_duty("tax.collection", "Levy and collect taxes", "Tax Collection Administration Law art. 5")
    world.catalogue(SOCIAL).publish_duty("social.contributions", "Collect social insurance", "Social Insurance Law")
    spec: dict[str, Any] = {"title": "Enterprise registration", "duty_id": "market.registration", "fields": ENTERPRISE_FIELDS,
                            "key_field": "credit_code", "sharing": "conditional", "update_frequency": "daily"}
    if policy is not None:
        spec["policy"] = policy
    market.publish_entry("market.enterprises", spec)
    published = market.publish_dataset("market.enterprises", enterprises(records))
    requested = tax.request("market.enterprises", duty_id="tax.collection", fields=AGREED,
                            purpose="tax-administration", days=90)
    if requested["status"] == "pending":
        market.approve(requested["id"], "approved for tax administration")
    return {"published": published, "agreement": requested["id"], "market": market, "tax": tax}


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_only_agreed_fields_travel_and_every_value_verifies(tmp_path: Path, suite: str) -> None:
    with directory(tmp_path, suite=suite) as world:
        story = set_up(world)
        published, agreement, tax = story["published"], story["agreement"], story["tax"]
        on_chain = tax.dataset("market.enterprises")
        assert on_chain["root"].hex() == published["root"] and on_chain["records"] == 25
        assert on_chain["fields"] == [f["name"] for f in ENTERPRISE_FIELDS]
        payload = world.chain_client(TAX).query("dataex", "payload", {"payload_id": published["payload_id"]})
        assert payload["policy"] == "catalogue" and payload["owner"] == MARKET

        everything = tax.call(agreement)
        assert everything["verified"] and everything["matched"] == 25 and everything["current_dataset"]
        assert everything["fields"] == AGREED
        expected = [{k: r[k] for k in AGREED} for r in enterprises(25)]
        assert everything["records"] == expected[:25]
        one = tax.call(agreement, fields=["name", "status"], where={"credit_code": ["91310000MA1K000003"]})
        assert one["records"] == [{"name": "Huangpu Trading Co. 3", "status": "revoked"}]
        page = tax.call(agreement, fields=["credit_code"], where={"status": ["in business"]}, offset=5, limit=4)
        assert page["matched"] == 21 and len(page["records"]) == 4

        # what the provider sent: only agreed fields are in the disclosure; the rest are hashes
        catalogue: CatalogueVault = world.apps[MARKET].state.catalogue
        request = CallRequest(call_id=request_id(), agreement_id=agreement, fields=(), where={}, offset=0, limit=100)
        package = catalogue.answer(request, TAX)
        for secret in ("Wang 7", "3101011987", "2017-08-17"):
            assert secret.encode() not in package
        consumer_key = world.vaults[TAX].seal_key
        opened = open_sealed(consumer_key, decode(package, CallPackage).sealed,
                             associated_data=request.call_id.encode())
        disclosure = decode(opened, Disclosure)
        assert disclosure.fields == tuple(AGREED) and b"Wang 7" not in opened and b"3101011987" not in opened

        # each call: two matching signed receipts, both anchored on chain by each vault
        world.maintain(TAX, MARKET)
        day = day_of(everything["at_ms"])
        for org in (MARKET, TAX):
            rows = world.catalogue(org).receipts(day)
            by_call: dict[str, dict[str, Any]] = {}
            for row in rows:
                assert row["anchored"], row
                by_call.setdefault(row["call_id"], {})[row["kind"]] = row
            assert {"delivered", "received"} <= set(by_call[everything["call_id"]])
        suite = world.vaults[TAX].suite
        book = world.vaults[MARKET].book
        pair = {}
        for receipt_id, row in book.receipts_of(f"catalogue/{day}"):
            signed, certificate = verify_signed(suite, row.signed, RECEIPT_DOMAIN)
            receipt = decode(signed.body, CallReceipt)
            if receipt.call_id == everything["call_id"]:
                pair[receipt.kind] = (receipt, row.signed, certificate.org_id)
                proof = book.proof(receipt_id)
                assert proof is not None and merkle.verify_inclusion(suite.hash, proof.root, row.signed, proof.index,
                                                                     proof.count, list(proof.path))
                anchored = world.chain_client(BUREAU).query("dataex", "anchored", {"root": proof.root})
                assert MARKET in anchored["by"]
        delivered, received = pair["delivered"], pair["received"]
        assert (delivered[2], received[2]) == (MARKET, TAX)  # each side signed its own
        assert receipt_matches(delivered[0], received[0], suite.hash(delivered[1]))
        assert delivered[0].records == 25 and delivered[0].fields == tuple(AGREED)
        calls = {c["call_id"]: c for c in world.catalogue(MARKET).calls(day)}
        assert calls[everything["call_id"]]["outcome"] == "delivered"


def test_calls_outside_the_agreement_are_rejected_and_logged(tmp_path: Path) -> None:
    with directory(tmp_path) as world:
        story = set_up(world)
        agreement, tax = story["agreement"], story["tax"]
        refused(lambda: tax.call(agreement, fields=["legal_representative"]), "FIELD_NOT_AGREED",
                "legal_representative not agreed")
        refused(lambda: tax.call(agreement, fields=["name"], where={"legal_representative": ["Wang 3"]}),
                "FIELD_NOT_AGREED")
        refused(lambda: tax.call(agreement, fields=["legal_rep_id_number"]), "FIELD_NOT_AGREED")
        refused(lambda: world.catalogue(SOCIAL).call(agreement), "NOT_PARTY")  # its own vault refuses it

        # another department's vault asking under the Tax Bureau's agreement, and a replay
        as_social = httpx.Client(base_url=endpoint(MARKET), transport=world.transport(endpoint(MARKET)),
                                 auth=SignedRequests(world.chain.identity(SOCIAL)))
        forged = encode(CallRequest(call_id=request_id(), agreement_id=agreement, fields=(), where={}, offset=0, limit=5))
        answer = as_social.post("/v1/catalogue/deliveries", content=forged)
        assert answer.status_code == 403 and answer.json()["code"] == "NOT_PARTY"
        assert as_social.post("/v1/catalogue/deliveries", content=forged).json()["code"] == "REPLAYED"
        missing = encode(CallRequest(call_id=request_id(), agreement_id="ab" * 16, fields=(), where={}, offset=0, limit=5))
        assert as_social.post("/v1/catalogue/deliveries", content=missing).json()["code"] == "NO_AGREEMENT"

        # the period: not before it starts, not after it ends (certified block time)
        early = tax.request("market.enterprises", duty_id="tax.collection", fields=["name"], purpose="tax-audit",
                            from_ms=world.clock() + 10 * DAY_MS, days=30)
        story["market"].approve(early["id"])
        refused(lambda: tax.call(early["id"]), "NOT_YET")
        short = tax.request("market.enterprises", duty_id="tax.collection", fields=["name"], purpose="tax-audit",
                            from_ms=world.clock() - 1000, until_ms=world.clock() + 60_000)
        story["market"].approve(short["id"])
        assert tax.call(short["id"])["records"]
        world.advance(90_000)  # 90 s later (blocks and vaults see the same clock; transactions still fresh)
        refused(lambda: tax.call(short["id"]), "EXPIRED")
        assert tax.call(agreement, fields=["name"])["records"]

        # every rejection is a signed, anchored receipt of the provider's, and in its call log
        world.maintain(MARKET)
        days = {day_of(world.clock()), day_of(world.clock() - 90_000)}
        day_rejections = [r for day in days
                          for r in world.catalogue(MARKET).receipts(day) if r["kind"] == "rejected"]
        codes = sorted(r["code"] for r in day_rejections)
        assert codes == sorted(["FIELD_NOT_AGREED", "FIELD_NOT_AGREED", "FIELD_NOT_AGREED", "NOT_PARTY",
                                "NO_AGREEMENT", "NOT_YET", "EXPIRED"]), codes
        assert all(r["anchored"] for r in day_rejections)
        logged = [c for day in days
                  for c in world.catalogue(MARKET).calls(day)]
        assert sum(1 for c in logged if c["outcome"].startswith("rejected:")) == 7


def test_withdrawing_the_entry_stops_calls_at_once_and_revoking_ends_an_agreement(tmp_path: Path) -> None:
    with directory(tmp_path) as world:
        story = set_up(world, records=5)
        agreement, tax, market = story["agreement"], story["tax"], story["market"]
        assert tax.call(agreement)["verified"]
        market.withdraw_entry("market.enterprises", "the register moves to a new system")
        refused(lambda: tax.call(agreement), "ENTRY_WITHDRAWN", "new system")
        # republishing does not bring old agreements back: they ended with the withdrawal
        market.publish_entry("market.enterprises", {
            "title": "Enterprise registration", "duty_id": "market.registration", "fields": ENTERPRISE_FIELDS,
            "key_field": "credit_code", "sharing": "conditional", "update_frequency": "daily"})
        refused(lambda: tax.call(agreement), "ENTRY_WITHDRAWN")
        again = tax.request("market.enterprises", duty_id="tax.collection", fields=["name"], purpose="tax-audit")
        market.approve(again["id"])
        assert tax.call(again["id"])["records"] == [{"name": f"Huangpu Trading Co. {i}"} for i in range(5)]
        world.catalogue(BUREAU).revoke(again["id"], "the audit is over")
        refused(lambda: tax.call(again["id"]), "REVOKED", "the audit is over")
        world.catalogue(TAX).retire_duty("tax.collection", "reorganised")
        third = world.catalogue(SOCIAL).request("market.enterprises", duty_id="social.contributions",
                                                fields=["name"], purpose="contributions")
        market.approve(third["id"])
        world.catalogue(SOCIAL).retire_duty("social.contributions", "transferred to the tax bureau")
        refused(lambda: world.catalogue(SOCIAL).call(third["id"]), "DUTY_RETIRED")


def test_the_usage_policy_is_enforced_on_every_call(tmp_path: Path) -> None:
    policy = {"@type": "Set", "uid": "urn:market:enterprises:limited", "profile": "urn:pilotchain:odrl:catalogue:1",
              "permission": [{"uid": "tax-limited", "action": "use", "assignee": TAX, "constraint": [
                  {"leftOperand": "count", "operator": "lteq", "rightOperand": 2},
                  {"leftOperand": "purpose", "operator": "eq", "rightOperand": "tax-administration"}]}]}
    with directory(tmp_path) as world:
        story = set_up(world, policy=policy, records=3)
        agreement, tax = story["agreement"], story["tax"]
        assert tax.get_request(agreement)["decision"]["rule"] == "tax-limited"  # no consent needed: by policy
        tax.call(agreement)
        tax.call(agreement, fields=["name"])
        refused(lambda: tax.call(agreement), "POLICY_DENIED", "count lteq 2")


def test_a_provider_that_alters_a_value_is_caught(tmp_path: Path) -> None:
    with directory(tmp_path) as world:
        story = set_up(world, records=4)
        agreement, tax = story["agreement"], story["tax"]
        catalogue: CatalogueVault = world.apps[MARKET].state.catalogue
        honest = catalogue._commitment

        def altered(payload_id: str, root: bytes) -> Any:
            commitment = honest(payload_id, root)
            records = list(commitment.dataset.records)
            records[2] = (records[2][0], records[2][1], records[2][2], 1, *records[2][4:])  # capital: 1 yuan
            forged = msgspec.structs.replace(commitment.dataset, records=tuple(records))
            return DatasetCommitment(suite=commitment.suite, dataset=forged, root=commitment.root,
                                     levels=commitment.levels)

        catalogue._commitment = altered  # type: ignore[method-assign]
        error = refused(lambda: tax.call(agreement), "COMMITMENT_MISMATCH", "records[2]")
        assert "does not verify" in error.message
        world.vaults[TAX].flush_outbox()  # the complaint goes on chain
        world.maintain(TAX, MARKET)
        call_id = next(c["call_id"] for c in tax.calls(day_of(world.clock())) if c["outcome"].startswith("refused"))
        complaint = world.chain_client(MARKET).query("dataex", "complaint", {"request_id": call_id})
        assert complaint["org"] == TAX and complaint["owner"] == MARKET and complaint["reason"] == "COMMITMENT_MISMATCH"
        kinds = {r["kind"] for r in world.catalogue(MARKET).receipts(day_of(world.clock())) if r["call_id"] == call_id}
        assert kinds == {"delivered", "refused"}  # the consumer's refusal reached the provider too

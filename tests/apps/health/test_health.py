"""S1 — a hospital's record goes to another hospital only with the patient's consent, signed by the
patient's own key; withdrawal ends access at once; break-glass is permitted, flagged and reviewed;
the patient sees every disclosure. In process (a development chain and a vault per organisation)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pilotchain.apps.exchange.client import VaultError
from pilotchain.apps.health.client import HealthClient, HealthError, PatientKey
from pilotchain.apps.health.consent import consent_from_fhir, consent_text
from tests.apps.exchange.helpers import Exchange, exchange
from tests.contracts.helpers import deploy

pytestmark = pytest.mark.timeout(240)

SOURCE = (Path(__file__).resolve().parents[3] / "src" / "pilotchain" / "apps" / "health" / "contracts"
          / "health.py").read_text()
SUMMARY = b"Discharge summary: patient pt-42, community-acquired pneumonia, amoxicillin 7 days"


def _fhir(consent_id: str, grantee: str, purposes: list[str], data: list[str], days: int = 30) -> dict[str, Any]:
    start = time.time() - 60
    return {
        "resourceType": "Consent", "id": consent_id, "status": "active", "subject": {"reference": "Patient/pt-42"},
        "grantee": [{"reference": f"Organization/{grantee}"}], "decision": "permit",
        "period": {"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                   "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + days * 86400))},
        "provision": [{
            "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                            "code": "ATND"}]},
                       "reference": {"reference": f"Organization/{grantee}"}}],
            "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}],
            "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": p} for p in purposes],
            "data": [{"meaning": "instance", "reference": {"reference": f"DocumentReference/{d}"}} for d in data],
        }],
    }


def _refused(call: Any, code: str) -> Exception:
    with pytest.raises((VaultError, HealthError)) as caught:
        call()
    assert caught.value.code == code, caught.value  # type: ignore[union-attr]
    return caught.value


def _health(world: Exchange, org: str) -> HealthClient:
    return HealthClient(world.as_org(org), world.chain.identity(org))


def test_consent_decides_withdrawal_ends_break_glass_is_reviewed(tmp_path: Path) -> None:
    with exchange(tmp_path) as world:
        a, b, commission = list(world.vaults)
        deploy(world.chain, "health", SOURCE, init={"args": {"reviewer_orgs": [commission]}})
        hospital_a, hospital_b, reviewer = _health(world, a), _health(world, b), _health(world, commission)
        patient = PatientKey.generate(world.chain.genesis.suite)
        hospital_a.enroll("pt-42", patient)
        with world.client(a) as vault_a, world.client(b) as vault_b:
            vault_a.put("discharge-1", SUMMARY, media_type="text/plain", classification="important",
                        retention_until_ms=int(time.time() * 1000) + 10**9, policy="health", subjects=["pt-42"])
            _refused(lambda: vault_b.fetch("discharge-1", "TREAT"), "NO_PERMIT")
            # the owner itself cannot decide for a consent-governed record
            with pytest.raises(Exception, match="decisions on payload discharge-1 are made by contract health"):
                world.as_org(a).invoke(world.chain.identity(a), "dataex", "decide",
                                       {"payload_id": "discharge-1", "org": b, "purpose": "TREAT",
                                        "until_ms": int(time.time() * 1000) + 10**6})

            denied = hospital_b.request("discharge-1", "TREAT")
            assert denied["decision"] == "DENY" and "no consent" in denied["rule"]

            consent = consent_from_fhir(_fhir("c-1", b, ["TREAT"], ["discharge-1"]))
            # the hospital signing for the patient is refused: the contract checks the patient's key
            forged = PatientKey.generate(world.chain.genesis.suite)
            _refused(lambda: hospital_a.grant(consent, forged), "PERMISSION_DENIED")
            hospital_a.grant(consent, patient)

            permitted = hospital_b.request("discharge-1", "TREAT")
            assert permitted["decision"] == "PERMIT" and permitted["rule"] == "consent:c-1"
            assert vault_b.fetch("discharge-1", "TREAT")["commitment"]
            assert vault_b.read("discharge-1") == SUMMARY
            assert hospital_b.request("discharge-1", "HRESCH")["decision"] == "DENY"  # not the consented purpose

            # the patient withdraws: B's PERMIT ends at once, its next request is denied and logged
            hospital_a.withdraw("pt-42", "c-1", patient)
            _refused(lambda: vault_b.fetch("discharge-1", "TREAT"), "WITHDRAWN")
            after = hospital_b.request("discharge-1", "TREAT")
            assert after["decision"] == "DENY" and after["rule"] == "consent c-1 was withdrawn"

            # emergency: break-glass is permitted, flagged, reviewable; ending it stops access
            glass = hospital_b.request("discharge-1", "ETREAT", break_glass=True, reason="unconscious in ER")
            assert glass["decision"] == "PERMIT" and glass["break_glass"] and glass["rule"] == "break-glass"
            assert vault_b.fetch("discharge-1", "ETREAT")["size"] == len(SUMMARY)
            queue = reviewer.review_queue()
            assert [q["request_id"] for q in queue] == [glass["request_id"]]
            assert queue[0]["reason"] == "unconscious in ER" and queue[0]["org"] == b
            hospital_b.end_break_glass(glass["request_id"])
            _refused(lambda: vault_b.fetch("discharge-1", "ETREAT"), "WITHDRAWN")
            _refused(lambda: hospital_a.review(glass["request_id"], "justified"), "PERMISSION_DENIED")
            reviewer.review(glass["request_id"], "justified: patient admitted unconscious, ER physician on duty")
            assert reviewer.review_queue() == []

            # transparency: the patient's every disclosure, from the chain
            log = hospital_a.disclosures("pt-42")
            assert [(d["org"], d["purpose"], d["decision"], d["break_glass"]) for d in log] == [
                (b, "TREAT", "DENY", False), (b, "TREAT", "PERMIT", False), (b, "HRESCH", "DENY", False),
                (b, "TREAT", "DENY", False), (b, "ETREAT", "PERMIT", True)]
            assert log[-1]["stopped_ms"] is not None and log[-1]["review"]["status"] == "closed"
            assert all(d["ms"] > 0 and d["requester"] for d in log)


def test_proxies_sign_for_patients_and_statements_cannot_be_replayed(tmp_path: Path) -> None:
    with exchange(tmp_path, orgs=2) as world:
        a, b = list(world.vaults)
        deploy(world.chain, "health", SOURCE, init={"args": {"reviewer_orgs": [a]}})
        hospital = _health(world, a)
        patient, guardian = PatientKey.generate("intl"), PatientKey.generate("intl")
        hospital.enroll("pt-7", patient)
        until = int(time.time() * 1000) + 86_400_000
        hospital.appoint("pt-7", "mother", guardian, "guardian", until, patient)
        consent = consent_from_fhir({**_fhir("c-7", b, ["TREAT", "HPAYMT"], []), "subject": {"reference": "Patient/pt-7"}})
        hospital.grant(consent, guardian, signer="mother")
        stored = world.as_org(a).query("health", "consent", {"consent_id": "c-7"})
        assert stored["signed_by"] == "mother" and stored["status"] == "active"
        assert stored["purposes"] == ["TREAT", "HPAYMT"]

        # a replay of a signed statement (same sequence number) is refused
        seq = hospital.next_seq("pt-7") - 1
        text = consent_text(world.chain.chain_id, {**consent, "id": "c-8"}, seq)
        args = {"consent": {**consent, "id": "c-8"}, "signer": "mother", "seq": seq, "signature": guardian.sign(text)}
        result = world.as_org(a).invoke(world.chain.identity(a), "health", "grant", args, check=False)
        assert result.receipt is not None and result.receipt.status == "BAD_ARGUMENTS" and "seq must be" in result.receipt.message
        # a stranger's key named as a proxy that does not exist
        _refused(lambda: hospital.withdraw("pt-7", "c-7", PatientKey.generate("intl"), signer="uncle"), "PERMISSION_DENIED")
        hospital.withdraw("pt-7", "c-7", patient)

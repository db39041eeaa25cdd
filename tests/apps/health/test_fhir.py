"""Consent in the standard form: FHIR R5 Consent validated by the maintained fhir.resources
package; what does not validate is refused with the validator's reason; what pilotchain cannot
enforce is refused with why; the export validates and reads back to the same canonical consent."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.consent import Consent
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotchain.apps.health.consent import (
    PURPOSES,
    ConsentError,
    consent_from_fhir,
    consent_to_fhir,
)

EXAMPLE: dict[str, Any] = {
    "resourceType": "Consent",
    "id": "consent-pt42-treat",
    "status": "active",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]}],
    "subject": {"reference": "Patient/pt-42"},
    "date": "2026-12-07",
    "grantee": [{"reference": "Organization/hospital-b"}],
    "period": {"start": "2026-12-07T08:00:00+08:00", "end": "2027-01-06T08:00:00+08:00"},
    "decision": "permit",
    "provision": [{
        "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": "ATND"}]},
                   "reference": {"reference": "Organization/hospital-b"}}],
        "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}],
        "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
        "data": [{"meaning": "instance", "reference": {"reference": "DocumentReference/discharge-1"}}],
    }],
}


def test_a_consent_reads_into_its_canonical_form() -> None:
    canonical = consent_from_fhir(json.dumps(EXAMPLE))
    assert canonical == {"id": "consent-pt42-treat", "patient": "pt-42", "grantee": "hospital-b", "actor_role": "ATND",
                         "purposes": ["TREAT"], "start_ms": 1_796_601_600_000, "end_ms": 1_799_193_600_000,
                         "action": "access", "data": ["discharge-1"]}


def test_the_export_validates_and_round_trips() -> None:
    canonical = consent_from_fhir(EXAMPLE)
    exported = consent_to_fhir(canonical)
    Consent.model_validate(exported)  # the independent validator accepts what we write
    assert consent_from_fhir(exported) == canonical
    assert consent_from_fhir(json.loads(Consent.model_validate(exported).model_dump_json())) == canonical


@settings(max_examples=60, deadline=None)
@given(purposes=st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=4, unique=True),
       data=st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True), max_size=4, unique=True),
       start=st.integers(1_700_000_000_000, 1_900_000_000_000), days=st.integers(1, 3650))
def test_any_canonical_consent_round_trips_through_fhir(purposes: list[str], data: list[str], start: int, days: int) -> None:
    canonical = {"id": "c-1", "patient": "pt-1", "grantee": "hospital-b", "actor_role": "ATND",
                 "purposes": sorted(purposes, key=PURPOSES.index), "start_ms": start, "end_ms": start + days * 86_400_000,
                 "action": "access", "data": sorted(data)}
    assert consent_from_fhir(consent_to_fhir(canonical)) == canonical


@pytest.mark.parametrize(("change", "reason"), [
    (lambda d: d.update(status=17), "not a valid FHIR R5 Consent"),                       # the validator's words
    (lambda d: d.update(period={"start": "yesterday"}), "not a valid FHIR R5 Consent"),
    (lambda d: d.update(unexpected_field=1), "not a valid FHIR R5 Consent"),
    (lambda d: d["provision"][0].update(purpose=[{"code": "MARKETING"}]), "purposes are v3-ActReason codes"),
    (lambda d: d.update(decision="deny"), "a deny is the absence of a consent"),
    (lambda d: d.update(status="inactive"), "only an active consent"),
    (lambda d: d.update(grantee=[]), "exactly one grantee"),
    (lambda d: d.update(subject={"reference": "Group/ward-3"}), "must reference a Patient"),
    (lambda d: d["provision"].append(copy.deepcopy(d["provision"][0])), "exactly one provision"),
    (lambda d: d.update(period={"start": "2026-12-07T08:00:00"}), "not a valid FHIR R5 Consent"),  # no time zone
    (lambda d: d.update(period={"start": "2026-12-07T08:00:00Z"}), "needs a period with start and end"),
])
def test_what_cannot_be_enforced_or_does_not_validate_is_refused(change: Any, reason: str) -> None:
    document = copy.deepcopy(EXAMPLE)
    change(document)
    with pytest.raises(ConsentError, match=reason):
        consent_from_fhir(document)


def test_the_validator_reason_names_the_field() -> None:
    document = copy.deepcopy(EXAMPLE)
    document["period"] = {"start": "not a date", "end": "2027-01-06T08:00:00Z"}
    with pytest.raises(ConsentError) as caught:
        consent_from_fhir(document)
    assert "period" in str(caught.value) and "start" in str(caught.value)


def test_the_shipped_examples_validate_and_round_trip() -> None:
    folder = Path(__file__).with_name("examples")
    examples = sorted(folder.glob("*.json"))
    assert len(examples) >= 3
    for path in examples:
        canonical = consent_from_fhir(path.read_text())
        assert consent_from_fhir(consent_to_fhir(canonical)) == canonical, path.name

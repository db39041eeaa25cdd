"""Consent as HL7 FHIR R5 ``Consent`` in and out, its canonical on-chain form, and the statements a
patient (or proxy) signs.

FHIR in: :func:`consent_from_fhir` validates the JSON with the maintained ``fhir.resources``
package (a resource that does not validate is refused with the validator's reason), then reads the
parts pilotchain enforces and refuses what it cannot enforce (several provisions, a deny decision,
codes outside v3-ActReason's purposes it knows). FHIR out: :func:`consent_to_fhir` writes the
canonical form back as a Consent that validates and reads back to the same canonical form.

Canonical form (what the ``health`` contract stores)::

    {"id", "patient", "grantee", "actor_role", "purposes": [...], "start_ms", "end_ms",
     "action", "data": [payload ids; empty = every record of the patient]}

Statements: the exact texts the contract verifies signatures over (``contracts/health.py``
builds the same strings); each names the chain, the kind, the patient, a per-patient sequence
number and every field.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pilotchain.crypto import PrivateKey
from pilotchain.errors import CoreError

__all__ = [
    "ACTIONS",
    "ConsentError",
    "PURPOSES",
    "appoint_text",
    "consent_from_fhir",
    "consent_text",
    "consent_to_fhir",
    "sign_text",
    "withdraw_text",
]

PURPOSES = ("TREAT", "ETREAT", "HPAYMT", "HRESCH", "PUBHLTH", "HOPERAT", "CAREMGT", "PATRQT", "FAMRQT")
ACTIONS = ("access", "collect", "use", "disclose", "correct")
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"


class ConsentError(CoreError):
    """A consent pilotchain cannot accept; the message says why (the FHIR validator's words)."""


def _ms(text: str, field: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConsentError(f"{field} is not a FHIR dateTime: {text}") from exc
    if moment.tzinfo is None:
        raise ConsentError(f"{field} needs a time zone (e.g. 2026-12-07T08:00:00+08:00)")
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ref(value: str | None, kind: str, field: str) -> str:
    prefix = kind + "/"
    if not value or not value.startswith(prefix) or len(value) == len(prefix):
        raise ConsentError(f"{field} must reference a {kind} ({prefix}<id>), got {value!r}")
    return value[len(prefix):]


def consent_from_fhir(resource: dict[str, Any] | str) -> dict[str, Any]:
    """The canonical consent a FHIR R5 Consent (dict or JSON text) says; ConsentError if it does
    not validate or says something the contract cannot enforce."""
    from fhir.resources.consent import Consent
    from pydantic import ValidationError

    document = json.loads(resource) if isinstance(resource, str) else resource
    try:
        consent = Consent.model_validate(document)
    except ValidationError as exc:
        raise ConsentError(f"not a valid FHIR R5 Consent: {exc}") from exc
    if consent.status != "active":
        raise ConsentError(f"only an active consent can be granted (status is {consent.status!r})")
    if consent.decision not in (None, "permit"):
        raise ConsentError("pilotchain records permit consents; a deny is the absence of a consent")
    if not consent.id:
        raise ConsentError("the consent needs an id")
    if consent.subject is None:
        raise ConsentError("the consent needs a subject (Patient/<pseudonymous reference>)")
    patient = _ref(consent.subject.reference, "Patient", "subject")
    if not consent.grantee or len(consent.grantee) != 1:
        raise ConsentError("the consent names exactly one grantee organisation (Organization/<org>)")
    grantee = _ref(consent.grantee[0].reference, "Organization", "grantee")
    if consent.period is None or consent.period.start is None or consent.period.end is None:
        raise ConsentError("the consent needs a period with start and end")
    start_ms = _ms(str(consent.period.start), "period.start")
    end_ms = _ms(str(consent.period.end), "period.end")
    provisions = consent.provision or []
    if len(provisions) != 1:
        raise ConsentError("the consent has exactly one provision (actor role, action, purposes, data)")
    provision = provisions[0]
    role = "ATND"
    if provision.actor:
        if len(provision.actor) != 1 or provision.actor[0].role is None or not provision.actor[0].role.coding:
            raise ConsentError("the provision names one actor role (v3-ParticipationType)")
        role = str(provision.actor[0].role.coding[0].code)
    actions = [c.code for a in (provision.action or []) for c in (a.coding or [])]
    if len(actions) != 1 or actions[0] not in ACTIONS:
        raise ConsentError(f"the provision has one action, one of {', '.join(ACTIONS)}")
    purposes = [str(p.code) for p in (provision.purpose or [])]
    unknown = [p for p in purposes if p not in PURPOSES]
    if not purposes or unknown:
        raise ConsentError(f"purposes are v3-ActReason codes among {', '.join(PURPOSES)}; not {unknown or 'none'}")
    data = []
    for item in provision.data or []:
        if item.reference is None:
            raise ConsentError("each provision.data names a DocumentReference/<payload id>")
        data.append(_ref(item.reference.reference, "DocumentReference", "provision.data"))
    return {"id": str(consent.id), "patient": patient, "grantee": grantee, "actor_role": role,
            "purposes": sorted(set(purposes), key=PURPOSES.index), "start_ms": start_ms, "end_ms": end_ms,
            "action": str(actions[0]), "data": sorted(set(data))}


def consent_to_fhir(canonical: dict[str, Any], *, status: str = "active") -> dict[str, Any]:
    """The FHIR R5 Consent for a canonical consent (validated with fhir.resources before return)."""
    from fhir.resources.consent import Consent

    provision: dict[str, Any] = {
        "actor": [{"role": {"coding": [{"system": PARTICIPATION, "code": canonical["actor_role"]}]},
                   "reference": {"reference": f"Organization/{canonical['grantee']}"}}],
        "action": [{"coding": [{"system": CONSENT_ACTION, "code": canonical["action"]}]}],
        "purpose": [{"system": ACT_REASON, "code": code} for code in canonical["purposes"]],
    }
    if canonical["data"]:
        provision["data"] = [{"meaning": "instance", "reference": {"reference": f"DocumentReference/{payload_id}"}}
                             for payload_id in canonical["data"]]
    document = {
        "resourceType": "Consent", "id": canonical["id"], "status": status,
        "category": [{"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]}],
        "subject": {"reference": f"Patient/{canonical['patient']}"},
        "grantee": [{"reference": f"Organization/{canonical['grantee']}"}],
        "period": {"start": _iso(canonical["start_ms"]), "end": _iso(canonical["end_ms"])},
        "decision": "permit", "provision": [provision],
    }
    Consent.model_validate(document)
    return document


def _header(chain_id: str, kind: str, patient: str, seq: int) -> str:
    return f"pilotchain/health/v1|{chain_id}|{kind}|{patient}|{seq}"


def consent_text(chain_id: str, consent: dict[str, Any], seq: int) -> str:
    """What a patient signs to grant ``consent`` (the contract's consent_text, byte for byte)."""
    return "|".join([_header(chain_id, "grant", consent["patient"], seq), consent["id"], consent["grantee"],
                     consent["actor_role"], ",".join(consent["purposes"]), str(consent["start_ms"]),
                     str(consent["end_ms"]), consent["action"], ",".join(consent["data"])])


def withdraw_text(chain_id: str, patient: str, consent_id: str, seq: int) -> str:
    return _header(chain_id, "withdraw", patient, seq) + "|" + consent_id


def appoint_text(chain_id: str, patient: str, proxy: str, role: str, until_ms: int, public_key: bytes, seq: int) -> str:
    return "|".join([_header(chain_id, "appoint", patient, seq), proxy, role, str(until_ms), public_key.hex()])


def sign_text(key: PrivateKey, text: str) -> bytes:
    """A patient's (or proxy's) signature over a statement."""
    return key.sign(text.encode("utf-8"))

"""health — patient-consented sharing of records between hospitals, break-glass, transparency.

The policy contract of S1 (docs/health.md): a hospital registers a record in the data exchange with
``policy="health"`` and the patient's pseudonymous reference as its subject; from then on only this
contract decides who may receive it (``dataex.decide`` / ``withdraw`` accept only its calls).

Patients are not consortium members. A hospital *enrolls* a patient's public key (a key the
patient generated and holds; the hospital vouches for who it belongs to, it never holds it). The
patient — or a guardian or proxy the patient appointed, by a signed statement — signs every
consent and every withdrawal; this contract checks those signatures (``verify_signature``, the
chain's suite) over a canonical statement text that names the chain, the statement's kind, every
field and a per-patient sequence number (so a statement cannot be replayed or moved to another
chain). A hospital cannot grant or withdraw on a patient's behalf without such a signature.

    enroll(patient, public_key)                           a member hospital
    appoint(patient, proxy, public_key, role, until_ms, signer, seq, signature)
    grant(consent, signer, seq, signature)                the patient or a current proxy
    withdraw(consent_id, signer, seq, signature)          the same: every PERMIT made under it ends
    request(payload_id, purpose, request_id, break_glass=False, reason="")
                                                          a member asking for a record: PERMIT or DENY,
                                                          recorded with the rule that decided it
    end_break_glass(request_id)                           the requester: the emergency access stops
    review(request_id, finding)                           a reviewer organisation (init: reviewer_orgs)

Queries: patient(patient), consent(consent_id), consents(patient), disclosures(patient),
access(request_id), review_queue(), config().
"""

from pilotchain.contracts.api import (
    Map,
    Variable,
    call,
    context,
    deny,
    emit,
    reject_arguments,
    require,
    verify_signature,
)

patients = Map("patients")
consents = Map("consents")
patient_consents = Map("patient_consents")
accesses = Map("accesses")
patient_log = Map("patient_log")
settings = Variable("settings")
open_reviews = Variable("open_reviews")

PURPOSES = ["TREAT", "ETREAT", "HPAYMT", "HRESCH", "PUBHLTH", "HOPERAT", "CAREMGT", "PATRQT", "FAMRQT"]
ACTIONS = ["access", "collect", "use", "disclose", "correct"]
ROLES = ["guardian", "proxy"]
CONSENTS_PER_PATIENT_MAX = 256
LOG_PER_PATIENT_MAX = 4096
OPEN_REVIEWS_MAX = 10000
PAYLOADS_PER_CONSENT_MAX = 64
TEXT_MAX = 128
SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-/ "


def init(args=None):
    _configure(args)


def upgrade(args=None):
    _configure(args)


def _configure(args):
    if args is None:
        args = {}
    if not isinstance(args, dict):
        reject_arguments('init takes {"reviewer_orgs": [...], "break_glass_ms": ..., "consent_days_max": ...}')
    reviewers = args.get("reviewer_orgs", [])
    if not isinstance(reviewers, list) or len(reviewers) > 16:
        reject_arguments("reviewer_orgs is a list of at most 16 organisations")
    for org in reviewers:
        _text("reviewer org", org)
    break_glass_ms = args.get("break_glass_ms", 4 * 3600 * 1000)
    consent_days_max = args.get("consent_days_max", 3650)
    if not isinstance(break_glass_ms, int) or not 60000 <= break_glass_ms <= 86400000:
        reject_arguments("break_glass_ms is 1 minute .. 24 hours")
    if not isinstance(consent_days_max, int) or not 1 <= consent_days_max <= 36500:
        reject_arguments("consent_days_max is 1 .. 36500")
    settings.set({"reviewer_orgs": reviewers, "break_glass_ms": break_glass_ms,
                  "consent_days_max": consent_days_max})


def _settings():
    return settings.get({"reviewer_orgs": [], "break_glass_ms": 4 * 3600 * 1000, "consent_days_max": 3650})


def _text(name, value):
    if not isinstance(value, str) or not 1 <= len(value) <= TEXT_MAX:
        reject_arguments(f"{name} is a text of 1..{TEXT_MAX} characters")
    for char in value:
        if char not in SAFE:
            reject_arguments(f"{name} uses only letters, digits, spaces and . _ : - /")


def _note(name, value):
    """Free text (a reason, a finding): never part of a signed statement."""
    if not isinstance(value, str) or not 1 <= len(value) <= 512:
        reject_arguments(f"{name} is a text of 1..512 characters")


def _time(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        reject_arguments(f"{name} is a time in ms since 1970")


def _patient(ref):
    _text("patient", ref)
    record = patients.get(ref)
    if record is None:
        reject_arguments(f"patient {ref} is not enrolled")
    return record


def _check_statement(record, ref, signer, seq, text, signature):
    """The signer (the patient, or a proxy current now) signed ``text``; seq is the next one."""
    if not isinstance(seq, int) or seq != record["seq"] + 1:
        reject_arguments(f"seq must be {record['seq'] + 1} (each statement of a patient takes the next number)")
    if not isinstance(signature, bytes) or not 1 <= len(signature) <= 128:
        reject_arguments("signature is the signer's signature bytes")
    if signer == "patient":
        key = record["public_key"]
    else:
        proxy = record["proxies"].get(signer)
        if proxy is None:
            deny(f"{signer} is not a proxy of patient {ref}")
        if proxy["until_ms"] <= context.timestamp_ms:
            deny(f"{signer}'s appointment for patient {ref} ended")
        key = proxy["public_key"]
    if not verify_signature(key, text, signature):
        deny(f"the signature of {signer} for patient {ref} does not verify: the patient or a recorded "
             "proxy must sign (a hospital cannot decide on a patient's behalf)")
    record["seq"] = seq


def _header(kind, ref, seq):
    return "pilotchain/health/v1|" + context.chain_id + "|" + kind + "|" + ref + "|" + str(seq)


def enroll(patient, public_key):
    _text("patient", patient)
    if not isinstance(public_key, bytes) or not 16 <= len(public_key) <= 256:
        reject_arguments("public_key is the patient's public key (SubjectPublicKeyInfo DER)")
    require(not patients.contains(patient), f"patient {patient} is enrolled already")
    patients.set(patient, {"patient": patient, "public_key": public_key, "hospital": context.caller.org,
                           "enrolled_by": context.caller.name, "seq": 0, "proxies": {},
                           "height": context.height, "ms": context.timestamp_ms})
    emit("enrolled", {"patient": patient, "hospital": context.caller.org})


def appoint(patient, proxy, public_key, role, until_ms, signer, seq, signature):
    record = _patient(patient)
    _text("proxy", proxy)
    if proxy == "patient":
        reject_arguments("a proxy needs a name of its own")
    if role not in ROLES:
        reject_arguments("role is guardian or proxy")
    _time("until_ms", until_ms)
    if not isinstance(public_key, bytes) or not 16 <= len(public_key) <= 256:
        reject_arguments("public_key is the proxy's public key (SubjectPublicKeyInfo DER)")
    text = _header("appoint", patient, seq) + "|" + proxy + "|" + role + "|" + str(until_ms) + "|" + public_key.hex()
    _check_statement(record, patient, signer, seq, text, signature)
    if signer != "patient" and record["proxies"][signer]["role"] != "guardian":
        deny("only the patient or a guardian appoints a proxy")
    record["proxies"][proxy] = {"public_key": public_key, "role": role, "until_ms": until_ms,
                                "appointed_by": signer, "height": context.height}
    patients.set(patient, record)
    emit("appointed", {"patient": patient, "proxy": proxy, "role": role, "until_ms": until_ms})


def consent_text(consent, seq):
    return (_header("grant", consent["patient"], seq) + "|" + consent["id"] + "|" + consent["grantee"] + "|"
            + consent["actor_role"] + "|" + ",".join(consent["purposes"]) + "|" + str(consent["start_ms"]) + "|"
            + str(consent["end_ms"]) + "|" + consent["action"] + "|" + ",".join(consent["data"]))


def _check_consent(consent):
    if not isinstance(consent, dict):
        reject_arguments("consent is the canonical consent map (pilotchain health consent from-fhir makes one)")
    wanted = ["action", "actor_role", "data", "end_ms", "grantee", "id", "patient", "purposes", "start_ms"]
    if sorted(consent) != wanted:
        reject_arguments("consent has exactly the fields " + ", ".join(wanted))
    for name in ("id", "patient", "grantee", "actor_role"):
        _text(name, consent[name])
    for name in ("start_ms", "end_ms"):
        _time(name, consent[name])
    require(consent["start_ms"] < consent["end_ms"], "a consent's period must end after it starts")
    require(consent["end_ms"] - consent["start_ms"] <= _settings()["consent_days_max"] * 86400000,
            "a consent lasts at most consent_days_max days")
    if consent["action"] not in ACTIONS:
        reject_arguments("action is one of " + ", ".join(ACTIONS))
    purposes = consent["purposes"]
    if not isinstance(purposes, list) or not 1 <= len(purposes) <= len(PURPOSES):
        reject_arguments("purposes is a list of v3-ActReason codes")
    for purpose in purposes:
        if purpose not in PURPOSES:
            reject_arguments(f"purpose {purpose} is not one of " + ", ".join(PURPOSES))
    data = consent["data"]
    if not isinstance(data, list) or len(data) > PAYLOADS_PER_CONSENT_MAX:
        reject_arguments(f"data lists at most {PAYLOADS_PER_CONSENT_MAX} payload ids (empty: all the patient's records)")
    for payload_id in data:
        _text("data", payload_id)


def grant(consent, signer, seq, signature):
    _check_consent(consent)
    record = _patient(consent["patient"])
    _check_statement(record, consent["patient"], signer, seq, consent_text(consent, seq), signature)
    require(not consents.contains(consent["id"]), f"consent {consent['id']} exists already")
    ids = patient_consents.get(consent["patient"], [])
    require(len(ids) < CONSENTS_PER_PATIENT_MAX, "this patient has too many consents; withdraw old ones")
    stored = {}
    for name in consent:
        stored[name] = consent[name]
    stored["status"] = "active"
    stored["signed_by"] = signer
    stored["height"] = context.height
    stored["ms"] = context.timestamp_ms
    stored["granted"] = []
    stored["withdrawn"] = None
    consents.set(consent["id"], stored)
    ids.append(consent["id"])
    patient_consents.set(consent["patient"], ids)
    patients.set(consent["patient"], record)
    emit("consented", {"consent": consent["id"], "patient": consent["patient"], "grantee": consent["grantee"],
                       "purposes": consent["purposes"], "signed_by": signer})


def withdraw(consent_id, signer, seq, signature):
    _text("consent_id", consent_id)
    stored = consents.get(consent_id)
    if stored is None:
        reject_arguments(f"no consent {consent_id}")
    require(stored["status"] == "active", f"consent {consent_id} is withdrawn already")
    record = _patient(stored["patient"])
    text = _header("withdraw", stored["patient"], seq) + "|" + consent_id
    _check_statement(record, stored["patient"], signer, seq, text, signature)
    for payload_id in stored["granted"]:
        current = call("dataex", "decision", {"payload_id": payload_id, "org": stored["grantee"]})
        if current is not None and current["decision"] == "PERMIT" and current["rule"] == "consent:" + consent_id:
            call("dataex", "withdraw", {"payload_id": payload_id, "org": stored["grantee"],
                                        "reason": "consent " + consent_id + " withdrawn by " + signer})
    stored["status"] = "withdrawn"
    stored["withdrawn"] = {"by": signer, "height": context.height, "ms": context.timestamp_ms}
    consents.set(consent_id, stored)
    patients.set(stored["patient"], record)
    emit("consent_withdrawn", {"consent": consent_id, "patient": stored["patient"], "signed_by": signer})


def _log(patient, request_id):
    log = patient_log.get(patient, [])
    if len(log) >= LOG_PER_PATIENT_MAX:
        log = log[1:]
    log.append(request_id)
    patient_log.set(patient, log)


def request(payload_id, purpose, request_id, break_glass=False, reason=""):
    _text("payload_id", payload_id)
    _text("request_id", request_id)
    if purpose not in PURPOSES:
        reject_arguments("purpose is one of " + ", ".join(PURPOSES))
    if not isinstance(break_glass, bool):
        reject_arguments("break_glass is true or false")
    if reason != "":
        _note("reason", reason)
    require(not accesses.contains(request_id), f"request {request_id} exists already")
    payload = call("dataex", "payload", {"payload_id": payload_id})
    if payload is None:
        reject_arguments(f"no payload {payload_id} is registered")
    require(payload["policy"] == "health", f"payload {payload_id} is not governed by patient consent")
    require(len(payload["subjects"]) == 1, f"payload {payload_id} names no single patient")
    patient = payload["subjects"][0]
    org = context.caller.org
    now = context.timestamp_ms
    decision = "DENY"
    rule = "no consent of the patient covers " + org + " for " + purpose
    until = 0
    chosen = None
    for consent_id in patient_consents.get(patient, []):
        consent = consents.get(consent_id)
        if consent["grantee"] != org or purpose not in consent["purposes"]:
            continue
        if consent["data"] and payload_id not in consent["data"]:
            continue
        if consent["status"] != "active":
            rule = "consent " + consent_id + " was withdrawn"
            continue
        if not consent["start_ms"] <= now < consent["end_ms"]:
            rule = "consent " + consent_id + " is outside its period"
            continue
        chosen = consent
        break
    if chosen is not None:
        decision = "PERMIT"
        rule = "consent:" + chosen["id"]
        until = chosen["end_ms"]
        if payload_id not in chosen["granted"] and len(chosen["granted"]) < PAYLOADS_PER_CONSENT_MAX:
            chosen["granted"].append(payload_id)
            consents.set(chosen["id"], chosen)
    elif break_glass and purpose == "ETREAT":
        decision = "PERMIT"
        rule = "break-glass"
        until = now + _settings()["break_glass_ms"]
    if decision == "PERMIT":
        call("dataex", "decide", {"payload_id": payload_id, "org": org, "purpose": purpose, "until_ms": until,
                                  "rule": rule})
    record = {"request_id": request_id, "payload_id": payload_id, "patient": patient, "org": org,
              "requester": context.caller.name, "purpose": purpose, "decision": decision, "rule": rule,
              "break_glass": break_glass and rule == "break-glass", "reason": reason, "until_ms": until,
              "height": context.height, "ms": now, "stopped_ms": None, "review": None}
    if record["break_glass"]:
        queue = open_reviews.get([])
        require(len(queue) < OPEN_REVIEWS_MAX, "the review queue is full; reviewers must close reviews")
        queue.append(request_id)
        open_reviews.set(queue)
        record["review"] = {"status": "open", "finding": "", "reviewer": "", "ms": None}
    accesses.set(request_id, record)
    _log(patient, request_id)
    emit("access", {"request_id": request_id, "payload_id": payload_id, "org": org, "purpose": purpose,
                    "decision": decision, "rule": rule, "break_glass": record["break_glass"]})
    return {"decision": decision, "rule": rule, "until_ms": until, "break_glass": record["break_glass"]}


def end_break_glass(request_id):
    _text("request_id", request_id)
    record = accesses.get(request_id)
    if record is None or not record["break_glass"]:
        reject_arguments(f"{request_id} is no break-glass access")
    if context.caller.org != record["org"]:
        deny("only the organisation that broke the glass ends it")
    require(record["stopped_ms"] is None, "this break-glass access has ended already")
    current = call("dataex", "decision", {"payload_id": record["payload_id"], "org": record["org"]})
    if current is not None and current["decision"] == "PERMIT" and current["rule"] == "break-glass":
        call("dataex", "withdraw", {"payload_id": record["payload_id"], "org": record["org"],
                                    "reason": "break-glass access " + request_id + " ended"})
    record["stopped_ms"] = context.timestamp_ms
    accesses.set(request_id, record)
    emit("break_glass_ended", {"request_id": request_id, "org": record["org"]})


def review(request_id, finding):
    _text("request_id", request_id)
    _note("finding", finding)
    if context.caller.org not in _settings()["reviewer_orgs"]:
        deny("only the reviewer organisations (the health commission) close reviews")
    record = accesses.get(request_id)
    if record is None or record["review"] is None:
        reject_arguments(f"{request_id} is not in the review queue")
    require(record["review"]["status"] == "open", "this review is closed already")
    record["review"] = {"status": "closed", "finding": finding, "reviewer": context.caller.name,
                        "ms": context.timestamp_ms}
    accesses.set(request_id, record)
    open_reviews.set([r for r in open_reviews.get([]) if r != request_id])
    emit("reviewed", {"request_id": request_id, "finding": finding})


def patient(patient):
    return patients.get(patient)


def consent(consent_id):
    return consents.get(consent_id)


def consents_of(patient):
    return [consents.get(c) for c in patient_consents.get(patient, [])]


def disclosures(patient):
    return [accesses.get(r) for r in patient_log.get(patient, [])]


def access(request_id):
    return accesses.get(request_id)


def review_queue():
    return [accesses.get(r) for r in open_reviews.get([])]


def config():
    return _settings()

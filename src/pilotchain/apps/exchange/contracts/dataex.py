"""dataex — the data exchange's on-chain half: commitments, decisions and evidence, never data.

Deployed through governance like any contract (``pilotchain data install`` files the proposal).
Vaults (one per organisation, off chain) hold the payloads; this contract holds what the
consortium must agree on and be able to prove later:

    register_org(public_key, endpoint)            an org admin: its vault's encryption key and URL
    register(payload_id, commitment, size, media_type, classification, retention_until_ms,
             policy="", subjects=[])              the owner: a payload's salted commitment H(salt ‖ payload)
    decide(payload_id, org, purpose, until_ms, rule="owner")
                                                  PERMIT org to receive the payload for purpose
                                                  until until_ms (block time); by the owner, or by
                                                  the payload's policy contract when it names one
    withdraw(payload_id, org, reason)             the same authority ends a PERMIT
    purge(payload_id, reason)                     the owner; anyone once retention has passed; an
                                                  organisation the consortium named for legal
                                                  orders (init: legal_orgs)
    confirm_purge(payload_id)                     a vault that held a copy says it deleted it
    anchor(batch, kind)                           a vault anchors a batch of signed receipts: its
                                                  tree head {"root", "size"} (RFC 6962 Merkle tree)
    complain(payload_id, request_id, reason, evidence)
                                                  a consumer whose delivery failed its commitment check

Queries: payload(payload_id), decision(payload_id, org), org(org), anchored(root),
purge_confirmation(payload_id, org), complaint(request_id), config().

State (the keys a vault proves against a certified header):
    m/payloads\0<id>        the registration (and its purge record)
    m/decisions\0<id>/<org> the current decision for org
    m/orgs\0<org>           encryption key and endpoint
    m/anchors\0<root>       the batch's size, and which organisations anchored it when
"""

from pilotchain.contracts.api import Map, Variable, context, deny, emit, reject_arguments, require

payloads = Map("payloads")
decisions = Map("decisions")
orgs = Map("orgs")
anchors = Map("anchors")
purges = Map("purges")
complaints = Map("complaints")
settings = Variable("settings")

ID_CHARS_MAX = 128
TEXT_CHARS_MAX = 256
SUBJECTS_MAX = 16
KEY_BYTES_MAX = 256
ENDPOINT_CHARS_MAX = 512
DEFAULT_CLASSIFICATIONS = ["general", "important", "core"]
ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"


def init(args=None):
    _configure(args)


def upgrade(args=None):
    _configure(args)


def _configure(args):
    if args is None:
        args = {}
    if not isinstance(args, dict):
        reject_arguments('init takes {"classifications": [...], "legal_orgs": [...]}')
    classifications = args.get("classifications", DEFAULT_CLASSIFICATIONS)
    legal_orgs = args.get("legal_orgs", [])
    if not isinstance(classifications, list) or not 1 <= len(classifications) <= 16:
        reject_arguments("classifications is a list of 1..16 labels")
    for label in classifications:
        _check_text("classification", label, 32)
    if not isinstance(legal_orgs, list) or len(legal_orgs) > 16:
        reject_arguments("legal_orgs is a list of at most 16 organisations")
    for org in legal_orgs:
        _check_text("legal org", org, 64)
    settings.set({"classifications": classifications, "legal_orgs": legal_orgs})


def _settings():
    return settings.get({"classifications": DEFAULT_CLASSIFICATIONS, "legal_orgs": []})


def _check_text(name, value, limit):
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        reject_arguments(f"{name} is a text of 1..{limit} characters")


def _check_id(name, value):
    _check_text(name, value, ID_CHARS_MAX)
    for char in value:
        if char not in ID_CHARS:
            reject_arguments(f"{name} uses only letters, digits and . _ : -")


def _check_time(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        reject_arguments(f"{name} is a time in milliseconds since 1970 (a non-negative integer)")


def _check_bytes(name, value, size_min, size_max):
    if not isinstance(value, bytes) or not size_min <= len(value) <= size_max:
        reject_arguments(f"{name} is {size_min}..{size_max} bytes")


def _payload(payload_id):
    _check_id("payload_id", payload_id)
    record = payloads.get(payload_id)
    if record is None:
        reject_arguments(f"no payload {payload_id} is registered")
    return record


def _may_decide(record):
    """The owner decides unless the payload names a policy contract: then only that contract."""
    if record["policy"]:
        if context.caller.name != "contract:" + record["policy"]:
            deny(f"decisions on payload {record['id']} are made by contract {record['policy']}")
    elif context.caller.org != record["owner"]:
        deny(f"only {record['owner']} decides who receives payload {record['id']}")


def register_org(public_key, endpoint):
    if "admin" not in context.caller.roles:
        deny("an organisation's admin registers its vault")
    _check_bytes("public_key", public_key, 16, KEY_BYTES_MAX)
    _check_text("endpoint", endpoint, ENDPOINT_CHARS_MAX)
    if not (endpoint.startswith("http://") or endpoint.startswith("https://")):
        reject_arguments("endpoint is the vault's http(s) URL")
    org = context.caller.org
    orgs.set(org, {"org": org, "public_key": public_key, "endpoint": endpoint,
                   "height": context.height, "ms": context.timestamp_ms})
    emit("org_registered", {"org": org, "endpoint": endpoint})


def register(payload_id, commitment, size, media_type, classification, retention_until_ms,
             policy="", subjects=None):
    _check_id("payload_id", payload_id)
    _check_bytes("commitment", commitment, 32, 32)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        reject_arguments("size is the payload's length in bytes")
    _check_text("media_type", media_type, 128)
    if classification not in _settings()["classifications"]:
        reject_arguments(f"classification is one of {', '.join(_settings()['classifications'])}")
    _check_time("retention_until_ms", retention_until_ms)
    require(retention_until_ms > context.timestamp_ms, "retention must end in the future")
    if policy != "":
        _check_text("policy", policy, 63)
    if subjects is None:
        subjects = []
    if not isinstance(subjects, list) or len(subjects) > SUBJECTS_MAX:
        reject_arguments(f"subjects is a list of at most {SUBJECTS_MAX} pseudonymous references")
    for subject in subjects:
        _check_text("subject", subject, 128)
    require(not payloads.contains(payload_id), f"payload {payload_id} is already registered")
    payloads.set(payload_id, {
        "id": payload_id, "owner": context.caller.org, "commitment": commitment, "size": size,
        "media_type": media_type, "classification": classification,
        "retention_until_ms": retention_until_ms, "policy": policy, "subjects": subjects,
        "registered_by": context.caller.name, "height": context.height, "ms": context.timestamp_ms,
        "purged": None,
    })
    emit("registered", {"id": payload_id, "owner": context.caller.org, "classification": classification,
                        "subjects": subjects})


def decide(payload_id, org, purpose, until_ms, rule="owner"):
    record = _payload(payload_id)
    _may_decide(record)
    require(record["purged"] is None, f"payload {payload_id} was purged")
    _check_text("org", org, 64)
    _check_text("purpose", purpose, 64)
    _check_text("rule", rule, TEXT_CHARS_MAX)
    _check_time("until_ms", until_ms)
    require(until_ms > context.timestamp_ms, "a PERMIT must last beyond now")
    decisions.set(payload_id + "/" + org, {
        "decision": "PERMIT", "payload_id": payload_id, "org": org, "purpose": purpose,
        "until_ms": until_ms, "rule": rule, "by": context.caller.name, "by_org": context.caller.org,
        "height": context.height, "ms": context.timestamp_ms, "reason": "",
    })
    emit("permitted", {"id": payload_id, "org": org, "purpose": purpose, "until_ms": until_ms,
                       "rule": rule})


def withdraw(payload_id, org, reason):
    record = _payload(payload_id)
    _may_decide(record)
    _check_text("org", org, 64)
    _check_text("reason", reason, TEXT_CHARS_MAX)
    current = decisions.get(payload_id + "/" + org)
    require(current is not None and current["decision"] == "PERMIT",
            f"{org} holds no PERMIT for payload {payload_id}")
    current["decision"] = "WITHDRAWN"
    current["reason"] = reason
    current["by"] = context.caller.name
    current["height"] = context.height
    current["ms"] = context.timestamp_ms
    decisions.set(payload_id + "/" + org, current)
    emit("withdrawn", {"id": payload_id, "org": org, "reason": reason})


def purge(payload_id, reason):
    record = _payload(payload_id)
    _check_text("reason", reason, TEXT_CHARS_MAX)
    require(record["purged"] is None, f"payload {payload_id} is purged already")
    org = context.caller.org
    expired = context.timestamp_ms >= record["retention_until_ms"]
    legal = org in _settings()["legal_orgs"]
    if org != record["owner"] and not expired and not legal:
        deny(f"only {record['owner']} may purge payload {payload_id} before its retention ends")
    grounds = "owner" if org == record["owner"] else ("legal order" if legal else "retention expired")
    record["purged"] = {"by": context.caller.name, "by_org": org, "reason": reason, "grounds": grounds,
                        "height": context.height, "ms": context.timestamp_ms}
    payloads.set(payload_id, record)
    emit("purged", {"id": payload_id, "owner": record["owner"], "reason": reason, "grounds": grounds})


def confirm_purge(payload_id):
    record = _payload(payload_id)
    require(record["purged"] is not None, f"payload {payload_id} is not purged")
    key = payload_id + "/" + context.caller.org
    require(not purges.contains(key), f"{context.caller.org} confirmed already")
    purges.set(key, {"org": context.caller.org, "height": context.height, "ms": context.timestamp_ms})
    emit("purge_confirmed", {"id": payload_id, "org": context.caller.org})


def anchor(batch, kind):
    """A batch of signed receipts: its tree head {"root": 32 bytes, "size": n} (RFC 6962)."""
    if not isinstance(batch, dict) or len(batch) != 2 or "root" not in batch or "size" not in batch:
        reject_arguments('batch is a tree head {"root": <32 bytes>, "size": <receipts>}')
    root = batch["root"]
    count = batch["size"]
    _check_bytes("batch root", root, 32, 32)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000000:
        reject_arguments("batch size is the number of receipts in the batch (1..1000000)")
    if kind not in ("receipts",):
        reject_arguments("kind is receipts")
    # two vaults may hold the very same receipts (both sides keep both): each anchors on its own
    record = anchors.get(root, {"count": count, "kind": kind, "by": {}})
    org = context.caller.org
    require(org not in record["by"], "this batch is anchored by " + org + " already")
    require(record["count"] == count, "this root was anchored with another size")
    record["by"][org] = {"height": context.height, "ms": context.timestamp_ms}
    anchors.set(root, record)
    emit("anchored", {"root": root, "org": org, "count": count})


def complain(payload_id, request_id, reason, evidence):
    record = _payload(payload_id)
    _check_id("request_id", request_id)
    _check_text("reason", reason, TEXT_CHARS_MAX)
    _check_bytes("evidence", evidence, 32, 32)
    key = request_id
    require(not complaints.contains(key), "this request has a complaint already")
    complaints.set(key, {"payload_id": payload_id, "owner": record["owner"], "org": context.caller.org,
                         "reason": reason, "evidence": evidence, "height": context.height,
                         "ms": context.timestamp_ms})
    emit("complained", {"id": payload_id, "request_id": request_id, "org": context.caller.org,
                        "owner": record["owner"], "reason": reason})


def payload(payload_id):
    _check_id("payload_id", payload_id)
    return payloads.get(payload_id)


def decision(payload_id, org):
    _check_id("payload_id", payload_id)
    return decisions.get(payload_id + "/" + org)


def org(org):
    return orgs.get(org)


def anchored(root):
    return anchors.get(root)


def complaint(request_id):
    _check_id("request_id", request_id)
    return complaints.get(request_id)


def purge_confirmation(payload_id, org):
    _check_id("payload_id", payload_id)
    return purges.get(payload_id + "/" + org)


def config():
    return _settings()

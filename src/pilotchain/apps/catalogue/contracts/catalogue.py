"""catalogue — the government directory chain (pilot scenario S2): duties, catalogue entries,
requests and agreements between departments; the data itself stays in the departments' vaults.

Deployed through governance (init: {"bureau_org": "<the Big-Data Bureau's organisation>"}). Every
change of a duty, an entry or a dataset is a new version; old versions stay readable.

    admit(org, name)                        the bureau's admin admits a department to the directory
    publish_duty(duty_id, title, basis)     a department publishes (a new version of) one of its duties
    retire_duty(duty_id, reason)            ... and retires it (agreements citing it stop)
    publish_entry(entry_id, spec)           a department publishes (a new version of) a catalogue entry:
                                            title, duty_id, fields [{name, type, description, sharing?}],
                                            key_field, sharing (unconditional | conditional | not_shared),
                                            update_frequency, approver (provider | bureau), policy (ODRL)
    withdraw_entry(entry_id, reason)        its department (or the bureau) withdraws it: calls stop at once,
                                            its agreements end
    publish_dataset(entry_id, payload_id, root, records, fields)
                                            the department's vault names the entry's current data: a dataex
                                            payload whose policy is this contract, and its field-level root
    request(request_id, entry_id, duty_id, fields, purpose, from_ms, until_ms)
                                            a department asks; the entry's policy decides at once (permit:
                                            an agreement; deny: recorded) or waits for a party's consent
    approve(request_id, note) / reject(request_id, reason)
                                            the party the policy names (the provider or the bureau)
    revoke(agreement_id, reason)            the provider or the bureau ends an agreement

Queries: config, department, duty, duty_history, entry, entry_history, dataset, dataset_history,
get_request, agreement, entries_list, requests_list, evaluate_policy, check_policy.

The usage-policy rules below are this contract's own implementation of the language in
docs/catalogue.md (pilotchain.apps.catalogue.policy is the other; both pass the same vectors).

State the vaults prove: m/entries\0<id>, m/agreements\0<id>, m/datasets\0<id>, m/duties\0<id>, v/settings.
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
)

settings = Variable("settings")
departments = Map("departments")
duties = Map("duties")
duty_versions = Map("duty_versions")
entries = Map("entries")
entry_versions = Map("entry_versions")
datasets = Map("datasets")
dataset_versions = Map("dataset_versions")
requests = Map("requests")
agreements = Map("agreements")
listing = Map("listing")
counts = Map("counts")

ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"
FIELD_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
HEX = "0123456789abcdef"
DIGITS = "0123456789"
SHARING = ["unconditional", "conditional", "not_shared"]
FREQUENCIES = ["realtime", "daily", "weekly", "monthly", "quarterly", "yearly", "on_change"]
FIELD_TYPES = ["string", "integer", "boolean", "date"]
FIELDS_MAX = 64
RECORDS_MAX = 100000
VERSIONS_MAX = 1000
PAGE_MAX = 200
PERIOD_MS_MAX = 5 * 366 * 86400000

# ---------------------------------------------------------------- the usage-policy language

ODRL_CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
PROFILE = "urn:pilotchain:odrl:catalogue:1"
POLICY_KEYS = ["@context", "@type", "uid", "profile", "conflict", "assigner", "permission", "prohibition"]
RULE_KEYS = ["uid", "action", "target", "assignee", "constraint", "duty"]
LOGICAL = ["and", "or", "xone"]
EQUALITY = ["eq", "neq", "isAnyOf", "isNoneOf"]
ORDER = ["eq", "lt", "lteq", "gt", "gteq"]
SETS = ["isPartOf", "hasPart", "isAnyOf", "isNoneOf"]
OPERANDS = {"purpose": ["text", EQUALITY], "recipient": ["text", EQUALITY], "pc:duty": ["text", EQUALITY],
            "dateTime": ["dateTime", ORDER], "elapsedTime": ["duration", ORDER], "count": ["integer", ORDER],
            "pc:fields": ["fields", SETS]}
PARTIES = ["provider", "bureau"]
DAY_MS = 86400000


def _bad_policy(where, why):
    reject_arguments("policy " + where + ": " + why)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _number(text, start, end):
    """The decimal number text[start:end], or -1 when it is not one."""
    if end <= start:
        return -1
    value = 0
    for index in range(start, end):
        digit = DIGITS.find(text[index])
        if digit < 0:
            return -1
        value = value * 10 + digit
    return value


def _days_in_month(year, month):
    if month == 2:
        if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
            return 29
        return 28
    if month in [4, 6, 9, 11]:
        return 30
    return 31


def _date_time_ms(text):
    """YYYY-MM-DDThh:mm:ssZ -> ms since 1970, or -1."""
    if not isinstance(text, str) or len(text) != 20:
        return -1
    if text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":" or text[19] != "Z":
        return -1
    year = _number(text, 0, 4)
    month = _number(text, 5, 7)
    day = _number(text, 8, 10)
    hour = _number(text, 11, 13)
    minute = _number(text, 14, 16)
    second = _number(text, 17, 19)
    if year < 1970 or month < 1 or month > 12 or day < 1 or hour < 0 or minute < 0 or second < 0:
        return -1
    if day > _days_in_month(year, month) or hour > 23 or minute > 59 or second > 59:
        return -1
    y = year
    if month <= 2:
        y = y - 1
    era = y // 400
    year_of_era = y - era * 400
    shift = 9
    if month > 2:
        shift = -3
    day_of_year = (153 * (month + shift) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146097 + day_of_era - 719468
    return days * DAY_MS + ((hour * 60 + minute) * 60 + second) * 1000


def _duration_ms(text):
    """P[nD][T[nH][nM][nS]] -> ms, or -1."""
    if not isinstance(text, str) or len(text) < 2 or text[0] != "P" or text[-1] == "T":
        return -1
    total = 0
    parts = 0
    in_time = False
    units = "D"
    start = 1
    index = 1
    while index < len(text):
        char = text[index]
        if char == "T":
            if in_time or start != index:
                return -1
            in_time = True
            units = "HMS"
            start = index + 1
        elif DIGITS.find(char) < 0:
            position = units.find(char)
            if position < 0 or index - start > 9:
                return -1
            value = _number(text, start, index)
            if value < 0:
                return -1
            if char == "D":
                total = total + value * DAY_MS
            elif char == "H":
                total = total + value * 3600000
            elif char == "M":
                total = total + value * 60000
            else:
                total = total + value * 1000
            parts = parts + 1
            units = units[position + 1:]
            start = index + 1
        index = index + 1
    if start != len(text) or parts == 0:
        return -1
    return total


def _text(where, value, limit):
    if not isinstance(value, str) or len(value) < 1 or len(value) > limit:
        _bad_policy(where, "a text of 1.." + str(limit) + " characters")


def _texts(where, value):
    if not isinstance(value, list) or len(value) < 1 or len(value) > 64:
        _bad_policy(where, "a list of 1..64 texts")
    for index, item in enumerate(value):
        _text(where + "[" + str(index) + "]", item, 256)


def _check_right(where, operand, operator, right):
    kind = OPERANDS[operand][0]
    if kind == "text":
        if operator == "isAnyOf" or operator == "isNoneOf":
            _texts(where, right)
        else:
            _text(where, right, 256)
    elif kind == "fields":
        _texts(where, right)
    elif kind == "dateTime":
        if _date_time_ms(right) < 0:
            _bad_policy(where, "a dateTime is written YYYY-MM-DDThh:mm:ssZ (UTC, no fractions, from 1970)")
    elif kind == "duration":
        if _duration_ms(right) < 0:
            _bad_policy(where, "a duration is written P[nD][T[nH][nM][nS]]")
    elif not _is_int(right) or right < 0 or right > 9007199254740992:
        _bad_policy(where, "an integer 0..2^53")


def _check_constraint(where, constraint, depth, uses):
    if not isinstance(constraint, dict):
        _bad_policy(where, "a constraint is an object")
    logical = [key for key in LOGICAL if key in constraint]
    if logical:
        if len(constraint) != 1:
            _bad_policy(where, "a logical constraint has exactly one of and, or, xone and nothing else")
        if depth >= 4:
            _bad_policy(where, "constraints nest at most 4 levels")
        operands = constraint[logical[0]]
        if not isinstance(operands, list) or len(operands) < 1 or len(operands) > 16:
            _bad_policy(where + "." + logical[0], "a list of 1..16 constraints")
        for index, inner in enumerate(operands):
            _check_constraint(where + "." + logical[0] + "[" + str(index) + "]", inner, depth + 1, uses)
        return
    if sorted(constraint.keys()) != ["leftOperand", "operator", "rightOperand"]:
        _bad_policy(where, "a constraint has exactly leftOperand, operator and rightOperand")
    operand = constraint["leftOperand"]
    operator = constraint["operator"]
    if not isinstance(operand, str) or operand not in OPERANDS:
        _bad_policy(where + ".leftOperand", "an operand of the subset")
    if not isinstance(operator, str) or operator not in OPERANDS[operand][1]:
        _bad_policy(where + ".operator", operand + " takes " + ", ".join(OPERANDS[operand][1]))
    _check_right(where + ".rightOperand", operand, operator, constraint["rightOperand"])
    uses[operand] = True


def _check_rule(where, rule, permission, uses):
    if not isinstance(rule, dict):
        _bad_policy(where, "a rule is an object")
    for key in rule:
        if key not in RULE_KEYS or (key == "duty" and not permission):
            _bad_policy(where, "a rule has only uid, action, target, assignee, constraint (and a permission duty)")
    if "uid" in rule:
        _text(where + ".uid", rule["uid"], 128)
    if rule.get("action") not in ["use", "read"]:
        _bad_policy(where + ".action", "use or read")
    if "target" in rule:
        _text(where + ".target", rule["target"], 128)
    if "assignee" in rule:
        if isinstance(rule["assignee"], list):
            _texts(where + ".assignee", rule["assignee"])
        else:
            _text(where + ".assignee", rule["assignee"], 64)
    constraints = rule.get("constraint", [])
    if not isinstance(constraints, list) or len(constraints) > 16:
        _bad_policy(where + ".constraint", "a list of at most 16 constraints")
    for index, constraint in enumerate(constraints):
        _check_constraint(where + ".constraint[" + str(index) + "]", constraint, 1, uses)
    if "duty" in rule:
        duty_list = rule["duty"]
        if not isinstance(duty_list, list) or len(duty_list) != 1 or not isinstance(duty_list[0], dict):
            _bad_policy(where + ".duty", "a list of one duty")
        duty = duty_list[0]
        if sorted(duty.keys()) != ["action", "consentingParty"] or duty["action"] != "obtainConsent" \
                or duty["consentingParty"] not in PARTIES:
            _bad_policy(where + ".duty[0]", "obtainConsent from the provider or the bureau")


def _check_policy(policy):
    if not isinstance(policy, dict):
        _bad_policy("$", "a policy is a JSON object")
    for key in policy:
        if key not in POLICY_KEYS:
            _bad_policy("$", "terms outside the accepted subset")
    if "@context" in policy and policy["@context"] != ODRL_CONTEXT:
        _bad_policy("$.@context", ODRL_CONTEXT)
    if policy.get("@type") not in ["Set", "Offer"]:
        _bad_policy("$.@type", "Set or Offer")
    _text("$.uid", policy.get("uid"), 256)
    if policy["@type"] == "Offer" or "assigner" in policy:
        _text("$.assigner", policy.get("assigner"), 64)
    if "profile" in policy and policy["profile"] != PROFILE:
        _bad_policy("$.profile", PROFILE)
    if "conflict" in policy and policy["conflict"] != "prohibit":
        _bad_policy("$.conflict", "prohibit")
    uses = {}
    rules = 0
    for kind in ["permission", "prohibition"]:
        items = policy.get(kind, [])
        if not isinstance(items, list) or len(items) > 16:
            _bad_policy("$." + kind, "a list of at most 16 rules")
        for index, rule in enumerate(items):
            _check_rule("$." + kind + "[" + str(index) + "]", rule, kind == "permission", uses)
        rules = rules + len(items)
    if rules == 0:
        _bad_policy("$", "a policy has at least one permission or prohibition")
    if ("pc:fields" in uses or "pc:duty" in uses) and policy.get("profile") != PROFILE:
        _bad_policy("$.profile", "pc: operands are defined by the profile " + PROFILE)


def _holds(constraint, facts):
    for logical in LOGICAL:
        if logical in constraint:
            passed = 0
            for inner in constraint[logical]:
                if _holds(inner, facts):
                    passed = passed + 1
            if logical == "and":
                return passed == len(constraint[logical])
            if logical == "or":
                return passed >= 1
            return passed == 1
    operand = constraint["leftOperand"]
    operator = constraint["operator"]
    right = constraint["rightOperand"]
    kind = OPERANDS[operand][0]
    left = facts[operand]
    if kind == "text":
        if operator == "eq":
            return left == right
        if operator == "neq":
            return left != right
        return (left in right) == (operator == "isAnyOf")
    if kind == "fields":
        inside = [field for field in left if field in right]
        if operator == "isPartOf":
            return len(inside) == len(left)
        if operator == "hasPart":
            return all([field in left for field in right])
        return (len(inside) > 0) == (operator == "isAnyOf")
    bound = right
    if kind == "dateTime":
        bound = _date_time_ms(right)
    elif kind == "duration":
        bound = _duration_ms(right)
    if operator == "eq":
        return left == bound
    if operator == "lt":
        return left < bound
    if operator == "lteq":
        return left <= bound
    if operator == "gt":
        return left > bound
    return left >= bound


def _applies(rule, facts):
    if "target" in rule and rule["target"] != facts["target"]:
        return False
    if "assignee" in rule:
        assignees = rule["assignee"]
        if not isinstance(assignees, list):
            assignees = [assignees]
        if facts["recipient"] not in assignees:
            return False
    for constraint in rule.get("constraint", []):  # noqa: SIM110 - the sandbox has no generator expressions
        if not _holds(constraint, facts):
            return False
    return True


def _decide(policy, facts):
    """{"outcome": permit | deny | consent, "rule", "consent_party"} (the same order of rules as the
    published language: prohibitions first, then the first permission that holds)."""
    _check_policy(policy)
    for index, rule in enumerate(policy.get("prohibition", [])):
        if _applies(rule, facts):
            return {"outcome": "deny", "rule": rule.get("uid", "prohibition[" + str(index) + "]"), "consent_party": ""}
    waiting = None
    for index, rule in enumerate(policy.get("permission", [])):
        if not _applies(rule, facts):
            continue
        name = rule.get("uid", "permission[" + str(index) + "]")
        if "duty" not in rule:
            return {"outcome": "permit", "rule": name, "consent_party": ""}
        party = rule["duty"][0]["consentingParty"]
        if party in facts["consented"]:
            return {"outcome": "permit", "rule": name, "consent_party": ""}
        if waiting is None:
            waiting = {"outcome": "consent", "rule": name, "consent_party": party}
    if waiting is not None:
        return waiting
    return {"outcome": "deny", "rule": "", "consent_party": ""}


def _default_policy(entry_id, sharing, owner, approver):
    policy = {"@context": ODRL_CONTEXT, "@type": "Offer", "uid": "urn:pilotchain:catalogue:" + entry_id,
              "assigner": owner, "conflict": "prohibit"}
    if sharing == "unconditional":
        policy["permission"] = [{"uid": "share", "action": "use", "target": entry_id}]
    elif sharing == "conditional":
        policy["permission"] = [{"uid": "share-with-consent", "action": "use", "target": entry_id,
                                 "duty": [{"action": "obtainConsent", "consentingParty": approver}]}]
    else:
        policy["prohibition"] = [{"uid": "not-shared", "action": "use", "target": entry_id}]
    return policy


# ---------------------------------------------------------------- configuration and checks


def init(bureau_org):
    _check_text("bureau_org", bureau_org, 64)
    settings.set({"bureau": bureau_org})


def upgrade(bureau_org=""):
    if bureau_org != "":
        init(bureau_org)


def _bureau():
    return settings.get()["bureau"]


def _check_text(name, value, limit):
    if not isinstance(value, str) or len(value) < 1 or len(value) > limit:
        reject_arguments(name + " is a text of 1.." + str(limit) + " characters")


def _check_id(name, value):
    _check_text(name, value, 96)
    if ID_CHARS.find(value[0]) < 0 or value[0] in "._-" or DIGITS.find(value[0]) >= 0:
        reject_arguments(name + " starts with a lower-case letter")
    for char in value:
        if ID_CHARS.find(char) < 0:
            reject_arguments(name + " uses lower-case letters, digits and . _ -")


def _check_request_id(value):
    if not isinstance(value, str) or len(value) != 32:
        reject_arguments("request_id is 32 lower-case hex digits (128 random bits)")
    for char in value:
        if HEX.find(char) < 0:
            reject_arguments("request_id is 32 lower-case hex digits (128 random bits)")


def _check_time(name, value):
    if not _is_int(value) or value < 0:
        reject_arguments(name + " is a time in ms since 1970")


def _department(org):
    record = departments.get(org)
    if record is None:
        deny(org + " is not a department of the directory; the Big-Data Bureau admits departments")
    return record


def _stamp(record):
    record["height"] = context.height
    record["ms"] = context.timestamp_ms
    record["by"] = context.caller.name
    return record


def _append(kind, item_id):
    count = counts.get(kind, 0)
    listing.set(kind + "/" + str(count), item_id)
    counts.set(kind, count + 1)


def _owner_only(record, what):
    if context.caller.org != record["owner"]:
        deny("only " + record["owner"] + " changes " + what)


# ---------------------------------------------------------------- departments and duties


def admit(org, name):
    if context.caller.org != _bureau() or "admin" not in context.caller.roles:
        deny("the Big-Data Bureau's admin admits departments")
    _check_text("org", org, 64)
    _check_text("name", name, 256)
    known = departments.contains(org)
    departments.set(org, _stamp({"org": org, "name": name}))
    if not known:
        _append("departments", org)
    emit("department_admitted", {"org": org, "name": name})


def publish_duty(duty_id, title, basis):
    org = context.caller.org
    _department(org)
    _check_id("duty_id", duty_id)
    _check_text("title", title, 256)
    _check_text("basis", basis, 512)
    head = duties.get(duty_id)
    version = 1
    if head is not None:
        _owner_only(head, "duty " + duty_id)
        version = head["version"] + 1
    require(version <= VERSIONS_MAX, "duty " + duty_id + " has too many versions")
    record = _stamp({"id": duty_id, "owner": org, "version": version, "status": "active", "title": title,
                     "basis": basis, "reason": ""})
    duty_versions.set(duty_id + "/" + str(version), record)
    duties.set(duty_id, record)
    if head is None:
        _append("duties", duty_id)
    emit("duty_published", {"id": duty_id, "owner": org, "version": version})
    return record


def retire_duty(duty_id, reason):
    head = duties.get(duty_id)
    require(head is not None, "no duty " + str(duty_id))
    _owner_only(head, "duty " + duty_id)
    _check_text("reason", reason, 256)
    require(head["status"] == "active", "duty " + duty_id + " is retired already")
    record = dict(head)
    record["version"] = head["version"] + 1
    record["status"] = "retired"
    record["reason"] = reason
    _stamp(record)
    duty_versions.set(duty_id + "/" + str(record["version"]), record)
    duties.set(duty_id, record)
    emit("duty_retired", {"id": duty_id, "owner": head["owner"], "reason": reason})
    return record


# ---------------------------------------------------------------- catalogue entries


def _check_fields(fields, sharing):
    if not isinstance(fields, list) or len(fields) < 1 or len(fields) > FIELDS_MAX:
        reject_arguments("fields is a list of 1.." + str(FIELDS_MAX) + " fields")
    names = []
    out = []
    for field in fields:
        if not isinstance(field, dict):
            reject_arguments('a field is {"name", "type", "description"?, "sharing"?}')
        for key in field:
            if key not in ["name", "type", "description", "sharing"]:
                reject_arguments("a field has name, type, description and sharing, not " + str(key))
        name = field.get("name")
        _check_text("field name", name, 64)
        if DIGITS.find(name[0]) >= 0 or name[0] == "_":
            reject_arguments("field " + name + ": names start with a letter")
        for char in name:
            if FIELD_CHARS.find(char) < 0:
                reject_arguments("field " + name + ": names use lower-case letters, digits and _")
        require(name not in names, "field " + name + " appears twice")
        names.append(name)
        if field.get("type") not in FIELD_TYPES:
            reject_arguments("field " + name + ": type is one of " + ", ".join(FIELD_TYPES))
        description = field.get("description", "")
        if description != "":
            _check_text("field " + name + " description", description, 512)
        field_sharing = field.get("sharing", sharing)
        if field_sharing != sharing and field_sharing != "not_shared":
            reject_arguments("field " + name + ": sharing is the entry's or not_shared (a field may only be stricter)")
        out.append({"name": name, "type": field["type"], "description": description, "sharing": field_sharing})
    return out


def _check_class(policy, sharing):
    """An unconditional entry needs nobody's consent; a conditional one sets a condition on every
    permission (a constraint or a consent)."""
    for rule in policy.get("permission", []):
        if sharing == "unconditional" and "duty" in rule:
            reject_arguments("an unconditional entry's policy needs nobody's consent; make it conditional")
        if sharing == "conditional" and "duty" not in rule and len(rule.get("constraint", [])) == 0:
            reject_arguments("a conditional entry's policy sets a condition (a constraint or a consent) on every "
                             "permission")


def publish_entry(entry_id, spec):
    org = context.caller.org
    _department(org)
    _check_id("entry_id", entry_id)
    if not isinstance(spec, dict):
        reject_arguments("spec is an object: title, duty_id, fields, key_field, sharing, update_frequency, ...")
    for key in spec:
        if key not in ["title", "description", "duty_id", "fields", "key_field", "sharing", "update_frequency",
                       "approver", "classification", "policy"]:
            reject_arguments("spec has no " + str(key))
    _check_text("title", spec.get("title"), 256)
    description = spec.get("description", "")
    if description != "":
        _check_text("description", description, 1024)
    sharing = spec.get("sharing")
    if sharing not in SHARING:
        reject_arguments("sharing is one of " + ", ".join(SHARING))
    frequency = spec.get("update_frequency")
    if frequency not in FREQUENCIES:
        reject_arguments("update_frequency is one of " + ", ".join(FREQUENCIES))
    approver = spec.get("approver", "provider")
    if approver not in PARTIES:
        reject_arguments("approver is provider or bureau")
    duty = duties.get(spec.get("duty_id", ""))
    if duty is None or duty["owner"] != org or duty["status"] != "active":
        reject_arguments("duty_id names an active duty of " + org + " (the duty under which it holds the data)")
    fields = _check_fields(spec.get("fields"), sharing)
    key_field = spec.get("key_field")
    require(key_field in [field["name"] for field in fields], "key_field is one of the fields")
    classification = spec.get("classification", "general")
    _check_text("classification", classification, 32)
    policy = spec.get("policy")
    if policy is None:
        policy = _default_policy(entry_id, sharing, org, approver)
    _check_policy(policy)
    if "assigner" in policy and policy["assigner"] != org:
        reject_arguments("the policy's assigner is " + org + ", the department that offers the entry")
    _check_class(policy, sharing)
    head = entries.get(entry_id)
    version = 1
    withdrawals = 0
    if head is not None:
        _owner_only(head, "entry " + entry_id)
        version = head["version"] + 1
        withdrawals = head["withdrawals"]
    require(version <= VERSIONS_MAX, "entry " + entry_id + " has too many versions")
    record = _stamp({"id": entry_id, "owner": org, "version": version, "status": "active", "title": spec["title"],
                     "description": description, "duty_id": duty["id"], "fields": fields, "key_field": key_field,
                     "sharing": sharing, "update_frequency": frequency, "approver": approver,
                     "classification": classification, "policy": policy, "withdrawals": withdrawals, "reason": ""})
    entry_versions.set(entry_id + "/" + str(version), record)
    entries.set(entry_id, record)
    if head is None:
        _append("entries", entry_id)
    emit("entry_published", {"id": entry_id, "owner": org, "version": version, "sharing": sharing})
    return record


def withdraw_entry(entry_id, reason):
    head = entries.get(entry_id)
    require(head is not None, "no entry " + str(entry_id))
    if context.caller.org != head["owner"] and context.caller.org != _bureau():
        deny("only " + head["owner"] + " or the Big-Data Bureau withdraws entry " + entry_id)
    _check_text("reason", reason, 256)
    require(head["status"] == "active", "entry " + entry_id + " is withdrawn already")
    record = dict(head)
    record["version"] = head["version"] + 1
    record["status"] = "withdrawn"
    record["withdrawals"] = head["withdrawals"] + 1
    record["reason"] = reason
    _stamp(record)
    entry_versions.set(entry_id + "/" + str(record["version"]), record)
    entries.set(entry_id, record)
    emit("entry_withdrawn", {"id": entry_id, "owner": head["owner"], "by": context.caller.org, "reason": reason})
    return record


def publish_dataset(entry_id, payload_id, root, records, fields):
    head = entries.get(entry_id)
    require(head is not None, "no entry " + str(entry_id))
    _owner_only(head, "the data of entry " + entry_id)
    require(head["status"] == "active", "entry " + entry_id + " is withdrawn")
    if not isinstance(root, bytes) or len(root) != 32:
        reject_arguments("root is the dataset's 32-byte field-level commitment")
    if not _is_int(records) or records < 0 or records > RECORDS_MAX:
        reject_arguments("records is the number of records (0.." + str(RECORDS_MAX) + ")")
    require(fields == [field["name"] for field in head["fields"]],
            "fields are the entry's fields in its order (version " + str(head["version"]) + ")")
    payload = call("dataex", "payload", {"payload_id": payload_id})
    require(payload is not None, "payload " + str(payload_id) + " is not registered with dataex")
    require(payload["owner"] == context.caller.org and payload["purged"] is None,
            "payload " + payload_id + " is not a live payload of " + context.caller.org)
    require(payload["policy"] == context.contract,
            "payload " + payload_id + " must name " + context.contract + " as its policy (then only calls release it)")
    current = datasets.get(entry_id)
    version = 1
    if current is not None:
        version = current["version"] + 1
    require(version <= VERSIONS_MAX, "entry " + entry_id + " has too many dataset versions")
    record = _stamp({"entry_id": entry_id, "version": version, "entry_version": head["version"],
                     "payload_id": payload_id, "root": root, "records": records, "fields": fields})
    dataset_versions.set(entry_id + "/" + str(version), record)
    datasets.set(entry_id, record)
    emit("dataset_published", {"entry_id": entry_id, "version": version, "records": records, "root": root})
    return record


# ---------------------------------------------------------------- requests and agreements


def _facts(req, consented):
    return {"target": req["entry_id"], "recipient": req["consumer"], "purpose": req["purpose"],
            "dateTime": context.timestamp_ms, "elapsedTime": req["until_ms"] - req["from_ms"], "count": 1,
            "pc:fields": req["fields"], "pc:duty": req["duty_id"], "consented": consented}


def _settle(req, decision, by):
    """Apply a policy decision to a request: an agreement, a denial, or a wait for consent."""
    req["decision"] = {"outcome": decision["outcome"], "rule": decision["rule"], "by": by,
                       "policy_uid": entries.get(req["entry_id"])["policy"]["uid"]}
    if decision["outcome"] == "permit":
        entry = entries.get(req["entry_id"])
        req["status"] = "agreed"
        req["awaiting"] = ""
        agreement = {"id": req["id"], "entry_id": req["entry_id"], "entry_version": entry["version"],
                     "entry_withdrawals": entry["withdrawals"], "provider": req["provider"],
                     "consumer": req["consumer"], "duty_id": req["duty_id"], "fields": req["fields"],
                     "purpose": req["purpose"], "from_ms": req["from_ms"], "until_ms": req["until_ms"],
                     "status": "active", "decided_by": req["decision"], "consented": req["consented"],
                     "height": context.height, "ms": context.timestamp_ms, "reason": ""}
        agreements.set(req["id"], agreement)
        _append("agreements", req["id"])
        emit("agreed", {"id": req["id"], "entry_id": req["entry_id"], "provider": req["provider"],
                        "consumer": req["consumer"], "rule": decision["rule"], "by": by})
    elif decision["outcome"] == "consent":
        party = decision["consent_party"]
        req["status"] = "pending"
        req["awaiting"] = party
        req["awaiting_org"] = req["provider"] if party == "provider" else _bureau()
        emit("awaiting_consent", {"id": req["id"], "entry_id": req["entry_id"], "party": party,
                                  "org": req["awaiting_org"]})
    else:
        req["status"] = "denied"
        req["awaiting"] = ""
        emit("request_denied", {"id": req["id"], "entry_id": req["entry_id"], "consumer": req["consumer"],
                                "rule": decision["rule"], "by": by})
    requests.set(req["id"], req)
    return req


def request(request_id, entry_id, duty_id, fields, purpose, from_ms, until_ms):
    consumer = context.caller.org
    _department(consumer)
    _check_request_id(request_id)
    require(not requests.contains(request_id), "request " + request_id + " exists; use a fresh request_id")
    entry = entries.get(entry_id)
    require(entry is not None and entry["status"] == "active", "no active catalogue entry " + str(entry_id))
    require(entry["owner"] != consumer, "entry " + entry_id + " is " + consumer + "'s own")
    require(entry["sharing"] != "not_shared", "entry " + entry_id + " is not shared")
    duty = duties.get(duty_id)
    require(duty is not None and duty["owner"] == consumer and duty["status"] == "active",
            "duty_id names an active duty of " + consumer + " (the duty that needs the data)")
    shareable = [field["name"] for field in entry["fields"] if field["sharing"] != "not_shared"]
    if not isinstance(fields, list) or len(fields) < 1:
        reject_arguments("fields is a non-empty list of the entry's fields")
    for field in fields:
        require(field in shareable, "field " + str(field) + " is not a shared field of " + entry_id)
    require(len(fields) == len(dict([[field, True] for field in fields])), "fields are distinct")
    _check_text("purpose", purpose, 64)
    _check_time("from_ms", from_ms)
    _check_time("until_ms", until_ms)
    require(from_ms < until_ms and until_ms > context.timestamp_ms, "the period ends after it starts, in the future")
    require(until_ms - from_ms <= PERIOD_MS_MAX, "a period lasts at most five years")
    ordered = [name for name in shareable if name in fields]
    req = _stamp({"id": request_id, "entry_id": entry_id, "entry_version": entry["version"],
                  "provider": entry["owner"], "consumer": consumer, "duty_id": duty_id, "fields": ordered,
                  "purpose": purpose, "from_ms": from_ms, "until_ms": until_ms, "status": "", "awaiting": "",
                  "awaiting_org": "", "consented": [], "decision": None, "reason": ""})
    _append("requests", request_id)
    return _settle(req, _decide(entry["policy"], _facts(req, [])), "policy")


def _pending(request_id):
    req = requests.get(request_id)
    require(req is not None, "no request " + str(request_id))
    require(req["status"] == "pending", "request " + request_id + " is " + req["status"] + ", not pending")
    if context.caller.org != req["awaiting_org"]:
        deny("request " + request_id + " waits for the consent of the " + req["awaiting"] + " ("
             + req["awaiting_org"] + ")")
    return req


def approve(request_id, note=""):
    req = _pending(request_id)
    if note != "":
        _check_text("note", note, 256)
    entry = entries.get(req["entry_id"])
    req["consented"] = req["consented"] + [req["awaiting"]]
    req["reason"] = note
    _stamp(req)
    if entry["status"] != "active" or entry["sharing"] == "not_shared":
        req["status"] = "denied"
        req["reason"] = "the entry was withdrawn or is no longer shared"
        requests.set(request_id, req)
        emit("request_denied", {"id": request_id, "entry_id": req["entry_id"], "consumer": req["consumer"],
                                "rule": "", "by": context.caller.org})
        return req
    return _settle(req, _decide(entry["policy"], _facts(req, req["consented"])), context.caller.org)


def reject(request_id, reason):
    req = _pending(request_id)
    _check_text("reason", reason, 256)
    req["status"] = "rejected"
    req["reason"] = reason
    _stamp(req)
    requests.set(request_id, req)
    emit("request_rejected", {"id": request_id, "entry_id": req["entry_id"], "consumer": req["consumer"],
                              "by": context.caller.org, "reason": reason})
    return req


def revoke(agreement_id, reason):
    record = agreements.get(agreement_id)
    require(record is not None, "no agreement " + str(agreement_id))
    if context.caller.org != record["provider"] and context.caller.org != _bureau():
        deny("only " + record["provider"] + " or the Big-Data Bureau revokes agreement " + agreement_id)
    _check_text("reason", reason, 256)
    require(record["status"] == "active", "agreement " + agreement_id + " is " + record["status"])
    record["status"] = "revoked"
    record["reason"] = reason
    record["revoked"] = {"by": context.caller.name, "org": context.caller.org, "height": context.height,
                         "ms": context.timestamp_ms}
    agreements.set(agreement_id, record)
    emit("agreement_revoked", {"id": agreement_id, "by": context.caller.org, "reason": reason})
    return record


# ---------------------------------------------------------------- queries


def config():
    return settings.get()


def department(org):
    return departments.get(org)


def duty(duty_id):
    return duties.get(duty_id)


def entry(entry_id):
    return entries.get(entry_id)


def dataset(entry_id):
    return datasets.get(entry_id)


def get_request(request_id):
    return requests.get(request_id)


def agreement(agreement_id):
    return agreements.get(agreement_id)


def _history(versions, head, item_id):
    if head is None:
        return []
    return [versions.get(item_id + "/" + str(number)) for number in range(1, head["version"] + 1)]


def duty_history(duty_id):
    return _history(duty_versions, duties.get(duty_id), duty_id)


def entry_history(entry_id):
    return _history(entry_versions, entries.get(entry_id), entry_id)


def dataset_history(entry_id):
    return _history(dataset_versions, datasets.get(entry_id), entry_id)


def _page(kind, offset, limit):
    if not _is_int(offset) or not _is_int(limit) or offset < 0 or limit < 1 or limit > PAGE_MAX:
        reject_arguments("offset >= 0 and limit 1.." + str(PAGE_MAX))
    total = counts.get(kind, 0)
    ids = [listing.get(kind + "/" + str(index)) for index in range(offset, min(total, offset + limit))]
    following = offset + limit
    if following >= total:
        following = -1
    return ids, following, total


def entries_list(offset=0, limit=100):
    ids, following, total = _page("entries", offset, limit)
    return {"items": [entries.get(item) for item in ids], "next": following, "total": total}


def duties_list(offset=0, limit=100):
    ids, following, total = _page("duties", offset, limit)
    return {"items": [duties.get(item) for item in ids], "next": following, "total": total}


def departments_list(offset=0, limit=100):
    ids, following, total = _page("departments", offset, limit)
    return {"items": [departments.get(item) for item in ids], "next": following, "total": total}


def requests_list(offset=0, limit=100, org="", status=""):
    """Requests in filing order (a page of the index), those that involve ``org`` (as consumer,
    provider or the party awaited) and have ``status``, when given."""
    ids, following, total = _page("requests", offset, limit)
    items = []
    for item in ids:
        req = requests.get(item)
        if org != "" and org not in [req["consumer"], req["provider"], req["awaiting_org"]]:
            continue
        if status != "" and req["status"] != status:
            continue
        items.append(req)
    return {"items": items, "next": following, "total": total}


def agreements_list(offset=0, limit=100, org=""):
    ids, following, total = _page("agreements", offset, limit)
    items = []
    for item in ids:
        record = agreements.get(item)
        if org == "" or org in [record["consumer"], record["provider"]]:
            items.append(record)
    return {"items": items, "next": following, "total": total}


def check_policy(policy):
    _check_policy(policy)
    return True


def evaluate_policy(policy, facts):
    """The decision of ``policy`` on ``facts`` (the published language's context), as a request or
    a call would get it; for tools and the cross-implementation vectors."""
    if not isinstance(facts, dict):
        reject_arguments("facts is an object")
    for key in ["target", "recipient", "purpose", "dateTime", "elapsedTime", "count", "pc:fields", "pc:duty",
                "consented"]:
        if key not in facts:
            reject_arguments("facts lack " + key)
    return _decide(policy, facts)

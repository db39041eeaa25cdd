"""The catalogue's usage policies: a small, strict subset of W3C ODRL 2.2, evaluated deterministically.

A catalogue entry carries one policy (JSON). It decides a consumer's request when it is filed and
approved (the ``catalogue`` contract runs its own copy of these rules on chain) and every call
under an agreement (the provider's vault runs this module). The same policy and the same facts
give the same decision everywhere: no clock, no locale, no floating point, no ignored terms — a
term this subset does not define makes the policy invalid rather than silently skipped, so two
implementations cannot disagree about what it means. ``docs/catalogue.md`` publishes the
language; ``tests/apps/catalogue/policy_vectors.json`` holds permit/deny vectors that this module
and the contract both pass.

Theory of operation::

    check_policy(policy)             PolicyError(where, why) unless the document is in the subset
    evaluate(policy, context)        Decision(outcome, rule, reason, consent_party)

    1. a prohibition whose target, assignee and constraints all hold      -> deny (that rule)
    2. the first permission that holds and has no duty, or whose duty
       (obtainConsent from "provider" or "bureau") is fulfilled          -> permit (that rule)
    3. else the first permission that holds (its consent is missing)      -> consent (that rule, party)
    4. else                                                               -> deny (no rule)

The facts (``context``) are: ``target`` (entry id), ``recipient`` (the consumer organisation),
``purpose``, ``dateTime`` (ms since 1970: the block time that decides), ``elapsedTime`` (ms: the
agreement's period), ``count`` (the call being decided is the count-th under the agreement; 1 when
a request is decided), ``pc:fields`` (the fields asked for), ``pc:duty`` (the consumer's duty
cited) and ``consented`` (the parties that consented: "provider", "bureau").

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pilotchain.errors import CoreError

__all__ = [
    "CONTEXT",
    "CONTEXT_KEYS",
    "Decision",
    "PROFILE",
    "PolicyError",
    "check_policy",
    "default_policy",
    "evaluate",
    "parse_date_time",
    "parse_duration",
]

CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
#: the profile that defines the ``pc:`` left operands (ODRL 2.2 §2.2: profile terms need it)
PROFILE = "urn:pilotchain:odrl:catalogue:1"

PERMIT, DENY, CONSENT = "permit", "deny", "consent"
PARTIES = ("provider", "bureau")
ACTIONS = ("use", "read")  # a call reads; odrl:use includes odrl:read

RULES_MAX = 16
CONSTRAINTS_MAX = 16
LOGICAL_DEPTH_MAX = 4
LIST_ITEMS_MAX = 64
TEXT_CHARS_MAX = 256
COUNT_MAX = 2**53

_POLICY_KEYS = frozenset({"@context", "@type", "uid", "profile", "conflict", "assigner", "permission", "prohibition"})
_RULE_KEYS = frozenset({"uid", "action", "target", "assignee", "constraint", "duty"})
_LOGICAL = ("and", "or", "xone")
_EQUALITY = ("eq", "neq", "isAnyOf", "isNoneOf")
_ORDER = ("eq", "lt", "lteq", "gt", "gteq")
_SETS = ("isPartOf", "hasPart", "isAnyOf", "isNoneOf")
#: left operand -> (kind, operators)
OPERANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "purpose": ("text", _EQUALITY),
    "recipient": ("text", _EQUALITY),
    "pc:duty": ("text", _EQUALITY),
    "dateTime": ("dateTime", _ORDER),
    "elapsedTime": ("duration", _ORDER),
    "count": ("integer", _ORDER),
    "pc:fields": ("fields", _SETS),
}
CONTEXT_KEYS = ("target", "recipient", "purpose", "dateTime", "elapsedTime", "count", "pc:fields", "pc:duty",
                "consented")

_DATE_TIME = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z\Z")
_DURATION = re.compile(r"^P(?:([0-9]{1,9})D)?(?:T(?:([0-9]{1,9})H)?(?:([0-9]{1,9})M)?(?:([0-9]{1,9})S)?)?\Z")
_DAY_MS = 86_400_000


class PolicyError(CoreError):
    """A policy outside the accepted subset; ``where`` is a JSON path, ``why`` says what to change."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")
        self.where = where
        self.why = why


@dataclass(frozen=True, slots=True)
class Decision:
    """``outcome``: permit, deny or consent (permitted once ``consent_party`` consents);
    ``rule``: the uid (or position) of the rule that decided, "" when none did."""

    outcome: str
    rule: str
    reason: str
    consent_party: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"outcome": self.outcome, "rule": self.rule, "reason": self.reason,
                "consent_party": self.consent_party}


# --------------------------------------------------------------------------- time values


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (integer arithmetic only)."""
    year -= 1 if month <= 2 else 0
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def parse_date_time(text: object) -> int:
    """``YYYY-MM-DDThh:mm:ssZ`` (xsd:dateTime in UTC, no fractions) -> ms since 1970."""
    match = _DATE_TIME.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError("a dateTime is written YYYY-MM-DDThh:mm:ssZ (UTC, no fractions)")
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    if not (year >= 1970 and 1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)
            and hour < 24 and minute < 60 and second < 60):
        raise ValueError(f"{text} is not a time from 1970 on")
    return _days_from_civil(year, month, day) * _DAY_MS + ((hour * 60 + minute) * 60 + second) * 1000


def parse_duration(text: object) -> int:
    """``P[nD][T[nH][nM][nS]]`` (xsd:duration of fixed length: no years, months or fractions) -> ms."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or not any(match.groups()) or (isinstance(text, str) and text.endswith("T")):
        raise ValueError("a duration is written P[nD][T[nH][nM][nS]] (days, hours, minutes, seconds; "
                         "years and months have no fixed length)")
    days, hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    return days * _DAY_MS + ((hours * 60 + minutes) * 60 + seconds) * 1000


# --------------------------------------------------------------------------- validation


def _text(where: str, value: object, limit: int = TEXT_CHARS_MAX) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise PolicyError(where, f"a text of 1..{limit} characters")
    return value


def _texts(where: str, value: object) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= LIST_ITEMS_MAX:
        raise PolicyError(where, f"a list of 1..{LIST_ITEMS_MAX} texts")
    return [_text(f"{where}[{index}]", item) for index, item in enumerate(value)]


def _check_right(where: str, operand: str, operator: str, right: object) -> None:
    kind = OPERANDS[operand][0]
    if kind == "text":
        if operator in ("isAnyOf", "isNoneOf"):
            _texts(where, right)
        else:
            _text(where, right)
    elif kind == "fields":
        _texts(where, right)
    elif kind == "dateTime":
        try:
            parse_date_time(right)
        except ValueError as exc:
            raise PolicyError(where, str(exc)) from None
    elif kind == "duration":
        try:
            parse_duration(right)
        except ValueError as exc:
            raise PolicyError(where, str(exc)) from None
    elif not isinstance(right, int) or isinstance(right, bool) or not 0 <= right <= COUNT_MAX:
        raise PolicyError(where, f"an integer 0..{COUNT_MAX}")


def _check_constraint(where: str, constraint: object, depth: int, uses: set[str]) -> None:
    if not isinstance(constraint, dict):
        raise PolicyError(where, "a constraint is an object")
    logical = [key for key in _LOGICAL if key in constraint]
    if logical:
        if len(constraint) != 1:
            raise PolicyError(where, f"a logical constraint has exactly one of {', '.join(_LOGICAL)} and nothing else")
        if depth >= LOGICAL_DEPTH_MAX:
            raise PolicyError(where, f"logical constraints nest at most {LOGICAL_DEPTH_MAX} deep")
        operands = constraint[logical[0]]
        if not isinstance(operands, list) or not 1 <= len(operands) <= CONSTRAINTS_MAX:
            raise PolicyError(f"{where}.{logical[0]}", f"a list of 1..{CONSTRAINTS_MAX} constraints")
        for index, inner in enumerate(operands):
            _check_constraint(f"{where}.{logical[0]}[{index}]", inner, depth + 1, uses)
        return
    if set(constraint) != {"leftOperand", "operator", "rightOperand"}:
        raise PolicyError(where, "a constraint has exactly leftOperand, operator and rightOperand "
                                 "(or one of and / or / xone)")
    operand, operator = constraint["leftOperand"], constraint["operator"]
    if not isinstance(operand, str) or operand not in OPERANDS:
        raise PolicyError(f"{where}.leftOperand", f"one of {', '.join(OPERANDS)}")
    if not isinstance(operator, str) or operator not in OPERANDS[operand][1]:
        raise PolicyError(f"{where}.operator", f"{operand} takes {', '.join(OPERANDS[operand][1])}")
    _check_right(f"{where}.rightOperand", operand, operator, constraint["rightOperand"])
    uses.add(operand)


def _check_rule(where: str, rule: object, permission: bool, uses: set[str]) -> None:
    if not isinstance(rule, dict):
        raise PolicyError(where, "a rule is an object")
    unknown = sorted(set(rule) - _RULE_KEYS)
    if unknown or (not permission and "duty" in rule):
        raise PolicyError(where, f"a {'permission' if permission else 'prohibition'} has only "
                                 f"{', '.join(sorted(_RULE_KEYS - (set() if permission else {'duty'})))}"
                                 f"; not {', '.join(unknown or ['duty'])}")
    if "uid" in rule:
        _text(f"{where}.uid", rule["uid"], 128)
    if rule.get("action") not in ACTIONS:
        raise PolicyError(f"{where}.action", f"one of {', '.join(ACTIONS)}")
    if "target" in rule:
        _text(f"{where}.target", rule["target"], 128)
    if "assignee" in rule:
        assignee = rule["assignee"]
        if isinstance(assignee, list):
            _texts(f"{where}.assignee", assignee)
        else:
            _text(f"{where}.assignee", assignee, 64)
    constraints = rule.get("constraint", [])
    if not isinstance(constraints, list) or len(constraints) > CONSTRAINTS_MAX:
        raise PolicyError(f"{where}.constraint", f"a list of at most {CONSTRAINTS_MAX} constraints")
    for index, constraint in enumerate(constraints):
        _check_constraint(f"{where}.constraint[{index}]", constraint, 1, uses)
    if "duty" in rule:
        duties = rule["duty"]
        if not isinstance(duties, list) or len(duties) != 1 or not isinstance(duties[0], dict):
            raise PolicyError(f"{where}.duty", "a list of one duty")
        duty = duties[0]
        if set(duty) != {"action", "consentingParty"} or duty["action"] != "obtainConsent" \
                or duty["consentingParty"] not in PARTIES:
            raise PolicyError(f"{where}.duty[0]", 'a duty is {"action": "obtainConsent", "consentingParty": '
                                                  '"provider" | "bureau"}')


def check_policy(policy: object) -> None:
    """Raise :class:`PolicyError` unless ``policy`` is a document of the accepted subset."""
    if not isinstance(policy, dict):
        raise PolicyError("$", "a policy is a JSON object")
    unknown = sorted(set(policy) - _POLICY_KEYS)
    if unknown:
        raise PolicyError("$", f"terms outside the accepted subset: {', '.join(unknown)}")
    if "@context" in policy and policy["@context"] != CONTEXT:
        raise PolicyError("$.@context", f"{CONTEXT} (or leave it out)")
    if policy.get("@type") not in ("Set", "Offer"):
        raise PolicyError("$.@type", "Set or Offer")
    _text("$.uid", policy.get("uid"))
    if policy["@type"] == "Offer" or "assigner" in policy:
        _text("$.assigner", policy.get("assigner"), 64)
    if "profile" in policy and policy["profile"] != PROFILE:
        raise PolicyError("$.profile", f"{PROFILE} (or leave it out)")
    if "conflict" in policy and policy["conflict"] != "prohibit":
        raise PolicyError("$.conflict", "prohibit (a prohibition that applies always wins; the default here)")
    uses: set[str] = set()
    rules = 0
    for kind in ("permission", "prohibition"):
        items = policy.get(kind, [])
        if not isinstance(items, list) or len(items) > RULES_MAX:
            raise PolicyError(f"$.{kind}", f"a list of at most {RULES_MAX} rules")
        for index, rule in enumerate(items):
            _check_rule(f"$.{kind}[{index}]", rule, kind == "permission", uses)
        rules += len(items)
    if rules == 0:
        raise PolicyError("$", "a policy has at least one permission or prohibition")
    if any(operand.startswith("pc:") for operand in uses) and policy.get("profile") != PROFILE:
        raise PolicyError("$.profile", f"pc: operands are defined by the profile {PROFILE}: name it")


# --------------------------------------------------------------------------- evaluation


def _holds(constraint: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether ``constraint`` holds for ``context``, and why not."""
    for logical in _LOGICAL:
        if logical in constraint:
            results = [_holds(inner, context) for inner in constraint[logical]]
            passed = sum(1 for ok, _ in results if ok)
            if logical == "and":
                failed = [why for ok, why in results if not ok]
                return (not failed, failed[0] if failed else "")
            if logical == "or":
                return (passed >= 1, "none of " + "; ".join(why for _, why in results) if passed == 0 else "")
            return (passed == 1, "" if passed == 1 else f"{passed} of the xone alternatives hold, not exactly one")
    operand, operator, right = constraint["leftOperand"], constraint["operator"], constraint["rightOperand"]
    kind = OPERANDS[operand][0]
    left = context[operand]
    if kind == "text":
        ok = _compare_text(operator, left, right)
    elif kind == "fields":
        ok = _compare_sets(operator, set(left), set(right))
    else:
        bound = parse_date_time(right) if kind == "dateTime" else parse_duration(right) if kind == "duration" else right
        ok = _compare_order(operator, left, bound)
    return ok, "" if ok else f"{operand} {operator} {right} does not hold (it is {left})"


def _compare_text(operator: str, left: str, right: Any) -> bool:
    if operator == "eq":
        return bool(left == right)
    if operator == "neq":
        return bool(left != right)
    return (left in right) == (operator == "isAnyOf")  # isAnyOf / isNoneOf


def _compare_sets(operator: str, asked: set[str], allowed: set[str]) -> bool:
    if operator == "isPartOf":
        return asked <= allowed
    if operator == "hasPart":
        return allowed <= asked
    return bool(asked & allowed) == (operator == "isAnyOf")  # isAnyOf / isNoneOf


def _compare_order(operator: str, left: int, bound: int) -> bool:
    if operator == "eq":
        return left == bound
    if operator == "lt":
        return left < bound
    if operator == "lteq":
        return left <= bound
    if operator == "gt":
        return left > bound
    return left >= bound  # gteq


def _applies(rule: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[bool, str]:
    if "target" in rule and rule["target"] != context["target"]:
        return False, f"its target is {rule['target']}"
    if "assignee" in rule:
        assignees = rule["assignee"] if isinstance(rule["assignee"], list) else [rule["assignee"]]
        if context["recipient"] not in assignees:
            return False, f"{context['recipient']} is not its assignee"
    for constraint in rule.get("constraint", []):
        ok, why = _holds(constraint, context)
        if not ok:
            return False, why
    return True, ""


def _name(rule: Mapping[str, Any], kind: str, index: int) -> str:
    return str(rule["uid"]) if "uid" in rule else f"{kind}[{index}]"


def _check_context(context: Mapping[str, Any]) -> None:
    missing = [key for key in CONTEXT_KEYS if key not in context]
    if missing:
        raise PolicyError("context", f"the facts lack {', '.join(missing)}")
    for key in ("target", "recipient", "purpose", "pc:duty"):
        if not isinstance(context[key], str):
            raise PolicyError(f"context.{key}", "a text")
    for key in ("dateTime", "elapsedTime", "count"):
        if not isinstance(context[key], int) or isinstance(context[key], bool):
            raise PolicyError(f"context.{key}", "an integer")
    for key in ("pc:fields", "consented"):
        if not isinstance(context[key], Sequence) or isinstance(context[key], str) \
                or not all(isinstance(item, str) for item in context[key]):
            raise PolicyError(f"context.{key}", "a list of texts")


def evaluate(policy: Mapping[str, Any], context: Mapping[str, Any]) -> Decision:
    """Decide ``context`` under ``policy`` (both checked first: PolicyError if either is malformed)."""
    check_policy(policy)
    _check_context(context)
    for index, rule in enumerate(policy.get("prohibition", [])):
        applies, _ = _applies(rule, context)
        if applies:
            return Decision(DENY, _name(rule, "prohibition", index), "a prohibition applies")
    waiting: tuple[str, str] | None = None
    failures = []
    for index, rule in enumerate(policy.get("permission", [])):
        name = _name(rule, "permission", index)
        applies, why = _applies(rule, context)
        if not applies:
            failures.append(f"{name}: {why}")
            continue
        if "duty" not in rule:
            return Decision(PERMIT, name, "permitted")
        party = rule["duty"][0]["consentingParty"]
        if party in context["consented"]:
            return Decision(PERMIT, name, f"permitted with the {party}'s consent")
        if waiting is None:
            waiting = (name, party)
    if waiting is not None:
        return Decision(CONSENT, waiting[0], f"permitted once the {waiting[1]} consents", waiting[1])
    if not policy.get("permission"):
        return Decision(DENY, "", "the policy permits nothing")
    return Decision(DENY, "", "no permission applies: " + "; ".join(failures))


def default_policy(entry_id: str, sharing: str, owner: str, approver: str = "provider") -> dict[str, Any]:
    """The policy an entry gets when its department publishes none: unconditional entries permit
    every department's request at once; conditional ones need ``approver``'s consent (the
    provider, or the Big-Data Bureau); entries not shared permit nothing."""
    policy: dict[str, Any] = {"@context": CONTEXT, "@type": "Offer", "uid": f"urn:pilotchain:catalogue:{entry_id}",
                              "assigner": owner, "conflict": "prohibit"}
    if sharing == "unconditional":
        policy["permission"] = [{"uid": "share", "action": "use", "target": entry_id}]
    elif sharing == "conditional":
        policy["permission"] = [{"uid": "share-with-consent", "action": "use", "target": entry_id,
                                 "duty": [{"action": "obtainConsent", "consentingParty": approver}]}]
    else:
        policy["prohibition"] = [{"uid": "not-shared", "action": "use", "target": entry_id}]
    return policy

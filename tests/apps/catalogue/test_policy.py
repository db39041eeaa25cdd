"""The usage-policy language against its published vectors (tests/apps/catalogue/policy_vectors.json):
every permit, deny and consent case decides the same, every policy outside the subset is refused at
the same place. The contract's own implementation runs the same file in test_contract.py."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotchain.apps.catalogue.policy import (
    PolicyError,
    check_policy,
    default_policy,
    evaluate,
    parse_date_time,
    parse_duration,
)

VECTORS_FILE = Path(__file__).with_name("policy_vectors.json")
DOCUMENT = json.loads(VECTORS_FILE.read_text())
VECTORS: list[dict[str, Any]] = DOCUMENT["vectors"]


def facts(vector: dict[str, Any]) -> dict[str, Any]:
    return {**DOCUMENT["base_context"], **vector["context"]}


def test_the_vectors_cover_every_outcome_and_refusals() -> None:
    outcomes = {v["expect"]["outcome"] for v in VECTORS if "expect" in v}
    assert outcomes == {"permit", "deny", "consent"}
    assert sum(1 for v in VECTORS if "invalid" in v) >= 20
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)


@pytest.mark.parametrize("vector", [v for v in VECTORS if "expect" in v], ids=lambda v: v["name"])
def test_a_decision_vector(vector: dict[str, Any]) -> None:
    decision = evaluate(vector["policy"], facts(vector))
    assert {"outcome": decision.outcome, "rule": decision.rule, "consent_party": decision.consent_party} \
        == vector["expect"], decision.reason


@pytest.mark.parametrize("vector", [v for v in VECTORS if "invalid" in v], ids=lambda v: v["name"])
def test_an_invalid_policy_vector(vector: dict[str, Any]) -> None:
    with pytest.raises(PolicyError) as caught:
        check_policy(vector["policy"])
    assert caught.value.where == vector["invalid"], caught.value


def test_time_values_are_parsed_exactly() -> None:
    assert parse_date_time("1970-01-01T00:00:00Z") == 0
    assert parse_date_time("2000-03-01T00:00:00Z") - parse_date_time("2000-02-28T00:00:00Z") == 2 * 86_400_000
    assert parse_date_time("2100-03-01T00:00:00Z") - parse_date_time("2100-02-28T00:00:00Z") == 86_400_000
    assert parse_duration("P1DT2H3M4S") == ((24 + 2) * 3600 + 3 * 60 + 4) * 1000
    for bad in ("P", "PT", "P1DT", "P1M", "P1.5D", "-P1D", "1D"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    for bad in ("2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01 00:00:00Z", "1969-12-31T23:59:59Z",
                "2026-01-01T00:00:00.5Z"):
        with pytest.raises(ValueError):
            parse_date_time(bad)


@given(st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(9999, 12, 31, 23, 59, 59)))
def test_date_times_agree_with_the_standard_library(moment: datetime.datetime) -> None:
    moment = moment.replace(microsecond=0, tzinfo=datetime.UTC)
    assert parse_date_time(moment.strftime("%Y-%m-%dT%H:%M:%SZ")) == int(moment.timestamp()) * 1000


def test_default_policies_follow_the_sharing_class() -> None:
    base = {**DOCUMENT["base_context"]}
    entry = base["target"]
    assert evaluate(default_policy(entry, "unconditional", "market-regulation"), base).outcome == "permit"
    waiting = evaluate(default_policy(entry, "conditional", "market-regulation", "bureau"), base)
    assert (waiting.outcome, waiting.consent_party) == ("consent", "bureau")
    assert evaluate(default_policy(entry, "not_shared", "market-regulation"), base).outcome == "deny"


def test_missing_facts_are_a_caller_error() -> None:
    with pytest.raises(PolicyError) as caught:
        evaluate(VECTORS[0]["policy"], {"target": "x"})
    assert caught.value.where == "context"

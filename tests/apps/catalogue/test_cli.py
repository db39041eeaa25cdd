"""The catalogue's policy commands, offline: the published vectors pass through the CLI, a policy
outside the subset is refused with where and why, a decision is printed and a denial exits 1."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from pilotchain.cli.main import app

VECTORS = Path(__file__).with_name("policy_vectors.json")


def test_the_vectors_pass_through_the_cli() -> None:
    result = CliRunner().invoke(app, ["catalogue", "policy", "vectors", str(VECTORS)])
    assert result.exit_code == 0, result.output
    assert f"{len(json.loads(VECTORS.read_text())['vectors'])} vectors passed" in result.output


def test_a_changed_vector_fails(tmp_path: Path) -> None:
    document = json.loads(VECTORS.read_text())
    document["vectors"][0]["expect"]["outcome"] = "deny"
    changed = tmp_path / "vectors.json"
    changed.write_text(json.dumps(document))
    result = CliRunner().invoke(app, ["catalogue", "policy", "vectors", str(changed)])
    assert result.exit_code == 1 and "1 of" in result.output


def test_check_and_eval(tmp_path: Path) -> None:
    document = json.loads(VECTORS.read_text())
    runner = CliRunner()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"@type": "Set", "uid": "x", "permission": [{"action": "sell"}]}))
    refused = runner.invoke(app, ["catalogue", "policy", "check", str(bad)])
    assert refused.exit_code == 1 and "$.permission[0].action" in refused.output
    policy = tmp_path / "policy.json"
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(document["base_context"]))
    permitted = next(v for v in document["vectors"] if v.get("expect", {}).get("outcome") == "permit")
    policy.write_text(json.dumps(permitted["policy"]))
    assert runner.invoke(app, ["catalogue", "policy", "check", str(policy)]).exit_code == 0
    decided = runner.invoke(app, ["catalogue", "policy", "eval", str(policy), str(facts)])
    assert decided.exit_code == 0 and json.loads(decided.output)["outcome"] == "permit"
    denied = next(v for v in document["vectors"] if v.get("expect", {}).get("outcome") == "deny" and not v["context"])
    policy.write_text(json.dumps(denied["policy"]))
    result = runner.invoke(app, ["catalogue", "policy", "eval", str(policy), str(facts)])
    assert result.exit_code == 1 and json.loads(result.output)["outcome"] == "deny"

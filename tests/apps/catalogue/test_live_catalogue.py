"""Scenario S2 with real processes (four validators, a vault per organisation), both suites.

``intl``: a consortium without government departments; the demo story (``pilotchain demo --scenario
gov``) has Market Regulation and the Tax Bureau join by governance, each with its own vault process,
and runs S2 narrated. Then, on either suite, every step through the ``pilotchain catalogue`` commands
as the departments and the Big-Data Bureau would type them: duty, entry, data, a request the bureau
must approve, calls that return only the agreed fields (verified), a call outside the agreement
rejected, receipts anchored, the bureau's statistics from the evidence bundles verified offline (and
refused after one changed byte), the entry withdrawn and calls stopped, no record value in any block."""

from __future__ import annotations

import io
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pilotchain.apps.catalogue.story import run_story
from pilotchain.cli.main import app
from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.network.processes import (
    EPHEMERAL_PORT_MIN,
    free_port_block,
    nodes_of,
    stop_node,
    wait_until,
)
from pilotchain.sdk import Client, Identity
from tests.apps.catalogue.helpers import ENTERPRISE_FIELDS, enterprises

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

VALIDATORS = 4
BUREAU, MARKET, TAX = "bigdata-bureau", "market-regulation", "tax-bureau"


def _logs(net: Path) -> str:
    return "\n".join(f"--- {log}\n" + log.read_text(errors="replace")[-2500:]
                     for log in sorted([*net.glob("nodes/*/node.log"), *net.glob("vaults/*/vault.log")]))


class Cli:
    def __init__(self, net: Path) -> None:
        self.net = net
        self.runner = CliRunner()

    def __call__(self, org: str, *args: str, admin: bool = False, code: int = 0) -> str:
        identity = self.net / "orgs" / org / ("admin.id" if admin else "client.id")
        result = self.runner.invoke(app, ["catalogue", *args, "--network", str(self.net), "-i", str(identity)])
        assert result.exit_code == code, f"{args}: {result.output}\n{_logs(self.net)}"
        return result.output

    def json(self, org: str, *args: str, admin: bool = False) -> Any:
        return json.loads(self(org, *args, "--json", admin=admin))


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_the_directory_chain_with_real_processes(tmp_path: Path, suite: str) -> None:
    net = tmp_path / "net"
    base = free_port_block(2 * VALIDATORS + 6, start=random.randrange(21_000, 31_000), stop=EPHEMERAL_PORT_MIN)
    orgs = f"{BUREAU},bank,hospital" if suite == "intl" else f"{BUREAU},{MARKET},{TAX}"
    init_network(net, suite_name=suite, orgs=parse_orgs(orgs), validators=VALIDATORS, base_port=base,
                 now_ms=int(time.time() * 1000))
    runner = CliRunner()
    cli = Cli(net)
    try:
        started = runner.invoke(app, ["network", "up", "--dir", str(net), "--timeout", "120"])
        assert started.exit_code == 0, started.output + _logs(net)
        assert "catalogue" in started.output

        if suite == "intl":  # the departments join by governance in the demo story, which runs narrated
            screen = io.StringIO()
            run_story(net, Console(file=screen, width=140, color_system=None))
            told = screen.getvalue()
            for line in ("joined the consortium", "admits market-regulation", "every change is a version",
                         "pending", "agreed", "rejected: FIELD_NOT_AGREED", "ENTRY_WITHDRAWN", "Big-Data Bureau: usage"):
                assert line in told, told
            assert (net / "catalogue-usage" / "usage.html").read_text().count("<svg") == 2
            verified = runner.invoke(app, ["catalogue", "usage-verify", str(net / "catalogue-usage"), "--genesis",
                                           str(net / "genesis.json"), "--since", _day_in(told)])
            assert verified.exit_code == 0 and "verified" in verified.output, verified.output
        else:
            cli(BUREAU, "admit", MARKET, "--name", "Market Regulation Administration", admin=True)
            cli(BUREAU, "admit", TAX, "--name", "Tax Bureau", admin=True)
            cli(MARKET, "duty", "publish", "market.registration", "--title", "Register enterprises",
                "--basis", "Company Law art. 29")
            cli(TAX, "duty", "publish", "tax.collection", "--title", "Levy taxes", "--basis", "Tax Law art. 5")
        cli(BUREAU, "admit", TAX, "--name", "Tax Bureau", code=1)  # a client identity is no admin

        # Market Regulation: an entry the bureau approves requests for, and its data
        spec = tmp_path / "licences.json"
        spec.write_text(json.dumps({"title": "Business licences", "duty_id": "market.registration",
                                    "fields": ENTERPRISE_FIELDS, "key_field": "credit_code", "sharing": "conditional",
                                    "approver": "bureau", "update_frequency": "weekly"}))
        assert "version 1" in cli(MARKET, "entry", "publish", "market.licences", str(spec))
        records = tmp_path / "licences.jsonl"
        records.write_text("".join(json.dumps(r) + "\n" for r in enterprises(60)))
        published = cli.json(MARKET, "dataset", "publish", "market.licences", str(records))
        assert published["records"] == 60
        listed = {e["id"]: e for e in cli.json(TAX, "list")}
        assert listed["market.licences"]["dataset"]["records"] == 60 and "overdue" not in cli(TAX, "list")

        # the Tax Bureau asks; the bureau approves; the agreement is on chain
        requested = cli.json(TAX, "request", "market.licences", "--duty", "tax.collection", "--fields",
                             "credit_code,name,status", "--purpose", "tax-administration", "--days", "30")
        assert requested["status"] == "pending" and requested["awaiting_org"] == BUREAU
        assert requested["id"] in [r["id"] for r in cli.json(BUREAU, "requests", "--pending", "--all")]
        cli(MARKET, "approve", requested["id"], code=1)  # not the party the policy names
        assert "agreed" in cli(BUREAU, "approve", requested["id"], "--note", "tax audit 2026")
        assert requested["id"] in [a["id"] for a in cli.json(TAX, "agreements")]

        # calls: the agreed fields only, verified; a field outside the agreement is rejected
        answer = cli.json(TAX, "call", requested["id"], "--fields", "name,status", "--where", "status=revoked")
        assert answer["verified"] and answer["fields"] == ["name", "status"]
        assert answer["records"] == [{"name": r["name"], "status": "revoked"} for r in enterprises(60)
                                     if r["status"] == "revoked"]
        whole = cli.json(TAX, "call", requested["id"], "--limit", "60")
        assert len(whole["records"]) == 60 and set(whole["records"][0]) == {"credit_code", "name", "status"}
        assert "FIELD_NOT_AGREED" in cli(TAX, "call", requested["id"], "--fields", "legal_representative", code=1)
        day = time.strftime("%Y-%m-%d", time.gmtime(whole["at_ms"] / 1000))

        def anchored() -> bool:
            rows = cli.json(MARKET, "receipts", "--day", day) + cli.json(TAX, "receipts", "--day", day)
            return bool(rows) and all(row["anchored"] for row in rows)

        assert wait_until(anchored, timeout_s=60, interval_s=0.5), _logs(net)
        kinds = [(r["kind"], r["code"]) for r in cli.json(MARKET, "receipts", "--day", day)
                 if r["call_id"] == whole["call_id"] or r["code"]]
        assert ("delivered", "") in kinds and ("received", "") in kinds and ("rejected", "FIELD_NOT_AGREED") in kinds
        assert any(c["outcome"] == "rejected:FIELD_NOT_AGREED" for c in cli.json(MARKET, "calls", "--day", day))

        # the bureau's statistics, saved with their evidence and verified offline
        out = tmp_path / "usage"
        assert "usage" in cli(BUREAU, "usage", "--since", day, "--out", str(out))
        report = json.loads((out / "usage.json").read_text())
        row = next(r for r in report["rows"] if r["service"] == "market.licences")
        assert (row["calls"], row["rejected"], row["records"]) == (2, 1, len(answer["records"]) + 60)
        verify = ["catalogue", "usage-verify", str(out), "--since", day, "--genesis", str(net / "genesis.json")]
        checked = runner.invoke(app, verify)
        assert checked.exit_code == 0 and "usage.json matches" in checked.output, checked.output
        bundle = out / f"{MARKET}.evidence"
        raw = bytearray(bundle.read_bytes())
        raw[len(raw) // 2] ^= 1
        bundle.write_bytes(bytes(raw))
        broken = runner.invoke(app, verify)
        assert broken.exit_code == 1 and "does NOT verify" in broken.output, broken.output

        # withdrawing the entry stops the next call
        cli(MARKET, "entry", "withdraw", "market.licences", "--reason", "replaced by the credit system")
        assert "ENTRY_WITHDRAWN" in cli(TAX, "call", requested["id"], code=1)

        # no record value is in any block: the chain holds commitments and decisions only
        reader = Identity.load(net / "orgs" / BUREAU / "client.id")
        with Client(network=net, identity=reader) as chain:
            head = chain.status().height
            blocks = b"".join(t.raw for h in range(1, head + 1) for t in chain.get_block(h).transactions)
        for value in ("Huangpu Trading Co. 17", "Wang 17", enterprises(60)[17]["legal_rep_id_number"]):
            assert value.encode() not in blocks
    finally:
        runner.invoke(app, ["network", "down", "--dir", str(net), "--grace", "10"])
        for node in nodes_of(net):
            stop_node(node, kill=True, grace_s=5)


def _day_in(told: str) -> str:
    """The day the story's receipts were made (from its 'receipts of YYYY-MM-DD' table)."""
    marker = "receipts of "
    return told[told.index(marker) + len(marker):][:10]

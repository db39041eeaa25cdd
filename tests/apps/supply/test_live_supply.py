"""S4 end to end with real processes, both suites: the demo's story against four validator processes
and a vault per organisation (six organisations: the car maker, two suppliers, two banks, the
regulator); the recall is one command that returns exactly the affected VINs; no price, rate or
purchase price is in any block."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pilotchain.apps.supply.network import story
from pilotchain.apps.supply.story import PRICE_MARKERS
from pilotchain.cli.main import app
from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.network.processes import EPHEMERAL_PORT_MIN, free_port_block, nodes_of, stop_node
from tests.apps.exchange.test_live_exchange import _logs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_s4_with_real_processes(tmp_path: Path, suite: str) -> None:
    net = tmp_path / "net"
    base = free_port_block(14, start=random.randrange(21_000, 31_000), stop=EPHEMERAL_PORT_MIN)
    init_network(net, suite_name=suite, orgs=parse_orgs("carmaker,tier1,tier2,bank,bank-b,regulator"), validators=4,
                 base_port=base, now_ms=int(time.time() * 1000))
    runner = CliRunner()
    try:
        started = time.monotonic()
        up = runner.invoke(app, ["network", "up", "--dir", str(net), "--timeout", "120"])
        assert up.exit_code == 0, up.output + _logs(net)
        result = story(net, Console(width=160, record=True))
        assert result is not None, "receivables/trace were not activated"
        assert "already financed by bank" in result.double_financing
        assert result.supply_after_settle["outstanding"] == 0 and result.supply_after_settle["settled"] == 100_000_000
        # the recall with one command, as the car maker
        traced = runner.invoke(app, ["supply", "trace", result.recall.batch, "--json", "--network", str(net),
                                     "-i", str(net / "orgs" / "carmaker" / "client.id")])
        assert traced.exit_code == 0, traced.output
        report = json.loads(traced.output)
        assert report["vins"] == result.expected_vins and report["sources"] == result.recall.sources
        shown = runner.invoke(app, ["supply", "show", result.receivable, "--json", "--network", str(net),
                                    "-i", str(net / "orgs" / "regulator" / "client.id")])  # the regulator's lineage
        assert shown.exit_code == 0, shown.output
        lineage = json.loads(shown.output)
        assert [(r["id"], r["holder"], r["status"]) for r in lineage] == [
            (result.receivable, "tier1", "split"), (result.pieces[0], "tier1", "settled"), (result.pieces[1], "bank", "settled")]
        assert lineage[2]["financing"]["registration_no"].startswith("ZD-")
        # the terms, prices and rates stayed in the vaults
        blocks = b"".join(path.read_bytes() for path in net.glob("nodes/*/**/*.seg"))
        assert result.receivable.encode() in blocks
        for marker in PRICE_MARKERS:
            assert marker.encode() not in blocks
        assert time.monotonic() - started < 240
    finally:
        runner.invoke(app, ["network", "down", "--dir", str(net), "--grace", "10"])
        for node in nodes_of(net):
            stop_node(node, kill=True, grace_s=5)

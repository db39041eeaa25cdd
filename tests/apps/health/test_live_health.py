"""S1 end to end with real processes, both suites: the story the demo tells runs against four
validator processes and a vault per organisation; then the commission's auditor verifies the
patient's whole access log offline from the audit export alone."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pilotchain.apps.exchange.client import VaultClient
from pilotchain.apps.exchange.server import load_config
from pilotchain.apps.health.network import run_story
from pilotchain.cli.main import app
from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.network.processes import (
    EPHEMERAL_PORT_MIN,
    free_port_block,
    nodes_of,
    stop_node,
    wait_until,
)
from pilotchain.sdk import Identity
from tests.apps.exchange.test_live_exchange import _logs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_s1_with_real_processes_and_an_offline_audit(tmp_path: Path, suite: str) -> None:
    net = tmp_path / "net"
    base = free_port_block(11, start=random.randrange(21_000, 31_000), stop=EPHEMERAL_PORT_MIN)
    init_network(net, suite_name=suite, orgs=parse_orgs("3"), validators=4, base_port=base, now_ms=int(time.time() * 1000))
    runner = CliRunner()
    try:
        started = runner.invoke(app, ["network", "up", "--dir", str(net), "--timeout", "120"])
        assert started.exit_code == 0, started.output + _logs(net)
        story = run_story(net, Console(width=160, record=True))
        assert story, "the health contract was not activated"
        holder = VaultClient(load_config(net / "vaults" / story["holder"]).public_url,
                             Identity.load(net / "orgs" / story["holder"] / "client.id"))

        def evidence_anchored() -> bool:  # the consumer's acknowledgements reach the holder, then get anchored
            rows = holder.receipts(story["record"])
            return {"delivered", "received"} <= {r["kind"] for r in rows} and all(r["anchored"] for r in rows)

        assert wait_until(evidence_anchored, timeout_s=60), _logs(net)
        out = tmp_path / "patient.audit"
        exported = runner.invoke(app, ["audit", "export", "--subject", story["patient"], "--out", str(out),
                                       "--network", str(net), "-i", str(net / "orgs" / story["holder"] / "client.id")])
        assert exported.exit_code == 0, exported.output + _logs(net)
        # the auditor needs only the file and the genesis
        verified = runner.invoke(app, ["audit", "verify", str(out), "--genesis", str(net / "genesis.json"), "--json"])
        assert verified.exit_code == 0, verified.output
        report = json.loads(verified.stdout)
        calls = [(t["contract"], t["method"]) for t in report["transactions"]]
        for call in [("dataex", "register"), ("health", "grant"), ("health", "request"), ("health", "withdraw"),
                     ("health", "end_break_glass"), ("health", "review")]:
            assert call in calls, (call, calls)
        assert sum(1 for c in calls if c == ("health", "request")) == 4  # DENY, PERMIT, DENY after withdrawal, break-glass
        assert {"delivered", "received"} <= {r["kind"] for r in report["receipts"]}
        # no plaintext on the ledger: the record's text is in no block
        blocks = b"".join(path.read_bytes() for path in net.glob("nodes/*/**/*.seg"))
        assert story["patient"].encode() in blocks  # these are the blocks (the pseudonym is on chain)...
        assert b"community-acquired pneumonia" not in blocks  # ...and the record's text is not
    finally:
        runner.invoke(app, ["network", "down", "--dir", str(net), "--grace", "10"])
        for node in nodes_of(net):
            stop_node(node, kill=True, grace_s=5)

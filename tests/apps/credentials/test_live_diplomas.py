"""Scenario S3 on real processes, both suites: four validators (`pilotchain network up`), the
`pilotchain demo --scenario diplomas` story (the contract activated through governance, 500
diplomas in one anchored batch, a QR presentation verified offline, one revocation: 499 pass),
then the files it wrote verified by the command line offline — from a snapshot certified by the
four validators and genesis alone — and online."""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pilotchain.apps.credentials.chain import contract_code
from pilotchain.apps.credentials.network import CLASS_SIZE, demo
from pilotchain.apps.credentials.snapshot import verify_snapshot
from pilotchain.cli.main import app
from pilotchain.network.consortium import init_network, load_genesis, parse_orgs
from pilotchain.network.processes import EPHEMERAL_PORT_MIN, free_port_block, nodes_of, stop_node

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

VALIDATORS = 4


def _logs(net: Path) -> str:
    return "\n".join(f"--- {log}\n" + log.read_text(errors="replace")[-2000:]
                     for log in sorted(net.glob("nodes/*/node.log")))


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_the_diplomas_story_on_four_validators(tmp_path: Path, suite: str) -> None:
    net = tmp_path / "net"
    base = free_port_block(2 * VALIDATORS + 2, start=random.randrange(21_000, 31_000), stop=EPHEMERAL_PORT_MIN)
    orgs = parse_orgs("bank,university,hospital")
    init_network(net, suite_name=suite, orgs=orgs, validators=VALIDATORS, base_port=base, now_ms=int(time.time() * 1000))
    runner = CliRunner()
    try:
        started = runner.invoke(app, ["network", "up", "--dir", str(net), "--timeout", "120", "--no-services"])
        assert started.exit_code == 0, started.output + _logs(net)
        out = io.StringIO()
        demo(net, Console(file=out, width=200, force_terminal=False))
        story = out.getvalue()
        assert "activated the verifiable-credentials contract credentials through governance" in story
        assert f"{CLASS_SIZE - 1} of {CLASS_SIZE} verify, 1 fails" in story, story
        assert "✗ status  REVOKED" in story and "VERIFIED" in story
        assert "whose degree was edited: ✗ disclosures  1 disclosure(s) match no digest" in story, story
        work = net / "credentials"
        snapshot = verify_snapshot((work / "snapshot.bin").read_bytes(), load_genesis(net / "genesis.json"),
                                   contract_code=contract_code())
        batch = next(iter(snapshot.batches.values()))
        assert batch.size == CLASS_SIZE and batch.signer_org == "university"

        offline = runner.invoke(app, ["credential", "verify", str(work / "presentation.qr.txt"), "--snapshot",
                                      str(work / "snapshot.bin"), "--genesis", str(net / "genesis.json")])
        assert offline.exit_code == 0 and "✓ batch" in offline.output and "VERIFIED" in offline.output, offline.output
        online = runner.invoke(app, ["credential", "verify", str(work / "presentation.json"), "--online",
                                     "--network", str(net), "-i", str(net / "orgs" / "bank" / "client.id")])
        assert online.exit_code == 0 and "VERIFIED" in online.output, online.output
        tampered = (work / "presentation.json").read_text().replace('"index":', '"index":1', 1)
        refused = runner.invoke(app, ["credential", "verify", "-", "--snapshot", str(work / "snapshot.bin"),
                                      "--genesis", str(net / "genesis.json")], input=tampered)
        assert refused.exit_code == 1 and "✗ batch" in refused.output, refused.output
    finally:
        for node in nodes_of(net):
            stop_node(node)

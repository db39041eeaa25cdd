"""S5 end to end with real processes, both suites: the demo's story against four validator processes
and a vault per organisation; then an auditor, holding only the statement's files and the genesis,
scans the QR code (decoded from the PNG), and traces device → meter commitments → issuance → transfer
→ retirement offline; a changed byte or another bundle fails."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
import zxingcpp
from rich.console import Console
from typer.testing import CliRunner

from pilotchain.apps.energy.client import GreenClient
from pilotchain.apps.energy.network import story
from pilotchain.apps.energy.qr import make_qr
from pilotchain.cli.main import app
from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.network.processes import EPHEMERAL_PORT_MIN, free_port_block, nodes_of, stop_node
from pilotchain.sdk import Client, Identity
from tests.apps.exchange.test_live_exchange import _logs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def scan(text_written: str, png: Path) -> str:
    """What a scanner reads from the statement's QR code: the symbol segno drew into the PNG, rendered
    module by module and decoded by zxing-cpp (an independent decoder)."""
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    matrix = make_qr(text_written).matrix
    scale, border = 4, 4
    size = (len(matrix) + 2 * border) * scale
    pixels = bytearray(b"\xff" * size * size)
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    at = ((y + border) * scale + dy) * size + (x + border) * scale
                    pixels[at:at + scale] = b"\x00" * scale
    image = bytes(pixels)  # kept alive while zxing reads it
    found = zxingcpp.read_barcodes(zxingcpp.ImageView(image, size, size, zxingcpp.ImageFormat.Lum),
                                   formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode
    return str(found[0].text)


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_s5_with_real_processes_and_an_offline_trace_from_the_qr_code(tmp_path: Path, suite: str) -> None:
    net = tmp_path / "net"
    base = free_port_block(12, start=random.randrange(21_000, 31_000), stop=EPHEMERAL_PORT_MIN)
    init_network(net, suite_name=suite, orgs=parse_orgs("power-exchange,wind-farm,grid,carmaker"), validators=4,
                 base_port=base, now_ms=int(time.time() * 1000))
    runner = CliRunner()
    try:
        started = time.monotonic()
        up = runner.invoke(app, ["network", "up", "--dir", str(net), "--timeout", "120"])
        assert up.exit_code == 0, up.output + _logs(net)
        told = story(net, Console(width=160, record=True), out=tmp_path / "statement")
        assert told is not None, "greencert was not activated"
        result, traced = told
        assert "never more than metered" in result.over_issue and "claimed once" in result.second_claim
        assert (result.supply["issued"], result.supply["retired"], result.supply["outstanding"]) == (1000, 400, 600)
        assert traced.kwh == 400_000 and traced.metered_kwh == 1_000_000 and len(traced.readings) == 3
        # the auditor: the QR code from the printed statement, the bundle, the genesis — no network
        bundle = tmp_path / "statement" / f"{result.retirement}.evidence"
        statement = json.loads((tmp_path / "statement" / f"{result.retirement}.json").read_text())
        code = scan(statement["qr"], tmp_path / "statement" / f"{result.retirement}.png")
        genesis = str(net / "genesis.json")
        verified = runner.invoke(app, ["green", "verify", str(bundle), "--qr", code, "--genesis", genesis, "--json"])
        assert verified.exit_code == 0, verified.output
        report = json.loads(verified.output)
        assert report["retirement"] == result.retirement and report["kwh"] == 400_000
        assert report["device"]["device_id"] == result.device and report["batch"]["count"] == 1000
        assert [t["to"] for t in report["transfers"]] == ["carmaker"]
        assert all(len(r["commitment"]) == 64 and r["signer"] == "grid" for r in report["readings"])
        # one changed byte, or a bundle the QR code does not name: refused
        tampered = tmp_path / "tampered.evidence"
        data = bytearray(bundle.read_bytes())
        data[len(data) // 2] ^= 1
        tampered.write_bytes(bytes(data))
        for args in ([str(tampered), "--qr", code], [str(bundle), "--qr", code.replace(code[6:14], "0" * 8)]):
            refused = runner.invoke(app, ["green", "verify", *args, "--genesis", genesis])
            assert refused.exit_code == 1 and "does NOT verify" in refused.output, refused.output
        # a beneficiary's statement: a second retirement for the same beneficiary (the wind farm's own
        # certificates), then every retired MWh for it, each with its line, verified offline
        wind = GreenClient(Client(network=net, identity=Identity.load(net / "orgs" / "wind-farm" / "client.id")),
                           Identity.load(net / "orgs" / "wind-farm" / "client.id"))
        lot = next(h for h in wind.holdings("wind-farm") if h and h["status"] == "active" and h["count"] >= 100)
        wind.retire(lot["id"], 100, beneficiary=traced.beneficiary, year=traced.year, retirement_id="RET-SECOND")
        written = runner.invoke(app, ["green", "beneficiary-statement", traced.beneficiary, "--out", str(tmp_path / "b"),
                                      "--network", str(net), "-i", str(net / "orgs" / "wind-farm" / "client.id"),
                                      "--json"])
        assert written.exit_code == 0, written.output
        paths = json.loads(written.stdout)
        evidence, code_b = Path(paths["evidence"]), scan(paths["qr"], Path(paths["png"]))
        whole = runner.invoke(app, ["green", "verify-beneficiary", str(evidence), "--qr", code_b, "--genesis", genesis,
                                    "--json"])
        assert whole.exit_code == 0, whole.output
        claimed = json.loads(whole.stdout)
        assert claimed["kwh"] == 500_000 and {r["retirement"] for r in claimed["retirements"]} == {result.retirement,
                                                                                                     "RET-SECOND"}
        changed = bytearray(evidence.read_bytes())
        changed[len(changed) // 3] ^= 1
        evidence.write_bytes(bytes(changed))
        broken = runner.invoke(app, ["green", "verify-beneficiary", str(evidence), "--qr", code_b, "--genesis", genesis])
        assert broken.exit_code == 1 and "does NOT verify" in broken.output
        # the readings' documents stayed in the meter operator's vault
        blocks = b"".join(path.read_bytes() for path in net.glob("nodes/*/**/*.seg"))
        assert result.device.encode() in blocks and b"intervals_15min" not in blocks
        assert time.monotonic() - started < 240
    finally:
        runner.invoke(app, ["network", "down", "--dir", str(net), "--grace", "10"])
        for node in nodes_of(net):
            stop_node(node, kill=True, grace_s=5)

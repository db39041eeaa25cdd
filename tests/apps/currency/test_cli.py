"""The currency's command line without a network: amounts in yuan become exact fen, the network
profile, and the offline half of a voucher (a device signs, the payee's device checks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pilotchain.apps.currency.cli import parse_yuan
from pilotchain.apps.currency.client import HolderKey
from pilotchain.apps.currency.offline import OfflineDevice, issue_device_certificate
from pilotchain.cli.main import app
from pilotchain.node.config import load_genesis
from pilotchain.sdk import Identity


def manifest_org(manifest: dict[str, Any], org: str) -> dict[str, Any]:
    return next(entry for entry in manifest["organizations"] if entry["org"] == org)


@pytest.mark.parametrize(("text", "fen"), [("0.01", 1), ("12", 1200), ("12.5", 1250), ("12.50", 1250),
                                           ("1000000000000.99", 100_000_000_000_099)])
def test_yuan_become_exact_fen(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["-1", "1.001", "1e3", "0x10", "", "1,000", "NaN"])
def test_anything_else_is_not_an_amount(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_yuan(text)


def test_network_profile_and_an_offline_voucher_from_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["currency", "network", "init", "--dir", str(tmp_path / "cny"), "--operators",
                               "bank-a,bank-b,bank-c", "--json"])
    assert made.exit_code == 0, made.output
    manifest = json.loads(made.output)
    assert {n["org"] for n in manifest["nodes"]} == {"central-bank"}
    profile = json.loads((tmp_path / "cny" / "currency.json").read_text())
    assert sorted(profile["operators"]) == ["bank-a", "bank-b", "bank-c"]
    assert (tmp_path / "cny" / profile["officers"][1]).is_file() and (tmp_path / "cny" / profile["auditor"]).is_file()

    genesis_file = tmp_path / "cny" / "genesis.json"
    genesis = load_genesis(genesis_file)
    key = tmp_path / "card.pem"
    assert runner.invoke(app, ["currency", "wallet", "keygen", "--out", str(key)]).exit_code == 0
    state = tmp_path / "card.json"
    state.write_text(json.dumps({"device": "card-1", "counter": 0, "chain_id": genesis.chain_id}))

    def signed_voucher(name: str) -> Path:
        voucher = tmp_path / name
        signed = runner.invoke(app, ["currency", "wallet", "voucher", "12.30", "--to", "kiosk", "--device-key",
                                     str(key), "--state", str(state), "--out", str(voucher)])
        assert signed.exit_code == 0, signed.output
        return voucher

    def accept(voucher: Path) -> Any:
        return runner.invoke(app, ["currency", "wallet", "accept", str(voucher), "--genesis", str(genesis_file)])

    # a device nobody certified: its signature is fine, and the payee still refuses
    uncertified = signed_voucher("v0.json")
    assert json.loads(state.read_text())["counter"] == 1
    refused = accept(uncertified)
    assert refused.exit_code == 1 and "no device certificate" in refused.output, refused.output
    # bank-a certifies the device's funding (what `wallet fund-device` does after the chain recorded it)
    device_key = HolderKey.load(key, genesis.suite)
    operator = Identity.load(tmp_path / "cny" / manifest_org(manifest, "bank-a")["client_identity"])
    device = OfflineDevice.load(state, device_key)
    device.certify(issue_device_certificate(operator, genesis.chain_id, {
        "id": "card-1", "key": device_key.public_key, "wallet": "alice", "balance": 50_000,
        "from_ms": genesis.genesis_time_ms, "until_ms": 2**62}))
    voucher = signed_voucher("v1.json")
    checked = accept(voucher)
    assert checked.exit_code == 0 and "valid" in checked.output and "certified by bank-a" in checked.output, checked.output
    tampered = json.loads(voucher.read_text())
    tampered["amount"] = 99_999
    voucher.write_text(json.dumps(tampered))
    refused = accept(voucher)
    assert refused.exit_code == 1 and "not signed by device card-1" in refused.output
    lifted = json.loads(signed_voucher("v2.json").read_text())
    lifted["device_certificate"]["balance"] = 10**9  # a device claiming more than it was funded with
    (tmp_path / "v2.json").write_text(json.dumps(lifted))
    refused = accept(tmp_path / "v2.json")
    assert refused.exit_code == 1 and "certificate's signature does not verify" in refused.output, refused.output
    assert accept(tmp_path / "missing.json").exit_code != 0

    request = runner.invoke(app, ["currency", "wallet", "request", "--to", "kiosk", "8.80", "--memo", "tea"])
    assert request.exit_code == 0 and request.output.strip()

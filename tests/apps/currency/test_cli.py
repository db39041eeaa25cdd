"""The currency's command line without a network: amounts in yuan become exact fen, the network
profile, and the offline half of a voucher (a device signs, the payee's device checks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pilotchain.apps.currency.cli import parse_yuan
from pilotchain.cli.main import app


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

    key = tmp_path / "card.pem"
    assert runner.invoke(app, ["currency", "wallet", "keygen", "--out", str(key)]).exit_code == 0
    state = tmp_path / "card.json"
    state.write_text(json.dumps({"device": "card-1", "counter": 0, "chain_id": "e-cny"}))
    voucher = tmp_path / "v1.json"
    signed = runner.invoke(app, ["currency", "wallet", "voucher", "12.30", "--to", "kiosk", "--device-key", str(key),
                                 "--state", str(state), "--out", str(voucher)])
    assert signed.exit_code == 0, signed.output
    assert json.loads(state.read_text())["counter"] == 1
    checked = runner.invoke(app, ["currency", "wallet", "accept", str(voucher)])
    assert checked.exit_code == 0 and "valid" in checked.output, checked.output
    tampered = json.loads(voucher.read_text())
    tampered["amount"] = 99_999
    voucher.write_text(json.dumps(tampered))
    refused = runner.invoke(app, ["currency", "wallet", "accept", str(voucher)])
    assert refused.exit_code == 1 and "not signed by device card-1" in refused.output

    request = runner.invoke(app, ["currency", "wallet", "request", "--to", "kiosk", "8.80", "--memo", "tea"])
    assert request.exit_code == 0 and request.output.strip()

"""End to end on a real 4-validator network (four OS processes): a contract is proposed from the
CLI, cannot be invoked before the organisations approve it, activates when a majority of the four
organisations approved, is invoked and queried from the CLI on different nodes; an upgrade
follows the same path; every node agrees on every block."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pilotchain.cli.contract_cmd import app as contract_app
from pilotchain.cli.gov_cmd import app as gov_app
from pilotchain.network.processes import wait_until

from .helpers import EXAMPLES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

_LIVE = Path(__file__).resolve().parents[1] / "network" / "live.py"
_spec = importlib.util.spec_from_file_location("pilotchain_tests_network_live", _LIVE)
assert _spec is not None and _spec.loader is not None
live = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = live
_spec.loader.exec_module(live)

cli = typer.Typer()
cli.add_typer(contract_app, name="contract")
cli.add_typer(gov_app, name="gov")
runner = CliRunner()

UPGRADE = """
from pilotchain.contracts.api import Map, Variable

balances = Map("balances")

def balance(account):
    return balances.get(account, 0)

def version():
    return 2
"""


def test_contract_lifecycle_on_four_processes(tmp_path: Path) -> None:
    net = tmp_path / "net"
    with live.running_network(net) as nodes:
        orgs = sorted(p.name for p in (net / "orgs").iterdir())
        assert len(orgs) == 4
        proposer, second, third, fourth = orgs

        def run(node: int, *args: str) -> tuple[int, str]:
            # the gateways answer members only: pin to the network, whose folder signs the reads
            result = runner.invoke(cli, [*args, "--node", nodes[node].gateway_url, "--network", str(net)])
            return result.exit_code, result.output

        def admin(org: str) -> str:
            return str(net / "orgs" / org / "admin.id")

        def client(org: str) -> str:
            return str(net / "orgs" / org / "client.id")

        code, out = run(
            0,
            "contract",
            "deploy",
            str(EXAMPLES / "token.py"),
            "--name",
            "token",
            "--init",
            json.dumps({"admin_org_id": proposer}),
            "--identity",
            admin(proposer),
            "--json",
        )
        assert code == 0, out + live.logs(nodes)
        proposal = json.loads(out)
        assert proposal["status"] == "open" and proposal["needed"] == 3

        code, out = run(
            1, "contract", "invoke", "token", "supply", "--wait", "--identity", client(second)
        )
        assert code == 1 and "UNKNOWN_CONTRACT" in out, out

        code, out = run(
            1,
            "contract",
            "approve",
            "token",
            "--version",
            "1",
            "--identity",
            admin(second),
            "--json",
        )
        assert code == 0 and json.loads(out)["status"] == "open", out
        code, out = run(
            2,
            "contract",
            "approve",
            "token",
            "--version",
            "1",
            "--identity",
            admin(third),
            "--json",
        )
        assert code == 0 and json.loads(out)["status"] == "executed", out

        subject = "bank-client" if proposer == "bank" else f"{proposer}-admin"
        code, out = run(
            3,
            "contract",
            "invoke",
            "token",
            "mint",
            json.dumps({"to": subject, "amount": 42}),
            "--wait",
            "--identity",
            admin(proposer),
            "--json",
        )
        assert code == 0 and json.loads(out)["result"] == 42, out

        def balance_everywhere(expected: int) -> bool:
            for index in range(4):
                code, out = run(
                    index,
                    "contract",
                    "query",
                    "token",
                    "balance",
                    json.dumps({"account": subject}),
                    "--json",
                )
                if code != 0 or json.loads(out)["result"] != expected:
                    return False
            return True

        assert wait_until(lambda: balance_everywhere(42), timeout_s=30), live.logs(nodes)

        upgrade = tmp_path / "token_v2.py"
        upgrade.write_text(UPGRADE)
        code, out = run(
            0,
            "contract",
            "deploy",
            str(upgrade),
            "--name",
            "token",
            "--version",
            "2",
            "--identity",
            admin(fourth),
            "--json",
        )
        assert code == 0 and json.loads(out)["status"] == "open", out
        code, out = run(1, "contract", "query", "token", "version")
        assert code == 1 and "has no method" in out
        for index, org in ((1, second), (2, third)):
            code, out = run(
                index,
                "contract",
                "approve",
                "token",
                "--version",
                "2",
                "--identity",
                admin(org),
                "--json",
            )
            assert code == 0, out
        assert json.loads(out)["status"] == "executed"
        assert wait_until(
            lambda: run(3, "contract", "query", "token", "version")[1].strip() == "2", timeout_s=30
        )
        assert balance_everywhere(42)

        code, out = run(0, "gov", "list", "--json")
        assert code == 0 and [p["status"] for p in json.loads(out)] == ["executed", "executed"]
        live.assert_agreement(nodes)

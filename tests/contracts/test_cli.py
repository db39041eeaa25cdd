"""`pilotchain contract` and `pilotchain gov` against a local chain served over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from pilotchain.cli.contract_cmd import app as contract_app
from pilotchain.cli.gov_cmd import app as gov_app

from .helpers import EXAMPLES, governed_chain

cli = typer.Typer()
cli.add_typer(contract_app, name="contract")
cli.add_typer(gov_app, name="gov")
runner = CliRunner()

COUNTER_V2 = """
from pilotchain.contracts.api import Variable
marker = Variable("marker")

def version():
    return 2
"""


def test_deploy_approve_invoke_query_and_upgrade(tmp_path: Path) -> None:
    with governed_chain(orgs=2) as chain:
        url = chain.serve_http()
        orgs = chain.consortium.directory / "orgs"
        first, second = list(chain.consortium.admins)

        # the gateway answers members only: reads are signed as the second organisation's client
        reader = {"PILOTCHAIN_IDENTITY": str(orgs / second / "client.id")}

        def run(*args: str) -> tuple[int, str]:
            result = runner.invoke(cli, [*args, "--node", url], env=reader)
            return result.exit_code, result.output

        token = str(EXAMPLES / "token.py")
        code, out = run(
            "contract",
            "deploy",
            token,
            "--name",
            "token",
            "--init",
            json.dumps({"admin_org_id": first}),
            "--identity",
            str(orgs / first / "admin.id"),
        )
        assert code == 0, out
        assert "needs 1 more approval" in out

        code, out = run(
            "contract",
            "invoke",
            "token",
            "supply",
            "--wait",
            "--identity",
            str(orgs / first / "client.id"),
        )
        assert code == 1 and "UNKNOWN_CONTRACT" in out

        code, out = run(
            "contract",
            "approve",
            "token",
            "--version",
            "2",
            "--identity",
            str(orgs / second / "admin.id"),
        )
        assert code == 1 and "no open proposal deploys token version 2" in out

        code, out = run(
            "contract", "approve", "token", "--identity", str(orgs / second / "client.id")
        )
        assert code == 2 and "admin identity" in out

        code, out = run(
            "contract",
            "approve",
            "token",
            "--version",
            "1",
            "--json",
            "--identity",
            str(orgs / second / "admin.id"),
        )
        assert code == 0, out
        assert json.loads(out)["status"] == "executed"

        admin_first = chain.identity(first, admin=True)
        code, out = run(
            "contract",
            "invoke",
            "token",
            "mint",
            json.dumps({"to": admin_first.subject, "amount": 7}),
            "--wait",
            "--json",
            "--identity",
            str(orgs / first / "admin.id"),
        )
        assert code == 0, out
        assert json.loads(out)["result"] == 7

        code, out = run(
            "contract",
            "query",
            "token",
            "balance",
            json.dumps({"account": admin_first.subject}),
            "--json",
        )
        assert code == 0 and json.loads(out) == {"result": 7}
        code, out = run("contract", "query", "token", "supply")
        assert code == 0 and out.strip() == "7"

        code, out = run("gov", "list", "--json")
        assert code == 0 and json.loads(out)[0]["status"] == "executed"
        code, out = run("gov", "list")
        assert code == 0 and "deploy token v1" in out

        upgrade = tmp_path / "token_v2.py"
        upgrade.write_text(COUNTER_V2)
        code, out = run(
            "contract",
            "deploy",
            str(upgrade),
            "--name",
            "token",
            "--version",
            "2",
            "--identity",
            str(orgs / second / "admin.id"),
        )
        assert code == 0, out
        code, out = run("contract", "query", "token", "version")
        assert code == 1 and "has no method" in out
        code, out = run(
            "contract",
            "approve",
            "token",
            "--version",
            "2",
            "--identity",
            str(orgs / first / "admin.id"),
        )
        assert code == 0, out
        code, out = run("contract", "query", "token", "version")
        assert code == 0 and out.strip() == "2"
        code, out = run("contract", "info", "token", "--json")
        assert code == 0 and json.loads(out)["versions"] == ["1", "2"]

        code, out = run(
            "gov",
            "propose",
            "freeze_contract",
            json.dumps({"name": "token", "reason": "review"}),
            "--identity",
            str(orgs / first / "admin.id"),
        )
        assert code == 0 and "needs 1 more approval" in out
        code, out = run("gov", "approve", "3", "--identity", str(orgs / second / "admin.id"))
        assert code == 0 and "applied: freeze token" in out
        code, out = run(
            "contract",
            "invoke",
            "token",
            "version",
            "--wait",
            "--identity",
            str(orgs / first / "client.id"),
        )
        assert code == 1 and "frozen by governance" in out

        code, out = run(
            "gov", "propose", "make_coffee", "--identity", str(orgs / first / "admin.id")
        )
        assert code == 2
        code, out = run("gov", "show", "3", "--json")
        assert code == 0 and json.loads(out)["kind"] == "freeze_contract"

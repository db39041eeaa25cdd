"""The currency on real processes, both suites: a central-bank network (four validators, all the
central bank's; two operators with vaults) made by the currency's `network init` profile and
founded by `network up`; the demo's story runs on it; then a validator is killed (SIGKILL) in the
middle of a payment load, restarted, catches up, and every node agrees on the state while the
supply audit (replayed from genesis through the restarted node) still balances against state."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pilotchain.apps.currency.audit import audit_chain
from pilotchain.apps.currency.client import CurrencyClient, CurrencyError, HolderKey
from pilotchain.apps.currency.network import init_currency_network, officers_of
from pilotchain.apps.currency.story import run_story
from pilotchain.cli.main import app
from pilotchain.network.processes import (
    EPHEMERAL_PORT_MIN,
    free_port_block,
    node_pid,
    nodes_of,
    stop_node,
    wait_until,
)
from pilotchain.sdk import Client, Identity
from pilotchain.sdk._network import load_network
from tests.apps.exchange.test_live_exchange import _logs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
CNY = 100


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_the_currency_story_and_a_validator_crash_mid_load(tmp_path: Path, suite: str) -> None:
    net = tmp_path / "cny"
    base = free_port_block(12, start=random.randrange(21_000, 31_000), stop=EPHEMERAL_PORT_MIN)
    manifest = init_currency_network(net, suite_name=suite, base_port=base, now_ms=int(time.time() * 1000))
    assert {n["org"] for n in manifest["nodes"]} == {"central-bank"} and len(manifest["nodes"]) == 4
    runner = CliRunner()
    try:
        started = runner.invoke(app, ["network", "up", "--dir", str(net), "--timeout", "120"])
        assert started.exit_code == 0, started.output + _logs(net)
        assert "the currency contract is active" in started.output
        story = run_story(net, Console(width=160, record=True))
        assert story["verdicts"] == ["settled", "settled", "double_spend"]
        assert story["disclosure"]["status"] == "approved" and story["refused_disclosure"]["status"] == "refused"
        assert "single-payment limit" in story["limit_refused"] and story["audit"]["balanced"]

        # governance is the central bank's alone now: the operators together cannot change a rule
        bank_admin = Identity.load(net / "orgs" / "bank-a" / "admin.id")
        first = nodes_of(net)[0]
        with Client(first.gateway_url, network=load_network(net), identity=bank_admin, timeout=60.0) as chain:
            filed = chain.invoke(bank_admin, "gov", "propose", {"kind": "set_params", "payload": {
                "params": {"block_txs_max": 10}}}).result
            assert filed["status"] == "open"
            other = Identity.load(net / "orgs" / "bank-b" / "admin.id")
            seconded = chain.invoke(other, "gov", "approve", {"id": filed["id"]}, check=False)
            assert not seconded.ok and "central-bank" in (seconded.receipt.message if seconded.receipt else "")

            # a payment load, and one validator killed in the middle of it
            maker, checker = (CurrencyClient(chain, who) for who in officers_of(net)[:2])
            checker.approve(maker.propose("issue", {"operator": "bank-a", "amount": 100_000 * CNY})["id"])
            bank = CurrencyClient(chain, Identity.load(net / "orgs" / "bank-a" / "client.id"))
            payers = {f"load-{i}": HolderKey.generate(suite) for i in range(4)}
            for wallet, key in payers.items():
                bank.open_wallet(wallet, key, tier=3, kyc=_kyc_for(net, wallet))
                bank.load(wallet, 5_000 * CNY)
            paid: list[str] = []
            errors: list[str] = []

            def load(wallet: str, key: HolderKey) -> None:  # each holder pays in turn; holders at once
                others = [w for w in payers if w != wallet]
                for round_ in range(12):
                    try:
                        paid.append(bank.pay(key, wallet, others[round_ % 3], 1 * CNY)["id"])
                    except CurrencyError as exc:
                        errors.append(str(exc))

            workers = [threading.Thread(target=load, args=item) for item in payers.items()]
            for worker in workers:
                worker.start()
            victim = nodes_of(net)[3]
            assert wait_until(lambda: len(paid) >= 8, timeout_s=60)
            pid = node_pid(victim.home)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            for worker in workers:
                worker.join(timeout=180)
            assert not any(worker.is_alive() for worker in workers) and not errors, errors
            assert len(paid) == 48 and len(set(paid)) == 48
            restarted = runner.invoke(app, ["network", "up", "--dir", str(net), "--timeout", "120"])
            assert restarted.exit_code == 0, restarted.output + _logs(net)
            head = chain.status().height
            with Client(victim.gateway_url, network=load_network(net), identity=bank_admin, timeout=60.0) as lagging:
                assert wait_until(lambda: lagging.status().height >= head, timeout_s=90), _logs(net)
                roots = set()
                for node in nodes_of(net):
                    with Client(node.gateway_url, network=load_network(net), identity=bank_admin) as each:
                        roots.add(each.get_block(head).header.state_root)
                assert len(roots) == 1, "every node holds the same state at the same height"
                auditor = Identity.load(net / "orgs" / "central-bank" / "auditor.id")
                with Client(victim.gateway_url, network=load_network(net), identity=auditor, timeout=120.0) as reader:
                    report = audit_chain(reader)
                assert report["balanced"] and report["checked_against_state"]
            balances = sum(bank.wallet(w)["balance"] for w in payers)  # type: ignore[index]
            assert balances == 4 * 5_000 * CNY  # payments among themselves: nothing created or lost
    finally:
        runner.invoke(app, ["network", "down", "--dir", str(net), "--grace", "10"])
        for node in nodes_of(net):
            stop_node(node, kill=True, grace_s=5)


def _kyc_for(net: Path, wallet: str) -> str:
    from pilotchain.apps.exchange.client import VaultClient
    from pilotchain.apps.exchange.server import load_config

    who = Identity.load(net / "orgs" / "bank-a" / "client.id")
    with VaultClient(load_config(net / "vaults" / "bank-a").public_url, who) as vault:
        vault.put(f"kyc-{wallet}", f'{{"wallet": "{wallet}", "mobile": "+86 139 0000 0000"}}'.encode(),
                  media_type="application/json", classification="core",
                  retention_until_ms=int(time.time() * 1000) + 365 * 86_400_000, policy="currency", subjects=[wallet])
    return f"kyc-{wallet}"

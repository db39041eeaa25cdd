"""Two networks on one machine, real processes: the second cannot start on the first's ports, and
nothing of it talks to the first (no transaction reaches it); a dead node shows as down.

Each test starts its own network on free ports below the ephemeral range and kills every process
in a finally block. Waits are bounded waits on conditions.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pilotchain.cli.client_cmd import EXIT_WRONG_NETWORK
from pilotchain.cli.main import app
from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.network.processes import (
    EPHEMERAL_PORT_MIN,
    NodeProcess,
    free_port_block,
    node_pid,
    nodes_of,
    probe_status,
    stop_node,
    wait_until,
)
from pilotchain.sdk import Client, Identity, WrongNetwork, build_transaction

from .live import logs, member_auth, reader

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

VALIDATORS = 4


def _init(directory: Path, base: int) -> dict:  # type: ignore[type-arg]
    return init_network(directory, validators=VALIDATORS, orgs=parse_orgs("4"), base_port=base,
                        now_ms=int(time.time() * 1000))


def _free_base() -> int:
    # below the ephemeral range, from a random start so parallel runs rarely race for a block
    return free_port_block(2 * VALIDATORS, start=random.randrange(21_000, 31_000), stop=EPHEMERAL_PORT_MIN)


def _stop_all(*directories: Path) -> None:
    for directory in directories:
        if (directory / "network.json").exists():
            for node in nodes_of(directory):
                stop_node(node, kill=True, grace_s=10)


def _transactions_seen(node: NodeProcess) -> tuple[int, int]:
    """(transactions in every block so far, mempool size) on ``node``."""
    status = probe_status(node.gateway_url, identity=reader(node), timeout_s=5.0)
    assert status is not None
    with httpx.Client(base_url=node.gateway_url, auth=member_auth(node), timeout=10.0) as http:
        total = sum(int(http.get(f"/v1/blocks/{h}").json()["header"]["tx_count"])
                    for h in range(1, int(status["height"]) + 1))
    return total, int(status["mempool"]["size"])


def test_a_second_network_on_the_same_ports_fails_clearly_and_sends_nothing(tmp_path: Path) -> None:
    net_a, net_b = tmp_path / "a", tmp_path / "b"
    runner = CliRunner()
    base = _free_base()
    _init(net_a, base)
    manifest_b = _init(net_b, base)
    try:
        started = runner.invoke(app, ["network", "up", "--dir", str(net_a), "--timeout", "90", "--no-services"])
        nodes_a = nodes_of(net_a)
        assert started.exit_code == 0, started.output + logs(nodes_a)

        up_b = runner.invoke(app, ["network", "up", "--dir", str(net_b), "--timeout", "30", "--no-services"])
        assert up_b.exit_code == 1
        message = " ".join(up_b.output.split())
        assert f"port {base} " in message and ("is in use" in message or "are in use" in message)
        assert "bigdata-bureau-v1" in message and "--base-port" in message and "nothing was started" in message
        assert all(node_pid(node.home) is None for node in nodes_of(net_b))

        # B's gateways are A's: everything of B refuses them
        status_b = runner.invoke(app, ["network", "status", "--dir", str(net_b), "--json"])
        assert status_b.exit_code == 1
        rows = json.loads(status_b.stdout)
        assert [row["state"] for row in rows] == ["down"] * VALIDATORS
        assert all("another network" in row["reason"] and row["up"] is False for row in rows)
        human_b = runner.invoke(app, ["network", "status", "--dir", str(net_b)])
        assert human_b.exit_code == 1 and "another network" in human_b.output and " up " not in human_b.output

        client_b = str(net_b / "orgs" / "bank" / "client.id")
        submitted = runner.invoke(app, ["tx", "submit", "kv", "put", '{"key": "stray", "value": 1}',
                                        "-i", client_b, "--network", str(net_b), "--wait"])
        assert submitted.exit_code == EXIT_WRONG_NETWORK, submitted.output
        assert "serves another network" in submitted.output
        identity_b = Identity.load(net_b / "orgs" / "bank" / "client.id")
        stray = build_transaction(identity_b, manifest_b["chain_id"], "kv", "put", {"key": "stray", "value": 2})
        with Client(network=net_b) as sdk_b, pytest.raises(WrongNetwork):
            sdk_b.submit(stray)

        # nothing reached A: no transaction in any block, none waiting, the SDK's one unknown
        assert _transactions_seen(nodes_a[0]) == (0, 0)
        with httpx.Client(base_url=nodes_a[1].gateway_url, timeout=5.0, auth=member_auth(nodes_a[1])) as http:
            assert http.get(f"/v1/txs/{stray.tx_id}").status_code == 404

        # A itself is fine and reported up
        status_a = runner.invoke(app, ["network", "status", "--dir", str(net_a), "--json"])
        assert status_a.exit_code == 0 and all(row["state"] == "up" for row in json.loads(status_a.stdout))
    finally:
        _stop_all(net_a, net_b)


def test_a_killed_node_shows_down_with_the_reason(tmp_path: Path) -> None:
    net = tmp_path / "net"
    runner = CliRunner()
    _init(net, _free_base())
    try:
        started = runner.invoke(app, ["network", "up", "--dir", str(net), "--timeout", "90", "--no-services"])
        nodes = nodes_of(net)
        assert started.exit_code == 0, started.output + logs(nodes)
        victim = nodes[1]
        pid = node_pid(victim.home)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: probe_status(victim.gateway_url, identity=reader(victim), timeout_s=0.5) is None, timeout_s=10)

        shown = runner.invoke(app, ["network", "status", "--dir", str(net), "--json"])
        assert shown.exit_code == 1
        rows = {row["node"]: row for row in json.loads(shown.stdout)}
        assert rows[victim.name]["state"] == "down" and rows[victim.name]["up"] is False
        assert "process exited" in rows[victim.name]["reason"]
        assert all(row["up"] for name, row in rows.items() if name != victim.name)
        human = runner.invoke(app, ["network", "status", "--dir", str(net)])
        assert f"{victim.name}: down, process exited" in " ".join(human.output.split())
    finally:
        _stop_all(net)

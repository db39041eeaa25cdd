"""A tested restore (docs/operations.md, "Backup and restore"): stop one node of a live 4-node
network, copy its home (the backup), let the others commit more, wipe its data folder, restore
the copy, restart it and wait until it has caught up with the others."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pilotchain.network.processes import node_pid, start_node, stop_node, wait_until
from pilotchain.sdk import Identity

from .live import assert_agreement, height, logs, running_network
from .test_live_network import _committed, _submit_many

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_restore_a_stopped_nodes_backup_and_it_catches_up(tmp_path: Path) -> None:
    with running_network(tmp_path / "net") as nodes:
        identity = Identity.load(tmp_path / "net" / "orgs" / "bank" / "client.id")
        before = _submit_many(nodes[0].gateway_url, identity, "pilot-city", 10, "before")
        assert wait_until(lambda: all(_committed(n.gateway_url, before, identity) for n in nodes), timeout_s=60), logs(nodes)

        victim = nodes[3]
        stop_node(victim, grace_s=15)  # a consistent copy: the node is stopped
        assert node_pid(victim.home) is None
        backup = tmp_path / "backup"
        shutil.copytree(victim.home, backup)
        backed_up_height = max(height(n) for n in nodes[:3])

        survivors = nodes[:3]
        during = _submit_many(survivors[0].gateway_url, identity, "pilot-city", 20, "during")
        assert wait_until(lambda: _committed(survivors[1].gateway_url, during, identity), timeout_s=60), logs(nodes)
        top = max(height(n) for n in survivors)
        assert top > backed_up_height

        data = victim.home / "data"  # the disk is lost ...
        shutil.rmtree(data)
        shutil.copytree(backup / "data", data)  # ... and the backup comes back
        start_node(victim)
        assert wait_until(lambda: height(victim) >= top, timeout_s=90), logs(nodes)
        assert _committed(victim.gateway_url, before + during, identity)
        after = _submit_many(victim.gateway_url, identity, "pilot-city", 5, "after")
        assert wait_until(lambda: all(_committed(n.gateway_url, after, identity) for n in nodes), timeout_s=60), logs(nodes)
        assert_agreement(nodes)

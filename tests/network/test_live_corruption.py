"""A validator's ledger store damaged on disk (a flipped byte in its last committed block record,
as a failing disk leaves it) is detected when the node opens it: the node refuses to start with a
clear message and exit code 4 — it never serves or signs from a corrupted store — and
``pilotchain node resync`` sets the store aside so the next start fetches the chain again from the
other validators and agrees with them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.network.live import assert_agreement, height, logs, running_network

from pilotchain.network.processes import nodes_of, start_node, stop_node, wait_until

pytestmark = pytest.mark.timeout(300)


def _flip_last_record_byte(home: Path) -> Path:
    segment = max((home / "data" / "ledger" / "blocks").glob("*.seg"))
    with segment.open("r+b") as file:
        file.seek(-20, 2)  # inside the last committed block record
        byte = file.read(1)[0]
        file.seek(-20, 2)
        file.write(bytes([byte ^ 0x10]))
    return segment


def test_a_corrupted_store_is_refused_at_start_and_resynced_from_peers(tmp_path: Path) -> None:
    with running_network(tmp_path / "net") as nodes:
        victim, others = nodes[3], nodes[:3]
        assert wait_until(lambda: min(height(n) for n in nodes) >= 3, timeout_s=60), logs(nodes)
        stop_node(victim, grace_s=10)
        _flip_last_record_byte(victim.home)
        started = subprocess.run([sys.executable, "-m", "pilotchain", "node", "start", "--home", str(victim.home)],
                                 capture_output=True, text=True, timeout=120)
        assert started.returncode == 4, (started.returncode, started.stderr[-2000:])
        assert "corrupted" in started.stderr and "pilotchain node resync" in started.stderr
        assert "Traceback" not in started.stderr
        # the others went on without it
        before = min(height(n) for n in others)
        assert wait_until(lambda: min(height(n) for n in others) >= before + 2, timeout_s=60), logs(nodes)
        resynced = subprocess.run([sys.executable, "-m", "pilotchain", "node", "resync", "--home", str(victim.home),
                                   "--json"], capture_output=True, text=True, timeout=60)
        assert resynced.returncode == 0, resynced.stderr
        assert list((victim.home / "data").glob("ledger.set-aside-*")) and (victim.home / "data" / "consensus.wal").exists()
        start_node(victim)
        target = max(height(n) for n in others)
        assert wait_until(lambda: height(victim) >= target, timeout_s=120), logs(nodes)
        assert_agreement(nodes)
        # and it takes part again: the chain grows with all four answering
        grown = max(height(n) for n in nodes) + 2
        assert wait_until(lambda: min(height(n) for n in nodes) >= grown, timeout_s=60), logs(nodes)
        assert nodes_of(tmp_path / "net")[3].name == victim.name

"""`make demo`'s main job, as a user runs it: `pilotchain demo --exit` brings up the pilot's
consortium as processes, commits the workload on every node, starts a data-exchange vault per
organisation and runs every application's story: the exchange (refused before a PERMIT,
delivered after), S1 hospitals, S2 government catalogue, S3 diplomas, S4 receivables, S5 green
power — each checked for its decisive outcome."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pilotchain.network.processes import EPHEMERAL_PORT_MIN, free_port_block

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_demo_runs_the_network_and_every_story(tmp_path: Path) -> None:
    base = free_port_block(16, start=random.randrange(21_000, 31_000), stop=EPHEMERAL_PORT_MIN)
    folder = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "pilotchain", "demo", "--exit", "--txs", "300", "--dir", str(folder),
                           "--base-port", str(base)], capture_output=True, text=True, timeout=280,
                          env={**os.environ, "COLUMNS": "500"})  # tables unwrapped: phrases stay whole
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "same block hash at every height" in output and "NO" not in output.split("same block hash")[1][:40]
    assert "refused: NO_PERMIT" in output
    assert "delivered, decrypted, commitment verified" in output
    # S1: denied before the patient's consent, permitted by it, refused after its withdrawal, break-glass reviewed
    assert "PERMIT by consent:" in output and "the vault refuses: WITHDRAWN" in output and "closes it with a finding" in output
    # S2: a field outside the agreement is rejected; a withdrawn entry stops calls at once
    assert "FIELD_NOT_AGREED" in output and "ENTRY_WITHDRAWN" in output
    # S3: one revoked diploma fails, the other 499 verify offline
    assert "499 of 500 verify, 1 fails" in output
    # S4: no double financing; S5: never more than metered, claimed once, traced offline
    assert "no double financing" in output
    assert "never more than metered" in output and "a certificate is claimed once" in output
    assert "verified offline against the genesis" in output
    assert output.count("vault of") >= 7 and "stopped" in output
    # where to look: one table at the end, every organisation's explorer among the pages, answering
    where = output.split("where to look")[1]
    explorers = re.findall(r"explorer [\w-]+\s*│\s*(http://[\d.]+:\d+)/?\s*│\s*yes", where)
    assert len(explorers) >= 4, where[:3000]

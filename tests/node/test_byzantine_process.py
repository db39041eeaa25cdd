"""A byzantine validator *process* against three honest node processes (4 validators, f = 1).

The adversary (tests/node/byzantine_adversary.py, test-only) is a real node with the fourth
validator's real key whose consensus traffic is rewritten: equivocating proposals and votes,
garbage signatures and signatures by the wrong key, replayed old and future messages, oversized
frames — then, in a second phase, it withholds everything. Clients write transactions through
the honest gateways all along. Checked: no fork (every node has the same block hash at every
height it has, the adversary's own ledger included), the honest nodes commit a bounded number of
blocks within a bounded deadline in each phase, every acknowledged transaction is committed once
on every honest node, the equivocations are recorded as evidence (``/v1/status``, ``/metrics``,
the log), and each refused message is counted by reason and by the adversary's name in every
honest node's ``/metrics`` and logged. Every wait is a bounded wait on a condition; every process
is killed (its process group) in a finally block.

``make test`` runs one cycle (~35 s here); ``make soak`` runs many
(``PILOTCHAIN_BYZANTINE_CYCLES``), every second one adding a flood of badly signed votes. Rerun
alone::

    .venv/bin/python -m pytest -n 0 tests/node/test_byzantine_process.py
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.network.live import block_hashes, free_port_block, height, logs
from tests.node import byzantine_adversary as adversary_module

from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.network.processes import (
    NodeProcess,
    node_pid,
    nodes_of,
    probe_status,
    reader_identity,
    start_node,
    stop_node,
    wait_until,
)
from pilotchain.sdk import Client, Identity, SignedRequests, build_transaction

ATTACKS = ("equivocate-proposals", "equivocate-votes", "bad-signatures", "replay", "future", "oversized-frames")
#: blocks the honest nodes must commit in each phase, and the deadline for it
BLOCKS_PER_PHASE = 8
PHASE_DEADLINE_S = 60
#: attack + withhold cycles (make soak sets more)
CYCLES = int(os.environ.get("PILOTCHAIN_BYZANTINE_CYCLES", "1"))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 + CYCLES * 2 * PHASE_DEADLINE_S)]
#: the clients stop after this many acknowledged transactions per cycle (each is then checked on every node)
CLIENT_TXS_PER_CYCLE = 120


# ---------------------------------------------------------------------- processes


def _start_adversary(node: NodeProcess, behaviours: tuple[str, ...]) -> int:
    log = open(node.home / "node.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(
            [sys.executable, adversary_module.__file__, "--home", str(node.home), "--behaviours", ",".join(behaviours)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    finally:
        log.close()
    (node.home / "node.pid").write_text(f"{process.pid}\n")
    return process.pid


def _kill_group(node: NodeProcess) -> None:
    pid = node_pid(node.home)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    stop_node(node, kill=True, grace_s=10)


@contextlib.contextmanager
def _network(directory: Path) -> Iterator[tuple[list[NodeProcess], NodeProcess]]:
    """Three honest validators and the byzantine one (the last in name order), all up."""
    base = free_port_block(8)
    init_network(directory, suite_name="intl", validators=4, orgs=parse_orgs("4"), base_port=base,
                 now_ms=int(time.time() * 1000))
    nodes = sorted(nodes_of(directory), key=lambda n: n.name)
    honest, byzantine = nodes[:3], nodes[3]
    try:
        for node in honest:
            start_node(node)
        _start_adversary(byzantine, ATTACKS)
        assert wait_until(lambda: all(height(n) >= 1 for n in nodes), timeout_s=90), logs(nodes)
        yield honest, byzantine
    finally:
        for node in nodes:
            _kill_group(node)


# ---------------------------------------------------------------------- observations


def _stats(node: NodeProcess) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads((node.home / adversary_module.STATS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"counts": {}, "behaviours": []}
    return document


def _set_behaviours(node: NodeProcess, behaviours: tuple[str, ...]) -> None:
    path = node.home / adversary_module.CONTROL_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(",".join(behaviours))
    os.replace(tmp, path)
    assert wait_until(lambda: _stats(node)["behaviours"] == sorted(behaviours), timeout_s=10), _stats(node)


def _metrics(node: NodeProcess) -> list[Any]:
    text = httpx.get(f"{node.gateway_url}/metrics", timeout=5.0).text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def _metric(samples: list[Any], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _evidence(node: NodeProcess) -> list[dict[str, Any]]:
    status = probe_status(node.gateway_url, identity=reader_identity(node.home.parent.parent)) or {}
    return list(status.get("consensus", {}).get("evidence_recent", []))


def _log_events(node: NodeProcess, event: str) -> list[dict[str, Any]]:
    found = []
    for line in (node.home / "node.log").read_text(errors="replace").splitlines():
        if f'"{event}"' in line:
            with contextlib.suppress(json.JSONDecodeError):
                found.append(json.loads(line))
    return found


def _attack_seen(honest: list[NodeProcess], byzantine: NodeProcess) -> bool:
    """Every attack happened (the adversary's own counts), and both kinds of equivocation are on
    record at an honest node."""
    counts = _stats(byzantine)["counts"]
    if not all(counts.get(attack, 0) > 0 for attack in ATTACKS):
        return False
    if not all(counts.get(f"oversized-frames:{n.name}", 0) > 0 for n in honest):
        return False
    kinds = {e["kind"] for n in honest for e in _evidence(n) if e["validator"] == byzantine.name}
    return "proposal" in kinds and bool(kinds & {"prevote", "precommit"})


# ---------------------------------------------------------------------- clients


class _Writers:
    """Clients writing kv transactions through the honest gateways (round robin) until stopped;
    ``acknowledged`` holds the ids the gateways admitted."""

    def __init__(self, honest: list[NodeProcess], identity: Identity) -> None:
        self.honest = honest
        self.identity = identity
        self.acknowledged: list[str] = []
        self.refused = 0
        self.stop = threading.Event()
        self.budget = 0
        self._thread = threading.Thread(target=self._run, name="byzantine-test-writers", daemon=True)

    def __enter__(self) -> _Writers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        clients = [Client(n.gateway_url, timeout=10.0, identity=self.identity) for n in self.honest]
        try:
            sequence = 0
            while not self.stop.is_set():
                if len(self.acknowledged) >= self.budget:
                    self.stop.wait(0.05)  # an Event wait: wakes at once when the test stops it
                    continue
                tx = build_transaction(self.identity, "pilot-city", "kv", "put",
                                       {"key": f"byzantine/{sequence}", "value": sequence})
                try:
                    self.acknowledged.append(clients[sequence % len(clients)].submit(tx))
                except Exception:  # noqa: BLE001 - a refusal or a busy gateway is counted, not fatal
                    self.refused += 1
                sequence += 1
                self.stop.wait(0.02)
        finally:
            for client in clients:
                client.close()


def _chain(node: NodeProcess, up_to: int, identity: Identity) -> list[tuple[str, list[str]]]:
    """(block hash, transaction ids) of heights 1..up_to."""
    with httpx.Client(base_url=node.gateway_url, timeout=10.0, auth=SignedRequests(identity)) as http:
        blocks = [http.get(f"/v1/blocks/{h}").json() for h in range(1, up_to + 1)]
    return [(block["hash"], [receipt["tx_id"] for receipt in block["receipts"]]) for block in blocks]


def _committed_everywhere(honest: list[NodeProcess], tx_ids: list[str], identity: Identity) -> bool:
    for node in honest:
        with httpx.Client(base_url=node.gateway_url, timeout=10.0, auth=SignedRequests(identity)) as http:
            if not all(http.get(f"/v1/txs/{tx_id}").json().get("state") == "committed" for tx_id in tx_ids):
                return False
    return True


# ---------------------------------------------------------------------- the test


def test_a_byzantine_validator_process_cannot_fork_or_stall_three_honest_ones(tmp_path: Path) -> None:
    net = tmp_path / "net"
    with _network(net) as (honest, byzantine):
        everyone = [*honest, byzantine]
        identity = Identity.load(net / "orgs" / "bank" / "client.id")
        with _Writers(honest, identity) as writers:
            for cycle in range(CYCLES):
                writers.budget += CLIENT_TXS_PER_CYCLE
                # phase 1: every attack at once; in every second cycle of a soak, with a flood of
                # badly signed votes too (~4,000 per second per peer: it slows the honest nodes
                # ~2x on 2 cores, which is why make test leaves it out)
                _set_behaviours(byzantine, ATTACKS + (("flood",) if cycle % 2 == 1 else ()))
                start = {n.name: height(n) for n in honest}
                assert wait_until(lambda: _attack_seen(honest, byzantine)
                                  and all(height(n) >= start[n.name] + BLOCKS_PER_PHASE for n in honest),  # noqa: B023
                                  timeout_s=PHASE_DEADLINE_S), (cycle, _stats(byzantine), logs(everyone))
                assert node_pid(byzantine.home) is not None, logs([byzantine], 40)
                # phase 2: a silent validator
                _set_behaviours(byzantine, ("withhold",))
                silent_from = _stats(byzantine)["counts"].get("withhold", 0)
                start = {n.name: height(n) for n in honest}
                assert wait_until(lambda: _stats(byzantine)["counts"].get("withhold", 0) > silent_from  # noqa: B023
                                  and all(height(n) >= start[n.name] + BLOCKS_PER_PHASE for n in honest),  # noqa: B023
                                  timeout_s=PHASE_DEADLINE_S), (cycle, logs(everyone))
            writers.stop.set()
        acknowledged = list(writers.acknowledged)
        assert len(acknowledged) >= CLIENT_TXS_PER_CYCLE * CYCLES // 2, (len(acknowledged), writers.refused)
        assert wait_until(lambda: _committed_everywhere(honest, acknowledged, identity), timeout_s=60), logs(everyone)

        # no fork: the same block hash at every height, the adversary's own ledger included;
        # every acknowledged transaction is in exactly one block
        common = min(height(n) for n in honest)
        reference = _chain(honest[0], common, identity)
        for node in honest[1:]:
            assert _chain(node, common, identity) == reference, f"{node.name} forked from {honest[0].name}"
        own = min(height(byzantine), common)
        assert own >= 1 and block_hashes(byzantine, own) == [block for block, _ in reference[:own]]
        included = collections.Counter(tx_id for _, tx_ids in reference for tx_id in tx_ids)
        assert all(included[tx_id] == 1 for tx_id in acknowledged), [t for t in acknowledged if included[t] != 1]

        for node in honest:
            assert node_pid(node.home) is not None, f"{node.name} died\n" + logs([node], 40)
            samples = _metrics(node)
            refused = {s.labels["reason"]: s.value for s in samples
                       if s.name == "pilotchain_consensus_refused_total" and s.labels.get("peer") == byzantine.name}
            # garbage and wrong-key signatures, replays and future messages, each counted by reason
            assert refused.get("bad vote: signature", 0) > 0, refused
            assert refused.get("ignoring: far future height", 0) > 0, refused
            assert refused.get("ignoring: past height", 0) + refused.get("ignoring: duplicate vote", 0) > 0, refused
            assert _metric(samples, "pilotchain_p2p_bad_messages_total") > 0  # bytes that are no message
            assert _metric(samples, "pilotchain_p2p_refused_total", event="p2p.dropped", reason="FRAME_REJECTED") > 0
            # nothing was refused in an honest peer's name
            assert not [s for s in samples if s.name == "pilotchain_consensus_refused_total"
                        and s.labels.get("peer") in {n.name for n in honest} and s.labels["reason"].startswith("bad ")]
            # the log says who misbehaved, and how
            refusals = _log_events(node, "consensus.refused")
            assert any(r["peer"] == byzantine.name and r["reason"] == "bad vote: signature" for r in refusals)
            assert not any(r["peer"] != byzantine.name and r["reason"].startswith("bad ") for r in refusals), refusals
            assert any(d.get("peer") == byzantine.name and str(d.get("reason", "")).startswith("FRAME_REJECTED")
                       for d in _log_events(node, "p2p.dropped"))
            text = (node.home / "node.log").read_text(errors="replace")
            assert '"node.failed"' not in text and '"node.halted"' not in text and "Traceback" not in text

        # the proposer's wrong-key proposals reach every honest node that is not the round's proposer
        assert sum(_metric(_metrics(n), "pilotchain_consensus_refused_total", peer=byzantine.name,
                           reason="bad proposal: signature") for n in honest) > 0
        # evidence: both kinds, naming only the adversary, in /v1/status, /metrics and the log
        evidence = [e for n in honest for e in _evidence(n)]
        assert evidence and {e["validator"] for e in evidence} == {byzantine.name}, evidence
        assert {"proposal"} < {e["kind"] for e in evidence}
        found = sum(_metric(_metrics(n), "pilotchain_consensus_evidence_total", validator=byzantine.name)
                    for n in honest)
        assert found >= 2
        logged = [e for n in honest for e in _log_events(n, "consensus.evidence")]
        assert logged and {e["validator"] for e in logged} == {byzantine.name}

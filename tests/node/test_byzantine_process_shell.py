"""What the validator shell makes of a byzantine peer, deterministically (no sockets, a fake clock):
refused consensus messages in /metrics by reason and peer, a log line per (peer, reason) when it
first appears and then at most one per interval, and equivocation evidence logged, counted and
listed in the status. The live test (test_byzantine_process.py) shows the same across processes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tests.network.live import free_port_block

from pilotchain.consensus import BLOCK_HASH_NIL, Vote, VoteType, get_vote_signing_bytes
from pilotchain.identity.files import load_identity
from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.node.daemon import REFUSAL_LOG_INTERVAL_MS, ConsensusNode

NOW_MS = 1_790_000_000_000
BYZANTINE = "university-v1"


class _Clock:
    def __init__(self) -> None:
        self.now_ms = NOW_MS

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[ConsensusNode, _Clock, object]]:
    net = tmp_path / "net"
    init_network(net, validators=4, orgs=parse_orgs("4"), base_port=free_port_block(8), now_ms=NOW_MS - 60_000)
    clock = _Clock()
    node = ConsensusNode.from_home(net / "nodes" / "bank-v1", clock_ms=clock)
    key = load_identity(net / "nodes" / BYZANTINE / "node.id").private_key
    node._input(node.core.start, clock())
    yield node, clock, key
    asyncio.run(node.close())


def _vote(node: ConsensusNode, key: object, block_hash: bytes, index: int | None = None) -> Vote:
    names = [v.name for v in node.ledger.validators_at(1)]
    signing = get_vote_signing_bytes(b"pilot-city", VoteType.PREVOTE, 1, 0, block_hash)
    return Vote(VoteType.PREVOTE, 1, 0, block_hash, names.index(BYZANTINE) if index is None else index,
                key.sign(signing))  # type: ignore[attr-defined]


def _receive(node: ConsensusNode, clock: _Clock, message: Vote) -> None:
    node._input(node.core.receive, message, node._peer_id(BYZANTINE), clock())
    node._log_refusals()


def _samples(node: ConsensusNode, name: str) -> dict[tuple[str, ...], float]:
    text = generate_latest(node.metrics_registry()).decode()
    return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


def _refusal_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, int]]:
    return [(r.peer, r.reason, r.count) for r in caplog.records  # type: ignore[attr-defined]
            if getattr(r, "event", None) == "consensus.refused"]


def test_refusals_are_counted_by_reason_and_peer_and_logged_boundedly(
        setup: tuple[ConsensusNode, _Clock, object], caplog: pytest.LogCaptureFixture) -> None:
    node, clock, key = setup
    caplog.set_level(logging.INFO, logger="pilotchain.node")
    garbage = Vote(VoteType.PREVOTE, 1, 0, BLOCK_HASH_NIL, 3, bytes(64))
    _receive(node, clock, garbage)
    assert _refusal_lines(caplog) == [(BYZANTINE, "bad vote: signature", 1)]
    for _ in range(50):  # a flood within the interval: counted, not logged
        _receive(node, clock, garbage)
    far = Vote(VoteType.PREVOTE, 10_000, 0, BLOCK_HASH_NIL, 3, bytes(64))
    _receive(node, clock, far)  # a new reason is logged at once, alone
    assert _refusal_lines(caplog) == [(BYZANTINE, "bad vote: signature", 1),
                                      (BYZANTINE, "ignoring: far future height", 1)]
    clock.now_ms += REFUSAL_LOG_INTERVAL_MS
    _receive(node, clock, garbage)  # the summary: what was not logged yet
    assert _refusal_lines(caplog)[2:] == [(BYZANTINE, "bad vote: signature", 51)]
    assert [r.levelname for r in caplog.records if getattr(r, "event", None) == "consensus.refused"] == [
        "WARNING", "INFO", "WARNING"]

    refused = _samples(node, "pilotchain_consensus_refused_total")
    assert refused[(("peer", BYZANTINE), ("reason", "bad vote: signature"))] == 52
    assert refused[(("peer", BYZANTINE), ("reason", "ignoring: far future height"))] == 1
    assert sum(refused.values()) == sum(node.replica.drops.values())
    assert node.ledger.height == 0 and not node.replica.evidence  # none of it changed anything


def test_equivocation_is_logged_counted_and_listed(
        setup: tuple[ConsensusNode, _Clock, object], caplog: pytest.LogCaptureFixture) -> None:
    node, clock, key = setup
    caplog.set_level(logging.INFO, logger="pilotchain.node")
    _receive(node, clock, _vote(node, key, BLOCK_HASH_NIL))
    _receive(node, clock, _vote(node, key, b"\x07" * 32))
    _receive(node, clock, _vote(node, key, b"\x07" * 32))  # the same pair again: no new evidence
    logged = [r for r in caplog.records if getattr(r, "event", None) == "consensus.evidence"]
    assert len(logged) == 1 and logged[0].levelname == "WARNING"
    assert (logged[0].validator, logged[0].kind, logged[0].height, logged[0].round) == (  # type: ignore[attr-defined]
        BYZANTINE, "prevote", 1, 0)
    assert _samples(node, "pilotchain_consensus_evidence_total") == {
        (("kind", "prevote"), ("validator", BYZANTINE)): 1.0}
    listed = node.status().consensus["evidence_recent"]
    assert listed == [{"kind": "prevote", "validator": BYZANTINE, "height": 1, "round": 0,
                       "block_a": "nil", "block_b": "07" * 8}]

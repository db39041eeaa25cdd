"""The consensus node: its core binds a ledger block to the consensus header around it; the shell around it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from pilotchain.bench.network import free_port_block
from pilotchain.codec import encode
from pilotchain.consensus.types import ConsensusHeader
from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.node.daemon import ConsensusNode
from pilotchain.sdk import Identity, build_transaction

NOW = 1_790_000_000_000


@pytest.fixture
def node(tmp_path: Path):  # type: ignore[no-untyped-def]
    init_network(tmp_path / "net", validators=4, orgs=parse_orgs("4"), base_port=free_port_block(8), now_ms=NOW)
    node = ConsensusNode.from_home(tmp_path / "net" / "nodes" / "bank-v1")
    yield node, tmp_path / "net"
    asyncio.run(node.close())


def _header(node: ConsensusNode, block, **changes):  # type: ignore[no-untyped-def]
    names = [v.name for v in node.ledger.validators_at(1)]
    header = ConsensusHeader(
        chain_id=b"pilot-city", height=1, round=0, parent_hash=b"\x00" * 32,
        proposer_index=names.index(block.header.proposer), timestamp_ms=block.header.timestamp_ms,
        validator_set_hash=b"\x00" * 32, payload_hash=b"\x00" * 32,
    )
    return msgspec.structs.replace(header, **changes)


def test_a_ledger_block_must_match_its_consensus_header(node) -> None:  # type: ignore[no-untyped-def]
    consensus_node, net = node
    app = consensus_node.core  # the consensus Application over the ledger
    identity = Identity.load(net / "orgs" / "hospital" / "client.id")
    tx = build_transaction(identity, "pilot-city", "kv", "put", {"key": "k", "value": 1}, now_ms=NOW + 5)
    block = consensus_node.ledger.build_block([tx.raw], proposer="bank-v1", timestamp_ms=NOW + 10)
    payload = encode(block)
    assert app.validate_payload(_header(consensus_node, block), payload)
    assert not app.validate_payload(_header(consensus_node, block, timestamp_ms=NOW + 11), payload)
    other = (_header(consensus_node, block).proposer_index + 1) % 4
    assert not app.validate_payload(_header(consensus_node, block, proposer_index=other), payload)
    assert not app.validate_payload(_header(consensus_node, block, height=2), payload)
    assert not app.validate_payload(_header(consensus_node, block), payload[:-1])
    forged = msgspec.structs.replace(block, header=msgspec.structs.replace(block.header, state_root=b"\x01" * 32))
    assert not app.validate_payload(_header(consensus_node, forged), encode(forged))
    assert consensus_node.ledger.height == 0  # judging proposals changes nothing


def test_the_payload_hash_is_the_ledger_header_hash_and_binds_the_body(node) -> None:  # type: ignore[no-untyped-def]
    """The consensus header names the ledger block by its header's hash (so a certificate proves a
    header without the body), and only a body that matches that header's roots has that hash: a
    proposal with the right header and other transactions or receipts is refused on arrival (no
    payload hash) and by validation (re-execution)."""
    from pilotchain.ledger.block import block_hash

    consensus_node, net = node
    app = consensus_node.core
    identity = Identity.load(net / "orgs" / "hospital" / "client.id")
    txs = [build_transaction(identity, "pilot-city", "kv", "put", {"key": f"k{i}", "value": i}, now_ms=NOW + 5)
           for i in range(2)]
    block = consensus_node.ledger.build_block([tx.raw for tx in txs], proposer="bank-v1", timestamp_ms=NOW + 10)
    assert app.compute_payload_hash(encode(block)) == block_hash(consensus_node.suite, block.header)
    other_tx = build_transaction(identity, "pilot-city", "kv", "put", {"key": "k9", "value": 9}, now_ms=NOW + 5)
    swapped_txs = msgspec.structs.replace(block, txs=(block.txs[0], other_tx.raw))
    swapped_receipts = msgspec.structs.replace(block, receipts=tuple(reversed(block.receipts)))
    fewer = msgspec.structs.replace(block, txs=block.txs[:1], receipts=block.receipts[:1])
    for body in (swapped_txs, swapped_receipts, fewer):
        payload = encode(body)
        assert app.compute_payload_hash(payload) is None
        assert not app.validate_payload(_header(consensus_node, body), payload)
    assert app.compute_payload_hash(b"not a block") is None
    assert app.validate_payload(_header(consensus_node, block), encode(block))
    assert consensus_node.ledger.height == 0


def test_expiring_identities_are_warned_once_per_threshold(node, caplog) -> None:  # type: ignore[no-untyped-def]
    consensus_node, _ = node
    not_after = consensus_node.identity.certificate.not_after_ms
    day = 86_400_000
    with caplog.at_level("WARNING", logger="pilotchain.node"):
        assert consensus_node.check_expiry(not_after - 40 * day, None) == []
        first = consensus_node.check_expiry(not_after - 29 * day, not_after - 40 * day)
        assert [w.threshold_days for w in first if w.subject == "bank-v1"] == [30]
        assert consensus_node.check_expiry(not_after - 28 * day, not_after - 29 * day) == []
        last = consensus_node.check_expiry(not_after + 1, not_after - 28 * day)
        assert [w.severity for w in last if w.subject == "bank-v1"] == ["expired"]
    assert any(getattr(r, "event", "") == "identity.expiring" for r in caplog.records)


def test_certificate_expiry_is_a_metric_for_every_org_ca_and_the_node(node) -> None:  # type: ignore[no-untyped-def]
    consensus_node, _ = node
    now_ms = consensus_node.identity.certificate.not_before_ms + 1000
    consensus_node.check_expiry(now_ms, None)  # far from any threshold: nothing logged, all measured
    registry = consensus_node.metrics_registry()
    name = "pilotchain_certificate_expiry_timestamp_seconds"
    own = registry.get_sample_value(name, {"kind": "identity", "org": "bank", "subject": "bank-v1"})
    assert own == consensus_node.identity.certificate.not_after_ms / 1000
    cas = [sample for metric in registry.collect() if metric.name == name for sample in metric.samples
           if sample.labels["kind"] == "org-ca"]
    assert sorted(sample.labels["org"] for sample in cas) == sorted(consensus_node._current_membership().org_ids())
    assert len(cas) == 4


def test_proposals_are_bounded_by_what_fits_in_a_round(node) -> None:  # type: ignore[no-untyped-def]
    consensus_node, _ = node
    assert consensus_node._proposal_txs_max(4000) == 4000  # nothing measured yet
    budget_us = consensus_node.consensus_config.timeout_propose_ms * 1000 // 3
    consensus_node._build_cost_us_per_tx = budget_us // 500  # 500 transactions fill a third of the round
    consensus_node.previews = False
    assert consensus_node._proposal_txs_max(4000) == 500
    assert consensus_node._proposal_txs_max(300) == 300
    # with previews the validators execute beside the build and move their timeout: two thirds
    consensus_node.previews = True
    two_thirds_us = consensus_node.consensus_config.timeout_propose_ms * 1000 * 2 // 3
    assert consensus_node._proposal_txs_max(4000) == two_thirds_us // consensus_node._build_cost_us_per_tx  # ~1,000
    consensus_node._build_cost_us_per_tx = 3 * budget_us  # absurdly slow: still make progress
    assert consensus_node._proposal_txs_max(4000) == 10


def test_gossip_waits_for_the_admission_task_and_its_backlog_is_bounded(node, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Received gossip is queued (the inbound loop never verifies signatures itself), admitted in
    order by the admission task, and dropped, counted, beyond the backlog bound."""
    from pilotchain.node import daemon

    consensus_node, net = node
    monkeypatch.setattr(daemon, "ADMISSION_BACKLOG_TXS_MAX", 3)
    identity = Identity.load(net / "orgs" / "hospital" / "client.id")
    raws = [build_transaction(identity, "pilot-city", "kv", "put", {"key": f"g{i}", "value": i}).raw
            for i in range(4)]
    consensus_node._admit_gossip("university-v1", encode(raws[:2]))
    consensus_node._admit_gossip("university-v1", encode(raws[2:]))  # 2 + 2 > 3: dropped
    assert consensus_node._admission_backlog == 2 and len(consensus_node.mempool) == 0
    registry = consensus_node.metrics_registry()
    assert registry.get_sample_value("pilotchain_mempool_gossip_dropped_total") == 2

    async def admit() -> None:
        from tests.gateway.helpers import wait_until

        task = asyncio.create_task(consensus_node._admission_loop())
        try:
            await wait_until(lambda: len(consensus_node.mempool) == 2, "the queued batch admitted")
        finally:
            task.cancel()

    asyncio.run(admit())
    assert consensus_node._admission_backlog == 0 and len(consensus_node.mempool) == 2


def test_tune_gc_sets_the_node_thresholds_and_freezes_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from pilotchain.node import daemon
    from pilotchain.node.daemon import NODE_GC_THRESHOLDS, tune_gc

    # the second call's full collection of the test process is not a node pause worth a log line
    monkeypatch.setattr(daemon, "SLOW_PAUSE_MS", 10**9)
    before = gc.get_threshold()
    try:
        tune_gc()  # the load generator's: no pause logger
        assert daemon._log_gc_pause not in gc.callbacks
        tune_gc(log_pauses=True)
        tune_gc(log_pauses=True)  # twice: one pause logger, not two
        assert gc.get_threshold() == NODE_GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        assert gc.callbacks.count(daemon._log_gc_pause) == 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        while daemon._log_gc_pause in gc.callbacks:
            gc.callbacks.remove(daemon._log_gc_pause)


def test_a_long_collector_pause_is_logged_and_a_short_one_is_not(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from pilotchain.node import daemon

    clock = iter([0, 99_000_000, 1_000_000_000, 1_000_000_000 + daemon.SLOW_PAUSE_MS * 1_000_000])
    monkeypatch.setattr(daemon.time, "perf_counter_ns", lambda: next(clock))
    with caplog.at_level("WARNING", logger=daemon._log.name):
        for _ in range(2):
            daemon._log_gc_pause("start", {"generation": 2})
            daemon._log_gc_pause("stop", {"generation": 2, "collected": 7})
    slow = [r for r in caplog.records if getattr(r, "event", None) == "node.slow"]
    assert [(r.cause, r.ms, r.generation, r.collected) for r in slow] == [("gc", daemon.SLOW_PAUSE_MS, 2, 7)]


def test_each_validator_gets_its_own_storage_maintenance_heights(tmp_path: Path) -> None:
    """Validators in genesis order take the store's spread phases; a node outside genesis takes
    a slot from its name; a node opened from its home uses its own."""
    from pilotchain.network.consortium import load_genesis
    from pilotchain.node.chain import maintenance_phase
    from pilotchain.storage import LedgerStore

    init_network(tmp_path / "net", orgs=parse_orgs("4"), validators=4, base_port=free_port_block(8), now_ms=1_700_000_000_000)
    genesis = load_genesis(tmp_path / "net" / "genesis.json")
    names = [validator.name for validator in genesis.validators]
    phases = [maintenance_phase(genesis, name) for name in names]
    assert phases == [LedgerStore.spread_phases(slot, 4) for slot in range(4)]
    assert len({merge for merge, _ in phases}) == 4 and len({checkpoint for _, checkpoint in phases}) == 4
    assert maintenance_phase(genesis, None) == (0, 0)
    import zlib

    assert maintenance_phase(genesis, "observer-9") == LedgerStore.spread_phases(zlib.crc32(b"observer-9") % 4, 4)
    home = next((tmp_path / "net" / "nodes").iterdir())
    opened = ConsensusNode.from_home(home)
    try:
        store = opened.ledger.store
        assert (store._merge_phase, store._checkpoint_phase) == maintenance_phase(genesis, home.name)
    finally:
        asyncio.run(opened.close())

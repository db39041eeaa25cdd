"""Block previews: a proposer's shell sends what it is about to build (``plan_proposal``) before
building it, and validators execute it meanwhile (``NodeCore.preview``), so the proposal finds its
execution done. Only the current proposer is heard, once a round; nothing is trusted — a proposal
that differs from its preview is executed and checked as usual."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from pilotchain.bench.network import free_port_block
from pilotchain.codec import decode, encode
from pilotchain.consensus.effects import Broadcast, RequestPayload
from pilotchain.consensus.types import Proposal
from pilotchain.ledger.block import block_hash
from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.network.processes import nodes_of
from pilotchain.node.chain import BlockInvalid
from pilotchain.node.core import ProposalPreview
from pilotchain.node.daemon import ConsensusNode
from pilotchain.sdk import Identity, build_transaction

NOW = 1_790_000_000_000


@pytest.fixture
def network(tmp_path: Path) -> Iterator[tuple[dict[str, ConsensusNode], Path]]:
    init_network(tmp_path / "net", validators=4, orgs=parse_orgs("4"), base_port=free_port_block(8), now_ms=NOW)
    nodes = {node.name: ConsensusNode.from_home(node.home) for node in nodes_of(tmp_path / "net")}
    for node in nodes.values():
        node.core.start(NOW)
    yield nodes, tmp_path / "net"
    for node in nodes.values():
        asyncio.run(node.close())


def _proposer(nodes: dict[str, ConsensusNode]) -> tuple[ConsensusNode, RequestPayload]:
    for node in nodes.values():
        requests = [effect for effect in node.core.drain() if isinstance(effect, RequestPayload)]
        if requests:
            return node, requests[0]
    raise AssertionError("no node was asked for a payload at height 1")


def _planned(network, count: int) -> tuple[ConsensusNode, list[bytes], ProposalPreview]:  # type: ignore[no-untyped-def]
    """The proposer of height 1 with ``count`` transactions in its mempool, and its plan."""
    nodes, net = network
    proposer, request = _proposer(nodes)
    identity = Identity.load(net / "orgs" / "hospital" / "client.id")
    raws = [build_transaction(identity, "pilot-city", "kv", "put", {"key": f"k{i}", "value": i}, now_ms=NOW + 1).raw
            for i in range(count)]
    for raw in raws:
        proposer.mempool.add(raw, NOW + 2, proposer.ledger.check_tx)
    plan = proposer.core.plan_proposal(request, NOW + 3)
    assert plan is not None
    return proposer, raws, plan


def _counting_executions(node: ConsensusNode) -> list[int]:
    calls: list[int] = []
    execute = node.ledger._execute

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return execute(*args, **kwargs)

    node.ledger._execute = counted  # type: ignore[method-assign]
    return calls


def test_a_validator_executes_the_preview_and_the_proposal_finds_it_done(network) -> None:  # type: ignore[no-untyped-def]
    nodes, _ = network
    proposer, raws, plan = _planned(network, 5)
    assert plan.txs == tuple(raws) and plan.height == 1
    assert decode(encode(plan), ProposalPreview) == plan  # what goes over the wire
    validators = [node for name, node in nodes.items() if name != proposer.name]
    executions = {node.name: _counting_executions(node) for node in validators}

    # only the proposer of this height and round is heard, once
    other = validators[0]
    assert not validators[1].core.preview(other.name, plan)
    notes = [e for e in validators[1].core.drain() if getattr(e, "event", "") == "preview.refused"]
    assert notes and "not the proposer" in notes[0].message
    assert not validators[1].core.preview(proposer.name, ProposalPreview(height=2, round=0, timestamp_ms=plan.timestamp_ms,
                                                                         txs=plan.txs))
    assert not validators[1].core.preview(proposer.name, ProposalPreview(height=1, round=1, timestamp_ms=plan.timestamp_ms,
                                                                         txs=plan.txs))
    for node in validators:
        assert node.core.preview(proposer.name, plan)
        assert not node.core.preview(proposer.name, plan)  # once a round
    assert all(len(calls) == 1 for calls in executions.values())

    # the proposer builds exactly that block; every validator accepts its proposal without executing again
    block = proposer.core.propose_plan(plan)
    assert block is not None and block.txs == tuple(raws) and block.header.timestamp_ms == plan.timestamp_ms
    sent = [effect.message for effect in proposer.core.drain() if isinstance(effect, Broadcast)]
    assert any(isinstance(message, Proposal) and message.block.header.timestamp_ms == plan.timestamp_ms
               for message in sent)
    for node in validators:
        assert node.ledger.verify_block(block) == block_hash(node.suite, block.header)
        assert len(executions[node.name]) == 1, "the proposal was executed a second time"


def test_a_proposal_that_differs_from_its_preview_is_executed_and_checked_as_usual(network) -> None:  # type: ignore[no-untyped-def]
    nodes, _ = network
    proposer, _, plan = _planned(network, 3)
    validator = next(node for name, node in nodes.items() if name != proposer.name)
    executions = _counting_executions(validator)
    # a preview that names two of the three transactions (or another time) is not the block
    assert validator.core.preview(proposer.name, ProposalPreview(height=1, round=0, timestamp_ms=plan.timestamp_ms,
                                                                 txs=plan.txs[:2]))
    block = proposer.core.propose_plan(plan)
    assert block is not None
    assert len(executions) == 1
    validator.ledger.verify_block(block)
    assert len(executions) == 2  # executed on its own merits
    # a preview cannot make a validator accept a block that its own execution refutes
    forged = msgspec.structs.replace(block, header=msgspec.structs.replace(block.header, state_root=b"\x01" * 32))
    with pytest.raises(BlockInvalid, match="re-execution disagrees"):
        validator.ledger.verify_block(forged)


def test_the_replica_stamps_the_time_the_block_was_built_for(network) -> None:  # type: ignore[no-untyped-def]
    """Inputs between plan and build move the replica's clock on; the proposal still carries the
    block's time (a validator refuses a proposal whose ledger and consensus times differ)."""
    nodes, net = network
    proposer, request = _proposer(nodes)
    plan = proposer.core.plan_proposal(request, NOW + 3)
    assert plan is not None
    proposer.core.tick(NOW + 400)  # the clock moves on before the build (no timeout is due yet)
    block = proposer.core.propose_plan(plan)
    assert block is not None
    sent = [effect for effect in proposer.core.drain() if isinstance(effect, Broadcast)]
    proposal = next(effect.message for effect in sent if isinstance(effect.message, Proposal))
    assert proposal.block.header.timestamp_ms == block.header.timestamp_ms == plan.timestamp_ms

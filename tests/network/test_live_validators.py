"""Governance changes the validator set of a running 4-process network while transactions commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilotchain.cli.main import app as cli
from pilotchain.network.consortium import add_node
from pilotchain.network.processes import NodeProcess, nodes_of, probe_status, start_node, wait_until
from pilotchain.sdk import Client, Identity, build_transaction

from .live import (
    assert_agreement,
    free_port_block,
    height,
    logs,
    member_auth,
    reader,
    running_network,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _validators(node: NodeProcess) -> list[str]:
    status = probe_status(node.gateway_url, identity=reader(node)) or {}
    return list(status.get("validators", []))


def _commit_some(node: NodeProcess, identity: Identity, tag: str) -> None:
    with Client(node.gateway_url, timeout=30.0, identity=identity) as client:
        txs = [build_transaction(identity, "pilot-city", "kv", "put", {"key": f"{tag}-{i}", "value": i})
               for i in range(10)]
        results = client.submit_many(txs)
        assert all(isinstance(r, str) for r in results), results
        assert client.wait(txs[-1].tx_id, timeout_s=60).state == "committed"


def test_add_and_remove_validators_by_governance_while_committing(tmp_path: Path) -> None:
    runner = CliRunner()
    net = tmp_path / "net"
    with running_network(net) as nodes:
        orgs = sorted(p.name for p in (net / "orgs").iterdir())
        client = Identity.load(net / "orgs" / orgs[0] / "client.id")

        def gov(node: NodeProcess, org: str, *args: str) -> dict:  # type: ignore[type-arg]
            result = runner.invoke(cli, ["gov", *args, "--identity", str(net / "orgs" / org / "admin.id"),
                                         "--node", node.gateway_url, "--json"])
            assert result.exit_code == 0, result.output + logs(nodes)
            return json.loads(result.stdout)

        # a fifth node joins as an observer and syncs
        port = free_port_block(2)
        entry = add_node(net, org=orgs[1], now_ms=__import__("time").time_ns() // 1_000_000,
                         p2p_port=port, gateway_port=port + 1)
        newcomer = next(n for n in nodes_of(net) if n.name == entry["name"])
        try:
            start_node(newcomer)
            assert wait_until(lambda: height(newcomer) >= height(nodes[0]) - 1 > 0, timeout_s=60), logs([*nodes, newcomer])
            _commit_some(nodes[0], client, "before")

            payload = (net / entry["home"] / "validator.json").read_text()
            proposal = gov(nodes[0], orgs[0], "propose", "add_validator", payload)
            proposal_id = str(proposal.get("id", proposal.get("proposal_id")))
            gov(nodes[1], orgs[1], "approve", proposal_id)
            done = gov(nodes[2], orgs[2], "approve", proposal_id)
            assert done["status"] == "executed", done
            assert wait_until(lambda: entry["name"] in _validators(nodes[0]), timeout_s=60), logs([*nodes, newcomer])
            assert wait_until(lambda: (probe_status(newcomer.gateway_url, identity=reader(newcomer)) or {}).get("consensus", {}).get("validator") is True,
                              timeout_s=60), logs([newcomer])
            _commit_some(newcomer, client, "five")

            leaving = nodes[3].name
            proposal = gov(nodes[0], orgs[0], "propose", "remove_validator", json.dumps({"name": leaving}))
            proposal_id = str(proposal.get("id", proposal.get("proposal_id")))
            gov(nodes[1], orgs[1], "approve", proposal_id)
            gov(nodes[2], orgs[2], "approve", proposal_id)
            assert wait_until(lambda: leaving not in _validators(nodes[0]), timeout_s=60), logs(nodes)
            _commit_some(nodes[1], client, "after")
            assert sorted(_validators(nodes[0])) == sorted([n.name for n in nodes[:3]] + [entry["name"]])
            assert_agreement([*nodes, newcomer])
            _check_certificates(runner, net, nodes[0], height(nodes[0]))
        finally:
            from pilotchain.network.processes import stop_node

            stop_node(newcomer, kill=True)


def _check_certificates(runner: CliRunner, net: Path, node: NodeProcess, head: int) -> None:
    """Blocks before and after the validator changes verify against genesis + the schedule;
    tampered contents or certificates do not."""
    import base64

    import httpx
    import msgspec

    from pilotchain.codec import decode, encode
    from pilotchain.crypto import get_suite
    from pilotchain.ledger.block import Block
    from pilotchain.ledger.commit import CommitRecord, InvalidCertificate, verify_block_commit
    from pilotchain.network.consortium import load_genesis

    for at in (2, head):
        result = runner.invoke(cli, ["block", "verify", str(at), "--genesis", str(net / "genesis.json"),
                                     "--node", node.gateway_url, "--json"],
                               env={"PILOTCHAIN_IDENTITY": str(net / "orgs" / "bank" / "client.id")})
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["verified"] is True

    genesis = load_genesis(net / "genesis.json")
    suite = get_suite(genesis.suite)
    auth = member_auth(node)
    block = decode(httpx.get(f"{node.gateway_url}/v1/blocks/2/raw", auth=auth).content, Block)
    slot = base64.b64decode(httpx.get(f"{node.gateway_url}/v1/blocks/2", auth=auth).json()["certificate"])
    verify_block_commit(block, slot, genesis.validators, suite)
    record = decode(slot, CommitRecord)
    altered = msgspec.structs.replace(block, header=msgspec.structs.replace(block.header, proposer="mallory"))
    thin = msgspec.structs.replace(record, certificate=msgspec.structs.replace(
        record.certificate, signatures=record.certificate.signatures[:2]))
    forged = msgspec.structs.replace(record, certificate=msgspec.structs.replace(
        record.certificate, signatures=tuple(msgspec.structs.replace(sig, signature=bytes(64))
                                             for sig in record.certificate.signatures)))
    strangers = [msgspec.structs.replace(v, public_key=suite.generate_private_key().public_key().to_der())
                 for v in genesis.validators]
    for bad_block, bad_record, validators in [(altered, record, genesis.validators), (block, thin, genesis.validators),
                                              (block, forged, genesis.validators), (block, record, strangers)]:
        with pytest.raises(InvalidCertificate):
            verify_block_commit(bad_block, encode(bad_record), validators, suite)

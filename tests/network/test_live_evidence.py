"""Evidence from four real validator processes: exported through a gateway, verified offline.

The commit certificates here are the replicas' own (the consensus header names the ledger header),
and governance removes a validator between the two proven transactions, so the bundle carries the
validator-set change and the verifier follows it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilotchain.cli.main import app as cli
from pilotchain.ledger.evidence import make_tree_head, verify_bundle
from pilotchain.network.consortium import load_genesis
from pilotchain.network.processes import NodeProcess, probe_status, wait_until
from pilotchain.sdk import Client, Identity
from pilotchain.sdk.evidence import AttachmentBatch, export_evidence

from .live import assert_agreement, logs, reader, running_network

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DOCUMENTS = tuple(f"signed delivery note {i}".encode() for i in range(3))


def _validators(node: NodeProcess) -> list[str]:
    status = probe_status(node.gateway_url, identity=reader(node)) or {}
    return list(status.get("validators", []))


def test_evidence_across_a_validator_removal_verifies_offline(tmp_path: Path) -> None:
    runner = CliRunner()
    net = tmp_path / "net"
    with running_network(net) as nodes:
        orgs = sorted(p.name for p in (net / "orgs").iterdir())
        genesis = load_genesis(net / "genesis.json")
        client_identity = Identity.load(net / "orgs" / orgs[0] / "client.id")
        from pilotchain.crypto import get_suite

        suite = get_suite(genesis.suite)
        with Client(nodes[0].gateway_url, timeout=30.0, identity=client_identity) as client:
            first = client.invoke(client_identity, "kv", "put", {"key": "note/1", "value": 1,
                                                                 "batch": make_tree_head(suite, DOCUMENTS)})
            first.raise_for_status()

        def gov(org: str, *args: str) -> dict:  # type: ignore[type-arg]
            result = runner.invoke(cli, ["gov", *args, "--identity", str(net / "orgs" / org / "admin.id"),
                                         "--node", nodes[0].gateway_url, "--json"])
            assert result.exit_code == 0, result.output + logs(nodes)
            return json.loads(result.stdout)

        leaving = nodes[3].name
        proposal = gov(orgs[0], "propose", "remove_validator", json.dumps({"name": leaving}))
        proposal_id = str(proposal.get("id", proposal.get("proposal_id")))
        gov(orgs[1], "approve", proposal_id)
        gov(orgs[2], "approve", proposal_id)
        assert wait_until(lambda: leaving not in _validators(nodes[0]), timeout_s=60), logs(nodes)
        with Client(nodes[1].gateway_url, timeout=30.0, identity=client_identity) as client:
            last = client.invoke(client_identity, "kv", "put", {"key": "note/2", "value": 2}).raise_for_status()
            bundle = export_evidence(client, [first.tx_id, last.tx_id], genesis=genesis,
                                     attachments=[AttachmentBatch(first.tx_id, "batch", DOCUMENTS, (2,))])
        assert_agreement(nodes[:3])

    # the network is down: the auditor has the file and genesis.json only
    verified = verify_bundle(bundle, genesis)
    assert [(c.kind, c.validator) for c in verified.validator_changes] == [("remove_validator", leaving)]
    assert leaving in verified.headers[0].validators and leaving not in verified.headers[-1].validators
    assert len(verified.headers[-1].signers) >= 3 and verified.attachments[0].document == DOCUMENTS[2]
    path = tmp_path / "evidence.bin"
    path.write_bytes(bundle)
    result = runner.invoke(cli, ["chain", "evidence", "verify", str(path), "--genesis", str(net / "genesis.json"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert [tx["tx_id"] for tx in json.loads(result.stdout)["txs"]] == [first.tx_id, last.tx_id]
    tampered = bytearray(bundle)
    tampered[len(tampered) // 3] ^= 0x04
    path.write_bytes(bytes(tampered))
    result = runner.invoke(cli, ["chain", "evidence", "verify", str(path), "--genesis", str(net / "genesis.json")])
    assert result.exit_code == 1 and "does NOT verify" in result.output

"""Exporting evidence from a running chain (SDK and CLI) and verifying it offline.

The chain is :mod:`pilotchain.testing`'s in-process chain — a real ledger, gateway (signed reads)
and SDK client — whose ledger stores a commit record with each block, signed by the validators
in force (a development node certifies nothing by itself; ``evidence_helpers.certify_commits``).
Governance adds a validator and removes the genesis one between the two proven transactions, so
the exporter must fetch the validator-set history and the verifier must follow it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilotchain.cli.main import app as cli
from pilotchain.identity.files import load_identity
from pilotchain.ledger.evidence import make_tree_head, verify_bundle
from pilotchain.sdk import EvidenceError, NotFound, TxResult
from pilotchain.sdk.evidence import AttachmentBatch, export_evidence
from pilotchain.testing import LocalChain, local_chain
from tests.ledger.evidence_helpers import certify_commits

DOCUMENTS = tuple(f'{{"receipt": {i}, "kwh": {100 + i}}}'.encode() for i in range(4))


@dataclass
class Exported:
    chain: LocalChain
    first: TxResult
    last: TxResult
    added: str
    removed: str


def _governance(chain: LocalChain, kind: str, payload: dict[str, object]) -> None:
    orgs = list(chain.consortium.admins)
    with chain.client() as client:
        proposal = client.invoke(chain.identity(orgs[0], admin=True), "gov", "propose",
                                 {"kind": kind, "payload": payload}).raise_for_status()
        proposal_id = proposal.result["id"]
        done = client.invoke(chain.identity(orgs[1], admin=True), "gov", "approve", {"id": proposal_id})
        assert done.raise_for_status().result["status"] == "executed"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    with local_chain(tmp_path_factory.mktemp("evidence-export"), orgs=2) as chain:
        consortium = chain.consortium
        node_key = load_identity(consortium.directory / "nodes" / consortium.validator / "node.id").private_key
        keys = {node_key.public_key().to_der(): node_key}
        certify_commits(chain.node.ledger, keys)
        suite = chain.node.suite
        newcomer = suite.generate_private_key()
        keys[newcomer.public_key().to_der()] = newcomer
        orgs = list(consortium.clients)
        with chain.client() as client:
            first = client.invoke(chain.identity(orgs[0]), "kv", "put", {
                "key": "meter/7", "value": 107, "batch": make_tree_head(suite, DOCUMENTS)}).raise_for_status()
            _governance(chain, "add_validator", {"name": "newcomer-v1", "org": orgs[1],
                                                 "public_key": newcomer.public_key().to_der()})
            _governance(chain, "remove_validator", {"name": consortium.validator})
            for i in range(3):
                client.invoke(chain.identity(orgs[1]), "kv", "put", {"key": f"fill/{i}", "value": i}).raise_for_status()
            last = client.invoke(chain.identity(orgs[1]), "kv", "put", {"key": "meter/8", "value": 9}).raise_for_status()
        yield Exported(chain, first, last, "newcomer-v1", consortium.validator)


def test_export_then_verify_offline(exported: Exported) -> None:
    chain = exported.chain
    with chain.client() as client:
        bundle = export_evidence(client, [exported.first.tx_id, exported.last.tx_id], genesis=chain.genesis,
                                 attachments=[AttachmentBatch(exported.first.tx_id, "batch", DOCUMENTS, (1, 3))])
    verified = verify_bundle(bundle, chain.genesis)
    assert [tx.tx_id.hex() for tx in verified.txs] == [exported.first.tx_id, exported.last.tx_id]
    assert [(c.kind, c.validator) for c in verified.validator_changes] == [
        ("add_validator", exported.added), ("remove_validator", exported.removed)]
    assert verified.headers[0].signers == (exported.removed,) and verified.headers[-1].signers == (exported.added,)
    assert [(a.index, a.document) for a in verified.attachments] == [(1, DOCUMENTS[1]), (3, DOCUMENTS[3])]


def test_export_refuses_what_it_cannot_prove(exported: Exported, tmp_path: Path) -> None:
    chain = exported.chain
    with chain.client() as client:
        with pytest.raises(NotFound):
            export_evidence(client, ["00" * 32])
        with pytest.raises(EvidenceError, match="tree head"):
            export_evidence(client, [], attachments=[AttachmentBatch(exported.first.tx_id, "batch", DOCUMENTS[:3])])
    with local_chain(tmp_path / "plain") as plain, plain.client() as client:  # a development node: no certificates
        result = client.invoke(plain.identity(), "kv", "put", {"key": "k", "value": 1}).raise_for_status()
        with pytest.raises(EvidenceError, match="no commit certificate"):
            export_evidence(client, [result.tx_id])


def test_cli_export_and_verify(exported: Exported, tmp_path: Path) -> None:
    chain = exported.chain
    network = chain.consortium.directory
    url = chain.serve_http()
    for i, document in enumerate(DOCUMENTS):
        (tmp_path / f"doc-{i}.json").write_bytes(document)
    manifest = tmp_path / "batch.json"
    manifest.write_text(json.dumps({"tx": exported.first.tx_id, "argument": "batch",
                                    "documents": [f"doc-{i}.json" for i in range(len(DOCUMENTS))], "include": [2]}))
    out = tmp_path / "evidence.bin"
    runner = CliRunner()
    result = runner.invoke(cli, ["chain", "evidence", "export", "--tx", exported.last.tx_id, "--attach", str(manifest),
                                 "--out", str(out), "--node", url, "--network", str(network), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["verified_before_writing"] is True and summary["validator_changes"] == 2
    assert summary["txs"] == [exported.last.tx_id, exported.first.tx_id]

    verified = runner.invoke(cli, ["chain", "evidence", "verify", str(out), "--genesis", str(network / "genesis.json"),
                                   "--json"])
    assert verified.exit_code == 0, verified.output
    document = json.loads(verified.output)
    assert document["verified"] is True and document["txs"][0]["args"] == {"key": "meter/8", "value": 9}
    assert document["attachments"][0]["index"] == 2
    human = runner.invoke(cli, ["chain", "evidence", "verify", str(out), "--genesis", str(network / "genesis.json")])
    assert human.exit_code == 0 and "verified" in human.output and exported.added in human.output

    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x01
    out.write_bytes(bytes(data))
    broken = runner.invoke(cli, ["chain", "evidence", "verify", str(out), "--genesis", str(network / "genesis.json")])
    assert broken.exit_code == 1 and "does NOT verify" in broken.output and "Traceback" not in broken.output
    missing = runner.invoke(cli, ["chain", "evidence", "verify", str(tmp_path / "nope.bin"), "--genesis",
                                  str(network / "genesis.json")])
    assert missing.exit_code == 2 and "cannot read" in missing.output

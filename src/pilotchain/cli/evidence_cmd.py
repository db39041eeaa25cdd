"""`pilotchain chain evidence export|verify`: evidence bundles an auditor checks offline.

Mount with ``app.add_typer(chain_app, name="chain")``.

``export`` asks a validator's gateway (signed reads, as every command) for the transactions named
with ``--tx``, their certified block headers and the validator-set history since genesis, adds the
documents of anchored batches (``--attach MANIFEST.json``) and writes one bundle file. When the
genesis is known (``--network`` or ``--genesis genesis.json``) it verifies the bundle before
writing it. ``verify`` needs no network: the bundle file and the chain's genesis.json (the trust
anchor) are all it reads. Format and soundness: docs/audit.md, ``pilotchain.ledger.evidence``.

A batch manifest (JSON)::

    {"tx": "<id of the transaction that anchors the batch>",
     "argument": "<its argument holding {root, size}>",
     "documents": ["doc-0.json", "doc-1.json", ...],     (the whole batch, in order; paths
     "include": [1]}                                      relative to the manifest; optional)

Exit codes as the other client commands: 0 ok; 1 the bundle does not verify, or a transaction
cannot be proven; 2 usage (unreadable genesis, bundle or manifest); 3 node unreachable; 5 the node
serves another network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pilotchain.cli.client_cmd import (
    EXIT_REFUSED,
    EXIT_USAGE,
    GenesisOption,
    JsonOption,
    NetworkOption,
    NodeOption,
    TimeoutOption,
    _fail,
    _out,
    _print_json,
    _run,
    _time,
    connect,
)
from pilotchain.codec import decode
from pilotchain.errors import CoreError
from pilotchain.ledger.evidence import (
    BUNDLE_BYTES_MAX,
    EvidenceBundle,
    EvidenceInvalid,
    VerifiedEvidence,
    verify_bundle,
)
from pilotchain.ledger.genesis import Genesis
from pilotchain.ledger.tx import decode_args
from pilotchain.node.config import load_genesis
from pilotchain.sdk.evidence import AttachmentBatch, export_evidence
from pilotchain.sdk.wire import decode_value, to_tagged_json

__all__ = ["app"]

app = typer.Typer(help="The chain as a whole: evidence an auditor verifies offline.", no_args_is_help=True)
evidence_app = typer.Typer(help="Evidence bundles: transactions proven committed, checked with only genesis.json.",
                           no_args_is_help=True)
app.add_typer(evidence_app, name="evidence")

#: a batch manifest names at most this many documents
MANIFEST_DOCUMENTS_MAX = 65_536


@evidence_app.command("export")
def export(
    tx: Annotated[list[str], typer.Option("--tx", metavar="ID", help="A committed transaction to prove (repeat).")],
    out: Annotated[Path, typer.Option("--out", help="The bundle file to write.")],
    attach: Annotated[list[Path] | None, typer.Option(
        "--attach", metavar="MANIFEST", help="A batch manifest (JSON, see `--help`): anchored documents to include.")] = None,
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Write an evidence bundle for the transactions named with --tx (and anchored documents)."""
    batches = [_load_manifest(path) for path in attach or []]
    genesis = _known_genesis(network, expect_genesis)
    with connect(node, network, expect_genesis, timeout=timeout) as client:
        bundle = _run(lambda: export_evidence(client, tx, attachments=batches, genesis=genesis))
    temporary = out.with_name(out.name + ".tmp")
    try:
        temporary.write_bytes(bundle)
        os.replace(temporary, out)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}", EXIT_USAGE)
    summary = _summary(bundle)
    summary.update(file=str(out), bytes=len(bundle), verified_before_writing=genesis is not None)
    if as_json:
        _print_json(summary)
        return
    _out.print(f"wrote {out} ({len(bundle):,} bytes): {len(summary['txs'])} transactions, "
               f"{summary['headers']} certified headers, {summary['validator_changes']} validator-set changes, "
               f"{summary['attachments']} attachments")
    if genesis is None:
        _out.print("not verified here (no genesis given): check it with "
                   f"`pilotchain chain evidence verify {out} --genesis genesis.json`")


@evidence_app.command("verify")
def verify(
    bundle_file: Annotated[Path, typer.Argument(metavar="FILE", help="The evidence bundle.")],
    genesis: Annotated[Path, typer.Option("--genesis", help="The chain's genesis.json: the trust anchor.")],
    as_json: JsonOption = False,
) -> None:
    """Verify an evidence bundle offline against the chain's genesis.json; no network is used."""
    try:
        chain = load_genesis(genesis)
    except CoreError as exc:
        _fail(str(exc), EXIT_USAGE)
    try:
        size = bundle_file.stat().st_size
        if size > BUNDLE_BYTES_MAX:
            _fail(f"{bundle_file} is {size:,} bytes, more than any bundle ({BUNDLE_BYTES_MAX:,})", EXIT_REFUSED)
        data = bundle_file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {bundle_file}: {exc.strerror or exc}", EXIT_USAGE)
    try:
        verified = verify_bundle(data, chain)
    except EvidenceInvalid as exc:
        if as_json:
            _print_json({"verified": False, "where": exc.where, "reason": exc.reason})
            raise typer.Exit(EXIT_REFUSED) from exc
        _fail(f"the evidence does NOT verify: {exc}", EXIT_REFUSED)
    document = _verified_document(verified)
    if as_json:
        _print_json(document)
    else:
        _print_verified(document)


# ---------------------------------------------------------------------- helpers


def _load_manifest(path: Path) -> AttachmentBatch:
    try:
        manifest = json.loads(path.read_text())
        documents = manifest["documents"]
        if not isinstance(documents, list) or not 1 <= len(documents) <= MANIFEST_DOCUMENTS_MAX:
            raise ValueError(f"'documents' is a list of 1..{MANIFEST_DOCUMENTS_MAX} file names")
        include = manifest.get("include")
        if include is not None and not (isinstance(include, list) and all(
                isinstance(i, int) and 0 <= i < len(documents) for i in include)):
            raise ValueError("'include' is a list of positions in 'documents'")
        return AttachmentBatch(
            tx_id=str(manifest["tx"]),
            argument=str(manifest["argument"]),
            documents=tuple((path.parent / str(name)).read_bytes() for name in documents),
            include=None if include is None else tuple(include),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _fail(f"{path} is not a usable batch manifest: {exc}", EXIT_USAGE)


def _known_genesis(network: Path | None, expect_genesis: str | None) -> Genesis | None:
    """The genesis document the options name (to verify before writing), if any."""
    candidates = []
    if expect_genesis is not None and Path(expect_genesis).is_file():
        candidates.append(Path(expect_genesis))
    if network is not None and (network / "genesis.json").is_file():
        candidates.append(network / "genesis.json")
    if not candidates:
        return None
    try:
        return load_genesis(candidates[0])
    except CoreError as exc:
        _fail(str(exc), EXIT_USAGE)


def _summary(bundle: bytes) -> dict[str, Any]:
    decoded = decode(bundle, EvidenceBundle)
    return {
        "txs": [entry.receipt.tx_id.hex() for entry in decoded.txs],
        "headers": len(decoded.headers),
        "validator_changes": len(decoded.validator_changes),
        "attachments": len(decoded.attachments),
    }


def _verified_document(verified: VerifiedEvidence) -> dict[str, Any]:
    return {
        "verified": True,
        "chain_id": verified.chain_id,
        "suite": verified.suite,
        "genesis_hash": verified.genesis_hash.hex(),
        "validator_changes": [
            {"effective_height": change.effective_height, "kind": change.kind, "validator": change.validator,
             "validators": [{"name": v.name, "org": v.org, "power": v.power} for v in change.validators],
             "proposal_id": change.proposal_id, "approved_height": change.approved_height,
             "proposal_tx": change.proposal_tx_id.hex(), "execution_tx": change.execution_tx_id.hex()}
            for change in verified.validator_changes
        ],
        "txs": [
            {"tx_id": tx.tx_id.hex(), "height": tx.height, "index": tx.index, "block_hash": tx.block_hash.hex(),
             "timestamp_ms": tx.timestamp_ms, "signer": {"org": tx.signer_org, "name": tx.signer_name},
             "contract": tx.contract, "method": tx.method, "args": to_tagged_json(decode_args(tx.args)),
             "status": tx.status, "message": tx.message, "result": to_tagged_json(decode_value(tx.result)),
             "events": [{"contract": e.contract, "name": e.name, "data": to_tagged_json(decode_value(e.data))}
                        for e in tx.events]}
            for tx in verified.txs
        ],
        "headers": [
            {"height": h.height, "block_hash": h.block_hash.hex(), "timestamp_ms": h.timestamp_ms,
             "proposer": h.proposer, "signers": list(h.signers), "validators": list(h.validators)}
            for h in verified.headers
        ],
        "attachments": [
            {"tx_id": a.tx_id.hex(), "argument": a.argument, "index": a.index, "size": a.size,
             "root": a.root.hex(), "document_bytes": len(a.document)}
            for a in verified.attachments
        ],
    }


def _print_verified(document: dict[str, Any]) -> None:
    _out.print(f"verified: the evidence was committed by the consortium of chain {document['chain_id']} "
               f"(genesis {document['genesis_hash'][:16]}…, suite {document['suite']})")
    for change in document["validator_changes"]:
        _out.print(f"  validator set from height {change['effective_height']}: {change['kind']} "
                   f"{change['validator']} (proposal #{change['proposal_id']}, approved in block "
                   f"{change['approved_height']}) -> {', '.join(v['name'] for v in change['validators'])}")
    table = Table(title="transactions", title_justify="left")
    for column in ("tx", "block", "time", "signer", "call", "status", "events"):
        table.add_column(column, overflow="fold")
    signers = {h["height"]: h["signers"] for h in document["headers"]}
    for tx in document["txs"]:
        table.add_row(tx["tx_id"][:16] + "…", f"{tx['height']} (#{tx['index']})", _time(tx["timestamp_ms"]),
                      f"{tx['signer']['org']}/{tx['signer']['name']}", f"{tx['contract']}.{tx['method']}",
                      tx["status"], ", ".join(e["name"] for e in tx["events"]) or "-")
    _out.print(table)
    for height, names in sorted(signers.items()):
        _out.print(f"  block {height} certified by {', '.join(names)}")
    for attachment in document["attachments"]:
        _out.print(f"  attachment: document {attachment['index']} of {attachment['size']} "
                   f"({attachment['document_bytes']:,} bytes) anchored by {attachment['tx_id'][:16]}… "
                   f"in {attachment['argument']!r}")

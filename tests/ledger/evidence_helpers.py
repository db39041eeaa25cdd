"""A governed ledger whose blocks carry real commit records, without running consensus.

Every block is certified as validators would certify it: a consensus header naming the ledger
block's hash, precommits by the validators in force at that height (whose keys the test holds),
the certificate stored in the block's certificate slot. Governance is the real ``gov`` contract,
so validator-set changes happen exactly as on a chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilotchain.codec import decode, encode
from pilotchain.consensus.certificate import (
    compute_block_hash,
    compute_validator_set_hash,
    get_vote_signing_bytes,
    make_commit_certificate,
)
from pilotchain.consensus.types import ConsensusHeader, Vote, VoteType
from pilotchain.crypto import PrivateKey, Suite, get_suite
from pilotchain.identity.files import load_identity
from pilotchain.ledger.block import Block, block_hash
from pilotchain.ledger.commit import CommitRecord, consensus_validator_set
from pilotchain.ledger.evidence import CertifiedHeader, TxEvidence, ValidatorChange
from pilotchain.ledger.genesis import Genesis, ValidatorInfo
from pilotchain.network.consortium import init_network, load_genesis, parse_orgs
from pilotchain.node.chain import Ledger, open_governed_ledger
from pilotchain.sdk import Identity, SignedTransaction, build_transaction

NOW_MS = 1_790_000_000_000
BLOCK_INTERVAL_MS = 1_000


def commit_record_for(suite: Suite, block: Block, validators: Sequence[ValidatorInfo], keys: dict[bytes, PrivateKey],
                      *, parent: bytes = bytes(32), signers: Sequence[int] | None = None) -> bytes:
    """The CommitRecord ``validators`` would store for ``block``: precommits by ``signers``
    (indexes into ``validators``; default every validator whose key is in ``keys``)."""
    height = block.header.height
    names = [v.name for v in validators]
    header = ConsensusHeader(
        chain_id=block.header.chain_id.encode(), height=height, round=0, parent_hash=parent,
        proposer_index=names.index(block.header.proposer) if block.header.proposer in names else 0,
        timestamp_ms=block.header.timestamp_ms,
        validator_set_hash=compute_validator_set_hash(suite, consensus_validator_set(validators)),
        payload_hash=block_hash(suite, block.header),
    )
    digest = compute_block_hash(suite, header)
    signing_bytes = get_vote_signing_bytes(header.chain_id, VoteType.PRECOMMIT, height, 0, digest)
    chosen = range(len(validators)) if signers is None else signers
    votes = [Vote(VoteType.PRECOMMIT, height, 0, digest, i, keys[validators[i].public_key].sign(signing_bytes))
             for i in chosen if validators[i].public_key in keys]
    certificate = make_commit_certificate(header.chain_id, height, 0, digest, votes)
    return encode(CommitRecord(header=header, certificate=certificate))


def consensus_parent(suite: Suite, ledger: Ledger, height: int) -> bytes:
    """The consensus block hash of ``height - 1`` (the genesis block's hash for height 1)."""
    if height == 1:
        return ledger.head_hash if ledger.height == 0 else block_hash(suite, ledger.get_block(0).header)  # type: ignore[union-attr]
    previous = ledger.store.get_certificate(height - 1)
    if previous is None:
        raise AssertionError(f"block {height - 1} has no certificate")
    return compute_block_hash(suite, decode(previous, CommitRecord).header)


def certify_commits(ledger: Ledger, keys: dict[bytes, PrivateKey]) -> None:
    """Make ``ledger`` store a commit record with every block it commits (a LocalNode's ledger,
    say), signed by the validators in force whose keys are in ``keys`` (the caller may add keys)."""
    original = ledger.commit_block

    def commit_block(block: Block, certificate: bytes | None = None, *, encoded: bytes | None = None) -> bytes:
        height = block.header.height
        record = commit_record_for(ledger.suite, block, ledger.validators_at(height), keys,
                                   parent=consensus_parent(ledger.suite, ledger, height))
        return original(block, certificate=record, encoded=encoded)

    ledger.commit_block = commit_block  # type: ignore[method-assign]


@dataclass
class CertifyingChain:
    """A 4-organisation consortium (4 validators) on a governed ledger, certified block by block."""

    net: Path
    genesis: Genesis
    suite: Suite
    ledger: Ledger
    keys: dict[bytes, PrivateKey]
    orgs: list[str]
    now_ms: int = NOW_MS
    committed: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, directory: Path, *, suite: str = "intl") -> CertifyingChain:
        net = directory / "net"
        init_network(net, suite_name=suite, validators=4, orgs=parse_orgs("4"), base_port=20000, now_ms=NOW_MS - 60_000)
        genesis = load_genesis(net / "genesis.json")
        keys = {}
        for validator in genesis.validators:
            bundle = load_identity(net / "nodes" / validator.name / "node.id")
            keys[validator.public_key] = bundle.private_key
        ledger = open_governed_ledger(directory / "ledger", genesis, durable=False)
        orgs = sorted(p.name for p in (net / "orgs").iterdir())
        return cls(net, genesis, get_suite(suite), ledger, keys, orgs)

    def close(self) -> None:
        self.ledger.close()

    def identity(self, org: str, role: str = "client") -> Identity:
        return Identity.load(self.net / "orgs" / org / f"{role}.id")

    def sign(self, identity: Identity, contract: str, method: str, args: Any) -> SignedTransaction:
        return build_transaction(identity, self.genesis.chain_id, contract, method, args, now_ms=self.now_ms)

    def commit(self, txs: Iterable[SignedTransaction], *, signers: Sequence[int] | None = None) -> Block:
        """One certified block with exactly ``txs`` (every one must be includable)."""
        raws = [tx.raw for tx in txs]
        self.now_ms += BLOCK_INTERVAL_MS
        height = self.ledger.height + 1
        validators = self.ledger.validators_at(height)
        proposer = validators[height % len(validators)].name
        block = self.ledger.build_block(raws, proposer=proposer, timestamp_ms=self.now_ms)
        if len(block.txs) != len(raws):
            raise AssertionError(f"block {height} left out transactions")
        record = commit_record_for(self.suite, block, validators, self.keys, parent=consensus_parent(self.suite, self.ledger, height),
                                   signers=signers)
        self.ledger.commit_block(block, certificate=record)
        return block

    def run(self, tx: SignedTransaction) -> Any:
        """Commit ``tx`` alone; its receipt (which must say OK)."""
        block = self.commit([tx])
        receipt = block.receipts[0]
        if receipt.status != "OK":
            raise AssertionError(f"{receipt.status}: {receipt.message}")
        return receipt

    def governance(self, kind: str, payload: dict[str, Any]) -> tuple[SignedTransaction, SignedTransaction | None]:
        """Propose as the first organisation, approve until executed (MAJORITY of 4: three votes)."""
        proposal = self.sign(self.identity(self.orgs[0], "admin"), "gov", "propose", {"kind": kind, "payload": payload})
        receipt = self.run(proposal)
        proposal_id = decode(receipt.result, dict[str, Any])["id"]
        execution = None
        for org in self.orgs[1:]:
            approval = self.sign(self.identity(org, "admin"), "gov", "approve", {"id": proposal_id})
            result = decode(self.run(approval).result, dict[str, Any])
            if result["status"] == "executed":
                execution = approval
                break
        if execution is None:
            raise AssertionError("the proposal was not executed")
        return proposal, execution

    def new_validator_key(self) -> bytes:
        """A fresh consensus key the chain's certifier will sign with once it is a validator."""
        key = self.suite.generate_private_key()
        public_key = key.public_key().to_der()
        self.keys[public_key] = key
        return public_key

    # -------------------------------------------------------------- evidence material

    def tx_evidence(self, tx_id: bytes) -> TxEvidence:
        record = self.ledger.get_transaction(tx_id)
        if record is None:
            raise AssertionError("not committed")
        return TxEvidence(height=record.header.height, tx=record.tx_raw, receipt=record.receipt, proof=record.proof)

    def certified_headers(self) -> dict[int, CertifiedHeader]:
        out = {}
        for height in range(1, self.ledger.height + 1):
            block = self.ledger.get_block(height)
            slot = self.ledger.store.get_certificate(height)
            if block is None or slot is None:
                raise AssertionError(f"block {height} has no certificate")
            out[height] = CertifiedHeader(header=block.header, commit=slot)
        return out

    def change(self, proposal: SignedTransaction, execution: SignedTransaction | None) -> ValidatorChange:
        return ValidatorChange(proposal=self.tx_evidence(bytes.fromhex(proposal.tx_id)),
                               execution=None if execution is None else self.tx_evidence(bytes.fromhex(execution.tx_id)))


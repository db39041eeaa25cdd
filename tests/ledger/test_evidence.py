"""Offline evidence bundles: what verifies, and that every changed byte or part fails with a reason.

The chain is a real governed ledger (the real ``gov`` contract changes the validator set) whose
blocks carry commit records signed by the validators in force, as a consensus network stores them
(``tests/ledger/evidence_helpers.py``). A bundle proves three transactions — one before and one
after the validator-set changes, and one that anchors a batch of documents — with the two
changes (a validator added, a genesis validator removed) between genesis and the last one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pilotchain.codec import Record, decode, encode
from pilotchain.ledger import evidence
from pilotchain.ledger.commit import CommitRecord
from pilotchain.ledger.evidence import (
    AnchoredAttachment,
    CertifiedHeader,
    EvidenceBundle,
    EvidenceInvalid,
    TxEvidence,
    ValidatorChange,
    make_attachments,
    make_bundle,
    make_tree_head,
    verify_bundle,
)
from pilotchain.ledger.genesis import genesis_hash
from pilotchain.sdk import SignedTransaction
from tests.ledger.evidence_helpers import CertifyingChain, commit_record_for

DOCUMENTS = [f"signed receipt #{i}: 100 kWh delivered".encode() for i in range(5)]


@dataclass
class Scenario:
    chain: CertifyingChain
    before: SignedTransaction
    anchor: SignedTransaction
    after: SignedTransaction
    added: tuple[SignedTransaction, SignedTransaction | None]
    removed: tuple[SignedTransaction, SignedTransaction | None]
    removed_name: str
    bundle: bytes

    def tx(self, signed: SignedTransaction) -> TxEvidence:
        return self.chain.tx_evidence(bytes.fromhex(signed.tx_id))

    def changes(self) -> list[ValidatorChange]:
        return [self.chain.change(*self.added), self.chain.change(*self.removed)]

    def make(self, txs: list[TxEvidence] | None = None, changes: list[ValidatorChange] | None = None,
             attachments: list[AnchoredAttachment] | None = None) -> bytes:
        chain = self.chain
        return make_bundle(genesis_hash(chain.suite, chain.genesis), chain.certified_headers(),
                           txs if txs is not None else [self.tx(self.before), self.tx(self.anchor), self.tx(self.after)],
                           self.changes() if changes is None else changes,
                           make_attachments(chain.suite, DOCUMENTS, 1, "batch", [0, 3]) if attachments is None
                           else attachments)


@pytest.fixture(scope="module", params=["intl", "gm"])
def scenario(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    chain = CertifyingChain.create(tmp_path_factory.mktemp(f"evidence-{request.param}"), suite=request.param)
    client = chain.identity(chain.orgs[1])
    before = chain.sign(client, "kv", "put", {"key": "meter/1", "value": 100})
    anchor = chain.sign(client, "kv", "put", {"key": "batch/1", "value": 5,
                                              "batch": make_tree_head(chain.suite, DOCUMENTS)})
    other = chain.sign(chain.identity(chain.orgs[2]), "kv", "put", {"key": "private", "value": "not in the bundle"})
    chain.commit([before, other, anchor])
    added = chain.governance("add_validator", {"name": "extra-v1", "org": chain.orgs[3],
                                               "public_key": chain.new_validator_key()})
    removed_name = chain.genesis.validators[0].name
    removed = chain.governance("remove_validator", {"name": removed_name})
    for i in range(3):
        chain.run(chain.sign(client, "kv", "put", {"key": f"filler/{i}", "value": i}))
    after = chain.sign(chain.identity(chain.orgs[0]), "kv", "put", {"key": "meter/2", "value": 250})
    chain.run(after)
    result = Scenario(chain, before, anchor, after, added, removed, removed_name, b"")
    result.bundle = result.make()
    yield result
    chain.close()


def _fails(bundle: bytes, scenario: Scenario, *where: str) -> EvidenceInvalid:
    with pytest.raises(EvidenceInvalid) as caught:
        verify_bundle(bundle, scenario.chain.genesis)
    error = caught.value
    assert error.reason, "a failure names its reason"
    if where:
        assert any(error.where.startswith(w) for w in where), (error.where, error.reason)
    return error


# ---------------------------------------------------------------- what verifies


def test_a_bundle_verifies_offline_with_only_genesis(scenario: Scenario) -> None:
    chain = scenario.chain
    verified = verify_bundle(scenario.bundle, chain.genesis)
    assert verified.genesis_hash == genesis_hash(chain.suite, chain.genesis)
    assert [tx.tx_id.hex() for tx in verified.txs] == [scenario.before.tx_id, scenario.anchor.tx_id,
                                                       scenario.after.tx_id]
    before, anchor, after = verified.txs
    assert before.height == anchor.height == 1 and before.index == 0 and anchor.index == 2
    assert (before.signer_org, before.signer_name) == (chain.orgs[1], f"{chain.orgs[1]}-client")
    assert (after.signer_org, after.contract, after.method, after.status) == (chain.orgs[0], "kv", "put", "OK")
    assert decode(after.args, dict[str, Any]) == {"key": "meter/2", "value": 250}
    assert after.timestamp_ms == chain.ledger.get_block(after.height).header.timestamp_ms  # type: ignore[union-attr]
    assert [event.name for event in before.events] == [e.name for e in chain.ledger.get_block(1).receipts[0].events]  # type: ignore[union-attr]
    assert [(a.index, a.document, a.size, a.argument) for a in verified.attachments] == [
        (0, DOCUMENTS[0], 5, "batch"), (3, DOCUMENTS[3], 5, "batch")]


def test_validator_changes_between_genesis_and_the_transaction(scenario: Scenario) -> None:
    """The last transaction is certified by a set governance changed twice: the verifier derives
    it from the governance transactions (certified by the sets before) and checks its signers."""
    verified = verify_bundle(scenario.bundle, scenario.chain.genesis)
    added, removed = verified.validator_changes
    assert (added.kind, added.validator, removed.kind, removed.validator) == (
        "add_validator", "extra-v1", "remove_validator", scenario.removed_name)
    assert added.effective_height == added.approved_height + 2 and removed.effective_height > added.effective_height
    assert [v.name for v in removed.validators] == [v.name for v in scenario.chain.ledger.validators_at(
        removed.effective_height)]
    last = verified.headers[-1]
    assert last.height == verified.txs[2].height > removed.effective_height
    assert "extra-v1" in last.signers and scenario.removed_name not in last.validators
    first = verified.headers[0]
    assert scenario.removed_name in first.signers and "extra-v1" not in first.validators


def test_the_verifier_states_governance_as_governance_does() -> None:
    from pilotchain.contracts import governance

    assert evidence.GOV_CONTRACT == governance.GOV_CONTRACT
    assert (evidence.ADD_VALIDATOR, evidence.REMOVE_VALIDATOR) == (governance.ADD_VALIDATOR, governance.REMOVE_VALIDATOR)
    assert evidence.VALIDATOR_CHANGE_DELAY_BLOCKS == governance.VALIDATOR_CHANGE_DELAY_BLOCKS
    assert evidence.VALIDATOR_CHANGES_MAX >= governance.VALIDATOR_SCHEDULE_MAX


def test_the_bundle_does_not_carry_the_other_transactions_of_a_block(scenario: Scenario) -> None:
    """Block 1 also holds another organisation's transaction: the bundle proves the two it needs
    against the header alone, without those bytes."""
    block = scenario.chain.ledger.get_block(1)
    assert block is not None and len(block.txs) == 3
    assert block.txs[1] not in scenario.bundle and b"not in the bundle" not in scenario.bundle


# ---------------------------------------------------------------- any change fails


def test_flipping_any_byte_fails(scenario: Scenario) -> None:
    bundle = scenario.bundle
    rng = random.Random(f"evidence-{scenario.chain.suite.name}")
    positions = sorted(set(range(0, len(bundle), max(1, len(bundle) // 150)))
                       | set(rng.sample(range(len(bundle)), 60)) | {0, len(bundle) - 1})
    for position in positions:
        for mask in (0x01, 0x80):
            changed = bytearray(bundle)
            changed[position] ^= mask
            _fails(bytes(changed), scenario)
    _fails(bundle[:-1], scenario, "bundle")
    _fails(bundle + b"\x00", scenario, "bundle")


def _mutations(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every one-field change of a decoded record tree: (where, the changed tree)."""
    if isinstance(value, Record):
        for name in value.__struct_fields__:
            for where, changed in _mutations(getattr(value, name), f"{path}.{name}"):
                yield where, msgspec.structs.replace(value, **{name: changed})
    elif isinstance(value, tuple):
        if value:
            yield f"{path}[-1] dropped", value[:-1]
            yield f"{path}[0] repeated", (value[0], *value)
        for i, item in enumerate(value):
            for where, changed in _mutations(item, f"{path}[{i}]"):
                yield where, (*value[:i], changed, *value[i + 1:])
    elif isinstance(value, bool):
        yield path, not value
    elif isinstance(value, int):
        yield path, value + 1
        if value > 0:
            yield f"{path}-1", value - 1
    elif isinstance(value, str):
        yield path, value + "x"
    elif isinstance(value, bytes):
        yield path, (bytes([value[0] ^ 1]) + value[1:]) if value else b"\x00"
    elif value is None:
        return
    else:
        raise AssertionError(f"no mutation for {type(value).__name__} at {path}")


def test_changing_any_part_fails(scenario: Scenario) -> None:
    """Every field of every record in the bundle, changed alone (re-encoded canonically, so only
    the meaning changes), makes verification fail; the commit records inside are opened too."""
    bundle = decode(scenario.bundle, EvidenceBundle)
    original = verify_bundle(scenario.bundle, scenario.chain.genesis)
    count = 0
    for where, changed in _mutations(bundle, "bundle"):
        count += 1
        try:
            verified = verify_bundle(encode(changed), scenario.chain.genesis)
        except EvidenceInvalid:
            continue
        # only leaving an attachment out still verifies: it proves less
        assert where.endswith("dropped") and verified != original, f"changing {where} still verifies"
    for i, certified in enumerate(bundle.headers):
        record = decode(certified.commit, CommitRecord)
        for where, changed_record in _mutations(record, f"headers[{i}].commit"):
            count += 1
            headers = list(bundle.headers)
            headers[i] = CertifiedHeader(certified.header, encode(changed_record))
            try:
                verified = verify_bundle(encode(msgspec.structs.replace(bundle, headers=tuple(headers))),
                                         scenario.chain.genesis)
            except EvidenceInvalid as exc:
                assert exc.where.startswith(f"headers[{i}]"), (where, str(exc))
                continue
            # a certificate with one precommit less (still above 2/3) proves the same block
            assert where.endswith("signatures[-1] dropped") and verified != original, where
    assert count > 300


# ---------------------------------------------------------------- the failures the auditor must see


def test_a_header_certified_by_the_wrong_validator_set_fails(scenario: Scenario) -> None:
    chain = scenario.chain
    bundle = decode(scenario.bundle, EvidenceBundle)
    # certified by strangers (keys of another consortium), consistent in itself
    first = bundle.headers[0]
    block = chain.ledger.get_block(first.header.height)
    assert block is not None
    validators = chain.ledger.validators_at(block.header.height)
    stranger_keys = [chain.suite.generate_private_key() for _ in validators]
    strangers = tuple(msgspec.structs.replace(v, public_key=key.public_key().to_der())
                      for v, key in zip(validators, stranger_keys, strict=True))
    record = commit_record_for(chain.suite, block, strangers, {key.public_key().to_der(): key for key in stranger_keys})
    forged = msgspec.structs.replace(bundle, headers=(CertifiedHeader(first.header, record), *bundle.headers[1:]))
    assert "validators in force" in _fails(encode(forged), scenario, "headers[0]").reason
    # certified by too few of the right validators (2 of 4)
    thin = commit_record_for(chain.suite, block, validators, chain.keys, signers=[0, 1])
    short = msgspec.structs.replace(bundle, headers=(CertifiedHeader(first.header, thin), *bundle.headers[1:]))
    assert "above 2/3" in _fails(encode(short), scenario, "headers[0]").reason
    # a history that misses the removal: the last header names a set the auditor does not derive
    missing = scenario.make(changes=scenario.changes()[:1])
    assert _fails(missing, scenario, "headers[").where.endswith(f"(block {scenario.tx(scenario.after).height})")
    # the changes out of order
    _fails(scenario.make(changes=scenario.changes()[::-1]), scenario, "headers[", "validator_changes[0]")


def test_a_transaction_not_in_the_claimed_block_fails(scenario: Scenario) -> None:
    before, after = scenario.tx(scenario.before), scenario.tx(scenario.after)
    moved = msgspec.structs.replace(before, height=after.height, proof=msgspec.structs.replace(
        before.proof, height=after.height))
    error = _fails(scenario.make(txs=[moved, scenario.tx(scenario.anchor)]), scenario, "txs[0]")
    assert f"not in block {after.height}" in error.reason
    swapped = msgspec.structs.replace(before, tx=after.tx, receipt=after.receipt)
    assert "not in block 1" in _fails(scenario.make(txs=[swapped, scenario.tx(scenario.anchor)]), scenario,
                                      "txs[0]").reason
    # a transaction the chain never committed, with some other transaction's proof
    stranger = scenario.chain.sign(scenario.chain.identity(scenario.chain.orgs[0]), "kv", "put", {"key": "x", "value": 1})
    invented = msgspec.structs.replace(before, tx=stranger.raw, receipt=msgspec.structs.replace(
        before.receipt, tx_id=bytes.fromhex(stranger.tx_id)))
    _fails(scenario.make(txs=[invented, scenario.tx(scenario.anchor)]), scenario, "txs[0]")


def test_an_attachment_whose_proof_does_not_reach_the_anchored_root_fails(scenario: Scenario) -> None:
    suite = scenario.chain.suite
    good = make_attachments(suite, DOCUMENTS, 1, "batch", [2])[0]
    assert verify_bundle(scenario.make(attachments=[good]), scenario.chain.genesis).attachments[0].document == DOCUMENTS[2]
    cases = {
        "another document": msgspec.structs.replace(good, document=b"signed receipt #2: 999 kWh delivered"),
        "another batch": make_attachments(suite, [*DOCUMENTS, b"one more"], 1, "batch", [2])[0],
        "another position": msgspec.structs.replace(good, index=3),
        "another argument": msgspec.structs.replace(good, argument="key"),
        "a missing argument": msgspec.structs.replace(good, argument="nothing"),
        "another transaction": msgspec.structs.replace(good, tx=0),
        "no such transaction": msgspec.structs.replace(good, tx=7),
        "a longer path": msgspec.structs.replace(good, path=(*good.path, good.path[0])),
    }
    for what, attachment in cases.items():
        error = _fails(scenario.make(attachments=[attachment]), scenario, "attachments[0]")
        assert error.reason, what


def test_another_genesis_and_bounds_are_refused(scenario: Scenario, tmp_path: Path) -> None:
    chain = scenario.chain
    other = msgspec.structs.replace(chain.genesis, genesis_time_ms=chain.genesis.genesis_time_ms + 1)
    with pytest.raises(EvidenceInvalid, match="genesis hash"):
        verify_bundle(scenario.bundle, other)
    with pytest.raises(EvidenceInvalid, match="limit"):
        verify_bundle(b"\x00" * (evidence.BUNDLE_BYTES_MAX + 1), chain.genesis)
    bundle = decode(scenario.bundle, EvidenceBundle)
    crowded = msgspec.structs.replace(bundle, txs=bundle.txs[:1] * (evidence.TXS_MAX + 1))
    assert _fails(encode(crowded), scenario, "txs").reason.endswith(f"limit {evidence.TXS_MAX}")
    twice = scenario.make(txs=[scenario.tx(scenario.before)] * 2, attachments=[])
    assert "twice" in _fails(twice, scenario, "txs[1]").reason
    unused = scenario.make(txs=[scenario.tx(scenario.after)], attachments=[])
    assert verify_bundle(unused, chain.genesis).txs[0].tx_id.hex() == scenario.after.tx_id
    extra = decode(unused, EvidenceBundle)
    spare = make_bundle(bundle.genesis_hash, chain.certified_headers(), [scenario.tx(scenario.before)])
    padded = msgspec.structs.replace(extra, headers=tuple(sorted(
        (*extra.headers, *decode(spare, EvidenceBundle).headers), key=lambda h: h.header.height)))
    assert "no transaction of the bundle" in _fails(encode(padded), scenario, "headers[").reason
    same = msgspec.structs.replace(decode(scenario.bundle, EvidenceBundle).validator_changes[0],
                                   execution=decode(scenario.bundle, EvidenceBundle).validator_changes[0].proposal)
    assert "leave execution empty" in _fails(scenario.make(changes=[same, scenario.changes()[1]]), scenario,
                                             "validator_changes[0]").reason


def test_a_proposal_that_executed_at_once_needs_no_separate_execution(tmp_path: Path) -> None:
    """With an ANY policy the proposing transaction executes the change itself."""
    chain = CertifyingChain.create(tmp_path)
    try:
        admins = [chain.identity(org, "admin") for org in chain.orgs]
        policy = chain.sign(admins[0], "gov", "propose", {"kind": "set_policy", "payload": {
            "kind": "add_validator", "policy": {"rule": "ANY"}}})
        chain.run(policy)
        proposal_id = decode(chain.ledger.get_block(chain.ledger.height).receipts[0].result, dict[str, Any])["id"]  # type: ignore[union-attr]
        for admin in admins[1:]:
            chain.run(chain.sign(admin, "gov", "approve", {"id": proposal_id}))
        key = chain.new_validator_key()
        at_once = chain.sign(admins[1], "gov", "propose", {"kind": "add_validator", "payload": {
            "name": "quick-v1", "org": chain.orgs[1], "public_key": key, "power": 2}})
        chain.run(at_once)
        for i in range(3):
            chain.run(chain.sign(chain.identity(chain.orgs[0]), "kv", "put", {"key": f"k{i}", "value": i}))
        last = chain.sign(chain.identity(chain.orgs[0]), "kv", "put", {"key": "last", "value": 1})
        chain.run(last)
        change = chain.change(at_once, None)
        bundle = make_bundle(genesis_hash(chain.suite, chain.genesis), chain.certified_headers(),
                             [chain.tx_evidence(bytes.fromhex(last.tx_id))], [change])
        verified = verify_bundle(bundle, chain.genesis)
        assert verified.validator_changes[0].execution_tx_id.hex() == at_once.tx_id
        assert verified.validator_changes[0].validators[-1].power == 2
        assert "quick-v1" in verified.headers[-1].signers
    finally:
        chain.close()

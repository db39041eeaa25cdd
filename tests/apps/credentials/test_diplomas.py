"""Scenario S3's "must hold" lines on a certified chain, both suites: a class of 500 in one anchoring
transaction; a revoked diploma fails and the other 499 pass; a changed byte of any diploma or
presentation fails; an unregistered issuer or key, a key not valid when the batch was anchored,
fail; rotation keeps old diplomas valid; snapshots are refused when tampered with or made for
another chain; suspension is reversible."""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
import pytest

from pilotchain.apps.credentials.chain import (
    ChainRefused,
    anchor_batch,
    contract_code,
    export_snapshot,
    retire_key,
)
from pilotchain.apps.credentials.diploma import (
    IssuedBatch,
    Presentation,
    base45_decode,
    base45_encode,
    disclosure_names,
    issue_batch,
)
from pilotchain.apps.credentials.sdjwt import select_disclosures
from pilotchain.apps.credentials.snapshot import (
    CONTRACT,
    Snapshot,
    SnapshotInvalid,
    StateEntry,
    verify_snapshot,
)
from pilotchain.apps.credentials.statuslist import STATUS_INVALID, STATUS_SUSPENDED, STATUS_VALID
from pilotchain.apps.credentials.verify import CHECKS, Report, verify_presentation
from pilotchain.codec import decode, encode
from pilotchain.ledger.evidence import EvidenceBundle
from pilotchain.network.consortium import init_network, load_genesis, parse_orgs
from tests.apps.credentials.helpers import ISS, World, now_ms, roll, world
from tests.contracts.helpers import pass_proposal

CLASS = 500


@dataclass
class Issued:
    world: World
    batch: IssuedBatch


@pytest.fixture(scope="module", params=["intl", "gm"])
def issued(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issued]:
    with world(tmp_path_factory.mktemp(f"diplomas-{request.param}"), suite=request.param) as w:
        with w.client(w.registrar) as client:
            batch = w.home.issue(client, w.registrar, roll(CLASS), batch_id="class-of-2026")
        yield Issued(w, batch)


def _failed(report: Report) -> dict[str, str]:
    return {check.name: check.detail for check in report.checks if not check.ok}


def _shown(presentation: Presentation, *claims: str) -> Presentation:
    names = disclosure_names(list(claims) or ["name", "degree", "year"])
    return replace(presentation, sd_jwt=select_disclosures(presentation.sd_jwt, names))


def test_a_class_is_one_transaction_and_a_revoked_diploma_fails_while_499_pass(issued: Issued) -> None:
    w, batch = issued.world, issued.batch
    with w.client() as client:
        record = client.query(CONTRACT, "batch", {"batch_id": "class-of-2026"})
        issuer = client.query(CONTRACT, "issuer", {"iss": ISS})
        tx = client.get_tx(record["tx"].hex())
    assert record["size"] == CLASS and record["root"] == batch.tree_head["root"] and issuer["batches"] == 1
    assert tx.committed and (tx.contract, tx.method) == (CONTRACT, "anchor")
    indices = [d.status_index for d in batch.diplomas]
    assert len(set(indices)) == CLASS and indices != sorted(indices)  # random, not in roll order

    before = w.snapshot()
    now = now_ms()
    reports = [verify_presentation(_shown(d.presentation), before, now_ms=now) for d in batch.diplomas]
    assert all(r.ok for r in reports), _failed(next(r for r in reports if not r.ok))
    first = reports[0]
    assert [c.name for c in first.checks] == list(CHECKS)
    assert set(first.disclosed) == {"given_name", "family_name", "degree", "graduation_year"} and first.hidden == 4

    victim = batch.diplomas[123]
    with w.client(w.registrar) as client:
        height = w.home.set_status(client, w.registrar, [w.home.find(student_id=victim.student_id)], STATUS_INVALID)
    after = w.snapshot()
    results = {d.student_id: verify_presentation(d.presentation, after, now_ms=now_ms()) for d in batch.diplomas}
    failing = {sid: _failed(r) for sid, r in results.items() if not r.ok}
    assert list(failing) == [victim.student_id]
    assert list(failing[victim.student_id]) == ["status"]
    assert f"REVOKED in status list {batch.list_id} (entry {victim.status_index}) as of block {height}" in \
        failing[victim.student_id]["status"]
    # the snapshot taken before the revocation still says VALID: status is as fresh as the snapshot
    assert verify_presentation(victim.presentation, before, now_ms=now_ms()).ok


def test_one_changed_byte_of_a_presentation_or_diploma_fails(issued: Issued) -> None:
    w, batch = issued.world, issued.batch
    snapshot = w.snapshot()
    diploma = batch.diplomas[5].presentation
    for document in (_shown(diploma).to_json(), diploma.to_json()):
        assert verify_presentation(document, snapshot, now_ms=now_ms()).ok
        raw = document.encode()
        for position in range(len(raw)):
            for flip in (0x01, 0x20):
                changed = bytearray(raw)
                changed[position] ^= flip
                try:
                    text = changed.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                report = verify_presentation(text, snapshot, now_ms=now_ms())
                assert not report.ok, f"byte {position} ^ {flip:#x} still verifies: {text[max(0, position - 20):position + 20]}"
    qr_text = _shown(diploma).to_qr_text()
    assert verify_presentation(qr_text, snapshot, now_ms=now_ms()).ok
    # DEFLATE is not canonical: a changed character can turn a back-reference into another that
    # copies the same bytes, so a different QR text may carry the very same credential (rare: 1 of
    # 900,000 changes over a class of 500 in a trial). What must hold: a QR text verifies only when
    # it decodes to exactly the credential issued.
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
    refused = 0
    for position in range(len("PC1:"), len(qr_text)):
        other = alphabet[(alphabet.index(qr_text[position]) + 1) % len(alphabet)]
        changed_qr = qr_text[:position] + other + qr_text[position + 1:]
        if verify_presentation(changed_qr, snapshot, now_ms=now_ms()).ok:
            assert Presentation.from_qr_text(changed_qr) == _shown(diploma), position
        else:
            refused += 1
    assert refused >= len(qr_text) - len("PC1:") - 2
    # the same credential compressed another way (another level, as another zlib might) verifies alike
    inflated = zlib.decompress(base45_decode(qr_text[len("PC1:"):]))
    elsewise = "PC1:" + base45_encode(zlib.compress(inflated, 1))
    assert elsewise != qr_text and verify_presentation(elsewise, snapshot, now_ms=now_ms()).ok


def test_a_disclosure_from_another_diploma_is_refused(issued: Issued) -> None:
    w, batch = issued.world, issued.batch
    snapshot = w.snapshot()
    mine, theirs = batch.diplomas[1].presentation, batch.diplomas[2].presentation
    jwt = mine.sd_jwt.split("~")[0]
    borrowed = theirs.sd_jwt.split("~")[1:]
    report = verify_presentation(replace(mine, sd_jwt="~".join([jwt, *borrowed])), snapshot, now_ms=now_ms())
    assert list(_failed(report)) == ["disclosures"]
    wrong_place = replace(mine, anchor=theirs.anchor)
    assert list(_failed(verify_presentation(wrong_place, snapshot, now_ms=now_ms()))) == ["batch", "issuer key"]


def test_unregistered_issuer_or_key_and_keys_outside_their_validity_fail(issued: Issued) -> None:
    w, batch = issued.world, issued.batch
    algorithm = w.home.algorithm
    rogue_key = algorithm.suite.generate_private_key()

    def forged(iss: str, kid: str, *, issued_at_s: int | None = None, key: object = rogue_key) -> Presentation:
        forged_batch = issue_batch(roll(2), algorithm=algorithm, key=key, iss=iss, kid=kid,  # type: ignore[arg-type]
                                   batch_id="class-of-2026", genesis_hash=w.home.genesis_hash,
                                   list_id=batch.list_id, status_indices=[1, 2],
                                   issued_at_s=issued_at_s or now_ms() // 1000, rng=random.Random(9))
        return forged_batch.diplomas[0].presentation

    snapshot = w.snapshot(issuers=[ISS], keys=[(ISS, "k-rogue")])
    unknown_key = verify_presentation(forged(ISS, "k-rogue"), snapshot, now_ms=now_ms())
    assert "proven absent" in _failed(unknown_key)["signature"]
    signed_by_other_key = verify_presentation(forged(ISS, "k1"), snapshot, now_ms=now_ms())
    assert {"signature", "batch"} <= set(_failed(signed_by_other_key))
    unknown_issuer = verify_presentation(forged("https://diploma-mill.example", "k1"), snapshot, now_ms=now_ms())
    assert "not in this snapshot" in _failed(unknown_issuer)["issuer"]
    with w.client() as client:
        absent = verify_snapshot(export_snapshot(client, issuers=["https://diploma-mill.example"], batches=["class-of-2026"],
                                                 genesis=w.chain.genesis), w.chain.genesis, contract_code=contract_code())
    assert "proven absent" in _failed(verify_presentation(forged("https://diploma-mill.example", "k1"), absent,
                                                          now_ms=now_ms()))["issuer"]

    # the real key and an anchored batch, but iat outside the key's validity: refused all the same
    backdated = issue_batch(roll(2), algorithm=algorithm, key=w.home.private_key("k1"), iss=ISS, kid="k1",
                            batch_id="backdated", genesis_hash=w.home.genesis_hash, list_id=batch.list_id,
                            status_indices=[3, 4], issued_at_s=1_000_000_000, rng=random.Random(9))
    with w.client(w.registrar) as client:
        anchor_batch(client, w.registrar, backdated.anchor_args())
    failed = _failed(verify_presentation(backdated.diplomas[0].presentation, w.snapshot(), now_ms=now_ms()))
    assert list(failed) == ["issuer key"] and "iat 1000000000 is outside" in failed["issuer key"]


def test_a_key_retired_before_the_anchoring_invalidates_its_batch_and_rotation_keeps_old_ones(tmp_path: Path) -> None:
    with world(tmp_path) as w, w.client(w.registrar) as client, w.client(w.admin) as admin:
        first = w.home.issue(client, w.registrar, roll(4), batch_id="b-2025")
        new, old = w.home.rotate(admin, w.admin, now_ms=now_ms())
        assert (new, old) == ("k2", "k1")
        second = w.home.issue(client, w.registrar, roll(4), batch_id="b-2026")
        snapshot = w.snapshot()
        for diploma in (*first.diplomas, *second.diplomas):
            assert verify_presentation(diploma.presentation, snapshot, now_ms=now_ms()).ok
        # k1 can no longer anchor: the chain refuses a batch signed with a retired key
        w.home.config["keys"][0]["not_after_ms"] = now_ms() + 86_400_000  # the issuer's home disagrees; the chain decides
        w.home.config["keys"] = w.home.config["keys"][:1]
        with pytest.raises(ChainRefused, match="no longer valid"):
            w.home.issue(client, w.registrar, roll(2), batch_id="b-late")
        # k2 found compromised since before b-2026 was anchored: that batch stops verifying, b-2025 stays
        anchored_ms = snapshot.batches["b-2026"].timestamp_ms
        retire_key(admin, w.admin, ISS, "k2", anchored_ms - 1)
        after = w.snapshot()
        assert all(verify_presentation(d.presentation, after, now_ms=now_ms()).ok for d in first.diplomas)
        failed = _failed(verify_presentation(second.diplomas[0].presentation, after, now_ms=now_ms()))
        assert list(failed) == ["issuer key"] and "was not valid when the batch was anchored" in failed["issuer key"]


def test_suspension_is_reversible(tmp_path: Path) -> None:
    with world(tmp_path, suite="gm") as w, w.client(w.registrar) as client:
        batch = w.home.issue(client, w.registrar, roll(3), batch_id="b")
        record = w.home.find(student_id=batch.diplomas[0].student_id)
        w.home.set_status(client, w.registrar, [record], STATUS_SUSPENDED)
        assert "SUSPENDED" in _failed(verify_presentation(batch.diplomas[0].presentation, w.snapshot(),
                                                          now_ms=now_ms()))["status"]
        w.home.set_status(client, w.registrar, [record], STATUS_VALID)
        assert verify_presentation(batch.diplomas[0].presentation, w.snapshot(), now_ms=now_ms()).ok


def test_tampered_or_foreign_snapshots_are_refused(issued: Issued, tmp_path: Path) -> None:
    w, batch = issued.world, issued.batch
    with w.client(w.registrar) as client:
        w.home.set_status(client, w.registrar, [w.home.find(student_id=batch.diplomas[200].student_id)], STATUS_INVALID)
    data = w.snapshot_bytes()
    genesis, code = w.chain.genesis, contract_code()
    verify_snapshot(data, genesis, contract_code=code)
    rng = random.Random(11)
    for position in rng.sample(range(len(data)), 400):
        changed = bytearray(data)
        changed[position] ^= 1 << rng.randrange(8)
        with pytest.raises(SnapshotInvalid):
            verify_snapshot(bytes(changed), genesis, contract_code=code)

    snapshot = decode(data, Snapshot)
    lists = [i for i, e in enumerate(snapshot.entries) if e.key.startswith(b"m/lists\x00")]
    cleared = list(snapshot.entries)
    entry = cleared[lists[0]]
    record = decode(entry.value or b"", dict)
    cleared[lists[0]] = StateEntry(contract=entry.contract, key=entry.key, height=entry.height,
                                   value=encode({**record, "lst": bytes(len(record["lst"]))}), proof=entry.proof)
    with pytest.raises(SnapshotInvalid, match="state proof does not reach"):  # hiding a revocation
        verify_snapshot(encode(msgspec.structs.replace(snapshot, entries=tuple(cleared))), genesis, contract_code=code)
    without_code = tuple(e for e in snapshot.entries if e.contract != "gov")
    with pytest.raises(SnapshotInvalid, match="which code runs"):
        verify_snapshot(encode(msgspec.structs.replace(snapshot, entries=without_code)), genesis,
                        contract_code=code)
    unknown_code = verify_snapshot(data, genesis, contract_code=code + b"\n# another version\n")
    report = verify_presentation(batch.diplomas[0].presentation, unknown_code, now_ms=now_ms())
    assert "runs code this verifier does not know" in _failed(report)["chain"]

    other = tmp_path / "other"
    init_network(other, suite_name=w.home.config["suite"], orgs=parse_orgs("3"), validators=1, now_ms=now_ms())
    with pytest.raises(SnapshotInvalid, match="genesis hash"):
        verify_snapshot(data, load_genesis(other / "genesis.json"), contract_code=code)
    old = verify_presentation(batch.diplomas[0].presentation, verify_snapshot(data, genesis, contract_code=code),
                              now_ms=now_ms() + 8 * 86_400_000)
    assert list(_failed(old)) == ["freshness"]


def test_a_snapshot_of_one_batch_and_one_presentation_verifies(issued: Issued) -> None:
    w, batch = issued.world, issued.batch
    small = w.snapshot(batches=["class-of-2026"])
    assert set(small.batches) == {"class-of-2026"} and set(small.issuers) == {ISS}
    assert verify_presentation(batch.diplomas[9].presentation, small, now_ms=now_ms()).ok
    document = json.loads(batch.diplomas[9].presentation.to_json())
    document["anchor"]["batch"] = "class-of-1999"
    assert "not anchored in this snapshot" in _failed(verify_presentation(json.dumps(document), small,
                                                                          now_ms=now_ms()))["batch"]


def test_snapshots_follow_validator_changes_and_fail_without_them(tmp_path: Path) -> None:
    """Governance adds a validator and removes the genesis one after the batch: the snapshot's
    status list is certified by the new set, which only the replayed changes justify."""
    with world(tmp_path, suite="gm") as w, w.client(w.registrar) as client:
        batch = w.home.issue(client, w.registrar, roll(6), batch_id="b")
        newcomer = w.home.suite.generate_private_key()
        w.keys[newcomer.public_key().to_der()] = newcomer
        orgs = list(w.chain.consortium.admins)
        for kind, payload in (("add_validator", {"name": "newcomer-v1", "org": orgs[1],
                                                 "public_key": newcomer.public_key().to_der()}),
                              ("remove_validator", {"name": w.chain.consortium.validator})):
            pass_proposal(w.chain, kind, payload)
        for _ in range(3):  # the removal takes effect two blocks after its approval
            w.home.set_status(client, w.registrar, [w.home.find(student_id=batch.diplomas[5].student_id)],
                              STATUS_SUSPENDED)
        w.home.set_status(client, w.registrar, [w.home.find(student_id=batch.diplomas[0].student_id)], STATUS_INVALID)
        data = w.snapshot_bytes()
        verified = verify_snapshot(data, w.chain.genesis, contract_code=contract_code())
        assert verified.validator_changes == 2
        assert "REVOKED" in _failed(verify_presentation(batch.diplomas[0].presentation, verified, now_ms=now_ms()))["status"]
        assert verify_presentation(batch.diplomas[1].presentation, verified, now_ms=now_ms()).ok
        snapshot = decode(data, Snapshot)
        bundle = decode(snapshot.evidence, EvidenceBundle)
        for kept in ((), bundle.validator_changes[:1]):
            headers = tuple(h for h in bundle.headers if h.header.height in {t.height for t in bundle.txs} | {
                x.height for c in kept for x in (c.proposal, c.execution) if x is not None})
            partial = msgspec.structs.replace(bundle, validator_changes=kept, headers=headers)
            with pytest.raises(SnapshotInvalid, match="not certified by the validators in force"):
                verify_snapshot(encode(msgspec.structs.replace(snapshot, evidence=encode(partial))), w.chain.genesis,
                                contract_code=contract_code())


def test_an_interrupted_issue_resumes_with_the_same_diplomas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signed batch is kept before its anchoring is sent: lost before reaching the chain, or
    committed with the answer lost, issuing the same batch id again finishes it without signing
    anything twice; the diplomas handed out are the ones anchored."""
    from pilotchain.apps.credentials import chain as chain_calls
    from pilotchain.apps.credentials.issuer import IssuerError

    real_anchor = chain_calls.anchor_batch
    with world(tmp_path) as w, w.client(w.registrar) as client:
        for batch_id, reaches_chain in (("lost-before", False), ("lost-after", True)):
            def failing(client_: object, member: object, args: dict[str, object], *, reach: bool = reaches_chain) -> None:
                if reach:
                    real_anchor(client_, member, args)  # type: ignore[arg-type]
                raise TimeoutError("the node did not answer")

            monkeypatch.setattr(chain_calls, "anchor_batch", failing)
            with pytest.raises(TimeoutError):
                w.home.issue(client, w.registrar, roll(5), batch_id=batch_id)
            monkeypatch.setattr(chain_calls, "anchor_batch", real_anchor)
            with pytest.raises(IssuerError, match="signed for 5 graduates, not 4"):
                w.home.issue(client, w.registrar, roll(4), batch_id=batch_id)
            batch = w.home.issue(client, w.registrar, roll(5), batch_id=batch_id)
            assert client.query(CONTRACT, "batch", {"batch_id": batch_id})["root"] == batch.tree_head["root"]
            snapshot = w.snapshot()
            assert all(verify_presentation(d.presentation, snapshot, now_ms=now_ms()).ok for d in batch.diplomas)
            with pytest.raises(IssuerError, match="already issued"):
                w.home.issue(client, w.registrar, roll(5), batch_id=batch_id)
        assert len(w.home.issued()) == 10

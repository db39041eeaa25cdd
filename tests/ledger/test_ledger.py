"""The ledger end to end: build, verify, commit, read back with proofs, reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotchain.codec import decode, encode
from pilotchain.contracts.kv import KvContract
from pilotchain.crypto import get_suite
from pilotchain.ledger.block import Block, block_hash, verify_tx_proof
from pilotchain.ledger.execution import ContractRegistry
from pilotchain.ledger.genesis import Genesis, ValidatorInfo
from pilotchain.ledger.tx import RejectCode, TxRejected, decode_args
from pilotchain.node.chain import BlockInvalid, Ledger
from pilotchain.storage import verify_state_proof

from .helpers import FakeAuthenticator, make_certificate, make_tx

T0 = 1_000_000


def registry() -> ContractRegistry:
    reg = ContractRegistry()
    reg.register(KvContract())
    return reg


def genesis_for(suite_name: str) -> Genesis:
    suite = get_suite(suite_name)
    validators = tuple(
        ValidatorInfo(name=f"v{i}", org="bureau", public_key=suite.private_key_from_seed(bytes([i]) * 32).public_key().to_der())
        for i in range(4)
    )
    return Genesis(chain_id="test-chain", suite=suite_name, genesis_time_ms=T0, organizations=(), validators=validators)


@pytest.fixture(params=["intl", "gm"])
def setup(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    suite = get_suite(request.param)
    genesis = genesis_for(request.param)
    ledger = Ledger.open(tmp_path / "ledger", genesis, FakeAuthenticator(suite), registry())
    alice = suite.private_key_from_seed(b"alice" * 8)
    bob = suite.private_key_from_seed(b"bob" * 11)
    users = {
        "alice": (alice, make_certificate(alice, "alice", "bank-a")),
        "bob": (bob, make_certificate(bob, "bob", "hospital")),
    }
    yield suite, genesis, ledger, users, tmp_path
    ledger.close()


def test_genesis_block(setup) -> None:  # type: ignore[no-untyped-def]
    suite, genesis, ledger, _, _ = setup
    assert ledger.height == 0
    head = ledger.head()
    assert head.height == 0 and head.timestamp_ms == T0
    assert ledger.head_hash == block_hash(suite, head)


def test_blocks_commit_and_read_back_with_proofs(setup) -> None:  # type: ignore[no-untyped-def]
    suite, genesis, ledger, users, _ = setup
    alice_key, alice_cert = users["alice"]
    bob_key, bob_cert = users["bob"]
    txs = [
        make_tx(suite, alice_key, alice_cert, args={"key": "rate", "value": 425}, nonce=b"1"),
        make_tx(suite, bob_key, bob_cert, args={"key": "rate", "value": 1}, nonce=b"2"),  # not owner
        make_tx(suite, bob_key, bob_cert, args={"key": "beds", "value": 90}, nonce=b"3"),
    ]
    block = ledger.build_block(txs, proposer="v0", timestamp_ms=T0 + 10)
    assert [r.status for r in block.receipts] == ["OK", "PERMISSION_DENIED", "OK"]
    ledger.commit_block(block, certificate=b"cert-bytes")
    assert ledger.height == 1
    assert ledger.store.get_certificate(1) == b"cert-bytes"

    for index, raw in enumerate(txs):
        tx_id = block.receipts[index].tx_id
        record = ledger.get_transaction(tx_id)
        assert record is not None and record.tx_raw == raw
        assert verify_tx_proof(suite, ledger.head(), record.tx_raw, record.receipt, record.proof)
        # the proof does not vouch for another receipt
        other = block.receipts[(index + 1) % 3]
        assert not verify_tx_proof(suite, ledger.head(), record.tx_raw, other, record.proof)

    value, proof = ledger.read_state("kv", b"v/rate")
    assert value is not None and decode(value, tuple[str, int]) == ("bank-a", 425)
    assert verify_state_proof(ledger.head().state_root, b"kv\x00v/rate", value, proof, suite.hash)
    assert not verify_state_proof(ledger.head().state_root, b"kv\x00v/rate", encode(("bank-a", 1)), proof, suite.hash)
    absent, absent_proof = ledger.read_state("kv", b"v/nothing")
    assert absent is None
    assert verify_state_proof(ledger.head().state_root, b"kv\x00v/nothing", None, absent_proof, suite.hash)


def test_replayed_transaction_is_refused_at_every_stage(setup) -> None:  # type: ignore[no-untyped-def]
    suite, _, ledger, users, _ = setup
    key, cert = users["alice"]
    raw = make_tx(suite, key, cert, nonce=b"once")
    ledger.commit_block(ledger.build_block([raw], proposer="v0", timestamp_ms=T0 + 1))
    with pytest.raises(TxRejected) as info:
        ledger.check_tx(raw, T0 + 2)
    assert info.value.code == RejectCode.DUPLICATE
    rejected: list[RejectCode] = []
    block = ledger.build_block([raw, raw], proposer="v0", timestamp_ms=T0 + 2,
                               on_rejected=lambda _raw, exc: rejected.append(exc.code))
    assert block.txs == () and rejected == [RejectCode.DUPLICATE, RejectCode.DUPLICATE]


def test_tampered_blocks_are_invalid_and_change_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    suite, _, ledger, users, _ = setup
    key, cert = users["alice"]
    block = ledger.build_block([make_tx(suite, key, cert)], proposer="v0", timestamp_ms=T0 + 5)
    root_before = ledger.store.state_root
    bad_state = Block(header=_replace(block.header, state_root=bytes(32)), txs=block.txs, receipts=block.receipts)
    bad_parent = Block(header=_replace(block.header, parent_hash=bytes(32)), txs=block.txs, receipts=block.receipts)
    bad_height = Block(header=_replace(block.header, height=5), txs=block.txs, receipts=block.receipts)
    bad_time = Block(header=_replace(block.header, timestamp_ms=T0 - 1), txs=block.txs, receipts=block.receipts)
    bad_body = Block(header=block.header, txs=(), receipts=())
    bad_reserved = Block(header=_replace(block.header, consensus_data=b"x"), txs=block.txs, receipts=block.receipts)
    for bad, reason in [(bad_state, "state_root"), (bad_parent, "parent"), (bad_height, "height"),
                        (bad_time, "timestamp"), (bad_body, "transactions"), (bad_reserved, "consensus_data is reserved")]:
        with pytest.raises(BlockInvalid, match=reason):
            ledger.commit_block(bad)
    assert ledger.height == 0 and ledger.store.state_root == root_before
    ledger.commit_block(block)
    assert ledger.height == 1


def _replace(header, **changes):  # type: ignore[no-untyped-def]
    import msgspec

    return msgspec.structs.replace(header, **changes)


def test_reopen_resumes_at_the_same_height_and_root(setup) -> None:  # type: ignore[no-untyped-def]
    suite, genesis, ledger, users, tmp_path = setup
    key, cert = users["alice"]
    for i in range(3):
        ledger.commit_block(ledger.build_block([make_tx(suite, key, cert, nonce=bytes([i]))], proposer="v0",
                                               timestamp_ms=T0 + 10 + i))
    height, head, root = ledger.height, ledger.head_hash, ledger.store.state_root
    ledger.close()
    reopened = Ledger.open(tmp_path / "ledger", genesis, FakeAuthenticator(suite), registry())
    try:
        assert (reopened.height, reopened.head_hash, reopened.store.state_root) == (height, head, root)
        assert [b.header.height for b in reopened.iter_blocks(0, 10)] == [0, 1, 2, 3]
        other = Genesis(chain_id="other-chain", suite=genesis.suite, genesis_time_ms=T0,
                        organizations=(), validators=genesis.validators)
    finally:
        reopened.close()
    with pytest.raises(BlockInvalid, match="another genesis"):
        Ledger.open(tmp_path / "ledger", other, FakeAuthenticator(suite), registry())


def test_validator_verifies_a_block_built_by_another_node(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suite, genesis, proposer_ledger, users, _ = setup
    key, cert = users["bob"]
    validator = Ledger.open(tmp_path / "validator", genesis, FakeAuthenticator(suite), registry())
    try:
        block = proposer_ledger.build_block([make_tx(suite, key, cert)], proposer="v0", timestamp_ms=T0 + 3)
        wire = encode(block)
        digest = validator.commit_block(decode(wire, Block))
        assert digest == proposer_ledger.commit_block(block)
        assert validator.store.state_root == proposer_ledger.store.state_root
        result = decode_args(block.receipts[0].result) if block.receipts[0].result else None
        assert result is None
    finally:
        validator.close()


def test_query_reads_without_writing(setup) -> None:  # type: ignore[no-untyped-def]
    suite, _, ledger, users, _ = setup
    key, cert = users["alice"]
    ledger.commit_block(ledger.build_block([make_tx(suite, key, cert, args={"key": "q", "value": [1, 2]})],
                                           proposer="v0", timestamp_ms=T0 + 1))
    root = ledger.store.state_root
    assert ledger.query("kv", "get", {"key": "q"}) == [1, 2]
    assert ledger.query("kv", "get", {"key": "missing"}) is None
    with pytest.raises(TxRejected) as info:
        ledger.query("kv", "put", {"key": "q", "value": 3})  # anonymous: no role to write
    assert info.value.code == RejectCode.PERMISSION_DENIED
    with pytest.raises(TxRejected) as info:
        ledger.query("nope", "get", {})
    assert info.value.code == RejectCode.UNKNOWN_CONTRACT
    assert ledger.store.state_root == root


def test_checks_split_around_signature_verification(setup) -> None:  # type: ignore[no-untyped-def]
    """precheck → verify anywhere → finish equals check_txs; a commit in between is caught."""
    suite, _, ledger, users, _ = setup
    key, cert = users["alice"]
    good = make_tx(suite, key, cert, nonce=b"g1", args={"key": "g", "value": 1})
    forged = bytearray(make_tx(suite, key, cert, nonce=b"f1", args={"key": "f", "value": 1}))
    forged[-3] ^= 0x01  # inside the signature: decodes, does not verify
    included = make_tx(suite, key, cert, nonce=b"i1", args={"key": "i", "value": 1})
    raws = [good, bytes(forged), included, b"\x00junk"]
    pending = ledger.precheck_txs(raws, T0 + 1)
    assert len(pending.verify) == 3 and isinstance(pending.results[3], TxRejected)
    with pytest.raises(ValueError, match="verdicts"):
        ledger.finish_checks(pending, [True])
    verdicts = suite.verify_batch(pending.signatures())
    assert verdicts == [True, False, True]
    # meanwhile a block commits one of them (the proposer had it too)
    ledger.commit_block(ledger.build_block([included], proposer="v0", timestamp_ms=T0 + 2))
    results = ledger.finish_checks(pending, verdicts)
    assert not isinstance(results[0], TxRejected)
    assert isinstance(results[1], TxRejected) and results[1].code == RejectCode.BAD_SIGNATURE
    assert isinstance(results[2], TxRejected) and results[2].code == RejectCode.DUPLICATE
    assert isinstance(results[3], TxRejected) and results[3].code == RejectCode.MALFORMED
    # the good one is now known verified: checking it again verifies nothing
    assert ledger.precheck_txs([good], T0 + 3).verify == []
    # the forged one was not remembered as verified
    again = ledger.check_txs([bytes(forged)], T0 + 3)
    assert isinstance(again[0], TxRejected) and again[0].code == RejectCode.BAD_SIGNATURE


def test_a_cached_decode_still_rechecks_time_and_signer(setup) -> None:  # type: ignore[no-untyped-def]
    """The second check of the same bytes skips decoding, not expiry or the signer's standing."""
    suite, _, ledger, users, _ = setup
    key, cert = users["alice"]
    raw = make_tx(suite, key, cert, nonce=b"c1", expires_at_ms=T0 + 100)
    assert ledger.check_tx(raw, T0 + 1).body.nonce == b"c1"
    with pytest.raises(TxRejected) as expired:
        ledger.check_tx(raw, T0 + 101)
    assert expired.value.code == RejectCode.EXPIRED
    ledger.authenticator.revoked.add(cert)
    with pytest.raises(TxRejected) as revoked:
        ledger.check_tx(raw, T0 + 2)
    assert revoked.value.code == RejectCode.SIGNER_REJECTED
    ledger.authenticator.revoked.discard(cert)
    assert ledger.check_tx(raw, T0 + 2).tx_id == ledger.check_txs([raw], T0 + 2)[0].tx_id  # type: ignore[union-attr]


def test_checks_accept_any_bytes_like_wire_form(setup) -> None:  # type: ignore[no-untyped-def]
    suite, _, ledger, users, _ = setup
    key, cert = users["alice"]
    raw = make_tx(suite, key, cert, nonce=b"bytes-like")
    assert ledger.check_tx(bytearray(raw), T0 + 1).raw == raw
    assert ledger.precheck_txs([memoryview(raw)], T0 + 1).verify == []  # verified once, remembered
    forged = bytearray(make_tx(suite, key, cert, nonce=b"bytes-like-2"))
    forged[-3] ^= 0x01
    with pytest.raises(TxRejected) as info:
        ledger.check_tx(forged, T0 + 1)
    assert info.value.code == RejectCode.BAD_SIGNATURE


def test_commit_stores_the_given_canonical_encoding(setup) -> None:  # type: ignore[no-untyped-def]
    suite, _, ledger, users, _ = setup
    key, cert = users["alice"]
    block = ledger.build_block([make_tx(suite, key, cert, nonce=b"enc")], proposer="v0", timestamp_ms=T0 + 1)
    payload = encode(block)
    ledger.commit_block(block, encoded=payload)
    assert ledger.store.get_block(1) == payload and ledger.get_block(1) == block

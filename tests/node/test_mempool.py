"""Mempool: bounds, dedupe, fairness between signers, expiry, remembered refusals."""

from __future__ import annotations

import pytest
from tests.ledger.helpers import FakeAuthenticator, make_certificate, make_tx

from pilotchain.crypto import get_suite
from pilotchain.ledger.tx import RejectCode, TxRejected, check_transaction
from pilotchain.node.mempool import Mempool, MempoolLimits

SUITE = get_suite("intl")
AUTH = FakeAuthenticator(SUITE)
NOW = 1_000_000
KEYS = [SUITE.private_key_from_seed(bytes([i + 1]) * 32) for i in range(3)]
CERTS = [make_certificate(k, f"user{i}", f"org{i}") for i, k in enumerate(KEYS)]


def check(raw: bytes, now_ms: int):  # type: ignore[no-untyped-def]
    return check_transaction(SUITE, raw, chain_id="test-chain", now_ms=now_ms,
                             signer_public_key=lambda cert: AUTH.public_key_of(cert, now_ms))


def tx(signer: int, n: int, expires: int = 2_000_000) -> bytes:
    return make_tx(SUITE, KEYS[signer], CERTS[signer], nonce=n.to_bytes(4, "big"), expires_at_ms=expires)


def test_admits_dedupes_and_remembers_refusals() -> None:
    pool = Mempool()
    admitted = pool.add(tx(0, 1), NOW, check)
    assert admitted.tx_id in pool and len(pool) == 1
    with pytest.raises(TxRejected) as info:
        pool.add(tx(0, 1), NOW, check)
    assert info.value.code == RejectCode.DUPLICATE
    bad = make_tx(SUITE, KEYS[1], CERTS[0], nonce=b"x")  # signed by the wrong key
    with pytest.raises(TxRejected) as info:
        pool.add(bad, NOW, check)
    assert info.value.code == RejectCode.BAD_SIGNATURE and info.value.tx_id is not None
    remembered = pool.rejection(info.value.tx_id)
    assert remembered is not None and remembered.code == RejectCode.BAD_SIGNATURE
    assert len(pool) == 1


def test_take_is_round_robin_between_signers() -> None:
    pool = Mempool()
    for n in range(10):
        pool.add(tx(0, n), NOW, check)  # a busy signer first
    pool.add(tx(1, 100), NOW, check)
    pool.add(tx(2, 200), NOW, check)
    batch = pool.take(count_max=3, bytes_max=10**6)
    signers = {check(raw, NOW).body.signer_certificate for raw in batch}
    assert signers == set(CERTS)
    assert len(pool.take(count_max=100, bytes_max=10**6)) == 12
    first = pool.take(count_max=100, bytes_max=len(batch[0]) * 2)
    assert len(first) == 2


def test_bounds_refuse_newcomers_without_evicting() -> None:
    pool = Mempool(MempoolLimits(txs_max=3, txs_per_signer_max=2))
    pool.add(tx(0, 1), NOW, check)
    pool.add(tx(0, 2), NOW, check)
    with pytest.raises(TxRejected, match="already has 2"):
        pool.add(tx(0, 3), NOW, check)
    pool.add(tx(1, 1), NOW, check)
    with pytest.raises(TxRejected) as info:
        pool.add(tx(2, 1), NOW, check)
    assert info.value.code == RejectCode.MEMPOOL_FULL
    assert len(pool) == 3
    byte_bound = Mempool(MempoolLimits(bytes_max=len(tx(0, 1)) + 10))
    byte_bound.add(tx(0, 1), NOW, check)
    with pytest.raises(TxRejected):
        byte_bound.add(tx(1, 1), NOW, check)


def test_commit_and_expiry_remove_entries() -> None:
    pool = Mempool()
    a = pool.add(tx(0, 1), NOW, check)
    b = pool.add(tx(0, 2, expires=NOW + 10), NOW, check)
    c = pool.add(tx(1, 3), NOW, check)
    assert pool.remove_committed([a.tx_id, b"unknown"]) == 1
    assert pool.prune(NOW + 11) == [b.tx_id]
    assert pool.rejection(b.tx_id).code == RejectCode.EXPIRED  # type: ignore[union-attr]
    assert len(pool) == 1 and c.tx_id in pool and pool.signers() == 1
    assert pool.size_bytes == len(c.raw)

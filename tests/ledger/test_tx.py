"""Transaction envelopes: ids, signatures, bounds and every stateless rejection reason."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotchain.codec import CodecError, decode, encode
from pilotchain.crypto import get_suite
from pilotchain.ledger.tx import (
    RejectCode,
    Transaction,
    TxLimits,
    TxRejected,
    check_transaction,
    decode_args,
    decode_transaction,
    encode_args,
)

from .helpers import FakeAuthenticator, make_certificate, make_tx

SUITE = get_suite("intl")
KEY = SUITE.private_key_from_seed(b"alice" * 8)
CERT = make_certificate(KEY, "alice", "bank-a")
AUTH = FakeAuthenticator(SUITE)
NOW = 1_000_000


def check(raw: bytes, **overrides: object) -> object:
    kwargs: dict[str, object] = {
        "chain_id": "test-chain",
        "now_ms": NOW,
        "signer_public_key": lambda cert: AUTH.public_key_of(cert, NOW),
    }
    kwargs.update(overrides)
    return check_transaction(SUITE, raw, **kwargs)  # type: ignore[arg-type]


def reason(raw: bytes, **overrides: object) -> RejectCode:
    with pytest.raises(TxRejected) as info:
        check(raw, **overrides)
    return info.value.code


def test_valid_transaction_passes_and_id_excludes_signature() -> None:
    raw = make_tx(SUITE, KEY, CERT)
    tx = check(raw)
    resigned = encode(Transaction(body=decode(raw, Transaction).body, signature=KEY.sign(b"other")))
    assert decode_transaction(SUITE, resigned).tx_id == tx.tx_id  # type: ignore[attr-defined]


def test_distinct_nonces_give_distinct_ids() -> None:
    a = decode_transaction(SUITE, make_tx(SUITE, KEY, CERT, nonce=b"1"))
    b = decode_transaction(SUITE, make_tx(SUITE, KEY, CERT, nonce=b"2"))
    assert a.tx_id != b.tx_id


def test_every_rejection_reason() -> None:
    assert reason(make_tx(SUITE, KEY, CERT, chain_id="other-chain")) == RejectCode.WRONG_CHAIN
    assert reason(make_tx(SUITE, KEY, CERT, expires_at_ms=NOW - 1)) == RejectCode.EXPIRED
    assert reason(make_tx(SUITE, KEY, CERT, expires_at_ms=NOW + 10**9)) == RejectCode.EXPIRY_TOO_FAR
    assert reason(make_tx(SUITE, KEY, CERT, contract="Bad-Name")) == RejectCode.BAD_NAME
    assert reason(make_tx(SUITE, KEY, CERT, nonce=b"")) == RejectCode.MALFORMED
    assert reason(make_tx(SUITE, KEY, CERT, nonce=b"x" * 33)) == RejectCode.MALFORMED
    big = make_tx(SUITE, KEY, CERT, args={"key": "k", "value": "v" * 70_000})
    assert reason(big) == RejectCode.TOO_LARGE
    assert reason(make_tx(SUITE, KEY, CERT), limits=TxLimits(args_bytes_max=4)) == RejectCode.TOO_LARGE
    assert reason(b"\x93\x01") == RejectCode.MALFORMED
    other_key = SUITE.private_key_from_seed(b"mallory" * 8)
    forged = make_tx(SUITE, other_key, CERT)  # signed by a key that is not the certificate's
    assert reason(forged) == RejectCode.BAD_SIGNATURE
    expired_cert = make_certificate(KEY, "alice", "bank-a", not_after_ms=NOW - 1)
    assert reason(make_tx(SUITE, KEY, expired_cert)) == RejectCode.SIGNER_REJECTED


def test_rejection_message_says_what_to_do() -> None:
    with pytest.raises(TxRejected, match="sign it again"):
        check(make_tx(SUITE, KEY, CERT, expires_at_ms=NOW - 1))


@settings(max_examples=200)
@given(st.data())
def test_any_single_byte_change_is_refused(data: st.DataObject) -> None:
    raw = bytearray(make_tx(SUITE, KEY, CERT))
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(TxRejected):
        check(bytes(raw))


def test_arguments_refuse_floats_and_round_trip() -> None:
    value = {"amount": 12, "to": ["a", "b"], "memo": b"\x00"}
    assert decode_args(encode_args(value)) == value
    with pytest.raises(CodecError, match="floats"):
        encode_args({"amount": 1.5})


def _body_with_args(args_bytes: bytes) -> bytes:
    from pilotchain.ledger.tx import TxBody, sign_transaction

    body = TxBody(chain_id="test-chain", signer_certificate=CERT, nonce=b"deep", expires_at_ms=NOW + 1000,
                  contract="kv", method="put", args=args_bytes)
    return sign_transaction(SUITE, KEY, body)


@pytest.mark.parametrize("depth", [33, 966, 5_000, 40_000])
def test_arguments_nested_too_deep_are_refused_at_decode_by_every_node(depth: int) -> None:
    """A pure function of the bytes: refused at admission and in a block alike, with its id,
    and never by a RecursionError whose depth would depend on the node's own stack."""
    raw = _body_with_args(b"\x91" * depth + b"\x01")
    with pytest.raises(TxRejected) as info:
        decode_transaction(SUITE, raw)
    assert info.value.code is RejectCode.BAD_ARGUMENTS and "nest deeper than 32" in info.value.message
    assert info.value.tx_id is not None
    assert reason(raw) is RejectCode.BAD_ARGUMENTS
    with pytest.raises(CodecError, match="nest deeper"):
        decode_args(b"\x91" * depth + b"\x01")


def test_arguments_32_levels_deep_are_accepted() -> None:
    raw = _body_with_args(b"\x91" * 32 + b"\x01")
    assert decode_transaction(SUITE, raw).body.args.startswith(b"\x91")
    value = decode_args(b"\x91" * 32 + b"\x01")
    for _ in range(32):
        value = value[0]
    assert value == 1

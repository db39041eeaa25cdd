"""Transactions and signed transactions (``pilotchain.ledger.tx``), as admission checks them."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from fuzz.harness import NOW_MS, accepted, consortium, expect, nesting_depth, round_trips
from pilotchain.codec import CodecError, decode, encode
from pilotchain.ledger.auth import MembershipAuthenticator
from pilotchain.ledger.tx import (
    ARGS_DEPTH_MAX,
    Transaction,
    TxBody,
    TxLimits,
    TxRejected,
    check_transaction,
    decode_args,
    decode_transaction,
    encode_args,
    sign_transaction,
    tx_id_of_body,
)

CONTRACT = """
decode_transaction and check_transaction (the stateless admission checks, with the consortium's
membership naming the signer) accept or raise TxRejected with a message; an accepted transaction
re-encodes to its wire bytes, its id is the hash of its body bytes, its contract and method are
whole lower-case identifiers, and its arguments either decode (re-encoding canonically, nesting at
most ARGS_DEPTH_MAX) or raise CodecError. Input: byte 0 picks the suite (bit 0) and whether the
rest is a whole transaction or a body the harness signs with a member's key (bit 1), so fuzzing
reaches the checks after the signature.
"""

MAX_LEN = 8 * 1024
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_SUITES = ("intl", "gm")


@functools.cache
def _authenticator(suite_name: str) -> MembershipAuthenticator:
    return MembershipAuthenticator(consortium(suite_name).membership())




def one_input(data: bytes) -> None:
    if not data:
        return
    suite_name = _SUITES[data[0] & 1]
    members = consortium(suite_name)
    suite = members.suite
    raw = data[1:]
    if data[0] & 2:  # the rest is a body: sign it as org-a's client
        body = accepted((CodecError,), decode, raw, TxBody)
        if body is None:
            return
        raw = sign_transaction(suite, members.members["org-a-client"].key, body)
    signed = accepted((TxRejected,), decode_transaction, suite, raw)
    if signed is None:
        return
    round_trips(decode(raw, Transaction), raw, Transaction)
    round_trips(signed.body, signed.body_bytes, TxBody)
    expect(signed.tx_id == tx_id_of_body(suite, signed.body_bytes), "the id is not the hash of the body bytes")
    args = accepted((CodecError,), decode_args, signed.body.args)
    if args is not None:
        expect(encode_args(args) == signed.body.args, "arguments decoded from bytes they do not re-encode to")
        expect(nesting_depth(args) <= ARGS_DEPTH_MAX, f"arguments nest {nesting_depth(args)} levels")
    authenticator = _authenticator(suite_name)
    checked = accepted(
        (TxRejected,), check_transaction, suite, raw, chain_id=members.genesis.chain_id, now_ms=NOW_MS,
        signer_public_key=lambda certificate: authenticator.public_key_of(certificate, NOW_MS), limits=TxLimits(),
    )
    if checked is not None:
        for name in (checked.body.contract, checked.body.method):
            expect(_NAME.fullmatch(name) is not None, f"admitted a transaction naming {name!r}")


def seeds() -> Iterator[bytes]:
    for flags, suite_name in enumerate(_SUITES):
        members = consortium(suite_name)
        signer = members.members["org-a-client"]
        for index, (contract, method, args) in enumerate((
            ("kv", "put", {"key": "beds", "value": 120}),
            ("token", "mint", {"to": "bank-client", "amount": 100, "memo": b"\x00" * 8}),
            ("gov", "propose", {"kind": "add_validator", "args": [[[1]], {"a": None}], "ok": True}),
        )):
            body = TxBody(chain_id=members.genesis.chain_id, signer_certificate=signer.certificate,
                          nonce=bytes([index + 1]) * 16, expires_at_ms=NOW_MS + 60_000, contract=contract,
                          method=method, args=encode_args(args))
            yield bytes([flags]) + sign_transaction(members.suite, signer.key, body)
            yield bytes([flags | 2]) + encode(body)

"""Offline currency vouchers (``apps/currency/offline.py``): what a payee's terminal reads from a
payer's device over NFC or a QR code, with no network — the device's voucher and its operator's
device certificate.

Findings F8a-e (fixed; their inputs are kept under fuzz/crashes/voucher/ as regression inputs): see
KNOWN's comment.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from fuzz.harness import NOW_MS, KnownFinding, accepted, consortium
from pilotchain.apps.currency.offline import (
    DeviceCertificate,
    VoucherError,
    check_voucher,
    voucher_from_json,
    voucher_text,
    voucher_to_json,
)

CONTRACT = """
voucher_from_json reads any text or raises VoucherError with a message; check_voucher (with the
network's genesis, so the device certificate is checked too) accepts the voucher or raises
VoucherError — never another exception. Byte 0: bit 0 = the harness is the device: it re-signs
the voucher it read with the device key (so fuzzed fields reach the checks after the signature).
Findings F8a-e were fixed in apps/currency/offline.py (their inputs are kept as regression inputs).
"""

MAX_LEN = 8 * 1024
_OFFLINE = "pilotchain/apps/currency/offline.py"
_STATEMENTS = "pilotchain/apps/currency/statements.py"
#: F8a-e (int() of a non-number field, a non-text or invalid device/payee, a '|' in a field raised
#: ValueError/TypeError/OverflowError/StatementError) are fixed: check_voucher and voucher_text check
#: every field's type first and answer VoucherError; their reproducers stay in fuzz/crashes/voucher/
KNOWN: tuple[KnownFinding, ...] = ()


@functools.cache
def _device() -> tuple[Any, bytes]:
    key = consortium("intl").suite.private_key_from_seed(b"\x07" * 32)
    return key, key.public_key().to_der()


def _check(voucher: dict[str, Any], device_key: bytes, certificate: DeviceCertificate | None) -> None:
    members = consortium("intl")
    accepted((VoucherError,), check_voucher, members.genesis.chain_id, voucher, device_key, "intl",
             certificate=certificate, genesis=members.genesis, known=KNOWN)


def one_input(data: bytes) -> None:
    if not data:
        return
    read = accepted((VoucherError,), voucher_from_json, data[1:].decode("utf-8", "replace"), known=KNOWN)
    if read is None:
        return
    voucher, device_key, certificate = read
    if data[0] & 1:
        key, device_key = _device()
        text = accepted((VoucherError,), voucher_text, consortium("intl").genesis.chain_id, voucher, known=KNOWN)
        if text is None:
            return
        voucher = {**voucher, "signature": key.sign(text.encode())}
    _check(voucher, device_key, certificate)


def seeds() -> Iterator[bytes]:
    from pilotchain.apps.currency.offline import issue_device_certificate
    from pilotchain.crypto import get_suite
    from pilotchain.identity.files import IdentityBundle
    from pilotchain.identity.records import Certificate, decode_record
    from pilotchain.sdk import Identity

    members = consortium("intl")
    operator = members.members["org-a-client"]
    identity = Identity(IdentityBundle(get_suite("intl"), decode_record(operator.certificate, Certificate), operator.key))
    key, device_key = _device()
    certificate = issue_device_certificate(identity, members.genesis.chain_id, {
        "id": "dev-1", "key": device_key, "wallet": "w-alice", "balance": 50_000,
        "from_ms": NOW_MS - 1000, "until_ms": NOW_MS + 86_400_000})
    voucher: dict[str, Any] = {"device": "dev-1", "counter": 1, "payee": "w-shop", "amount": 1200,
                               "time_ms": NOW_MS, "signature": b""}
    voucher["signature"] = key.sign(voucher_text(members.genesis.chain_id, voucher).encode())
    yield b"\x00" + voucher_to_json(voucher, device_key, certificate).encode()
    yield b"\x00" + voucher_to_json(voucher, device_key).encode()
    yield b"\x01" + json.dumps({**json.loads(voucher_to_json(voucher, device_key, certificate)), "amount": 99}).encode()

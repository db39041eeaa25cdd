"""Identity records, armour, membership updates, identity files and keys (``identity/``,
``crypto`` key loading): certificates come from every peer, client and governance proposal."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fuzz.harness import NOW_MS, accepted, consortium, expect, round_trips
from pilotchain.codec import CodecError, encode
from pilotchain.crypto import CryptoError
from pilotchain.identity.armor import armor, dearmor
from pilotchain.identity.errors import IdentityFileError, IdentityRejected, UpdateRejected
from pilotchain.identity.files import (
    decrypt_private_key_pem,
    encrypt_private_key_pem,
    load_identity,
    save_identity,
)
from pilotchain.identity.records import (
    CaRotation,
    Certificate,
    OrgCertificate,
    Revocation,
    decode_record,
)

CONTRACT = """
decode_record and dearmor accept canonical records only (else CodecError with a message), and an
accepted record re-encodes to its bytes and re-armours to text that dearmors to it; Membership
authenticates any certificate bytes or raises IdentityRejected, and applies any org certificate,
revocation or CA rotation or raises UpdateRejected (a refused update leaves the membership's
version unchanged); load_identity reads any file or raises IdentityFileError; decrypt_private_key_pem
reads any text or raises IdentityFileError; a suite loads any public key DER or raises CryptoError,
and verify answers a bool for any key and signature. Byte 0 picks the mode and the suite.
"""

MAX_LEN = 8 * 1024
_SUITES = ("intl", "gm")
_RECORDS = (Certificate, OrgCertificate, Revocation, CaRotation)
_PASSPHRASE = b"fuzz passphrase"
_scratch = Path(tempfile.mkdtemp(prefix="pilotchain-fuzz-identity-"))


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    members = consortium(_SUITES[data[0] & 1])
    mode, raw = (data[0] >> 1) % 6, data[2:]
    type_: Any = _RECORDS[data[1] % len(_RECORDS)]  # one of the four record types
    if mode == 0:
        record = accepted((CodecError,), decode_record, raw, type_)
        if record is not None:
            round_trips(record, raw, type_)
            expect(dearmor(armor(record), type_) == record, "an armoured record does not dearmor to itself")
    elif mode == 1:
        record = accepted((CodecError,), dearmor, raw.decode("utf-8", "replace"), type_)
        if record is not None:
            expect(dearmor(armor(record), type_) == record, "an armoured record does not dearmor to itself")
    elif mode == 2:
        membership = members.membership()
        identity = accepted((IdentityRejected,), membership.authenticate, raw, NOW_MS, required_role=None)
        if identity is not None:
            expect(identity.org_id in ("org-a", "org-b"), f"authenticated a certificate of {identity.org_id!r}")
    elif mode == 3:
        record = accepted((CodecError,), decode_record, raw, type_)
        if record is None:
            return
        membership = members.membership()
        before = membership.version
        try:
            if isinstance(record, OrgCertificate):
                membership.add_org(record)
            elif isinstance(record, Revocation):
                membership.apply_revocation(record)
            elif isinstance(record, CaRotation):
                membership.apply_rotation(record, NOW_MS)
        except UpdateRejected as exc:
            expect(bool(str(exc).strip()), "UpdateRejected without a message")
            expect(membership.version == before, "a refused update changed the membership")
    elif mode == 4:
        path = _scratch / "fuzz.id"
        path.write_bytes(raw)
        os.chmod(path, 0o600)
        accepted((IdentityFileError,), load_identity, path, passphrase=_PASSPHRASE)
        text = raw.decode("utf-8", "replace")
        accepted((IdentityFileError,), decrypt_private_key_pem, text, _PASSPHRASE)
    else:
        suite = members.suite
        split = data[1] % (len(raw) + 1)
        der, signature = raw[:split], raw[split:]
        accepted((CryptoError,), suite.public_key, der)
        verdict = suite.verify(der, b"message", signature)
        expect(isinstance(verdict, bool), "verify answered something other than a bool")


def seeds() -> Iterator[bytes]:
    for suite_bit, suite_name in enumerate(_SUITES):
        members = consortium(suite_name)
        ca = members.authorities[0]
        certificate = members.members["org-a-client"].certificate
        org_certificate = encode(ca.org_certificate)
        revocation = encode(ca.revoke(2, "key lost", now_ms=NOW_MS))
        for type_index, raw in ((0, certificate), (1, org_certificate), (2, revocation)):
            yield bytes([suite_bit | 0 << 1, type_index]) + raw
            yield bytes([suite_bit | 3 << 1, type_index]) + raw
        yield bytes([suite_bit | 1 << 1, 0]) + armor(members.authorities[1].org_certificate).encode()
        yield bytes([suite_bit | 2 << 1, 0]) + certificate
        member = members.members["org-b-admin"]
        path = _scratch / f"seed-{suite_name}.id"
        if path.exists():
            path.unlink()
        from pilotchain.identity.files import IdentityBundle

        bundle = IdentityBundle(members.suite, decode_record(member.certificate, Certificate), member.key)
        save_identity(path, bundle)  # unencrypted: an encrypted one costs 600,000 PBKDF2 rounds per run
        yield bytes([suite_bit | 4 << 1, 0]) + path.read_bytes()
        yield bytes([suite_bit | 4 << 1, 0]) + encrypt_private_key_pem(member.key.to_pem(), _PASSPHRASE, iterations=1000)
        yield bytes([suite_bit | 5 << 1, len(member.public_key_der)]) + member.public_key_der + member.key.sign(b"message")

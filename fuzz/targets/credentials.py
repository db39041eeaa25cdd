"""Verifiable credentials (``apps/credentials/``): a holder's presentation — JSON or the QR
text a verifier scans — and the SD-JWT inside it (RFC 9901)."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from fuzz.harness import accepted, consortium, expect
from pilotchain.apps.credentials.diploma import Anchor, Presentation
from pilotchain.apps.credentials.sdjwt import (
    JwsAlgorithm,
    SdJwtInvalid,
    algorithm_for,
    b64url_encode,
    disclosure_digest,
    issue_sd_jwt,
    parse_sd_jwt,
    serialize,
    verify_sd_jwt,
)

CONTRACT = """
Presentation.from_text reads any text (JSON envelope or "PC1:" QR text) or raises SdJwtInvalid
with a message; an accepted presentation survives to_json/from_text and to_qr_text/from_text
unchanged. parse_sd_jwt and verify_sd_jwt (with the issuer's key) accept or raise SdJwtInvalid,
never another exception. Byte 0: mode 0 = the rest is a presentation's text; mode 1 = the harness
is the issuer: the rest, split at NUL bytes, is the JWT payload's JSON and the disclosures' JSON,
signed with the issuer's key, "@<i>" in the payload standing for the digest of disclosure i — so
fuzzing reaches the disclosure processing behind the signature.
"""

MAX_LEN = 16 * 1024


@functools.cache
def _issuer() -> tuple[JwsAlgorithm, object, bytes]:
    member = consortium("intl").members["org-a-admin"]
    return algorithm_for("intl"), member.key, member.public_key_der


def _verify(sd_jwt: str) -> None:
    algorithm, _, public_key_der = _issuer()
    parsed = accepted((SdJwtInvalid,), parse_sd_jwt, sd_jwt)
    if parsed is not None:
        accepted((SdJwtInvalid,), verify_sd_jwt, parsed, algorithm, public_key_der)


def _signed(data: bytes) -> str:
    """The issuer's SD-JWT over a fuzzed payload and fuzzed disclosures."""
    algorithm, key, _ = _issuer()
    payload, *contents = data.split(b"\x00")
    disclosures = [b64url_encode(content) for content in contents[:64]]
    text = payload.decode("utf-8", "replace")
    for index, disclosure in enumerate(disclosures):
        text = text.replace(f"@{index}", disclosure_digest(algorithm, disclosure))
    header = b64url_encode(b'{"alg":"' + algorithm.alg.encode() + b'","typ":"dc+sd-jwt"}')
    signing_input = header + "." + b64url_encode(text.encode("utf-8"))
    signature = algorithm.sign(key, signing_input.encode("ascii"))  # type: ignore[arg-type]
    return serialize(signing_input + "." + b64url_encode(signature), disclosures)


def one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] & 1:
        _verify(_signed(data[1:]))
        return
    presentation = accepted((SdJwtInvalid,), Presentation.from_text, data[1:].decode("utf-8", "replace"))
    if presentation is None:
        return
    expect(Presentation.from_text(presentation.to_json()) == presentation, "a presentation changed through its JSON")
    qr = accepted((SdJwtInvalid, ValueError), presentation.to_qr_text)
    if qr is not None:
        expect(Presentation.from_text(qr) == presentation, "a presentation changed through its QR text")
    _verify(presentation.sd_jwt)


def seeds() -> Iterator[bytes]:
    algorithm, key, _ = _issuer()
    counter = iter(range(1, 10_000))

    def random_bytes(size: int) -> bytes:
        return bytes([next(counter) % 256]) * size

    jwt, disclosures = issue_sd_jwt(
        algorithm, key, {"typ": "dc+sd-jwt"},  # type: ignore[arg-type]
        {"iss": "https://school.example", "vct": "urn:pilotchain:vct:university-diploma:1", "iat": 1_800_000_000},
        {"given_name": "Wei", "family_name": "Zhang", "degree": "Nursing", "graduation_year": 2026},
        random_bytes=random_bytes, digests_min=8)
    presentation = Presentation(chain=bytes(range(32)), sd_jwt=serialize(jwt, disclosures[:2]),
                                anchor=Anchor(batch="nurses-2026", index=3, size=8, path=(bytes(32), bytes(range(32)))))
    yield b"\x00" + presentation.to_json().encode()
    yield b"\x00" + presentation.to_qr_text().encode()
    yield (b"\x01" + b'{"iss":"https://school.example","_sd":["@0","@1"],"_sd_alg":"sha-256","nested":{"_sd":[]},'
           b'"list":[{"...":"@2"},1]}' + b"\x00" + b'["c2FsdA","given_name","Wei"]' + b"\x00"
           + b'["c2FsdA","degree",{"_sd":[]}]' + b"\x00" + b'["c2FsdA",2026]')

"""SD-JWT (RFC 9901) on both suites, checked against independent implementations: the IETF
reference implementation (the ``sd-jwt`` package, over jwcrypto) verifies intl diplomas; the
``openssl`` command line verifies the gm signature (SM2 with SM3, default ID) and the SM3
digests of disclosures. Plus the RFC's refusal rules, strict base64url, Base45 (RFC 9285)
vectors, the batch Merkle paths against the platform's, and hidden claims staying hidden."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto.jwk import JWK
from sd_jwt.verifier import SDJWTVerifier

from pilotchain.apps.credentials.diploma import (
    DIGESTS_MIN,
    SD_JWT_TYP,
    VCT,
    Presentation,
    base45_decode,
    base45_encode,
    issue_batch,
    merkle_tree,
    parse_status_uri,
    status_uri,
)
from pilotchain.apps.credentials.sdjwt import (
    ALG_EDDSA,
    ALG_SM2_SM3,
    SdJwtInvalid,
    algorithm_for,
    b64url_decode,
    b64url_encode,
    disclosure_digest,
    issue_sd_jwt,
    make_disclosure,
    parse_sd_jwt,
    select_disclosures,
    serialize,
    sm2_signature_der,
    verify_sd_jwt,
)
from pilotchain.ledger import merkle
from tests.apps.credentials.helpers import roll

SECRET_VALUES = ("1998-04-17", "S2022-00417", "upper second")


def _issue(suite: str, rng: random.Random | None = None) -> tuple[Any, Any, str]:
    algorithm = algorithm_for(suite)
    key = algorithm.suite.private_key_from_seed(b"registrar key seed for tests 0001")
    rng = rng or random.Random(7)
    jwt, disclosures = issue_sd_jwt(
        algorithm, key, {"typ": SD_JWT_TYP, "kid": "k1"},
        {"iss": "https://registrar.cityu.example", "iat": 1_790_000_000, "vct": VCT},
        {"given_name": "Wei", "family_name": "Zhang", "birthdate": SECRET_VALUES[0], "student_id": SECRET_VALUES[1],
         "degree": "Bachelor of Engineering", "graduation_year": 2026, "grade": SECRET_VALUES[2]},
        random_bytes=rng.randbytes, digests_min=DIGESTS_MIN)
    return algorithm, key, serialize(jwt, disclosures)


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_issue_present_verify_round_trip(suite: str) -> None:
    algorithm, key, full = _issue(suite)
    public_key = key.public_key().to_der()
    everything = verify_sd_jwt(parse_sd_jwt(full), algorithm, public_key)
    assert everything.claims["grade"] == SECRET_VALUES[2] and everything.undisclosed_digests == DIGESTS_MIN - 7
    shown = select_disclosures(full, ["given_name", "family_name", "degree", "graduation_year"])
    verified = verify_sd_jwt(parse_sd_jwt(shown), algorithm, public_key)
    assert verified.claims == {"iss": "https://registrar.cityu.example", "iat": 1_790_000_000, "vct": VCT,
                               "given_name": "Wei", "family_name": "Zhang", "degree": "Bachelor of Engineering",
                               "graduation_year": 2026}
    assert verified.header == {"alg": ALG_EDDSA if suite == "intl" else ALG_SM2_SM3, "kid": "k1", "typ": SD_JWT_TYP}
    assert verified.undisclosed_digests == DIGESTS_MIN - 4
    other_key = algorithm.suite.private_key_from_seed(b"somebody else's key, same suite 01").public_key().to_der()
    with pytest.raises(SdJwtInvalid, match="signature"):
        verify_sd_jwt(parse_sd_jwt(shown), algorithm, other_key)
    with pytest.raises(SdJwtInvalid, match="this chain's suite uses"):
        verify_sd_jwt(parse_sd_jwt(shown), algorithm_for("gm" if suite == "intl" else "intl"), public_key)


def test_an_independent_implementation_verifies_intl_diplomas() -> None:
    """The IETF SD-JWT reference implementation (sd-jwt, jwcrypto's EdDSA) reads what we issue."""
    algorithm, key, full = _issue("intl")
    public = key.public_key().to_der()
    raw = public[-32:]  # SubjectPublicKeyInfo of Ed25519: a 12-byte prefix, then the key
    jwk = JWK(kty="OKP", crv="Ed25519", x=b64url_encode(raw))
    seen: list[Any] = []

    def issuer_key(issuer: str, header: dict[str, Any]) -> JWK:
        seen.append((issuer, header["kid"], header["alg"]))
        return jwk

    shown = select_disclosures(full, ["given_name", "family_name", "degree", "graduation_year"])
    claims = SDJWTVerifier(shown, issuer_key).get_verified_payload()
    assert seen == [("https://registrar.cityu.example", "k1", "EdDSA")]
    assert {k: claims[k] for k in ("given_name", "family_name", "degree", "graduation_year")} == {
        "given_name": "Wei", "family_name": "Zhang", "degree": "Bachelor of Engineering", "graduation_year": 2026}
    assert not {"birthdate", "student_id", "grade"} & set(claims)
    # ... and refuses it after one changed character of the signed part, or with another key
    jwt, rest = shown.split(".", 1)
    with pytest.raises(Exception, match="(?i)verif|signature|invalid"):
        SDJWTVerifier(jwt + "." + rest[:5] + ("A" if rest[5] != "A" else "B") + rest[6:], issuer_key)
    stranger = JWK.generate(kty="OKP", crv="Ed25519")
    with pytest.raises(Exception, match="(?i)verif|signature|invalid"):
        SDJWTVerifier(shown, lambda issuer, header: stranger)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_verifies_the_gm_signature_and_digests(tmp_path: Path) -> None:
    """The gm variant: the JWS signature (R ‖ S → GB/T 35276 DER) verifies with `openssl dgst -sm3`
    and the default distinguishing ID; every disclosure's digest is openssl's SM3 of its text."""
    algorithm, key, full = _issue("gm")
    parsed = parse_sd_jwt(full)
    (tmp_path / "pub.pem").write_bytes(key.public_key().to_pem())
    (tmp_path / "input").write_bytes(parsed.signing_input)
    (tmp_path / "sig.der").write_bytes(sm2_signature_der(parsed.signature))
    command = ["openssl", "dgst", "-sm3", "-verify", str(tmp_path / "pub.pem"), "-sigopt",
               "distid:1234567812345678", "-signature", str(tmp_path / "sig.der"), str(tmp_path / "input")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stdout + result.stderr
    (tmp_path / "input").write_bytes(parsed.signing_input[:-1] + b"x")
    assert subprocess.run(command, capture_output=True, text=True, timeout=30).returncode != 0
    assert parsed.payload["_sd_alg"] == "sm3"
    for disclosure in parsed.disclosures:
        (tmp_path / "d").write_bytes(disclosure.encode("ascii"))
        out = subprocess.run(["openssl", "dgst", "-sm3", "-binary", str(tmp_path / "d")], capture_output=True,
                             timeout=30)
        assert b64url_encode(out.stdout) in parsed.payload["_sd"]


def test_intl_digests_are_sha256_of_the_disclosure_text() -> None:
    _, _, full = _issue("intl")
    parsed = parse_sd_jwt(full)
    for disclosure in parsed.disclosures:
        digest = b64url_encode(hashlib.sha256(disclosure.encode("ascii")).digest())
        assert digest in parsed.payload["_sd"]
    assert len(parsed.payload["_sd"]) == DIGESTS_MIN and parsed.payload["_sd"] == sorted(parsed.payload["_sd"])


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_undisclosed_claims_cannot_be_recovered_from_a_presentation(suite: str) -> None:
    algorithm, key, full = _issue(suite)
    shown = select_disclosures(full, ["given_name", "family_name", "degree", "graduation_year"])
    parsed = parse_sd_jwt(shown)
    decoded = [json.dumps(parsed.header), json.dumps(parsed.payload)]
    decoded += [b64url_decode(d).decode() for d in parsed.disclosures]
    everything = shown + "".join(decoded)
    for secret in SECRET_VALUES:
        assert secret not in everything
    # a guess of the right value does not match any digest without the disclosure's 128-bit salt
    for name, secret in zip(("birthdate", "student_id", "grade"), SECRET_VALUES, strict=True):
        for salt in (b"", bytes(16), b"\x01" * 16):
            guess = make_disclosure(salt, name, secret)
            assert disclosure_digest(algorithm, guess) not in parsed.payload["_sd"]
    # the number of digests does not depend on how many claims the diploma has
    assert len(parsed.payload["_sd"]) == DIGESTS_MIN


def _tamper_payload(full: str, change: Any) -> str:
    """The SD-JWT with its payload changed and re-signed by the issuer (to test the §7.1 rules,
    not the signature)."""
    algorithm, key, _ = _issue("intl")
    parsed = parse_sd_jwt(full)
    payload = dict(parsed.payload)
    disclosures = list(parsed.disclosures)
    change(payload, disclosures)
    header = b64url_encode(json.dumps(parsed.header, separators=(",", ":")).encode())
    body = b64url_encode(json.dumps(payload, separators=(",", ":")).encode())
    signature = algorithm.sign(key, f"{header}.{body}".encode())
    return serialize(f"{header}.{body}.{b64url_encode(signature)}", disclosures)


def test_rfc9901_refusals() -> None:
    algorithm, key, full = _issue("intl")
    public = key.public_key().to_der()

    def refused(text: str, reason: str) -> None:
        with pytest.raises(SdJwtInvalid, match=reason):
            verify_sd_jwt(parse_sd_jwt(text), algorithm, public)

    parsed = parse_sd_jwt(full)
    refused(serialize(parsed.issuer_jwt, [*parsed.disclosures, parsed.disclosures[0]]), "same disclosure twice")
    stray = make_disclosure(b"\x05" * 16, "nationality", "X")
    refused(serialize(parsed.issuer_jwt, [*parsed.disclosures, stray]), "match no digest")
    refused(_tamper_payload(full, lambda p, d: p.update(_sd=p["_sd"] + [p["_sd"][0]])), "appears twice")
    reserved = make_disclosure(b"\x06" * 16, "_sd", ["x"])
    refused(_tamper_payload(full, lambda p, d: (p.update(_sd=sorted(p["_sd"] + [disclosure_digest(algorithm, reserved)])),
                                                d.append(reserved))), "reserved claim")
    clash = make_disclosure(b"\x07" * 16, "iss", "https://evil.example")
    refused(_tamper_payload(full, lambda p, d: (p.update(_sd=sorted(p["_sd"] + [disclosure_digest(algorithm, clash)])),
                                                d.append(clash))), "repeats the claim")
    refused(_tamper_payload(full, lambda p, d: p.update(_sd_alg="sha-512")), "digests use")
    element = make_disclosure(b"\x08" * 16, None, "an array element")
    refused(_tamper_payload(full, lambda p, d: (p.update(_sd=sorted(p["_sd"] + [disclosure_digest(algorithm, element)])),
                                                d.append(element))), r"not \[salt, name, value\]")
    refused(full + "eyJhbGciOiJub25lIn0.e30.", "key-binding JWT")


def test_nested_and_array_disclosures_follow_the_rfc() -> None:
    algorithm, key, _ = _issue("intl")
    rng = random.Random(3)
    inner = make_disclosure(rng.randbytes(16), "city", "Shenzhen")
    element = make_disclosure(rng.randbytes(16), None, "Physics")
    address_value = {"_sd": [disclosure_digest(algorithm, inner)], "country": "CN"}
    address = make_disclosure(rng.randbytes(16), "address", address_value)
    jwt, _ = issue_sd_jwt(algorithm, key, {"typ": SD_JWT_TYP}, {"minors": ["Maths", {"...": disclosure_digest(algorithm, element)}]},
                          {}, random_bytes=rng.randbytes)
    # build the payload by hand: an object whose property hides a further disclosure
    parsed = parse_sd_jwt(serialize(jwt, []))
    payload = dict(parsed.payload, _sd=[disclosure_digest(algorithm, address)])
    header = b64url_encode(json.dumps(parsed.header).encode())
    body = b64url_encode(json.dumps(payload).encode())
    signed = f"{header}.{body}.{b64url_encode(algorithm.sign(key, f'{header}.{body}'.encode()))}"
    verified = verify_sd_jwt(parse_sd_jwt(serialize(signed, [address, inner, element])), algorithm,
                             key.public_key().to_der())
    assert verified.claims["address"] == {"country": "CN", "city": "Shenzhen"}
    assert verified.claims["minors"] == ["Maths", "Physics"]
    hidden = verify_sd_jwt(parse_sd_jwt(serialize(signed, [address])), algorithm, key.public_key().to_der())
    assert hidden.claims["address"] == {"country": "CN"} and hidden.claims["minors"] == ["Maths"]
    with pytest.raises(SdJwtInvalid, match="match no digest"):  # inner without its parent is unreferenced
        verify_sd_jwt(parse_sd_jwt(serialize(signed, [inner])), algorithm, key.public_key().to_der())


@given(st.binary(max_size=80))
@settings(max_examples=200, deadline=None)
def test_base64url_is_strict_and_canonical(data: bytes) -> None:
    text = b64url_encode(data)
    assert b64url_decode(text) == data
    if text and len(text) % 4 in (2, 3):  # the last character carries unused bits: any other value is refused
        last = text[-1]
        for other in "AQgwBRhx":
            if other != last:
                alternative = text[:-1] + other
                try:
                    decoded = b64url_decode(alternative)
                except SdJwtInvalid:
                    continue
                assert decoded != data
    for bad in (text + "=", text + "+", text + "/", text + " "):
        with pytest.raises(SdJwtInvalid):
            b64url_decode(bad)


def test_base45_rfc9285_vectors() -> None:
    vectors = {b"AB": "BB8", b"Hello!!": "%69 VD92EX0", b"base-45": "UJCLQE7W581", b"ietf!": "QED8WEX0"}
    for raw, text in vectors.items():
        assert base45_encode(raw) == text and base45_decode(text) == raw
    for bad in ("GGW", "A", "ab", "ZZZ", "::"):
        with pytest.raises(ValueError):
            base45_decode(bad)


@given(st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=70))
@settings(max_examples=60, deadline=None)
def test_batch_merkle_paths_are_the_platforms(leaves: list[bytes]) -> None:
    suite = algorithm_for("intl").suite
    root, paths = merkle_tree(suite.hash, leaves)
    assert root == merkle.merkle_root(suite.hash, leaves)
    for i, leaf in enumerate(leaves):
        assert paths[i] == merkle.inclusion_proof(suite.hash, leaves, i)
        assert merkle.verify_inclusion(suite.hash, root, leaf, i, len(leaves), paths[i])


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_a_batch_in_random_order_with_its_proofs_and_qr_text(suite: str) -> None:
    algorithm = algorithm_for(suite)
    key = algorithm.suite.private_key_from_seed(b"registrar key seed for tests 0002")
    genesis_hash = bytes(range(32))
    records = roll(40)
    batch = issue_batch(records, algorithm=algorithm, key=key, iss="https://u.example", kid="k1", batch_id="b1",
                        genesis_hash=genesis_hash, list_id="l1", status_indices=list(range(100, 140)),
                        issued_at_s=1_790_000_000, rng=random.Random(5))
    assert batch.tree_head["size"] == 40 and [d.roll_position for d in batch.diplomas] == list(range(40))
    leaf_order = [d.presentation.anchor.index for d in batch.diplomas]
    assert sorted(leaf_order) == list(range(40)) and leaf_order != list(range(40))  # shuffled
    for diploma, record in zip(batch.diplomas, records, strict=True):
        presentation = diploma.presentation
        parsed = parse_sd_jwt(presentation.sd_jwt)
        assert merkle.verify_inclusion(algorithm.suite.hash, batch.tree_head["root"], parsed.issuer_jwt.encode(),
                                       presentation.anchor.index, 40, presentation.anchor.path)
        reference = parsed.payload["status"]["status_list"]
        assert reference["idx"] == diploma.status_index and parse_status_uri(reference["uri"]) == (
            genesis_hash[:8].hex(), "l1")
        assert verify_sd_jwt(parsed, algorithm, key.public_key().to_der()).claims["student_id"] == record["student_id"]
        assert Presentation.from_text(presentation.to_qr_text()) == presentation
        assert Presentation.from_text(presentation.to_json()) == presentation
    assert status_uri(genesis_hash, "l1").startswith("urn:pilotchain:0001020304050607:")


def test_envelopes_are_parsed_strictly() -> None:
    algorithm = algorithm_for("intl")
    key = algorithm.suite.private_key_from_seed(b"registrar key seed for tests 0003")
    batch = issue_batch(roll(3), algorithm=algorithm, key=key, iss="https://u.example", kid="k1", batch_id="b1",
                        genesis_hash=bytes(32), list_id="l1", status_indices=[1, 2, 3], issued_at_s=1, rng=random.Random(1))
    document = json.loads(batch.diplomas[0].presentation.to_json())
    for broken in ({**document, "extra": 1}, {**document, "format": "other/1"}, {**document, "chain": "zz" * 32},
                   {**document, "anchor": {**document["anchor"], "index": "0"}},
                   {**document, "anchor": {**document["anchor"], "path": ["not base64url!"]}}):
        with pytest.raises(SdJwtInvalid):
            Presentation.from_text(json.dumps(broken))
    with pytest.raises(SdJwtInvalid, match="twice"):
        Presentation.from_text(json.dumps(document)[:-1] + ',"format":"pilotchain-credential/1"}')
    with pytest.raises(SdJwtInvalid):
        Presentation.from_text("PC1:" + base45_encode(b"\x78\x9c" + bytes(50)))
    bomb = base64.b64encode(b"x").decode()
    with pytest.raises(SdJwtInvalid):
        Presentation.from_text("PC1:" + bomb)

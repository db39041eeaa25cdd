"""Sealing to a public key: fixed vectors, round trips, and every way opening must fail.

The intl vectors in ``seal_vectors.json`` are recomputed here from ``cryptography``'s own X25519,
HKDF and AES-GCM (not through pilotchain's HKDF), so they pin the envelope layout and the KDF
info string. The first gm vector is the GB/T 32918.5-2017 encryption example (made by the
standard's authors with a fixed k); the second is an envelope pilotchain made once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pilotchain.crypto import (
    CryptoError,
    KeyFormatError,
    SealError,
    SealFailure,
    SealPrivateKey,
    get_suite,
    load_seal_private_key,
    load_seal_public_key,
    open_sealed,
    seal,
    sealed_suite,
)
from pilotchain.crypto.gm import sm2_private_key_pkcs8_der
from pilotchain.crypto.sealing import GM_DIRECT_MAX, INTL_INFO_DOMAIN, SEAL_MAGIC

from .helpers import SUITE_NAMES, pem

VECTORS: dict[str, list[dict[str, Any]]] = json.loads(
    (Path(__file__).parent / "seal_vectors.json").read_text()
)
SIZES = [0, 1, GM_DIRECT_MAX, GM_DIRECT_MAX + 1, 1024 * 1024]
#: RFC 7748 section 6.1: the X25519 shared secret of Alice's and Bob's keys
RFC7748_SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def intl_private_pem(vector: dict[str, Any]) -> bytes:
    raw = bytes.fromhex(vector["recipient_private_hex"])
    key_class = {"x25519": x25519.X25519PrivateKey, "ed25519": ed25519.Ed25519PrivateKey}
    key = key_class[vector["recipient_key_type"]].from_private_bytes(raw)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def gm_vector_key(vector: dict[str, Any]) -> SealPrivateKey:
    scalar = int(vector["recipient_private_scalar_hex"], 16)
    return load_seal_private_key(
        get_suite("gm"), pem("PRIVATE KEY", sm2_private_key_pkcs8_der(scalar))
    )


def fields(vector: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    return (
        bytes.fromhex(vector["plaintext_hex"]),
        bytes.fromhex(vector["associated_data_hex"]),
        bytes.fromhex(vector["sealed_hex"]),
    )


@pytest.fixture(params=SUITE_NAMES, scope="module")
def keys(request: pytest.FixtureRequest) -> SealPrivateKey:
    suite = get_suite(str(request.param))
    return load_seal_private_key(suite, suite.generate_private_key())


# -- fixed vectors --------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["intl"], ids=lambda v: str(v["description"])[:40])
def test_intl_vector_seals_and_opens(vector: dict[str, Any]) -> None:
    plaintext, associated_data, sealed = fields(vector)
    key = load_seal_private_key(get_suite("intl"), intl_private_pem(vector))
    assert (
        seal(
            key.public_key(),
            plaintext,
            associated_data=associated_data,
            ephemeral_private=bytes.fromhex(vector["ephemeral_private_hex"]),
            nonce=bytes.fromhex(vector["nonce_hex"]),
        )
        == sealed
    )
    assert open_sealed(key, sealed, associated_data=associated_data) == plaintext


@pytest.mark.parametrize("vector", VECTORS["intl"], ids=lambda v: str(v["description"])[:40])
def test_intl_vector_matches_an_independent_computation(vector: dict[str, Any]) -> None:
    plaintext, associated_data, sealed = fields(vector)
    recipient_private = serialization.load_pem_private_key(intl_private_pem(vector), None)
    if isinstance(recipient_private, ed25519.Ed25519PrivateKey):
        # the Ed25519 -> X25519 private map: clamp(SHA-512(seed)[:32]) (RFC 8032 section 5.1.5)
        digest = hashes.Hash(hashes.SHA512())
        digest.update(bytes.fromhex(vector["recipient_private_hex"]))
        recipient_private = x25519.X25519PrivateKey.from_private_bytes(digest.finalize()[:32])
    assert isinstance(recipient_private, x25519.X25519PrivateKey)
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    recipient_public = recipient_private.public_key().public_bytes(*raw)
    ephemeral = x25519.X25519PrivateKey.from_private_bytes(
        bytes.fromhex(vector["ephemeral_private_hex"])
    )
    ephemeral_public = ephemeral.public_key().public_bytes(*raw)
    shared = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(recipient_public))
    if vector["description"].startswith("RFC 7748"):
        assert shared == RFC7748_SHARED
    key = HKDF(
        hashes.SHA256(), 32, salt=None, info=INTL_INFO_DOMAIN + ephemeral_public + recipient_public
    ).derive(shared)
    nonce = bytes.fromhex(vector["nonce_hex"])
    prefix = b"PCS\x01\x01" + ephemeral_public + nonce
    assert sealed == prefix + AESGCM(key).encrypt(nonce, plaintext, prefix + associated_data)
    assert len(sealed) == 5 + 32 + 12 + len(plaintext) + 16


def test_gm_standard_example_opens() -> None:
    standard = VECTORS["gm"][0]
    plaintext, _, sealed = fields(standard)
    assert plaintext == b"encryption standard"
    assert open_sealed(gm_vector_key(standard), sealed) == plaintext


def test_gm_envelope_vector_opens_and_its_sm4_gcm_part_is_pinned() -> None:
    vector = VECTORS["gm"][1]
    plaintext, associated_data, sealed = fields(vector)
    key = gm_vector_key(vector)
    assert open_sealed(key, sealed, associated_data=associated_data) == plaintext
    # header, then the SM2 ciphertext of the data key behind its 2-byte length, then the nonce
    assert sealed[:5] == b"PCS\x01\x02"
    sm2_end = 7 + int.from_bytes(sealed[5:7], "big")
    assert sealed[7] == 0x30
    nonce = bytes.fromhex(vector["nonce_hex"])
    assert sealed[sm2_end : sm2_end + 12] == nonce
    encryptor = Cipher(
        algorithms.SM4(bytes.fromhex(vector["data_key_hex"])), modes.GCM(nonce)
    ).encryptor()
    encryptor.authenticate_additional_data(sealed[: sm2_end + 12] + associated_data)
    body = encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag
    assert sealed[sm2_end + 12 :] == body


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(keys: SealPrivateKey, size: int) -> None:
    plaintext = bytes(index * 7 % 251 for index in range(size))
    sealed = seal(keys.public_key(), plaintext)
    assert open_sealed(keys, sealed) == plaintext
    assert sealed_suite(sealed) == keys.suite_name
    if keys.suite_name == "intl":
        assert sealed.startswith(b"PCS\x01\x01") and len(sealed) == size + 65
    elif 1 <= size <= GM_DIRECT_MAX:
        assert sealed[0] == 0x30  # the bare GB/T 35276 ciphertext: C1 (x, y), C3 (32), C2 (size)
        assert size + 32 + 64 + 8 <= len(sealed) <= size + 32 + 64 + 15
    else:
        assert sealed.startswith(b"PCS\x01\x02")


def test_associated_data_is_bound(keys: SealPrivateKey) -> None:
    sealed = seal(keys.public_key(), b"data key", associated_data=b"offer 7")
    assert sealed.startswith(SEAL_MAGIC)  # gm too: a bare SM2 ciphertext cannot carry it
    assert open_sealed(keys, sealed, associated_data=b"offer 7") == b"data key"
    for wrong in [b"", b"offer 8", b"offer 7\x00"]:
        with pytest.raises(SealError) as info:
            open_sealed(keys, sealed, associated_data=wrong)
        assert info.value.reason is SealFailure.CANNOT_DECRYPT
    bare = seal(keys.public_key(), b"data key")
    with pytest.raises(SealError) as info:
        open_sealed(keys, bare, associated_data=b"offer 7")
    assert info.value.reason is SealFailure.CANNOT_DECRYPT


def test_every_seal_is_fresh(keys: SealPrivateKey) -> None:
    first, second = (seal(keys.public_key(), b"same") for _ in range(2))
    assert first != second
    assert open_sealed(keys, first) == open_sealed(keys, second) == b"same"


# -- failures -------------------------------------------------------------------------------------


def reason_of(key: SealPrivateKey, sealed: bytes, associated_data: bytes = b"") -> SealError:
    with pytest.raises(SealError) as info:
        open_sealed(key, sealed, associated_data=associated_data)
    return info.value


@pytest.mark.parametrize("size", [0, 5, GM_DIRECT_MAX + 1])
def test_wrong_key_cannot_decrypt_and_says_no_more(keys: SealPrivateKey, size: int) -> None:
    suite = get_suite(keys.suite_name)
    other = load_seal_private_key(suite, suite.generate_private_key())
    sealed = seal(keys.public_key(), bytes(size))
    wrong_key = reason_of(other, sealed)
    assert wrong_key.reason is SealFailure.CANNOT_DECRYPT
    tampered = reason_of(keys, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    assert str(wrong_key) == str(tampered)  # no hint which step failed
    assert "cannot decrypt" in str(wrong_key)


def test_every_single_bit_flip_is_refused(keys: SealPrivateKey) -> None:
    for plaintext in [b"", b"k" * 16, b"k" * (GM_DIRECT_MAX + 1)]:
        sealed = seal(keys.public_key(), plaintext, associated_data=b"ad" if plaintext else b"")
        for index in range(len(sealed)):
            changed = bytearray(sealed)
            changed[index] ^= 1 << (index % 8)
            error = reason_of(keys, bytes(changed), b"ad" if plaintext else b"")
            # a changed header or gm length field may read as malformed; past them, only
            # "cannot decrypt"
            structure = 1 if sealed[0] == 0x30 else 5 if keys.suite_name == "intl" else 7
            assert index < structure or error.reason is SealFailure.CANNOT_DECRYPT, index


def test_every_truncation_and_any_appended_byte_is_refused(keys: SealPrivateKey) -> None:
    for plaintext in [b"x", b"x" * 300]:
        sealed = seal(keys.public_key(), plaintext)
        for length in range(len(sealed)):
            error = reason_of(keys, sealed[:length])
            if length < 5:
                assert error.reason is SealFailure.MALFORMED or sealed[0] == 0x30, length
        assert reason_of(keys, sealed + b"\x00").reason is SealFailure.CANNOT_DECRYPT


def test_truncated_envelope_headers_say_so() -> None:
    key = load_seal_private_key(get_suite("intl"), get_suite("intl").generate_private_key())
    sealed = seal(key.public_key(), b"")
    for length in [0, 3, 5, 64]:
        error = reason_of(key, sealed[:length])
        assert error.reason is SealFailure.MALFORMED
        assert "truncated" in str(error) or length == 0


def test_suite_mismatch_is_named() -> None:
    intl, gm = get_suite("intl"), get_suite("gm")
    intl_key = load_seal_private_key(intl, intl.generate_private_key())
    gm_key = load_seal_private_key(gm, gm.generate_private_key())
    for key, other in [(intl_key, gm_key), (gm_key, intl_key)]:
        for plaintext in [b"short", b"long" * 100]:
            error = reason_of(key, seal(other.public_key(), plaintext))
            assert error.reason is SealFailure.WRONG_SUITE
            assert f"sealed for the {other.suite_name} suite" in str(error)


@pytest.mark.parametrize(
    ("garbage", "words"),
    [
        (b"", "empty"),
        (b"hello world, not sealed", "neither"),
        (b"PCS\x02\x01" + bytes(100), "version 2"),
        (b"PCS\x01\x09" + bytes(100), "suite id 9"),
    ],
)
def test_malformed_inputs(keys: SealPrivateKey, garbage: bytes, words: str) -> None:
    error = reason_of(keys, garbage)
    assert error.reason is SealFailure.MALFORMED
    assert words in str(error)
    assert isinstance(error, CryptoError)


def test_keys_of_the_other_suite_or_kind_are_refused() -> None:
    intl, gm = get_suite("intl"), get_suite("gm")
    gm_key = gm.generate_private_key()
    intl_key = intl.generate_private_key()
    with pytest.raises(KeyFormatError):
        load_seal_public_key(intl, gm_key.public_key().to_der())
    with pytest.raises(KeyFormatError):
        load_seal_private_key(intl, gm_key.to_pem())
    with pytest.raises(KeyFormatError):
        load_seal_public_key(gm, intl_key.public_key().to_pem())
    with pytest.raises(KeyFormatError):
        load_seal_private_key(gm, intl_key.to_pem())
    with pytest.raises(KeyFormatError):
        load_seal_public_key(intl, b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_signing_keys_receive_through_every_encoding() -> None:
    for suite in map(get_suite, SUITE_NAMES):
        key = suite.generate_private_key()
        public = key.public_key()
        opener = load_seal_private_key(suite, key.to_pem())
        for recipient in [public, public.to_der(), public.to_pem()]:
            sealed = seal(load_seal_public_key(suite, recipient), b"to a node key")
            assert open_sealed(opener, sealed) == b"to a node key"


def test_injected_randomness_is_checked() -> None:
    intl, gm = get_suite("intl"), get_suite("gm")
    intl_recipient = load_seal_public_key(intl, intl.generate_private_key().public_key())
    gm_recipient = load_seal_public_key(gm, gm.generate_private_key().public_key())
    with pytest.raises(CryptoError, match="ephemeral_private must be 32 bytes"):
        seal(intl_recipient, b"x", ephemeral_private=bytes(31))
    with pytest.raises(CryptoError, match="nonce must be 12 bytes"):
        seal(intl_recipient, b"x", nonce=bytes(16))
    with pytest.raises(CryptoError, match="no data_key"):
        seal(intl_recipient, b"x", data_key=bytes(16))
    with pytest.raises(CryptoError, match="no ephemeral_private"):
        seal(gm_recipient, b"x", ephemeral_private=bytes(32))
    with pytest.raises(CryptoError, match="data_key must be 16 bytes"):
        seal(gm_recipient, b"x" * 300, data_key=bytes(32))


def test_low_order_ephemeral_key_cannot_decrypt() -> None:
    intl = get_suite("intl")
    key = load_seal_private_key(intl, intl.generate_private_key())
    sealed = seal(key.public_key(), b"x")
    low_order = b"PCS\x01\x01" + bytes(32) + sealed[37:]  # the all-zero point: shared secret 0
    assert reason_of(key, low_order).reason is SealFailure.CANNOT_DECRYPT

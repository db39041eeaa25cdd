"""Known-answer tests from the standards: every vector here comes from a published document.

* SM3: GB/T 32905-2016 appendix A (examples 1 and 2).
* SM4: GB/T 32907-2016 appendix A (example 1, one block); SM4-GCM: RFC 8998 appendix A.1.
* SM2: GB/T 32918.5-2017 / GM/T 0003.5 signature example on the recommended curve, with the
  default distinguishing ID 1234567812345678 (verifies against a signature made with a fixed k
  by the standard's authors, so it checks our Z computation, not just self-consistency).
* Ed25519: RFC 8032 section 7.1, tests 1-3. SHA-256: FIPS 180-2 examples. AES-256-GCM: the
  McGrew-Viega GCM specification test cases 13 and 14 (also in NIST's CAVP set).
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pilotchain.crypto import get_suite
from pilotchain.crypto.gm import Sm2PrivateKey, Sm2PublicKey, sm2_private_key_pkcs8_der

from .helpers import ed25519_pkcs8_pem, pem, sm2_signature_der, spki_raw_ed25519

gm = get_suite("gm")
intl = get_suite("intl")


# -- SM3 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "digest_hex"),
    [
        (b"abc", "66c7f0f4 62eeedd9 d1f2d46b dc10e4e2 4167c487 5cf2f7a2 297da02b 8f4ba8e0"),
        (b"abcd" * 16, "debe9ff9 2275b8a1 38604889 c18e5a4d 6fdb70e5 387e5765 293dcba3 9c0c5732"),
    ],
)
def test_sm3_gbt_32905_examples(message: bytes, digest_hex: str) -> None:
    expected = bytes.fromhex(digest_hex.replace(" ", ""))
    assert gm.hash(message) == expected
    assert gm.hash_chunks([message[:1], message[1:]]) == expected
    assert gm.digest_size == len(expected) == 32


# -- SM4 and SM4-GCM -------------------------------------------------------------------------


def test_sm4_gbt_32907_single_block() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    ciphertext = encryptor.update(key) + encryptor.finalize()  # plaintext == key in the vector
    assert ciphertext.hex() == "681edf34d206965e86b3e94f536e4246"


RFC8998_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
RFC8998_NONCE = bytes.fromhex("00001234567800000000ABCD")
RFC8998_AAD = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
RFC8998_PLAINTEXT = bytes.fromhex(
    "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
    "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
)
RFC8998_CIPHERTEXT = bytes.fromhex(
    "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
    "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
)
RFC8998_TAG = bytes.fromhex("83DE3541E4C2B58177E065A9BF7B62EC")


def test_sm4_gcm_rfc8998_a1() -> None:
    sealed = gm.aead_encrypt(RFC8998_KEY, RFC8998_NONCE, RFC8998_PLAINTEXT, RFC8998_AAD)
    assert sealed == RFC8998_CIPHERTEXT + RFC8998_TAG
    assert gm.aead_decrypt(RFC8998_KEY, RFC8998_NONCE, sealed, RFC8998_AAD) == RFC8998_PLAINTEXT


# -- SM2 -------------------------------------------------------------------------------------

SM2_EXAMPLE_PRIVATE = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
SM2_EXAMPLE_PUBLIC_X = 0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
SM2_EXAMPLE_PUBLIC_Y = 0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13
SM2_EXAMPLE_MESSAGE = b"message digest"
SM2_EXAMPLE_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
SM2_EXAMPLE_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
SM2_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")


def _sm2_example_key() -> Sm2PrivateKey:
    key = gm.load_private_key_pem(
        pem("PRIVATE KEY", sm2_private_key_pkcs8_der(SM2_EXAMPLE_PRIVATE))
    )
    assert isinstance(key, Sm2PrivateKey)
    return key


def test_sm2_example_public_key_derivation() -> None:
    der = _sm2_example_key().public_key().to_der()
    point = SM2_EXAMPLE_PUBLIC_X.to_bytes(32, "big") + SM2_EXAMPLE_PUBLIC_Y.to_bytes(32, "big")
    assert der == SM2_SPKI_PREFIX + point


def test_sm2_example_signature_verifies_with_default_id() -> None:
    public_der = (
        SM2_SPKI_PREFIX
        + SM2_EXAMPLE_PUBLIC_X.to_bytes(32, "big")
        + SM2_EXAMPLE_PUBLIC_Y.to_bytes(32, "big")
    )
    signature = sm2_signature_der(SM2_EXAMPLE_R, SM2_EXAMPLE_S)
    assert gm.verify(public_der, SM2_EXAMPLE_MESSAGE, signature)
    assert not gm.verify(public_der, SM2_EXAMPLE_MESSAGE + b"!", signature)
    assert not gm.verify(
        public_der, SM2_EXAMPLE_MESSAGE, sm2_signature_der(SM2_EXAMPLE_R, SM2_EXAMPLE_S ^ 1)
    )
    # The Z value really covers the ID: the same signature is invalid under another ID.
    public = gm.public_key(public_der)
    assert isinstance(public, Sm2PublicKey)
    assert not public.verify_with_id(SM2_EXAMPLE_MESSAGE, signature, b"ALICE123@YAHOO.COM")


def test_sm2_signatures_are_bound_to_the_distinguishing_id() -> None:
    key = _sm2_example_key()
    public = key.public_key()
    assert isinstance(public, Sm2PublicKey)
    signature = key.sign_with_id(b"payload", b"ALICE123@YAHOO.COM")
    assert public.verify_with_id(b"payload", signature, b"ALICE123@YAHOO.COM")
    assert not public.verify(b"payload", signature)
    assert public.verify(b"payload", key.sign(b"payload"))


# -- Ed25519 (RFC 8032 section 7.1) ----------------------------------------------------------

RFC8032_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(
    ("secret_hex", "public_hex", "message_hex", "signature_hex"), RFC8032_VECTORS
)
def test_ed25519_rfc8032(
    secret_hex: str, public_hex: str, message_hex: str, signature_hex: str
) -> None:
    key = intl.load_private_key_pem(ed25519_pkcs8_pem(bytes.fromhex(secret_hex)))
    public_der = key.public_key().to_der()
    assert spki_raw_ed25519(public_der).hex() == public_hex
    message = bytes.fromhex(message_hex)
    signature = key.sign(message)
    assert signature.hex() == signature_hex  # Ed25519 is deterministic
    assert intl.verify(public_der, message, signature)
    assert not intl.verify(public_der, message + b"\x00", signature)


# -- SHA-256 and AES-256-GCM -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "digest_hex"),
    [
        (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
    ],
)
def test_sha256_fips_180_examples(message: bytes, digest_hex: str) -> None:
    assert intl.hash(message).hex() == digest_hex
    assert intl.hash_chunks(iter([message])).hex() == digest_hex


@pytest.mark.parametrize(
    ("plaintext_hex", "sealed_hex"),
    [
        ("", "530f8afbc74536b9a963b4f1c4cb738b"),  # test case 13: tag only
        (
            "00000000000000000000000000000000",  # test case 14
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
        ),
    ],
)
def test_aes_256_gcm_known_answers(plaintext_hex: str, sealed_hex: str) -> None:
    key, nonce = bytes(32), bytes(12)
    plaintext = bytes.fromhex(plaintext_hex)
    assert intl.aead_encrypt(key, nonce, plaintext).hex() == sealed_hex
    assert intl.aead_decrypt(key, nonce, bytes.fromhex(sealed_hex)) == plaintext


def test_gm_suite_refuses_a_libcrypto_that_fails_the_sm2_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pilotchain.crypto import CryptoError
    from pilotchain.crypto._openssl import Sm2Key
    from pilotchain.crypto.gm import GmSuite

    GmSuite()  # the real library passes
    for broken in (lambda *_: True, lambda *_: False):  # accepts anything / rejects everything
        monkeypatch.setattr(Sm2Key, "verify", broken)
        with pytest.raises(CryptoError, match="GB/T 32918.5"):
            GmSuite()

"""The ``gm`` suite: SM2 signatures (GB/T 32918), SM3 (GB/T 32905), SM4-GCM (GB/T 32907, RFC 8998).

* SM2 goes through OpenSSL 3 (:mod:`pilotchain.crypto._openssl`), because ``cryptography`` has no
  SM2. Signing hashes ``SM3(Z || message)`` where ``Z`` binds the signer's public key and the
  default distinguishing ID ``1234567812345678`` (GB/T 35276 / GM/T 0009), exactly as
  ``openssl dgst -sm3 -sigopt distid:1234567812345678`` does. Signatures are DER
  ``SEQUENCE { INTEGER r, INTEGER s }`` (at most 72 bytes); OpenSSL rejects any other encoding
  of the same (r, s), so a signature has one valid byte string.
* SM3 and SM4-GCM come from ``cryptography``; SM4-GCM takes a 16-byte key and a 12-byte nonce and
  appends a 16-byte tag.
* Keys: PKCS#8 PEM private keys and SubjectPublicKeyInfo public keys, both with algorithm
  id-ecPublicKey and curve SM2 (OID 1.2.156.10197.1.301), as ``openssl genpkey -algorithm SM2``
  writes them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pilotchain.crypto._openssl import (
    DEFAULT_SM2_ID,
    SM2_SIGNATURE_SIZE_MAX,
    Sm2Key,
    openssl_version,
)
from pilotchain.crypto.base import (
    CryptoError,
    KeyFormatError,
    PrivateKey,
    PublicKey,
    Suite,
    check_aead_arguments,
)
from pilotchain.errors import InvariantBroken


def _hashlib_has_sm3() -> bool:
    try:
        digest = hashlib.new("sm3", b"abc").hexdigest()
    except ValueError:
        return False
    return digest == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


_HASHLIB_SM3: Final = _hashlib_has_sm3()

__all__ = [
    "DEFAULT_SM2_ID",
    "SM2_CURVE_ORDER",
    "SM2_PUBLIC_KEY_DER_SIZE",
    "SM2_SIGNATURE_SIZE_MAX",
    "GmSuite",
    "Sm2PrivateKey",
    "Sm2PublicKey",
    "openssl_version",
    "sm2_private_key_pkcs8_der",
]

#: n, the order of the SM2 curve's base point (GB/T 32918.5).
SM2_CURVE_ORDER: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
#: SubjectPublicKeyInfo { id-ecPublicKey, curve SM2 } BIT STRING { 04 || x || y }
_SPKI_PREFIX: Final = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")
SM2_PUBLIC_KEY_DER_SIZE: Final = len(_SPKI_PREFIX) + 64
_SEED_DOMAIN: Final = b"pilotchain/gm/sm2-private-key-from-seed/v1\x00"
_GCM_TAG_SIZE: Final = 16

# PKCS#8 PrivateKeyInfo for an SM2 scalar, without the optional public key (OpenSSL derives it):
# SEQUENCE { INTEGER 0, SEQUENCE { OID id-ecPublicKey, OID sm2 },
#            OCTET STRING { SEQUENCE { INTEGER 1, OCTET STRING d(32) } } }
_PKCS8_PREFIX: Final = bytes.fromhex(
    "3041020100301306072a8648ce3d020106082a811ccf5501822d042730250201010420"
)


def sm2_private_key_pkcs8_der(scalar: int) -> bytes:
    """PKCS#8 DER of the SM2 private key with scalar ``d`` (1 <= d <= n - 2)."""
    if not 1 <= scalar <= SM2_CURVE_ORDER - 2:
        raise KeyFormatError("an SM2 private scalar must be in [1, n - 2]")
    der = _PKCS8_PREFIX + scalar.to_bytes(32, "big")
    if not (len(der) == 2 + 0x41):
        raise InvariantBroken('invariant broken: len(der) == 2 + 0x41')
    return der


def _is_canonical_public_der(der: bytes) -> bool:
    return len(der) == SM2_PUBLIC_KEY_DER_SIZE and der.startswith(_SPKI_PREFIX)


def _pem(label: str, der: bytes) -> bytes:
    body = base64.b64encode(der)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"\n".join(
        [f"-----BEGIN {label}-----".encode(), *lines, f"-----END {label}-----".encode(), b""]
    )


class Sm2PublicKey(PublicKey):
    """An SM2 verifier holding a parsed OpenSSL key (reuse it: parsing costs more than hashing)."""

    __slots__ = ("_key", "_der")

    def __init__(self, key: Sm2Key) -> None:
        self._key = key
        self._der = key.public_der()

    def to_der(self) -> bytes:
        return self._der

    def to_pem(self) -> bytes:
        return _pem("PUBLIC KEY", self._der)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return self._key.verify(bytes(message), bytes(signature))

    def verify_with_id(self, message: bytes, signature: bytes, distinguishing_id: bytes) -> bool:
        """Verify with a distinguishing ID other than the default (for vectors and interop)."""
        return self._key.verify(bytes(message), bytes(signature), distinguishing_id)


class Sm2PrivateKey(PrivateKey):
    """An SM2 signer."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: Sm2Key) -> None:
        if not (key.has_private):
            raise InvariantBroken('invariant broken: key.has_private')
        self._key = key
        self._public = Sm2PublicKey(Sm2Key.from_public_der(key.public_der()))

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(bytes(message))

    def sign_with_id(self, message: bytes, distinguishing_id: bytes) -> bytes:
        """Sign with a distinguishing ID other than the default (for vectors and interop)."""
        return self._key.sign(bytes(message), distinguishing_id)

    def public_key(self) -> PublicKey:
        return self._public

    def to_pem(self) -> bytes:
        return self._key.private_pem()


# GB/T 32918.5 example on the recommended curve: public key of d = 3945208F...C5B8, signature by
# the standard's authors over "message digest" with the default ID. Checked once per process.
_SELF_TEST_PUBLIC_DER: Final = _SPKI_PREFIX + bytes.fromhex(
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
_SELF_TEST_MESSAGE: Final = b"message digest"
_SELF_TEST_SIGNATURE: Final = bytes.fromhex(
    "3046022100F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
    "022100B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
)


class GmSuite(Suite):
    """SM2/SM3/SM4-GCM. Creating it checks once that the loaded libcrypto computes standard SM2
    (Z value with the default ID): a library that silently signed something else would make
    every signature on the network non-standard, so that is a halt, not a warning."""

    name = "gm"
    hash_name = "sm3"
    aead_key_size = 16
    signature_name = "SM2"
    aead_name = "SM4-GCM"
    # About 460 µs a verify; measured crossover (2 cores): about 4 signatures.
    verify_batch_parallel_min = 8

    def __init__(self) -> None:
        known = Sm2PublicKey(Sm2Key.from_public_der(_SELF_TEST_PUBLIC_DER))
        if not known.verify(_SELF_TEST_MESSAGE, _SELF_TEST_SIGNATURE) or known.verify(
            _SELF_TEST_MESSAGE + b".", _SELF_TEST_SIGNATURE
        ):
            raise CryptoError(
                "the loaded libcrypto fails the GB/T 32918.5 SM2 example; refusing to use it "
                "for the gm suite (is it a patched or non-OpenSSL libcrypto.so.3?)"
            )

    def hash(self, data: bytes) -> bytes:
        if _HASHLIB_SM3:
            # Python's hashlib links the system OpenSSL 3, which has SM3: ~3.5x less overhead per
            # call than building a `cryptography` Hash object (this is on every Merkle node)
            return hashlib.new("sm3", data).digest()
        digest = hashes.Hash(hashes.SM3())
        digest.update(data)
        return digest.finalize()

    def hash_chunks(self, chunks: Iterable[bytes]) -> bytes:
        digest = hashes.Hash(hashes.SM3())
        for chunk in chunks:
            digest.update(chunk)
        return digest.finalize()

    def generate_private_key(self) -> PrivateKey:
        return Sm2PrivateKey(Sm2Key.generate())

    def private_key_from_seed(self, seed: bytes) -> PrivateKey:
        if len(seed) < 32:
            raise KeyFormatError("a key seed must be at least 32 bytes")
        # 512 hash bits reduced mod n - 2: the bias is below 2^-250.
        wide = int.from_bytes(hashlib.sha512(_SEED_DOMAIN + seed).digest(), "big")
        scalar = 1 + wide % (SM2_CURVE_ORDER - 2)
        return self.load_private_key_pem(_pem("PRIVATE KEY", sm2_private_key_pkcs8_der(scalar)))

    def load_private_key_pem(self, pem: bytes) -> PrivateKey:
        key = Sm2Key.from_private_pem(bytes(pem))
        if not _is_canonical_public_der(key.public_der()):
            raise KeyFormatError(
                "an SM2 private key with explicit curve parameters or a compressed public point; "
                "rewrite it with `openssl ec -in KEY.pem -param_enc named_curve "
                "-conv_form uncompressed`"
            )
        return Sm2PrivateKey(key)

    def _load_public_key_der(self, der: bytes) -> PublicKey:
        # One key, one encoding: identities and the chain compare keys as bytes, so only the
        # uncompressed named-curve form is accepted (a compressed point would be a second name).
        if not _is_canonical_public_der(der):
            raise KeyFormatError(
                "not the canonical SM2 SubjectPublicKeyInfo DER (named curve SM2, uncompressed "
                f"point, {SM2_PUBLIC_KEY_DER_SIZE} bytes)"
            )
        return Sm2PublicKey(Sm2Key.from_public_der(der))

    def load_public_key_pem(self, pem: bytes) -> PublicKey:
        return self._load_public_key_der(Sm2Key.from_public_pem(bytes(pem)).public_der())

    def aead_encrypt(
        self, key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes = b""
    ) -> bytes:
        check_aead_arguments(self, key, nonce)
        encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(associated_data)
        ciphertext = encryptor.update(plaintext) + encryptor.finalize()
        return ciphertext + encryptor.tag

    def aead_decrypt(
        self, key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes = b""
    ) -> bytes:
        check_aead_arguments(self, key, nonce)
        if len(ciphertext) < _GCM_TAG_SIZE:
            raise CryptoError(f"SM4-GCM ciphertext shorter than its {_GCM_TAG_SIZE}-byte tag")
        body, tag = ciphertext[:-_GCM_TAG_SIZE], ciphertext[-_GCM_TAG_SIZE:]
        decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(associated_data)
        try:
            return decryptor.update(body) + decryptor.finalize()
        except InvalidTag as exc:
            raise CryptoError(
                "AEAD tag does not verify: wrong key, nonce, data or associated data"
            ) from exc

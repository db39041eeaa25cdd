"""The ``intl`` suite: Ed25519, SHA-256, AES-256-GCM (all from ``cryptography``)."""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pilotchain.crypto.base import CryptoError, KeyFormatError, PrivateKey, PublicKey, Suite

_PEM = serialization.Encoding.PEM
_DER = serialization.Encoding.DER
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
_PKCS8 = serialization.PrivateFormat.PKCS8
_NOENC = serialization.NoEncryption()


class Ed25519PublicKey(PublicKey):
    __slots__ = ("_key", "_der")

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        self._key = key
        self._der = key.public_bytes(_DER, _SPKI)

    def to_der(self) -> bytes:
        return self._der

    def to_pem(self) -> bytes:
        return self._key.public_bytes(_PEM, _SPKI)

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Ed25519PrivateKey(PrivateKey):
    __slots__ = ("_key",)

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def public_key(self) -> PublicKey:
        return Ed25519PublicKey(self._key.public_key())

    def to_pem(self) -> bytes:
        return self._key.private_bytes(_PEM, _PKCS8, _NOENC)


class IntlSuite(Suite):
    name = "intl"
    hash_name = "sha256"
    aead_key_size = 32

    def hash(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def generate_private_key(self) -> PrivateKey:
        return Ed25519PrivateKey(ed25519.Ed25519PrivateKey.generate())

    def private_key_from_seed(self, seed: bytes) -> PrivateKey:
        if len(seed) < 32:
            raise KeyFormatError("a key seed must be at least 32 bytes")
        return Ed25519PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest()))

    def load_private_key_pem(self, pem: bytes) -> PrivateKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError(f"not a PKCS#8 PEM private key: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise KeyFormatError("not an Ed25519 private key (the intl suite signs with Ed25519)")
        return Ed25519PrivateKey(key)

    def _load_public_key_der(self, der: bytes) -> PublicKey:
        try:
            key = serialization.load_der_public_key(der)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError(f"not a SubjectPublicKeyInfo DER public key: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise KeyFormatError("not an Ed25519 public key (the intl suite verifies Ed25519)")
        return Ed25519PublicKey(key)

    def load_public_key_pem(self, pem: bytes) -> PublicKey:
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError(f"not a SubjectPublicKeyInfo PEM public key: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise KeyFormatError("not an Ed25519 public key (the intl suite verifies Ed25519)")
        return Ed25519PublicKey(key)

    def aead_encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        return AESGCM(key).encrypt(nonce, plaintext, associated_data)

    def aead_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes = b"") -> bytes:
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, associated_data)
        except InvalidTag as exc:
            raise CryptoError("AEAD tag does not verify: wrong key, nonce, data or associated data") from exc

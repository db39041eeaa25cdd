"""The suite interface every crypto suite implements.

Pure: hashing, signing and verifying are functions of their inputs. :meth:`Suite.verify_batch`
verifies on the calling thread; spreading a large batch over a thread pool (one worker per core)
is the shell's business, in :mod:`pilotchain.crypto.parallel`, which the deterministic core never
imports.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from functools import lru_cache

from pilotchain.errors import CoreError


class CryptoError(CoreError):
    """Base of every error this package raises."""


class KeyFormatError(CryptoError):
    """A key that is not a valid PEM/DER key of the expected suite."""


class UnsupportedSuite(CryptoError):
    """A suite name pilotchain does not know."""


class PublicKey(abc.ABC):
    """A verifier. Obtain one with :meth:`Suite.public_key` (cached)."""

    @abc.abstractmethod
    def to_der(self) -> bytes:
        """SubjectPublicKeyInfo DER: the canonical form stored in identities and on chain."""

    @abc.abstractmethod
    def to_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM."""

    @abc.abstractmethod
    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is valid over ``message``; never raises for bad input."""


class PrivateKey(abc.ABC):
    """A signer."""

    @abc.abstractmethod
    def sign(self, message: bytes) -> bytes:
        """Signature over ``message`` in the suite's standard encoding."""

    @abc.abstractmethod
    def public_key(self) -> PublicKey: ...

    @abc.abstractmethod
    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM."""


class Suite(abc.ABC):
    """One network's choice of signature, hash and AEAD algorithms."""

    #: "intl" or "gm"
    name: str
    #: the hash's name as openssl dgst knows it ("sha256", "sm3")
    hash_name: str
    #: digest size in bytes
    digest_size: int = 32
    #: AEAD key size in bytes
    aead_key_size: int
    #: AEAD nonce size in bytes
    aead_nonce_size: int = 12
    #: AEAD tag size in bytes (appended to the ciphertext)
    aead_tag_size: int = 16
    #: human-readable algorithm names, for the CLI and the docs
    signature_name: str
    aead_name: str
    #: batches at least this long are worth spreading over the verification pool (below: the
    #: calling thread); read by :mod:`pilotchain.crypto.parallel`
    verify_batch_parallel_min: int = 64

    @abc.abstractmethod
    def hash(self, data: bytes) -> bytes:
        """The suite's 32-byte digest of ``data``."""

    def hash_chunks(self, chunks: Iterable[bytes]) -> bytes:
        """The digest of the concatenation of ``chunks``, without holding it all in memory."""
        return self.hash(b"".join(chunks))

    @abc.abstractmethod
    def generate_private_key(self) -> PrivateKey:
        """A fresh key from the operating system's CSPRNG (never used inside the core)."""

    @abc.abstractmethod
    def private_key_from_seed(self, seed: bytes) -> PrivateKey:
        """A key derived deterministically from ``seed`` (>= 32 bytes): for tests and the simulator."""

    @abc.abstractmethod
    def load_private_key_pem(self, pem: bytes) -> PrivateKey: ...

    @abc.abstractmethod
    def _load_public_key_der(self, der: bytes) -> PublicKey: ...

    @abc.abstractmethod
    def load_public_key_pem(self, pem: bytes) -> PublicKey: ...

    def public_key(self, der: bytes) -> PublicKey:
        """The verifier for a SubjectPublicKeyInfo DER key (parsed once, then cached)."""
        return self._cached_public_key(bytes(der))

    @lru_cache(maxsize=65536)  # noqa: B019 - suites are process-wide singletons
    def _cached_public_key(self, der: bytes) -> PublicKey:
        key = self._load_public_key_der(der)
        if key.to_der() != der:
            # A key must have one byte string: the chain and identities compare keys as bytes.
            raise KeyFormatError("not the canonical SubjectPublicKeyInfo DER encoding of the key")
        return key

    def verify(self, public_key_der: bytes, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` by the key ``public_key_der`` is valid over ``message``."""
        try:
            key = self.public_key(public_key_der)
        except KeyFormatError:
            return False
        return key.verify(message, signature)

    def verify_batch(self, items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
        """Verify many ``(public_key_der, message, signature)`` triples on this thread; one bool
        each, in order (the same answers as :meth:`verify` one by one). For a large batch on all
        cores, see :func:`pilotchain.crypto.parallel.verify_batch_parallel`."""
        return self._verify_serial(items)

    def _verify_serial(self, items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
        # :meth:`verify` per item, with each distinct key resolved once per chunk (a batch comes
        # from a few signers; this runs holding the GIL between the C calls)
        keys: dict[bytes, PublicKey | None] = {}
        results: list[bool] = []
        for der, message, signature in items:
            if der in keys:
                key = keys[der]
            else:
                try:
                    key = self.public_key(der)
                except KeyFormatError:
                    key = None
                keys[der] = key
            results.append(key is not None and key.verify(message, signature))
        return results

    @abc.abstractmethod
    def aead_encrypt(
        self, key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes = b""
    ) -> bytes:
        """Ciphertext with the 16-byte tag appended."""

    @abc.abstractmethod
    def aead_decrypt(
        self, key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes = b""
    ) -> bytes:
        """Plaintext; raises :class:`CryptoError` when the tag does not verify."""


def check_aead_arguments(suite: Suite, key: bytes, nonce: bytes) -> None:
    """Raise :class:`CryptoError` naming the expected sizes when ``key`` or ``nonce`` is wrong."""
    if len(key) != suite.aead_key_size:
        raise CryptoError(
            f"{suite.aead_name} needs a {suite.aead_key_size}-byte key, got {len(key)} bytes"
        )
    if len(nonce) != suite.aead_nonce_size:
        raise CryptoError(
            f"{suite.aead_name} needs a {suite.aead_nonce_size}-byte nonce, got {len(nonce)} bytes"
        )

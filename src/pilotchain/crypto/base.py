"""The suite interface every crypto suite implements.

Batch verification: :meth:`Suite.verify_batch` verifies small batches on the calling thread and
spreads large ones over a process-wide thread pool with one worker per core, in contiguous
chunks (one chunk per worker). Both suites' verifiers are C calls that release the GIL (PyNaCl's
cffi calls and ctypes calls both do), so the threads really run in parallel; see
``docs/crypto.md`` for the measurements behind the thresholds.
"""

from __future__ import annotations

import abc
import asyncio
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Final

#: Upper bound on the verification pool's size, whatever os.cpu_count() says.
VERIFY_WORKERS_MAX: Final = 64

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


#: Environment variable that sets the verification threads per process (default: one per core).
VERIFY_WORKERS_ENV: Final = "PILOTCHAIN_VERIFY_WORKERS"


def verify_worker_count() -> int:
    """Threads used by :meth:`Suite.verify_batch` for a large batch: ``PILOTCHAIN_VERIFY_WORKERS``
    when set (e.g. 1 when several nodes share a machine's cores), else one per core."""
    configured = os.environ.get(VERIFY_WORKERS_ENV, "").strip()
    if configured:
        try:
            count = int(configured)
        except ValueError:
            raise ValueError(f"{VERIFY_WORKERS_ENV}={configured!r} is not a whole number of threads") from None
        return max(1, min(count, VERIFY_WORKERS_MAX))
    return max(1, min(os.cpu_count() or 1, VERIFY_WORKERS_MAX))


def _forget_pool_in_child() -> None:
    # A forked child inherits the executor object but not its threads: start a fresh one.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


def _verify_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=verify_worker_count(), thread_name_prefix="pilotchain-verify"
            )
        return _pool


class CryptoError(Exception):
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
    #: batches at least this long are spread over the verification pool (below: the calling thread)
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
        """Verify many ``(public_key_der, message, signature)`` triples; one bool each, in order.

        Large batches (``>= verify_batch_parallel_min``) are split into one contiguous chunk per
        core and verified on the shared pool; the answer is the same as verifying one by one.
        """
        chunks = self._chunks(items)
        if len(chunks) <= 1:
            return self._verify_serial(items)
        results: list[bool] = []
        for chunk_results in _verify_pool().map(self._verify_serial, chunks):
            results.extend(chunk_results)
        assert len(results) == len(items)
        return results

    async def verify_batch_async(self, items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
        """:meth:`verify_batch` without blocking the running event loop: the chunks run on the
        shared pool directly (no thread that only waits for the others)."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        chunks = self._chunks(items)
        pool = _verify_pool()
        verdicts = await asyncio.gather(*(loop.run_in_executor(pool, self._verify_serial, chunk) for chunk in chunks))
        results = [ok for chunk_verdicts in verdicts for ok in chunk_verdicts]
        assert len(results) == len(items)
        return results

    def _chunks(self, items: Sequence[tuple[bytes, bytes, bytes]]) -> list[Sequence[tuple[bytes, bytes, bytes]]]:
        """One contiguous chunk per verify worker for a large batch; the whole batch otherwise."""
        workers = verify_worker_count()
        if workers == 1 or len(items) < self.verify_batch_parallel_min:
            return [items]
        chunk_size = -(-len(items) // workers)  # ceiling division: at most `workers` chunks
        return [items[start : start + chunk_size] for start in range(0, len(items), chunk_size)]

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

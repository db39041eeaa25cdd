"""VaultStore: the vault's payload store: encrypted at rest, crash-safe, streamed in bounded memory.

Theory of operation
-------------------
A vault home holds::

    <home>/LOCK              flock'ed while a VaultStore has the home open (one process at a time)
    <home>/master.key        the master key, JSON, mode 0600; wrapped by a passphrase if one was
                             given when the vault was created (PBKDF2 over the suite's hash)
    <home>/meta/             LMDB (sync + metasync): the metadata databases below
    <home>/objects/<name>    one ciphertext file per live payload (name: 32 random hex digits)
    <home>/tmp/<name>.part   a payload being written (never read; removed when the store opens)

    meta     b"format", b"suite", b"key_check", b"usage"
    rows     payload id (ASCII)  -> row MAC (suite digest) || canonical _Row (metadata + sealing)
    objects  object name (ASCII) -> payload id: which files in objects/ are referenced

Keys. The master key (the suite's AEAD key size) is never used directly: HKDF over the suite's hash
derives a key-wrapping key and a row-MAC key from it. Every payload gets its own random data key,
wrapped (AEAD) under the wrapping key with the payload id as associated data. Every metadata row
carries an HMAC under the row-MAC key, so metadata edited on disk (a changed commitment, an undone
purge, rows or wrapped keys swapped between ids) is refused as ``TAMPERED``. ``key_check`` (a MAC
of a constant) tells a wrong master key file from tampering when the store opens.

Chunks (a STREAM construction, Hoang-Reyhanitabar-Rogaway-Vizár 2015). The plaintext is cut into
``chunk_bytes`` pieces (the last may be shorter; an empty payload is one empty chunk). Chunk ``i``
is sealed with the suite's AEAD under the data key, nonce = ``prefix (7 random bytes) ‖ i (u32) ‖
last (u8)``, associated data = ``"pilotchain/vault/chunk/v1\\0" ‖ len(id) (u16) ‖ id ‖ i (u64) ‖
last (u8)``. A reordered, dropped, duplicated or appended chunk, a chunk from another payload, or a
stream cut after a chunk not sealed as last fails authentication. Ciphertext chunks are stored
back to back; the file is exactly ``size + chunk_count * tag`` bytes.

Commitment. ``put`` computes ``H(salt ‖ payload)`` with the suite's hash while streaming (the same
pass that encrypts), with a fresh 32-byte salt for an own payload or the salt received with a copy.

Write protocol (:meth:`VaultStore.put`): reserve the id (refused if live, purged or being written);
stream plaintext → seal → write to ``tmp/<name>.part``; fsync the file; rename it to
``objects/<name>``; fsync ``objects/``; one LMDB transaction (sync) adds the row, the object
reference and the usage counters: that commit is the moment the payload exists, and ``put``
returns after it. Any failure before the commit (over size, a bad chunk iterator, a full disk, the
store closing) removes the file and leaves nothing. Purge commits the tombstone (no wrapped key,
no salt) first, then unlinks the file and fsyncs ``objects/``. Opening removes everything under
``tmp/`` and every file in ``objects/`` no row references (a write or purge cut off by a crash);
this costs one directory listing of ``objects/``.

Threads: every method may be called from a thread pool. Writers stream outside any lock (several
puts proceed in parallel); LMDB serialises the commits. :meth:`VaultStore.close` makes running
puts stop at their next chunk and waits for every running call.

Not covered: a rollback of the whole home to an older copy (every row still verifies; the chain's
records are the reference), and LMDB free pages, which may keep an old copy of a purged payload's
wrapped key until reused (it is useless without the master key; rotating the master key is the
remedy for a key that may have leaked).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import enum
import errno
import fcntl
import hmac
import os
import re
import secrets
import stat
import struct
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import lmdb
import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.crypto import (
    CryptoError,
    Suite,
    UnsupportedSuite,
    get_suite,
    hkdf_expand,
    hkdf_extract,
    hmac_digest,
)
from pilotchain.errors import CoreError, InvariantBroken
from pilotchain.identity.records import ORG_ID_PATTERN

__all__ = [
    "CHUNK_BYTES",
    "ChunkCipher",
    "PAYLOAD_BYTES_MAX",
    "SALT_BYTES",
    "CopyOrigin",
    "PayloadPage",
    "PayloadRole",
    "Purge",
    "PurgeState",
    "RecoveryReport",
    "StoredPayload",
    "VaultLimits",
    "VaultStore",
    "VaultStoreError",
    "VaultStoreReason",
    "VaultUsage",
    "check_payload_id",
]

#: default plaintext bytes per sealed chunk
CHUNK_BYTES: Final = 1024 * 1024
#: default largest payload a vault accepts
PAYLOAD_BYTES_MAX: Final = 64 * 1024 * 1024
#: the commitment salt of every payload
SALT_BYTES: Final = 32
PAYLOAD_ID_CHARS_MAX: Final = 128
CLASSIFICATION_CHARS_MAX: Final = 64
MEDIA_TYPE_CHARS_MAX: Final = 255
PURGE_REASON_CHARS_MAX: Final = 256
TIME_MS_MAX: Final = 2**63 - 1
PASSPHRASE_BYTES_MAX: Final = 1024
#: PBKDF2 iterations for a new passphrase-protected master key (as identity key files)
KDF_ITERATIONS: Final = 600_000
#: the most iterations a key file may ask for (a hostile file must not stall the opener)
KDF_ITERATIONS_MAX: Final = 10_000_000
#: the most rows one :meth:`VaultStore.list` call reads, whatever it returns
LIST_SCAN_ROWS_MAX: Final = 10_000
#: at most this many payload ids are named in a :class:`RecoveryReport`
RECOVERY_IDS_MAX: Final = 100

FORMAT: Final = b"pilotchain-vault/1"
KEY_FILE_FORMAT: Final = "pilotchain-vault-key/1"
KEY_FILE_NAME: Final = "master.key"
KEY_FILE_BYTES_MAX: Final = 64 * 1024
PASSPHRASE_ENV_HINT: Final = "PILOTCHAIN_KEY_PASSPHRASE"

_ROW_FORMAT: Final = 1
_NONCE_PREFIX_BYTES: Final = 7
_KDF_SALT_BYTES: Final = 16
_OBJECT_NAME_HEX: Final = 32
_CHUNK_INDEX_MAX: Final = 2**32 - 1
_DATABASES: Final = ("meta", "rows", "objects")
_MODE_PRIVATE: Final = 0o600
_MODE_DIRECTORY: Final = 0o700

_CHUNK_DOMAIN: Final = b"pilotchain/vault/chunk/v1\x00"
_DATA_KEY_DOMAIN: Final = b"pilotchain/vault/data-key/v1\x00"
_ROW_MAC_DOMAIN: Final = b"pilotchain/vault/row/v1\x00"
_KEY_CHECK_DOMAIN: Final = b"pilotchain/vault/key-check/v1\x00"
_MASTER_WRAP_DOMAIN: Final = b"pilotchain/vault/master-key/v1\x00"
_HKDF_SALT: Final = b"pilotchain/vault/v1"

_PAYLOAD_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", re.ASCII)
_CLASSIFICATION_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_TOKEN: Final = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE_PATTERN: Final = re.compile(
    rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|\"[^\"\\\x00-\x1f\x7f]*\"))*", re.ASCII
)
_OBJECT_NAME_PATTERN: Final = re.compile(r"[0-9a-f]{32}", re.ASCII)


# -- errors -----------------------------------------------------------------------------------------


class VaultStoreReason(enum.StrEnum):
    """Why a :class:`VaultStore` call was refused."""

    NOT_FOUND = "not_found"  # no payload has this id
    PURGED = "purged"  # the payload existed and was purged (a tombstone answers)
    DUPLICATE = "duplicate"  # the id is taken (live, purged or being written)
    TOO_LARGE = "too_large"  # over VaultLimits.payload_bytes_max; nothing was kept
    TAMPERED = "tampered"  # ciphertext or metadata altered, missing or swapped
    BAD_ID = "bad_id"  # a payload id that is not 1..128 safe characters
    BAD_ARGUMENT = "bad_argument"  # another argument out of its bounds
    COMMITMENT_MISMATCH = "commitment_mismatch"  # a copy whose bytes miss the expected commitment
    PASSPHRASE_REQUIRED = "passphrase_required"  # the master key is passphrase-protected
    WRONG_KEY = "wrong_key"  # wrong passphrase, or a master key of another vault
    KEY_FILE = "key_file"  # the key file is missing, unreadable, too open or malformed
    WRONG_SUITE = "wrong_suite"  # the vault was created with the other crypto suite
    LOCKED = "locked"  # another VaultStore has the home open
    CLOSED = "closed"  # the store was closed
    STORAGE_FULL = "storage_full"  # no space on the device or the LMDB map is full
    IO_ERROR = "io_error"  # the operating system refused a read or write
    UNKNOWN_FORMAT = "unknown_format"  # a home this version cannot read


class VaultStoreError(CoreError):
    """A refused or failed :class:`VaultStore` call: ``reason`` says which kind, the message what
    to do next. Only ``TOO_LARGE``, ``BAD_*``, ``DUPLICATE``, ``COMMITMENT_MISMATCH`` and
    ``NOT_FOUND`` are the caller's to fix; ``TAMPERED`` means the home was altered."""

    def __init__(self, reason: VaultStoreReason, message: str, *, payload_id: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.payload_id = payload_id


# -- records ----------------------------------------------------------------------------------------


class PayloadRole(enum.StrEnum):
    OWN = "own"  # this organisation's own payload
    COPY = "copy"  # a copy delivered by another organisation


class PurgeState(enum.StrEnum):
    LIVE = "live"
    PURGED = "purged"


class CopyOrigin(Record, frozen=True):
    """Where a copy came from: the delivering organisation and the request it answered."""

    from_org: str
    request_id: str


class Purge(Record, frozen=True):
    reason: str
    purged_ms: int


class StoredPayload(Record, frozen=True):
    """What the vault records about one payload (a purged one keeps this as its tombstone, with
    ``salt`` emptied: the commitment stays checkable against the chain but no longer confirms a
    guess of the destroyed content)."""

    payload_id: str
    owner_org: str
    role: PayloadRole
    copy_of: CopyOrigin | None  # set exactly when role is COPY
    media_type: str
    size_bytes: int
    salt: bytes
    commitment: bytes  # H(salt ‖ payload) with the suite's hash
    classification: str
    retention_until_ms: int
    created_ms: int
    purge: Purge | None = None

    @property
    def state(self) -> PurgeState:
        return PurgeState.LIVE if self.purge is None else PurgeState.PURGED


class VaultUsage(Record, frozen=True):
    """Counters for metrics, kept in the same transactions as the rows they count."""

    live_count: int = 0
    live_bytes: int = 0  # plaintext bytes of live payloads
    stored_bytes: int = 0  # ciphertext bytes in objects/
    purged_count: int = 0


class _Sealing(Record, frozen=True):
    """How a live payload's body is encrypted; dropped (crypto-shredded) at purge."""

    object_name: str
    chunk_bytes: int
    chunk_count: int
    nonce_prefix: bytes
    wrap_nonce: bytes
    wrapped_key: bytes


class _Row(Record, frozen=True):
    format: int
    payload: StoredPayload
    sealing: _Sealing | None


class _KeyFile(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    suite: str
    protection: str  # "none" or "passphrase"
    key: str  # base64: the master key, or its AEAD ciphertext under the passphrase key
    kdf: str | None = None  # "pbkdf2-hmac-sha256" / "pbkdf2-hmac-sm3"
    kdf_salt: str | None = None
    kdf_iterations: int | None = None
    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class VaultLimits:
    payload_bytes_max: int = PAYLOAD_BYTES_MAX
    chunk_bytes: int = CHUNK_BYTES
    #: LMDB map for metadata only (rows are a few hundred bytes); the file grows as used
    map_size_bytes: int = 1024 * 1024 * 1024
    list_page_max: int = 1000
    #: PBKDF2 iterations when a passphrase-protected key file is created
    kdf_iterations: int = KDF_ITERATIONS

    def __post_init__(self) -> None:
        if not (16 <= self.chunk_bytes <= 16 * 1024 * 1024):
            raise InvariantBroken("VaultLimits.chunk_bytes must be 16 B .. 16 MiB")
        if not (0 <= self.payload_bytes_max <= self.chunk_bytes * _CHUNK_INDEX_MAX):
            raise InvariantBroken("VaultLimits.payload_bytes_max must fit 2**32 chunks")
        if not (self.map_size_bytes > 0 and 1 <= self.list_page_max <= LIST_SCAN_ROWS_MAX):
            raise InvariantBroken("VaultLimits.map_size_bytes > 0, list_page_max 1..10,000")
        if not (1 <= self.kdf_iterations <= KDF_ITERATIONS_MAX):
            raise InvariantBroken(f"VaultLimits.kdf_iterations must be 1..{KDF_ITERATIONS_MAX}")


@dataclass(frozen=True, slots=True)
class PayloadPage:
    """One page of :meth:`VaultStore.list`; pass ``next_after`` back for the next page (``None``:
    no more rows)."""

    items: tuple[StoredPayload, ...]
    next_after: str | None


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What opening found and cleaned: leftovers of writes and purges cut off by a crash, and live
    payloads whose ciphertext file is missing (they read as ``TAMPERED``; restore from backup)."""

    removed_temporary: int
    removed_orphans: int
    missing_objects: tuple[str, ...]


# -- argument checks --------------------------------------------------------------------------------


def _refuse(reason: VaultStoreReason, message: str, payload_id: str | None = None) -> VaultStoreError:
    return VaultStoreError(reason, message, payload_id=payload_id)


def check_payload_id(payload_id: object) -> str:
    """``payload_id`` if it is 1..128 ASCII letters, digits and ``._:-`` starting with a letter or
    digit; else ``BAD_ID``."""
    if not isinstance(payload_id, str) or not _PAYLOAD_ID_PATTERN.fullmatch(payload_id):
        raise _refuse(
            VaultStoreReason.BAD_ID,
            f"payload id {payload_id!r} is not 1..{PAYLOAD_ID_CHARS_MAX} characters of A-Z a-z 0-9 "
            "and . _ : - starting with a letter or digit; choose such an id",
        )
    return payload_id


def _check_text(name: str, value: object, pattern: re.Pattern[str], what: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _refuse(VaultStoreReason.BAD_ARGUMENT, f"{name} {value!r} is not {what}")


def _check_time(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= TIME_MS_MAX:
        raise _refuse(
            VaultStoreReason.BAD_ARGUMENT, f"{name} must be milliseconds since the epoch, 0..2**63-1"
        )


def _check_metadata(
    owner_org: str, media_type: str, classification: str, retention_until_ms: int, created_ms: int
) -> None:
    _check_text("owner_org", owner_org, ORG_ID_PATTERN, "an organisation id (a-z 0-9 -, 1..63)")
    if isinstance(media_type, str) and len(media_type) > MEDIA_TYPE_CHARS_MAX:
        raise _refuse(VaultStoreReason.BAD_ARGUMENT, f"media_type is over {MEDIA_TYPE_CHARS_MAX} characters")
    _check_text("media_type", media_type, _MEDIA_TYPE_PATTERN, "a media type such as application/pdf")
    _check_text(
        "classification", classification, _CLASSIFICATION_PATTERN,
        f"a label of 1..{CLASSIFICATION_CHARS_MAX} characters of A-Z a-z 0-9 . _ -",
    )
    _check_time("retention_until_ms", retention_until_ms)
    _check_time("created_ms", created_ms)


# -- the chunk cipher (pure) ------------------------------------------------------------------------


class ChunkCipher:
    """Seals or opens the chunks of one payload in order (the STREAM construction above). Each
    instance goes one way, once through; :meth:`seal` and :meth:`open` refuse anything after the
    chunk marked last."""

    def __init__(self, suite: Suite, data_key: bytes, nonce_prefix: bytes, payload_id: str) -> None:
        if not (len(data_key) == suite.aead_key_size and len(nonce_prefix) == _NONCE_PREFIX_BYTES):
            raise InvariantBroken("a chunk cipher needs a suite-sized key and a 7-byte nonce prefix")
        if not (suite.aead_nonce_size == _NONCE_PREFIX_BYTES + 5):
            raise InvariantBroken("the chunk nonce layout assumes a 12-byte AEAD nonce")
        self._suite = suite
        self._key = data_key
        self._prefix = nonce_prefix
        id_bytes = payload_id.encode("ascii")
        self._ad_head = _CHUNK_DOMAIN + struct.pack(">H", len(id_bytes)) + id_bytes
        self.payload_id = payload_id
        self.index = 0
        self.finished = False

    def _nonce_and_ad(self, last: bool) -> tuple[bytes, bytes]:
        if self.finished or self.index > _CHUNK_INDEX_MAX:
            raise InvariantBroken("a chunk after the last chunk of a payload")
        flag = 1 if last else 0
        nonce = self._prefix + struct.pack(">IB", self.index, flag)
        return nonce, self._ad_head + struct.pack(">QB", self.index, flag)

    def seal(self, plaintext: bytes, *, last: bool) -> bytes:
        nonce, associated_data = self._nonce_and_ad(last)
        sealed = self._suite.aead_encrypt(self._key, nonce, plaintext, associated_data)
        self.index += 1
        self.finished = last
        return sealed

    def open(self, ciphertext: bytes, *, last: bool) -> bytes:
        nonce, associated_data = self._nonce_and_ad(last)
        try:
            plaintext = self._suite.aead_decrypt(self._key, nonce, ciphertext, associated_data)
        except CryptoError as exc:
            raise _refuse(
                VaultStoreReason.TAMPERED,
                f"chunk {self.index} of payload {self.payload_id!r} does not authenticate "
                "(altered, reordered, cut off or from another payload); restore the vault home "
                "from backup or ask the owner to deliver it again",
                self.payload_id,
            ) from exc
        self.index += 1
        self.finished = last
        return plaintext


class _SourceFailed(CoreError):
    """Carries an exception raised by the caller's chunk iterator past the OS-error translation:
    a broken upload is the caller's error, not the store's."""

    def __init__(self, original: Exception) -> None:
        super().__init__(str(original))
        self.original = original


def _pull(pieces: Iterable[bytes]) -> Iterator[bytes]:
    iterator = iter(pieces)
    while True:
        try:
            piece = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise _SourceFailed(exc) from exc
        yield piece


def _fixed_chunks(pieces: Iterable[bytes], chunk_bytes: int, size_max: int) -> Iterator[bytes]:
    """``pieces`` re-cut into ``chunk_bytes`` chunks (the last may be shorter; none when empty),
    holding at most one chunk; ``TOO_LARGE`` as soon as more than ``size_max`` bytes arrive."""
    buffer = bytearray()
    total = 0
    for piece in _pull(pieces):
        if not isinstance(piece, bytes | bytearray | memoryview):
            raise _refuse(
                VaultStoreReason.BAD_ARGUMENT,
                f"payload chunks must be bytes, got {type(piece).__name__}",
            )
        view = memoryview(piece).cast("B")
        total += len(view)
        if total > size_max:
            raise _refuse(
                VaultStoreReason.TOO_LARGE,
                f"the payload is over this vault's limit of {size_max} bytes; nothing was stored "
                "(split it, or raise VaultLimits.payload_bytes_max)",
            )
        if not buffer and len(view) == chunk_bytes and isinstance(piece, bytes):
            yield piece  # the common case, a caller already cutting chunks: no copy
            continue
        while len(view) > 0:
            if not buffer and len(view) >= chunk_bytes:  # whole chunks straight from the piece
                yield bytes(view[:chunk_bytes])
                view = view[chunk_bytes:]
                continue
            take = min(chunk_bytes - len(buffer), len(view))
            buffer += view[:take]
            view = view[take:]
            if len(buffer) == chunk_bytes:
                yield bytes(buffer)
                buffer.clear()
    if buffer:
        yield bytes(buffer)


# -- key material -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Keys:
    wrap_key: bytes  # wraps data keys (AEAD)
    mac_key: bytes  # authenticates rows (HMAC)

    def __repr__(self) -> str:  # never shows a key
        return "_Keys(...)"


def _derive_keys(suite: Suite, master_key: bytes) -> _Keys:
    pseudorandom_key = hkdf_extract(suite, _HKDF_SALT, master_key)
    return _Keys(
        wrap_key=hkdf_expand(suite, pseudorandom_key, b"data-key-wrap", suite.aead_key_size),
        mac_key=hkdf_expand(suite, pseudorandom_key, b"row-mac", suite.digest_size),
    )


def _key_check(suite: Suite, keys: _Keys) -> bytes:
    return hmac_digest(suite, keys.mac_key, _KEY_CHECK_DOMAIN)


def _passphrase_key(suite: Suite, passphrase: bytes, salt: bytes, iterations: int) -> bytes:
    algorithm: hashes.HashAlgorithm = hashes.SM3() if suite.name == "gm" else hashes.SHA256()
    return PBKDF2HMAC(algorithm, suite.aead_key_size, salt, iterations).derive(passphrase)


def _kdf_name(suite: Suite) -> str:
    return f"pbkdf2-hmac-{suite.hash_name}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(path: Path, field: str, text: str | None) -> bytes:
    if text is None:
        raise _refuse(VaultStoreReason.KEY_FILE, f"{path}: field {field!r} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _refuse(VaultStoreReason.KEY_FILE, f"{path}: field {field!r} is not base64") from exc


def _check_passphrase(passphrase: bytes | None) -> None:
    if passphrase is not None and (
        not isinstance(passphrase, bytes) or not 1 <= len(passphrase) <= PASSPHRASE_BYTES_MAX
    ):
        raise _refuse(
            VaultStoreReason.BAD_ARGUMENT, f"a vault passphrase is 1..{PASSPHRASE_BYTES_MAX} bytes"
        )


def _new_key_file(suite: Suite, master_key: bytes, passphrase: bytes | None, iterations: int) -> bytes:
    if passphrase is None:
        record = _KeyFile(KEY_FILE_FORMAT, suite.name, "none", _b64(master_key))
    else:
        salt = secrets.token_bytes(_KDF_SALT_BYTES)
        nonce = secrets.token_bytes(suite.aead_nonce_size)
        wrapping = _passphrase_key(suite, passphrase, salt, iterations)
        sealed = suite.aead_encrypt(wrapping, nonce, master_key, _MASTER_WRAP_DOMAIN + suite.name.encode())
        record = _KeyFile(
            KEY_FILE_FORMAT, suite.name, "passphrase", _b64(sealed),
            kdf=_kdf_name(suite), kdf_salt=_b64(salt), kdf_iterations=iterations, nonce=_b64(nonce),
        )
    return msgspec.json.format(msgspec.json.encode(record), indent=2) + b"\n"


def _read_key_file(path: Path, suite: Suite, passphrase: bytes | None) -> bytes:
    """The master key from ``path``; every problem is a VaultStoreError naming the fix."""
    try:
        with open(path, "rb") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            if mode & 0o077:
                raise _refuse(
                    VaultStoreReason.KEY_FILE,
                    f"{path} holds the vault's master key but others can read it (mode {mode:04o}); "
                    f"run: chmod 600 {path}",
                )
            data = handle.read(KEY_FILE_BYTES_MAX + 1)
    except FileNotFoundError as exc:
        raise _refuse(
            VaultStoreReason.KEY_FILE,
            f"{path} is missing but the vault holds metadata: without its master key no payload "
            "can be read; restore master.key from your key backup",
        ) from exc
    except OSError as exc:
        raise _refuse(VaultStoreReason.KEY_FILE, f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > KEY_FILE_BYTES_MAX:
        raise _refuse(VaultStoreReason.KEY_FILE, f"{path} is not a vault key file (too large)")
    try:
        record = msgspec.json.decode(data, type=_KeyFile)
    except msgspec.DecodeError as exc:
        raise _refuse(VaultStoreReason.KEY_FILE, f"{path} is not a vault key file: {exc}") from exc
    if record.format != KEY_FILE_FORMAT:
        raise _refuse(
            VaultStoreReason.UNKNOWN_FORMAT,
            f"{path} has format {record.format!r}; this version reads {KEY_FILE_FORMAT!r}",
        )
    if record.suite != suite.name:
        raise _refuse(
            VaultStoreReason.WRONG_SUITE,
            f"{path} is a {record.suite!r} key but the vault was opened with {suite.name!r}; "
            f"open it with suite {record.suite!r}",
        )
    if record.protection == "none":
        if passphrase is not None:
            raise _refuse(
                VaultStoreReason.KEY_FILE,
                f"{path} is not passphrase-protected but a passphrase was given; open the vault "
                "without one (or unset the passphrase setting)",
            )
        key = _unb64(path, "key", record.key)
    elif record.protection == "passphrase":
        key = _unwrap_master_key(path, suite, record, passphrase)
    else:
        raise _refuse(VaultStoreReason.KEY_FILE, f"{path}: unknown protection {record.protection!r}")
    if len(key) != suite.aead_key_size:
        raise _refuse(VaultStoreReason.KEY_FILE, f"{path}: the master key has the wrong size")
    return key


def _unwrap_master_key(path: Path, suite: Suite, record: _KeyFile, passphrase: bytes | None) -> bytes:
    if passphrase is None:
        raise _refuse(
            VaultStoreReason.PASSPHRASE_REQUIRED,
            f"{path} is protected by a passphrase; pass passphrase= (a service reads it with "
            f"pilotchain.identity.files.key_passphrase: a passphrase file or {PASSPHRASE_ENV_HINT})",
        )
    iterations = record.kdf_iterations
    if record.kdf != _kdf_name(suite) or iterations is None or not 1 <= iterations <= KDF_ITERATIONS_MAX:
        raise _refuse(
            VaultStoreReason.KEY_FILE,
            f"{path}: key derivation {record.kdf!r} with {iterations!r} iterations is refused",
        )
    salt = _unb64(path, "kdf_salt", record.kdf_salt)
    nonce = _unb64(path, "nonce", record.nonce)
    sealed = _unb64(path, "key", record.key)
    try:
        wrapping = _passphrase_key(suite, passphrase, salt, iterations)
        return suite.aead_decrypt(wrapping, nonce, sealed, _MASTER_WRAP_DOMAIN + suite.name.encode())
    except CryptoError as exc:
        raise _refuse(
            VaultStoreReason.WRONG_KEY,
            f"wrong passphrase for {path} (or the file was altered); give the passphrase the vault "
            "was created with",
        ) from exc


# -- file helpers -----------------------------------------------------------------------------------


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if not (written > 0):
            raise InvariantBroken("os.write wrote nothing")
        view = view[written:]


def _write_file_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _MODE_PRIVATE)
        try:
            os.fchmod(fd, _MODE_PRIVATE)  # the umask must not change it
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        _fsync_directory(path.parent)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def _translate_os_errors(action: str, payload_id: str | None = None) -> Iterator[None]:
    """OS and LMDB errors become VaultStoreError at this boundary."""
    try:
        yield
    except VaultStoreError:
        raise
    except lmdb.MapFullError as exc:
        raise _refuse(
            VaultStoreReason.STORAGE_FULL,
            f"{action}: the metadata map is full; raise VaultLimits.map_size_bytes",
            payload_id,
        ) from exc
    except (OSError, lmdb.Error) as exc:
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
            raise _refuse(
                VaultStoreReason.STORAGE_FULL,
                f"{action}: no space left on the device; free space and retry",
                payload_id,
            ) from exc
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _refuse(VaultStoreReason.IO_ERROR, f"{action}: {detail}", payload_id) from exc


# -- the store --------------------------------------------------------------------------------------


class VaultStore:
    """An organisation's payload store. Open with :meth:`open`; every method is synchronous and
    may be called from several threads at once."""

    path: Path
    suite: Suite
    limits: VaultLimits
    #: what opening cleaned up after a crash
    recovery: RecoveryReport
    _keys: _Keys
    _condition: threading.Condition
    _active: int
    _closing: bool
    _writing: set[str]
    _lock_fd: int | None
    _env: Any
    _dbs: dict[str, Any]
    _objects: Path
    _tmp: Path

    def __init__(self, *_: Any, **__: Any) -> None:
        raise TypeError("use VaultStore.open(path, suite_name, passphrase=None)")

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        suite_name: str,
        passphrase: bytes | None = None,
        *,
        limits: VaultLimits | None = None,
    ) -> VaultStore:
        """Open the vault home at ``path``, creating it (and its master key, wrapped by
        ``passphrase`` if given) when it does not exist, then clean what a crash left behind
        (:attr:`recovery` says what)."""
        try:
            suite = get_suite(suite_name)
        except UnsupportedSuite as exc:
            raise _refuse(VaultStoreReason.BAD_ARGUMENT, str(exc)) from exc
        if type(suite).hash_chunks is Suite.hash_chunks:
            raise InvariantBroken(f"suite {suite.name!r} does not hash incrementally")
        _check_passphrase(passphrase)
        self = object.__new__(cls)
        self.path = Path(path)
        self.suite = suite
        self.limits = limits or VaultLimits()
        self._condition = threading.Condition()
        self._active = 0
        self._closing = False
        self._writing = set()
        self._lock_fd = None
        self._env = None
        self._dbs = {}
        try:
            with _translate_os_errors(f"opening the vault at {self.path}"):
                self._open_files()
                self._keys = self._load_keys(passphrase)
                self.recovery = self._recover()
        except BaseException:
            self._release_handles()
            raise
        return self

    def _open_files(self) -> None:
        self.path.mkdir(mode=_MODE_DIRECTORY, parents=True, exist_ok=True)
        self._lock_fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _MODE_PRIVATE)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise _refuse(
                VaultStoreReason.LOCKED,
                f"{self.path} is open in another VaultStore (this or another process); "
                "close it first, one vault service per home",
            ) from exc
        for name in ("meta", "objects", "tmp"):
            (self.path / name).mkdir(mode=_MODE_DIRECTORY, exist_ok=True)
        self._objects = self.path / "objects"
        self._tmp = self.path / "tmp"
        self._env = lmdb.open(
            str(self.path / "meta"),
            map_size=self.limits.map_size_bytes,
            subdir=True,
            max_dbs=len(_DATABASES),
            sync=True,
            metasync=True,
            readahead=False,
            mode=_MODE_PRIVATE,
            max_readers=126,
        )
        for name in _DATABASES:
            self._dbs[name] = self._env.open_db(name.encode())

    def _load_keys(self, passphrase: bytes | None) -> _Keys:
        key_path = self.path / KEY_FILE_NAME
        with self._env.begin(db=self._dbs["meta"]) as txn:
            stored_format = txn.get(b"format")
            stored_suite = txn.get(b"suite")
            stored_check = txn.get(b"key_check")
        if stored_format is None:
            return self._initialise(key_path, passphrase)
        if stored_format != FORMAT:
            raise _refuse(
                VaultStoreReason.UNKNOWN_FORMAT,
                f"{self.path} holds vault format {stored_format!r}; this version reads {FORMAT!r}",
            )
        if stored_suite != self.suite.name.encode():
            raise _refuse(
                VaultStoreReason.WRONG_SUITE,
                f"{self.path} was created with suite "
                f"{(stored_suite or b'?').decode('ascii', 'replace')!r}; open it with that suite",
            )
        keys = _derive_keys(self.suite, _read_key_file(key_path, self.suite, passphrase))
        if stored_check is None or not hmac.compare_digest(stored_check, _key_check(self.suite, keys)):
            raise _refuse(
                VaultStoreReason.WRONG_KEY,
                f"{key_path} is not the master key of the vault in {self.path} (a key file from "
                "another vault?); restore this vault's master.key from your key backup",
            )
        return keys

    def _initialise(self, key_path: Path, passphrase: bytes | None) -> _Keys:
        if any(self._objects.iterdir()):
            raise _refuse(
                VaultStoreReason.UNKNOWN_FORMAT,
                f"{self.path} has payload files but no metadata; restore meta/ from backup "
                "(refusing to start an empty vault over them)",
            )
        if key_path.exists():  # created before a crash, or provisioned by the operator
            master_key = _read_key_file(key_path, self.suite, passphrase)
        else:
            master_key = secrets.token_bytes(self.suite.aead_key_size)
            _write_file_atomic(
                key_path,
                _new_key_file(self.suite, master_key, passphrase, self.limits.kdf_iterations),
            )
        keys = _derive_keys(self.suite, master_key)
        with self._env.begin(write=True, db=self._dbs["meta"]) as txn:
            txn.put(b"format", FORMAT)
            txn.put(b"suite", self.suite.name.encode())
            txn.put(b"key_check", _key_check(self.suite, keys))
            txn.put(b"usage", encode(VaultUsage()))
        # the new directories and LMDB's files must survive a power cut as the first put will
        for directory in (self.path / "meta", self._objects, self._tmp, self.path, self.path.parent):
            _fsync_directory(directory)
        return keys

    def _recover(self) -> RecoveryReport:
        removed_temporary = 0
        for entry in self._tmp.iterdir():
            entry.unlink()
            removed_temporary += 1
        referenced: set[str] = set()
        removed_orphans = 0
        with self._env.begin(db=self._dbs["objects"]) as txn:
            for entry in self._objects.iterdir():
                if not _OBJECT_NAME_PATTERN.fullmatch(entry.name):
                    continue  # not ours: leave it
                if txn.get(entry.name.encode()) is None:
                    entry.unlink()
                    removed_orphans += 1
                else:
                    referenced.add(entry.name)
            missing: list[str] = []
            for name, payload_id in txn.cursor():
                if name.decode("ascii") not in referenced and len(missing) < RECOVERY_IDS_MAX:
                    missing.append(payload_id.decode("ascii"))
        if removed_temporary:
            _fsync_directory(self._tmp)
        if removed_orphans:
            _fsync_directory(self._objects)
        return RecoveryReport(removed_temporary, removed_orphans, tuple(missing))

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop running puts at their next chunk, wait for every running call, release the home.
        Streams already returned by :meth:`read` go on (they hold their file open)."""
        with self._condition:
            if self._closing:
                return
            self._closing = True
            while self._active:
                self._condition.wait()
        self._release_handles()

    def __enter__(self) -> VaultStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _release_handles(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    @contextmanager
    def _operation(self) -> Iterator[None]:
        with self._condition:
            self._check_open()
            self._active += 1
        try:
            yield
        finally:
            with self._condition:
                self._active -= 1
                if self._active == 0:
                    self._condition.notify_all()

    def _check_open(self) -> None:
        if self._closing:
            raise _refuse(VaultStoreReason.CLOSED, f"the vault store at {self.path} is closed; open it again")

    # -- rows ---------------------------------------------------------------------------------

    def _seal_row(self, row: _Row) -> bytes:
        row_bytes = encode(row)
        return hmac_digest(self.suite, self._keys.mac_key, _ROW_MAC_DOMAIN + row_bytes) + row_bytes

    def _open_row(self, payload_id: str, value: bytes) -> _Row:
        mac, row_bytes = value[: self.suite.digest_size], value[self.suite.digest_size :]
        expected = hmac_digest(self.suite, self._keys.mac_key, _ROW_MAC_DOMAIN + row_bytes)
        if not hmac.compare_digest(mac, expected):
            raise self._tampered(payload_id, "its metadata row does not authenticate")
        try:
            row = decode(row_bytes, _Row)
        except CodecError as exc:
            raise InvariantBroken(f"an authenticated row of {payload_id!r} does not decode") from exc
        if row.payload.payload_id != payload_id or row.format != _ROW_FORMAT:
            raise self._tampered(payload_id, "its metadata row belongs to another id")
        return row

    def _tampered(self, payload_id: str, what: str) -> VaultStoreError:
        return _refuse(
            VaultStoreReason.TAMPERED,
            f"payload {payload_id!r}: {what}; the vault home was altered: restore it from backup "
            "or ask the owner to deliver the payload again",
            payload_id,
        )

    def _get_row(self, txn: Any, payload_id: str) -> _Row | None:
        value = txn.get(payload_id.encode("ascii"), db=self._dbs["rows"])
        return None if value is None else self._open_row(payload_id, bytes(value))

    def _load_row(self, payload_id: str) -> _Row:
        with _translate_os_errors(f"reading payload {payload_id!r}", payload_id), self._env.begin() as txn:
            row = self._get_row(txn, payload_id)
        if row is None:
            raise _refuse(
                VaultStoreReason.NOT_FOUND,
                f"no payload {payload_id!r} in this vault; check the id (list() shows what is here)",
                payload_id,
            )
        return row

    @staticmethod
    def _usage(txn: Any, meta: Any) -> VaultUsage:
        value = txn.get(b"usage", db=meta)
        if value is None:
            raise InvariantBroken("the vault metadata has no usage counters")
        return decode(bytes(value), VaultUsage)

    def _object_path(self, payload_id: str) -> Path:
        """The ciphertext file of a live payload (tests and tools use it)."""
        sealing = self._load_row(payload_id).sealing
        if sealing is None:
            raise _refuse(VaultStoreReason.PURGED, f"payload {payload_id!r} is purged", payload_id)
        return self._objects / sealing.object_name

    # -- put ----------------------------------------------------------------------------------

    def put(
        self,
        payload_id: str,
        chunks: Iterable[bytes],
        *,
        owner_org: str,
        media_type: str,
        classification: str,
        retention_until_ms: int,
        created_ms: int,
        salt: bytes | None = None,
        copy_of: CopyOrigin | None = None,
        expected_commitment: bytes | None = None,
    ) -> StoredPayload:
        """Store the payload whose bytes ``chunks`` yields; return after it is durable.

        An own payload (``copy_of=None``) gets a fresh random salt (``salt`` must be ``None``); a
        copy passes the salt it was delivered with and may pass ``expected_commitment`` (e.g. the
        one on chain): a payload that does not match is refused and nothing is kept. An exception
        raised by ``chunks`` propagates unchanged, and nothing is kept either."""
        check_payload_id(payload_id)
        _check_metadata(owner_org, media_type, classification, retention_until_ms, created_ms)
        salt = self._check_origin(payload_id, salt, copy_of, expected_commitment)
        with self._operation():
            self._reserve(payload_id)  # from here on, only this call may store payload_id
            try:
                return self._put_reserved(
                    payload_id, chunks, salt, expected_commitment,
                    StoredPayload(
                        payload_id=payload_id, owner_org=owner_org,
                        role=PayloadRole.OWN if copy_of is None else PayloadRole.COPY,
                        copy_of=copy_of, media_type=media_type, size_bytes=0, salt=salt,
                        commitment=b"", classification=classification,
                        retention_until_ms=retention_until_ms, created_ms=created_ms,
                    ),
                )
            finally:
                with self._condition:
                    self._writing.discard(payload_id)

    def _check_origin(
        self, payload_id: str, salt: bytes | None, copy_of: CopyOrigin | None, expected: bytes | None
    ) -> bytes:
        if copy_of is None:
            if salt is not None or expected is not None:
                raise _refuse(
                    VaultStoreReason.BAD_ARGUMENT,
                    "an own payload gets a fresh salt from the vault: pass salt= and "
                    "expected_commitment= only for a copy (with copy_of=)",
                    payload_id,
                )
            return secrets.token_bytes(SALT_BYTES)
        if not isinstance(copy_of, CopyOrigin):
            raise _refuse(VaultStoreReason.BAD_ARGUMENT, "copy_of must be a CopyOrigin", payload_id)
        _check_text("copy_of.from_org", copy_of.from_org, ORG_ID_PATTERN, "an organisation id")
        _check_text("copy_of.request_id", copy_of.request_id, _PAYLOAD_ID_PATTERN, "a request id")
        if not isinstance(salt, bytes) or len(salt) != SALT_BYTES:
            raise _refuse(
                VaultStoreReason.BAD_ARGUMENT,
                f"a copy needs the {SALT_BYTES}-byte salt it was delivered with",
                payload_id,
            )
        if expected is not None and (not isinstance(expected, bytes) or len(expected) != self.suite.digest_size):
            raise _refuse(
                VaultStoreReason.BAD_ARGUMENT,
                f"expected_commitment must be a {self.suite.digest_size}-byte digest",
                payload_id,
            )
        return salt

    def _reserve(self, payload_id: str) -> None:
        with self._condition:
            if payload_id in self._writing:
                raise _refuse(
                    VaultStoreReason.DUPLICATE,
                    f"payload {payload_id!r} is being written by another call; choose another id",
                    payload_id,
                )
            existing = self._load_row_or_none(payload_id)
            if existing is not None:
                purged = existing.sealing is None
                raise _refuse(
                    VaultStoreReason.DUPLICATE,
                    f"payload {payload_id!r} already exists"
                    + (" (purged; ids are never reused)" if purged else "")
                    + "; choose another id",
                    payload_id,
                )
            self._writing.add(payload_id)

    def _load_row_or_none(self, payload_id: str) -> _Row | None:
        with _translate_os_errors(f"reading payload {payload_id!r}", payload_id), self._env.begin() as txn:
            return self._get_row(txn, payload_id)

    def _put_reserved(
        self, payload_id: str, chunks: Iterable[bytes], salt: bytes, expected: bytes | None,
        draft: StoredPayload,
    ) -> StoredPayload:
        object_name = secrets.token_hex(_OBJECT_NAME_HEX // 2)
        temporary = self._tmp / f"{object_name}.part"
        final = self._objects / object_name
        try:
            with _translate_os_errors(f"writing payload {payload_id!r}", payload_id):
                data_key = secrets.token_bytes(self.suite.aead_key_size)
                nonce_prefix = secrets.token_bytes(_NONCE_PREFIX_BYTES)
                cipher = ChunkCipher(self.suite, data_key, nonce_prefix, payload_id)
                size, commitment = self._write_body(temporary, cipher, chunks, salt)
                if expected is not None and not hmac.compare_digest(commitment, expected):
                    raise _refuse(
                        VaultStoreReason.COMMITMENT_MISMATCH,
                        f"the delivered bytes of {payload_id!r} do not match the expected "
                        "commitment (wrong salt or altered in transit); nothing was stored, ask "
                        "the sender to deliver it again",
                        payload_id,
                    )
                os.replace(temporary, final)
                _fsync_directory(self._objects)
                wrap_nonce = secrets.token_bytes(self.suite.aead_nonce_size)
                row = _Row(
                    format=_ROW_FORMAT,
                    payload=msgspec.structs.replace(draft, size_bytes=size, commitment=commitment),
                    sealing=_Sealing(
                        object_name=object_name,
                        chunk_bytes=self.limits.chunk_bytes,
                        chunk_count=cipher.index,
                        nonce_prefix=nonce_prefix,
                        wrap_nonce=wrap_nonce,
                        wrapped_key=self.suite.aead_encrypt(
                            self._keys.wrap_key, wrap_nonce, data_key, _data_key_ad(payload_id)
                        ),
                    ),
                )
                self._commit_new_row(payload_id, row, size + cipher.index * self.suite.aead_tag_size)
                return row.payload
        except BaseException as exc:
            temporary.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
            if isinstance(exc, _SourceFailed):
                raise exc.original from None
            raise

    def _write_body(
        self, temporary: Path, cipher: ChunkCipher, chunks: Iterable[bytes], salt: bytes
    ) -> tuple[int, bytes]:
        """Seal ``chunks`` into ``temporary`` (fsynced); return (plaintext size, commitment)."""
        size = 0
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _MODE_PRIVATE)
        try:

            def plaintext() -> Iterator[bytes]:
                # the suite hashes what this yields while each chunk is sealed and written: one
                # pass, one chunk (plus the one held back to learn which is last) in memory
                nonlocal size
                yield salt
                held: bytes | None = None
                for chunk in _fixed_chunks(chunks, self.limits.chunk_bytes, self.limits.payload_bytes_max):
                    self._check_open()  # close() stops a long write here
                    if held is not None:
                        _write_all(fd, cipher.seal(held, last=False))
                        yield held
                    held = chunk
                    size += len(chunk)
                last = b"" if held is None else held
                _write_all(fd, cipher.seal(last, last=True))
                yield last

            commitment = self.suite.hash_chunks(plaintext())
            os.fsync(fd)
        finally:
            os.close(fd)
        return size, commitment

    def _commit_new_row(self, payload_id: str, row: _Row, stored_bytes: int) -> None:
        if row.sealing is None:
            raise InvariantBroken("a new row must be sealed")
        meta = self._dbs["meta"]
        with self._env.begin(write=True) as txn:
            if not txn.put(payload_id.encode("ascii"), self._seal_row(row), db=self._dbs["rows"], overwrite=False):
                raise InvariantBroken(f"reserved payload id {payload_id!r} was taken meanwhile")
            txn.put(row.sealing.object_name.encode("ascii"), payload_id.encode("ascii"), db=self._dbs["objects"])
            usage = self._usage(txn, meta)
            txn.put(
                b"usage",
                encode(
                    msgspec.structs.replace(
                        usage,
                        live_count=usage.live_count + 1,
                        live_bytes=usage.live_bytes + row.payload.size_bytes,
                        stored_bytes=usage.stored_bytes + stored_bytes,
                    )
                ),
                db=meta,
            )

    # -- reads --------------------------------------------------------------------------------

    def get(self, payload_id: str) -> StoredPayload:
        """The metadata of ``payload_id`` (a purged payload's tombstone: check ``.state``)."""
        check_payload_id(payload_id)
        with self._operation():
            return self._load_row(payload_id).payload

    def read(self, payload_id: str) -> Iterator[bytes]:
        """The plaintext of ``payload_id`` as chunks of at most ``chunk_bytes``, each authenticated
        before it is yielded. ``NOT_FOUND`` and ``PURGED`` are raised here; ``TAMPERED`` here
        (metadata, file size) or while iterating (a chunk): then discard what was already
        received. The file is opened now, so a purge after this call does not cut the stream."""
        check_payload_id(payload_id)
        with self._operation():
            row = self._load_row(payload_id)
            sealing = self._live_sealing(row)
            data_key = self._unwrap_data_key(payload_id, sealing)
            path = self._objects / sealing.object_name
            with _translate_os_errors(f"opening payload {payload_id!r}", payload_id):
                try:
                    handle = open(path, "rb", buffering=0)  # noqa: SIM115 - the stream closes it
                except FileNotFoundError as exc:
                    raise self._tampered(payload_id, "its ciphertext file is missing") from exc
                try:
                    size = row.payload.size_bytes
                    expected = size + sealing.chunk_count * self.suite.aead_tag_size
                    actual = os.fstat(handle.fileno()).st_size
                    if actual != expected:
                        raise self._tampered(
                            payload_id, f"its ciphertext file has {actual} bytes, expected {expected}"
                        )
                    if sealing.chunk_count != _chunk_count(size, sealing.chunk_bytes):
                        raise InvariantBroken(f"an authenticated row of {payload_id!r} miscounts its chunks")
                    cipher = ChunkCipher(self.suite, data_key, sealing.nonce_prefix, payload_id)
                except BaseException:
                    handle.close()
                    raise
        return self._stream(handle, cipher, size, sealing)

    def _live_sealing(self, row: _Row) -> _Sealing:
        if row.sealing is None:
            purge = row.payload.purge
            raise _refuse(
                VaultStoreReason.PURGED,
                f"payload {row.payload.payload_id!r} was purged"
                + (f" at {purge.purged_ms} ms ({purge.reason})" if purge else "")
                + "; its content is destroyed and cannot be read",
                row.payload.payload_id,
            )
        return row.sealing

    def _unwrap_data_key(self, payload_id: str, sealing: _Sealing) -> bytes:
        try:
            return self.suite.aead_decrypt(
                self._keys.wrap_key, sealing.wrap_nonce, sealing.wrapped_key, _data_key_ad(payload_id)
            )
        except CryptoError as exc:
            raise self._tampered(payload_id, "its wrapped data key does not authenticate") from exc

    def _stream(self, handle: Any, cipher: ChunkCipher, size: int, sealing: _Sealing) -> Iterator[bytes]:
        payload_id = cipher.payload_id
        tag = self.suite.aead_tag_size
        remaining = size
        try:
            for index in range(sealing.chunk_count):
                last = index == sealing.chunk_count - 1
                plain_length = remaining if last else sealing.chunk_bytes
                want = plain_length + tag
                with _translate_os_errors(f"reading payload {payload_id!r}", payload_id):
                    data = _read_exactly(handle, want)
                if len(data) != want:
                    raise self._tampered(payload_id, f"its ciphertext file ends inside chunk {index}")
                plaintext = cipher.open(data, last=last)
                remaining -= len(plaintext)
                yield plaintext
        finally:
            handle.close()

    def verify(self, payload_id: str) -> StoredPayload:
        """Decrypt the whole payload and recompute its commitment without returning the bytes: a
        check before a release, or a scrub. ``TAMPERED`` if anything does not match."""
        row = self.get(payload_id)
        stream = self.read(payload_id)  # PURGED if a purge came in between

        def salted() -> Iterator[bytes]:
            yield row.salt
            yield from stream

        if not hmac.compare_digest(self.suite.hash_chunks(salted()), row.commitment):
            raise self._tampered(payload_id, "its content does not match its commitment")
        return row

    def usage(self) -> VaultUsage:
        """Counts and bytes of live payloads and the number of tombstones, for metrics."""
        with self._operation(), _translate_os_errors("reading usage"), self._env.begin() as txn:
            return self._usage(txn, self._dbs["meta"])

    # -- purge --------------------------------------------------------------------------------

    def purge(self, payload_id: str, reason: str, *, purged_ms: int) -> StoredPayload:
        """Destroy ``payload_id``'s data key and ciphertext, keep a tombstone; durable on return.
        Purging a purged payload returns its tombstone unchanged (a retry is safe)."""
        check_payload_id(payload_id)
        if not isinstance(reason, str) or not 1 <= len(reason) <= PURGE_REASON_CHARS_MAX or not reason.isprintable():
            raise _refuse(
                VaultStoreReason.BAD_ARGUMENT,
                f"a purge reason is 1..{PURGE_REASON_CHARS_MAX} printable characters",
                payload_id,
            )
        _check_time("purged_ms", purged_ms)
        with self._operation():
            with _translate_os_errors(f"purging payload {payload_id!r}", payload_id):
                tombstone, object_name = self._commit_purge(payload_id, Purge(reason, purged_ms))
            if object_name is not None:
                try:
                    (self._objects / object_name).unlink(missing_ok=True)
                    _fsync_directory(self._objects)
                except OSError as exc:
                    raise _refuse(
                        VaultStoreReason.IO_ERROR,
                        f"payload {payload_id!r} is purged (its key is destroyed) but its ciphertext "
                        f"file could not be removed ({exc.strerror or exc}); it is removed when the "
                        "vault next opens",
                        payload_id,
                    ) from exc
            return tombstone

    def _commit_purge(self, payload_id: str, purge: Purge) -> tuple[StoredPayload, str | None]:
        meta = self._dbs["meta"]
        with self._env.begin(write=True) as txn:
            row = self._get_row(txn, payload_id)
            if row is None:
                raise _refuse(
                    VaultStoreReason.NOT_FOUND, f"no payload {payload_id!r} in this vault to purge", payload_id
                )
            if row.sealing is None:
                return row.payload, None
            tombstone = msgspec.structs.replace(row.payload, salt=b"", purge=purge)
            txn.put(
                payload_id.encode("ascii"),
                self._seal_row(_Row(format=_ROW_FORMAT, payload=tombstone, sealing=None)),
                db=self._dbs["rows"],
            )
            txn.delete(row.sealing.object_name.encode("ascii"), db=self._dbs["objects"])
            usage = self._usage(txn, meta)
            stored = row.payload.size_bytes + row.sealing.chunk_count * self.suite.aead_tag_size
            txn.put(
                b"usage",
                encode(
                    msgspec.structs.replace(
                        usage,
                        live_count=usage.live_count - 1,
                        live_bytes=usage.live_bytes - row.payload.size_bytes,
                        stored_bytes=usage.stored_bytes - stored,
                        purged_count=usage.purged_count + 1,
                    )
                ),
                db=meta,
            )
            return tombstone, row.sealing.object_name

    # -- listing (last: the method named list shadows the builtin in this class body) ---------

    def list(
        self, *, after: str | None = None, limit: int = 100, include_purged: bool = False
    ) -> PayloadPage:
        """Payloads in id order after ``after``: at most ``limit`` (1..list_page_max) items, at
        most :data:`LIST_SCAN_ROWS_MAX` rows read per call (so a page of live payloads among many
        tombstones may come back short with a ``next_after``: keep paging)."""
        if after is not None:
            check_payload_id(after)
        if not isinstance(limit, int) or not 1 <= limit <= self.limits.list_page_max:
            raise _refuse(
                VaultStoreReason.BAD_ARGUMENT, f"limit must be 1..{self.limits.list_page_max}"
            )
        items: builtins.list[StoredPayload] = []
        last_id: str | None = None
        with self._operation(), _translate_os_errors("listing payloads"), self._env.begin() as txn:
            cursor = txn.cursor(db=self._dbs["rows"])
            positioned = cursor.set_range(after.encode("ascii")) if after is not None else cursor.first()
            if positioned and after is not None and cursor.key() == after.encode("ascii"):
                positioned = cursor.next()
            scanned = 0
            while positioned and len(items) < limit and scanned < LIST_SCAN_ROWS_MAX:
                last_id = bytes(cursor.key()).decode("ascii")
                row = self._open_row(last_id, bytes(cursor.value()))
                scanned += 1
                if include_purged or row.sealing is not None:
                    items.append(row.payload)
                positioned = cursor.next()
        return PayloadPage(tuple(items), last_id if positioned else None)


def _data_key_ad(payload_id: str) -> bytes:
    id_bytes = payload_id.encode("ascii")
    return _DATA_KEY_DOMAIN + struct.pack(">H", len(id_bytes)) + id_bytes


def _chunk_count(size: int, chunk_bytes: int) -> int:
    return max(1, -(-size // chunk_bytes))


def _read_exactly(handle: Any, length: int) -> bytes:
    """Up to ``length`` bytes (fewer only at the end of the file)."""
    parts: builtins.list[bytes] = []
    remaining = length
    while remaining:
        data = handle.read(remaining)
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)

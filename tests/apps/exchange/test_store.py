"""The vault's payload store: round trips, bounded streaming, tampering, purge, crash safety.

Most tests use 1 KiB chunks so that multi-chunk payloads stay small; the 64 MiB test uses the
defaults (1 MiB chunks, 64 MiB limit). The kill -9 test runs :mod:`.vault_writer` in a child.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import selectors
import signal
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotchain.apps.exchange.store import (
    CHUNK_BYTES,
    PAYLOAD_BYTES_MAX,
    ChunkCipher,
    CopyOrigin,
    PayloadRole,
    PurgeState,
    StoredPayload,
    VaultLimits,
    VaultStore,
    VaultStoreError,
    VaultStoreReason,
)
from pilotchain.crypto import get_suite

from . import vault_writer

SUITES = ("intl", "gm")
CHUNK = 1024
SMALL = VaultLimits(chunk_bytes=CHUNK, payload_bytes_max=64 * CHUNK, kdf_iterations=1000)
METADATA = {
    "owner_org": "org-a",
    "media_type": "application/pdf",
    "classification": "confidential",
    "retention_until_ms": 1_900_000_000_000,
    "created_ms": 1_700_000_000_000,
}
Reason = VaultStoreReason


def open_vault(home: Path, suite: str = "intl", passphrase: bytes | None = None,
               limits: VaultLimits = SMALL) -> VaultStore:
    return VaultStore.open(home, suite, passphrase, limits=limits)


@pytest.fixture(params=SUITES)
def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VaultStore]:
    store = open_vault(tmp_path / "vault", request.param)
    yield store
    store.close()


def put(store: VaultStore, payload_id: str, data: bytes, **overrides: object) -> StoredPayload:
    arguments = {**METADATA, **overrides}
    return store.put(payload_id, pieces(data), **arguments)  # type: ignore[arg-type]


def pieces(data: bytes, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    cut, start = [], 0
    while start < len(data):
        end = min(len(data), start + rng.randrange(1, 3 * CHUNK))
        cut.append(data[start:end])
        start = end
    return cut


def read_all(store: VaultStore, payload_id: str) -> bytes:
    return b"".join(store.read(payload_id))


def refused(reason: VaultStoreReason, call: Callable[[], object]) -> VaultStoreError:
    with pytest.raises(VaultStoreError) as caught:
        call()
    assert caught.value.reason is reason, caught.value
    return caught.value


def files_under(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if p.is_file())


def nothing_left(store: VaultStore, payload_id: str) -> None:
    assert list((store.path / "tmp").iterdir()) == []
    assert list((store.path / "objects").iterdir()) == []
    refused(Reason.NOT_FOUND, lambda: store.get(payload_id))


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7, 64 * CHUNK]
)
def test_round_trip(vault: VaultStore, size: int) -> None:
    data = random.Random(size).randbytes(size)
    stored = put(vault, "p-1", data)
    assert stored.size_bytes == size and stored.role is PayloadRole.OWN and stored.copy_of is None
    assert stored.state is PurgeState.LIVE and len(stored.salt) == 32
    assert stored.commitment == vault.suite.hash(stored.salt + data)
    assert vault.get("p-1") == stored
    chunks = list(vault.read("p-1"))
    assert b"".join(chunks) == data
    assert all(len(chunk) <= CHUNK for chunk in chunks)
    assert len(chunks) == max(1, -(-size // CHUNK))
    assert vault.verify("p-1") == stored
    usage = vault.usage()
    assert (usage.live_count, usage.live_bytes, usage.purged_count) == (1, size, 0)
    assert usage.stored_bytes == sum(p.stat().st_size for p in (vault.path / "objects").iterdir())


def test_round_trip_survives_reopen_and_salts_differ(tmp_path: Path) -> None:
    for suite in SUITES:
        home = tmp_path / suite
        with open_vault(home, suite) as store:
            first = put(store, "same-bytes-1", b"x" * 3000)
            second = put(store, "same-bytes-2", b"x" * 3000)
        assert first.salt != second.salt and first.commitment != second.commitment
        with open_vault(home, suite) as store:
            assert read_all(store, "same-bytes-1") == b"x" * 3000
            assert store.get("same-bytes-2") == second
            assert store.recovery.removed_temporary == store.recovery.removed_orphans == 0


@pytest.fixture(scope="module")
def shared_vaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VaultStore]]:
    stores = {suite: open_vault(tmp_path_factory.mktemp(suite), suite) for suite in SUITES}
    yield stores
    for store in stores.values():
        store.close()


_EXAMPLE = iter(range(10**9))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    suite=st.sampled_from(SUITES),
    chunks=st.integers(0, 4),
    offset=st.integers(-2, 2),
    cut_seed=st.integers(0, 2**32 - 1),
)
def test_sizes_around_chunk_boundaries(
    shared_vaults: dict[str, VaultStore], suite: str, chunks: int, offset: int, cut_seed: int
) -> None:
    size = max(0, chunks * CHUNK + offset)
    data = random.Random(cut_seed).randbytes(size)
    store = shared_vaults[suite]
    payload_id = f"h-{next(_EXAMPLE)}"
    store.put(payload_id, pieces(data, cut_seed), **METADATA)  # type: ignore[arg-type]
    chunks_read = list(store.read(payload_id))
    assert b"".join(chunks_read) == data
    assert [len(c) for c in chunks_read[:-1]] == [CHUNK] * (len(chunks_read) - 1)
    assert store.get(payload_id).commitment == store.suite.hash(store.get(payload_id).salt + data)


@pytest.mark.parametrize("suite", SUITES)
def test_64_mib_streams_in_bounded_memory(tmp_path: Path, suite: str) -> None:
    """Defaults: 1 MiB chunks, 64 MiB limit. Neither put nor read holds more than a few chunks."""
    assert PAYLOAD_BYTES_MAX == 64 * CHUNK_BYTES
    written, read_back = hashlib.sha256(), hashlib.sha256()

    def source() -> Iterator[bytes]:
        rng = random.Random(64)
        for _ in range(64):
            chunk = rng.randbytes(CHUNK_BYTES)
            written.update(chunk)
            yield chunk

    with VaultStore.open(tmp_path / "vault", suite) as store:
        tracemalloc.start()
        try:
            stored = store.put("big", source(), **METADATA)  # type: ignore[arg-type]
            put_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            largest = 0
            for chunk in store.read("big"):
                largest = max(largest, len(chunk))
                read_back.update(chunk)
            read_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert stored.size_bytes == PAYLOAD_BYTES_MAX
        assert read_back.digest() == written.digest()
        assert largest == CHUNK_BYTES
        # 64 chunks went through; at most a handful were alive at once (the caller's chunk, the
        # one held back to learn which is last, its ciphertext, the AEAD's own copy)
        assert put_peak < 7 * CHUNK_BYTES, put_peak
        assert read_peak < 5 * CHUNK_BYTES, read_peak
        if suite == "intl":  # the default limit is exact (once is enough: it is suite-blind)
            one_over = [*(bytes(CHUNK_BYTES) for _ in range(64)), b"!"]
            refused(Reason.TOO_LARGE, lambda: store.put("over", iter(one_over), **METADATA))  # type: ignore[arg-type]
            assert [p.name for p in (store.path / "objects").iterdir()] == [store._object_path("big").name]
            assert list((store.path / "tmp").iterdir()) == []


# -- refusals -----------------------------------------------------------------------------------


def test_duplicate_id_is_refused_and_the_original_kept(vault: VaultStore) -> None:
    put(vault, "dup", b"original")
    error = refused(Reason.DUPLICATE, lambda: put(vault, "dup", b"other"))
    assert "choose another id" in str(error) and error.payload_id == "dup"
    assert read_all(vault, "dup") == b"original"
    vault.purge("dup", "test", purged_ms=1)
    assert "never reused" in str(refused(Reason.DUPLICATE, lambda: put(vault, "dup", b"again")))
    assert len(list((vault.path / "objects").iterdir())) == 0


def test_the_same_id_written_by_two_threads_at_once_is_stored_once(vault: VaultStore) -> None:
    started, release = threading.Event(), threading.Event()

    def slow() -> Iterator[bytes]:
        yield b"first"
        started.set()
        assert release.wait(10)
        yield b" writer"

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(vault.put, "race", slow(), **METADATA)  # type: ignore[arg-type]
        assert started.wait(10)
        assert "being written" in str(refused(Reason.DUPLICATE, lambda: put(vault, "race", b"second")))
        release.set()
        assert first.result(10).size_bytes == len(b"first writer")
    assert read_all(vault, "race") == b"first writer"


def test_over_size_is_refused_with_nothing_left_behind(vault: VaultStore) -> None:
    error = refused(Reason.TOO_LARGE, lambda: put(vault, "huge", bytes(64 * CHUNK + 1)))
    assert "nothing was stored" in str(error)
    nothing_left(vault, "huge")
    assert vault.usage().live_count == 0
    put(vault, "huge", bytes(64 * CHUNK))  # the id was not taken, and exactly the limit fits
    assert vault.get("huge").size_bytes == 64 * CHUNK


def test_a_failing_source_leaves_nothing_behind(vault: VaultStore) -> None:
    def broken() -> Iterator[bytes]:
        yield bytes(5 * CHUNK)
        raise ConnectionResetError("upload cut off")

    with pytest.raises(ConnectionResetError):
        vault.put("cut", broken(), **METADATA)  # type: ignore[arg-type]
    nothing_left(vault, "cut")
    refused(Reason.BAD_ARGUMENT, lambda: vault.put("text", ["not bytes"], **METADATA))  # type: ignore[arg-type, list-item]
    nothing_left(vault, "text")


@pytest.mark.parametrize(
    "payload_id", ["", "a" * 129, "../etc", "a/b", ".hidden", "-x", "naïve", "new\nline", "sp ace", 7]
)
def test_bad_ids(vault: VaultStore, payload_id: object) -> None:
    error = refused(Reason.BAD_ID, lambda: put(vault, payload_id, b"x"))  # type: ignore[arg-type]
    assert "choose such an id" in str(error)
    refused(Reason.BAD_ID, lambda: vault.get(payload_id))  # type: ignore[arg-type]
    refused(Reason.BAD_ID, lambda: vault.read(payload_id))  # type: ignore[arg-type]


def test_good_ids(vault: VaultStore) -> None:
    for payload_id in ["a", "A" * 128, "org-a:2026.x", "9_z.y-x:w"]:
        put(vault, payload_id, b"x")
        assert read_all(vault, payload_id) == b"x"


@pytest.mark.parametrize(
    "overrides",
    [
        {"owner_org": "Org-A"},
        {"owner_org": ""},
        {"media_type": "pdf"},
        {"media_type": "text/plain; charset=utf-8\n"},
        {"media_type": "a/" + "b" * 300},
        {"media_type": None},
        {"classification": "top secret"},
        {"retention_until_ms": -1},
        {"created_ms": 2**63},
        {"created_ms": True},
        {"salt": bytes(32)},  # an own payload gets its salt from the vault
        {"copy_of": CopyOrigin("org-b", "req-1")},  # a copy needs its salt
        {"copy_of": CopyOrigin("org-b", "req-1"), "salt": bytes(31)},
        {"copy_of": CopyOrigin("Org B", "req-1"), "salt": bytes(32)},
        {"copy_of": CopyOrigin("org-b", "req-1"), "salt": bytes(32), "expected_commitment": b"short"},
    ],
)
def test_bad_arguments_change_nothing(vault: VaultStore, overrides: dict[str, object]) -> None:
    refused(Reason.BAD_ARGUMENT, lambda: put(vault, "p", b"data", **overrides))
    nothing_left(vault, "p")


def test_accepted_media_types(vault: VaultStore) -> None:
    for index, media_type in enumerate(
        ["application/pdf", "text/plain; charset=utf-8", 'application/fhir+json;fhirVersion="4.0"']
    ):
        put(vault, f"m{index}", b"x", media_type=media_type)


# -- copies -------------------------------------------------------------------------------------


def test_copies_keep_the_salt_they_came_with_and_are_checked_against_the_commitment(
    vault: VaultStore,
) -> None:
    data, salt = b"delivered payload" * 300, os.urandom(32)
    commitment = vault.suite.hash(salt + data)
    origin = CopyOrigin(from_org="org-b", request_id="req-42")
    bad = vault.suite.hash(b"other")
    error = refused(
        Reason.COMMITMENT_MISMATCH,
        lambda: put(vault, "c1", data, owner_org="org-b", copy_of=origin, salt=salt, expected_commitment=bad),
    )
    assert "deliver it again" in str(error)
    nothing_left(vault, "c1")
    stored = put(vault, "c1", data, owner_org="org-b", copy_of=origin, salt=salt, expected_commitment=commitment)
    assert (stored.role, stored.copy_of, stored.salt, stored.commitment) == (
        PayloadRole.COPY, origin, salt, commitment,
    )
    assert read_all(vault, "c1") == data


# -- purge --------------------------------------------------------------------------------------


def test_purge_destroys_the_content_and_keeps_a_tombstone(tmp_path: Path) -> None:
    home = tmp_path / "vault"
    with open_vault(home) as store:
        stored = put(store, "gone", b"secret" * 1000)
        put(store, "kept", b"kept")
        object_file = store._object_path("gone")
        tombstone = store.purge("gone", "retention expired", purged_ms=1_800_000_000_000)
        assert not object_file.exists()
        assert tombstone.state is PurgeState.PURGED and tombstone.salt == b""
        assert (tombstone.commitment, tombstone.size_bytes) == (stored.commitment, stored.size_bytes)
        assert tombstone.purge is not None and tombstone.purge.reason == "retention expired"
        assert store.purge("gone", "again", purged_ms=1) == tombstone  # a retry is harmless
        usage = store.usage()
        assert (usage.live_count, usage.live_bytes, usage.purged_count) == (1, 4, 1)
    with open_vault(home) as store:
        error = refused(Reason.PURGED, lambda: store.read("gone"))
        assert "retention expired" in str(error)
        refused(Reason.PURGED, lambda: store.verify("gone"))
        assert store.get("gone") == tombstone
        refused(Reason.NOT_FOUND, lambda: store.read("never-was"))
        refused(Reason.NOT_FOUND, lambda: store.purge("never-was", "x", purged_ms=1))
        refused(Reason.BAD_ARGUMENT, lambda: store.purge("kept", "", purged_ms=1))
        refused(Reason.BAD_ARGUMENT, lambda: store.purge("kept", "bad\x00reason", purged_ms=1))
        assert read_all(store, "kept") == b"kept"


def test_a_stream_opened_before_a_purge_finishes(vault: VaultStore) -> None:
    data = os.urandom(5 * CHUNK)
    put(vault, "p", data)
    stream = vault.read("p")
    first = next(stream)
    vault.purge("p", "test", purged_ms=1)
    assert first + b"".join(stream) == data
    refused(Reason.PURGED, lambda: vault.read("p"))


# -- confidentiality ----------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_no_plaintext_touches_the_disk(tmp_path: Path, suite: str) -> None:
    marker = b"MARKER-7f3a9c-PLAINTEXT-"
    data = marker * 2000 + b"tail" + marker
    home = tmp_path / "vault"
    with open_vault(home, suite, passphrase=b"pass phrase") as store:
        put(store, "m", data)
        put(store, "small", marker)
        assert read_all(store, "m") == data
        store.purge("small", "test", purged_ms=1)
    files = files_under(home)
    assert {p.relative_to(home).parts[0] for p in files} == {"LOCK", "master.key", "meta", "objects"}
    for path in files:
        content = path.read_bytes()
        assert marker not in content and marker[:12] not in content, path
    key_file = home / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert b"passphrase" in key_file.read_bytes()  # the key is wrapped, not stored as is


# -- keys -----------------------------------------------------------------------------------------


def test_master_key_protection(tmp_path: Path) -> None:
    home = tmp_path / "vault"
    with open_vault(home, "gm", passphrase=b"right") as store:
        put(store, "p", b"data")
    refused(Reason.WRONG_KEY, lambda: open_vault(home, "gm", passphrase=b"wrong"))
    error = refused(Reason.PASSPHRASE_REQUIRED, lambda: open_vault(home, "gm"))
    assert "PILOTCHAIN_KEY_PASSPHRASE" in str(error)
    refused(Reason.WRONG_SUITE, lambda: open_vault(home, "intl", passphrase=b"right"))
    refused(Reason.BAD_ARGUMENT, lambda: open_vault(home, "gm", passphrase=b""))
    with open_vault(home, "gm", passphrase=b"right") as store:
        assert read_all(store, "p") == b"data"

    plain = tmp_path / "plain"
    open_vault(plain).close()
    assert b'"protection": "none"' in (plain / "master.key").read_bytes()
    refused(Reason.KEY_FILE, lambda: open_vault(plain, passphrase=b"unexpected"))


def test_a_master_key_of_another_vault_is_refused(tmp_path: Path) -> None:
    with open_vault(tmp_path / "a") as store:
        put(store, "p", b"data")
    open_vault(tmp_path / "b").close()
    (tmp_path / "a" / "master.key").write_bytes((tmp_path / "b" / "master.key").read_bytes())
    error = refused(Reason.WRONG_KEY, lambda: open_vault(tmp_path / "a"))
    assert "another vault" in str(error)


def test_key_file_must_be_private_and_present(tmp_path: Path) -> None:
    home = tmp_path / "vault"
    open_vault(home).close()
    key_file = home / "master.key"
    key_file.chmod(0o644)
    assert "chmod 600" in str(refused(Reason.KEY_FILE, lambda: open_vault(home)))
    key_file.chmod(0o600)
    key_file.rename(home / "master.key.moved")
    assert "restore master.key" in str(refused(Reason.KEY_FILE, lambda: open_vault(home)))


def test_one_store_per_home(tmp_path: Path) -> None:
    store = open_vault(tmp_path / "vault")
    refused(Reason.LOCKED, lambda: open_vault(tmp_path / "vault"))
    store.close()
    refused(Reason.CLOSED, lambda: store.get("p"))
    open_vault(tmp_path / "vault").close()


# -- tampering ----------------------------------------------------------------------------------


def write_at(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def flip(path: Path, offset: int) -> None:
    with path.open("rb") as handle:
        handle.seek(offset)
        byte = handle.read(1)
    write_at(path, offset, bytes([byte[0] ^ 0x01]))


SEALED = CHUNK + 16  # a full chunk on disk: ciphertext and tag


@pytest.mark.parametrize("where", ["first byte", "inside chunk 2", "a tag", "last byte"])
def test_a_flipped_ciphertext_byte_is_tampering(vault: VaultStore, where: str) -> None:
    data = os.urandom(4 * CHUNK + 100)
    put(vault, "p", data)
    path = vault._object_path("p")
    offset = {"first byte": 0, "inside chunk 2": 2 * SEALED + 5, "a tag": SEALED - 1,
              "last byte": path.stat().st_size - 1}[where]
    flip(path, offset)
    received = bytearray()
    with pytest.raises(VaultStoreError) as caught:
        for chunk in vault.read("p"):
            received += chunk
    assert caught.value.reason is Reason.TAMPERED and "restore" in str(caught.value)
    assert data.startswith(received) and len(received) == (offset // SEALED) * CHUNK
    refused(Reason.TAMPERED, lambda: vault.verify("p"))


def test_swapped_chunks_are_tampering(vault: VaultStore) -> None:
    put(vault, "p", os.urandom(3 * CHUNK))
    path = vault._object_path("p")
    blob = path.read_bytes()
    first, second = blob[:SEALED], blob[SEALED : 2 * SEALED]
    path.write_bytes(second + first + blob[2 * SEALED :])
    refused(Reason.TAMPERED, lambda: read_all(vault, "p"))


def test_chunks_and_files_swapped_between_payloads_are_tampering(vault: VaultStore) -> None:
    put(vault, "a", os.urandom(2 * CHUNK))
    put(vault, "b", os.urandom(2 * CHUNK))
    path_a, path_b = vault._object_path("a"), vault._object_path("b")
    blob_a, blob_b = path_a.read_bytes(), path_b.read_bytes()
    path_a.write_bytes(blob_b[:SEALED] + blob_a[SEALED:])  # one chunk of b inside a
    refused(Reason.TAMPERED, lambda: read_all(vault, "a"))
    path_a.write_bytes(blob_b)  # whole files swapped
    path_b.write_bytes(blob_a)
    refused(Reason.TAMPERED, lambda: read_all(vault, "a"))
    refused(Reason.TAMPERED, lambda: read_all(vault, "b"))


@pytest.mark.parametrize("change", ["drop last chunk", "cut inside", "append", "empty"])
def test_truncated_or_extended_files_are_tampering(vault: VaultStore, change: str) -> None:
    put(vault, "p", os.urandom(3 * CHUNK + 10))
    path = vault._object_path("p")
    blob = path.read_bytes()
    path.write_bytes(
        {"drop last chunk": blob[: 3 * SEALED], "cut inside": blob[:-5], "append": blob + blob[:SEALED],
         "empty": b""}[change]
    )
    error = refused(Reason.TAMPERED, lambda: vault.read("p"))  # the size is checked before any byte
    assert "bytes, expected" in str(error)


def test_a_missing_ciphertext_file_is_tampering_and_reported_on_open(tmp_path: Path) -> None:
    home = tmp_path / "vault"
    with open_vault(home) as store:
        put(store, "p", b"data")
        store._object_path("p").unlink()
        assert "missing" in str(refused(Reason.TAMPERED, lambda: store.read("p")))
    with open_vault(home) as store:
        assert store.recovery.missing_objects == ("p",)


def test_edited_metadata_is_tampering(tmp_path: Path) -> None:
    home = tmp_path / "vault"
    with open_vault(home) as store:
        put(store, "a", b"alpha")
        put(store, "b", b"beta")
    env = lmdb.open(str(home / "meta"), max_dbs=4)
    rows = env.open_db(b"rows")
    with env.begin(write=True, db=rows) as txn:
        value = txn.get(b"a")
        assert value is not None
        row_a = bytes(value)
        txn.put(b"b", row_a)  # a's row (and wrapped key) under b's id
        edited = row_a.replace(b"confidential", b"public-data!")
        assert edited != row_a
        txn.put(b"a", edited)  # a relabelled
    env.close()
    with open_vault(home) as store:
        assert "another id" in str(refused(Reason.TAMPERED, lambda: store.get("b")))
        assert "does not authenticate" in str(refused(Reason.TAMPERED, lambda: store.read("a")))
        refused(Reason.TAMPERED, lambda: store.list())


@pytest.mark.parametrize("suite", SUITES)
def test_the_chunk_construction_refuses_every_rearrangement(suite: str) -> None:
    """The STREAM properties on their own, without the file-size check in front of them."""
    crypto = get_suite(suite)
    key, prefix = os.urandom(crypto.aead_key_size), os.urandom(7)
    plain = [os.urandom(CHUNK), os.urandom(CHUNK), os.urandom(100)]

    def seal(payload_id: str, parts: list[bytes]) -> list[bytes]:
        cipher = ChunkCipher(crypto, key, prefix, payload_id)
        return [cipher.seal(part, last=i == len(parts) - 1) for i, part in enumerate(parts)]

    def open_all(payload_id: str, sealed: list[bytes]) -> list[bytes]:
        cipher = ChunkCipher(crypto, key, prefix, payload_id)
        return [cipher.open(part, last=i == len(sealed) - 1) for i, part in enumerate(sealed)]

    sealed = seal("p", plain)
    assert open_all("p", sealed) == plain
    other = seal("q", plain)  # same key and nonce prefix, another payload id
    for rearranged in (
        sealed[:2],  # the last chunk dropped: chunk 1 was not sealed as last
        sealed[:1],
        [sealed[1], sealed[0], sealed[2]],  # reordered
        [sealed[0], sealed[0], sealed[1], sealed[2]],  # duplicated
        [*sealed, sealed[2]],  # appended after the last
        [other[0], sealed[1], sealed[2]],  # a chunk of another payload
    ):
        refused(Reason.TAMPERED, lambda r=rearranged: open_all("p", r))  # type: ignore[misc]
    refused(Reason.TAMPERED, lambda: open_all("q", sealed))


# -- listing, threads, close, recovery --------------------------------------------------------


def test_list_pages_in_id_order(vault: VaultStore) -> None:
    ids = [f"p{index:03d}" for index in range(25)]
    for payload_id in ids:
        put(vault, payload_id, payload_id.encode())
    for payload_id in ids[::5]:
        vault.purge(payload_id, "test", purged_ms=1)
    seen: list[str] = []
    after = None
    while True:
        page = vault.list(after=after, limit=7)
        assert len(page.items) <= 7
        seen += [item.payload_id for item in page.items]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [i for i in ids if i not in ids[::5]]
    everything = vault.list(limit=1000, include_purged=True)
    assert [i.payload_id for i in everything.items] == ids and everything.next_after is None
    assert vault.list(after="p023").items[0].payload_id == "p024"
    refused(Reason.BAD_ARGUMENT, lambda: vault.list(limit=0))
    refused(Reason.BAD_ARGUMENT, lambda: vault.list(limit=1001))


def test_concurrent_puts_and_reads_from_a_thread_pool(vault: VaultStore) -> None:
    payloads = {f"t{index}": os.urandom(index * 777) for index in range(24)}

    def put_then_read(payload_id: str) -> bytes:
        put(vault, payload_id, payloads[payload_id])
        return read_all(vault, payload_id)

    with ThreadPoolExecutor(6) as pool:
        results = dict(zip(payloads, pool.map(put_then_read, payloads), strict=True))
    assert results == payloads
    usage = vault.usage()
    assert (usage.live_count, usage.live_bytes) == (24, sum(map(len, payloads.values())))


def test_close_stops_a_running_put_and_leaves_nothing(tmp_path: Path) -> None:
    store = open_vault(tmp_path / "vault")
    closer = threading.Thread(target=store.close)

    def source() -> Iterator[bytes]:
        yield bytes(CHUNK)
        closer.start()
        deadline = time.monotonic() + 10
        while not store._closing:  # the closer is waiting for this put
            assert time.monotonic() < deadline, "close() never started"
            threading.Event().wait(0.001)
        yield from (bytes(CHUNK) for _ in range(10))

    refused(Reason.CLOSED, lambda: store.put("p", source(), **METADATA))  # type: ignore[arg-type]
    closer.join(10)
    assert not closer.is_alive()
    with open_vault(tmp_path / "vault") as store:
        nothing_left(store, "p")


def test_open_cleans_leftovers_of_interrupted_writes(tmp_path: Path) -> None:
    home = tmp_path / "vault"
    with open_vault(home) as store:
        put(store, "kept", b"kept")
    (home / "tmp" / ("ab" * 16 + ".part")).write_bytes(b"half a payload")
    (home / "objects" / ("cd" * 16)).write_bytes(b"renamed, never committed")
    (home / "objects" / "README").write_bytes(b"not ours: left alone")
    with open_vault(home) as store:
        assert (store.recovery.removed_temporary, store.recovery.removed_orphans) == (1, 1)
        assert store.recovery.missing_objects == ()
        assert sorted(p.name for p in (home / "objects").iterdir()) == sorted(
            ["README", store._object_path("kept").name]
        )
        assert read_all(store, "kept") == b"kept"


def test_a_home_with_payload_files_but_no_metadata_is_not_reinitialised(tmp_path: Path) -> None:
    home = tmp_path / "vault"
    with open_vault(home) as store:
        put(store, "p", b"data")
    for path in (home / "meta").iterdir():
        path.unlink()
    refused(Reason.UNKNOWN_FORMAT, lambda: open_vault(home))


# -- kill -9 ------------------------------------------------------------------------------------


def lines_until(
    process: subprocess.Popen[bytes], done: Callable[[list[str]], bool], deadline_s: float
) -> list[str]:
    """What the child printed until ``done(lines)`` holds; fails at the deadline (no sleeping)."""
    assert process.stdout is not None
    lines: list[str] = []
    pending = b""
    deadline = time.monotonic() + deadline_s
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not done(lines):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"the writer made no progress in {deadline_s} s: {lines[-3:]}"
            if not selector.select(remaining):
                continue
            data = os.read(process.stdout.fileno(), 65536)
            assert data, f"the writer exited ({process.wait()}): {lines[-3:]}"
            pending += data
            *complete, pending = pending.split(b"\n")
            lines += [line.decode() for line in complete]
    return lines


def check_after_crash(home: Path, round_number: int, lines: list[str], mode: str) -> None:
    acked = [line.split()[1] for line in lines if line.startswith("ack ")]
    purging = {line.split()[1] for line in lines if line.startswith("purging ")}
    purged = {line.split()[1] for line in lines if line.startswith("purged ")}
    in_flight = vault_writer.payload_id(round_number, len(acked))
    with vault_writer.open_store(str(home)) as store:
        recovery = store.recovery
        assert list((home / "tmp").iterdir()) == []
        for payload_id in acked:
            index = int(payload_id.split("-")[1])
            if payload_id in purged:
                assert store.get(payload_id).state is PurgeState.PURGED
            elif payload_id in purging:  # killed during this purge: either outcome, never half
                if store.get(payload_id).state is PurgeState.LIVE:
                    assert read_all(store, payload_id) == vault_writer.payload_bytes(round_number, index)
            else:
                assert read_all(store, payload_id) == vault_writer.payload_bytes(round_number, index)
        try:
            unacknowledged = read_all(store, in_flight)
        except VaultStoreError as exc:
            assert exc.reason is Reason.NOT_FOUND
            assert mode != "after-put-commit", "a committed put was lost"
        else:
            assert mode in ("random", "after-put-commit", "after-purge-commit")
            assert unacknowledged == vault_writer.payload_bytes(round_number, len(acked))
        if mode == "before-rename":
            assert recovery.removed_temporary == 1
        if mode in ("after-rename", "after-purge-commit"):
            assert recovery.removed_orphans == 1
        if mode == "after-purge-commit":
            assert store.get(sorted(purging - purged)[0]).state is PurgeState.PURGED
        rows = store.list(limit=1000, include_purged=True).items
        live = [row for row in rows if row.state is PurgeState.LIVE]
        usage = store.usage()
        assert (usage.live_count, usage.live_bytes, usage.purged_count) == (
            len(live), sum(row.size_bytes for row in live), len(rows) - len(live),
        )
        assert len(list((home / "objects").iterdir())) == len(live)
        assert recovery.missing_objects == ()


def acknowledged_at_least(acks: int, lines: list[str]) -> bool:
    return sum(line.startswith("ack ") for line in lines) >= acks


def paused(lines: list[str]) -> bool:
    return bool(lines) and lines[-1] == "paused"


def test_kill_9_at_random_moments_loses_no_acknowledged_payload(tmp_path: Path) -> None:
    rng = random.Random(20260601)
    home = tmp_path / "vault"
    modes = [*vault_writer.PAUSE_POINTS, *["random"] * 5]
    rng.shuffle(modes)
    script = Path(vault_writer.__file__)
    for round_number, mode in enumerate(modes):
        done: Callable[[list[str]], bool]
        if mode == "random":  # kill right after the n-th acknowledgement: mid-put or mid-purge
            arguments: list[str] = []
            acks = rng.randrange(1, 12)
            done = functools.partial(acknowledged_at_least, acks)
        else:  # the child stops at the point's n-th passage and waits to be killed
            arguments = [mode, str(rng.randrange(1, 4))]
            done = paused

        process = subprocess.Popen(
            [sys.executable, str(script), str(home), str(round_number), *arguments],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        try:
            lines = lines_until(process, done, deadline_s=60)
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=30) == -signal.SIGKILL
            # a random kill may land after more lines than we waited for: they count too
            assert process.stdout is not None
            lines += [line.decode() for line in process.stdout.read().split(b"\n") if line]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()
        check_after_crash(home, round_number, lines, mode)


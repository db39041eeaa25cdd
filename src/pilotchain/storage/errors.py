"""The storage error tree (see :mod:`pilotchain.storage` for the drawing).

Errors are split by blame, so the node shell knows what to do with each:

* caller bug (:class:`InvalidCommit`, :class:`LimitExceeded`, :class:`StoreClosed`): the store
  is unchanged; fix the caller.
* operating error (:class:`StorageFull`, :class:`StoreLocked`, plain :class:`StorageError`
  wrapping an ``OSError`` / ``lmdb.Error``): the store is unchanged at its previous committed
  height; the operator frees space or fixes the environment.
* broken invariant (:class:`StorageCorrupted`): the bytes on disk contradict what the store
  committed to. The node must halt; it must never sign or serve anything derived from them.
"""

from __future__ import annotations

from pilotchain.errors import CoreError

__all__ = [
    "StorageError",
    "StorageCorrupted",
    "StorageFull",
    "StoreLocked",
    "StoreClosed",
    "LimitExceeded",
    "InvalidCommit",
    "CrashInjected",
]


class StorageError(CoreError):
    """Base of every error the storage package raises."""


class StorageCorrupted(StorageError):
    """On-disk data contradicts a committed invariant (CRC, index, state root). Halt the node."""


class StorageFull(StorageError):
    """The disk (ENOSPC) or the LMDB map is full; the store stayed at its previous height."""


class StoreLocked(StorageError):
    """Another LedgerStore (this or another process) has the data directory open."""


class StoreClosed(StorageError):
    """The store was closed, or a crash was injected into it; reopen the directory."""


class LimitExceeded(StorageError, ValueError):
    """An input exceeds a configured bound (block, key, value, certificate, tx id sizes...)."""


class InvalidCommit(StorageError, ValueError):
    """A commit that does not extend the store: wrong height, stale prepared state, duplicates."""


class CrashInjected(Exception):
    """Raised by the test-only fault hook at a named crash point; simulates process death.

    Deliberately *not* a :class:`StorageError`: nothing inside the store catches it, so no
    clean-up runs, exactly as if the process had died at that instant.
    """

    def __init__(self, point: str) -> None:
        super().__init__(f"crash injected at {point!r}")
        self.point = point

"""The explorer's own index: what the node does not index — transactions by signer and by contract,
events by name, the identities seen signing — in an embedded SQLite file, fed from committed blocks.

Theory of operation
-------------------
The index holds only what its organisation read: it is fed from the blocks the explorer reads
through the SDK as that organisation (each block proven against its header first), so a
transaction redacted for it is indexed by its id and contract alone, with no signer, method or
events. Blocks go in in height order, one SQLite transaction per :data:`BLOCKS_PER_COMMIT`
blocks, each with its height recorded in the same transaction, so a crash loses at most the
blocks after the last commit and :meth:`ExplorerIndex.indexed_height` says where to go on. The
index is derived data: :meth:`ExplorerIndex.reset` empties it and it is rebuilt from block 1 at
any time (``pilotchain explorer index --rebuild``); an index made for another chain (its genesis
hash differs) is reset on open.

Every list is paged by a key cursor (newest first: "before this (height, index)"), read through
an index that matches it, so a page costs the same on a chain of a million transactions as on
one of ten (no OFFSET, no full scan). :class:`Indexer` is the I/O shell: it catches up with the
node and then follows it, in a thread of its own.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilotchain.codec import CodecError, decode
from pilotchain.crypto import Suite
from pilotchain.identity.records import Certificate, certificate_id
from pilotchain.ledger.tx import TxRejected, decode_transaction

if TYPE_CHECKING:
    from pilotchain.sdk import BlockInfo, Client

__all__ = ["BLOCKS_PER_COMMIT", "PAGE_ROWS_MAX", "Cursor", "ExplorerIndex", "Indexer", "IndexRun"]

#: blocks written in one SQLite transaction
BLOCKS_PER_COMMIT = 64
#: rows one page returns at most
PAGE_ROWS_MAX = 100
#: how often the follower asks the node for its height when it has caught up
FOLLOW_INTERVAL_S = 1.0
SCHEMA_VERSION = 2
#: how long a write waits for another process holding the file (``index --rebuild`` beside a server)
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    height INTEGER NOT NULL, idx INTEGER NOT NULL, tx_id BLOB NOT NULL, contract TEXT NOT NULL,
    method TEXT, signer_org TEXT, signer_subject TEXT, signer_id BLOB, status TEXT NOT NULL,
    redacted INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL, PRIMARY KEY (height, idx));
CREATE INDEX IF NOT EXISTS txs_by_contract ON txs (contract, height DESC, idx DESC);
CREATE INDEX IF NOT EXISTS txs_by_signer ON txs (signer_id, height DESC, idx DESC);
CREATE TABLE IF NOT EXISTS events (
    height INTEGER NOT NULL, idx INTEGER NOT NULL, seq INTEGER NOT NULL, tx_id BLOB NOT NULL,
    contract TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (height, idx, seq));
CREATE INDEX IF NOT EXISTS events_by_name ON events (name, height DESC, idx DESC, seq DESC);
CREATE TABLE IF NOT EXISTS identities (
    signer_id BLOB PRIMARY KEY, org TEXT NOT NULL, subject TEXT NOT NULL, serial INTEGER NOT NULL,
    roles TEXT NOT NULL, not_before_ms INTEGER NOT NULL, not_after_ms INTEGER NOT NULL,
    first_height INTEGER NOT NULL, last_height INTEGER NOT NULL, tx_count INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS identities_by_name ON identities (org, subject);
"""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends: rows strictly older than (height, index, seq) come next."""

    height: int
    index: int
    seq: int = 0

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        """``H.I`` or ``H.I.S``; None for no cursor; ValueError for anything else."""
        if not text:
            return None
        parts = text.split(".")
        if not 2 <= len(parts) <= 3 or not all(part.isascii() and part.isdigit() for part in parts):
            raise ValueError("a page cursor is HEIGHT.INDEX (or HEIGHT.INDEX.SEQ for events)")
        return cls(*(int(part) for part in parts))

    def __str__(self) -> str:
        return f"{self.height}.{self.index}.{self.seq}"


class ExplorerIndex:
    """The SQLite file (``":memory:"`` for none), for one chain (its genesis hash)."""

    def __init__(self, path: str | Path, genesis_hash: str) -> None:
        self.path = str(path)
        # one connection, used by the indexer thread and the request threads under a lock
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("schema") not in (None, str(SCHEMA_VERSION)):  # another layout: start over in this one
                self._db.executescript("DROP TABLE IF EXISTS txs; DROP TABLE IF EXISTS events; "
                                       "DROP TABLE IF EXISTS identities; DELETE FROM meta;")
            self._db.executescript(_SCHEMA)
        if meta.get("genesis") not in (None, genesis_hash):
            self.reset()
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('genesis', ?), ('schema', ?)", (genesis_hash, str(SCHEMA_VERSION)))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def reset(self) -> None:
        """Forget everything indexed (it is rebuilt from block 1)."""
        with self._lock:
            self._db.execute("BEGIN")
            for table in ("txs", "events", "identities"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - table names are this module's own
            self._db.execute("DELETE FROM meta WHERE key = 'height'")
            self._db.execute("COMMIT")

    def indexed_height(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'height'").fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ writing

    def add_blocks(self, blocks: list[BlockInfo], suite: Suite) -> int:
        """Index ``blocks`` (the next heights, in order) in one transaction; returns their transactions."""
        if not blocks:
            return 0
        expected = self.indexed_height() + 1
        if [b.height for b in blocks] != list(range(expected, expected + len(blocks))):
            raise ValueError(f"blocks must come in height order from {expected}")
        count = 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for block in blocks:
                    count += self._add_block(block, suite)
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('height', ?)", (str(blocks[-1].height),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return count

    def _add_block(self, block: BlockInfo, suite: Suite) -> int:
        timestamp_ms = block.header.timestamp_ms
        for index, (tx, receipt) in enumerate(zip(block.transactions, block.receipts, strict=True)):
            signer_id: bytes | None = None
            org = subject = None
            if not tx.redacted:
                certificate = _signer(tx.raw, suite)
                if certificate is not None:
                    signer_id = certificate_id(suite, certificate)
                    org, subject = certificate.org_id, certificate.subject
                    self._seen(signer_id, certificate, block.height)
            self._db.execute("INSERT INTO txs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (block.height, index, bytes.fromhex(tx.tx_id), tx.contract, tx.method or None, org, subject, signer_id,
                              receipt.status, int(tx.redacted), timestamp_ms))
            if not tx.redacted:
                self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                                     [(block.height, index, seq, bytes.fromhex(tx.tx_id), event.contract, event.name)
                                      for seq, event in enumerate(receipt.events)])
        return len(block.transactions)

    def _seen(self, signer_id: bytes, certificate: Certificate, height: int) -> None:
        self._db.execute(
            "INSERT INTO identities VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (signer_id) DO UPDATE "
            "SET last_height = excluded.last_height, tx_count = tx_count + 1",
            (signer_id, certificate.org_id, certificate.subject, certificate.serial, ",".join(certificate.roles),
             certificate.not_before_ms, certificate.not_after_ms, height, height))

    # ------------------------------------------------------------------ reading

    def _page(self, where: str, args: tuple[Any, ...], before: Cursor | None, limit: int) -> list[dict[str, Any]]:
        limit = max(1, min(limit, PAGE_ROWS_MAX))
        cursor_clause, cursor_args = ("", ()) if before is None else ("AND (height, idx) < (?, ?)", (before.height, before.index))
        sql = (f"SELECT height, idx, tx_id, contract, method, signer_org, signer_subject, signer_id, status, redacted, "  # noqa: S608
               f"timestamp_ms FROM txs WHERE {where} {cursor_clause} ORDER BY height DESC, idx DESC LIMIT ?")
        with self._lock:
            rows = self._db.execute(sql, (*args, *cursor_args, limit)).fetchall()
        keys = ("height", "index", "tx_id", "contract", "method", "signer_org", "signer_subject", "signer_id", "status",
                "redacted", "timestamp_ms")
        return [_hex_ids(dict(zip(keys, row, strict=True))) for row in rows]

    def txs_by_contract(self, contract: str, before: Cursor | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self._page("contract = ?", (contract,), before, limit)

    def txs_by_signer(self, signer_id: str, before: Cursor | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The transactions signed by the certificate ``signer_id`` (hex); none for what is not hex."""
        try:
            key = bytes.fromhex(signer_id)
        except ValueError:
            return []
        return self._page("signer_id = ?", (key,), before, limit)

    def events_by_name(self, name: str, before: Cursor | None = None, limit: int = 50) -> list[dict[str, Any]]:
        limit = max(1, min(limit, PAGE_ROWS_MAX))
        cursor_clause, cursor_args = (("", ()) if before is None else
                                      ("AND (height, idx, seq) < (?, ?, ?)", (before.height, before.index, before.seq)))
        sql = (f"SELECT height, idx, seq, tx_id, contract, name FROM events WHERE name = ? {cursor_clause} "  # noqa: S608
               "ORDER BY height DESC, idx DESC, seq DESC LIMIT ?")
        with self._lock:
            rows = self._db.execute(sql, (name, *cursor_args, limit)).fetchall()
        return [_hex_ids(dict(zip(("height", "index", "seq", "tx_id", "contract", "name"), row, strict=True))) for row in rows]

    def identities(self, org: str | None = None, subject: str | None = None) -> list[dict[str, Any]]:
        """The identities seen signing (of ``org``; named ``subject``), newest certificates first."""
        where: str = "1"
        args: tuple[Any, ...] = ()
        if org is not None:
            where, args = "org = ?", (org,)
            if subject is not None:
                where, args = "org = ? AND subject = ?", (org, subject)
        with self._lock:
            rows = self._db.execute(f"SELECT signer_id, org, subject, serial, roles, not_before_ms, not_after_ms, "  # noqa: S608
                                    f"first_height, last_height, tx_count FROM identities WHERE {where} "
                                    f"ORDER BY org, subject, serial DESC LIMIT {PAGE_ROWS_MAX}", args).fetchall()
        keys = ("signer_id", "org", "subject", "serial", "roles", "not_before_ms", "not_after_ms", "first_height",
                "last_height", "tx_count")
        return [_hex_ids(dict(zip(keys, row, strict=True))) for row in rows]

    def knows(self, *, contract: str | None = None, event: str | None = None) -> bool:
        """Whether any indexed transaction called ``contract`` / any event is named ``event``."""
        with self._lock:
            if contract is not None:
                return self._db.execute("SELECT 1 FROM txs WHERE contract = ? LIMIT 1", (contract,)).fetchone() is not None
            return self._db.execute("SELECT 1 FROM events WHERE name = ? LIMIT 1", (event,)).fetchone() is not None


def _hex_ids(row: dict[str, Any]) -> dict[str, Any]:
    """Ids are stored as their 32 bytes and shown as hex."""
    for key in ("tx_id", "signer_id"):
        if isinstance(row.get(key), bytes):
            row[key] = row[key].hex()
    return row


def _signer(raw: bytes, suite: Suite) -> Certificate | None:
    try:
        return decode(decode_transaction(suite, raw).body.signer_certificate, Certificate)
    except (TxRejected, CodecError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class IndexRun:
    blocks: int
    txs: int
    seconds: float

    @property
    def blocks_per_s(self) -> float:
        return self.blocks / self.seconds if self.seconds > 0 else 0.0

    @property
    def txs_per_s(self) -> float:
        return self.txs / self.seconds if self.seconds > 0 else 0.0


class Indexer:
    """Feeds an :class:`ExplorerIndex` from the node: :meth:`catch_up` once, :meth:`start` to follow."""

    def __init__(self, index: ExplorerIndex, client: Client, suite: Suite,
                 clock_s: Callable[[], float] = time.perf_counter) -> None:
        self.index = index
        self.client = client
        self.suite = suite
        self._clock_s = clock_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: the last failure to read the node (shown on the search page), "" while all is well
        self.problem = ""

    def catch_up(self, until: int | None = None) -> IndexRun:
        """Index every block from the next one to ``until`` (default: the node's height)."""
        started = self._clock_s()
        top = self.client.status().height if until is None else until
        blocks = txs = 0
        while not self._stop.is_set():
            first = self.index.indexed_height() + 1
            if first > top:
                break
            batch = [self.client.get_block(h) for h in range(first, min(first + BLOCKS_PER_COMMIT, top + 1))]
            txs += self.index.add_blocks(batch, self.suite)
            blocks += len(batch)
        return IndexRun(blocks, txs, self._clock_s() - started)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._follow, name="explorer-index", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _follow(self) -> None:
        from pilotchain.sdk import PilotchainError

        while not self._stop.is_set():
            try:
                self.catch_up()
                self.problem = ""
            except PilotchainError as exc:  # the node is away: try again later, keep what is indexed
                self.problem = str(exc)
            self._stop.wait(FOLLOW_INTERVAL_S)

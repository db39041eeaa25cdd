"""The vault's book of evidence: signed receipts, their anchoring batches, seen requests, and the
work that must survive a crash (acknowledgements to send, purges to confirm).

Everything is in one LMDB environment with synced commits: a receipt is durable before the
delivery it describes starts streaming, so a kill -9 at any instant loses no receipt; a batch is
recorded (its receipts and root) before its anchoring transaction is sent, so after a crash the
vault finds out from the chain whether the root is anchored and sends the transaction again only
if it is not.

Databases::

    receipts   receipt id (suite hash of the signed bytes) -> ReceiptRow
    pending    sequence (8 bytes) -> receipt id         not yet in a batch
    batches    root -> BatchRow                          sealed, submitted or anchored
    requests   request id -> RequestRow                  every delivery request seen (replays refused)
    by_payload payload id \\0 receipt id -> b""
    outbox     sequence (8 bytes) -> OutboxItem           acknowledgements and purge confirmations to retry
    meta       counters
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import lmdb
import msgspec

from pilotchain.apps.exchange.records import ExchangeError, anchor_root
from pilotchain.codec import Record, decode, encode
from pilotchain.crypto import Suite
from pilotchain.ledger import merkle

__all__ = ["BatchRow", "BatchState", "OutboxItem", "ReceiptBook", "ReceiptProof", "ReceiptRow", "RequestRow"]

MAP_SIZE_DEFAULT = 1 << 30
BATCH_RECEIPTS_MAX = 1024


class BatchState(enum.StrEnum):
    SEALED = "sealed"  # receipts chosen, root computed, no transaction yet
    SUBMITTED = "submitted"  # anchoring transaction sent (tx_id known)
    ANCHORED = "anchored"  # the root is in a committed block


class ReceiptRow(Record, frozen=True):
    signed: bytes
    kind: str
    request_id: str
    payload_id: str
    created_ms: int
    batch_root: bytes = b""
    index: int = -1


class BatchRow(Record, frozen=True):
    root: bytes
    receipt_ids: tuple[bytes, ...]
    state: str
    tx_id: str = ""
    height: int = -1
    anchored_ms: int = -1
    #: the signed anchoring transaction, kept until it is known to be committed
    tx_raw: bytes = b""


class RequestRow(Record, frozen=True):
    """A delivery request this vault answered (provider) or made (consumer)."""

    request_id: str
    role: str  # "provider" | "consumer"
    payload_id: str
    peer_org: str
    purpose: str
    outcome: str  # "delivered", "received", "refused:<CODE>", "complained"
    at_ms: int
    detail: str = ""


class OutboxItem(Record, frozen=True):
    kind: str  # "ack" (send a received receipt to the provider) | "confirm_purge" | "complain"
    payload_id: str
    peer_org: str
    data: bytes
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class ReceiptProof:
    receipt_id: bytes
    signed: bytes
    root: bytes
    index: int
    count: int
    path: tuple[bytes, ...]
    tx_id: str
    height: int


class ReceiptBook:
    def __init__(self, path: Path, suite: Suite, *, map_size: int = MAP_SIZE_DEFAULT) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.suite = suite
        self._env = lmdb.open(str(path), map_size=map_size, max_dbs=8, sync=True, metasync=True,
                              subdir=True, lock=True)
        self._receipts = self._env.open_db(b"receipts")
        self._pending = self._env.open_db(b"pending")
        self._batches = self._env.open_db(b"batches")
        self._requests = self._env.open_db(b"requests")
        self._by_payload = self._env.open_db(b"by_payload")
        self._outbox = self._env.open_db(b"outbox")
        self._meta = self._env.open_db(b"meta")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._env.close()

    # -- sequences

    def _next(self, txn: lmdb.Transaction, name: bytes) -> bytes:
        raw = txn.get(name, db=self._meta)
        value = int.from_bytes(raw, "big") if raw else 0
        txn.put(name, (value + 1).to_bytes(8, "big"), db=self._meta)
        return value.to_bytes(8, "big")

    # -- requests

    def request(self, request_id: str) -> RequestRow | None:
        with self._env.begin() as txn:
            raw = txn.get(request_id.encode(), db=self._requests)
        return None if raw is None else decode(raw, RequestRow)

    def claim_request(self, row: RequestRow) -> None:
        """Record a request id the first time it is seen; ExchangeError(REPLAYED) after that."""
        with self._lock, self._env.begin(write=True) as txn:
            if not txn.put(row.request_id.encode(), encode(row), db=self._requests, overwrite=False):
                raise ExchangeError("REPLAYED", f"request {row.request_id} was seen before (a replay); "
                                    "every request needs a fresh request_id")

    def settle_request(self, row: RequestRow) -> None:
        with self._lock, self._env.begin(write=True) as txn:
            txn.put(row.request_id.encode(), encode(row), db=self._requests)

    def requests(self, payload_id: str | None = None) -> list[RequestRow]:
        with self._env.begin() as txn:
            rows = [decode(raw, RequestRow) for _, raw in txn.cursor(db=self._requests)]
        return [r for r in rows if payload_id is None or r.payload_id == payload_id]

    # -- receipts

    def add_receipt(self, signed: bytes, kind: str, request_id: str, payload_id: str, created_ms: int,
                    request: RequestRow | None = None) -> bytes:
        """Store a signed receipt (and settle its request in the same transaction); its id."""
        receipt_id = self.suite.hash(signed)
        row = ReceiptRow(signed=signed, kind=kind, request_id=request_id, payload_id=payload_id,
                         created_ms=created_ms)
        with self._lock, self._env.begin(write=True) as txn:
            if txn.put(receipt_id, encode(row), db=self._receipts, overwrite=False):
                txn.put(self._next(txn, b"pending_seq"), receipt_id, db=self._pending)
                txn.put(payload_id.encode() + b"\x00" + receipt_id, b"", db=self._by_payload)
            if request is not None:
                txn.put(request.request_id.encode(), encode(request), db=self._requests)
        return receipt_id

    def receipt(self, receipt_id: bytes) -> ReceiptRow | None:
        with self._env.begin() as txn:
            raw = txn.get(receipt_id, db=self._receipts)
        return None if raw is None else decode(raw, ReceiptRow)

    def receipts_of(self, payload_id: str) -> list[tuple[bytes, ReceiptRow]]:
        prefix = payload_id.encode() + b"\x00"
        out = []
        with self._env.begin() as txn:
            cursor = txn.cursor(db=self._by_payload)
            if cursor.set_range(prefix):
                for key, _ in cursor:
                    if not key.startswith(prefix):
                        break
                    receipt_id = key[len(prefix):]
                    raw = txn.get(receipt_id, db=self._receipts)
                    if raw is not None:
                        out.append((receipt_id, decode(raw, ReceiptRow)))
        return out

    def pending_count(self) -> int:
        with self._env.begin() as txn:
            return int(txn.stat(self._pending)["entries"])

    # -- batches

    def open_batches(self) -> list[BatchRow]:
        """Batches sealed or submitted but not yet known to be anchored (oldest first)."""
        with self._env.begin() as txn:
            rows = [decode(raw, BatchRow) for _, raw in txn.cursor(db=self._batches)]
        return [b for b in rows if b.state != BatchState.ANCHORED]

    def seal_batch(self, limit: int = BATCH_RECEIPTS_MAX) -> BatchRow | None:
        """Move up to ``limit`` pending receipts into a new sealed batch (None: nothing pending)."""
        with self._lock, self._env.begin(write=True) as txn:
            cursor = txn.cursor(db=self._pending)
            chosen: list[tuple[bytes, bytes]] = []
            for key, receipt_id in cursor:
                chosen.append((key, receipt_id))
                if len(chosen) >= limit:
                    break
            if not chosen:
                return None
            rows = []
            for _, receipt_id in chosen:
                raw = txn.get(receipt_id, db=self._receipts)
                if raw is None:  # pragma: no cover - written in the same transaction as the pending entry
                    raise ExchangeError("CORRUPT", "a pending receipt is missing from the book")
                rows.append(decode(raw, ReceiptRow))
            root = anchor_root(self.suite, [row.signed for row in rows])
            batch = BatchRow(root=root, receipt_ids=tuple(r for _, r in chosen), state=BatchState.SEALED)
            txn.put(root, encode(batch), db=self._batches)
            for index, ((key, receipt_id), row) in enumerate(zip(chosen, rows, strict=True)):
                txn.put(receipt_id, encode(_with(row, batch_root=root, index=index)), db=self._receipts)
                txn.delete(key, db=self._pending)
            return batch

    def update_batch(self, batch: BatchRow) -> None:
        with self._lock, self._env.begin(write=True) as txn:
            txn.put(batch.root, encode(batch), db=self._batches)

    def batch(self, root: bytes) -> BatchRow | None:
        with self._env.begin() as txn:
            raw = txn.get(root, db=self._batches)
        return None if raw is None else decode(raw, BatchRow)

    def proof(self, receipt_id: bytes) -> ReceiptProof | None:
        """The receipt's inclusion proof in its anchored batch (None: not anchored yet)."""
        row = self.receipt(receipt_id)
        if row is None or not row.batch_root:
            return None
        batch = self.batch(row.batch_root)
        if batch is None or batch.state != BatchState.ANCHORED:
            return None
        leaves = []
        for rid in batch.receipt_ids:
            other = self.receipt(rid)
            if other is None:  # pragma: no cover - rows are never deleted
                raise ExchangeError("CORRUPT", "an anchored batch names a receipt the book lost")
            leaves.append(other.signed)
        path = tuple(merkle.inclusion_proof(self.suite.hash, leaves, row.index))
        return ReceiptProof(receipt_id=receipt_id, signed=row.signed, root=batch.root, index=row.index,
                            count=len(leaves), path=path, tx_id=batch.tx_id, height=batch.height)

    # -- outbox

    def queue(self, item: OutboxItem) -> None:
        with self._lock, self._env.begin(write=True) as txn:
            txn.put(self._next(txn, b"outbox_seq"), encode(item), db=self._outbox)

    def outbox(self) -> Iterator[tuple[bytes, OutboxItem]]:
        with self._env.begin() as txn:
            items = [(key, decode(raw, OutboxItem)) for key, raw in txn.cursor(db=self._outbox)]
        yield from items

    def done(self, key: bytes) -> None:
        with self._lock, self._env.begin(write=True) as txn:
            txn.delete(key, db=self._outbox)

    def retry_later(self, key: bytes, item: OutboxItem) -> None:
        with self._lock, self._env.begin(write=True) as txn:
            txn.put(key, encode(_with(item, attempts=item.attempts + 1)), db=self._outbox)

    def outbox_depth(self) -> int:
        with self._env.begin() as txn:
            return int(txn.stat(self._outbox)["entries"])


_R = TypeVar("_R", bound=Record)


def _with(record: _R, **changes: object) -> _R:
    return msgspec.structs.replace(record, **changes)

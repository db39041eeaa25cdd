"""The mempool: bounded, deduplicated, replay-protected, fair between senders.

Theory of operation
-------------------
A transaction enters through :meth:`Mempool.add` only after the ledger's admission checks
(canonical decoding, bounds, chain id, expiry, the signer's membership and role, the signature,
and "not already committed") — the caller passes them in as ``check`` so this module stays pure.
Admitted transactions wait in one FIFO queue per signer (keyed by certificate id);
:meth:`Mempool.take` builds a batch round-robin over signers, so one busy organisation cannot
starve the others. Committed transactions are removed with :meth:`remove_committed`; expired ones
are dropped by :meth:`prune` (called with the node's clock).

Bounds: total transactions, total bytes, and transactions per signer. When full, the newcomer
is refused with ``MEMPOOL_FULL`` (nothing already admitted is evicted: a client that was told
"accepted" is not silently dropped).

Recently refused and recently committed ids are remembered for a while so a client asking for
its transaction gets a clear answer. Pure: no I/O; time comes in as ``now_ms``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from pilotchain.errors import InvariantBroken
from pilotchain.ledger.tx import RejectCode, SignedTx, TxRejected

__all__ = ["Mempool", "MempoolLimits", "PoolEntry"]


@dataclass(frozen=True, slots=True)
class MempoolLimits:
    txs_max: int = 50_000
    bytes_max: int = 256 * 1024 * 1024
    txs_per_signer_max: int = 10_000
    #: how many refusals are remembered for status queries
    rejections_remembered_max: int = 100_000


class PoolEntry(NamedTuple):
    """One waiting transaction (a named tuple: one is made per admitted transaction)."""

    tx: SignedTx
    signer: bytes
    added_ms: int


class Mempool:
    def __init__(self, limits: MempoolLimits | None = None) -> None:
        self.limits = limits or MempoolLimits()
        self._entries: dict[bytes, PoolEntry] = {}
        self._queues: OrderedDict[bytes, deque[bytes]] = OrderedDict()
        self._bytes = 0
        self._rejections: OrderedDict[bytes, TxRejected] = OrderedDict()

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._entries

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, tx_id: bytes) -> PoolEntry | None:
        return self._entries.get(tx_id)

    def rejection(self, tx_id: bytes) -> TxRejected | None:
        return self._rejections.get(tx_id)

    def signers(self) -> int:
        return len(self._queues)

    # ------------------------------------------------------------------ admitting

    def add(self, raw: bytes, now_ms: int, check: Callable[[bytes, int], SignedTx]) -> SignedTx:
        """Admit ``raw`` (after ``check(raw, now_ms)``) or raise TxRejected; changes nothing on refusal."""
        try:
            tx = check(raw, now_ms)
        except TxRejected as exc:
            if exc.tx_id is not None:
                self.remember_rejection(exc.tx_id, exc)
            raise
        if tx.tx_id in self._entries:
            raise TxRejected(RejectCode.DUPLICATE, "this transaction is already waiting in the mempool", tx.tx_id)
        signer = tx.body.signer_certificate
        queue = self._queues.get(signer)
        if len(self._entries) >= self.limits.txs_max or self._bytes + len(raw) > self.limits.bytes_max:
            raise TxRejected(RejectCode.MEMPOOL_FULL, "the node's mempool is full; retry in a few seconds or use another node")
        if queue is not None and len(queue) >= self.limits.txs_per_signer_max:
            raise TxRejected(
                RejectCode.MEMPOOL_FULL,
                f"this signer already has {len(queue)} transactions waiting; wait for some to commit",
            )
        if queue is None:
            queue = self._queues[signer] = deque()
        queue.append(tx.tx_id)
        self._entries[tx.tx_id] = PoolEntry(tx=tx, signer=signer, added_ms=now_ms)
        self._bytes += len(raw)
        self._rejections.pop(tx.tx_id, None)
        return tx

    def remember_rejection(self, tx_id: bytes, exc: TxRejected) -> None:
        self._rejections[tx_id] = exc
        self._rejections.move_to_end(tx_id)
        while len(self._rejections) > self.limits.rejections_remembered_max:
            self._rejections.popitem(last=False)

    # ------------------------------------------------------------------ proposing

    def take(self, count_max: int, bytes_max: int) -> list[bytes]:
        """Up to ``count_max`` transactions (``bytes_max`` in all), round-robin over signers.

        Does not remove them: they leave when committed (:meth:`remove_committed`) or expire."""
        batch: list[bytes] = []
        size = 0
        cursors = {signer: 0 for signer in self._queues}
        active = list(self._queues)
        while active and len(batch) < count_max:
            still: list[bytes] = []
            for signer in active:
                queue = self._queues[signer]
                position = cursors[signer]
                if position >= len(queue):
                    continue
                raw = self._entries[queue[position]].tx.raw
                if size + len(raw) > bytes_max:
                    return batch
                batch.append(raw)
                size += len(raw)
                cursors[signer] = position + 1
                if len(batch) >= count_max:
                    return batch
                still.append(signer)
            active = still
        return batch

    # ------------------------------------------------------------------ removing

    def remove_committed(self, tx_ids: Iterable[bytes]) -> int:
        removed = 0
        touched: set[bytes] = set()
        for tx_id in tx_ids:
            entry = self._entries.pop(tx_id, None)
            if entry is None:
                continue
            self._bytes -= len(entry.tx.raw)
            touched.add(entry.signer)
            removed += 1
        for signer in touched:
            queue = self._queues[signer]
            remaining = deque(tx_id for tx_id in queue if tx_id in self._entries)
            if remaining:
                self._queues[signer] = remaining
            else:
                del self._queues[signer]
        if not (self._bytes >= 0):
            raise InvariantBroken('invariant broken: self._bytes >= 0')
        return removed

    def prune(self, now_ms: int) -> list[bytes]:
        """Drop transactions that expired before ``now_ms``; returns their ids."""
        expired = [tx_id for tx_id, entry in self._entries.items() if entry.tx.body.expires_at_ms < now_ms]
        for tx_id in expired:
            self.remember_rejection(tx_id, TxRejected(RejectCode.EXPIRED, "expired in the mempool before it was included"))
        self.remove_committed(expired)
        return expired

"""What every node shell shares: the NodeAPI over a ledger and a mempool, admission, events, metrics.

Theory of operation
-------------------
:class:`NodeFrontend` implements the reading, submitting and event parts of
:class:`~pilotchain.node.api.NodeAPI` over one :class:`~pilotchain.node.chain.Ledger` and one
:class:`~pilotchain.node.mempool.Mempool`. Two shells are built from it, side by side:

* :class:`~pilotchain.node.local.LocalNode` — the single-process development node, which
  proposes and commits its own blocks (no consensus);
* :class:`~pilotchain.node.daemon.ConsensusNode` — the validator process, which drives the
  sans-IO :class:`~pilotchain.node.core.NodeCore` over P2P, a WAL file, timers and the gateway.

Admission (:meth:`NodeFrontend.submit_txs`) runs the ledger's checks up to the signatures
(``precheck_txs``), verifies the signatures in one batch on the verify pool off the event loop
(:func:`pilotchain.crypto.parallel.verify_batch_async`), then admits each to the mempool.
Subscribers each get a bounded queue (``subscriber_queue_max`` events). Publishing never waits:
a subscriber whose queue is full is dropped — its iterator ends after the events it already
holds, and it can catch up by reading blocks.

Everything runs on the node's event loop thread; the clock is injected (``clock_ms``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pilotchain.codec import CodecError
from pilotchain.contracts.reads import ReadAccess
from pilotchain.crypto import Suite, get_suite
from pilotchain.crypto.parallel import verify_batch_async
from pilotchain.errors import InvariantBroken
from pilotchain.ledger.block import Block
from pilotchain.ledger.execution import Caller
from pilotchain.ledger.genesis import Genesis, genesis_hash
from pilotchain.ledger.tx import SignedTx, TxRejected, decode_args, decode_transaction
from pilotchain.node.api import EventKind, NodeEvent, NodeStatus, StateRead, TxState, TxStatus
from pilotchain.node.chain import Ledger
from pilotchain.node.mempool import Mempool, MempoolLimits

__all__ = ["NodeFrontend", "Subscription", "block_events", "wall_clock_ms"]

_log = logging.getLogger("pilotchain.node")

#: Events a subscriber may have waiting before it is dropped.
SUBSCRIBER_QUEUE_MAX = 20_000  # > the events of one full block (block, each tx, contract events)
#: Subscribers at once (each holds a queue); more are refused.
SUBSCRIBERS_MAX = 256


def wall_clock_ms() -> int:
    """The node shells' clock: milliseconds since the epoch (the only clock a node reads)."""
    return time.time_ns() // 1_000_000


class _Dropped:
    """Queue sentinel: the subscriber fell behind and was disconnected."""


_DROPPED = _Dropped()


class Subscription:
    """An async iterator over :class:`NodeEvent` s, registered from the moment it is created.

    Ends (``StopAsyncIteration``) when the node drops the subscriber for falling behind or the
    node stops; :meth:`aclose` unregisters it."""

    def __init__(self, node: NodeFrontend, kinds: frozenset[EventKind] | None, queue_max: int) -> None:
        self._node = node
        self.kinds = kinds
        self.queue: asyncio.Queue[NodeEvent | _Dropped] = asyncio.Queue(maxsize=queue_max)
        self.dropped = False

    def offer(self, event: NodeEvent) -> bool:
        """Queue ``event`` without waiting; False (and drop the subscriber) when full."""
        if self.kinds is not None and event.kind not in self.kinds:
            return True
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.end()
            return False
        return True

    def end(self) -> None:
        """Mark the subscription finished; the reader sees the end after one slot frees up or now."""
        self.dropped = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(_DROPPED)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> NodeEvent:
        if self.dropped and self.queue.empty():
            raise StopAsyncIteration
        item = await self.queue.get()
        if isinstance(item, _Dropped):
            raise StopAsyncIteration
        return item

    def take_ready(self, count_max: int) -> list[NodeEvent]:
        """Up to ``count_max`` events already queued, without waiting (a streamer sends them as
        one write instead of one per event); stops at the end of a dropped subscription."""
        ready: list[NodeEvent] = []
        while len(ready) < count_max:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if isinstance(item, _Dropped):
                self.dropped = True  # the next __anext__ ends the stream
                break
            ready.append(item)
        return ready

    async def aclose(self) -> None:
        self._node._unsubscribe(self)
        self.dropped = True



class NodeFrontend:
    """The NodeAPI parts every node shell shares (see the module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        name: str,
        org: str,
        clock_ms: Callable[[], int] = wall_clock_ms,
        mempool_limits: MempoolLimits | None = None,
        subscriber_queue_max: int = SUBSCRIBER_QUEUE_MAX,
    ) -> None:
        if subscriber_queue_max < 1:
            raise ValueError("subscriber_queue_max must be at least 1")
        self.ledger = ledger
        self.genesis: Genesis = ledger.genesis
        self.suite: Suite = get_suite(ledger.genesis.suite)
        self.name = name
        self.org = org
        self.clock_ms = clock_ms
        self.mempool = Mempool(mempool_limits)
        self.subscriber_queue_max = subscriber_queue_max
        self._subscribers: set[Subscription] = set()
        self._closed = False
        self._genesis_hash = genesis_hash(self.suite, self.genesis)
        self._registry = CollectorRegistry()
        self._metrics = _NodeMetrics(self._registry)
        self._metrics.height.set(ledger.height)

    async def stop(self) -> None:
        """Stop the shell's tasks and end every subscription (the ledger stays open)."""
        self._end_subscriptions()

    async def close(self) -> None:
        """Stop and close the ledger."""
        await self.stop()
        if not self._closed:
            self._closed = True
            self.ledger.close()

    def _end_subscriptions(self) -> None:
        for subscription in list(self._subscribers):
            subscription.end()
        self._subscribers.clear()

    def _status(self, *, validators: tuple[str, ...], peers: dict[str, bool], consensus: dict[str, Any],
                syncing: bool) -> NodeStatus:
        head = self.ledger.head()
        return NodeStatus(
            chain_id=self.genesis.chain_id,
            node=self.name,
            org=self.org,
            suite=self.genesis.suite,
            height=head.height,
            last_block_hash=self.ledger.head_hash,
            last_block_time_ms=head.timestamp_ms,
            state_root=head.state_root,
            validators=validators,
            genesis_hash=self._genesis_hash,
            peers=peers,
            mempool_size=len(self.mempool),
            consensus=consensus,
            syncing=syncing,
        )

    def get_block(self, height: int) -> Block | None:
        if height < 0 or height > self.ledger.height:
            return None
        return self.ledger.get_block(height)

    def get_certificate(self, height: int) -> bytes | None:
        return self.ledger.store.get_certificate(height)

    def tx_status(self, tx_id: bytes) -> TxStatus:
        record = self.ledger.get_transaction(tx_id)
        if record is not None:
            return TxStatus(
                tx_id=tx_id,
                state=TxState.COMMITTED,
                height=record.header.height,
                tx_raw=record.tx_raw,
                receipt=record.receipt,
                header=record.header,
                proof=record.proof,
            )
        if tx_id in self.mempool:
            return TxStatus(tx_id=tx_id, state=TxState.PENDING)
        refusal = self.mempool.rejection(tx_id)
        if refusal is not None:
            return TxStatus(
                tx_id=tx_id,
                state=TxState.REJECTED,
                reason_code=refusal.code.value,
                reason=refusal.message,
            )
        return TxStatus(tx_id=tx_id, state=TxState.UNKNOWN)

    def read_state(self, contract: str, key: bytes) -> StateRead:
        value, proof = self.ledger.read_state(contract, key)
        return StateRead(
            contract=contract, key=key, value=value, proof=proof, header=self.ledger.head()
        )

    def authenticate(self, certificate: bytes) -> bytes:
        return self.ledger.authenticator.reader(certificate, self.clock_ms())[0]

    def read_access(self, certificate: bytes) -> ReadAccess:
        return ReadAccess(self.ledger.store, self.ledger.authenticator.reader(certificate, self.clock_ms())[1])

    def query(self, contract: str, method: str, args: Any, caller_certificate: bytes | None) -> Any:
        caller: Caller | None = None
        if caller_certificate is not None:
            caller = self.ledger.authenticator.reader(caller_certificate, self.clock_ms())[1]
        return self.ledger.query(contract, method, args, caller)

    def metrics_registry(self) -> CollectorRegistry:
        return self._registry

    # ------------------------------------------------------------------ NodeAPI: submitting

    async def submit_tx(self, raw: bytes) -> bytes:
        if self._closed:
            raise RuntimeError("the node is closed")
        try:
            tx = self.mempool.add(raw, self.clock_ms(), self.ledger.check_tx)
        except TxRejected as exc:
            self._metrics.txs_refused.labels(code=exc.code.value).inc()
            raise
        self._metrics.txs_admitted.inc()
        self._metrics.mempool.set(len(self.mempool))
        self._on_admitted([raw])
        return tx.tx_id

    async def submit_txs(self, raws: list[bytes]) -> list[bytes | TxRejected]:
        if self._closed:
            raise RuntimeError("the node is closed")
        results = await self._admit_many(raws, self.clock_ms())
        self._on_admitted([raw for raw, result in zip(raws, results, strict=True) if isinstance(result, bytes)])
        return results

    def _on_admitted(self, raws: list[bytes]) -> None:
        """Transactions the gateway's submit admitted (the shell wakes its producer or gossips)."""

    async def _admit_many(self, raws: list[bytes], now_ms: int) -> list[bytes | TxRejected]:
        """Check ``raws`` (signatures in one batch, verified on a worker thread so the event loop
        keeps serving consensus and reads meanwhile), then admit each."""
        pending = self.ledger.precheck_txs(raws, now_ms)
        signatures = pending.signatures()
        verdicts = await verify_batch_async(self.suite, signatures)
        if self._closed:
            raise RuntimeError("the node closed while transactions were being checked")
        return self._admit_checked(raws, self.ledger.finish_checks(pending, verdicts), now_ms)

    def _admit_checked(self, raws: list[bytes], checks: list[SignedTx | TxRejected],
                       now_ms: int) -> list[bytes | TxRejected]:
        results: list[bytes | TxRejected] = []
        admitted = 0
        for raw, checked in zip(raws, checks, strict=True):
            if isinstance(checked, TxRejected):
                if checked.tx_id is not None:
                    self.mempool.remember_rejection(checked.tx_id, checked)
                self._metrics.txs_refused.labels(code=checked.code.value).inc()
                results.append(checked)
                continue
            try:
                tx = self.mempool.add(raw, now_ms, _prechecked(checked))
            except TxRejected as exc:
                self._metrics.txs_refused.labels(code=exc.code.value).inc()
                results.append(exc)
                continue
            admitted += 1
            results.append(tx.tx_id)
        self._metrics.txs_admitted.inc(admitted)  # once per batch: a metric update takes a lock
        self._metrics.mempool.set(len(self.mempool))
        return results

    # ------------------------------------------------------------------ NodeAPI: events

    def subscribe(self, kinds: frozenset[EventKind] | None = None) -> AsyncIterator[NodeEvent]:
        if len(self._subscribers) >= SUBSCRIBERS_MAX:
            raise RuntimeError(
                f"this node already serves {SUBSCRIBERS_MAX} event subscribers; try again later"
            )
        subscription = Subscription(self, kinds, self.subscriber_queue_max)
        if self._closed:
            subscription.end()
        else:
            self._subscribers.add(subscription)
        self._metrics.subscribers.set(len(self._subscribers))
        return subscription

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        self._metrics.subscribers.set(len(self._subscribers))

    def _publish_block(self, block: Block, digest: bytes) -> None:
        """Publish a committed block's events, building only the kinds someone subscribed to."""
        if not self._subscribers:
            return
        kinds: set[EventKind] = set()
        for subscription in self._subscribers:
            if subscription.kinds is None:
                kinds = set(EventKind)
                break
            kinds |= subscription.kinds
        for event in block_events(self.suite, block, digest, self.ledger.last_committed_txs, frozenset(kinds)):
            self._publish(event)

    def _publish(self, event: NodeEvent) -> None:
        for subscription in list(self._subscribers):
            if not subscription.offer(event):
                _log.warning(
                    "dropping an event subscriber that fell %d events behind",
                    self.subscriber_queue_max,
                )
                self._metrics.subscribers_dropped.inc()
                self._unsubscribe(subscription)

    # ------------------------------------------------------------------ producing blocks


def _prechecked(tx: SignedTx) -> Callable[[bytes, int], SignedTx]:
    """A mempool check that returns an already checked transaction."""

    def check(raw: bytes, now_ms: int) -> SignedTx:
        if not (raw == tx.raw):
            raise InvariantBroken('invariant broken: raw == tx.raw')
        return tx

    return check


def tx_id_or_none(suite: Suite, raw: bytes) -> bytes | None:
    try:
        return decode_transaction(suite, raw).tx_id
    except TxRejected:
        return None


def block_events(suite: Suite, block: Block, digest: bytes,
                 signed: Sequence[SignedTx] = (), kinds: frozenset[EventKind] | None = None) -> list[NodeEvent]:
    """The events a committed block publishes: the block, each transaction, each contract event
    (only those of ``kinds`` when given: nobody listening, nothing built).

    Payloads are JSON-ready (hex for ids and hashes, base64 for opaque data)."""
    header = block.header
    events: list[NodeEvent] = []
    want_txs = kinds is None or EventKind.TX in kinds
    want_contract_events = kinds is None or EventKind.CONTRACT_EVENT in kinds
    if kinds is None or EventKind.BLOCK in kinds:
        events.append(NodeEvent(
            kind=EventKind.BLOCK,
            height=header.height,
            data={
                "height": header.height,
                "hash": digest.hex(),
                "parent_hash": header.parent_hash.hex(),
                "proposer": header.proposer,
                "timestamp_ms": header.timestamp_ms,
                "tx_count": header.tx_count,
                "state_root": header.state_root.hex(),
            },
        ))
    if not (want_txs or want_contract_events):
        return events
    known = len(signed) == len(block.txs)
    for index, (raw, receipt) in enumerate(zip(block.txs, block.receipts, strict=True)):
        if want_txs:
            contract = method = ""
            try:
                body = signed[index].body if known else decode_transaction(suite, raw).body
                contract, method = body.contract, body.method
            except TxRejected:  # pragma: no cover - a committed transaction always decodes
                pass
            events.append(
                NodeEvent(
                    kind=EventKind.TX,
                    height=header.height,
                    data={
                        "tx_id": receipt.tx_id.hex(),
                        "height": header.height,
                        "index": index,
                        "contract": contract,
                        "method": method,
                        "status": receipt.status,
                        "message": receipt.message,
                    },
                )
            )
        if not want_contract_events:
            continue
        for event in receipt.events:
            try:
                decoded: Any = decode_args(event.data)
            except CodecError:
                decoded = None
            events.append(
                NodeEvent(
                    kind=EventKind.CONTRACT_EVENT,
                    height=header.height,
                    data={
                        "tx_id": receipt.tx_id.hex(),
                        "height": header.height,
                        "contract": event.contract,
                        "name": event.name,
                        "data_base64": base64.b64encode(event.data).decode("ascii"),
                        "data": decoded,
                    },
                )
            )
    return events


class _NodeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.height = Gauge(
            "pilotchain_node_height", "Height of the committed head block", registry=registry
        )
        self.mempool = Gauge(
            "pilotchain_mempool_transactions",
            "Transactions waiting in the mempool",
            registry=registry,
        )
        self.blocks = Counter(
            "pilotchain_blocks_committed", "Blocks this node committed", registry=registry
        )
        self.txs_committed = Counter(
            "pilotchain_txs_committed", "Transactions committed in blocks", registry=registry
        )
        self.txs_admitted = Counter(
            "pilotchain_txs_admitted", "Transactions admitted to the mempool", registry=registry
        )
        self.txs_refused = Counter(
            "pilotchain_txs_refused",
            "Transactions refused (admission, block building, expiry)",
            ["code"],
            registry=registry,
        )
        self.block_seconds = Histogram(
            "pilotchain_block_build_commit_seconds",
            "Time to build and commit one block",
            registry=registry,
        )
        self.subscribers = Gauge(
            "pilotchain_event_subscribers", "Event subscribers connected", registry=registry
        )
        self.subscribers_dropped = Counter(
            "pilotchain_event_subscribers_dropped",
            "Event subscribers dropped for falling behind",
            registry=registry,
        )

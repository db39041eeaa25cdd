"""A single-process development node: a real ledger and mempool, no consensus.

Theory of operation
-------------------
:class:`LocalNode` is a :class:`~pilotchain.node.frontend.NodeFrontend` (the NodeAPI over one
ledger and one mempool, shared with the validator process) plus a block producer. It is what the
gateway and SDK tests and :mod:`pilotchain.testing` run against. It proposes and commits its own
blocks; nothing here is consensus (the validator process,
:class:`~pilotchain.node.daemon.ConsensusNode`, is its sibling, not its subclass):

* ``submit_tx`` runs the ledger's admission checks through ``Mempool.add`` and wakes the block
  producer;
* :meth:`LocalNode.produce_block` (callable directly in tests) takes a batch from the mempool,
  ``build_block`` + ``commit_block``, removes the committed transactions from the mempool,
  remembers the ones the ledger refused, and publishes :class:`~pilotchain.node.api.NodeEvent` s;
* the block producer (an asyncio task, :meth:`start` / :meth:`stop`) calls ``produce_block``
  whenever transactions wait, at most once per ``block_interval_ms``, and prunes expired ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from pilotchain.ledger.block import Block
from pilotchain.ledger.execution import ContractResolver
from pilotchain.ledger.genesis import Genesis
from pilotchain.ledger.tx import TxRejected
from pilotchain.node.api import NodeStatus, Readiness, ReadinessCheck
from pilotchain.node.chain import Ledger, SignerAuthenticator, open_governed_ledger
from pilotchain.node.frontend import (
    SUBSCRIBER_QUEUE_MAX,
    NodeFrontend,
    Subscription,
    block_events,
    tx_id_or_none,
    wall_clock_ms,
)
from pilotchain.node.mempool import MempoolLimits

__all__ = ["LocalNode", "Subscription", "block_events", "wall_clock_ms"]

_log = logging.getLogger(__name__)

#: Minimum time between two produced blocks.
BLOCK_INTERVAL_MS = 100
#: How often the producer prunes expired transactions when idle.
PRUNE_INTERVAL_MS = 5_000


class LocalNode(NodeFrontend):
    """A NodeAPI with a real ledger and mempool that proposes and commits its own blocks."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        name: str = "dev",
        org: str = "",
        clock_ms: Callable[[], int] = wall_clock_ms,
        mempool_limits: MempoolLimits | None = None,
        block_interval_ms: int = BLOCK_INTERVAL_MS,
        subscriber_queue_max: int = SUBSCRIBER_QUEUE_MAX,
    ) -> None:
        if block_interval_ms < 0:
            raise ValueError("block_interval_ms must not be negative")
        super().__init__(ledger, name=name, org=org, clock_ms=clock_ms, mempool_limits=mempool_limits,
                         subscriber_queue_max=subscriber_queue_max)
        self.block_interval_ms = block_interval_ms
        self._wake: asyncio.Event | None = None
        self._producer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        genesis: Genesis,
        *,
        authenticator: SignerAuthenticator | None = None,
        registry: ContractResolver | None = None,
        **options: Any,
    ) -> LocalNode:
        """Open (or create) a ledger in ``data_dir`` for ``genesis`` with the built-in contracts,
        the governance system contract and governance-deployed Python contracts."""
        ledger = open_governed_ledger(data_dir, genesis, authenticator=authenticator, registry=registry)
        return cls(ledger, **options)

    async def start(self) -> None:
        """Start the block producer on the running loop (idempotent)."""
        if self._closed:
            raise RuntimeError("this LocalNode was closed; open a new one")
        if self._producer is None:
            self._wake = asyncio.Event()
            self._producer = asyncio.create_task(
                self._produce_forever(), name=f"local-node-{self.name}-producer"
            )

    async def stop(self) -> None:
        """Stop the producer and end every subscription (the ledger stays open)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
        self._end_subscriptions()

    async def __aenter__(self) -> LocalNode:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ NodeAPI

    def status(self) -> NodeStatus:
        return self._status(validators=tuple(v.name for v in self.genesis.validators), peers={},
                            consensus={"engine": "local", "producing": self._producer is not None},
                            syncing=False)

    def healthy(self) -> tuple[bool, str]:
        if self._closed:
            return False, "the node is closed"
        if self._producer is not None and self._producer.done():
            return False, "the block producer stopped; see the node log"
        return True, "ok"

    def ready(self) -> Readiness:
        """Ready when open and producing blocks (the producer started and still runs)."""
        producer = self._producer
        if producer is None:
            producing = ReadinessCheck("producing", False, "the block producer is not started; call start()")
        elif producer.done():
            producing = ReadinessCheck("producing", False, "the block producer stopped; see the node log")
        else:
            producing = ReadinessCheck("producing", True, "the block producer runs")
        return Readiness((
            ReadinessCheck("open", not self._closed, "the node is closed" if self._closed else "the ledger is open"),
            producing,
        ))

    def _on_admitted(self, raws: list[bytes]) -> None:
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ producing blocks

    def produce_block(self) -> Block | None:
        """Build and commit one block from the mempool; None when nothing could be included."""
        if self._closed:
            raise RuntimeError("produce_block on a closed node")
        now_ms = self.clock_ms()
        for tx_id in self.mempool.prune(now_ms):
            self._metrics.txs_refused.labels(code="EXPIRED").inc()
            _log.debug("expired in the mempool: %s", tx_id.hex())
        params = self.ledger.params
        batch = self.mempool.take(params.block_txs_max, params.block_bytes_max)
        if not batch:
            self._metrics.mempool.set(len(self.mempool))
            return None
        refused: list[bytes] = []

        def on_rejected(raw: bytes, exc: TxRejected) -> None:
            tx_id = exc.tx_id if exc.tx_id is not None else tx_id_or_none(self.suite, raw)
            if tx_id is not None:
                self.mempool.remember_rejection(tx_id, exc)
                refused.append(tx_id)
            self._metrics.txs_refused.labels(code=exc.code.value).inc()

        started = time.perf_counter()
        block = self.ledger.build_block(
            batch, proposer=self.name, timestamp_ms=now_ms, on_rejected=on_rejected
        )
        self.mempool.remove_committed(refused)
        if not block.txs:
            self._metrics.mempool.set(len(self.mempool))
            return None
        digest = self.ledger.commit_block(block)
        self.mempool.remove_committed(receipt.tx_id for receipt in block.receipts)
        self._metrics.block_seconds.observe(time.perf_counter() - started)
        self._metrics.blocks.inc()
        self._metrics.txs_committed.inc(len(block.txs))
        self._metrics.height.set(block.header.height)
        self._metrics.mempool.set(len(self.mempool))
        self._publish_block(block, digest)
        return block

    async def _produce_forever(self) -> None:
        wake = self._wake
        if wake is None:
            raise RuntimeError("the producer runs only after start()")
        interval_s = self.block_interval_ms / 1000
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), PRUNE_INTERVAL_MS / 1000)
            wake.clear()
            try:
                while self.produce_block() is not None and len(self.mempool):
                    await asyncio.sleep(interval_s)
            except Exception:
                _log.exception("the local block producer failed; the node stops producing blocks")
                raise
            if len(self.mempool):
                # the batch was all refused or limited; come back after an interval
                await asyncio.sleep(interval_s)
                wake.set()

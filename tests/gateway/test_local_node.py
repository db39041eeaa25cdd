"""LocalNode: the producer task, expiry, remembered refusals, bounded subscribers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotchain.ledger.tx import RejectCode, TxRejected
from pilotchain.node.api import EventKind, TxState
from pilotchain.node.local import LocalNode
from pilotchain.testing import Consortium
from tests.gateway.helpers import run, signed, wait_until

NOW = 1_800_000_000_000


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def test_producer_task_commits_what_arrives(consortium: Consortium, tmp_path: Path) -> None:
    alice = consortium.clients["bigdata-bureau"]

    async def main() -> None:
        async with LocalNode.open(tmp_path / "d", consortium.genesis, block_interval_ms=0) as node:
            events = node.subscribe(frozenset({EventKind.BLOCK}))
            raw, tx_id = signed(alice, consortium)
            assert (await node.submit_tx(raw)).hex() == tx_id
            event = await anext(aiter(events))
            assert event.kind == EventKind.BLOCK and event.height == 1
            assert node.tx_status(bytes.fromhex(tx_id)).state == TxState.COMMITTED
            assert node.status().mempool_size == 0 and node.status().height == 1
            assert node.healthy() == (True, "ok")
        assert node.healthy()[0] is False

    run(main())


def test_expired_in_mempool_is_remembered(consortium: Consortium, tmp_path: Path) -> None:
    alice = consortium.clients["bigdata-bureau"]
    clock = Clock(NOW)

    async def main() -> None:
        node = LocalNode.open(tmp_path / "d", consortium.genesis, clock_ms=clock)
        try:
            raw, tx_id = signed(alice, consortium, now_ms=NOW, expires_in_ms=1_000)
            await node.submit_tx(raw)
            assert node.tx_status(bytes.fromhex(tx_id)).state == TxState.PENDING
            clock.now_ms = NOW + 5_000
            assert node.produce_block() is None
            status = node.tx_status(bytes.fromhex(tx_id))
            assert status.state == TxState.REJECTED and status.reason_code == RejectCode.EXPIRED
            assert node.status().height == 0
        finally:
            await node.close()

    run(main())


def test_refused_at_block_building_is_remembered(consortium: Consortium, tmp_path: Path) -> None:
    """A transaction admitted, then no longer includable (its signer expired by block time)."""
    alice = consortium.clients["bigdata-bureau"]
    clock = Clock(NOW)

    async def main() -> None:
        node = LocalNode.open(tmp_path / "d", consortium.genesis, clock_ms=clock)
        try:
            raw, tx_id = signed(alice, consortium, now_ms=NOW, expires_in_ms=3_600_000)
            with pytest.raises(TxRejected) as info:  # far in the future for this node's clock
                clock.now_ms = NOW - 3_600_000
                await node.submit_tx(raw)
            assert info.value.code == RejectCode.EXPIRY_TOO_FAR
            clock.now_ms = NOW
            await node.submit_tx(raw)
            node.ledger.authenticator = (
                _Refusing()
            )  # membership changed between admission and block
            assert node.produce_block() is None
            status = node.tx_status(bytes.fromhex(tx_id))
            assert (
                status.state == TxState.REJECTED
                and status.reason_code == RejectCode.SIGNER_REJECTED
            )
            assert node.status().mempool_size == 0
        finally:
            await node.close()

    run(main())


class _Refusing:
    def public_key_of(self, certificate: bytes, now_ms: int) -> bytes:
        raise TxRejected(RejectCode.SIGNER_REJECTED, "revoked")

    def caller_of(self, certificate: bytes, now_ms: int) -> object:
        raise TxRejected(RejectCode.SIGNER_REJECTED, "revoked")

    def reader(self, certificate: bytes, now_ms: int) -> object:
        raise TxRejected(RejectCode.SIGNER_REJECTED, "revoked")


def test_slow_subscriber_is_dropped_others_keep_going(
    consortium: Consortium, tmp_path: Path
) -> None:
    alice = consortium.clients["bigdata-bureau"]

    async def main() -> None:
        node = LocalNode.open(tmp_path / "d", consortium.genesis, subscriber_queue_max=4)
        try:
            slow = node.subscribe()
            fast = node.subscribe(frozenset({EventKind.BLOCK}))
            for n in range(3):  # 3 events per block (block, tx, contract event) for `slow`
                await node.submit_tx(signed(alice, consortium, {"key": f"k{n}", "value": n})[0])
                assert node.produce_block() is not None
                assert (await anext(aiter(fast))).height == n + 1
            assert node.subscriber_count == 1
            received = [event async for event in slow]  # what it held, then the end
            assert len(received) == 4 and received[0].kind == EventKind.BLOCK
            await node.stop()
            assert node.subscriber_count == 0
            assert [event async for event in fast] == []
        finally:
            await node.close()

    run(main())


def test_subscriber_bound_and_unsubscribe(consortium: Consortium, tmp_path: Path) -> None:
    async def main() -> None:
        node = LocalNode.open(tmp_path / "d", consortium.genesis)
        try:
            subscription = node.subscribe()
            assert node.subscriber_count == 1
            await subscription.aclose()  # type: ignore[attr-defined]
            await wait_until(lambda: node.subscriber_count == 0, "unsubscribe")
        finally:
            await node.close()

    run(main())


def test_block_events_builds_only_the_kinds_asked_for(consortium: Consortium, tmp_path: Path) -> None:
    from pilotchain.ledger.block import block_hash
    from pilotchain.node.local import block_events

    alice = consortium.clients["bigdata-bureau"]

    async def main() -> None:
        node = LocalNode.open(tmp_path / "d", consortium.genesis)
        try:
            for index in range(3):
                await node.submit_tx(signed(alice, consortium, {"key": f"k{index}", "value": index})[0])
            block = node.produce_block()
            assert block is not None and len(block.txs) == 3
            digest = block_hash(node.suite, block.header)
            everything = block_events(node.suite, block, digest)
            assert [e.kind for e in everything] == [EventKind.BLOCK] + [EventKind.TX, EventKind.CONTRACT_EVENT] * 3
            assert block_events(node.suite, block, digest, kinds=frozenset()) == []
            only_blocks = block_events(node.suite, block, digest, kinds=frozenset({EventKind.BLOCK}))
            assert only_blocks == everything[:1]
            only_txs = block_events(node.suite, block, digest, kinds=frozenset({EventKind.TX}))
            assert only_txs == [e for e in everything if e.kind == EventKind.TX]
            contract = block_events(node.suite, block, digest, kinds=frozenset({EventKind.CONTRACT_EVENT}))
            assert contract == [e for e in everything if e.kind == EventKind.CONTRACT_EVENT]
        finally:
            await node.close()

    run(main())

"""Live updates: the node's committed blocks, as they come, to every open overview (``/api/live``).

One task on the server's event loop follows the node's own event stream (``/v1/events?kinds=block``) through
the SDK and turns each block into a point — height, transactions, committed transactions per second
over the last :data:`RATE_WINDOW_MS` of block time, and the commit latency this organisation sees
(the moment the block reached the explorer minus the proposer's timestamp). The last
:data:`POINTS_MAX` points are kept for a page that connects later; each open page has a bounded
queue of its own (a page that falls behind is dropped, and its browser reconnects). When the node
stops answering — a restart, a network cut — the follower says so to every page and tries again,
backing off to :data:`RETRY_S_MAX`; it resumes when the node is back. The task starts with the
first page that listens and is cancelled when the server stops.

:class:`LiveSeries` is pure (points from events and the time they were seen); :class:`LiveFeed`
is the I/O shell around it (no threads: everything runs on the server's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pilotchain.sdk import AsyncClient

__all__ = ["LiveFeed", "LiveSeries", "POINTS_MAX", "RATE_WINDOW_MS"]

#: points kept for a page that connects (and drawn on its charts)
POINTS_MAX = 120
#: the committed transactions per second are averaged over this much block time
RATE_WINDOW_MS = 10_000
#: pages listening at once; one more is refused with 503
SUBSCRIBERS_MAX = 64
#: events waiting for one page; a page this far behind is dropped (its browser reconnects)
QUEUE_MAX = 256
#: a comment this often keeps proxies from closing an idle stream
KEEPALIVE_S = 15.0
#: the follower's first and longest wait before it asks an absent node again
RETRY_S_MIN = 0.5
RETRY_S_MAX = 5.0


class LiveSeries:
    """Points from block events: pure, bounded."""

    def __init__(self, points_max: int = POINTS_MAX) -> None:
        self.points: deque[dict[str, Any]] = deque(maxlen=points_max)

    def add(self, block: dict[str, Any], seen_ms: int) -> dict[str, Any] | None:
        """The point for a block event's data (None for a block already seen or malformed)."""
        try:
            height, tx_count, timestamp_ms = int(block["height"]), int(block["tx_count"]), int(block["timestamp_ms"])
        except (KeyError, TypeError, ValueError):
            return None
        if self.points and height <= self.points[-1]["height"]:
            return None
        # the rate over (anchor, this block]: the oldest block of the window, else the last one before
        earlier = [p for p in self.points if p["timestamp_ms"] > timestamp_ms - RATE_WINDOW_MS]
        anchor = earlier[0] if earlier else (self.points[-1] if self.points else None)
        rate = None
        if anchor is not None:
            committed = tx_count + sum(p["tx_count"] for p in earlier[1:])
            rate = round(committed * 1000 / max(timestamp_ms - anchor["timestamp_ms"], 1), 1)
        point = {
            "height": height,
            "tx_count": tx_count,
            "timestamp_ms": timestamp_ms,
            "tx_per_s": rate,
            "latency_ms": max(seen_ms - timestamp_ms, 0),
        }
        self.points.append(point)
        return point


class _Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_MAX)

    def offer(self, frame: str | None) -> None:
        """Queue ``frame`` for the page (None ends its stream)."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:  # fallen behind: end its stream; the browser reconnects
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)


def _frame(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class LiveFeed:
    """Follows the node's block events in one task on the server's event loop and fans them out to
    the pages listening. ``open_client`` makes the asynchronous client it reads with (a fresh one
    each time the node is asked again)."""

    def __init__(self, open_client: Callable[[], AsyncClient], clock_ms: Callable[[], int] | None = None) -> None:
        self._open_client = open_client
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._series = LiveSeries()
        self._subscribers: set[_Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._node: dict[str, Any] = {"connected": False, "error": "not connected yet"}

    # ------------------------------------------------------------------ pages

    def subscribe(self) -> _Subscriber:
        """A page starts listening (call on the server's loop); OverflowError when too many do."""
        if len(self._subscribers) >= SUBSCRIBERS_MAX:
            raise OverflowError(f"{SUBSCRIBERS_MAX} pages are listening already; try again later")
        subscriber = _Subscriber()
        self._subscribers.add(subscriber)
        if self._task is None and not self._stopped:
            self._task = asyncio.get_running_loop().create_task(self._follow(), name="explorer-live")
        return subscriber

    async def frames(self, subscriber: _Subscriber) -> AsyncIterator[str]:
        """One page's SSE frames: what is known so far, then each point and node change as it comes."""
        try:
            snapshot = {"points": list(self._series.points), "node": dict(self._node)}
            yield "retry: 2000\n" + _frame("snapshot", snapshot)
            while True:
                try:
                    frame = await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if frame is None:
                    return
                yield frame
        finally:
            self._subscribers.discard(subscriber)

    def _publish(self, event: str, data: Any) -> None:
        frame = _frame(event, data)
        for subscriber in list(self._subscribers):
            subscriber.offer(frame)

    def _node_state(self, connected: bool, **details: Any) -> None:
        state = {"connected": connected, **details}
        if state != self._node:
            self._node = state
            self._publish("node", state)

    # ------------------------------------------------------------------ the follower

    async def stop(self) -> None:
        """Stop following and end every page's stream (their browsers reconnect to what serves next)."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for subscriber in list(self._subscribers):
            subscriber.offer(None)

    async def _follow(self) -> None:
        from pilotchain.sdk import PilotchainError

        wait_s = RETRY_S_MIN
        while True:
            client = self._open_client()
            try:
                status = await client.status()
                self._node_state(True, height=status.height)
                wait_s = RETRY_S_MIN
                async for event in client.subscribe(["block"]):
                    point = self._series.add(event.data, self._clock_ms())
                    if point is not None:
                        self._publish("point", point)
                self._node_state(False, error="the node ended the event stream")
            except PilotchainError as exc:
                self._node_state(False, error=str(exc))
            finally:
                await client.aclose()
            await asyncio.sleep(wait_s)
            wait_s = min(wait_s * 2, RETRY_S_MAX)

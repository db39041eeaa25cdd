"""Live updates: the overview follows committed blocks over SSE without a reload, draws committed tx/s
and commit latency, says when the node stops answering and carries on when it is back. The node's
restart is a relay in front of its gateway that is cut and restored on the same port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pilotchain.apps.explorer.live import RATE_WINDOW_MS, LiveSeries
from pilotchain.apps.explorer.server import create_app
from pilotchain.sdk import AsyncClient
from tests.apps.explorer.conftest import serve
from tests.apps.explorer.helpers import Scene, scene
from tests.apps.explorer.proxy import Relay, relay

pytestmark = pytest.mark.timeout(180)


def test_points_carry_the_committed_rate_over_the_window_and_the_latency() -> None:
    series = LiveSeries(points_max=5)
    first = series.add({"height": 10, "tx_count": 4, "timestamp_ms": 100_000}, seen_ms=100_250)
    assert first == {"height": 10, "tx_count": 4, "timestamp_ms": 100_000, "tx_per_s": None, "latency_ms": 250}
    second = series.add({"height": 11, "tx_count": 6, "timestamp_ms": 102_000}, seen_ms=101_000)
    assert second is not None and second["tx_per_s"] == 3.0 and second["latency_ms"] == 0  # 6 tx in 2 s; a clock behind
    third = series.add({"height": 12, "tx_count": 10, "timestamp_ms": 104_000}, seen_ms=104_100)
    assert third is not None and third["tx_per_s"] == 4.0  # (6 + 10) tx over (100 s, 104 s]
    assert series.add({"height": 12, "tx_count": 1, "timestamp_ms": 105_000}, seen_ms=0) is None  # seen already
    assert series.add({"height": "x"}, seen_ms=0) is None
    late = series.add({"height": 13, "tx_count": 2, "timestamp_ms": 104_000 + RATE_WINDOW_MS + 1}, seen_ms=0)
    assert late is not None and late["tx_per_s"] == round(2 * 1000 / (RATE_WINDOW_MS + 1), 1)  # anchored on the last block
    for height in range(14, 20):
        series.add({"height": height, "tx_count": 1, "timestamp_ms": 200_000 + height}, seen_ms=0)
    assert [p["height"] for p in series.points] == [15, 16, 17, 18, 19]  # bounded


@pytest.fixture(scope="module")
def live_served() -> Iterator[tuple[Scene, Relay, str]]:
    with scene() as world:
        gateway = world.chain.serve_http()
        identity = world.chain.identity(world.viewer)
        client = world.chain.client(identity=identity)
        with relay(gateway) as cuttable:
            try:
                app = create_app(client, world.viewer, world.chain.genesis,
                                 live=lambda: AsyncClient(cuttable.url, identity=identity, timeout=5.0))
                with serve(app) as url:
                    yield world, cuttable, url
            finally:
                client.close()


def test_the_overview_follows_blocks_live_and_survives_a_node_restart(live_served: tuple[Scene, Relay, str],
                                                                       page: Any) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    world, node, url = live_served
    writer = world.chain.client(identity=world.chain.identity(world.viewer))
    page.goto(url + "/")
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page
    state = page.locator('[data-field="live"]')
    expect(state).to_have_attribute("data-state", "live")

    first = writer.invoke(world.chain.identity(world.viewer), "kv", "put", {"key": "live-1", "value": 1})
    expect(page.locator('[data-field="height"]')).to_have_text(str(first.height))
    expect(page.locator('[data-chart="latency_ms"]')).to_have_attribute("data-points", "1")
    second = writer.invoke(world.chain.identity(world.viewer), "kv", "put", {"key": "live-2", "value": 2})
    expect(page.locator('[data-field="height"]')).to_have_text(str(second.height))
    expect(page.locator('[data-chart="tx_per_s"] polyline')).to_have_count(1)  # a rate needs two blocks
    assert page.locator('[data-latest="latency_ms"]').text_content() != "—"

    node.cut()
    expect(state).to_have_attribute("data-state", "node-down")
    expect(state).to_contain_text("The node does not answer")
    node.restore()
    expect(state).to_have_attribute("data-state", "live")
    third = writer.invoke(world.chain.identity(world.viewer), "kv", "put", {"key": "live-3", "value": 3})
    expect(page.locator('[data-field="height"]')).to_have_text(str(third.height))
    expect(page.locator('[data-chart="latency_ms"]')).to_have_attribute("data-points", "3")
    assert page.evaluate("window.sameDocument") is True
    writer.close()


def test_without_a_live_feed_the_overview_has_no_live_section(live_served: tuple[Scene, Relay, str]) -> None:
    from fastapi.testclient import TestClient

    world, _, _ = live_served
    console = TestClient(create_app(world.chain.client(identity=world.chain.identity(world.viewer)), world.viewer,
                                    world.chain.genesis))
    assert "data-live" not in console.get("/").text
    assert console.get("/api/live").status_code == 404

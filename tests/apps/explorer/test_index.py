"""The explorer's index: transactions by contract and signer, events by name and the identities seen
signing, fed from the blocks the organisation reads (so what is redacted for it stays redacted in
its index), paged by key cursors, rebuilt from block 1 at any time, followed live, and what search
by identity, contract and event goes through."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pilotchain.apps.explorer.index import Cursor, ExplorerIndex, Indexer
from pilotchain.apps.explorer.server import create_app
from pilotchain.crypto import get_suite
from pilotchain.network.processes import wait_until
from tests.apps.explorer.helpers import Scene, scene

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def world() -> Iterator[Scene]:
    with scene() as built:
        yield built


def _indexer(world: Scene, org: str, path: str = ":memory:") -> Indexer:
    client = world.chain.client(identity=world.chain.identity(org))
    store = ExplorerIndex(path, client.status().genesis_hash)
    return Indexer(store, client, get_suite(world.chain.genesis.suite))


@pytest.fixture(scope="module")
def viewer_index(world: Scene) -> Iterator[Indexer]:
    indexer = _indexer(world, world.viewer)
    run = indexer.catch_up()
    assert run.blocks == world.chain.client().status().height and run.txs >= 19
    yield indexer
    indexer.index.close()


def test_transactions_by_contract_and_signer_keep_what_the_organisation_may_not_read_redacted(
        world: Scene, viewer_index: Indexer) -> None:
    index = viewer_index.index
    records = index.txs_by_contract("records")
    secret = next(row for row in records if row["tx_id"] == world.secret.tx_id)
    assert secret["redacted"] == 1 and secret["method"] is None and secret["signer_id"] is None
    kv = {row["tx_id"]: row for row in index.txs_by_contract("kv", limit=100)}
    visible = kv[world.visible.tx_id]
    assert (visible["method"], visible["signer_org"], visible["status"]) == ("put", world.viewer, "OK")
    assert kv[world.failed.tx_id]["status"] == "BAD_ARGUMENTS"
    mine = {row["tx_id"] for row in index.txs_by_signer(visible["signer_id"], limit=100)}
    assert {world.visible.tx_id, world.failed.tx_id, *(tx.tx_id for tx in world.batch)} <= mine
    assert all(row["signer_org"] == world.viewer for row in index.txs_by_signer(visible["signer_id"], limit=100))
    seen = index.identities(world.viewer, f"{world.viewer}-client")
    assert len(seen) == 1 and seen[0]["signer_id"] == visible["signer_id"] and seen[0]["tx_count"] == len(mine)


def test_events_by_name_hold_only_the_readable_ones(world: Scene, viewer_index: Indexer) -> None:
    assert viewer_index.index.events_by_name("stored") == []  # records' events: redacted for the viewer
    executed = viewer_index.index.events_by_name("executed")
    assert {row["contract"] for row in executed} == {"gov"} and len(executed) >= 5
    owner = _indexer(world, world.owner)
    owner.catch_up()
    stored = owner.index.events_by_name("stored")
    assert [row["tx_id"] for row in stored] == [world.secret.tx_id]
    owner.index.close()


def test_pages_follow_key_cursors_newest_first_without_gaps(viewer_index: Indexer) -> None:
    index = viewer_index.index
    everything = index.txs_by_contract("kv", limit=100)
    pages, before = [], None
    while True:
        page = index.txs_by_contract("kv", before, limit=3)
        if not page:
            break
        pages.append(page)
        before = Cursor(page[-1]["height"], page[-1]["index"])
    assert [row["tx_id"] for page in pages for row in page] == [row["tx_id"] for row in everything]
    assert all(len(page) == 3 for page in pages[:-1])
    keys = [(row["height"], row["index"]) for row in everything]
    assert keys == sorted(keys, reverse=True)
    assert Cursor.parse("12.3") == Cursor(12, 3) and Cursor.parse(None) is None
    for bad in ("12", "a.b", "1.2.3.4", "١.2"):
        with pytest.raises(ValueError):
            Cursor.parse(bad)


def test_the_index_is_rebuilt_from_block_one_and_refuses_blocks_out_of_order(world: Scene, tmp_path: object) -> None:
    path = f"{tmp_path}/index.sqlite"
    first = _indexer(world, world.viewer, path)
    first.catch_up(until=5)
    assert first.index.indexed_height() == 5
    with pytest.raises(ValueError, match="height order from 6"):
        first.index.add_blocks([first.client.get_block(7)], first.suite)
    before = first.index.txs_by_contract("kv", limit=100)
    first.index.close()

    again = _indexer(world, world.viewer, path)  # the file keeps what was indexed
    assert again.index.indexed_height() == 5
    again.catch_up()
    again.index.reset()
    assert again.index.indexed_height() == 0 and again.index.txs_by_contract("kv") == []
    again.catch_up(until=5)
    assert again.index.txs_by_contract("kv", limit=100) == before
    again.index.close()

    other_chain = ExplorerIndex(path, "00" * 32)  # another genesis: the index starts over
    assert other_chain.indexed_height() == 0
    other_chain.close()


def test_the_index_follows_new_blocks(world: Scene) -> None:
    indexer = _indexer(world, world.viewer)
    indexer.start()
    try:
        assert wait_until(lambda: indexer.index.indexed_height() == world.chain.client().status().height, timeout_s=30,
                          interval_s=0.05)
        put = world.chain.client().invoke(world.chain.identity(world.viewer), "kv", "put", {"key": "follow", "value": 1})
        assert wait_until(lambda: any(r["tx_id"] == put.tx_id for r in indexer.index.txs_by_contract("kv")),
                          timeout_s=30, interval_s=0.05)
    finally:
        indexer.stop()
        indexer.index.close()


def test_search_by_identity_contract_and_event_goes_through_the_index(world: Scene, viewer_index: Indexer) -> None:
    client = world.chain.client(identity=world.chain.identity(world.viewer))
    viewer_index.catch_up()
    console = TestClient(create_app(client, world.viewer, world.chain.genesis, index=viewer_index))
    who = f"{world.viewer}/{world.viewer}-client"
    found = console.get("/search", params={"q": who}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == f"/identities?q={who.replace('/', '%2F')}"
    identities = console.get(found.headers["location"]).text
    signer = viewer_index.index.identities(world.viewer, f"{world.viewer}-client")[0]["signer_id"]
    assert f'href="/txs?signer={signer}"' in identities
    signed = console.get("/txs", params={"signer": signer, "limit": 2}).text
    assert signed.count('<a href="/tx/') == 2 and 'rel="next"' in signed and "data-indexed=" in signed
    assert console.get("/search", params={"q": "records"}, follow_redirects=False).headers["location"] == "/txs?contract=records"
    records = console.get("/txs", params={"contract": "records"}).text
    assert world.secret.tx_id not in records and 'class="redacted"' in records
    assert console.get("/search", params={"q": "executed"}, follow_redirects=False).headers["location"] == "/events?name=executed"
    assert "<td>gov</td><td>executed</td>" in console.get("/events", params={"name": "executed"}).text
    unknown = console.get("/search", params={"q": "nobody/nothing"})
    assert unknown.status_code == 400 and "an identity (org/subject)" in unknown.text
    assert console.get("/txs").status_code == 400
    assert console.get("/txs", params={"contract": "kv", "before": "x"}).status_code == 400
    assert 'href="/txs?contract=records"' in console.get("/contracts/records").text
    assert "<h2>Identities seen signing</h2>" in console.get("/orgs").text

    without = TestClient(create_app(client, world.viewer, world.chain.genesis))
    assert without.get("/txs", params={"contract": "kv"}).status_code == 404
    assert without.get("/search", params={"q": "records"}).status_code == 400


def test_an_index_of_an_older_layout_starts_over(world: Scene, tmp_path: object) -> None:
    import sqlite3

    path = f"{tmp_path}/old.sqlite"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); CREATE TABLE txs (tx_id TEXT);"
                      "INSERT INTO meta VALUES ('schema', '1'), ('height', '9');")
    old.commit()
    old.close()
    indexer = _indexer(world, world.viewer, path)
    assert indexer.index.indexed_height() == 0
    indexer.catch_up(until=3)
    newest = indexer.index.txs_by_contract("records")[0]
    assert (newest["height"], newest["tx_id"]) == (3, indexer.client.get_block(3).transactions[-1].tx_id)
    indexer.index.close()

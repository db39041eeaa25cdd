"""The applications' pages over in-process chains: the currency's supply dashboard, the data
exchange's access log of this organisation's payloads, the break-glass review queue — linked from
the header only where governance deployed the contract, and on a chain without it a page that says
the application is not deployed."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pilotchain.apps.catalogue.client import CatalogueClient
from pilotchain.apps.credentials.statuslist import STATUS_INVALID, STATUS_SUSPENDED
from pilotchain.apps.energy.client import GreenClient
from pilotchain.apps.explorer import apppages
from pilotchain.apps.explorer.index import ExplorerIndex, Indexer
from pilotchain.apps.explorer.messages import use_language
from pilotchain.apps.explorer.server import create_app
from pilotchain.crypto import get_suite
from tests.apps.catalogue.helpers import (
    BUREAU,
    ENTERPRISE_FIELDS,
    MARKET,
    SOCIAL,
    TAX,
    directory_chain,
)
from tests.apps.credentials.helpers import ISS, roll
from tests.apps.credentials.helpers import world as credentials_world
from tests.apps.currency.helpers import BANK_A, BANK_B, CNY, World, currency_chain
from tests.apps.energy.test_green import _device, _reading, green_chain
from tests.apps.exchange.helpers import CONTRACT_SOURCE as DATAEX
from tests.apps.explorer.helpers import Scene, scene
from tests.apps.supply.helpers import receivables_chain, register_document

pytestmark = pytest.mark.timeout(120)

HEALTH = (Path(__file__).resolve().parents[3] / "src" / "pilotchain" / "apps" / "health" / "contracts"
          / "health.py").read_text()
DAY_MS = 24 * 3600 * 1000


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """Currency, data exchange and health on one chain; bank-a registered two payloads, let bank-b
    read one and then withdrew it; bank-b registered one of its own; money was issued to both banks."""
    with currency_chain(extra_contracts={"dataex": (DATAEX, None), "health": (HEALTH, None)}) as built:
        built.issue(BANK_A, 5_000 * CNY)
        built.issue(BANK_B, 1_250 * CNY)
        built.open(BANK_A, "alice", balance=300 * CNY)
        later = time.time_ns() // 1_000_000 + 30 * DAY_MS
        for org, payload in ((BANK_A, "kyc-a-1"), (BANK_A, "kyc-a-2"), (BANK_B, "kyc-b-1")):
            _dataex(built, org, "register", {"payload_id": payload, "commitment": bytes(32), "size": 10,
                                             "media_type": "application/json", "classification": "important",
                                             "retention_until_ms": later})
        _dataex(built, BANK_A, "decide", {"payload_id": "kyc-a-1", "org": BANK_B, "purpose": "AML", "until_ms": later})
        _dataex(built, BANK_A, "withdraw", {"payload_id": "kyc-a-1", "org": BANK_B, "reason": "case closed"})
        yield built


def _dataex(world: World, org: str, method: str, args: dict[str, object]) -> None:
    identity = world.chain.identity(org)
    result = world.chain.client(identity=identity).invoke(identity, "dataex", method, args)
    assert result.ok, result


def _console(world: World, org: str, *, indexed: bool = True) -> TestClient:
    client = world.chain.client(identity=world.chain.identity(org))
    indexer = None
    if indexed:
        indexer = Indexer(ExplorerIndex(":memory:", client.status().genesis_hash), client, get_suite(world.suite))
        indexer.catch_up()
    return TestClient(create_app(client, org, world.chain.genesis, index=indexer))


def test_the_supply_dashboard_shows_issued_outstanding_by_bucket_and_that_it_balances(world: World) -> None:
    audit = world.supply()
    page = _console(world, BANK_B, indexed=False).get("/apps/currency")
    assert page.status_code == 200
    assert audit["issued"] == 6_250 * CNY and audit["balanced"] is True
    assert 'data-balanced="yes"' in page.text
    assert '<b data-field="outstanding">6,250.00 CNY</b>' in page.text
    assert '<span data-bucket="wallets">300.00 CNY</span>' in page.text  # alice's wallet
    assert '<span data-bucket="vaults">5,950.00 CNY</span>' in page.text
    assert audit["history"]["head"] in page.text


def test_the_header_links_the_deployed_applications_only(world: World, tmp_path: Path) -> None:
    page = _console(world, BANK_A, indexed=False).get("/blocks")
    for href in ('href="/apps/currency"', 'href="/apps/dataex"', 'href="/apps/health"'):
        assert href in page.text
    assert 'href="/apps/receivables"' not in page.text and 'href="/apps/greencert"' not in page.text  # not on this chain
    with scene() as plain:  # a chain with none of them
        bare = _plain_console(plain)
        assert "/apps/" not in bare.get("/").text
        for contract, (path, _, _) in apppages.APPS.items():
            missing = bare.get(path)
            assert missing.status_code == 404 and "not deployed" in missing.text and contract in missing.text


def _plain_console(plain: Scene) -> TestClient:
    client = plain.chain.client(identity=plain.chain.identity(plain.viewer))
    return TestClient(create_app(client, plain.viewer, plain.chain.genesis))


def test_the_access_log_shows_the_decisions_on_this_organisations_payloads(world: World) -> None:
    owner = _console(world, BANK_A).get("/apps/dataex")
    assert owner.status_code == 200
    log = owner.text.split('<table class="access-log">', 1)[1].split("</table>", 1)[0]
    rows = log.split("<tr>")[2:]
    assert [row.split('data-event="', 1)[1].split('"', 1)[0] for row in rows] == [
        "withdrawn", "permitted", "registered", "registered"]  # newest first; bank-b's own payload is not here
    assert "case closed" in rows[0] and BANK_B in rows[0] and "AML" in rows[1] and "kyc-b-1" not in log
    recipient = _console(world, BANK_B).get("/apps/dataex").text  # bank-b: its own payload and the decisions naming it
    named = recipient.split('<table class="access-log">', 1)[1].split("</table>", 1)[0]
    assert "kyc-b-1" in named and "kyc-a-1" in named and "kyc-a-2" not in named
    without_index = _console(world, BANK_A, indexed=False).get("/apps/dataex")
    assert without_index.status_code == 200 and "index" in without_index.text and "access-log" not in without_index.text


def test_the_review_queue_lists_open_break_glass_accesses(world: World) -> None:
    empty = _console(world, BANK_A, indexed=False).get("/apps/health")
    assert empty.status_code == 200 and "No break-glass access is waiting for review." in empty.text
    queue = [{"request_id": "req-7", "payload_id": "ehr-42", "org": "er-hospital", "requester": "dr-wu",
              "purpose": "ETREAT", "reason": "unconscious <patient>", "ms": 1_700_000_000_000, "stopped_ms": None}]
    token = use_language("zh-CN")
    try:
        shown = apppages.render_review_queue("regulator", "chain", queue)
    finally:
        use_language("en")
        del token
    assert "req-7" in shown and "dr-wu" in shown and "仍在进行" in shown
    assert "unconscious &lt;patient&gt;" in shown  # what came from the chain is escaped


def test_a_receivables_lineage_is_drawn_as_a_graph_and_holdings_are_the_organisations(tmp_path: Path) -> None:
    with receivables_chain() as (chain, roles):
        for payload in ("R1-inv", "R1-dn"):
            register_document(chain, roles["tier1"], payload)
        writer = chain.client()
        for role, method, args in (
            ("carmaker", "issue", {"receivable_id": "R1", "creditor": roles["tier1"], "amount": 100_000_000,
                                   "maturity_ms": time.time_ns() // 1_000_000 + 30 * DAY_MS, "invoice": "R1-inv",
                                   "delivery_note": "R1-dn", "batches": ["https://id.gs1.org/01/06905678200025/10/D1"]}),
            ("tier1", "split", {"receivable_id": "R1", "pieces": [{"id": "R1.1", "holder": roles["tier1"], "amount": 70_000_000},
                                                                   {"id": "R1.2", "holder": roles["tier2"], "amount": 30_000_000}]}),
            ("tier2", "split", {"receivable_id": "R1.2", "pieces": [{"id": "R1.2.a", "holder": roles["tier2"], "amount": 10_000_000},
                                                                     {"id": "R1.2.b", "holder": roles["tier1"], "amount": 20_000_000}]}),
        ):  # fmt: skip
            assert writer.invoke(chain.identity(roles[role]), "receivables", method, args, check=False).ok
        tier2 = roles["tier2"]
        console = TestClient(create_app(chain.client(identity=chain.identity(tier2)), tier2, chain.genesis))
        held = console.get("/apps/receivables")
        assert held.status_code == 200 and 'href="/apps/receivables"' in held.text
        holdings = held.text.split('<table class="holdings">', 1)[1].split("</table>", 1)[0]
        assert "R1.2.a" in holdings and "R1.2.b" not in holdings and "R1.1" not in holdings
        page = console.get("/apps/receivables", params={"id": "R1.2.b"})
        graph = page.text.split('<svg class="lineage"', 1)[1].split("</svg>", 1)[0]
        rows = _boxes(graph)
        assert set(rows) == {"R1", "R1.1", "R1.2", "R1.2.a", "R1.2.b"}
        assert rows["R1"][0] < rows["R1.1"][0] == rows["R1.2"][0] < rows["R1.2.a"][0] == rows["R1.2.b"][0]  # one row a generation
        assert [ident for ident, (_, selected) in rows.items() if selected] == ["R1.2.b"]
        assert graph.count("<line ") == 4  # each piece to the receivable it was split from
        assert "1,000,000.00 CNY" in graph and "200,000.00 CNY" in graph
        unknown = console.get("/apps/receivables", params={"id": "NOPE"})
        assert unknown.status_code == 404 and "no receivable NOPE" in unknown.text  # the contract's words


def test_an_issuers_credential_batches_and_status_lists(tmp_path: Path) -> None:
    with credentials_world(tmp_path) as w:
        client = w.client(w.registrar)
        w.home.issue(client, w.registrar, roll(3), batch_id="class-of-2026")
        w.home.issue(client, w.registrar, roll(2), batch_id="class-of-2027")
        revoked, suspended = w.home.issued()[0], w.home.issued()[1]
        w.home.set_status(client, w.registrar, [revoked], STATUS_INVALID)
        w.home.set_status(client, w.registrar, [suspended], STATUS_SUSPENDED)
        reader = w.client()  # another organisation reads the issuer's public record
        indexer = Indexer(ExplorerIndex(":memory:", reader.status().genesis_hash), reader, get_suite(w.chain.genesis.suite))
        indexer.catch_up()
        console = TestClient(create_app(reader, w.other, w.chain.genesis, index=indexer))
        start = console.get("/apps/credentials")
        assert start.status_code == 200 and f'href="/apps/credentials?iss={ISS}"' in start.text  # seen registering
        page = console.get("/apps/credentials", params={"iss": ISS})
        assert page.status_code == 200 and "City University" in page.text
        batches = page.text.split('<table class="batches">', 1)[1].split("</table>", 1)[0]
        assert batches.index("class-of-2027") < batches.index("class-of-2026")  # newest first
        status = page.text.split('<table class="status-lists">', 1)[1].split("</table>", 1)[0]
        assert 'data-revoked="1"' in status and 'data-suspended="1"' in status
        unknown = console.get("/apps/credentials", params={"iss": "https://nobody.example"})
        assert unknown.status_code == 200 and "No issuer https://nobody.example is registered." in unknown.text


def _boxes(graph: str) -> dict[str, tuple[int, bool]]:
    """Each box of an SVG graph the explorer drew: its key -> (y, outlined as the one asked about)."""
    found = re.findall(r'<g data-node="([^"]+)">(?:<a href="[^"]+">)?<rect x="\d+" y="(\d+)"[^>]*?(stroke-width="3")?/>', graph)
    return {key: (int(y), bool(selected)) for key, y, selected in found}


def test_a_green_certificate_lot_is_traced_back_to_its_device_as_a_graph() -> None:
    with green_chain() as (chain, roles, _):
        start, end = _device(chain, roles, "W1")
        half = start + 5 * DAY_MS
        _reading(chain, roles, "W1", "M-1", start, half, 600_000)
        _reading(chain, roles, "W1", "M-2", half, end, 400_000)
        exchange_org = GreenClient(chain.client(), chain.identity(roles["exchange"]))
        issued = exchange_org.issue("GEC-1", "W1", start, end)
        farm = GreenClient(chain.client(), chain.identity(roles["wind_farm"]))
        moved = farm.transfer(issued, roles["manufacturer"], 300)
        buyer = roles["manufacturer"]
        console = TestClient(create_app(chain.client(identity=chain.identity(buyer)), buyer, chain.genesis))
        held = console.get("/apps/greencert")
        assert held.status_code == 200 and 'href="/apps/greencert"' in held.text
        assert moved["lot"] in held.text.split('<table class="lots">', 1)[1] and moved["rest"] not in held.text
        page = console.get("/apps/greencert", params={"lot": moved["lot"]})
        graph = page.text.split('<svg class="trace"', 1)[1].split("</svg>", 1)[0]
        rows = _boxes(graph)
        assert rows["device:W1"][0] < rows["reading:M-1"][0] == rows["reading:M-2"][0] < rows["batch:GEC-1"][0]
        assert rows["batch:GEC-1"][0] < rows[f"lot:{issued}"][0] < rows[f"lot:{moved['lot']}"][0]
        assert [key for key, (_, selected) in rows.items() if selected] == [f"lot:{moved['lot']}"]
        assert graph.count("<line ") == 2 + 2 + 1 + 1  # device to readings, readings to batch, batch to lot, lot to piece
        assert "1000 certificates issued" in graph and "600000 kWh" in graph


def test_the_catalogue_lists_entries_with_their_usage_most_requested_first() -> None:
    with directory_chain() as chain:
        bureau_admin = CatalogueClient(chain.client(), chain.identity(BUREAU, admin=True))
        market, tax, social = (CatalogueClient(chain.client(), chain.identity(org)) for org in (MARKET, TAX, SOCIAL))
        for org, name in ((MARKET, "Market Regulation"), (TAX, "Tax Bureau"), (SOCIAL, "Social Security")):
            bureau_admin.admit(org, name)
        market.publish_duty("market.registration", "Register enterprises", "Company Law art. 29")
        tax.publish_duty("tax.collection", "Levy and collect taxes", "Tax Collection Administration Law art. 5")
        social.publish_duty("social.contributions", "Collect social insurance", "Social Insurance Law art. 60")
        spec = {"duty_id": "market.registration", "key_field": "credit_code", "update_frequency": "daily",
                "description": "registered enterprises of the city"}
        market.publish_entry("market.licences", {**spec, "title": "Business licences", "sharing": "unconditional",
                                                 "fields": ENTERPRISE_FIELDS[:3]})
        market.publish_entry("market.enterprises", {**spec, "title": "Enterprise registration", "sharing": "conditional",
                                                    "fields": ENTERPRISE_FIELDS})
        market.publish_entry("market.quiet", {**spec, "title": "Nobody asks", "sharing": "unconditional",
                                              "fields": ENTERPRISE_FIELDS[:2]})
        for consumer, duty in ((tax, "tax.collection"), (social, "social.contributions")):
            consumer.request("market.licences", duty_id=duty, fields=["name"], purpose="administration", days=30)
        waiting = tax.request("market.enterprises", duty_id="tax.collection", fields=["name"], purpose="administration", days=30)
        assert waiting["status"] == "pending"
        console = TestClient(create_app(chain.client(identity=chain.identity(TAX)), TAX, chain.genesis))
        page = console.get("/apps/catalogue")
        assert page.status_code == 200 and 'href="/apps/catalogue"' in page.text
        table = page.text.split('<table class="catalogue">', 1)[1].split("</table>", 1)[0]
        order = re.findall(r'data-usage="([^"]+)"', table)
        assert order == ["market.licences", "market.enterprises", "market.quiet"]  # most requested first
        assert 'data-usage="market.licences" data-requests="2" data-agreed="2" data-pending="0"' in table
        assert 'data-usage="market.enterprises" data-requests="1" data-agreed="0" data-pending="1"' in table
        assert 'data-usage="market.quiet" data-requests="0"' in table

"""S5 in process: the story (issue against metered energy, transfer, retire, no second claim), never
more than metered and never twice for a period, readings bounded by capacity and by their operator,
expiry (no transfer, no retirement, counted as cancelled), and certificates conserved under any
sequence of transfers and retirements."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotchain.apps.energy.client import GreenClient, GreenError
from pilotchain.apps.energy.story import GreenParty, assign_roles, run_story
from tests.apps.exchange.helpers import exchange
from tests.contracts.helpers import deploy, governed_chain

pytestmark = pytest.mark.timeout(300)
SRC = Path(__file__).resolve().parents[3] / "src" / "pilotchain" / "apps"
GREEN = (SRC / "energy" / "contracts" / "greencert.py").read_text()
DATAEX = (SRC / "exchange" / "contracts" / "dataex.py").read_text()
DAY_MS = 86_400_000


def test_the_story_of_s5(tmp_path: Path) -> None:
    with exchange(tmp_path, orgs=7) as world, contextlib.ExitStack() as stack:
        roles = assign_roles(list(world.vaults))
        deploy(world.chain, "greencert", GREEN, init={"args": {"exchange_orgs": [roles["exchange"]]}})
        parties = {role: GreenParty(org, GreenClient(world.as_org(org), world.chain.identity(org)),
                                    stack.enter_context(world.client(org))) for role, org in roles.items()}
        story = run_story(parties)
        assert "never more than metered" in story.over_issue
        assert "claimed once" in story.second_claim
        assert story.supply["issued"] == 1000 and story.supply["retired"] == 400 and story.supply["outstanding"] == 600
        maker = parties["manufacturer"].green
        line = maker.trace(story.transferred_lot)
        assert [lot["status"] for lot in line["lots"]] == ["retired", "split"]
        assert line["batch"]["metered_kwh"] == 1_000_000 and len(line["readings"]) == 3
        assert all(r["commitment"] for r in line["readings"])
        assert maker.retirements_of(f"{roles['manufacturer']} annual report")[0]["kwh"] == 400_000
        # the same period cannot be certified twice, nor an overlapping one
        batch = line["batch"]
        with pytest.raises(GreenError, match="never twice"):
            parties["exchange"].green.issue("GEC-again", story.device, batch["start_ms"] + DAY_MS, batch["end_ms"])
        # the readings' documents stayed in the operator's vault: no block holds their figures
        client = world.chain.client()
        text = "".join(repr(client.get_block(h)) for h in range(1, client.status().height + 1))
        assert "intervals_15min" not in text


@contextlib.contextmanager
def green_chain(validity_ms: int = 730 * DAY_MS) -> Iterator[tuple[Any, dict[str, str], list[int]]]:
    offset = [0]
    with governed_chain(orgs=5, clock_ms=lambda: int(time.time() * 1000) + offset[0]) as chain:
        roles = assign_roles(list(chain.consortium.clients))
        deploy(chain, "dataex", DATAEX)
        deploy(chain, "greencert", GREEN, init={"args": {"exchange_orgs": [roles["exchange"]],
                                                          "validity_ms": validity_ms}})
        yield chain, roles, offset


def _as(chain: Any, org: str) -> GreenClient:
    # transactions signed now stay valid when a test moves the chain's clock 40 minutes ahead
    return GreenClient(chain.client(), chain.identity(org), expires_in_ms=55 * 60_000)


def _reading(chain: Any, roles: dict[str, str], device: str, reading_id: str, start: int, end: int, kwh: int) -> None:
    result = chain.client().invoke(chain.identity(roles["meter_operator"]), "dataex", "register", {
        "payload_id": reading_id.lower(), "commitment": hashlib.sha256(reading_id.encode()).digest(), "size": 100,
        "media_type": "application/json", "classification": "important",
        "retention_until_ms": int(time.time() * 1000) + 10**11, "policy": "greencert"}, check=False,
        expires_in_ms=55 * 60_000)
    assert result.ok, result.receipt
    _as(chain, roles["meter_operator"]).record_reading(reading_id, device, start, end, kwh, reading_id.lower())


def _device(chain: Any, roles: dict[str, str], device: str) -> tuple[int, int]:
    _as(chain, roles["exchange"]).register_device(device, owner=roles["wind_farm"], meter_org=roles["meter_operator"],
                                                  technology="wind", capacity_kw=10_000, location="test")
    end = int(time.time() * 1000) - DAY_MS
    return end - 10 * DAY_MS, end


def test_never_more_than_metered_never_twice_and_readings_are_bounded() -> None:
    with green_chain() as (chain, roles, _):
        exchange_org, meter = _as(chain, roles["exchange"]), _as(chain, roles["meter_operator"])
        start, end = _device(chain, roles, "T1")
        half = start + 5 * DAY_MS
        _reading(chain, roles, "T1", "R-1", start, half, 999_999)
        with pytest.raises(GreenError, match="never more than metered"):  # 999,999 kWh: 999 certificates at most
            exchange_org.issue("B0", "T1", start, half, count=1000)
        with pytest.raises(GreenError, match="overlaps reading"):
            _reading(chain, roles, "T1", "R-dup", start + DAY_MS, half + DAY_MS, 10)
        with pytest.raises(GreenError, match="more than T1"):  # 10 MW x 120 h = 1,200,000 kWh at most
            _reading(chain, roles, "T1", "R-big", half, end, 1_200_001)
        with pytest.raises(GreenError, match="meter operator"):
            GreenClient(chain.client(), chain.identity(roles["wind_farm"])).record_reading("R-x", "T1", half, end, 5, "r-1")
        _reading(chain, roles, "T1", "R-2", half, end, 1)
        assert exchange_org.issue("B1", "T1", start, end) == "B1:1-1000"  # 1,000,000 kWh: 1,000 certificates
        for period in ((start, end), (start - DAY_MS, start + 1), (end - 1, end)):
            with pytest.raises(GreenError, match="never twice"):
                exchange_org.issue("B2", "T1", *period)
        with pytest.raises(GreenError, match="overlaps"):  # no reading slips into a certified period
            _reading(chain, roles, "T1", "R-3", start, start + 3_600_000, 1)
        with pytest.raises(GreenError, match="power exchange"):
            meter.issue("B3", "T1", start - 2 * DAY_MS, start - DAY_MS)


def test_expired_certificates_cannot_move_and_count_as_cancelled() -> None:
    with green_chain(validity_ms=30 * 60_000) as (chain, roles, offset):
        _device(chain, roles, "T2")
        end = int(time.time() * 1000) - 60_000
        start = end - 2 * 3_600_000  # 10 MW for 2 hours: at most 20,000 kWh
        _reading(chain, roles, "T2", "R-9", start, end, 20_000)
        lot = _as(chain, roles["exchange"]).issue("B9", "T2", start, end)
        farm = _as(chain, roles["wind_farm"])
        moved = farm.transfer(lot, roles["manufacturer"], 8)  # valid for 30 minutes after the period
        offset[0] = 40 * 60_000  # the chain's clock moves past the expiry
        with pytest.raises(GreenError, match="expired"):
            farm.transfer(moved["rest"], roles["manufacturer"], 1)
        with pytest.raises(GreenError, match="expired"):
            _as(chain, roles["manufacturer"]).retire(moved["lot"], 8, beneficiary="x", year=2026, retirement_id="X")
        supply = farm.supply()
        assert supply["issued"] == 20 and supply["cancelled"] == 20 and supply["outstanding"] == 0
        assert farm.client.query("greencert", "lot", {"lot_id": moved["lot"]})["status"] == "expired"
        farm.cancel_expired(moved["lot"])
        assert farm.supply()["cancelled"] == 20  # recorded now, counted once
        height = chain.client().status().height
        assert farm.supply(height)["cancelled"] == 8 and farm.supply(height)["issued"] == 20


_ops = st.lists(st.tuples(st.sampled_from(["transfer", "retire"]), st.integers(0, 20), st.integers(1, 1000),
                          st.sampled_from(["wind_farm", "manufacturer", "exchange"])), min_size=1, max_size=8)
_counter = itertools.count()


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Any, dict[str, str], list[int]]]:
    with green_chain() as opened:
        yield opened


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(ops=_ops)
def test_certificates_are_conserved_whatever_the_holders_do(shared: Any, ops: list[tuple[str, int, int, str]]) -> None:
    chain, roles, _ = shared
    n = next(_counter)
    device = f"D{n}"
    start, end = _device(chain, roles, device)
    _reading(chain, roles, device, f"R{n}", start, end, 1_000_000)
    first = _as(chain, roles["exchange"]).issue(f"C{n}", device, start, end)
    before = _as(chain, roles["exchange"]).supply()
    for i, (op, pick, count, role) in enumerate(ops):
        reader = _as(chain, roles["exchange"])
        lots = [lot for org in set(roles.values()) for lot in reader.holdings(org) if lot["batch"] == f"C{n}"]
        if not lots:
            break
        lot = lots[pick % len(lots)]
        owner = _as(chain, lot["owner"])
        with contextlib.suppress(GreenError):  # a refusal changes nothing
            if op == "transfer":
                owner.transfer(lot["id"], roles[role], count)
            else:
                owner.retire(lot["id"], count, beneficiary="b", year=2026, retirement_id=f"RT{n}-{i}")
        open_now = [lot for org in set(roles.values()) for lot in reader.holdings(org) if lot["batch"] == f"C{n}"]
        retired = sum(r["count"] for r in reader.retirements_of("b") if r["batch"] == f"C{n}")
        assert sum(lot["count"] for lot in open_now) + retired == 1000  # every certificate once
        serials = sorted((lot["first"], lot["first"] + lot["count"]) for lot in open_now)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(serials))  # no serial in two lots
        now = reader.supply()
        assert now["issued"] == now["outstanding"] + now["retired"] + now["cancelled"]
        assert now["retired"] - before["retired"] == retired
    assert first.startswith(f"C{n}:")

"""S5's story as steps: the power exchange registers a wind farm's turbine, the meter operator records
signed readings (documents in its vault, commitments on chain), the exchange issues 1,000 certificates
of 1 MWh, the wind farm transfers 400 MWh to a manufacturer, who retires them for its annual report; a
second claim fails. Used by ``pilotchain demo --scenario green-power`` and by the tests."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pilotchain.apps.energy.client import GreenClient, GreenError

__all__ = ["ROLES", "GreenParty", "GreenStory", "assign_roles", "run_story"]

ROLES = ("exchange", "wind_farm", "meter_operator", "manufacturer")
_PREFERENCES = {"exchange": ("power-exchange", "bigdata-bureau"), "wind_farm": ("wind-farm", "power"),
                "meter_operator": ("grid", "meter-operator", "university"), "manufacturer": ("carmaker", "manufacturer")}
DAY_MS = 86_400_000


def assign_roles(orgs: list[str]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for role in ROLES:
        options = [o for o in _PREFERENCES[role] if o in orgs and o not in chosen.values()]
        spare = [o for o in orgs if o not in chosen.values()]
        if not options and not spare:
            raise ValueError(f"S5 needs {len(ROLES)} organisations, the network has {len(orgs)}")
        chosen[role] = (options or spare)[0]
    return chosen


@dataclass
class GreenParty:
    org: str
    green: GreenClient
    vault: Any


@dataclass
class GreenStory:
    suffix: str
    device: str
    batch: str
    lot: str
    transferred_lot: str
    retirement: str
    second_claim: str
    over_issue: str
    supply: dict[str, Any]
    steps: list[tuple[str, str, str]] = field(default_factory=list)


def run_story(parties: dict[str, GreenParty], *, note: Callable[[str, str, str], None] | None = None,
              suffix: str | None = None) -> GreenStory:
    steps: list[tuple[str, str, str]] = []

    def say(who: str, does: str, sees: str) -> None:
        steps.append((who, does, sees))
        if note is not None:
            note(who, does, sees)

    suffix = suffix or secrets.token_hex(3).upper()
    ex, farm, meter, maker = (parties[r] for r in ROLES)
    device = f"WIND-{suffix}-T01"
    ex.green.register_device(device, owner=farm.org, meter_org=meter.org, technology="wind", capacity_kw=50_000,
                             location="Zhangbei, Hebei")
    say(ex.org + " (power exchange)", f"registers turbine {device} (50 MW) of {farm.org}", f"meter operator: {meter.org}")
    end = (int(time.time() * 1000) // DAY_MS) * DAY_MS - DAY_MS
    start = end - 30 * DAY_MS
    for n in range(3):
        begin, until = start + n * 10 * DAY_MS, start + (n + 1) * 10 * DAY_MS
        reading: dict[str, Any] = {"device": device, "meter": f"M-{suffix}", "start_ms": begin, "end_ms": until,
                   "kwh": 340_000 if n < 2 else 320_000, "intervals_15min": 960, "signed_by": meter.org}
        GreenClient.store_reading(meter.vault, f"reading-{suffix}-{n}", reading)
        meter.green.record_reading(f"R-{suffix}-{n}", device, begin, until, int(reading["kwh"]), f"reading-{suffix}-{n}")
    say(meter.org + " (meter operator)", "records 3 signed readings, 1,000,000 kWh in 30 days",
        "documents in its vault; the chain holds their commitments")
    try:
        ex.green.issue(f"GEC-{suffix}-X", device, start, end, count=1001)
        over = "issued (unexpected)"
    except GreenError as exc:
        over = exc.message
    say(ex.org, "tries to issue 1,001 certificates for the period", "refused: " + over)
    lot = ex.green.issue(f"GEC-{suffix}", device, start, end)
    say(ex.org, "issues the certificates the readings cover", f"lot {lot}: 1,000 certificates of 1 MWh, valid 2 years")
    moved = farm.green.transfer(lot, maker.org, 400)
    say(farm.org + " (wind farm)", f"transfers 400 MWh to {maker.org}", f"{maker.org} holds {moved['lot']}")
    retired = maker.green.retire(moved["lot"], 400, beneficiary=f"{maker.org} annual report",
                                 year=time.gmtime().tm_year, retirement_id=f"RET-{suffix}")
    say(maker.org + " (manufacturer)", "retires them for its annual report", f"retirement {retired['id']}: "
        f"{retired['kwh']:,} kWh for {retired['beneficiary']}, {retired['year']}")
    try:
        maker.green.retire(moved["lot"], 400, beneficiary="someone else", year=time.gmtime().tm_year,
                           retirement_id=f"RET-{suffix}-again")
        second = "claimed twice (unexpected)"
    except GreenError as exc:
        second = exc.message
    say(maker.org, "tries to claim the same MWh again", "refused: " + second)
    supply = ex.green.supply()
    say("anyone", "asks for the supply", f"issued {supply['issued']} = outstanding {supply['outstanding']} + retired "
        f"{supply['retired']} + cancelled {supply['cancelled']}")
    return GreenStory(suffix=suffix, device=device, batch=f"GEC-{suffix}", lot=lot, transferred_lot=moved["lot"],
                      retirement=retired["id"], second_claim=second, over_issue=over, supply=supply, steps=steps)

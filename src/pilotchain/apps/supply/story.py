"""S4's story as data and steps: the parts, batches, vehicles and EPCIS events of a brake-disc supply
chain, the confidential documents, and the run — car maker confirms a payable, tier-1 passes part of
it to tier-2, tier-2 discounts it at bank A, bank B's attempt fails, a defect is traced to the tier-2
steel batch and the affected VINs, the car maker pays at maturity, the regulator reads the lineage
and asks for the terms. Used by ``pilotchain demo --scenario supply-chain`` and by the tests (in
process and on real processes), so what the demo shows is what is tested."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pilotchain.apps.supply.client import SupplyClient, SupplyError, TraceClient, minor_units
from pilotchain.apps.supply.epcis import gs1_check_digit

__all__ = ["ROLES", "Party", "StoryResult", "assign_roles", "batch", "run_story", "supply_events", "vehicle"]

ROLES = ("carmaker", "tier1", "tier2", "bank_a", "bank_b", "regulator")
# who plays each role on a network, by preference (the pilot's default organisations have no
# suppliers and one commercial bank: the story names the stand-ins it uses)
_PREFERENCES = {
    "carmaker": ("carmaker",), "tier1": ("tier1", "power", "university"), "tier2": ("tier2", "university", "hospital"),
    "bank_a": ("bank", "bank-a"), "bank_b": ("bank-b", "hospital", "bigdata-bureau"),
    "regulator": ("regulator", "central-bank", "bigdata-bureau"),
}

CARMAKER_PREFIX, TIER1_PREFIX, TIER2_PREFIX = "6901234", "6905678", "6909012"
#: marks that appear only in the confidential documents: a test checks no block holds them
PRICE_MARKERS = ("unit_price_fen", "discount_rate_bp", "purchase_price_fen")


def _gtin(prefix: str, item: str) -> str:
    body = "0" + prefix + item
    return body + gs1_check_digit(body)


def batch(prefix: str, item: str, lot: str) -> str:
    return f"https://id.gs1.org/01/{_gtin(prefix, item)}/10/{lot}"


def vehicle(vin: str) -> str:
    return f"https://id.gs1.org/01/{_gtin(CARMAKER_PREFIX, '00001')}/21/{vin}"


def assign_roles(orgs: list[str]) -> dict[str, str]:
    """Role → organisation: the preferred one present, else the first not yet playing a role."""
    chosen: dict[str, str] = {}
    for role in ROLES:
        options = [o for o in _PREFERENCES[role] if o in orgs and o not in chosen.values()]
        spare = [o for o in orgs if o not in chosen.values()]
        if not options and not spare:
            raise ValueError(f"S4 needs {len(ROLES)} organisations, the network has {len(orgs)}")
        chosen[role] = (options or spare)[0]
    return chosen


@dataclass
class Party:
    org: str
    supply: SupplyClient
    trace: TraceClient
    vault: Any  # pilotchain.apps.exchange.client.VaultClient


@dataclass
class StoryResult:
    suffix: str
    receivable: str
    pieces: list[str]
    financed: str
    double_financing: str
    recall: Any
    expected_vins: list[str]
    supply_after_issue: dict[str, Any]
    supply_after_settle: dict[str, Any]
    terms_payloads: list[str]
    steps: list[tuple[str, str, str]] = field(default_factory=list)
    documents: dict[str, bytes] = field(default_factory=dict)


def supply_events(suffix: str, now_s: float) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """(role, EPCIS event) in capture order, and the identifiers they use."""
    def at(minutes: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S.000+08:00", time.gmtime(now_s + 8 * 3600 - 3600 + minutes * 60))

    steel_a, steel_b = batch(TIER2_PREFIX, "10001", f"S{suffix}A"), batch(TIER2_PREFIX, "10001", f"S{suffix}B")
    disc_1, disc_2, disc_3 = (batch(TIER1_PREFIX, "20002", f"D{suffix}{n}") for n in (1, 2, 3))
    vins = [f"LSV{suffix}{n:08d}" for n in range(1, 5)]
    pallet = f"https://id.gs1.org/00/{_sscc(TIER1_PREFIX, suffix)}"
    common = {"@context": [{"pc": "https://pilotchain.example/epcis/"}], "eventTimeZoneOffset": "+08:00"}
    site = {"tier2": "urn:epc:id:sgln:6909012.00001.0", "tier1": "urn:epc:id:sgln:6905678.00001.0",
            "carmaker": "urn:epc:id:sgln:6901234.00001.0"}

    def event(minutes: int, **fields: Any) -> dict[str, Any]:
        return {**common, "eventTime": at(minutes), **fields}

    events: list[tuple[str, dict[str, Any]]] = [
        ("tier2", event(0, type="ObjectEvent", action="ADD", bizStep="commissioning", disposition="active",
                        quantityList=[{"epcClass": steel_a, "quantity": 500, "uom": "KGM"},
                                      {"epcClass": steel_b, "quantity": 500, "uom": "KGM"}],
                        readPoint={"id": site["tier2"]}, ilmd={"pc:heat": f"H-{suffix}", "pc:grade": "HT250"})),
        ("tier1", event(10, type="TransformationEvent", bizStep="commissioning",
                        inputQuantityList=[{"epcClass": steel_a, "quantity": 200, "uom": "KGM"}],
                        outputQuantityList=[{"epcClass": disc_1, "quantity": 20, "uom": "EA"}],
                        readPoint={"id": site["tier1"]})),
        ("tier1", event(11, type="TransformationEvent", bizStep="commissioning",
                        inputQuantityList=[{"epcClass": steel_b, "quantity": 200, "uom": "KGM"}],
                        outputQuantityList=[{"epcClass": disc_2, "quantity": 20, "uom": "EA"}],
                        readPoint={"id": site["tier1"]})),
        ("tier1", event(12, type="TransformationEvent", bizStep="commissioning",
                        inputQuantityList=[{"epcClass": steel_a, "quantity": 100, "uom": "KGM"}],
                        outputQuantityList=[{"epcClass": disc_3, "quantity": 10, "uom": "EA"}],
                        readPoint={"id": site["tier1"]})),
        ("tier1", event(20, type="AggregationEvent", action="ADD", bizStep="packing", parentID=pallet,
                        childQuantityList=[{"epcClass": disc_1, "quantity": 20, "uom": "EA"},
                                           {"epcClass": disc_2, "quantity": 20, "uom": "EA"},
                                           {"epcClass": disc_3, "quantity": 10, "uom": "EA"}],
                        readPoint={"id": site["tier1"]})),
        ("tier1", event(30, type="ObjectEvent", action="OBSERVE", bizStep="shipping", disposition="in_transit",
                        epcList=[pallet], readPoint={"id": site["tier1"]},
                        bizTransactionList=[{"type": "inv", "bizTransaction": f"urn:epcglobal:cbv:bt:6905678000008:INV-{suffix}"},
                                            {"type": "desadv", "bizTransaction": f"urn:epcglobal:cbv:bt:6905678000008:DN-{suffix}"}])),
        ("carmaker", event(90, type="ObjectEvent", action="OBSERVE", bizStep="receiving", disposition="active",
                           epcList=[pallet], readPoint={"id": site["carmaker"]})),
    ]
    fitted = [(vins[0], disc_1), (vins[1], disc_1), (vins[2], disc_2), (vins[3], disc_3)]
    for n, (vin, disc) in enumerate(fitted):
        events.append(("carmaker", event(120 + n, type="AssociationEvent", action="ADD", bizStep="assembling",
                                         parentID=vehicle(vin), childQuantityList=[{"epcClass": disc, "quantity": 4, "uom": "EA"}],
                                         readPoint={"id": site["carmaker"]})))
    ids = {"steel_a": steel_a, "steel_b": steel_b, "disc_1": disc_1, "disc_2": disc_2, "disc_3": disc_3,
           "vins": vins, "pallet": pallet}
    return events, ids


def _sscc(prefix: str, suffix: str) -> str:
    body = "0" + prefix + f"{int(suffix, 16) % 10**9:09d}"
    return body + gs1_check_digit(body)


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True).encode()


def run_story(parties: dict[str, Party], *, note: Callable[[str, str, str], None] | None = None,
              suffix: str | None = None) -> StoryResult:
    """Play S4 with ``parties`` (role → Party); each step is reported to ``note(who, does, sees)``."""
    steps: list[tuple[str, str, str]] = []

    def say(who: str, does: str, sees: str) -> None:
        steps.append((who, does, sees))
        if note is not None:
            note(who, does, sees)

    suffix = suffix or secrets.token_hex(3).upper()
    car, t1, t2, a, b, reg = (parties[r] for r in ROLES)
    events, ids = supply_events(suffix, time.time())
    for role, event in events:
        parties[role].trace.capture(event)
    say(f"{t2.org}, {t1.org}, {car.org}", f"capture {len(events)} EPCIS 2.0 events (commissioning, transformation, "
        "packing, shipping, receiving, assembly)", "each anchored by its Event Hash ID; a duplicate capture is refused")

    invoice = {"invoice": f"INV-{suffix}", "seller": t1.org, "buyer": car.org, "lines": [
        {"item": "brake disc", "batch": ids["disc_1"], "quantity": 20, "unit_price_fen": 2_500_000},
        {"item": "brake disc", "batch": ids["disc_2"], "quantity": 20, "unit_price_fen": 2_500_000}],
        "total_fen": minor_units("1,000,000")}
    delivery = {"delivery_note": f"DN-{suffix}", "pallet": ids["pallet"], "batches": [ids["disc_1"], ids["disc_2"],
                                                                                       ids["disc_3"]]}
    terms = {"receivable": f"R-{suffix}.2", "bank": a.org, "discount_rate_bp": 385,
             "purchase_price_fen": minor_units("297,150"), "days": 90}
    documents = {"invoice": _json(invoice), "delivery_note": _json(delivery), "terms": _json(terms)}
    SupplyClient.store_document(t1.vault, f"inv-{suffix}", documents["invoice"])
    SupplyClient.store_document(t1.vault, f"dn-{suffix}", documents["delivery_note"])
    say(t1.org, "stores the invoice and delivery note in its vault", "the chain holds salted commitments, not prices")

    receivable = f"R-{suffix}"
    maturity = int(time.time() * 1000) + 90 * 86_400_000
    car.supply.issue(receivable, t1.org, minor_units("1,000,000"), maturity, invoice=f"inv-{suffix}",
                     delivery_note=f"dn-{suffix}", batches=[ids["disc_1"], ids["disc_2"]])
    after_issue = car.supply.supply()
    say(car.org, "confirms a 1,000,000.00 CNY payable to " + t1.org, f"receivable {receivable}, maturity in 90 days")

    pieces = [f"{receivable}.1", f"{receivable}.2"]
    t1.supply.split(receivable, [{"id": pieces[0], "holder": t1.org, "amount": minor_units("700,000")},
                                 {"id": pieces[1], "holder": t2.org, "amount": minor_units("300,000")}])
    say(t1.org, f"passes 300,000.00 to {t2.org}", f"{receivable} closes; {pieces[0]} 700,000.00 + {pieces[1]} "
        "300,000.00 = 1,000,000.00")

    SupplyClient.store_document(t2.vault, f"terms-{suffix}", documents["terms"])
    t2.supply.offer(pieces[1], a.org, f"terms-{suffix}")
    t2.supply.offer(pieces[1], b.org, f"terms-{suffix}")
    a.supply.finance(pieces[1], registration_no=f"ZD-{suffix}-0001")
    try:
        b.supply.finance(pieces[1])
        refused = "financed twice (unexpected)"
    except SupplyError as exc:
        refused = exc.message
    say(f"{a.org} (bank A)", f"discounts {pieces[1]} (terms in {t2.org}'s vault, registration ZD-{suffix}-0001)",
        "the receivable passes to bank A")
    say(f"{b.org} (bank B)", f"tries to finance {pieces[1]} too", "refused: " + refused)

    recall = car.trace.trace(ids["disc_1"])
    say(car.org, f"defect in brake-disc batch {ids['disc_1'].rsplit('/', 1)[-1]}: pilotchain supply trace",
        f"made from tier-2 steel {', '.join(s.rsplit('/', 1)[-1] for s in recall.sources)}; affected VINs "
        f"{', '.join(recall.vins)}")

    paid = car.supply.settle(receivable, f"PAY-{suffix}")
    after_settle = car.supply.supply()
    say(car.org, "pays at maturity", f"{len(paid)} pieces settled: " + ", ".join(f"{p['holder']} {p['amount'] / 100:,.2f}"
                                                                              for p in paid))
    lineage = reg.supply.lineage(receivable)
    granted = reg.supply.request_terms(pieces[1], "supervision of supply-chain financing")
    reg.vault.fetch(f"terms-{suffix}", "SUPERVISION")
    say(f"{reg.org} (regulator)", f"reads the lineage ({len(lineage)} records: who, when, which parts) and asks for "
        "the terms through the data exchange", f"PERMIT for {', '.join(granted)}; terms fetched and checked against "
        "their commitment")
    return StoryResult(suffix=suffix, receivable=receivable, pieces=pieces, financed=pieces[1], double_financing=refused,
                       recall=recall, expected_vins=sorted([ids["vins"][0], ids["vins"][1], ids["vins"][3]]),
                       supply_after_issue=after_issue, supply_after_settle=after_settle, terms_payloads=granted,
                       steps=steps, documents=documents)

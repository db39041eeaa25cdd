"""Usage statistics for the Big-Data Bureau: counted from the departments' signed receipts, a call only
when provider and consumer receipts match; the evidence goes to the bureau and the department only.
(A development chain certifies no blocks, so the evidence bundles themselves — verified against the
genesis alone, failing on a changed byte — are tested on real validators in test_live_catalogue.py.)"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import msgspec
import pytest

from pilotchain.apps.catalogue.client import CatalogueRefused
from pilotchain.apps.catalogue.records import RECEIPT_DOMAIN, CallReceipt, CatalogueError, day_of
from pilotchain.apps.catalogue.usage import collect_bundles, tally, usage_chart_html
from pilotchain.apps.exchange.records import verify_signed
from pilotchain.codec import decode
from tests.apps.catalogue.helpers import BUREAU, MARKET, SOCIAL, TAX, directory, endpoint
from tests.apps.catalogue.test_calls import set_up

pytestmark = pytest.mark.timeout(300)


def test_the_bureau_counts_matching_receipts_per_department_service_and_day(tmp_path: Path) -> None:
    with directory(tmp_path) as world:
        story = set_up(world, records=12)
        agreement, tax, market = story["agreement"], story["tax"], story["market"]
        social = world.catalogue(SOCIAL)
        social_request = social.request("market.enterprises", duty_id="social.contributions", fields=["name"],
                                        purpose="contributions")
        market.approve(social_request["id"])
        first = tax.call(agreement)  # 12 records
        tax.call(agreement, fields=["name"], where={"credit_code": ["91310000MA1K000001", "91310000MA1K000002"]})
        social.call(social_request["id"], limit=5)
        with pytest.raises(CatalogueRefused):
            tax.call(agreement, fields=["legal_representative"])  # rejected, logged
        day = day_of(first["at_ms"])
        vaults = {org: endpoint(org) for org in (MARKET, TAX, SOCIAL)}
        bureau = world.chain.identity(BUREAU)

        before = collect_bundles(bureau, vaults, day, day, transport=world.transport)
        assert all(bundle is None and pending > 0 for bundle, pending in before.values())  # nothing anchored yet
        world.maintain()
        suite = world.vaults[MARKET].suite
        receipts = []
        for org in vaults:
            for _, row in world.vaults[org].book.receipts_of(f"catalogue/{day}"):
                assert row.batch_root  # anchored
                signed, certificate = verify_signed(suite, row.signed, RECEIPT_DOMAIN)
                receipts.append((row.signed, decode(signed.body, CallReceipt)))
        report = tally(suite.hash, receipts, day, day)
        rows = {(r.provider, r.service, r.consumer): r for r in report.rows}
        to_tax = rows[(MARKET, "market.enterprises", TAX)]
        to_social = rows[(MARKET, "market.enterprises", SOCIAL)]
        assert (to_tax.calls, to_tax.records, to_tax.rejected, to_tax.unconfirmed) == (2, 14, 1, 0)
        assert (to_social.calls, to_social.records) == (1, 5)
        assert to_tax.size_bytes > to_social.size_bytes > 0
        assert report.receipts == {"delivered": 3, "received": 3, "rejected": 1}  # each document once
        assert report.totals_by("provider")[MARKET]["records"] == 19
        assert report.totals_by("consumer")[TAX]["calls"] == 2
        assert tally(suite.hash, receipts, "2000-01-01", "2000-01-02").rows == []

        # a delivered receipt without the consumer's matching answer is not a call
        delivered_only = [(doc, r) for doc, r in receipts if not (r.kind == "received" and r.consumer_org == SOCIAL)]
        unmatched = {(r.provider, r.consumer): r for r in tally(suite.hash, delivered_only, day, day).rows}
        assert (unmatched[(MARKET, SOCIAL)].calls, unmatched[(MARKET, SOCIAL)].unconfirmed) == (0, 1)
        forged = [(doc, msgspec.structs.replace(r, records=r.records + 1) if r.kind == "received" else r)
                  for doc, r in receipts]
        assert all(row.calls == 0 for row in tally(suite.hash, forged, day, day).rows)

        page = usage_chart_html(report)
        assert page.count("<svg") == 2 and "market.enterprises" in page and ">14<" in page
        assert "<script" not in page
        for part in page.split("<svg")[1:]:  # each chart is well-formed SVG
            ElementTree.fromstring("<svg" + part[:part.index("</svg>") + len("</svg>")])

        # the evidence goes to the bureau and the department itself, nobody else
        with pytest.raises(CatalogueError) as caught:
            collect_bundles(world.chain.identity(SOCIAL), {MARKET: endpoint(MARKET)}, day, day,
                            transport=world.transport)
        assert caught.value.code == "PERMISSION_DENIED"
        with pytest.raises(CatalogueError) as caught:  # a development chain certifies nothing to prove
            collect_bundles(world.chain.identity(TAX), {TAX: endpoint(TAX)}, day, day, transport=world.transport)
        assert caught.value.code == "UNPROVEN"

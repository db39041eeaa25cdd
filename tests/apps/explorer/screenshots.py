"""Screenshots of the explorer's main pages for docs/explorer.md, taken in Debian's Chromium through
Playwright over the test scene (the same chain the browser tests use).

    .venv/bin/python -m tests.apps.explorer.screenshots docs/images/explorer

Writes one PNG per page (1280 px wide, the laptop screen the console is made for) and prints each
path. Needs Playwright and /usr/bin/chromium (``scripts/system-deps.sh``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from pilotchain.apps.explorer.cli import org_certificates
from pilotchain.apps.explorer.index import ExplorerIndex, Indexer
from pilotchain.apps.explorer.server import create_app
from pilotchain.crypto import get_suite
from pilotchain.sdk import AsyncClient
from tests.apps.explorer.conftest import CHROMIUM, serve
from tests.apps.explorer.helpers import scene

VIEWPORT = {"width": 1280, "height": 860}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with scene() as world:
        gateway = world.chain.serve_http()
        identity = world.chain.identity(world.viewer)
        client = world.chain.client(identity=identity)
        indexer = Indexer(ExplorerIndex(":memory:", client.status().genesis_hash), client, get_suite(world.chain.genesis.suite))
        indexer.catch_up()
        app = create_app(client, world.viewer, world.chain.genesis, index=indexer,
                         live=lambda: AsyncClient(gateway, identity=identity, timeout=10.0),
                         identities=org_certificates(world.chain.consortium.directory, world.viewer))
        with serve(app) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            page = browser.new_page(viewport=VIEWPORT)

            def shot(name: str, path: str, ready: str, full: bool = False) -> None:
                page.goto(url + path)
                expect(page.locator(ready).first).to_be_visible()
                target = out / f"{name}.png"
                page.screenshot(path=str(target), full_page=full)
                print(target)

            page.goto(url + "/")
            expect(page.locator('[data-field="live"]')).to_have_attribute("data-state", "live")
            writer = world.chain.client(identity=identity)
            for value in range(6):
                writer.invoke(identity, "kv", "put", {"key": f"screenshot-{value}", "value": value})
            expect(page.locator('[data-chart="tx_per_s"] polyline')).to_have_count(1)
            page.screenshot(path=str(out / "overview.png"))
            print(out / "overview.png")
            shot("block", f"/blocks/{world.secret.height}", '[data-verify][data-state="ok"]', full=True)
            shot("transaction", f"/tx/{world.batch[1].tx_id}", '[data-verify][data-state="ok"]', full=True)
            shot("proposal", f"/governance/{world.proposals['upgrade']}", "[data-diff]", full=True)
            shot("validators", f"/governance/{world.proposals['validator']}", "table.validators", full=True)
            shot("contract", "/contracts/records", "[data-source]")
            shot("organisations", "/orgs", "table.identities", full=True)
            shot("state", "/state?contract=kv&key=v/rate", '[data-verify][data-state="ok"]', full=True)
            shot("search", f"/identities?q={world.viewer}%2F{world.viewer}-client", "table.seen-identities")
            page.goto(url + "/lang/zh-CN")
            shot("overview-zh", "/", '[data-field="live"][data-state="live"]')
            shot("transaction-zh", f"/tx/{world.visible.tx_id}", '[data-verify][data-state="ok"]', full=True)
            browser.close()
        indexer.index.close()
        client.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images/explorer"))

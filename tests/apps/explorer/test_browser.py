"""The explorer in a real browser: Debian's Chromium (``scripts/system-deps.sh`` installs it), driven
by Playwright through ``executable_path``, opens the overview and a block page served over HTTP
on a free port and reads what a person would see. Skipped, saying what is missing, when Playwright
or Chromium is not there."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from pilotchain.apps.explorer.server import create_app
from tests.apps.explorer.helpers import SECRET, Scene, scene

pytestmark = pytest.mark.timeout(180)

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def explorer_url() -> Iterator[tuple[Scene, str]]:
    with scene() as world:
        client = world.chain.client(identity=world.chain.identity(world.viewer))
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # connections wait in the backlog until the server's loop accepts them
        server = uvicorn.Server(uvicorn.Config(create_app(client, world.viewer, world.chain.genesis), log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        try:
            yield world, f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            listener.close()
            client.close()


def test_a_person_opens_the_overview_and_a_block_in_chromium(explorer_url: tuple[Scene, str]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is missing: pip install -e '.[dev]'")
    if not CHROMIUM.is_file():
        pytest.skip(f"Debian's Chromium is missing at {CHROMIUM}: run scripts/system-deps.sh (apt-get install chromium)")
    world, url = explorer_url
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        except sync_api.Error as exc:
            pytest.skip(f"Chromium at {CHROMIUM} did not launch: {exc}")
        try:
            page = browser.new_page()
            page.goto(url + "/")
            sync_api.expect(page.locator("h1")).to_have_text("Overview")
            height = world.chain.client().status().height
            sync_api.expect(page.locator('[data-field="height"]')).to_have_text(str(height))
            sync_api.expect(page.locator("[data-org]")).to_have_text(world.viewer)
            sync_api.expect(page.locator('[data-proof="ok"]')).to_contain_text("Proven")

            page.fill('input[name="q"]', str(world.secret.height))
            page.click("header form button")
            sync_api.expect(page.locator("h1")).to_have_text(f"Block {world.secret.height}")
            rows = page.locator("table.txs tbody tr")
            sync_api.expect(rows).to_have_count(1)
            sync_api.expect(rows.first).to_contain_text("records")
            sync_api.expect(rows.first.locator(".redacted").first).to_have_text("redacted")
            sync_api.expect(page.locator('[data-field="certificate"]')).to_contain_text("✓ verified: 1 of 1 validators")
            assert SECRET not in page.content()

            page.goto(f"{url}/blocks/{world.visible.height}")
            sync_api.expect(page.locator("table.txs tbody tr").first).to_contain_text("put")
            page.click(f'a[href="/tx/{world.visible.tx_id}"]')
            sync_api.expect(page.locator("h1")).to_have_text("Transaction")
            sync_api.expect(page.locator('[data-proof="ok"]')).to_be_visible()
        finally:
            browser.close()

"""Fixtures for the explorer's real-browser tests: an app served over HTTP on a free port, and
Debian's Chromium driven by Playwright (skipped, naming what is missing, without either)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

CHROMIUM = Path("/usr/bin/chromium")


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1 until the block ends; yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # connections wait in the backlog until the server's loop accepts them
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Debian's, through Playwright's executable_path)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is missing: pip install -e '.[dev]'")
    if not CHROMIUM.is_file():
        pytest.skip(f"Debian's Chromium is missing at {CHROMIUM}: run scripts/system-deps.sh (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        except sync_api.Error as exc:
            pytest.skip(f"Chromium at {CHROMIUM} did not launch: {exc}")
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh page (its own cookies and routes) in the shared browser."""
    context = chromium.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()

"""`network up`'s explorer service: one `pilotchain explorer` process per organisation, each
serving its console over HTTP against a real gateway, shown by `network status`, stopped by
`network down`."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from pilotchain.apps.explorer.network import PID_FILE, explorer_homes, service
from pilotchain.network.processes import pid_of
from pilotchain.testing import LocalChain, local_chain

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def served_chain() -> Iterator[LocalChain]:
    """An in-process chain behind a real HTTP gateway, its network folder pointing at it."""
    with local_chain(orgs=2) as chain:
        url = chain.serve_http()
        manifest_file = chain.consortium.directory / "network.json"
        manifest = json.loads(manifest_file.read_text())
        for node in manifest["nodes"]:
            node["gateway_url"] = url
        manifest_file.write_text(json.dumps(manifest))
        yield chain


def test_network_up_starts_an_explorer_per_organisation_and_down_stops_them(served_chain: LocalChain) -> None:
    directory: Path = served_chain.consortium.directory
    console = Console(file=io.StringIO(), width=200)
    served_chain.client().invoke(served_chain.identity(), "kv", "put", {"key": "k", "value": 1})
    try:
        service.up(directory, console)
        printed = console.file.getvalue()  # type: ignore[attr-defined]
        rows = service.status(directory)
        assert [row["name"] for row in rows] == [f"explorer {org}" for org in served_chain.consortium.clients]
        assert all(row["up"] for row in rows), rows
        for org, row in zip(served_chain.consortium.clients, rows, strict=True):
            assert f"explorer of {org}: {row['url']}" in printed
            overview = httpx.get(row["url"], timeout=30)
            assert overview.status_code == 200
            assert f"<b data-org>{org}</b>" in overview.text and 'data-proof="ok"' in overview.text
            assert "<h1>Block 1</h1>" in httpx.get(row["url"] + "blocks/1", timeout=30).text
    finally:
        service.down(directory, console)
    assert all(pid_of(home / PID_FILE) is None for home in explorer_homes(directory).values())
    assert not any(row["up"] for row in service.status(directory))

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


def test_the_index_command_indexes_the_chain_and_says_how_fast(served_chain: LocalChain, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pilotchain.apps.explorer.cli import app

    directory = served_chain.consortium.directory
    org = next(iter(served_chain.consortium.clients))
    for value in range(3):
        served_chain.client().invoke(served_chain.identity(org), "kv", "put", {"key": "k", "value": value})
    height = served_chain.client().status().height
    argv = ["--network", str(directory), "--org", org, "--index", str(tmp_path / "index.sqlite"), "--index-only"]
    first = CliRunner().invoke(app, argv)
    assert first.exit_code == 0, first.output
    assert f"indexed blocks 1..{height}: {height} blocks, 3 transactions in " in first.output
    assert "blocks/s" in first.output and "tx/s" in first.output
    again = CliRunner().invoke(app, argv)  # nothing new: goes on from where it was
    assert f"the index is at block {height}, the node's height: nothing to index" in again.output
    rebuilt = CliRunner().invoke(app, [*argv, "--rebuild-index"])
    assert f"indexed blocks 1..{height}: {height} blocks, 3 transactions" in rebuilt.output

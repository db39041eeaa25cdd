"""`pilotchain bench --workload NAME` runs an installed workload's command, handing on the options
given that it takes too and refusing the rest; `--workload kv` (the default) is the network benchmark."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pilotchain.cli import bench_cmd
from pilotchain.cli.main import app

runner = CliRunner()


def _said(result: Any) -> str:
    """The output with Rich's error box and line wrapping taken out."""
    return " ".join(result.output.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


@pytest.fixture
def seen() -> Iterator[dict[str, Any]]:
    calls: dict[str, Any] = {}

    def probe(nodes: int = typer.Option(4), crypto: str = typer.Option("intl"),
              wallets: int = typer.Option(10),
              json_output: bool = typer.Option(False, "--json")) -> None:
        calls.update(nodes=nodes, crypto=crypto, wallets=wallets, json=json_output)

    bench_cmd.app.command(name="probe-load")(probe)
    try:
        yield calls
    finally:
        bench_cmd.app.registered_commands[:] = [c for c in bench_cmd.app.registered_commands
                                                if c.name != "probe-load"]


def test_the_options_given_are_handed_on_and_the_rest_take_the_workloads_defaults(seen: dict[str, Any]) -> None:
    result = runner.invoke(app, ["bench", "--workload", "probe-load", "--nodes", "7", "--crypto", "gm", "--json"])
    assert result.exit_code == 0, result.output
    assert seen == {"nodes": 7, "crypto": "gm", "wallets": 10, "json": True}


def test_an_option_the_workload_does_not_take_is_refused_and_nothing_runs(seen: dict[str, Any]) -> None:
    result = runner.invoke(app, ["bench", "--workload", "probe-load", "--mode", "spike"])
    assert result.exit_code == 2 and "--mode does not apply to the probe-load workload" in _said(result)
    assert seen == {}


def test_unknown_workloads_and_platform_commands_are_not_workloads(seen: dict[str, Any]) -> None:
    for name in ("nope", "micro", "report"):
        result = runner.invoke(app, ["bench", "--workload", name])
        assert result.exit_code == 2 and f"no workload {name!r}" in _said(result), result.output
        assert "probe-load" in _said(result) and "payments" in _said(result)
    result = runner.invoke(app, ["bench", "--workload", "probe-load", "probe-load"])
    assert result.exit_code == 2 and "name the workload once" in _said(result)
    assert seen == {}

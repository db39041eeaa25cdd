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

    def probe(nodes: int = typer.Option(4, min=1), crypto: str = typer.Option("intl"),
              wallets: int = typer.Option(10),
              json_output: bool = typer.Option(False, "--json")) -> None:
        calls.update(nodes=nodes, crypto=crypto, wallets=wallets, json=json_output)

    bench_cmd.app.command(name="probe-load")(probe)
    one_command = typer.Typer()  # a Typer app whose single command is the workload
    one_command.command(name="run")(probe)
    bench_cmd.app.add_typer(one_command, name="probe-app")
    try:
        yield calls
    finally:
        bench_cmd.app.registered_commands[:] = [c for c in bench_cmd.app.registered_commands
                                                if c.name != "probe-load"]
        bench_cmd.app.registered_groups[:] = [g for g in bench_cmd.app.registered_groups
                                              if g.name != "probe-app"]


def test_the_options_given_are_handed_on_and_the_rest_take_the_workloads_defaults(seen: dict[str, Any]) -> None:
    for name in ("probe-load", "probe-app"):
        seen.clear()
        result = runner.invoke(app, ["bench", "--workload", name, "--nodes", "7", "--crypto", "gm", "--json"])
        assert result.exit_code == 0, result.output
        assert seen == {"nodes": 7, "crypto": "gm", "wallets": 10, "json": True}, name


def test_a_value_handed_on_meets_the_workloads_own_checks(seen: dict[str, Any]) -> None:
    result = runner.invoke(app, ["bench", "--workload", "probe-load", "--nodes", "0"])
    assert result.exit_code == 2 and "--nodes" in _said(result) and "greater than or equal to 1" in _said(result), result.output
    assert seen == {}


def test_the_installed_payments_workload_runs_with_what_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from pilotchain.apps.currency import bench as payments_bench

    asked: dict[str, Any] = {}

    def run(**options: Any) -> dict[str, Any]:  # the network run itself is the payments bench's test
        asked.update(options)
        return {"summary": {"sustained_ok_payments_per_s": 0, "floor_met": False, "p99_ms": None,
                            "success_rate": None, "supply_balanced": True}}

    monkeypatch.setattr(payments_bench, "run", run)
    result = runner.invoke(app, ["bench", "--workload", "payments", "--nodes", "7", "--crypto", "gm",
                                 "--no-record", "--json"])
    assert result.exit_code == 0, result.output
    assert (asked["nodes"], asked["suite"], asked["wallets"], asked["batch_window_ms"]) == (7, "gm", 4_000, 100)


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


def test_payments_options_the_ladder_refuses_are_answered_clearly_before_anything_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pilotchain.apps.currency import bench as payments_bench

    def run(**options: Any) -> dict[str, Any]:
        raise AssertionError("the run must not start")

    monkeypatch.setattr(payments_bench, "run", run)
    for argv, said in ((["bench", "payments", "--nodes", "0"], "nodes must be at least 1"),
                       (["bench", "--workload", "payments", "--crypto", "zz"], "suite must be intl or gm")):
        result = runner.invoke(app, [*argv, "--no-record"])
        assert result.exit_code == 2 and said in _said(result), result.output
        assert "Traceback" not in result.output

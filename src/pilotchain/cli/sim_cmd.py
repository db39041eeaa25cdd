"""`pilotchain sim`: run the deterministic simulator of the node core over many seeds.

Mount it in ``cli/main.py`` with either of::

    app.add_typer(sim_cmd.app, name="sim")      # the sub-app runs its callback directly
    app.command("sim")(sim_cmd.sim)             # or register the function as a command

Standalone: ``python -m pilotchain.cli.sim_cmd --nodes 4 --seeds 200 --faults all --json``.
Exit status: 0 when every seed passed, 1 when any seed failed, 2 for bad arguments.
"""

from __future__ import annotations

import json

import typer

from pilotchain.consensus import Replica
from pilotchain.node.core import NodeCore
from pilotchain.sim import (
    BROKEN,
    BROKEN_CORES,
    BROKEN_REPLICAS,
    FAULTS,
    SeedResult,
    parse_faults,
    parse_seeds,
    run_seeds,
)

__all__ = ["app", "sim"]

app = typer.Typer(
    help="Deterministic fault simulation of the validators' node core (consensus, ledger, governance).",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def sim(
    nodes: int = typer.Option(4, "--nodes", min=1, max=64, help="Validators (n = 3f + 1 tolerates f byzantine)."),
    seeds: str = typer.Option("200", "--seeds", help="A count (200 = seeds 0..199) or a range FIRST-LAST."),
    seed: int | None = typer.Option(None, "--seed", help="Replay exactly this one seed (overrides --seeds)."),
    faults: str = typer.Option("all", "--faults", help=f"all, none, or a comma list of: {', '.join(FAULTS)}."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary instead of text."),
    broken: str | None = typer.Option(
        None, "--broken", help=f"Run a deliberately broken replica or node core ({', '.join(BROKEN)}) to see the checker fail."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="One line per seed."),
) -> None:
    """Run the simulator; every failing seed prints the command that replays it."""
    try:
        fault_set = parse_faults(faults)
        seed_range = range(seed, seed + 1) if seed is not None else parse_seeds(seeds)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if broken is not None and broken not in BROKEN:
        raise typer.BadParameter(f"unknown broken part {broken!r}; choose one of {', '.join(BROKEN)}")
    factory = BROKEN_REPLICAS.get(broken or "", Replica)
    core_factory = BROKEN_CORES.get(broken or "", NodeCore)

    def report(result: SeedResult) -> None:
        if json_output:
            return
        if not result.ok:
            typer.echo(f"FAIL seed {result.seed}: faults {','.join(result.active_faults) or 'none'}, byzantine {result.byzantine}")
            for violation in result.safety_violations[:5]:
                typer.echo(f"  safety: {violation}")
            if result.liveness_failure is not None:
                typer.echo(f"  liveness: {result.liveness_failure}")
            typer.echo(f"  replay: {result.replay}")
        elif verbose:
            typer.echo(
                f"ok   seed {result.seed}: {result.blocks_committed} blocks, {result.events} events, "
                f"faults {','.join(result.active_faults) or 'none'}"
            )

    summary = run_seeds(nodes, seed_range, fault_set, replica_factory=factory, core_factory=core_factory,
                        broken=broken, on_result=report)
    if json_output:
        typer.echo(json.dumps(summary.as_dict(), indent=2, sort_keys=True))
    else:
        typer.echo(
            f"{summary.seeds_run} seeds, n={nodes}: {summary.safety_violations} safety violations, "
            f"{summary.liveness_failures} liveness failures, {summary.blocks_committed} blocks committed, "
            f"{summary.evidence_found} equivocations detected, {summary.elapsed_s:.1f} s"
        )
    if summary.safety_violations or summary.liveness_failures:
        raise typer.Exit(1)


app.callback()(sim)


if __name__ == "__main__":
    app()

"""`pilotchain bench ...`: benchmarks that print numbers and record them under bench/results/."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Benchmarks: print the numbers and record them under bench/results/.", no_args_is_help=True)


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def _table(title: str, results: dict[str, Any]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    flat: dict[str, Any] = {}
    _flat("", results, flat)
    for key, value in flat.items():
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        table.add_row(key, shown)
    return table


@app.command()
def micro(
    seconds: float = typer.Option(1.0, help="wall time per crypto case"),
    blocks: int = typer.Option(5, help="blocks of 1,000 transactions for the ledger benchmark"),
    only: str = typer.Option("crypto,storage,ledger,contracts", help="comma list of: crypto, storage, ledger, contracts"),
    json_output: bool = typer.Option(False, "--json", help="print one JSON document instead of tables"),
    record: bool = typer.Option(True, help="write the result file under bench/results/"),
) -> None:
    """Crypto (sign/verify per core, batch on all cores), storage (commit, state commitment,
    proofs) and ledger (check, execute, build and commit blocks of signed kv transactions)."""
    from pilotchain.bench import results as bench_results

    wanted = {part.strip() for part in only.split(",") if part.strip()}
    unknown = wanted - {"crypto", "storage", "ledger", "contracts"}
    if unknown:
        raise typer.BadParameter(f"unknown part(s): {', '.join(sorted(unknown))}; use crypto, storage, ledger, contracts")
    console = Console(stderr=json_output)
    document: dict[str, Any] = {}
    with console.status("benchmarking…") as status:
        if "crypto" in wanted:
            from pilotchain.bench import crypto

            status.update("crypto: sign, verify, batch verify, hash, AEAD for intl and gm…")
            document["crypto"] = crypto.run(seconds_per_case=seconds)
        if "storage" in wanted:
            from pilotchain.bench import storage

            status.update("storage: block commits, state commitment, proofs…")
            document["storage"] = storage.run()
        if "ledger" in wanted:
            from pilotchain.bench import ledger

            document["ledger"] = {}
            for suite in ("intl", "gm"):
                status.update(f"ledger ({suite}): check, execute, build and commit blocks…")
                document["ledger"][suite] = ledger.run(suite, blocks=blocks)
        if "contracts" in wanted:
            from pilotchain.contracts import bench as contracts_bench

            status.update("contracts: sandboxed Python transfer calls and metered loops…")
            document["contracts"] = contracts_bench.run()
    if record:
        path = bench_results.record("micro", document)
        console.print(f"recorded {path}")
    if json_output:
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
        return
    for section, results in document.items():
        console.print(_table(section, results))

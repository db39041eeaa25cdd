"""`pilotchain demo`: what `make demo` runs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import typer
from rich.console import Console


def demo(
    crypto: str = typer.Option("intl", "--crypto", help="crypto suite: intl (Ed25519/SHA-256) or gm (SM2/SM3/SM4)"),
    directory: Path | None = typer.Option(None, "--dir", help="folder for the demo network (default: a fresh temporary one)"),
    transactions: int = typer.Option(2000, "--txs", min=1, max=1_000_000, help="transactions in the workload"),
    base_port: int = typer.Option(26600, help="node i uses base+2i (P2P) and base+2i+1 (gateway)"),
    exit_after: bool = typer.Option(False, "--exit", help="stop the network after the summary"),
    local: bool = typer.Option(False, "--local", help="no processes: a one-process ledger walkthrough with proofs"),
    scenario: str | None = typer.Option(None, "--scenario",
                                        help="run only this application story after the network is up (e.g. "
                                             "exchange); by default every installed one runs"),
) -> None:
    """A consortium of the pilot's organisations: 4 validators as separate processes, signed
    transactions from every organisation, a summary (throughput, latency, agreement) and the
    gateway URLs. The network stays up until Ctrl-C unless --exit."""
    if crypto not in ("intl", "gm"):
        raise typer.BadParameter("--crypto takes intl or gm")
    console = Console()
    if directory is not None and directory.exists() and any(directory.iterdir()):
        console.print(f"[red]{directory} is not empty[/]; choose a new --dir or delete it first")
        raise typer.Exit(2)
    temporary = directory is None
    folder = Path(tempfile.mkdtemp(prefix="pilotchain-demo-")) if directory is None else directory
    try:
        if local:
            from pilotchain.demo import ledger_walkthrough

            summary = ledger_walkthrough.run(folder, crypto, console=console)
            ledger_walkthrough.print_summary(summary, console)
            console.print("[green]all proofs verified[/]")
            return
        from pilotchain.demo import network_demo

        try:
            result = network_demo.run_demo(folder, suite=crypto, transactions=transactions, base_port=base_port,
                                           console=console)
            network_demo.print_result(result, console)
            ok = result.heights_agree and result.state_roots_agree and result.committed > 0
            if ok:
                problem = network_demo.run_services(folder, console, scenario)
                if problem is not None:
                    console.print(f"[red]error:[/] {problem}")
                    ok = False
                else:
                    network_demo.print_where_to_look(folder, console)
            if not exit_after and ok:
                network_demo.keep_running(folder, console)
        finally:
            network_demo.stop_all(folder, console)
        if not ok:
            console.print(f"[red]the demo did not finish cleanly[/]; logs are in {folder}/nodes/*/node.log "
                          f"and {folder}/vaults/*/vault.log")
            temporary = False
            raise typer.Exit(1)
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)

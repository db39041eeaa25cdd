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
    blocks: int = typer.Option(5, min=1, max=1000, help="blocks to commit"),
    exit_after: bool = typer.Option(False, "--exit", help="stop after the summary"),
) -> None:
    """A consortium of pilot organisations, signed transactions from several of them, blocks
    committed and every proof checked."""
    from pilotchain.demo import ledger_walkthrough

    if crypto not in ("intl", "gm"):
        raise typer.BadParameter("--crypto takes intl or gm")
    console = Console()
    cleanup = directory is None
    folder = Path(tempfile.mkdtemp(prefix="pilotchain-demo-")) if directory is None else directory
    if directory is not None and directory.exists() and any(directory.iterdir()):
        console.print(f"[red]{directory} is not empty[/]; choose a new --dir or delete it first")
        raise typer.Exit(2)
    try:
        summary = ledger_walkthrough.run(folder, crypto, blocks=blocks, console=console)
        ledger_walkthrough.print_summary(summary, console)
        console.print("[green]all proofs verified[/]")
    finally:
        if cleanup:
            shutil.rmtree(folder, ignore_errors=True)
    del exit_after  # the walkthrough always exits; the network demo keeps nodes up without --exit

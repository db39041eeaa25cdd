"""`pilotchain node ...`: run one node in the foreground."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Run a node.", no_args_is_help=True)


@app.command()
def start(home: Path = typer.Option(..., "--home", help="the node's folder (made by `pilotchain network init`)")) -> None:
    """Run the node in the foreground: JSON-lines logs on stdout, SIGTERM stops it cleanly,
    a restart resumes from disk."""
    from pilotchain.node.config import NodeConfigError
    from pilotchain.node.daemon import run_node

    try:
        code = run_node(home)
    except NodeConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)

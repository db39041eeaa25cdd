"""`pilotchain node ...`: run one node in the foreground."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Run a node.", no_args_is_help=True)


@app.command()
def start(home: Path = typer.Option(..., "--home", help="the node's folder (made by `pilotchain network init`)")) -> None:
    """Run the node in the foreground: JSON-lines logs on stdout, SIGTERM stops it cleanly,
    a restart resumes from disk."""
    import faulthandler

    # a fatal signal inside a C extension (e.g. an allocation failure at the memory limit) leaves
    # every thread's Python stack in the log instead of a silent exit
    faulthandler.enable()
    from pilotchain.node.config import NodeConfigError
    from pilotchain.node.daemon import run_node
    from pilotchain.storage.errors import StorageCorrupted

    try:
        code = run_node(home)
    except NodeConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except StorageCorrupted as exc:
        typer.echo(f"error: this node's ledger store is corrupted and the node will not serve from it: {exc}. "
                   f"Keep it for inspection and fetch the chain again from the other validators: "
                   f"`pilotchain node resync --home {home}`, then start the node.", err=True)
        raise typer.Exit(4) from exc
    raise typer.Exit(code)


@app.command()
def resync(home: Path = typer.Option(..., "--home", help="the (stopped) node's folder"),
           json_output: bool = typer.Option(False, "--json", help="print what was done as JSON")) -> None:
    """Set a corrupted (or suspect) ledger store aside so the next start fetches every block again
    from the other validators and re-executes it. The consensus WAL — what this validator has
    signed — stays, so it never signs twice at a height it already voted on."""
    import json
    import time

    from pilotchain.network.processes import node_pid
    from pilotchain.node.config import NodeConfigError, load_node_config

    try:
        config = load_node_config(home)
    except NodeConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if node_pid(home) is not None:
        typer.echo(f"error: the node in {home} is running; stop it first (pilotchain network down, or SIGTERM)",
                   err=True)
        raise typer.Exit(1)
    ledger = home / config.data_dir / "ledger"
    if not ledger.exists():
        typer.echo(f"error: {ledger} does not exist: nothing to set aside (the next start syncs from peers)",
                   err=True)
        raise typer.Exit(1)
    aside = ledger.with_name(f"ledger.set-aside-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    ledger.rename(aside)
    document = {"home": str(home), "set_aside": str(aside), "kept": str(home / config.data_dir / "consensus.wal")}
    typer.echo(json.dumps(document) if json_output else
               f"the ledger store is now {aside} (kept for inspection; delete it when done); the next start "
               f"fetches the chain from the other validators")

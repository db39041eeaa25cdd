"""The `pilotchain` command line: one Typer app, one sub-app per area (each in its own module)."""

from __future__ import annotations

import typer

from pilotchain import __version__
from pilotchain.cli.crypto_cmd import app as crypto_app

app = typer.Typer(
    help="pilotchain: a permissioned consortium blockchain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(crypto_app, name="crypto")


@app.command()
def version() -> None:
    """Print the pilotchain version."""
    typer.echo(__version__)

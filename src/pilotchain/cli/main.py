"""The `pilotchain` command line: one Typer app, one sub-app per area (each in its own module)."""

from __future__ import annotations

import typer

from pilotchain import __version__
from pilotchain.cli.bench_cmd import app as bench_app
from pilotchain.cli.ceremony_cmd import app as ceremony_app
from pilotchain.cli.client_cmd import block_app, status, tx_app
from pilotchain.cli.contract_cmd import app as contract_app
from pilotchain.cli.crypto_cmd import app as crypto_app
from pilotchain.cli.demo_cmd import demo
from pilotchain.cli.evidence_cmd import app as chain_app
from pilotchain.cli.gov_cmd import app as gov_app
from pilotchain.cli.identity_cmd import app as identity_app
from pilotchain.cli.network_cmd import app as network_app
from pilotchain.cli.node_cmd import app as node_app
from pilotchain.cli.sim_cmd import sim

app = typer.Typer(
    help="pilotchain: a permissioned consortium blockchain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(crypto_app, name="crypto")
app.add_typer(identity_app, name="identity")
app.add_typer(bench_app, name="bench")
app.command(name="demo")(demo)
app.add_typer(network_app, name="network")
app.add_typer(node_app, name="node")
app.command(name="sim")(sim)
app.add_typer(tx_app, name="tx")
app.add_typer(block_app, name="block")
app.command(name="status")(status)
app.add_typer(contract_app, name="contract")
app.add_typer(gov_app, name="gov")
app.add_typer(ceremony_app, name="ceremony")
app.add_typer(chain_app, name="chain")


def _mount_applications() -> None:
    """Command groups of the installed applications (entry-point group ``pilotchain.commands``):
    the platform finds them at run time and never imports an application by name. One that fails
    to load is reported and left out; the platform's own commands keep working."""
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group="pilotchain.commands"), key=lambda e: e.name):
        try:
            group = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken application must not break the CLI
            typer.echo(f"warning: the {entry.name!r} commands did not load ({exc})", err=True)
            continue
        app.add_typer(group, name=entry.name)


_mount_applications()


@app.command()
def version() -> None:
    """Print the pilotchain version."""
    typer.echo(__version__)

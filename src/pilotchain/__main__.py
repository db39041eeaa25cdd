"""`python -m pilotchain` is the `pilotchain` command."""

from pilotchain.cli.main import app

app(prog_name="pilotchain")

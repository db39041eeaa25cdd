"""`python -m pilotchain` is the `pilotchain` command."""

from pilotchain.cli.main import app

if __name__ == "__main__":
    app(prog_name="pilotchain")

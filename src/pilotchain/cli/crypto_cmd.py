"""`pilotchain crypto ...`: keys, signatures and digests for integrators."""

from __future__ import annotations

import typer

app = typer.Typer(help="Keys, signatures and digests (intl: Ed25519/SHA-256, gm: SM2/SM3).", no_args_is_help=True)

"""S5 beside a network folder: activating ``greencert`` through governance, the parties from the
folder's identities and vaults, the retirement statement (evidence bundle + QR code) and
``pilotchain demo --scenario green-power``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from pilotchain.apps.energy.client import GreenClient
from pilotchain.apps.energy.story import ROLES, GreenParty, GreenStory, assign_roles, run_story
from pilotchain.apps.energy.verify import RetirementTrace, qr_text, verify_statement
from pilotchain.apps.exchange.client import VaultClient
from pilotchain.apps.exchange.network import deploy_contract
from pilotchain.apps.exchange.server import load_config
from pilotchain.network.consortium import load_genesis, load_manifest
from pilotchain.sdk import Client, Identity
from pilotchain.sdk._network import load_network

__all__ = ["CONTRACT_SOURCE", "activate", "demo", "open_parties", "roles_of", "story", "write_statement"]

CONTRACT_SOURCE = Path(__file__).with_name("contracts") / "greencert.py"
ROLE_NAMES = {"exchange": "power exchange", "wind_farm": "wind farm", "meter_operator": "meter operator",
              "manufacturer": "manufacturer"}


def roles_of(directory: Path) -> dict[str, str]:
    return assign_roles([o["org"] for o in load_manifest(directory)["organizations"]])


def activate(directory: Path, console: Any) -> bool:
    return deploy_contract(directory, console, name="greencert", source=CONTRACT_SOURCE,
                           init={"args": {"exchange_orgs": [roles_of(directory)["exchange"]],
                                          "kwh_per_certificate": 1000, "validity_days": 730}})


@contextlib.contextmanager
def open_parties(directory: Path) -> Any:
    entries = {o["org"]: o for o in load_manifest(directory)["organizations"]}
    pin = load_network(directory)
    with contextlib.ExitStack() as stack:
        parties = {}
        for role, org in roles_of(directory).items():
            who = Identity.load(directory / entries[org]["client_identity"])
            client = stack.enter_context(Client(network=pin, identity=who, timeout=30.0))
            vault = stack.enter_context(VaultClient(load_config(directory / "vaults" / org).public_url, who))
            parties[role] = GreenParty(org, GreenClient(client, who), vault)
        yield parties


def write_statement(green: GreenClient, retirement_id: str, out: Path, genesis: Any) -> tuple[Path, Path, str]:
    """A retirement statement: ``<id>.evidence`` (the bundle), ``<id>.png`` (its QR code) and
    ``<id>.json`` (the retirements of the beneficiary, for people); returns the paths and QR text."""
    from pilotchain.apps.energy.qr import write_qr

    bundle = green.export_statement(retirement_id, genesis=genesis)
    out.mkdir(parents=True, exist_ok=True)
    bundle_path, png = out / f"{retirement_id}.evidence", out / f"{retirement_id}.png"
    bundle_path.write_bytes(bundle)
    text = qr_text(retirement_id, bundle)
    write_qr(text, png)
    record = green.retirement(retirement_id) or {}
    statement = {"retirement": retirement_id, "qr": text, "evidence": bundle_path.name,
                 "retired": [r for r in green.retirements_of(str(record.get("beneficiary", ""))) if r is not None]}
    (out / f"{retirement_id}.json").write_text(json.dumps(statement, indent=2, default=_plain))
    return bundle_path, png, text


def _plain(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else str(value)


def story(directory: Path, console: Any, *, out: Path | None = None) -> tuple[GreenStory, RetirementTrace] | None:
    from rich.table import Table

    from pilotchain.apps.energy.cli import trace_table

    console.rule("[bold]S5 green power[/] — certificates never beyond metered energy, claimed once, traced offline")
    if not activate(directory, console):
        return None
    roles = roles_of(directory)
    cast = Table(title="who plays whom", title_justify="left")
    cast.add_column("role")
    cast.add_column("organisation")
    for role in ROLES:
        cast.add_row(ROLE_NAMES[role], roles[role])
    console.print(cast)
    steps = Table(title="what each party does and sees", title_justify="left")
    for column in ("who", "does", "sees"):
        steps.add_column(column, overflow="fold")
    with open_parties(directory) as parties:
        result = run_story(parties, note=steps.add_row)
        console.print(steps)
        genesis = load_genesis(directory / "genesis.json")
        bundle_path, png, text = write_statement(parties["manufacturer"].green, result.retirement,
                                                 out or directory / "statements", genesis)
    traced = verify_statement(text, bundle_path.read_bytes(), genesis)
    console.print(trace_table(traced))
    console.print(f"the statement: {bundle_path} and its QR code {png}; an auditor checks it with no network: "
                  f"[bold]pilotchain green verify {bundle_path} --qr '{text}' --genesis {directory}/genesis.json[/]")
    return result, traced


def demo(directory: Path, console: Any) -> None:
    """`pilotchain demo --scenario green-power`."""
    story(directory, console)

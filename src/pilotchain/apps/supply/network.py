"""S4 beside a network folder: activating ``receivables`` and ``trace`` through governance, the parties
of the story from the folder's identities and vaults, and ``pilotchain demo --scenario supply-chain``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from pilotchain.apps.exchange.client import VaultClient
from pilotchain.apps.exchange.network import deploy_contract
from pilotchain.apps.exchange.server import load_config
from pilotchain.apps.supply.client import SupplyClient, TraceClient
from pilotchain.apps.supply.story import ROLES, Party, StoryResult, assign_roles, run_story
from pilotchain.network.consortium import load_manifest
from pilotchain.sdk import Client, Identity
from pilotchain.sdk._network import load_network

__all__ = ["RECEIVABLES_SOURCE", "TRACE_SOURCE", "activate", "demo", "open_parties", "roles_of", "story"]

CONTRACTS = Path(__file__).with_name("contracts")
RECEIVABLES_SOURCE = CONTRACTS / "receivables.py"
TRACE_SOURCE = CONTRACTS / "trace.py"
ROLE_NAMES = {"carmaker": "car maker", "tier1": "tier-1 supplier", "tier2": "tier-2 supplier", "bank_a": "bank A",
              "bank_b": "bank B", "regulator": "regulator"}


def roles_of(directory: Path) -> dict[str, str]:
    return assign_roles([o["org"] for o in load_manifest(directory)["organizations"]])


def activate(directory: Path, console: Any) -> bool:
    roles = roles_of(directory)
    init = {"args": {"regulator_orgs": [roles["regulator"]], "bank_orgs": [roles["bank_a"], roles["bank_b"]]}}
    return (deploy_contract(directory, console, name="receivables", source=RECEIVABLES_SOURCE, init=init)
            and deploy_contract(directory, console, name="trace", source=TRACE_SOURCE))


@contextlib.contextmanager
def open_parties(directory: Path) -> Any:
    """Role → Party for the folder's organisations (client identities, gateways, vaults)."""
    manifest = load_manifest(directory)
    entries = {o["org"]: o for o in manifest["organizations"]}
    pin = load_network(directory)
    with contextlib.ExitStack() as stack:
        parties = {}
        for role, org in roles_of(directory).items():
            who = Identity.load(directory / entries[org]["client_identity"])
            client = stack.enter_context(Client(network=pin, identity=who, timeout=30.0))
            vault = stack.enter_context(VaultClient(load_config(directory / "vaults" / org).public_url, who))
            parties[role] = Party(org, SupplyClient(client, who), TraceClient(client, who), vault)
        yield parties


def story(directory: Path, console: Any) -> StoryResult | None:
    from rich.table import Table

    from pilotchain.apps.supply.cli import recall_table, supply_table

    console.rule("[bold]S4 supply chain[/] — receivables financed once, parts traced as GS1 EPCIS 2.0 events")
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
        console.print(recall_table(result.recall))
        console.print(supply_table(parties["carmaker"].supply.supply(), "receivables"))
    console.print(f"try: [bold]pilotchain supply trace {result.recall.batch} --network {directory}[/]  "
                  f"[bold]pilotchain supply show {result.receivable} --network {directory}[/]")
    return result


def demo(directory: Path, console: Any) -> None:
    """`pilotchain demo --scenario supply-chain`."""
    story(directory, console)

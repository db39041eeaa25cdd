"""S4 in process: a governed development chain with dataex, receivables and trace deployed, and a
vault per organisation (tests/apps/exchange/helpers.py); the story's roles played by the pilot's
default organisations."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pilotchain.apps.supply.client import SupplyClient, TraceClient
from pilotchain.apps.supply.story import Party, assign_roles
from tests.apps.exchange.helpers import Exchange, exchange
from tests.contracts.helpers import deploy, governed_chain

CONTRACTS = Path(__file__).resolve().parents[3] / "src" / "pilotchain" / "apps" / "supply" / "contracts"


@contextlib.contextmanager
def supply_world(tmp: Path) -> Iterator[tuple[Exchange, dict[str, Party]]]:
    with exchange(tmp, orgs=7) as world, contextlib.ExitStack() as stack:
        roles = assign_roles(list(world.vaults))
        deploy(world.chain, "receivables", (CONTRACTS / "receivables.py").read_text(),
               init={"args": {"regulator_orgs": [roles["regulator"]], "bank_orgs": [roles["bank_a"], roles["bank_b"]]}})
        deploy(world.chain, "trace", (CONTRACTS / "trace.py").read_text())
        parties = {}
        for role, org in roles.items():
            client, who = world.as_org(org), world.chain.identity(org)
            vault = stack.enter_context(world.client(org))
            parties[role] = Party(org, SupplyClient(client, who), TraceClient(client, who), vault)
        yield world, parties


EXCHANGE_SOURCE = (Path(__file__).resolve().parents[3] / "src" / "pilotchain" / "apps" / "exchange" / "contracts"
                   / "dataex.py").read_text()


def register_document(chain: Any, org: str, payload_id: str, *, policy: str = "receivables") -> None:
    """A payload registered in dataex as ``org``'s vault would (a made-up commitment: no vault needed)."""
    result = chain.client().invoke(chain.identity(org), "dataex", "register", {
        "payload_id": payload_id, "commitment": hashlib.sha256(payload_id.encode()).digest(), "size": 10,
        "media_type": "application/json", "classification": "important",
        "retention_until_ms": int(time.time() * 1000) + 10**10, "policy": policy}, check=False)
    assert result.ok, result.receipt


def receivables_chain(orgs: int = 7, **options: Any) -> Any:
    """dataex and receivables on a governed development chain (no vaults); its roles."""

    @contextlib.contextmanager
    def opened() -> Iterator[tuple[Any, dict[str, str]]]:
        with governed_chain(orgs=orgs, **options) as chain:
            roles = assign_roles(list(chain.consortium.clients))
            deploy(chain, "dataex", EXCHANGE_SOURCE)
            deploy(chain, "receivables", (CONTRACTS / "receivables.py").read_text(),
                   init={"args": {"regulator_orgs": [roles["regulator"]],
                                  "bank_orgs": [roles["bank_a"], roles["bank_b"]]}})
            yield chain, roles

    return opened()

"""The vault's extension point (pilotchain.vault_extensions): an application mounts routes behind the
vault's signed-request check and hands background duties to the vault's maintenance thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pilotchain.apps.exchange import service
from pilotchain.apps.exchange.server import Maintenance, VaultConfig
from pilotchain.apps.exchange.vault import Vault
from pilotchain.sdk import SignedRequests
from tests.apps.exchange.helpers import endpoint, exchange


def test_an_extension_mounts_routes_and_maintenance_duties(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    def extend(app: FastAPI, vault: Vault) -> None:
        @app.get("/v1/example/whoami")
        async def whoami() -> dict[str, Any]:
            return {"vault": vault.org}

        app.state.maintenance_steps.append(lambda: ran.append(vault.org))

    def broken() -> None:
        raise RuntimeError("an extension's bug")

    monkeypatch.setattr(service, "vault_extensions", lambda: {"example": extend})
    with exchange(tmp_path, orgs=2) as world:
        a, b = list(world.vaults)
        transport = world.transport(endpoint(a))
        with httpx.Client(base_url=endpoint(a), transport=transport, auth=SignedRequests(world.chain.identity(b))) as signed:
            assert signed.get("/v1/example/whoami").json() == {"vault": a}
        with httpx.Client(base_url=endpoint(a), transport=transport) as anonymous:
            assert anonymous.get("/v1/example/whoami").status_code == 401  # behind the same check
        steps = world.apps[a].state.maintenance_steps
        assert len(steps) == 1
        config = VaultConfig(home=tmp_path, org=a, suite="intl", genesis_hash="", nodes=(), identity=tmp_path,
                             admin_identity=None, listen="127.0.0.1:1", public_url=endpoint(a))
        maintenance = Maintenance(world.vaults[a], config, [broken, *steps])
        maintenance.registered = True
        maintenance.step()  # the broken step is logged, the vault's duties and the next step still run
        assert ran == [a]



def test_the_installed_catalogue_extension_is_found() -> None:
    found = service.vault_extensions()
    assert "catalogue" in found and callable(found["catalogue"])

"""An in-process exchange: a governed development chain with ``dataex`` deployed, and one vault
per organisation served in-process (vault-to-vault requests go through in-process transports)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pilotchain.apps.exchange.chainview import ChainView, HeaderCertifier
from pilotchain.apps.exchange.client import VaultClient
from pilotchain.apps.exchange.receipts import ReceiptBook
from pilotchain.apps.exchange.service import create_vault_app
from pilotchain.apps.exchange.store import VaultStore
from pilotchain.apps.exchange.vault import Vault
from pilotchain.sdk import Client, Identity
from pilotchain.testing import InProcessTransport, LocalChain
from tests.contracts.helpers import deploy, governed_chain

CONTRACT_SOURCE = (Path(__file__).resolve().parents[3] / "src" / "pilotchain" / "apps" / "exchange" / "contracts"
                   / "dataex.py").read_text()


def endpoint(org: str) -> str:
    return f"http://vault-{org}.test"


@dataclass
class Exchange:
    chain: LocalChain
    vaults: dict[str, Vault] = field(default_factory=dict)
    apps: dict[str, Any] = field(default_factory=dict)

    def transport(self, url: str) -> httpx.BaseTransport | None:
        for org, app in self.apps.items():
            if url.rstrip("/") == endpoint(org):
                return InProcessTransport(app, self.chain._loop_thread)
        return None

    def client(self, org: str, identity: Identity | None = None) -> VaultClient:
        """A member of ``org`` (its client identity unless told) talking to ``org``'s vault."""
        who = identity or self.chain.identity(org)
        return VaultClient(endpoint(org), who, transport=InProcessTransport(self.apps[org], self.chain._loop_thread))

    def as_org(self, org: str) -> Client:
        return self.chain.client(identity=self.chain.identity(org))


def open_vault(chain: LocalChain, org: str, home: Path, exchange: Exchange) -> Vault:
    identity = chain.identity(org)
    certifier = HeaderCertifier(chain.genesis, require_certificates=False)  # a dev node certifies nothing
    client = chain.client(identity=identity, verify_header=certifier)
    view = ChainView(client, chain.genesis, certifier=certifier)
    store = VaultStore.open(home / "store", chain.genesis.suite)
    book = ReceiptBook(home / "receipts", view.suite)
    return Vault(org=org, store=store, book=book, chain=view, identity=identity,
                 encryption_key=identity.suite.generate_private_key(), client=client,
                 peer_transport=exchange.transport)


@contextlib.contextmanager
def exchange(tmp: Path, *, orgs: int = 3, init: Any = None) -> Iterator[Exchange]:
    with governed_chain(orgs=orgs) as chain:
        deploy(chain, "dataex", CONTRACT_SOURCE, init=init)
        world = Exchange(chain)
        try:
            for org in chain.consortium.clients:
                vault = open_vault(chain, org, tmp / org, world)
                world.vaults[org] = vault
                world.apps[org] = create_vault_app(vault)
                vault.register_org(chain.identity(org, admin=True), endpoint(org))
            yield world
        finally:
            for vault in world.vaults.values():
                vault.store.close()
                vault.book.close()

"""An in-process directory chain for the catalogue's tests: a governed development chain of the S2
organisations (the Big-Data Bureau, Market Regulation, the Tax Bureau, Social Security) with
``dataex`` and ``catalogue`` deployed through governance, and — for the vault tests — one vault per
organisation served in-process, the catalogue's routes mounted through the vault extension."""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pilotchain.apps.catalogue.client import CatalogueClient
from pilotchain.apps.exchange.chainview import ChainView, HeaderCertifier
from pilotchain.apps.exchange.receipts import ReceiptBook
from pilotchain.apps.exchange.service import create_vault_app
from pilotchain.apps.exchange.store import VaultStore
from pilotchain.apps.exchange.vault import Vault
from pilotchain.contracts.membership import GovernedAuthenticator
from pilotchain.contracts.resolver import ChainContracts
from pilotchain.network.consortium import init_network, load_genesis, parse_orgs
from pilotchain.node.local import LocalNode
from pilotchain.sdk import Client, Identity
from pilotchain.testing import Consortium, InProcessTransport, LocalChain, _LoopThread
from tests.contracts.helpers import deploy

SOURCES = Path(__file__).resolve().parents[3] / "src" / "pilotchain" / "apps"
DATAEX_SOURCE = (SOURCES / "exchange" / "contracts" / "dataex.py").read_text()
CATALOGUE_SOURCE = (SOURCES / "catalogue" / "contracts" / "catalogue.py").read_text()

BUREAU, MARKET, TAX, SOCIAL = "bigdata-bureau", "market-regulation", "tax-bureau", "social-security"
ORGS = (f"{BUREAU}=Municipal Big-Data Bureau,{MARKET}=Market Regulation Administration,{TAX}=Tax Bureau,"
        f"{SOCIAL}=Social Security Bureau")
DAY_MS = 86_400_000

ENTERPRISE_FIELDS = [
    {"name": "credit_code", "type": "string", "description": "unified social credit code"},
    {"name": "name", "type": "string", "description": "registered name"},
    {"name": "legal_representative", "type": "string"},
    {"name": "registered_capital", "type": "integer", "description": "CNY"},
    {"name": "founded", "type": "date"},
    {"name": "status", "type": "string", "description": "in business, revoked, cancelled"},
    {"name": "legal_rep_id_number", "type": "string", "sharing": "not_shared"},
]


def enterprises(count: int) -> list[dict[str, Any]]:
    return [{"credit_code": f"91310000MA1K{index:06d}", "name": f"Huangpu Trading Co. {index}",
             "legal_representative": f"Wang {index}", "registered_capital": 500_000 * (index + 1),
             "founded": f"20{10 + index % 10}-0{1 + index % 9}-1{index % 9}",
             "status": "revoked" if index % 7 == 3 else "in business",
             "legal_rep_id_number": f"310101198{index % 10}0101{index:04d}"} for index in range(count)]


def now_ms() -> int:
    return int(time.time() * 1000)


def request_id() -> str:
    return secrets.token_hex(16)


class Clock:
    """Wall-clock time plus an offset the test moves forward (blocks and vaults read the same)."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return now_ms() + self.offset_ms

    def advance(self, ms: int) -> None:
        self.offset_ms += ms


@contextlib.contextmanager
def directory_chain(*, suite: str = "intl", orgs: str = ORGS, clock: Clock | None = None) -> Iterator[LocalChain]:
    """A governed LocalNode chain of ``orgs`` with dataex and catalogue active."""
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pilotchain-catalogue-")))
        manifest = init_network(root / "network", suite_name=suite, orgs=parse_orgs(orgs), validators=1, now_ms=now_ms())
        folder = root / "network"
        consortium = Consortium(
            directory=folder, genesis=load_genesis(folder / "genesis.json"),
            clients={o["org"]: Identity.load(folder / o["client_identity"]) for o in manifest["organizations"]},
            admins={o["org"]: Identity.load(folder / o["admin_identity"]) for o in manifest["organizations"]},
            validator=manifest["nodes"][0]["name"])
        loop_thread = _LoopThread()
        stack.callback(loop_thread.stop)

        async def open_node() -> LocalNode:
            authenticator = GovernedAuthenticator(consortium.genesis)
            node = LocalNode.open(root / "ledger", consortium.genesis, authenticator=authenticator,
                                  registry=ChainContracts(),  # type: ignore[arg-type]
                                  name=consortium.validator, org=next(iter(consortium.clients)), block_interval_ms=0,
                                  clock_ms=clock or now_ms)
            authenticator.bind(node.ledger.store)
            await node.start()
            return node

        chain = LocalChain(consortium, loop_thread.run(open_node()), loop_thread)
        stack.callback(chain.close)
        deploy(chain, "dataex", DATAEX_SOURCE)
        deploy(chain, "catalogue", CATALOGUE_SOURCE, init={"bureau_org": BUREAU})
        yield chain


def endpoint(org: str) -> str:
    return f"http://vault-{org}.test"


@dataclass
class Directory:
    """The directory chain with a vault per organisation, served in-process."""

    chain: LocalChain
    clock: Clock
    vaults: dict[str, Vault] = field(default_factory=dict)
    apps: dict[str, Any] = field(default_factory=dict)

    def transport(self, url: str) -> httpx.BaseTransport | None:
        for org, app in self.apps.items():
            if url.rstrip("/") == endpoint(org):
                return InProcessTransport(app, self.chain._loop_thread)
        return None

    def chain_client(self, org: str, *, admin: bool = False) -> Client:
        return self.chain.client(identity=self.chain.identity(org, admin=admin))

    def catalogue(self, org: str, *, admin: bool = False) -> CatalogueClient:
        """A member of ``org`` using the catalogue through its chain client and its own vault."""
        identity = self.chain.identity(org, admin=admin)
        return CatalogueClient(self.chain.client(identity=identity), identity, vault_url=endpoint(org),
                               vault_transport=InProcessTransport(self.apps[org], self.chain._loop_thread))

    def advance(self, ms: int) -> None:
        """Move time forward and commit a block at the new time (so certified state is fresh)."""
        self.clock.advance(ms)
        identity = self.chain.identity(BUREAU)
        self.chain.client(identity=identity).invoke(identity, "kv", "put", {"key": "tick", "value": self.clock()})

    def maintain(self, *orgs: str) -> None:
        """What each vault's maintenance thread does, once: anchor receipts, send what is queued."""
        for org in orgs or tuple(self.vaults):
            vault = self.vaults[org]
            for step in self.apps[org].state.maintenance_steps:
                step()
            while vault.anchor_once() is not None:
                pass
            vault.flush_outbox()


def _open_vault(chain: LocalChain, org: str, home: Path, world: Directory) -> Vault:
    identity = chain.identity(org)
    certifier = HeaderCertifier(chain.genesis, require_certificates=False)  # a dev node certifies nothing
    client = chain.client(identity=identity, verify_header=certifier)
    view = ChainView(client, chain.genesis, certifier=certifier, clock_ms=world.clock)
    store = VaultStore.open(home / "store", chain.genesis.suite)
    book = ReceiptBook(home / "receipts", view.suite)
    return Vault(org=org, store=store, book=book, chain=view, identity=identity,
                 encryption_key=identity.suite.generate_private_key(), client=client, peer_transport=world.transport,
                 clock_ms=world.clock)


@contextlib.contextmanager
def directory(tmp: Path, *, suite: str = "intl") -> Iterator[Directory]:
    clock = Clock()
    with directory_chain(suite=suite, clock=clock) as chain:
        world = Directory(chain, clock)
        try:
            for org in chain.consortium.clients:
                vault = _open_vault(chain, org, tmp / org, world)
                world.vaults[org] = vault
                world.apps[org] = create_vault_app(vault)
                vault.register_org(chain.identity(org, admin=True), endpoint(org))
            yield world
        finally:
            for app in world.apps.values():
                for close in getattr(app.state, "closers", []):
                    close()
            for vault in world.vaults.values():
                vault.store.close()
                vault.book.close()

"""An in-process currency network: the central bank and two authorised operators on a governed
development chain with ``currency`` activated through governance; two officers of the central bank
(maker and checker); wallets whose keys the tests hold, as holders would."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilotchain.apps.currency.client import CurrencyClient, HolderKey
from pilotchain.apps.currency.network import init_currency_network, issue_identity
from pilotchain.contracts.membership import GovernedAuthenticator
from pilotchain.contracts.resolver import ChainContracts
from pilotchain.network.consortium import load_genesis, parse_orgs
from pilotchain.node.local import LocalNode
from pilotchain.sdk import Identity, TxResult, build_transaction
from pilotchain.testing import Consortium, LocalChain, _LoopThread
from tests.contracts.helpers import deploy

SOURCE = (Path(__file__).resolve().parents[3] / "src" / "pilotchain" / "apps" / "currency" / "contracts"
          / "currency.py").read_text()
CB, BANK_A, BANK_B = "central-bank", "bank-a", "bank-b"
CNY = 100
QUOTA = 10_000_000 * CNY


@dataclass
class World:
    chain: LocalChain
    officers: list[Identity]
    clock: Callable[[], int] | None = None
    keys: dict[str, HolderKey] = field(default_factory=dict)

    @property
    def suite(self) -> str:
        return self.chain.genesis.suite

    def as_identity(self, identity: Identity) -> CurrencyClient:
        return CurrencyClient(self.chain.client(identity=identity), identity, clock_ms=self.clock)

    def officer(self, index: int) -> CurrencyClient:
        return self.as_identity(self.officers[index])

    def operator(self, org: str) -> CurrencyClient:
        return self.as_identity(self.chain.identity(org))

    def passed(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        """Officer 0 proposes, officer 1 approves."""
        proposed = self.officer(0).propose(action, args)
        return self.officer(1).approve(proposed["id"])

    def issue(self, org: str, amount: int) -> None:
        self.passed("issue", {"operator": org, "amount": amount})

    def open(self, org: str, wallet: str, *, kind: str = "personal", tier: int = 4, linked: str = "",
             balance: int = 0, kyc: str = "") -> HolderKey:
        key = HolderKey.generate(self.suite)
        self.keys[wallet] = key
        if tier <= 2 and kind == "personal" and not linked:
            linked = f"acct-{wallet}"
        self.operator(org).open_wallet(wallet, key, kind=kind, tier=tier, linked=linked, kyc=kyc)
        if balance:
            self.operator(org).load(wallet, balance)
        return key

    def pay(self, payer: str, payee: str, amount: int, **options: Any) -> dict[str, Any]:
        org = self.operator_of(payer)
        return self.operator(org).pay(self.keys[payer], payer, payee, amount, **options)

    def operator_of(self, wallet: str) -> str:
        record = self.operator(BANK_A).wallet(wallet)
        assert record is not None, wallet
        return str(record["operator"])

    def wallet(self, wallet: str) -> dict[str, Any]:
        record = self.operator(BANK_A).wallet(wallet)
        assert record is not None, wallet
        return record

    def in_one_block(self, calls: list[tuple[str, str, dict[str, Any]]]) -> list[TxResult]:
        """Submit ``(operator org, method, args)`` calls of ``currency`` and commit them all in one
        block, in this order; their results."""
        node = self.chain.node
        self.chain.call(node.stop())  # no block on each admission: they wait in the mempool
        try:
            ids = []
            for org, method, args in calls:
                identity = self.chain.identity(org)
                client = self.chain.client(identity=identity)
                tx = build_transaction(identity, self.chain.chain_id, "currency", method, args,
                                       **({"now_ms": self.clock()} if self.clock is not None else {}))
                ids.append(client.submit(tx))
            height = self.chain.produce_block()
        finally:
            self.chain.call(node.start())
        reader = self.chain.client()
        results = [reader.wait(tx_id) for tx_id in ids]
        assert height is not None and all(r.height == height for r in results), "all of them in the one block"
        return results

    def supply(self) -> dict[str, Any]:
        return self.operator(BANK_A).supply()


@dataclass
class WithVaults:
    """A currency network with the data exchange: ``dataex`` active and a vault per organisation
    (in process), where operators keep the KYC records that link holders to wallets."""

    world: World
    exchange: Any

    def vault(self, org: str) -> Any:
        return self.exchange.client(org)


@contextlib.contextmanager
def currency_with_vaults(tmp: Path, **options: Any) -> Iterator[WithVaults]:
    from pilotchain.apps.exchange.service import create_vault_app
    from tests.apps.exchange.helpers import CONTRACT_SOURCE as DATAEX
    from tests.apps.exchange.helpers import Exchange, endpoint, open_vault

    config = {"kyc_required": True, **options.pop("config", {})}
    with currency_chain(config=config, extra_contracts={"dataex": (DATAEX, None)}, **options) as world:
        exchange = Exchange(world.chain)
        try:
            for org in world.chain.consortium.clients:
                vault = open_vault(world.chain, org, tmp / org, exchange)
                exchange.vaults[org] = vault
                exchange.apps[org] = create_vault_app(vault)
                vault.register_org(world.chain.identity(org, admin=True), endpoint(org))
            yield WithVaults(world, exchange)
        finally:
            for vault in exchange.vaults.values():
                vault.store.close()
                vault.book.close()


@contextlib.contextmanager
def currency_chain(
    *,
    suite: str = "intl",
    config: dict[str, Any] | None = None,
    clock_ms: Callable[[], int] | None = None,
    operators: tuple[str, ...] = (BANK_A, BANK_B),
    extra_contracts: dict[str, tuple[str, Any]] | None = None,
) -> Iterator[World]:
    """The network, ``currency`` active (``config`` merged into its init settings; KYC records off
    unless ``config`` asks for them), each operator authorised with a quota and full reserves."""
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pilotchain-currency-")))
        # certificates valid from before the chain's (possibly test-controlled) clock starts: a
        # fake clock read a moment before this would otherwise find the CAs not yet valid
        now_ms = min(int(time.time() * 1000), clock_ms() if clock_ms is not None else 2**62) - 60_000
        manifest = init_currency_network(root / "network", suite_name=suite, validators=1, now_ms=now_ms,
                                         operators=parse_orgs(",".join(operators)))
        directory = root / "network"
        consortium = Consortium(
            directory=directory, genesis=load_genesis(directory / "genesis.json"),
            clients={o["org"]: Identity.load(directory / o["client_identity"]) for o in manifest["organizations"]},
            admins={o["org"]: Identity.load(directory / o["admin_identity"]) for o in manifest["organizations"]},
            validator=manifest["nodes"][0]["name"])
        officers = [Identity.load(issue_identity(directory, CB, name, "client", now_ms=now_ms))
                    for name in ("officer-a", "officer-b")]
        loop_thread = _LoopThread()
        stack.callback(loop_thread.stop)

        async def open_node() -> LocalNode:
            authenticator = GovernedAuthenticator(consortium.genesis)
            node = LocalNode.open(root / "ledger", consortium.genesis, authenticator=authenticator,
                                  registry=ChainContracts(),  # type: ignore[arg-type]
                                  name=consortium.validator, org=CB, block_interval_ms=0,
                                  **({"clock_ms": clock_ms} if clock_ms is not None else {}))
            authenticator.bind(node.ledger.store)
            await node.start()
            return node

        chain = LocalChain(consortium, loop_thread.run(open_node()), loop_thread)
        stack.callback(chain.close)
        for name, (source, init) in (extra_contracts or {}).items():
            deploy(chain, name, source, init=init)
        deploy(chain, "currency", SOURCE, init={"args": {"kyc_required": False, **(config or {})}})
        world = World(chain, officers, clock_ms)
        for org in operators:
            world.passed("add_operator", {"operator": org, "quota": QUOTA, "reserve": QUOTA})
        yield world

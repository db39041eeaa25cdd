"""A LocalNode chain with the governed resolver and authenticator (what node/local.py will build
once the integration lines land), and helpers to drive governance from tests."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pilotchain.contracts.membership import GovernedAuthenticator
from pilotchain.contracts.resolver import ChainContracts
from pilotchain.node.local import LocalNode
from pilotchain.sdk import Client, TxResult
from pilotchain.sdk._identity import Identity
from pilotchain.testing import LocalChain, _LoopThread, create_consortium

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "contracts"


@contextlib.contextmanager
def governed_chain(
    *,
    orgs: int = 3,
    auto_produce: bool = True,
    clock_ms: Callable[[], int] | None = None,
    suite: str = "intl",
) -> Iterator[LocalChain]:
    with contextlib.ExitStack() as stack:
        root = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="pilotchain-contracts-"))
        )
        consortium = create_consortium(root / "network", suite=suite, orgs=orgs)
        loop_thread = _LoopThread()
        stack.callback(loop_thread.stop)

        async def open_node() -> LocalNode:
            authenticator = GovernedAuthenticator(consortium.genesis)
            node = LocalNode.open(
                root / "ledger",
                consortium.genesis,
                authenticator=authenticator,
                registry=ChainContracts(),  # type: ignore[arg-type]
                name=consortium.validator,
                org=next(iter(consortium.clients)),
                block_interval_ms=0,
                **({"clock_ms": clock_ms} if clock_ms is not None else {}),
            )
            authenticator.bind(node.ledger.store)
            if auto_produce:
                await node.start()
            return node

        chain = LocalChain(consortium, loop_thread.run(open_node()), loop_thread)
        stack.callback(chain.close)
        yield chain


def code_hash(identity: Identity, code: str) -> bytes:
    return identity.suite.hash(code.encode("utf-8"))


def deploy_payload(
    admin: Identity,
    name: str,
    code: str,
    *,
    version: str = "1",
    init: Any = None,
    permissions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "code": code,
        "code_hash": code_hash(admin, code),
        "init": init,
        "permissions": permissions or {},
    }


def propose(
    client: Client, admin: Identity, kind: str, payload: dict[str, Any], **extra: Any
) -> TxResult:
    return client.invoke(
        admin, "gov", "propose", {"kind": kind, "payload": payload, **extra}, check=False
    )


def approve(client: Client, admin: Identity, proposal_id: int) -> TxResult:
    return client.invoke(admin, "gov", "approve", {"id": proposal_id}, check=False)


def deploy(chain: LocalChain, name: str, code: str, **options: Any) -> dict[str, Any]:
    """Propose with the first org's admin and approve with the others until it is active."""
    first = chain.identity(next(iter(chain.consortium.admins)), admin=True)
    return pass_proposal(chain, "deploy_contract", deploy_payload(first, name, code, **options))


def pass_proposal(chain: LocalChain, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Propose ``kind`` with the first org's admin and approve with the others until applied."""
    client = chain.client()
    orgs = list(chain.consortium.admins)
    result = propose(client, chain.identity(orgs[0], admin=True), kind, payload)
    assert result.ok, result.receipt
    document = result.result
    for org in orgs[1:]:
        if document["status"] == "executed":
            break
        result = approve(client, chain.identity(org, admin=True), document["id"])
        assert result.ok, result.receipt
        document = result.result
    assert document["status"] == "executed", document
    return document

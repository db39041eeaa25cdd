"""The example contracts (examples/contracts) on a local chain, deployed through governance."""

from __future__ import annotations

from typing import Any

from pilotchain.ledger.tx import RejectCode

from .helpers import EXAMPLES, deploy, governed_chain


def _source(name: str) -> str:
    return (EXAMPLES / f"{name}.py").read_text()


def test_token_mint_transfer_balance() -> None:
    with governed_chain(orgs=3) as chain:
        orgs = list(chain.consortium.admins)
        issuer = orgs[1]
        deploy(
            chain, "token", _source("token"), init={"admin_org_id": issuer, "token_symbol": "CNYD"}
        )
        client = chain.client()
        alice = chain.identity(orgs[0])
        bob = chain.identity(orgs[2])
        minted = client.invoke(
            chain.identity(issuer, admin=True),
            "token",
            "mint",
            {"to": alice.subject, "amount": 1000},
        )
        assert minted.ok and minted.events[0].name == "minted"
        refused = client.invoke(
            chain.identity(orgs[0], admin=True),
            "token",
            "mint",
            {"to": alice.subject, "amount": 1},
            check=False,
        )
        assert refused.status == RejectCode.PERMISSION_DENIED.value
        refused = client.invoke(
            chain.identity(issuer), "token", "mint", {"to": alice.subject, "amount": 1}, check=False
        )
        assert (
            refused.status == RejectCode.PERMISSION_DENIED.value
        )  # a client of the issuer, not an admin

        sent = client.invoke(alice, "token", "transfer", {"to": bob.subject, "amount": 250})
        assert sent.ok and sent.result == 750
        event = sent.events[0]
        assert (event.name, event.data) == (
            "transfer",
            {"from": alice.subject, "to": bob.subject, "amount": 250},
        )
        overdraft = client.invoke(
            bob, "token", "transfer", {"to": alice.subject, "amount": 251}, check=False
        )
        assert (
            overdraft.status == RejectCode.EXECUTION_FAILED.value
            and "insufficient" in overdraft.receipt.message
        )
        bad = client.invoke(
            bob, "token", "transfer", {"to": alice.subject, "amount": -5}, check=False
        )
        assert bad.status == RejectCode.BAD_ARGUMENTS.value
        missing = client.invoke(bob, "token", "transfer", {"to": alice.subject}, check=False)
        assert (
            missing.status == RejectCode.BAD_ARGUMENTS.value
            and "missing arguments" in missing.receipt.message
        )

        assert client.query("token", "balance", {"account": alice.subject}) == 750
        assert client.query("token", "balance", {"account": bob.subject}) == 250
        assert client.query("token", "info") == {
            "symbol": "CNYD",
            "admin_org": issuer,
            "supply": 1000,
        }


def test_registry_with_per_organisation_write_rights() -> None:
    with governed_chain(orgs=3) as chain:
        owner, second, third = list(chain.consortium.admins)
        deploy(chain, "registry", _source("registry"), init={"owner_org": owner})
        client = chain.client()

        def put(org: str, key: str, value: Any) -> Any:
            return client.invoke(
                chain.identity(org), "registry", "put", {"key": key, "value": value}, check=False
            )

        assert put(owner, "lei/1", {"name": "Bank"}).ok
        assert put(second, "lei/2", "x").status == RejectCode.PERMISSION_DENIED.value
        granted = client.invoke(
            chain.identity(second), "registry", "grant", {"org": second}, check=False
        )
        assert granted.status == RejectCode.PERMISSION_DENIED.value  # only the owner's admins grant
        assert client.invoke(
            chain.identity(owner, admin=True), "registry", "grant", {"org": second}
        ).ok
        assert put(second, "lei/2", "x").ok
        assert put(second, "lei/1", "hijack").status == RejectCode.PERMISSION_DENIED.value
        assert put(third, "lei/3", "y").status == RejectCode.PERMISSION_DENIED.value
        entry = client.query("registry", "get", {"key": "lei/2"})
        assert entry["org"] == second and entry["value"] == "x"
        assert client.query("registry", "writers") == [owner, second]
        removed = client.invoke(
            chain.identity(owner), "registry", "remove", {"key": "lei/2"}, check=False
        )
        assert removed.status == RejectCode.PERMISSION_DENIED.value
        assert (
            client.invoke(chain.identity(second), "registry", "remove", {"key": "lei/2"}).result
            is True
        )
        assert client.query("registry", "get", {"key": "lei/2"}) is None
        assert client.invoke(
            chain.identity(owner, admin=True), "registry", "revoke", {"org": second}
        ).ok
        assert put(second, "lei/9", "z").status == RejectCode.PERMISSION_DENIED.value


def test_multi_party_approval_workflow() -> None:
    with governed_chain(orgs=3) as chain:
        first, second, third = list(chain.consortium.admins)
        deploy(chain, "approval", _source("approval"))
        client = chain.client()
        request = {
            "request_id": "loan-42",
            "description": "credit line",
            "approvers": [second, third],
            "threshold": 2,
        }
        assert client.invoke(chain.identity(first), "approval", "create", request).ok
        duplicate = client.invoke(chain.identity(first), "approval", "create", request, check=False)
        assert duplicate.status == RejectCode.EXECUTION_FAILED.value
        outsider = client.invoke(
            chain.identity(first), "approval", "approve", {"request_id": "loan-42"}, check=False
        )
        assert outsider.status == RejectCode.PERMISSION_DENIED.value
        assert (
            client.invoke(
                chain.identity(second), "approval", "approve", {"request_id": "loan-42"}
            ).result
            == "open"
        )
        twice = client.invoke(
            chain.identity(second, admin=True),
            "approval",
            "approve",
            {"request_id": "loan-42"},
            check=False,
        )
        assert (
            twice.status == RejectCode.EXECUTION_FAILED.value
            and "already approved" in twice.receipt.message
        )
        done = client.invoke(
            chain.identity(third), "approval", "approve", {"request_id": "loan-42"}
        )
        assert done.result == "approved" and done.events[0].name == "approved"
        status = client.query("approval", "status", {"request_id": "loan-42"})
        assert status["status"] == "approved" and status["approvals"] == [second, third]

        second_request = dict(request, request_id="loan-43", threshold=1)
        client.invoke(chain.identity(first), "approval", "create", second_request)
        assert client.invoke(
            chain.identity(third), "approval", "reject", {"request_id": "loan-43", "reason": "no"}
        ).ok
        late = client.invoke(
            chain.identity(second), "approval", "approve", {"request_id": "loan-43"}, check=False
        )
        assert (
            late.status == RejectCode.EXECUTION_FAILED.value and "rejected" in late.receipt.message
        )


def test_contracts_call_contracts_as_themselves() -> None:
    escrow = """
from pilotchain.contracts.api import call, context

def pay(to, amount):
    return call("token", "transfer", {"to": to, "amount": amount})

def balance_of_me():
    return call("token", "balance", {"account": "contract:escrow"})

def fail_after_paying(to):
    call("token", "transfer", {"to": to, "amount": 1})
    return 1 // 0
"""
    with governed_chain(orgs=2) as chain:
        issuer = list(chain.consortium.admins)[0]
        deploy(chain, "token", _source("token"), init={"admin_org_id": issuer})
        deploy(chain, "escrow", escrow)
        client = chain.client()
        admin = chain.identity(issuer, admin=True)
        client.invoke(admin, "token", "mint", {"to": "contract:escrow", "amount": 10})
        paid = client.invoke(chain.identity(), "escrow", "pay", {"to": "carol", "amount": 4})
        assert paid.ok and paid.result == 6
        assert [e.contract for e in paid.events] == ["token"]
        failed = client.invoke(
            chain.identity(), "escrow", "fail_after_paying", {"to": "carol"}, check=False
        )
        assert failed.status == RejectCode.EXECUTION_FAILED.value
        assert client.query("token", "balance", {"account": "carol"}) == 4
        assert client.query("escrow", "balance_of_me") == 6

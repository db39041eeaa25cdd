"""Governance on a local chain: contracts activate only when the policy is met; upgrades,
freezes, policies, expiry; membership changes reach transaction authentication; validator and
parameter changes are recorded; a second node replaying the chain agrees on every root."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pilotchain.codec import encode
from pilotchain.contracts.governance import validator_set_at
from pilotchain.contracts.membership import GovernedAuthenticator, governed_membership
from pilotchain.contracts.resolver import ChainContracts
from pilotchain.identity.authority import CertificateAuthority
from pilotchain.identity.files import IdentityBundle, load_ca
from pilotchain.ledger.tx import RejectCode
from pilotchain.node.chain import Ledger
from pilotchain.sdk import TxRejectedError, build_transaction
from pilotchain.sdk._identity import Identity

from .helpers import approve, deploy, deploy_payload, governed_chain, propose

DAY_MS = 86_400_000

COUNTER_V1 = """
from pilotchain.contracts.api import Variable, context
count = Variable("count")

def init(start):
    count.set(start)

def bump():
    count.set(count.get(0) + 1)
    return count.get()

def read():
    return {"count": count.get(0), "version": 1}
"""

COUNTER_V2 = """
from pilotchain.contracts.api import Variable
count = Variable("count")
step = Variable("step")

def upgrade(new_step):
    step.set(new_step)

def bump():
    count.set(count.get(0) + step.get(1))
    return count.get()

def read():
    return {"count": count.get(0), "version": 2}
"""


def _admins(chain: Any) -> list[Identity]:
    return [chain.identity(org, admin=True) for org in chain.consortium.admins]


def test_a_contract_runs_only_after_the_policy_is_met_and_upgrades_take_the_same_path() -> None:
    with governed_chain(orgs=3) as chain:
        client = chain.client()
        first, second, third = _admins(chain)
        user = chain.identity()
        proposed = propose(
            client,
            first,
            "deploy_contract",
            deploy_payload(first, "counter", COUNTER_V1, init={"start": 10}),
        )
        assert proposed.ok and proposed.result["status"] == "open"
        assert proposed.result["needed"] == 2 and proposed.result["approvals"] == [first.org]

        unapproved = client.invoke(user, "counter", "bump", None, check=False)
        assert unapproved.status == RejectCode.UNKNOWN_CONTRACT.value

        again = approve(client, first, proposed.result["id"])
        assert (
            again.status == RejectCode.BAD_ARGUMENTS.value
            and "one vote per organisation" in again.receipt.message
        )
        by_client = client.invoke(
            chain.identity(second.org), "gov", "approve", {"id": proposed.result["id"]}, check=False
        )
        assert by_client.status == RejectCode.PERMISSION_DENIED.value

        approved = approve(client, second, proposed.result["id"])
        assert approved.ok and approved.result["status"] == "executed"
        assert client.invoke(user, "counter", "bump").result == 11
        assert client.query("counter", "read") == {"count": 11, "version": 1}

        stale = propose(
            client,
            first,
            "deploy_contract",
            deploy_payload(first, "counter", COUNTER_V2, version="1"),
        )
        assert (
            stale.status == RejectCode.BAD_ARGUMENTS.value
            and "higher version" in stale.receipt.message
        )

        upgrade = propose(
            client,
            third,
            "deploy_contract",
            deploy_payload(third, "counter", COUNTER_V2, version="2", init={"new_step": 5}),
        )
        assert upgrade.ok and upgrade.result["status"] == "open"
        assert client.invoke(user, "counter", "bump").result == 12  # still version 1
        assert approve(client, first, upgrade.result["id"]).result["status"] == "executed"
        assert client.invoke(user, "counter", "bump").result == 17
        assert client.query("counter", "read") == {"count": 17, "version": 2}
        info = client.query("gov", "contract", {"name": "counter"})
        assert info["version"] == "2" and info["versions"] == ["1", "2"]

        init_again = client.invoke(user, "counter", "upgrade", {"new_step": 100}, check=False)
        assert init_again.status == RejectCode.UNKNOWN_METHOD.value


def test_bad_proposals_are_refused_when_filed() -> None:
    with governed_chain(orgs=2) as chain:
        client = chain.client()
        admin = chain.identity(admin=True)
        payload = deploy_payload(admin, "broken", "def f():\n    return 1 / 2\n")
        refused = propose(client, admin, "deploy_contract", payload)
        assert (
            refused.status == RejectCode.BAD_ARGUMENTS.value
            and "true division" in refused.receipt.message
        )
        tampered = deploy_payload(admin, "tampered", COUNTER_V1)
        tampered["code"] += "\n"
        refused = propose(client, admin, "deploy_contract", tampered)
        assert "code_hash does not match" in refused.receipt.message
        refused = propose(client, admin, "deploy_contract", deploy_payload(admin, "kv", COUNTER_V1))
        assert "built-in or system contract" in refused.receipt.message
        by_client = client.invoke(
            chain.identity(),
            "gov",
            "propose",
            {"kind": "deploy_contract", "payload": deploy_payload(admin, "c", COUNTER_V1)},
            check=False,
        )
        assert by_client.status == RejectCode.PERMISSION_DENIED.value
        unknown = propose(client, admin, "make_coffee", {})
        assert unknown.status == RejectCode.BAD_ARGUMENTS.value


def test_freeze_and_unfreeze() -> None:
    with governed_chain(orgs=2) as chain:
        client = chain.client()
        first, second = _admins(chain)
        deploy(chain, "counter", COUNTER_V1, init={"start": 0})
        frozen = propose(client, first, "freeze_contract", {"name": "counter", "reason": "audit"})
        assert approve(client, second, frozen.result["id"]).result["status"] == "executed"
        refused = client.invoke(chain.identity(), "counter", "bump", None, check=False)
        assert refused.status == RejectCode.PERMISSION_DENIED.value
        assert "frozen by governance: audit" in refused.receipt.message
        thawed = propose(client, second, "unfreeze_contract", {"name": "counter"})
        assert approve(client, first, thawed.result["id"]).result["status"] == "executed"
        assert client.invoke(chain.identity(), "counter", "bump").result == 1


def test_per_method_permissions() -> None:
    code = "from pilotchain.contracts.api import context\ndef whoami():\n    return context.caller.org\n"
    with governed_chain(orgs=2) as chain:
        client = chain.client()
        orgs = list(chain.consortium.admins)
        deploy(chain, "who", code, permissions={"whoami": {"roles": ["admin"], "orgs": [orgs[1]]}})
        denied = client.invoke(chain.identity(orgs[1]), "who", "whoami", None, check=False)
        assert (
            denied.status == RejectCode.PERMISSION_DENIED.value
            and "role admin" in denied.receipt.message
        )
        denied = client.invoke(
            chain.identity(orgs[0], admin=True), "who", "whoami", None, check=False
        )
        assert denied.status == RejectCode.PERMISSION_DENIED.value
        assert client.invoke(chain.identity(orgs[1], admin=True), "who", "whoami").result == orgs[1]


def test_policies_expiry_and_withdrawal() -> None:
    clock = [int(time.time() * 1000) + 5_000]  # after the consortium's certificates begin
    with governed_chain(orgs=3, clock_ms=lambda: clock[0]) as chain:
        client = chain.client()
        first, second, third = _admins(chain)
        policy = {
            "kind": "deploy_contract",
            "policy": {"rule": "K_OF_N", "k": 3, "orgs": [], "role": "admin"},
        }
        change = propose(client, first, "set_policy", policy)
        assert change.result["needed"] == 3  # set_policy itself needs ALL
        assert approve(client, second, change.result["id"]).result["status"] == "open"
        assert approve(client, third, change.result["id"]).result["status"] == "executed"

        filed = propose(
            client,
            first,
            "deploy_contract",
            deploy_payload(first, "counter", COUNTER_V1, init={"start": 0}),
        )
        assert approve(client, second, filed.result["id"]).result["status"] == "open"
        assert approve(client, third, filed.result["id"]).result["status"] == "executed"

        short = propose(
            client,
            first,
            "deploy_contract",
            deploy_payload(first, "later", COUNTER_V1, init={"start": 0}),
            expires_in_ms=60_000,
        )
        clock[0] += 120_000
        late = approve(client, second, short.result["id"])
        assert late.status == RejectCode.BAD_ARGUMENTS.value and "expired" in late.receipt.message
        assert client.query("gov", "get", {"id": short.result["id"]})["status"] == "expired"

        withdrawn = propose(client, first, "freeze_contract", {"name": "counter"})
        not_yours = client.invoke(
            second, "gov", "withdraw", {"id": withdrawn.result["id"]}, check=False
        )
        assert not_yours.status == RejectCode.PERMISSION_DENIED.value
        assert (
            client.invoke(first, "gov", "withdraw", {"id": withdrawn.result["id"]}).result["status"]
            == "withdrawn"
        )
        assert (
            approve(client, second, withdrawn.result["id"]).status == RejectCode.BAD_ARGUMENTS.value
        )
        listed = client.query("gov", "list", {"status": "open"})
        assert listed == []


def _new_identity(
    ca: CertificateAuthority, subject: str, roles: tuple[str, ...], now_ms: int
) -> Identity:
    key = ca.suite.private_key_from_seed(subject.encode().ljust(32, b"-")[:32])
    cert = ca.issue(subject, roles, key.public_key().to_der(), now_ms=now_ms, valid_ms=30 * DAY_MS)
    return Identity(IdentityBundle(ca.suite, cert, key))


def test_membership_changes_reach_transaction_authentication() -> None:
    with governed_chain(orgs=3) as chain:
        first, second, third = _admins(chain)
        # reads are signed: read as an organisation whose identity this test does not revoke
        client = chain.client(identity=chain.identity(second.org))
        suite = first.suite
        now_ms = int(time.time() * 1000) - 60_000

        # add an organisation: its identities are refused before, accepted after
        newcomer_ca = CertificateAuthority.create(
            suite,
            suite.private_key_from_seed(b"newcomer-ca".ljust(32, b"!")),
            org_id="port-authority",
            display_name="Port Authority",
            now_ms=now_ms,
            valid_ms=365 * DAY_MS,
        )
        newcomer = _new_identity(newcomer_ca, "port-client", ("client",), now_ms)
        with pytest.raises(TxRejectedError) as refused:
            client.invoke(newcomer, "kv", "put", {"key": "k", "value": 1})
        assert refused.value.code == RejectCode.UNKNOWN_SIGNER.value
        added = propose(
            client, first, "add_org", {"certificate": encode(newcomer_ca.org_certificate)}
        )
        assert approve(client, second, added.result["id"]).result["status"] == "executed"
        assert client.invoke(newcomer, "kv", "put", {"key": "k", "value": 1}).ok
        assert "port-authority" in client.query("gov", "members")

        # revoke one identity (policy ANY: the org itself decides)
        org_ca = load_ca(chain.consortium.directory / "orgs" / first.org / "ca")
        victim = chain.identity(first.org)
        revocation = org_ca.revoke(victim.certificate.serial, "laptop lost", now_ms=now_ms)
        revoked = propose(client, first, "revoke", {"revocation": encode(revocation)})
        assert revoked.result["status"] == "executed"
        with pytest.raises(TxRejectedError) as refused:
            client.invoke(victim, "kv", "put", {"key": "v", "value": 1})
        assert (
            refused.value.code == RejectCode.SIGNER_REJECTED.value
            and "revoked" in refused.value.message
        )

        # rotate an org CA: identities of the new CA are accepted afterwards
        third_ca = load_ca(chain.consortium.directory / "orgs" / third.org / "ca")
        rotate_ms = int(time.time() * 1000)
        new_ca, rotation = third_ca.rotate(
            suite.private_key_from_seed(b"rotated".ljust(32, b"#")),
            now_ms=rotate_ms,
            valid_ms=365 * DAY_MS,
            cutover_ms=rotate_ms + DAY_MS,
        )
        fresh = _new_identity(new_ca, "third-fresh", ("client",), rotate_ms)
        with pytest.raises(TxRejectedError):
            client.invoke(fresh, "kv", "put", {"key": "f", "value": 1})
        assert (
            propose(client, third, "rotate_ca", {"rotation": encode(rotation)}).result["status"]
            == "executed"
        )
        assert client.invoke(fresh, "kv", "put", {"key": "f", "value": 1}).ok

        # remove an organisation: its identities are refused, its votes no longer count
        removal = propose(client, first, "remove_org", {"org": "port-authority"})
        assert approve(client, second, removal.result["id"]).result["status"] == "open"  # 2 of 4
        assert approve(client, third, removal.result["id"]).result["status"] == "executed"
        with pytest.raises(TxRejectedError) as refused:
            client.invoke(newcomer, "kv", "put", {"key": "k", "value": 2})
        assert refused.value.code == RejectCode.SIGNER_REJECTED.value

        # the replayed membership is the one the node authenticates with
        ledger = chain.node.ledger
        replayed = governed_membership(chain.genesis, ledger.store)
        assert replayed.org_ids() == ledger.authenticator.membership.org_ids()


def test_validators_and_parameters() -> None:
    spin = "def spin(n):\n    for i in range(n):\n        pass\n    return n\n"
    with governed_chain(orgs=2) as chain:
        client = chain.client()
        first, second = _admins(chain)
        deploy(chain, "spin", spin)
        assert client.invoke(chain.identity(), "spin", "spin", {"n": 5000}).ok
        params = propose(
            client,
            first,
            "set_params",
            {"params": {"contract_steps_max": 1000, "block_txs_max": 500}},
        )
        assert approve(client, second, params.result["id"]).result["status"] == "executed"
        assert client.query("gov", "params")["contract_steps_max"] == 1000
        starved = client.invoke(chain.identity(), "spin", "spin", {"n": 5000}, check=False)
        assert starved.status == RejectCode.OUT_OF_STEPS.value

        key = (
            first.suite.private_key_from_seed(b"validator-5".ljust(32, b"v")).public_key().to_der()
        )
        added = propose(
            client,
            first,
            "add_validator",
            {"name": "extra-v", "org": second.org, "public_key": key, "power": 1},
        )
        done = approve(client, second, added.result["id"])
        assert done.result["status"] == "executed"
        effective = done.height + 2
        ledger = chain.node.ledger
        assert [v.name for v in validator_set_at(chain.genesis, ledger.store, effective - 1)] == [
            v.name for v in chain.genesis.validators
        ]
        assert "extra-v" in [
            v.name for v in validator_set_at(chain.genesis, ledger.store, effective)
        ]
        scheduled = client.query("gov", "validators")["scheduled"]
        assert scheduled and scheduled[0]["effective_height"] == effective
        duplicate = propose(
            client,
            first,
            "add_validator",
            {"name": "extra-v", "org": second.org, "public_key": key},
        )
        assert duplicate.status == RejectCode.BAD_ARGUMENTS.value


def test_a_second_node_replaying_the_chain_agrees(tmp_path: Path) -> None:
    with governed_chain(orgs=3) as chain:
        client = chain.client()
        first, second, _third = _admins(chain)
        deploy(chain, "counter", COUNTER_V1, init={"start": 1})
        for _ in range(3):
            client.invoke(chain.identity(), "counter", "bump")
        client.invoke(chain.identity(), "counter", "spin_missing", None, check=False)
        removal = propose(client, first, "remove_org", {"org": _third.org})
        approve(client, second, removal.result["id"])
        source = chain.node.ledger
        authenticator = GovernedAuthenticator(chain.genesis)
        replica = Ledger.open(tmp_path / "replica", chain.genesis, authenticator, ChainContracts())
        authenticator.bind(replica.store)
        try:
            for height in range(1, source.height + 1):
                block = source.get_block(height)
                assert block is not None
                replica.commit_block(block)
            assert replica.head().state_root == source.head().state_root
        finally:
            replica.close()


def test_block_size_set_by_governance_limits_the_next_blocks() -> None:
    with governed_chain(orgs=2) as chain:
        client = chain.client()
        first, second = _admins(chain)
        params = propose(client, first, "set_params", {"params": {"block_txs_max": 3}})
        assert approve(client, second, params.result["id"]).result["status"] == "executed"
        assert chain.node.ledger.params.block_txs_max == 3
        txs = [build_transaction(chain.identity(), chain.chain_id, "kv", "put", {"key": f"p{i}", "value": i})
               for i in range(7)]
        assert all(isinstance(r, str) for r in client.submit_many(txs))
        client.wait(txs[-1].tx_id, timeout_s=30)
        heights = {client.get_tx(tx.tx_id).height for tx in txs}
        sizes = [len(chain.node.ledger.get_block(h).txs) for h in heights]  # type: ignore[union-attr]
        assert max(sizes) <= 3 and sum(sizes) == 7

"""Reads are authorised by the contract's declared ``@read`` permission and by the auditors
governance names: a member outside the rule reads none of the contract's state, queries,
transactions or events; a block shows its transactions redacted to their Merkle leaf hashes and
still verifies against its header; the signer's organisation reads its own transaction."""

from __future__ import annotations

import concurrent.futures
import json
import time
from typing import Any

import pytest

from pilotchain.identity.files import IdentityBundle, load_ca
from pilotchain.network.processes import wait_until
from pilotchain.sdk import Identity, TxResult
from pilotchain.sdk._errors import PilotchainError
from pilotchain.testing import LocalChain
from tests.contracts.helpers import deploy, governed_chain, pass_proposal, propose

pytestmark = pytest.mark.timeout(120)

RECORDS = '''
records = Map("records")

def put(key, value):
    records.set(key, value)
    emit("stored", {"key": key, "value": value})

def get(key):
    return records.get(key)
'''

SECRET = "diagnosis: confidential"


def _denied(call: Any) -> str:
    with pytest.raises(PilotchainError) as caught:
        call()
    text = str(caught.value)
    assert "PERMISSION_DENIED" in repr(caught.value) or "readable only by" in text, text
    return text


def _auditor(chain: LocalChain, org: str) -> Identity:
    """An identity with the auditor role, issued by ``org``'s own CA."""
    ca = load_ca(chain.consortium.directory / "orgs" / org / "ca")
    suite = chain.identity(org).suite
    key = suite.generate_private_key()
    now_ms = int(time.time() * 1000)
    certificate = ca.issue(f"auditor-{org}", ("auditor",), key.public_key().to_der(),
                           now_ms=now_ms, valid_ms=10**9)
    return Identity(IdentityBundle(suite, certificate, key))


def _http(chain: LocalChain, identity: Identity, path: str) -> Any:
    client = chain.client(identity=identity)
    return client._http.get(path)  # the raw answer: what travels over the wire


def test_a_contract_read_rule_hides_state_queries_transactions_and_events() -> None:
    with governed_chain(orgs=3) as chain:
        a, b, c = list(chain.consortium.clients)
        deploy(chain, "records", RECORDS, permissions={"@read": {"roles": [], "orgs": [a]}})
        alice, bob, carol = chain.identity(a), chain.identity(b), chain.identity(c)
        as_a, as_b, as_c = chain.client(identity=alice), chain.client(identity=bob), chain.client(identity=carol)

        # bob listens to transactions before anything happens: he must see only what he may read
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            bob_events = pool.submit(lambda: list(as_b.subscribe(["tx", "contract_event"], limit=2)))
            assert wait_until(lambda: chain.node.subscriber_count >= 1, timeout_s=10, interval_s=0.01), \
                "bob's subscription never arrived"
            secret_tx: TxResult = as_a.invoke(alice, "records", "put", {"key": "patient-42", "value": SECRET})
            own_tx: TxResult = as_b.invoke(bob, "records", "put", {"key": "b-note", "value": "bob's own words"})
            as_b.invoke(bob, "kv", "put", {"key": "k", "value": "visible"})
            seen = bob_events.result(timeout=30)
        assert [(e.kind, e.data.get("contract")) for e in seen] == [("tx", "kv"), ("contract_event", "kv")]
        assert SECRET not in json.dumps([e.data for e in seen])

        # the reader the rule names reads everything of the contract
        assert as_a.query("records", "get", {"key": "patient-42"}) == SECRET
        assert as_a.read_state("records", "anything").value is None  # answered, with a proof
        assert as_a.get_tx(secret_tx.tx_id).state == "committed"

        # a member outside it reads nothing of it: no state, no query, not another org's transaction
        _denied(lambda: as_b.query("records", "get", {"key": "patient-42"}))
        _denied(lambda: as_b.read_state("records", "anything"))
        refused = _http(chain, bob, f"/v1/txs/{secret_tx.tx_id}")
        assert refused.status_code == 403 and refused.json()["code"] == "PERMISSION_DENIED"
        assert SECRET not in refused.text
        # ... but its own transaction, its own words
        assert as_b.get_tx(own_tx.tx_id).state == "committed"

        # a block with the secret: redacted for bob, and still verified against its header
        height = as_a.get_tx(secret_tx.tx_id).height
        assert height is not None
        raw_answer = _http(chain, bob, f"/v1/blocks/{height}")
        assert raw_answer.status_code == 200 and SECRET not in raw_answer.text and "patient-42" not in raw_answer.text
        block = as_b.get_block(height)
        assert block.verified and block.redacted == (0,)
        assert block.transactions[0].redacted and block.transactions[0].contract == "records"
        assert block.receipts[0].events == () and block.receipts[0].status == "OK"
        assert SECRET in json.dumps(_http(chain, alice, f"/v1/blocks/{height}").json())
        raw_refused = _http(chain, bob, f"/v1/blocks/{height}/raw")
        assert raw_refused.status_code == 403 and "redacted" in raw_refused.json()["message"]
        assert _http(chain, alice, f"/v1/blocks/{height}/raw").status_code == 200

        # auditors: an auditor identity reads nothing more until governance names its organisation
        auditor_c, auditor_b = _auditor(chain, c), _auditor(chain, b)
        _denied(lambda: chain.client(identity=auditor_c).query("records", "get", {"key": "patient-42"}))
        pass_proposal(chain, "set_auditors", {"orgs": [c]})
        assert as_c.query("gov", "auditors") == [c]
        assert chain.client(identity=auditor_c).query("records", "get", {"key": "patient-42"}) == SECRET
        assert SECRET in _http(chain, auditor_c, f"/v1/txs/{secret_tx.tx_id}").text
        # the named organisation's ordinary members, and another organisation's self-made auditor, still not
        _denied(lambda: as_c.query("records", "get", {"key": "patient-42"}))
        _denied(lambda: chain.client(identity=auditor_b).query("records", "get", {"key": "patient-42"}))


def test_read_rules_and_auditors_are_checked_when_proposed() -> None:
    with governed_chain(orgs=2) as chain:
        a, _ = list(chain.consortium.clients)
        client = chain.client()
        admin = chain.identity(a, admin=True)
        strangers = propose(client, admin, "set_auditors", {"orgs": ["no-such-org"]})
        assert not strangers.ok and "not member organisations: no-such-org" in strangers.receipt.message
        shape = propose(client, admin, "set_auditors", {"orgs": "everyone"})
        assert not shape.ok and "at most" in shape.receipt.message
        bad_key = propose(client, admin, "deploy_contract", {
            "name": "x", "version": "1", "code": RECORDS, "code_hash": admin.suite.hash(RECORDS.encode()),
            "init": None, "permissions": {"@write": {"roles": [], "orgs": []}}})
        assert not bad_key.ok and "@read" in bad_key.receipt.message


def test_a_contract_without_a_read_rule_stays_readable_by_every_member() -> None:
    with governed_chain(orgs=2) as chain:
        a, b = list(chain.consortium.clients)
        deploy(chain, "records", RECORDS)
        as_a, as_b = chain.client(identity=chain.identity(a)), chain.client(identity=chain.identity(b))
        tx = as_a.invoke(chain.identity(a), "records", "put", {"key": "open", "value": "shared"})
        assert as_b.query("records", "get", {"key": "open"}) == "shared"
        assert as_b.get_tx(tx.tx_id).state == "committed"
        height = as_b.get_tx(tx.tx_id).height
        assert height is not None and as_b.get_block(height).redacted == ()

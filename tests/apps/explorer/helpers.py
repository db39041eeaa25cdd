"""A governed in-process chain with something to look at: a contract only the first organisation
may read (with a confidential transaction of that organisation's), a visible transaction of the
second, a failed one, three in one block, and governance's history: the proposal that deployed the
contract, its upgrade to version 2, a parameter change, a validator added, an identity revoked and
a proposal still open. Every block carries a real commit record, signed by the validators in force
as consensus would sign it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pilotchain.codec import encode
from pilotchain.identity.files import IdentityBundle, load_ca, load_identity, save_identity
from pilotchain.sdk import TxResult, build_transaction
from pilotchain.testing import LocalChain
from tests.contracts.helpers import deploy, governed_chain, pass_proposal, propose
from tests.ledger.evidence_helpers import certify_commits

RECORDS = '''
records = Map("records")

def put(key, value):
    records.set(key, value)
    emit("stored", {"key": key, "value": value})
'''

RECORDS_V2 = RECORDS + '''
def get(key):
    return records.get(key)
'''

DAY_MS = 24 * 3600 * 1000

SECRET = "diagnosis: confidential"


@dataclass(frozen=True, slots=True)
class Scene:
    chain: LocalChain
    owner: str  #: may read ``records``
    viewer: str  #: may not
    secret: TxResult  #: the owner's records.put
    visible: TxResult  #: the viewer's kv.put
    failed: TxResult  #: the viewer's kv.put without its arguments
    batch: tuple[TxResult, ...]  #: three kv.puts of the viewer's, in one block
    proposals: dict[str, int]  #: upgrade, params, validator, revoke, open -> proposal id
    revoked_serial: int  #: of the viewer's organisation, its identity file kept beside the others


@contextlib.contextmanager
def scene() -> Iterator[Scene]:
    with governed_chain(orgs=3) as chain:
        consortium = chain.consortium
        node_key = load_identity(consortium.directory / "nodes" / consortium.validator / "node.id").private_key
        keys: dict[bytes, Any] = {node_key.public_key().to_der(): node_key}
        certify_commits(chain.node.ledger, keys)
        owner, viewer, _ = list(consortium.clients)
        deploy(chain, "records", RECORDS, permissions={"@read": {"roles": [], "orgs": [owner]}})
        as_owner, as_viewer = chain.client(identity=chain.identity(owner)), chain.client(identity=chain.identity(viewer))
        secret = as_owner.invoke(chain.identity(owner), "records", "put", {"key": "patient-42", "value": SECRET})
        visible = as_viewer.invoke(chain.identity(viewer), "kv", "put", {"key": "rate", "value": 425})
        failed = as_viewer.invoke(chain.identity(viewer), "kv", "put", {"value": 1}, check=False)
        assert secret.ok and visible.ok and not failed.ok, (secret, visible, failed)
        signer = chain.identity(viewer)
        txs = [build_transaction(signer, chain.chain_id, "kv", "put", {"key": f"batch-{i}", "value": i}) for i in range(3)]
        ids = as_viewer.submit_many(txs)
        batch = tuple(as_viewer.wait(str(tx_id)) for tx_id in ids)
        assert len({tx.height for tx in batch}) == 1, "one block holds the batch"
        proposals, revoked_serial = _governance_history(chain, keys, viewer)
        yield Scene(chain, owner, viewer, secret, visible, failed, batch, proposals, revoked_serial)


def _governance_history(chain: LocalChain, keys: dict[bytes, Any], viewer: str) -> tuple[dict[str, int], int]:
    """Upgrade records, change a parameter, add a validator (its key signs commits from then on),
    revoke an identity of ``viewer``'s, and leave one proposal open."""
    owner_admin = chain.identity(next(iter(chain.consortium.admins)), admin=True)
    upgrade = deploy(chain, "records", RECORDS_V2, version="2",
                     permissions={"@read": {"roles": [], "orgs": [next(iter(chain.consortium.clients))]}})
    params = pass_proposal(chain, "set_params", {"params": {"block_txs_max": 1000}})
    validator_key = owner_admin.suite.private_key_from_seed(b"explorer-extra-validator".ljust(32, b"v"))
    keys[validator_key.public_key().to_der()] = validator_key
    validator = pass_proposal(chain, "add_validator", {"name": "extra-validator", "org": viewer,
                                                       "public_key": validator_key.public_key().to_der(), "power": 1})
    now_ms = time.time_ns() // 1_000_000
    ca = load_ca(chain.consortium.directory / "orgs" / viewer / "ca")
    key = ca.suite.private_key_from_seed(b"explorer-temp-client".ljust(32, b"t"))
    now_ms = max(now_ms, ca.org_certificate.not_before_ms)
    temporary = ca.issue("temp-client", ("client",), key.public_key().to_der(), now_ms=now_ms, valid_ms=10 * DAY_MS)
    save_identity(chain.consortium.directory / "orgs" / viewer / "temp.id", IdentityBundle(ca.suite, temporary, key))
    revocation = ca.revoke(temporary.serial, "laptop lost", now_ms=now_ms)
    revoke = propose(chain.client(), chain.identity(viewer, admin=True), "revoke", {"revocation": encode(revocation)})
    assert revoke.ok and revoke.result["status"] == "executed", revoke
    still_open = propose(chain.client(), owner_admin, "set_params", {"params": {"timeout_vote_ms": 700}})
    assert still_open.ok and still_open.result["status"] == "open", still_open
    for _ in range(3):  # past the height the new validator set takes effect
        chain.client().invoke(chain.identity(viewer), "kv", "put", {"key": "tick", "value": 1})
    ids = {"upgrade": upgrade["id"], "params": params["id"], "validator": validator["id"],
           "revoke": revoke.result["id"], "open": still_open.result["id"]}
    return ids, temporary.serial

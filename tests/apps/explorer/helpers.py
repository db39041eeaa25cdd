"""A governed in-process chain with something to look at: a contract only the first organisation
may read (with a confidential transaction of that organisation's), a visible transaction of the
second, a failed one, and the governance proposal that deployed the contract. Every block carries
a real commit record, signed by the validator as consensus would sign it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pilotchain.identity.files import load_identity
from pilotchain.sdk import TxResult, build_transaction
from pilotchain.testing import LocalChain
from tests.contracts.helpers import deploy, governed_chain
from tests.ledger.evidence_helpers import certify_commits

RECORDS = '''
records = Map("records")

def put(key, value):
    records.set(key, value)
    emit("stored", {"key": key, "value": value})
'''

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
        yield Scene(chain, owner, viewer, secret, visible, failed, batch)

"""An in-process chain for the credentials application: a governed development node whose ledger
stores a commit record with every block, signed by its validator (``evidence_helpers``), so
snapshots prove what they would on a validator network; ``credentials`` deployed through
governance; a university issuer registered; a class roll."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotchain.apps.credentials.chain import contract_code, deploy_payload, export_snapshot
from pilotchain.apps.credentials.issuer import IssuerHome, create_issuer
from pilotchain.apps.credentials.network import class_roll
from pilotchain.apps.credentials.snapshot import VerifiedSnapshot, verify_snapshot
from pilotchain.identity.files import load_identity
from pilotchain.sdk import Client, Identity
from pilotchain.testing import LocalChain
from tests.contracts.helpers import governed_chain, pass_proposal
from tests.ledger.evidence_helpers import certify_commits

ISS = "https://registrar.cityu.example"


@dataclass
class World:
    chain: LocalChain
    home: IssuerHome
    university: str
    other: str
    #: validator keys the chain's certifier signs with (add one before governance adds its validator)
    keys: dict[bytes, Any]

    @property
    def admin(self) -> Identity:
        return self.chain.identity(self.university, admin=True)

    @property
    def registrar(self) -> Identity:
        return self.chain.identity(self.university)

    def client(self, identity: Identity | None = None) -> Client:
        return self.chain.client(identity=identity or self.chain.identity(self.other))

    def snapshot_bytes(self, **scope: Any) -> bytes:
        scope = scope or {"issuers": [self.home.iss]}
        with self.client() as client:
            return export_snapshot(client, genesis=self.chain.genesis, **scope)

    def snapshot(self, **scope: Any) -> VerifiedSnapshot:
        return verify_snapshot(self.snapshot_bytes(**scope), self.chain.genesis, contract_code=contract_code())


def now_ms() -> int:
    return int(time.time() * 1000)


@contextlib.contextmanager
def world(tmp: Path, *, suite: str = "intl") -> Iterator[World]:
    with governed_chain(orgs=3, suite=suite) as chain:
        consortium = chain.consortium
        node_key = load_identity(consortium.directory / "nodes" / consortium.validator / "node.id").private_key
        keys: dict[bytes, Any] = {node_key.public_key().to_der(): node_key}
        certify_commits(chain.node.ledger, keys)
        orgs = list(consortium.admins)
        pass_proposal(chain, "deploy_contract", deploy_payload(chain.identity(orgs[0], admin=True)))
        university, other = orgs[0], orgs[1]
        with chain.client(identity=chain.identity(university)) as client:
            home = create_issuer(tmp / "issuer", client, chain.identity(university, admin=True), iss=ISS,
                                 name="City University", now_ms=now_ms(), list_size=4096)
        yield World(chain, home, university, other, keys)


def roll(size: int) -> list[dict[str, Any]]:
    return class_roll(size, year=2026)

"""The credentials application's calls to the chain (through the SDK): issuer and key
registration, anchoring, status changes, activating the contract through governance, and
exporting chain snapshots (``snapshot.py`` says what they hold and why they are sound).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pilotchain.apps.credentials.snapshot import (
    CONTRACT,
    SNAPSHOT_FORMAT,
    Snapshot,
    SnapshotInvalid,
    StateEntry,
    batch_index_key,
    batch_key,
    contract_key,
    issuer_key,
    key_key,
    list_key,
    verify_snapshot,
)
from pilotchain.codec import encode
from pilotchain.crypto import PrivateKey
from pilotchain.errors import CoreError
from pilotchain.ledger.evidence import CertifiedHeader, make_bundle
from pilotchain.ledger.genesis import Genesis
from pilotchain.sdk import Client, EvidenceError, Identity, StateValue, TxResult
from pilotchain.sdk.evidence import _tx_evidence, _validator_changes

__all__ = [
    "CONTRACT_SOURCE",
    "ChainRefused",
    "anchor_batch",
    "contract_code",
    "create_status_list",
    "deploy_payload",
    "export_snapshot",
    "key_statement",
    "register_issuer",
    "register_key",
    "retire_key",
    "set_status",
]

CONTRACT_SOURCE = Path(__file__).with_name("contracts") / "credentials.py"
#: what a key signs when it is registered (the contract checks the same text)
KEY_STATEMENT_DOMAIN = "pilotchain/credentials/key/v1"
#: governance's own names (contracts/governance.py)
_GOV = "gov"


class ChainRefused(CoreError):
    """The chain refused a credentials transaction; ``code`` and ``message`` from its receipt."""

    def __init__(self, method: str, code: str, message: str) -> None:
        super().__init__(f"{CONTRACT}.{method} refused ({code}): {message}")
        self.code = code
        self.message = message


def contract_code() -> bytes:
    """The contract source this version of pilotchain ships (and its verifier expects on chain)."""
    return CONTRACT_SOURCE.read_bytes()


def key_statement(chain_id: str, iss: str, kid: str, not_before_ms: int, not_after_ms: int) -> bytes:
    return "\n".join([KEY_STATEMENT_DOMAIN, chain_id, iss, kid, str(not_before_ms), str(not_after_ms)]).encode()


def _invoke(client: Client, who: Identity, method: str, args: dict[str, Any]) -> TxResult:
    result = client.invoke(who, CONTRACT, method, args, check=False)
    if result.receipt is None or result.receipt.status != "OK":
        code = result.receipt.status if result.receipt is not None else str(result.code)
        message = result.receipt.message if result.receipt is not None else str(result.message)
        raise ChainRefused(method, code, message)
    return result


def register_issuer(client: Client, admin: Identity, iss: str, name: str) -> TxResult:
    return _invoke(client, admin, "register_issuer", {"iss": iss, "name": name})


def register_key(client: Client, admin: Identity, iss: str, kid: str, key: PrivateKey, not_before_ms: int,
                 not_after_ms: int) -> TxResult:
    """Register ``key`` (proving possession: it signs its own registration statement)."""
    proof = key.sign(key_statement(client.chain_id(), iss, kid, not_before_ms, not_after_ms))
    return _invoke(client, admin, "register_key", {
        "iss": iss, "kid": kid, "public_key": key.public_key().to_der(), "not_before_ms": not_before_ms,
        "not_after_ms": not_after_ms, "proof": proof})


def retire_key(client: Client, admin: Identity, iss: str, kid: str, not_after_ms: int) -> TxResult:
    return _invoke(client, admin, "retire_key", {"iss": iss, "kid": kid, "not_after_ms": not_after_ms})


def create_status_list(client: Client, member: Identity, list_id: str, iss: str, size: int, bits: int) -> TxResult:
    return _invoke(client, member, "create_status_list", {"list_id": list_id, "iss": iss, "size": size, "bits": bits})


def anchor_batch(client: Client, member: Identity, args: dict[str, Any]) -> TxResult:
    return _invoke(client, member, "anchor", args)


def set_status(client: Client, member: Identity, list_id: str, updates: Sequence[tuple[int, int]]) -> TxResult:
    return _invoke(client, member, "set_status", {"list_id": list_id, "updates": [list(u) for u in updates]})


def deploy_payload(identity: Identity) -> dict[str, Any]:
    """The ``deploy_contract`` proposal's payload for this version of the contract."""
    code = contract_code().decode("utf-8")
    return {"name": CONTRACT, "version": "1", "code": code, "code_hash": identity.suite.hash(code.encode()),
            "init": None, "permissions": {}}


# ------------------------------------------------------------------------------ snapshots


class _Reader:
    """Proven state reads of one node, and the certified headers they were proven at."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.entries: list[StateEntry] = []
        self.headers: dict[int, CertifiedHeader] = {}

    def read(self, contract: str, key: bytes, *, keep: bool = True) -> StateValue:
        value = self.client.read_state(contract, key)
        if value.certificate is None:
            raise EvidenceError(f"the node has no commit certificate for block {value.header.height} "
                                "(a development node certifies nothing): take snapshots from a validator")
        if keep:
            self.headers.setdefault(value.header.height, CertifiedHeader(header=value.header,
                                                                         commit=value.certificate))
            self.entries.append(StateEntry(contract=contract, key=key, height=value.header.height,
                                           value=value.value, proof=value.proof))
        return value


def export_snapshot(client: Client, *, issuers: Iterable[str] = (), batches: Iterable[str] = (),
                    status_lists: Iterable[str] = (), keys: Iterable[tuple[str, str]] = (),
                    genesis: Genesis | None = None) -> bytes:
    """A snapshot for verifying credentials offline: everything about each issuer in
    ``issuers`` (its keys, status lists and every anchored batch), plus the batches, status lists
    and keys named (each with its issuer). What is not on chain is proven absent.

    Every read is proven (state proof, commit certificate); with ``genesis`` the snapshot is
    verified before it is returned. Raises :class:`~pilotchain.sdk.EvidenceError` when the node
    cannot prove something (a development node), the SDK's errors otherwise."""
    reader = _Reader(client)
    reader.read(_GOV, contract_key())
    named_issuers = list(dict.fromkeys(issuers))
    wanted_issuers = list(named_issuers)
    wanted_keys = list(dict.fromkeys(keys))
    wanted_lists = list(dict.fromkeys(status_lists))
    anchor_txs: list[str] = []
    for batch_id in dict.fromkeys(batches):
        record = reader.read(CONTRACT, batch_key(batch_id), keep=False).decoded
        if isinstance(record, dict):
            anchor_txs.append(bytes(record["tx"]).hex())
            wanted_issuers.append(record["iss"])
    issuer_records: dict[str, Any] = {}
    for iss in dict.fromkeys([*wanted_issuers, *(iss for iss, _ in wanted_keys)]):
        record = reader.read(CONTRACT, issuer_key(iss)).decoded
        issuer_records[iss] = record
        if not isinstance(record, dict):
            continue
        wanted_keys.extend((iss, kid) for kid in record["kids"])
        wanted_lists.extend(record["lists"])
        if iss in named_issuers:
            for n in range(record["batches"]):
                batch_id = reader.read(CONTRACT, batch_index_key(iss, n), keep=False).decoded
                batch = reader.read(CONTRACT, batch_key(batch_id), keep=False).decoded
                anchor_txs.append(bytes(batch["tx"]).hex())
    for iss, kid in dict.fromkeys(wanted_keys):
        if isinstance(issuer_records.get(iss), dict):
            reader.read(CONTRACT, key_key(iss, kid))
    for list_id in dict.fromkeys(wanted_lists):
        reader.read(CONTRACT, list_key(list_id))
    if not anchor_txs:
        raise EvidenceError("nothing anchored to prove: name an issuer with batches, or a batch on chain")
    tx_headers: dict[int, CertifiedHeader] = {}
    txs = [_tx_evidence(client, tx_id, tx_headers) for tx_id in dict.fromkeys(anchor_txs)]
    newest = max([*reader.headers, *(entry.height for entry in txs)])
    changes = _validator_changes(client, newest, tx_headers)
    info = client.status()
    chain_genesis = bytes.fromhex(info.genesis_hash)
    snapshot = encode(Snapshot(
        format=SNAPSHOT_FORMAT, genesis_hash=chain_genesis,
        evidence=make_bundle(chain_genesis, tx_headers, txs, changes),
        headers=tuple(reader.headers[h] for h in sorted(reader.headers)),
        entries=tuple(reader.entries)))
    if genesis is not None:
        try:
            verify_snapshot(snapshot, genesis, contract_code=contract_code())
        except SnapshotInvalid as exc:
            raise EvidenceError(f"the node's answers do not make a snapshot that verifies: {exc}") from exc
    return snapshot

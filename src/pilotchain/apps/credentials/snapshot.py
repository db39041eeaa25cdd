"""Chain snapshots: what a verifier needs, besides a presentation and the chain's genesis, to check
a diploma with no network. Pure: no I/O (``chain.py`` exports them from a node).

What a snapshot holds
---------------------
A canonical :class:`Snapshot` record (deterministic MessagePack, strict decoding):

* ``evidence`` — a platform evidence bundle (:mod:`pilotchain.ledger.evidence`): the
  ``credentials.anchor`` transactions of the batches covered, with inclusion proofs and receipts
  in certified headers, and every validator-set change since genesis up to the newest block the
  snapshot uses, each proven by governance's own transactions;
* ``headers`` — certified ledger headers (header + commit record), and ``entries`` — state values
  of the ``credentials`` contract (issuer records, keys with their validity, status lists) and
  ``gov``'s record of the deployed ``credentials`` contract, each with a state proof against the
  state root of one of those headers (an absent value is proven absent the same way).

Why verifying it is sound
-------------------------
:func:`verify_snapshot` trusts only the genesis document:

1. ``verify_bundle`` checks the evidence: each header's commit certificate against the validator
   set in force at its height, that set derived from genesis by replaying the proven governance
   changes (docs/audit.md explains why omitting or forging a change fails); each anchoring
   transaction's Merkle proof into its header and its signature.
2. Each state header is checked the same way — its certificate by more than 2/3 of the power of
   the set in force at its height, computed from the same proven changes. The ledger header
   names its validator roster by hash, so a snapshot that leaves out a change effective at or
   below a header's height fails there rather than verify against a stale set.
3. Each state value is proven by its bucket proof against that certified header's state root.
   A certified state root is the state after re-executing every block from genesis (validators
   refuse a proposal whose roots they do not reproduce), so a value proven there is what the
   contract's code — whose hash the snapshot proves from ``gov`` state and the verifier compares
   with the code it knows — wrote, and nothing else.

So the batch's root, size, key id and the block time it was anchored at come from a committed
transaction the issuer's organisation signed; the key's validity period and the status bits from
the contract's state at a certified height. The status is as fresh as that height, which the
verifier reports and bounds (``max_age``): between snapshots a revocation is not seen — the same
trade as any status list fetched earlier. A state proof carries the whole bucket it opens: the
other state entries that hash into the same buckets (on a chain of K keys about K/65,536 each)
travel with the snapshot; share snapshots accordingly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.consensus.certificate import ConsensusError, InvalidCertificate
from pilotchain.contracts.runtime import DeployedContract
from pilotchain.crypto import get_suite
from pilotchain.errors import CoreError
from pilotchain.ledger.commit import verify_header_commit
from pilotchain.ledger.commitment import StateProof, verify_state_proof
from pilotchain.ledger.evidence import CertifiedHeader, EvidenceInvalid, verify_bundle
from pilotchain.ledger.genesis import Genesis, ValidatorInfo, genesis_hash
from pilotchain.ledger.tx import decode_args

__all__ = [
    "CONTRACT",
    "SNAPSHOT_FORMAT",
    "AnchoredBatch",
    "Fact",
    "Snapshot",
    "SnapshotInvalid",
    "StateEntry",
    "VerifiedSnapshot",
    "batch_key",
    "batch_index_key",
    "contract_key",
    "issuer_key",
    "key_key",
    "list_key",
    "verify_snapshot",
]

CONTRACT = "credentials"
SNAPSHOT_FORMAT = "pilotchain-credential-snapshot/1"
SNAPSHOT_BYTES_MAX = 64 * 1024 * 1024
ENTRIES_MAX = 4096
HEADERS_MAX = 4096
_GOV = "gov"
_VALUE_DEPTH_MAX = 32


class SnapshotInvalid(CoreError):
    """A snapshot that proves nothing: ``where`` names the part, ``reason`` why."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


# ------------------------------------------------------------------------------ state keys


def _map_key(name: str, key: str) -> bytes:
    return b"m/" + name.encode() + b"\x00" + encode(key)


def issuer_key(iss: str) -> bytes:
    return _map_key("issuers", iss)


def key_key(iss: str, kid: str) -> bytes:
    return _map_key("keys", iss + "#" + kid)


def list_key(list_id: str) -> bytes:
    return _map_key("lists", list_id)


def batch_key(batch_id: str) -> bytes:
    return _map_key("batches", batch_id)


def batch_index_key(iss: str, n: int) -> bytes:
    return _map_key("batch_ids", iss + "#" + str(n))


def contract_key(name: str = CONTRACT) -> bytes:
    """``gov``'s record of a deployed contract."""
    return b"c/" + name.encode()


# ------------------------------------------------------------------------------ the record


class StateEntry(Record, frozen=True):
    """A state value (None: absent) of ``contract`` at ``key``, proven at block ``height``."""

    contract: str
    key: bytes
    height: int
    value: bytes | None
    proof: StateProof


class Snapshot(Record, frozen=True):
    format: str
    genesis_hash: bytes
    #: a pilotchain evidence bundle: anchoring transactions and the validator history
    evidence: bytes
    #: certified headers the entries are proven against, strictly ascending
    headers: tuple[CertifiedHeader, ...]
    entries: tuple[StateEntry, ...]


# ------------------------------------------------------------------------------ what it proves


@dataclass(frozen=True, slots=True)
class Fact:
    """A proven state value (None: proven absent) and the certified block it is as of."""

    value: Any
    height: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class AnchoredBatch:
    """A batch's tree head, as the committed ``credentials.anchor`` transaction carried it."""

    batch_id: str
    iss: str
    kid: str
    root: bytes
    size: int
    height: int
    timestamp_ms: int
    tx_id: bytes
    signer_org: str
    signer_name: str


@dataclass(frozen=True, slots=True)
class VerifiedSnapshot:
    chain_id: str
    suite: str
    genesis_hash: bytes
    #: gov's record of the deployed credentials contract (None when not deployed at that height)
    contract: Fact
    #: the code hash the verifier expected, and whether the deployed contract has it
    code_matches: bool
    issuers: dict[str, Fact]
    keys: dict[tuple[str, str], Fact]
    lists: dict[str, Fact]
    batches: dict[str, AnchoredBatch]
    certified_headers: int
    validator_changes: int
    #: time of the newest certified block the snapshot uses
    newest_ms: int


def verify_snapshot(data: bytes, genesis: Genesis, *, contract_code: bytes) -> VerifiedSnapshot:
    """Check ``data`` against ``genesis`` (the only trust anchor) — see the module docstring —
    and return what it proves. ``contract_code`` is the ``credentials`` source the verifier
    knows; whether the chain runs it is reported in ``code_matches``. Raises
    :class:`SnapshotInvalid` naming what failed."""
    try:
        genesis.check()
        suite = get_suite(genesis.suite)
    except CoreError as exc:
        raise SnapshotInvalid("genesis", f"not a usable genesis document: {exc}") from exc
    if len(data) > SNAPSHOT_BYTES_MAX:
        raise SnapshotInvalid("snapshot", f"{len(data)} bytes, limit {SNAPSHOT_BYTES_MAX}")
    try:
        snapshot = decode(data, Snapshot, max_bytes=SNAPSHOT_BYTES_MAX)
    except CodecError as exc:
        raise SnapshotInvalid("snapshot", f"not a canonical credential snapshot: {exc}") from exc
    if snapshot.format != SNAPSHOT_FORMAT:
        raise SnapshotInvalid("snapshot", f"format {snapshot.format!r}, this verifier reads {SNAPSHOT_FORMAT!r}")
    expected = genesis_hash(suite, genesis)
    if snapshot.genesis_hash != expected:
        raise SnapshotInvalid("snapshot", f"made for the chain with genesis hash {snapshot.genesis_hash.hex()}, "
                                          f"the genesis given hashes to {expected.hex()}")
    if len(snapshot.entries) > ENTRIES_MAX or len(snapshot.headers) > HEADERS_MAX:
        raise SnapshotInvalid("snapshot", f"at most {ENTRIES_MAX} entries and {HEADERS_MAX} headers")
    try:
        evidence = verify_bundle(snapshot.evidence, genesis)
    except EvidenceInvalid as exc:
        raise SnapshotInvalid(f"evidence.{exc.where}", exc.reason) from exc
    history = [(change.effective_height, change.validators) for change in evidence.validator_changes]

    def validators_at(height: int) -> tuple[ValidatorInfo, ...]:
        current = genesis.validators
        for effective_height, validators in history:
            if effective_height > height:
                break
            current = validators
        return current

    roots: dict[int, tuple[bytes, int]] = {}
    previous = 0
    for i, certified in enumerate(snapshot.headers):
        header = certified.header
        where = f"headers[{i}] (block {header.height})"
        if header.height <= previous:
            raise SnapshotInvalid(where, "heights must be strictly ascending, from 1")
        previous = header.height
        try:
            verify_header_commit(header, certified.commit, validators_at(header.height), suite)
        except (InvalidCertificate, ConsensusError) as exc:
            raise SnapshotInvalid(where, f"not certified by the validators in force at that height: {exc}") from exc
        if header.chain_id != genesis.chain_id:
            raise SnapshotInvalid(where, f"a block of chain {header.chain_id!r}")
        roots[header.height] = (header.state_root, header.timestamp_ms)
    used = {entry.height for entry in snapshot.entries}
    unused = sorted(set(roots) - used)
    if unused:
        raise SnapshotInvalid("headers", f"blocks {unused} prove no entry")

    facts: dict[tuple[str, bytes], Fact] = {}
    for i, entry in enumerate(snapshot.entries):
        where = f"entries[{i}] ({entry.contract})"
        found = roots.get(entry.height)
        if found is None:
            raise SnapshotInvalid(where, f"no certified header for block {entry.height}")
        if (entry.contract, entry.key) in facts:
            raise SnapshotInvalid(where, "the same state key twice")
        state_root, timestamp_ms = found
        if not verify_state_proof(state_root, entry.contract.encode() + b"\x00" + entry.key, entry.value, entry.proof,
                                  suite.hash, bucket_bits=genesis.params.state_bucket_bits):
            raise SnapshotInvalid(where, f"its state proof does not reach block {entry.height}'s state root")
        facts[(entry.contract, entry.key)] = Fact(value=_decoded(where, entry), height=entry.height,
                                                  timestamp_ms=timestamp_ms)

    contract = facts.pop((_GOV, contract_key()), None)
    if contract is None:
        raise SnapshotInvalid("entries", f"no proof of which code runs as contract {CONTRACT!r}")
    code_matches = isinstance(contract.value, DeployedContract) and \
        contract.value.code_hash == suite.hash(contract_code)
    issuers: dict[str, Fact] = {}
    keys: dict[tuple[str, str], Fact] = {}
    lists: dict[str, Fact] = {}
    for (owner, key), fact in facts.items():
        map_name, name = _parse_key(owner, key)
        if map_name == "issuers":
            issuers[name] = fact
        elif map_name == "keys":
            iss, _, kid = name.rpartition("#")
            keys[(iss, kid)] = fact
        elif map_name == "lists":
            lists[name] = fact
        else:
            raise SnapshotInvalid("entries", f"an entry of map {map_name!r}, which a snapshot does not use")

    batches: dict[str, AnchoredBatch] = {}
    for i, tx in enumerate(evidence.txs):
        where = f"evidence.txs[{i}]"
        if (tx.contract, tx.method) != (CONTRACT, "anchor") or tx.status != "OK":
            raise SnapshotInvalid(where, f"not a successful {CONTRACT}.anchor ({tx.contract}.{tx.method}, {tx.status})")
        batch = _anchor_of(where, tx.args, tx)
        if batch.batch_id in batches:
            raise SnapshotInvalid(where, f"batch {batch.batch_id} anchored twice")
        batches[batch.batch_id] = batch

    newest = max([fact.timestamp_ms for fact in (contract, *facts.values())] +
                 [header.timestamp_ms for header in evidence.headers])
    return VerifiedSnapshot(chain_id=genesis.chain_id, suite=genesis.suite, genesis_hash=expected, contract=contract,
                            code_matches=code_matches, issuers=issuers, keys=keys, lists=lists, batches=batches,
                            certified_headers=len(evidence.headers) + len(snapshot.headers),
                            validator_changes=len(evidence.validator_changes), newest_ms=newest)


def _decoded(where: str, entry: StateEntry) -> Any:
    if entry.value is None:
        return None
    try:
        if entry.contract == _GOV:
            return decode(entry.value, DeployedContract)
        return decode(entry.value, Any, depth_max=_VALUE_DEPTH_MAX)
    except CodecError as exc:
        raise SnapshotInvalid(where, f"the proven value does not decode: {exc}") from exc


def _parse_key(contract: str, key: bytes) -> tuple[str, str]:
    if contract != CONTRACT or not key.startswith(b"m/") or b"\x00" not in key:
        raise SnapshotInvalid("entries", f"a state entry of {contract} that a snapshot does not use")
    map_name, _, encoded = key[2:].partition(b"\x00")
    try:
        name = decode(encoded, str)
    except CodecError as exc:
        raise SnapshotInvalid("entries", f"a state key that does not decode: {exc}") from exc
    return map_name.decode("ascii", errors="replace"), name


def _anchor_of(where: str, args: bytes, tx: Any) -> AnchoredBatch:
    try:
        value = decode_args(args)
    except CodecError as exc:
        raise SnapshotInvalid(where, f"its arguments do not decode: {exc}") from exc
    head = value.get("batch") if isinstance(value, dict) else None
    fields: Sequence[Any] = (value.get("batch_id"), value.get("iss"), value.get("kid")) if isinstance(value, dict) \
        else (None, None, None)
    if not all(isinstance(f, str) for f in fields) or not isinstance(head, dict) \
            or not isinstance(head.get("root"), bytes) or not isinstance(head.get("size"), int):
        raise SnapshotInvalid(where, "its arguments are not {batch_id, iss, kid, batch: {root, size}}")
    batch_id, iss, kid = fields
    return AnchoredBatch(batch_id=batch_id, iss=iss, kid=kid, root=head["root"], size=head["size"],
                         height=tx.height, timestamp_ms=tx.timestamp_ms, tx_id=tx.tx_id,
                         signer_org=tx.signer_org, signer_name=tx.signer_name)

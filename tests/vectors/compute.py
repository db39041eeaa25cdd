"""Golden vectors: the computation shared by ``generate.py`` (writes the JSON) and
``test_golden.py`` (recomputes it and compares bytes).

Every vector is computed from fixed inputs only (seeds, chain id, times, keys and values), with
pilotchain's public APIs, once per crypto suite. One document per (topic, suite) becomes
``<topic>-<suite>.json``; a document is plain data::

    {"description": ..., "suite": "intl", "inputs": {...},
     "vectors": {name: {"description": ..., "hex": ... | "value": ...,
                        ["record": codec type], ["signer": key name, "message": vector name,
                         "randomized": true]}}}

``record`` names the canonical type the bytes decode as (see :data:`RECORDS`); ``signer`` and
``message`` say which key signed which other vector's bytes. Ed25519 signatures are
deterministic, so intl signatures are recomputed and compared like any other bytes. SM2
signatures are randomized: gm signature vectors carry ``"randomized": true`` and are taken from
the pinned document when recomputing (after checking that they verify over the recomputed
message), so everything that contains them is still compared byte for byte.

The semantic checks (the proofs verify, the certificate proves the block, the commit record
checks out against the validators, the ledger accepts its own block) run inside the
computation, so both the generator and the test make them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilotchain.codec import CodecError, decode, encode
from pilotchain.consensus import (
    CommitCertificate,
    ConsensusBlock,
    ConsensusHeader,
    InvalidCertificate,
    Proposal,
    ValidatorSet,
    ValidatorSetInfo,
    Vote,
    VoteType,
    compute_block_hash,
    compute_validator_set_hash,
    decode_message,
    get_proposal_signing_bytes,
    get_vote_signing_bytes,
    make_commit_certificate,
    verify_commit_certificate,
)
from pilotchain.consensus.types import ProposalSigningBody, VoteSigningBody
from pilotchain.contracts.kv import KvContract
from pilotchain.crypto import PrivateKey, Suite, get_suite
from pilotchain.ledger.block import (
    Block,
    BlockHeader,
    Receipt,
    TxProof,
    block_hash,
    make_tx_proof,
    receipt_root,
    tx_root,
    verify_tx_proof,
)
from pilotchain.ledger.commit import (
    CommitRecord,
    consensus_validator_set,
    verify_block_commit,
    verify_header_commit,
)
from pilotchain.ledger.commitment import (
    StateProof,
    bucket_of,
    compute_state_root,
    verify_state_proof,
)
from pilotchain.ledger.execution import Caller, ContractRegistry
from pilotchain.ledger.genesis import (
    GENESIS_STATE_KEY,
    Genesis,
    ValidatorInfo,
    genesis_hash,
    validator_roster_hash,
)
from pilotchain.ledger.tx import (
    TX_SIGNING_DOMAIN,
    RejectCode,
    Transaction,
    TxBody,
    TxRejected,
    check_transaction,
    decode_args,
    decode_transaction,
    encode_args,
    sign_transaction,
    tx_id_of_body,
)
from pilotchain.node.chain import Ledger
from pilotchain.storage import LedgerStore, StorageLimits

VECTOR_DIR = Path(__file__).resolve().parent
SUITES = ("intl", "gm")
TOPICS = ("transaction", "ledger", "state", "consensus")
#: Suites whose signatures differ on every call (SM2 draws a fresh nonce k per signature).
RANDOMIZED_SIGNATURES = {"intl": False, "gm": True}

CHAIN_ID = "golden-vectors"
GENESIS_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOCK_TIME_MS = GENESIS_TIME_MS + 1_000
EXPIRES_AT_MS = GENESIS_TIME_MS + 600_000
VALIDATORS = ("v0", "v1", "v2", "v3")
VALIDATOR_ORG = "org-ops"
#: client identities: name -> (organisation, roles)
USERS = {"alice": ("org-a", ("client",)), "bob": ("org-b", ("client",))}
#: the block's transactions: (signer, nonce, kv put arguments)
BLOCK_TXS: tuple[tuple[str, bytes, dict[str, Any]], ...] = (
    ("alice", b"\x01", {"key": "rate", "value": 425}),
    ("bob", b"\x02", {"key": "rate", "value": 1}),  # org-a owns "rate": PERMISSION_DENIED
    ("bob", b"\x03", {"key": "beds", "value": [90, "ward-b"]}),
)
STATE_BUCKET_BITS = 4
STATE_WRITES = tuple((f"account/{i:02d}", f"balance:{100 * i}") for i in range(12))
STATE_PRESENT_KEY = "account/03"
STATE_ABSENT_KEY = "account/99"
CONSENSUS_ROUND = 0
PRECOMMIT_SIGNERS = (0, 1, 2)  # 3 of 4 equal validators: more than two thirds


def seed_of(name: str) -> bytes:
    """The 32+ byte seed of the named key: ``b"pilotchain/golden-vectors/key/" + name``."""
    return b"pilotchain/golden-vectors/key/" + name.encode()


def private_key(suite: Suite, name: str) -> PrivateKey:
    return suite.private_key_from_seed(seed_of(name))


def certificate_of(suite: Suite, name: str) -> bytes:
    """The vectors' stand-in signer certificate: ``encode([name, org, [roles], SPKI DER])``.

    A transaction carries its signer's certificate as opaque bytes; real networks put an
    identity certificate there (CA-signed, so randomized under SM2). This fixed record keeps the
    vectors reproducible and is read by :class:`VectorAuthenticator`."""
    org, roles = USERS[name]
    return encode((name, org, roles, private_key(suite, name).public_key().to_der()))


class VectorAuthenticator:
    """The ledger's SignerAuthenticator for :func:`certificate_of` certificates."""

    def __init__(self, suite: Suite) -> None:
        self.suite = suite

    def _parse(self, certificate: bytes) -> tuple[str, str, tuple[str, ...], bytes]:
        try:
            return decode(certificate, tuple[str, str, tuple[str, ...], bytes])
        except CodecError as exc:
            raise TxRejected(RejectCode.UNKNOWN_SIGNER, "not a golden-vector certificate") from exc

    def public_key_of(self, certificate: bytes, now_ms: int) -> bytes:
        return self._parse(certificate)[3]

    def caller_of(self, certificate: bytes, now_ms: int) -> Caller:
        name, org, roles, _ = self._parse(certificate)
        return Caller(name=name, org=org, roles=roles, certificate_id=self.suite.hash(certificate))

    def reader(self, certificate: bytes, now_ms: int) -> tuple[bytes, Caller]:
        return self.public_key_of(certificate, now_ms), self.caller_of(certificate, now_ms)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


#: codec type of each ``record`` name in the documents
RECORDS: dict[str, Any] = {
    "ledger.TxBody": TxBody,
    "ledger.Transaction": Transaction,
    "ledger.Genesis": Genesis,
    "ledger.BlockHeader": BlockHeader,
    "ledger.Block": Block,
    "ledger.Receipt": Receipt,
    "ledger.TxProof": TxProof,
    "ledger.CommitRecord": CommitRecord,
    "state.StateProof": StateProof,
    "consensus.ValidatorSet": ValidatorSet,
    "consensus.BlockHeader": ConsensusHeader,
    "consensus.VoteSigningBody": VoteSigningBody,
    "consensus.ProposalSigningBody": ProposalSigningBody,
    "consensus.Vote": Vote,
    "consensus.Proposal": Proposal,
    "consensus.CommitCertificate": CommitCertificate,
}
#: records with their own decoder (``args``: contract arguments; ``consensus.message``: a tagged
#: consensus wire message, read with decode_message)
DECODERS: dict[str, Callable[[bytes], Any]] = {"args": decode_args, "consensus.message": decode_message}


def decode_record(record: str, data: bytes) -> Any:
    """Pinned bytes back to their value (strict: non-canonical bytes raise CodecError)."""
    if record in DECODERS:
        return DECODERS[record](data)
    return decode(data, RECORDS[record])


@dataclass
class Document:
    topic: str
    suite: Suite
    description: str
    inputs: dict[str, Any]
    vectors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, description: str, data: bytes, *, record: str | None = None) -> bytes:
        require(name not in self.vectors, f"vector {name!r} twice")
        entry: dict[str, Any] = {"description": description, "hex": data.hex()}
        if record is not None:
            require(encode(decode_record(record, data)) == data, f"{name} does not round-trip as {record}")
            entry["record"] = record
        self.vectors[name] = entry
        return data

    def value(self, name: str, description: str, value: Any) -> Any:
        require(name not in self.vectors, f"vector {name!r} twice")
        self.vectors[name] = {"description": description, "value": value}
        return value

    def public_key(self, name: str) -> bytes:
        """Pins the named key's SubjectPublicKeyInfo DER as ``key.<name>`` (once)."""
        vector = f"key.{name}"
        if vector not in self.vectors:
            self.add(vector, f"SubjectPublicKeyInfo DER of the {self.suite.signature_name} key "
                             f"suite.private_key_from_seed(seed) with seed = UTF-8 of inputs.keys.{name}",
                     private_key(self.suite, name).public_key().to_der())
        return bytes.fromhex(self.vectors[vector]["hex"])

    def as_json(self) -> dict[str, Any]:
        inputs = dict(self.inputs)
        keys = sorted(name[len("key."):] for name in self.vectors if name.startswith("key."))
        if keys:
            inputs["keys"] = {name: seed_of(name).decode() for name in keys}
        return {"description": self.description, "suite": self.suite.name, "inputs": inputs,
                "vectors": self.vectors}


@dataclass
class Signer:
    """Signs a named vector's message: fresh with the key, or for suites with randomized
    signatures with the pinned signature of that vector when one is given and still verifies.
    ``strict``: a pinned signature that no longer verifies is an error (the signed bytes
    changed), instead of being replaced by a fresh one."""

    suite: Suite
    pinned: Mapping[tuple[str, str], bytes]
    strict: bool

    def sign(self, doc: Document, name: str, signer: str, message_vector: str,
             message: bytes, description: str) -> bytes:
        key = private_key(self.suite, signer)
        public_key = doc.public_key(signer)
        randomized = RANDOMIZED_SIGNATURES[self.suite.name]
        signature = self.pinned.get((doc.topic, name)) if randomized else None
        if signature is not None and not self.suite.verify(public_key, message, signature):
            require(not self.strict, f"{doc.topic}-{self.suite.name}.json: the pinned signature {name} "
                                     f"does not verify over the recomputed {message_vector} "
                                     "(the signature or the signed bytes changed)")
            signature = None
        if signature is None:
            signature = key.sign(message)
        require(self.suite.verify(public_key, message, signature), f"{name} does not verify")
        doc.add(name, description + ("; SM2 signatures are randomized: this one is pinned, any valid "
                                     "signature over the message is as good, and the vectors that "
                                     "contain it are computed from this one" if randomized else ""),
                signature)
        entry = doc.vectors[name]
        entry.update({"signer": signer, "message": message_vector})
        if randomized:
            entry["randomized"] = True
        return signature


class _PresetKey:
    """A private-key stand-in that returns a signature already chosen (for sign_transaction)."""

    def __init__(self, signature: bytes) -> None:
        self.signature = signature

    def sign(self, message: bytes) -> bytes:
        return self.signature


def add_transaction(doc: Document, signer: Signer, prefix: str, user: str, nonce: bytes,
                    args: dict[str, Any]) -> bytes:
    """Pins one kv put transaction under ``<prefix>.*``; returns its wire bytes."""
    suite = doc.suite
    doc.public_key(user)
    certificate = certificate_of(suite, user)
    if f"cert.{user}" not in doc.vectors:
        doc.add(f"cert.{user}", f"the signer certificate of {user}: canonical encoding of the array "
                                f"[name, organisation, [roles], SPKI DER of key.{user}] (a stand-in "
                                "for an identity certificate; transactions carry it as opaque bytes)",
                certificate)
    args_bytes = encode_args(args)
    body = TxBody(chain_id=CHAIN_ID, signer_certificate=certificate, nonce=nonce,
                  expires_at_ms=EXPIRES_AT_MS, contract="kv", method="put", args=args_bytes)
    body_bytes = encode(body)
    signing_bytes = TX_SIGNING_DOMAIN + body_bytes
    doc.add(f"{prefix}.args", f"canonical MessagePack of the kv put arguments {args} (encode_args; "
                              "maps with sorted keys, shortest integers)", args_bytes, record="args")
    doc.add(f"{prefix}.body", "canonical bytes of TxBody(chain_id, signer_certificate=cert."
                              f"{user}, nonce={nonce.hex()}, expires_at_ms={EXPIRES_AT_MS}, "
                              f"contract='kv', method='put', args={prefix}.args): a MessagePack array "
                              "of the fields in declaration order", body_bytes, record="ledger.TxBody")
    doc.add(f"{prefix}.id", "transaction id: suite hash of TX_ID_DOMAIN ('pilotchain/txid/v1' + 0x00) "
                            f"|| {prefix}.body (the signature is not part of the id)",
            tx_id_of_body(suite, body_bytes))
    doc.add(f"{prefix}.signing_bytes", "what the signer signs: TX_SIGNING_DOMAIN ('pilotchain/tx/v1' "
                                       f"+ 0x00) || {prefix}.body", signing_bytes)
    signature = signer.sign(doc, f"{prefix}.signature", user, f"{prefix}.signing_bytes", signing_bytes,
                            f"{suite.signature_name} signature by key.{user} over {prefix}.signing_bytes "
                            f"({'raw 64 bytes' if suite.name == 'intl' else 'DER SEQUENCE of r, s'})")
    wire = sign_transaction(suite, _PresetKey(signature), body)
    require(wire == encode(Transaction(body=body_bytes, signature=signature)), "wire is not the envelope")
    decoded = decode_transaction(suite, wire)
    require(decoded.body_bytes == body_bytes and decoded.tx_id == tx_id_of_body(suite, body_bytes),
            "the wire bytes do not decode to the body")
    doc.add(f"{prefix}.wire", "the signed transaction on the wire (sign_transaction): canonical "
                              f"bytes of Transaction(body={prefix}.body, signature={prefix}.signature)",
            wire, record="ledger.Transaction")
    return wire


def transaction_document(suite: Suite, signer: Signer) -> Document:
    user, nonce, args = BLOCK_TXS[0]
    doc = Document("transaction", suite, (
        f"One signed kv put transaction under the {suite.name} suite ({suite.signature_name} / "
        f"{suite.hash_name}): its canonical body, id, signing bytes, signature and wire bytes."),
        {"chain_id": CHAIN_ID, "signer": user, "organisation": USERS[user][0], "roles": list(USERS[user][1]),
         "nonce_hex": nonce.hex(), "expires_at_ms": EXPIRES_AT_MS, "contract": "kv", "method": "put",
         "args": args})
    wire = add_transaction(doc, signer, "tx", user, nonce, args)
    authenticator = VectorAuthenticator(suite)
    checked = check_transaction(suite, wire, chain_id=CHAIN_ID, now_ms=BLOCK_TIME_MS,
                                signer_public_key=lambda cert: authenticator.public_key_of(cert, BLOCK_TIME_MS))
    require(checked.raw == wire, "check_transaction changed the bytes")
    return doc


def genesis_of(suite: Suite) -> Genesis:
    validators = tuple(ValidatorInfo(name=name, org=VALIDATOR_ORG,
                                     public_key=private_key(suite, name).public_key().to_der())
                       for name in VALIDATORS)
    return Genesis(chain_id=CHAIN_ID, suite=suite.name, genesis_time_ms=GENESIS_TIME_MS, organizations=(),
                   validators=validators)


def open_ledger(path: Path, suite: Suite) -> Ledger:
    registry = ContractRegistry()
    registry.register(KvContract())
    return Ledger.open(path, genesis_of(suite), VectorAuthenticator(suite), registry)


@dataclass
class LedgerResult:
    doc: Document
    genesis: Genesis
    block0_hash: bytes
    block: Block
    block_bytes: bytes


def ledger_document(suite: Suite, signer: Signer, workdir: Path) -> LedgerResult:
    genesis = genesis_of(suite)
    doc = Document("ledger", suite, (
        f"A fresh ledger under the {suite.name} suite: genesis (block 0) and block 1 holding three kv "
        "put transactions, built with Ledger.build_block and committed on an empty folder. The "
        "contract registry has only the built-in kv contract; signers authenticate with the "
        "stand-in certificates of cert.*."),
        {"chain_id": CHAIN_ID, "genesis_time_ms": GENESIS_TIME_MS, "block_time_ms": BLOCK_TIME_MS,
         "proposer": VALIDATORS[0], "validators": [{"name": name, "org": VALIDATOR_ORG, "power": 1}
                                                   for name in VALIDATORS],
         "genesis_organizations": [], "chain_params": "ChainParams() defaults",
         "users": {name: {"org": org, "roles": list(roles)} for name, (org, roles) in USERS.items()},
         "transactions": [{"signer": user, "nonce_hex": nonce.hex(), "expires_at_ms": EXPIRES_AT_MS,
                           "contract": "kv", "method": "put", "args": args}
                          for user, nonce, args in BLOCK_TXS]})
    for name in VALIDATORS:
        doc.public_key(name)
    genesis_bytes = doc.add("genesis.bytes", "canonical bytes of the Genesis document (chain id, suite, "
                                             "time, no organisations, validators v0..v3 with power 1, "
                                             "default ChainParams)", encode(genesis), record="ledger.Genesis")
    doc.add("genesis.hash", "the network's identity (genesis_hash): suite hash of "
                            "'pilotchain/genesis/v1' + 0x00 || genesis.bytes", genesis_hash(suite, genesis))
    doc.add("genesis.validator_set_hash", "suite hash of 'pilotchain/validators/v1' + 0x00 || canonical "
                                          "bytes of the genesis validators (ValidatorInfo array)",
            validator_roster_hash(suite.hash, genesis.validators))
    wires = [add_transaction(doc, signer, f"tx{index}", user, nonce, args)
             for index, (user, nonce, args) in enumerate(BLOCK_TXS)]
    ledger = open_ledger(workdir / "ledger", suite)
    try:
        block0 = ledger.get_block(0)
        if block0 is None:
            raise AssertionError("no genesis block")
        require(ledger.store.get(GENESIS_STATE_KEY) == genesis_bytes, "genesis not in the state")
        block0_hash = ledger.head_hash
        doc.add("block0.header", "canonical bytes of the genesis BlockHeader: height 0, zero parent "
                                 "hash, proposer 'genesis', empty tx and receipt roots, the state root "
                                 "of {'sys' 0x00 'genesis': genesis.bytes}", encode(block0.header),
                record="ledger.BlockHeader")
        doc.add("block0.hash", "the genesis block hash (the chain's identity): suite hash of "
                               "'pilotchain/block/v1' + 0x00 || block0.header", block0_hash)
        doc.add("block0.state_root", "world-state root after genesis (bucket tree, 2**16 buckets)",
                block0.header.state_root)
        doc.add("empty_merkle_root", "Merkle root of an empty list (the tx and receipt roots of block "
                                     "0): suite hash of the empty string", tx_root(suite, []))
        require(block_hash(suite, block0.header) == block0_hash, "head hash is not the block hash")
        block = ledger.build_block(wires, proposer=VALIDATORS[0], timestamp_ms=BLOCK_TIME_MS)
        require(block.txs == tuple(wires), "build_block dropped or reordered a transaction")
        digest = ledger.commit_block(block)
        value, proof = ledger.read_state("kv", b"v/rate")
    finally:
        ledger.close()
    header = block.header
    block_bytes = encode(block)
    for index, receipt in enumerate(block.receipts):
        doc.add(f"receipt{index}", f"canonical bytes of the Receipt of tx{index} (tx id, status, "
                                   "message, result, events, steps used)", encode(receipt),
                record="ledger.Receipt")
    doc.value("block1.statuses", "receipt statuses of block 1, in order", [r.status for r in block.receipts])
    doc.add("block1.tx_root", "RFC 6962 Merkle root (leaf = H(0x00 || tx wire bytes), node = "
                              "H(0x01 || left || right)) over tx0.wire, tx1.wire, tx2.wire",
            tx_root(suite, block.txs))
    doc.add("block1.receipt_root", "RFC 6962 Merkle root over receipt0..receipt2",
            receipt_root(suite, block.receipts))
    doc.add("block1.state_root", "world-state root after executing block 1 on the genesis state",
            header.state_root)
    doc.add("block1.header", f"canonical bytes of block 1's BlockHeader (version 1, parent = "
                             f"block0.hash, proposer {VALIDATORS[0]}, timestamp block_time_ms, the "
                             "three roots, validator_set_hash = genesis.validator_set_hash, empty "
                             "consensus_data)", encode(header), record="ledger.BlockHeader")
    doc.add("block1.hash", "suite hash of 'pilotchain/block/v1' + 0x00 || block1.header", digest)
    doc.add("block1.bytes", "canonical bytes of Block(header, txs, receipts): what storage keeps and "
                            "what a consensus proposal carries as its payload", block_bytes,
            record="ledger.Block")
    require(header.tx_root == tx_root(suite, block.txs) and digest == block_hash(suite, header), "roots")
    require(header.parent_hash == block0_hash, "block 1 does not link to genesis")
    require(header.validator_set_hash == validator_roster_hash(suite.hash, genesis.validators), "valset")
    tx_proof = make_tx_proof(suite, block, 0)
    require(verify_tx_proof(suite, header, block.txs[0], block.receipts[0], tx_proof), "tx proof")
    doc.add("block1.tx0_proof", "TxProof that tx0.wire and receipt0 are item 0 of block 1 (Merkle "
                                "audit paths for both roots); verify_tx_proof accepts it",
            encode(tx_proof), record="ledger.TxProof")
    if value is None:
        raise AssertionError("kv key 'rate' missing")
    require(verify_state_proof(header.state_root, b"kv\x00v/rate", value, proof, suite.hash), "state proof")
    doc.add("block1.state.kv_rate", "committed value of state key 'kv' 0x00 'v/rate': canonical "
                                    "[owner organisation, value] written by tx0", value)
    doc.add("block1.state.kv_rate_proof", "StateProof of kv_rate under block1.state_root (its bucket's "
                                          "entries and 16 sibling hashes); verify_state_proof accepts it",
            encode(proof), record="state.StateProof")
    return LedgerResult(doc, genesis, block0_hash, block, block_bytes)


def accept_pinned_block(suite: Suite, block_bytes: bytes, workdir: Path) -> bytes:
    """Commit pinned block 1 bytes on a fresh ledger (full re-execution, nothing cached); its hash."""
    ledger = open_ledger(workdir, suite)
    try:
        return ledger.commit_block(decode(block_bytes, Block), encoded=block_bytes)
    finally:
        ledger.close()


def state_document(suite: Suite, workdir: Path) -> Document:
    doc = Document("state", suite, (
        f"The bucket-tree state commitment under the {suite.name} suite with {STATE_BUCKET_BITS} bucket "
        "bits: the root of a fixed set of writes and proofs of one present and one absent key. The "
        "root is computed twice (pure compute_state_root and LedgerStore.prepare_state); the proofs "
        "come from LedgerStore.get_with_proof after committing the writes."),
        {"bucket_bits": STATE_BUCKET_BITS, "writes": dict(STATE_WRITES),
         "encoding": "keys and values are the UTF-8 bytes of the strings", "present_key": STATE_PRESENT_KEY,
         "absent_key": STATE_ABSENT_KEY})
    items = [(key.encode(), value.encode()) for key, value in STATE_WRITES]
    root = compute_state_root(items, STATE_BUCKET_BITS, suite.hash)
    store = LedgerStore.open(workdir / "state", suite.hash, bucket_bits=STATE_BUCKET_BITS,
                             limits=StorageLimits(map_size_bytes=64 * 1024 * 1024))
    try:
        empty_root = store.state_root
        prepared = store.prepare_state(dict(items))
        require(prepared.root == root, "LedgerStore and compute_state_root disagree on the root")
        store.commit_block(0, suite.hash(b"golden state block"), b"golden state block", [], prepared)
        require(store.state_root == root, "committed root differs from the prepared root")
        present_value, present = store.get_with_proof(STATE_PRESENT_KEY.encode())
        absent_value, absent = store.get_with_proof(STATE_ABSENT_KEY.encode())
    finally:
        store.close()
    require(empty_root == compute_state_root([], STATE_BUCKET_BITS, suite.hash), "empty root")
    doc.add("empty_root", f"root of the empty state: a complete binary tree of 2**{STATE_BUCKET_BITS} "
                          "empty leaves, leaf = H(0x00 || encode([])), node = H(0x01 || left || right)",
            empty_root)
    doc.value("buckets", "bucket of each written key: the top bucket_bits bits of H(key)",
              {key: bucket_of(key.encode(), STATE_BUCKET_BITS, suite.hash) for key, _ in STATE_WRITES})
    doc.add("root", "state root after the writes: leaf = H(0x00 || canonical array of the bucket's "
                    "[key, value] pairs sorted by key), tree as for empty_root", root)
    require(present_value == dict(STATE_WRITES)[STATE_PRESENT_KEY].encode(), "present value")
    require(absent_value is None, "absent key has a value")
    require(verify_state_proof(root, STATE_PRESENT_KEY.encode(), present_value, present, suite.hash,
                               bucket_bits=STATE_BUCKET_BITS), "present-key proof does not verify")
    require(verify_state_proof(root, STATE_ABSENT_KEY.encode(), None, absent, suite.hash,
                               bucket_bits=STATE_BUCKET_BITS), "absent-key proof does not verify")
    doc.add("proof.present", f"StateProof of {STATE_PRESENT_KEY!r} = {present_value.decode()!r} under "
                             "root: bucket_bits, bucket, the bucket's full sorted entries, and the "
                             "sibling hashes from the leaf up", encode(present), record="state.StateProof")
    doc.add("proof.absent", f"StateProof that {STATE_ABSENT_KEY!r} is absent under root (its bucket's "
                            "complete entry list does not contain it)", encode(absent),
            record="state.StateProof")
    return doc


def consensus_document(suite: Suite, signer: Signer, ledger: LedgerResult) -> Document:
    chain_id = CHAIN_ID.encode()
    block = ledger.block
    doc = Document("consensus", suite, (
        f"Consensus around ledger block 1 of ledger-{suite.name}.json (its block1.bytes is the "
        f"payload) under the {suite.name} suite: the validator set, the consensus block header and "
        "its hash, proposal and vote signing bytes, precommits by v0, v1 and v2, the commit "
        "certificate and the commit record a node stores beside the block."),
        {"chain_id": CHAIN_ID, "height": 1, "round": CONSENSUS_ROUND, "validators": list(VALIDATORS),
         "voting_power": 1, "precommit_signers": [VALIDATORS[i] for i in PRECOMMIT_SIGNERS],
         "payload": f"block1.bytes of ledger-{suite.name}.json",
         "parent_hash": f"block0.hash of ledger-{suite.name}.json"})
    for name in VALIDATORS:
        doc.public_key(name)
    validator_set = consensus_validator_set(ledger.genesis.validators)
    info = ValidatorSetInfo(suite, validator_set)
    doc.add("validator_set", "canonical bytes of ValidatorSet([Validator(key.v0, 1) .. Validator(key.v3, 1)])",
            encode(validator_set), record="consensus.ValidatorSet")
    set_hash = doc.add("validator_set_hash", "suite hash of validator_set (compute_validator_set_hash)",
                       compute_validator_set_hash(suite, validator_set))
    require(info.hash == set_hash, "ValidatorSetInfo hash")
    proposer = info.get_proposer_index(1, CONSENSUS_ROUND)
    payload_hash = doc.add("payload_hash", f"the ledger block's hash, block1.hash of ledger-{suite.name}.json "
                                           "(suite hash of 'pilotchain/block/v1' + 0x00 || block1.header): the "
                                           "header commits to the payload's transactions and receipts by its roots, "
                                           "so the certificate proves the ledger header without its body",
                           block_hash(suite, block.header))
    header = ConsensusHeader(chain_id=chain_id, height=1, round=CONSENSUS_ROUND, parent_hash=ledger.block0_hash,
                             proposer_index=proposer, timestamp_ms=block.header.timestamp_ms,
                             validator_set_hash=set_hash, payload_hash=payload_hash)
    doc.add("header", f"canonical bytes of the consensus BlockHeader(chain_id, height 1, round 0, parent "
                      f"= block0.hash, proposer_index {proposer} = (height + round) % 4, timestamp = block "
                      "1's, validator_set_hash, payload_hash)", encode(header), record="consensus.BlockHeader")
    digest = doc.add("header_hash", "the consensus block hash votes are about: suite hash of header "
                                    "(no domain prefix)", compute_block_hash(suite, header))
    proposal_bytes = doc.add("proposal.signing_bytes", "canonical ProposalSigningBody('pilotchain/"
                                                       "consensus/proposal/v1', chain_id, 1, 0, header_hash, "
                                                       "valid_round -1)",
                             get_proposal_signing_bytes(chain_id, 1, CONSENSUS_ROUND, digest, -1),
                             record="consensus.ProposalSigningBody")
    proposer_name = VALIDATORS[proposer]
    proposal_signature = signer.sign(doc, "proposal.signature", proposer_name, "proposal.signing_bytes",
                                     proposal_bytes, f"signature by key.{proposer_name} (the proposer) over "
                                                     "proposal.signing_bytes")
    proposal = Proposal(height=1, round=CONSENSUS_ROUND, block=ConsensusBlock(header, ledger.block_bytes),
                        valid_round=-1, polka=(), proposer_index=proposer, signature=proposal_signature)
    doc.add("proposal.message", "the PROPOSAL wire message (tagged MessagePack array, tag 1; "
                                "decode_message reads it): height, round, block (header, payload), "
                                "valid_round, polka, proposer_index, signature", encode(proposal),
            record="consensus.message")
    doc.add("prevote.signing_bytes", "canonical VoteSigningBody('pilotchain/consensus/vote/v1', chain_id, "
                                     "PREVOTE=1, 1, 0, header_hash)",
            get_vote_signing_bytes(chain_id, VoteType.PREVOTE, 1, CONSENSUS_ROUND, digest),
            record="consensus.VoteSigningBody")
    precommit_bytes = doc.add("precommit.signing_bytes", "canonical VoteSigningBody('pilotchain/consensus/"
                                                         "vote/v1', chain_id, PRECOMMIT=2, 1, 0, header_hash)",
                              get_vote_signing_bytes(chain_id, VoteType.PRECOMMIT, 1, CONSENSUS_ROUND, digest),
                              record="consensus.VoteSigningBody")
    votes = []
    for index in PRECOMMIT_SIGNERS:
        name = VALIDATORS[index]
        signature = signer.sign(doc, f"precommit.{name}.signature", name, "precommit.signing_bytes",
                                precommit_bytes, f"PRECOMMIT signature by key.{name} over precommit.signing_bytes")
        votes.append(Vote(vote_type=VoteType.PRECOMMIT, height=1, round=CONSENSUS_ROUND, block_hash=digest,
                          validator_index=index, signature=signature))
    doc.add("precommit.v0.message", "the VOTE wire message of v0's precommit (tag 2): vote_type, height, "
                                    "round, block_hash, validator_index, signature", encode(votes[0]),
            record="consensus.message")
    certificate = make_commit_certificate(chain_id, 1, CONSENSUS_ROUND, digest, reversed(votes))
    verify_commit_certificate(certificate, digest, validator_set, suite, chain_id=chain_id, height=1)
    short = make_commit_certificate(chain_id, 1, CONSENSUS_ROUND, digest, votes[:2])
    try:
        verify_commit_certificate(short, digest, validator_set, suite)
    except InvalidCertificate:
        pass
    else:
        raise AssertionError("two of four precommits passed as a quorum")
    doc.add("certificate", "canonical CommitCertificate(chain_id, 1, 0, header_hash, [(0, sig v0), "
                           "(1, sig v1), (2, sig v2)]), signers ascending; verify_commit_certificate "
                           "accepts it against validator_set (3 of 4 voting power > 2/3)",
            encode(certificate), record="consensus.CommitCertificate")
    record = encode(CommitRecord(header=header, certificate=certificate))
    verify_block_commit(block, record, ledger.genesis.validators, suite)
    verify_header_commit(block.header, record, ledger.genesis.validators, suite)
    doc.add("commit_record", "canonical CommitRecord(header, certificate): what a consensus node "
                             "stores in block 1's certificate slot; verify_header_commit accepts it "
                             "for block 1's header (and verify_block_commit for the whole block) and "
                             "the genesis validators", record, record="ledger.CommitRecord")
    return doc


def pinned_signatures(documents: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], bytes]:
    """The randomized signatures of a suite's pinned documents (topic -> document)."""
    return {(topic, name): bytes.fromhex(entry["hex"])
            for topic, document in documents.items()
            for name, entry in document["vectors"].items() if entry.get("randomized")}


def compute_suite(suite_name: str, pinned: Mapping[tuple[str, str], bytes] | None = None, *,
                  strict: bool = False) -> dict[str, dict[str, Any]]:
    """Every document of one suite (topic -> JSON-ready document)."""
    suite = get_suite(suite_name)
    signer = Signer(suite, pinned or {}, strict)
    with tempfile.TemporaryDirectory(prefix="pilotchain-vectors-") as tmp:
        workdir = Path(tmp)
        transaction = transaction_document(suite, signer)
        ledger = ledger_document(suite, signer, workdir)
        require(accept_pinned_block(suite, ledger.block_bytes, workdir / "replay")
                == bytes.fromhex(ledger.doc.vectors["block1.hash"]["hex"]), "a fresh ledger refused block 1")
        state = state_document(suite, workdir)
    consensus = consensus_document(suite, signer, ledger)
    documents = {"transaction": transaction, "ledger": ledger.doc, "state": state, "consensus": consensus}
    require(tuple(documents) == TOPICS, "topics")
    return {topic: doc.as_json() for topic, doc in documents.items()}


def path_of(directory: Path, topic: str, suite_name: str) -> Path:
    return directory / f"{topic}-{suite_name}.json"

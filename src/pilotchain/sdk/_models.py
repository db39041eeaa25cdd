"""What the SDK returns, read from the gateway's JSON, and the proof checks on it.

How far verification goes
-------------------------
With ``verify=True`` (the default) the SDK checks every committed transaction's inclusion
proof (transaction and receipt under the header's ``tx_root`` / ``receipt_root``), every state
value's proof under the header's ``state_root``, every block body against its header, and that
each header hashes to the block hash the node reported. The *header itself* is trusted from
the node you ask — unless you pass a ``verify_header(header, certificate)`` hook, which the
consensus engine provides for light clients: it checks the commit certificate's signatures
against the validator set, so a single dishonest node can no longer fool you.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pilotchain.codec import CodecError, encode
from pilotchain.crypto import Suite
from pilotchain.errors import InvariantBroken
from pilotchain.ledger.block import (
    BlockHeader,
    Receipt,
    TxProof,
    block_hash,
    verify_block_leaves,
    verify_tx_proof,
)
from pilotchain.ledger.commitment import StateProof, verify_state_proof
from pilotchain.ledger.merkle import leaf_hash
from pilotchain.ledger.tx import decode_args
from pilotchain.sdk._errors import ProofError, ResponseError
from pilotchain.sdk.wire import (
    WireError,
    from_tagged_json,
    header_from_json,
    receipt_from_json,
    state_proof_from_json,
    tx_proof_from_json,
    unb64,
)

__all__ = [
    "HeaderVerifier",
    "NodeInfo",
    "BlockTx",
    "BlockInfo",
    "ContractEvent",
    "TxResult",
    "StateValue",
    "ChainEvent",
]

#: ``verify_header(header, certificate)`` raises ProofError unless the header is certified.
HeaderVerifier = Callable[[BlockHeader, bytes | None], None]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    chain_id: str
    node: str
    org: str
    suite: str
    height: int
    last_block_hash: str
    last_block_time_ms: int
    state_root: str
    validators: tuple[str, ...]
    genesis_hash: str
    peers: dict[str, bool]
    mempool_size: int
    consensus: dict[str, Any]
    syncing: bool

    @classmethod
    def from_json(cls, document: Any) -> NodeInfo:
        try:
            return cls(
                chain_id=document["chain_id"],
                node=document["node"],
                org=document["org"],
                suite=document["suite"],
                height=int(document["height"]),
                last_block_hash=document["last_block_hash"],
                last_block_time_ms=int(document["last_block_time_ms"]),
                state_root=document["state_root"],
                validators=tuple(document["validators"]),
                genesis_hash=document["genesis_hash"],
                peers=dict(document["peers"]),
                mempool_size=int(document["mempool"]["size"]),
                consensus=dict(document.get("consensus", {})),
                syncing=bool(document["syncing"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResponseError(f"not a node status document: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ContractEvent:
    contract: str
    name: str
    data: Any  #: the decoded payload (None when not a canonical value)
    data_raw: bytes


def _decoded(data: bytes) -> Any:
    if not data:
        return None
    try:
        return decode_args(data)
    except CodecError:
        return None


def _events(receipt: Receipt) -> tuple[ContractEvent, ...]:
    return tuple(
        ContractEvent(e.contract, e.name, _decoded(e.data), e.data) for e in receipt.events
    )


@dataclass(frozen=True, slots=True)
class BlockTx:
    """One transaction of a block, as the gateway summarises it. A transaction of a contract the
    reader may not read (its ``@read`` permission) comes ``redacted``: no bytes, method,
    arguments or signer, only its id, contract, the reason and the Merkle leaf hash that keeps
    the block checkable against its header."""

    tx_id: str
    raw: bytes
    contract: str
    method: str
    args: Any
    signer_org: str | None
    signer_subject: str | None
    redacted: bool = False
    redacted_reason: str = ""
    leaf_hash: bytes = b""

    @classmethod
    def from_json(cls, document: Any) -> BlockTx:
        if document.get("redacted") is True:
            return cls(tx_id=str(document["tx_id"]), raw=b"", contract=str(document.get("contract", "")),
                       method="", args=None, signer_org=None, signer_subject=None, redacted=True,
                       redacted_reason=str(document.get("reason", "")),
                       leaf_hash=bytes.fromhex(str(document["leaf_hash"])))
        signer = document.get("signer") or {}
        return cls(
            tx_id=document.get("tx_id", ""),
            raw=unb64(document["raw"], "raw"),
            contract=document.get("contract", ""),
            method=document.get("method", ""),
            args=from_tagged_json(document.get("args")),
            signer_org=signer.get("org"),
            signer_subject=signer.get("subject"),
        )


@dataclass(frozen=True, slots=True)
class BlockInfo:
    height: int
    hash: str
    header: BlockHeader
    transactions: tuple[BlockTx, ...]
    receipts: tuple[Receipt, ...]
    certificate: bytes | None
    verified: bool
    #: indices of the transactions (and receipts) redacted for this reader; their receipts carry
    #: only the status
    redacted: tuple[int, ...] = ()
    #: the Merkle leaf hash the node served for each redacted receipt (b"" for the others), so a
    #: reader can recheck the receipt root elsewhere (the explorer's page does, in the browser)
    receipt_leaf_hashes: tuple[bytes, ...] = ()

    @classmethod
    def from_json(
        cls, document: Any, suite: Suite | None, verify_header: HeaderVerifier | None
    ) -> BlockInfo:
        try:
            header = header_from_json(document["header"])
            transactions = tuple(BlockTx.from_json(tx) for tx in document["transactions"])
            receipt_documents = list(document["receipts"])
            receipts = tuple(_receipt_or_stub(r) for r in receipt_documents)
            receipt_leaves = [bytes.fromhex(str(r["leaf_hash"])) if r.get("redacted") is True else b""
                              for r in receipt_documents]
            certificate = (
                unb64(document["certificate"], "certificate")
                if document.get("certificate")
                else None
            )
            reported_hash = str(document["hash"])
        except (KeyError, TypeError, ValueError, AttributeError, WireError) as exc:
            raise ResponseError(f"not a block document: {exc}") from exc
        if suite is not None:
            _check_header(suite, header, reported_hash, certificate, verify_header)
            tx_leaves = [t.leaf_hash if t.redacted else leaf_hash(suite.hash, t.raw) for t in transactions]
            leaves = [given or leaf_hash(suite.hash, encode(r)) for given, r in zip(receipt_leaves, receipts, strict=False)]
            problem = verify_block_leaves(suite, header, tx_leaves, leaves)
            if problem:
                raise ProofError(f"block {header.height} does not match its header: {problem}")
        return cls(
            height=header.height,
            hash=reported_hash,
            header=header,
            transactions=transactions,
            receipts=receipts,
            certificate=certificate,
            verified=suite is not None,
            redacted=tuple(i for i, t in enumerate(transactions) if t.redacted),
            receipt_leaf_hashes=tuple(receipt_leaves),
        )


def _receipt_or_stub(document: Any) -> Receipt:
    """A receipt, or for a redacted one a stub with its id and status only."""
    if document.get("redacted") is True:
        return Receipt(tx_id=bytes.fromhex(str(document["tx_id"])), status=str(document["status"]),
                       message="", result=b"", events=(), steps_used=0)
    return receipt_from_json(document)


def _check_header(
    suite: Suite,
    header: BlockHeader,
    reported_hash: str,
    certificate: bytes | None,
    verify_header: HeaderVerifier | None,
) -> None:
    if block_hash(suite, header).hex() != reported_hash:
        raise ProofError(
            f"header of block {header.height} does not hash to the block hash the node reported"
        )
    if verify_header is not None:
        verify_header(header, certificate)


@dataclass(frozen=True, slots=True)
class TxResult:
    """A transaction's state: pending, committed (with receipt and proof) or rejected."""

    tx_id: str
    state: str
    #: for rejected: the RejectCode value and message
    code: str | None = None
    message: str | None = None
    #: for committed
    height: int | None = None
    index: int | None = None
    receipt: Receipt | None = None
    header: BlockHeader | None = None
    block_hash: str | None = None
    proof: TxProof | None = None
    certificate: bytes | None = None
    tx_raw: bytes | None = None
    contract: str | None = None
    method: str | None = None
    signer_org: str | None = None
    #: the proof was checked against the header (and the header against the hook, if any)
    verified: bool = False
    events: tuple[ContractEvent, ...] = field(default_factory=tuple)

    @property
    def pending(self) -> bool:
        return self.state == "pending"

    @property
    def committed(self) -> bool:
        return self.state == "committed"

    @property
    def rejected(self) -> bool:
        return self.state == "rejected"

    @property
    def status(self) -> str | None:
        """The receipt's status: "OK" or the RejectCode value execution failed with."""
        return self.receipt.status if self.receipt is not None else None

    @property
    def ok(self) -> bool:
        return self.committed and self.status == "OK"

    @property
    def result(self) -> Any:
        """The contract's decoded return value (None when failed or nothing returned)."""
        return _decoded(self.receipt.result) if self.receipt is not None else None

    def raise_for_status(self) -> TxResult:
        """Raise TxRejectedError unless committed with status OK (returns self otherwise)."""
        from pilotchain.sdk._errors import TxRejectedError

        if self.rejected:
            raise TxRejectedError(self.code or "REJECTED", self.message or "", self.tx_id)
        if self.committed and not self.ok:
            if not (self.receipt is not None):
                raise InvariantBroken('invariant broken: self.receipt is not None')
            raise TxRejectedError(
                self.receipt.status,
                f"failed in block {self.height}: {self.receipt.message}",
                self.tx_id,
            )
        return self

    @classmethod
    def from_json(
        cls,
        document: Any,
        suite: Suite | None,
        verify_header: HeaderVerifier | None,
        expected_tx_id: str | None = None,
    ) -> TxResult:
        try:
            state = str(document["state"])
            tx_id = str(document["tx_id"])
            if state != "committed":
                return cls(
                    tx_id=tx_id,
                    state=state,
                    code=document.get("code"),
                    message=document.get("message"),
                )
            tx = document["tx"]
            raw = unb64(tx["raw"], "tx.raw")
            receipt = receipt_from_json(document["receipt"])
            header = header_from_json(document["header"])
            proof = tx_proof_from_json(document["proof"])
            reported_hash = str(document["block_hash"])
            certificate = (
                unb64(document["certificate"], "certificate")
                if document.get("certificate")
                else None
            )
            signer = tx.get("signer") or {}
        except (KeyError, TypeError, WireError) as exc:
            raise ResponseError(f"not a transaction document: {exc}") from exc
        if expected_tx_id is not None and tx_id != expected_tx_id:
            raise ProofError(
                f"asked for transaction {expected_tx_id}, the node answered about {tx_id}"
            )
        if suite is not None:
            if receipt.tx_id.hex() != tx_id:
                raise ProofError(
                    f"the receipt is for transaction {receipt.tx_id.hex()}, not {tx_id}"
                )
            if not verify_tx_proof(suite, header, raw, receipt, proof):
                raise ProofError(
                    f"the inclusion proof of transaction {tx_id} does not verify against block "
                    f"{header.height}'s header: do not trust this node's answer"
                )
            _check_header(suite, header, reported_hash, certificate, verify_header)
        return cls(
            tx_id=tx_id,
            state=state,
            height=header.height,
            index=proof.index,
            receipt=receipt,
            header=header,
            block_hash=reported_hash,
            proof=proof,
            certificate=certificate,
            tx_raw=raw,
            contract=tx.get("contract"),
            method=tx.get("method"),
            signer_org=signer.get("org"),
            verified=suite is not None,
            events=_events(receipt),
        )


@dataclass(frozen=True, slots=True)
class StateValue:
    """A contract's state value (None: absent) with the proof that it is under ``header``."""

    contract: str
    key: bytes
    value: bytes | None
    header: BlockHeader
    block_hash: str
    proof: StateProof
    certificate: bytes | None
    verified: bool

    @property
    def decoded(self) -> Any:
        """The value decoded as a canonical value (None when absent or not canonical)."""
        return _decoded(self.value) if self.value is not None else None

    @classmethod
    def from_json(
        cls,
        document: Any,
        contract: str,
        key: bytes,
        suite: Suite | None,
        verify_header: HeaderVerifier | None,
    ) -> StateValue:
        try:
            value = unb64(document["value"], "value") if document.get("value") is not None else None
            header = header_from_json(document["header"])
            proof = state_proof_from_json(document["proof"])
            reported_hash = str(document["block_hash"])
            answered_key = unb64(document["key"], "key")
            certificate = (
                unb64(document["certificate"], "certificate")
                if document.get("certificate")
                else None
            )
        except (KeyError, TypeError, WireError) as exc:
            raise ResponseError(f"not a state document: {exc}") from exc
        if answered_key != key or document.get("contract") != contract:
            raise ProofError(
                f"asked for {contract}/{key!r}, the node answered about {document.get('contract')}/{answered_key!r}"
            )
        if suite is not None:
            full_key = contract.encode() + b"\x00" + key
            if not verify_state_proof(header.state_root, full_key, value, proof, suite.hash):
                raise ProofError(
                    f"the state proof of {contract}/{key!r} does not verify against block "
                    f"{header.height}'s state root: do not trust this node's answer"
                )
            _check_header(suite, header, reported_hash, certificate, verify_header)
        return cls(
            contract=contract,
            key=key,
            value=value,
            header=header,
            block_hash=reported_hash,
            proof=proof,
            certificate=certificate,
            verified=suite is not None,
        )


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """One Server-Sent Event: ``kind`` is "block", "tx" or "contract_event"."""

    kind: str
    height: int | None
    data: dict[str, Any]

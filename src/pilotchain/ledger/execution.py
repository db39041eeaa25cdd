"""Deterministic transaction execution over a state overlay.

Theory of operation
-------------------
Executing a block means running its transactions in order against the committed world state.
Each transaction runs against a :class:`TxOverlay` on top of the block's :class:`BlockOverlay`:
on success its writes merge into the block overlay, on any failure (a contract error, bad
arguments, a missing permission, an exhausted step budget) the transaction's writes are thrown
away and its receipt records the reason — the transaction is in the block, it changed nothing.
After the last transaction the block overlay's writes are the block's state diff, which storage
turns into the new state root.

Contracts see state only through their own namespace (``contract name || 0x00 || key``) and
only through :class:`ContractState`, which records reads and writes (read/write sets, for later
parallel execution). The only clock is the block's proposer timestamp in :class:`TxContext`.

Native contracts (the built-in ``kv``, and the system contracts governance adds) implement
:class:`NativeContract`. Python contracts (the sandbox) plug in through the same registry.

Pure: no I/O, wall clock or randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from pilotchain.codec import CodecError, encode
from pilotchain.errors import CoreError, InvariantBroken
from pilotchain.ledger.block import STATUS_OK, Event, Receipt
from pilotchain.ledger.tx import RejectCode, SignedTx, TxRejected, decode_args

__all__ = [
    "StateReader",
    "Caller",
    "TxContext",
    "ContractState",
    "NativeContract",
    "ContractRegistry",
    "ContractResolver",
    "BlockOverlay",
    "ContractError",
    "execute_transactions",
    "ExecutionResult",
]

#: A state key is at most this long (namespace included): what the store holds
#: (``StorageLimits.key_bytes_max`` defaults to it). A longer key fails the transaction
#: (BAD_ARGUMENTS) instead of reaching a store that refuses it and stopping block production.
STATE_KEY_BYTES_MAX = 256
#: A state value is at most this long.
STATE_VALUE_BYTES_MAX = 256 * 1024


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Caller:
    """Who signed the transaction, as the membership layer authenticated it."""

    name: str
    org: str
    roles: tuple[str, ...]
    certificate_id: bytes


class TxContext(NamedTuple):
    """What a contract call knows about its transaction (a named tuple: one is made per
    transaction, and a frozen dataclass costs several times as much to build)."""

    chain_id: str
    height: int
    timestamp_ms: int
    tx_id: bytes
    caller: Caller


class ContractError(CoreError):
    """Raised by contract code to fail a transaction with a reason (state unchanged)."""

    def __init__(self, message: str, code: RejectCode = RejectCode.EXECUTION_FAILED) -> None:
        super().__init__(message)
        self.code = code


class BlockOverlay:
    """Writes of the block so far, over the committed state."""

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._base.get(key)


class ContractState:
    """A contract's view of state: its own namespace, reads and writes recorded."""

    def __init__(self, contract: str, block: BlockOverlay) -> None:
        self._prefix = contract.encode() + b"\x00"
        self._block = block
        self.writes: dict[bytes, bytes | None] = {}
        self.reads: set[bytes] = set()
        self.events: list[Event] = []
        self._contract = contract

    def _key(self, key: bytes) -> bytes:
        full = self._prefix + key
        if len(full) > STATE_KEY_BYTES_MAX:
            raise ContractError(f"state key longer than {STATE_KEY_BYTES_MAX} bytes", RejectCode.BAD_ARGUMENTS)
        return full

    def get(self, key: bytes) -> bytes | None:
        full = self._key(key)
        self.reads.add(full)
        if full in self.writes:
            return self.writes[full]
        return self._block.get(full)

    def put(self, key: bytes, value: bytes) -> None:
        if len(value) > STATE_VALUE_BYTES_MAX:
            raise ContractError(f"state value longer than {STATE_VALUE_BYTES_MAX} bytes", RejectCode.BAD_ARGUMENTS)
        self.writes[self._key(key)] = bytes(value)

    def delete(self, key: bytes) -> None:
        self.writes[self._key(key)] = None

    def emit(self, name: str, payload: Any) -> None:
        self.events.append(Event(contract=self._contract, name=name, data=encode(payload)))

    def emit_encoded(self, name: str, data: bytes) -> None:
        """:meth:`emit` of a payload already in its canonical encoding."""
        self.events.append(Event(contract=self._contract, name=name, data=data))


class NativeContract(Protocol):
    """A contract implemented in the node itself (trusted code, still deterministic)."""

    name: str

    def call(self, method: str, args: Any, ctx: TxContext, state: ContractState) -> tuple[Any, int]:
        """Run ``method``; return (result, steps used). Raise ContractError to fail."""
        ...


class ContractResolver(Protocol):
    """Finds the contract a transaction names. ``state`` is the state as the transaction sees
    it (committed state plus the block so far), so contracts deployed or frozen by governance
    earlier in the same block are found as such."""

    def get(self, name: str, state: StateReader) -> NativeContract | None: ...


@dataclass
class ContractRegistry:
    """The built-in native contracts (fixed in the node); Python contracts deployed by governance
    are resolved from state by a resolver that wraps this one (see pilotchain.contracts)."""

    contracts: dict[str, NativeContract] = field(default_factory=dict)

    def register(self, contract: NativeContract) -> None:
        if not (contract.name not in self.contracts):
            raise InvariantBroken(f"contract {contract.name} registered twice")
        self.contracts[contract.name] = contract

    def get(self, name: str, state: StateReader | None = None) -> NativeContract | None:
        return self.contracts.get(name)


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    receipts: tuple[Receipt, ...]
    writes: Mapping[bytes, bytes | None]


def _failed(tx: SignedTx, code: RejectCode, message: str, steps: int = 0) -> Receipt:
    return Receipt(tx_id=tx.tx_id, status=code.value, message=message, result=b"", events=(), steps_used=steps)


def execute_transactions(
    txs: Sequence[SignedTx],
    *,
    base: StateReader,
    registry: ContractResolver,
    chain_id: str,
    height: int,
    timestamp_ms: int,
    caller_of: Callable[[SignedTx], Caller],
) -> ExecutionResult:
    """Run ``txs`` in order; every transaction gets a receipt; failures change nothing.

    ``caller_of`` authenticates the signer as of ``timestamp_ms`` (raising TxRejected when the
    identity is unknown, expired or revoked at that time).
    """
    block = BlockOverlay(base)
    receipts: list[Receipt] = []
    for tx in txs:
        receipts.append(_execute_one(tx, block, registry, chain_id, height, timestamp_ms, caller_of))
    return ExecutionResult(receipts=tuple(receipts), writes=block.writes)


def _execute_one(
    tx: SignedTx,
    block: BlockOverlay,
    registry: ContractResolver,
    chain_id: str,
    height: int,
    timestamp_ms: int,
    caller_of: Callable[[SignedTx], Caller],
) -> Receipt:
    body = tx.body
    if body.expires_at_ms < timestamp_ms:
        return _failed(tx, RejectCode.EXPIRED, f"expired at {body.expires_at_ms} ms, block time {timestamp_ms} ms")
    try:
        caller = caller_of(tx)
    except TxRejected as exc:
        return _failed(tx, exc.code, exc.message)
    contract = registry.get(body.contract, block)
    if contract is None:
        return _failed(tx, RejectCode.UNKNOWN_CONTRACT, f"no contract named {body.contract!r} is active")
    try:
        args = decode_args(body.args)
    except CodecError as exc:
        return _failed(tx, RejectCode.BAD_ARGUMENTS, f"arguments are not canonical: {exc}")
    state = ContractState(body.contract, block)
    ctx = TxContext(chain_id=chain_id, height=height, timestamp_ms=timestamp_ms, tx_id=tx.tx_id, caller=caller)
    try:
        result, steps = contract.call(body.method, args, ctx, state)
        result_bytes = encode(result)
    except ContractError as exc:
        return _failed(tx, exc.code, str(exc))
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        return _failed(tx, RejectCode.BAD_ARGUMENTS, f"{type(exc).__name__}: {exc}")
    block.writes.update(state.writes)
    return Receipt(
        tx_id=tx.tx_id, status=STATUS_OK, message="", result=result_bytes, events=tuple(state.events), steps_used=steps
    )

"""What a node offers its gateway: the boundary between the REST/SSE layer and the node.

The gateway (``pilotchain.gateway``) is written against :class:`NodeAPI` only, so the same app
serves the consensus node (``pilotchain.node.daemon``) and the single-process development node
(``pilotchain.node.local``). All methods are called on the node's event loop thread.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pilotchain.contracts.reads import ReadAccess
from pilotchain.crypto import Suite
from pilotchain.ledger.block import Block, BlockHeader, Receipt, TxProof
from pilotchain.ledger.commitment import StateProof
from pilotchain.ledger.genesis import Genesis
from pilotchain.ledger.tx import TxRejected

__all__ = [
    "NodeAPI", "NodeStatus", "TxState", "TxStatus", "StateRead", "NodeEvent", "EventKind",
    "Readiness", "ReadinessCheck",
]


@dataclass(frozen=True, slots=True)
class NodeStatus:
    chain_id: str
    node: str
    org: str
    suite: str
    height: int
    last_block_hash: bytes
    last_block_time_ms: int
    state_root: bytes
    validators: tuple[str, ...]
    genesis_hash: bytes
    #: peer name -> connected?
    peers: dict[str, bool] = field(default_factory=dict)
    mempool_size: int = 0
    #: consensus round/step etc. as the node chooses to show it
    consensus: dict[str, Any] = field(default_factory=dict)
    syncing: bool = False


class TxState(enum.StrEnum):
    PENDING = "pending"
    COMMITTED = "committed"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TxStatus:
    tx_id: bytes
    state: TxState
    #: for REJECTED: the RejectCode value and message (mempool refusal, expiry)
    reason_code: str | None = None
    reason: str | None = None
    #: for COMMITTED
    height: int | None = None
    tx_raw: bytes | None = None
    receipt: Receipt | None = None
    header: BlockHeader | None = None
    proof: TxProof | None = None


@dataclass(frozen=True, slots=True)
class StateRead:
    contract: str
    key: bytes
    value: bytes | None
    proof: StateProof
    header: BlockHeader


class EventKind(enum.StrEnum):
    BLOCK = "block"
    TX = "tx"
    CONTRACT_EVENT = "contract_event"


@dataclass(frozen=True, slots=True)
class NodeEvent:
    kind: EventKind
    height: int
    #: JSON-ready payload (hex for bytes)
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """One condition of readiness: its name (``peers``, ``recent_commit``...), whether it holds,
    and what was observed (or what to do)."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """Every readiness condition the node checked; ready when all hold (``/readyz``)."""

    checks: tuple[ReadinessCheck, ...]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> tuple[ReadinessCheck, ...]:
        return tuple(check for check in self.checks if not check.ok)


class NodeAPI(Protocol):
    suite: Suite
    genesis: Genesis

    def status(self) -> NodeStatus: ...

    def get_block(self, height: int) -> Block | None:
        """The committed block at ``height`` (None beyond the head)."""
        ...

    def get_certificate(self, height: int) -> bytes | None:
        """The canonical bytes of the commit certificate of block ``height``, when known."""
        ...

    async def submit_tx(self, raw: bytes) -> bytes:
        """Admit a signed transaction to the mempool (and gossip it); returns its id.
        Raises :class:`pilotchain.ledger.tx.TxRejected` with the reason when refused."""
        ...

    async def submit_txs(self, raws: list[bytes]) -> list[bytes | TxRejected]:
        """Admit many signed transactions at once (signatures verified as one batch across the
        cores); one result per input, in order: the id, or the refusal."""
        ...

    def tx_status(self, tx_id: bytes) -> TxStatus: ...

    def read_state(self, contract: str, key: bytes) -> StateRead: ...

    def authenticate(self, certificate: bytes) -> bytes:
        """The SubjectPublicKeyInfo DER of the key ``certificate`` names, if the consortium vouches
        for it now (membership as committed: unknown, expired and revoked identities raise
        TxRejected with UNKNOWN_SIGNER / SIGNER_REJECTED). The gateway authenticates requests with it."""
        ...

    def read_access(self, certificate: bytes) -> ReadAccess:
        """What the member ``certificate`` names may read at the head state (contracts' ``@read``
        permissions, governance's auditors). Raises TxRejected like :meth:`authenticate`."""
        ...

    def query(self, contract: str, method: str, args: Any, caller_certificate: bytes | None) -> Any:
        """A read-only contract call against the head state (creates no transaction).
        Raises TxRejected (UNKNOWN_CONTRACT, UNKNOWN_METHOD, BAD_ARGUMENTS, EXECUTION_FAILED...)."""
        ...

    def subscribe(self, kinds: frozenset[EventKind] | None = None) -> AsyncIterator[NodeEvent]:
        """Events from now on (blocks, committed transactions, contract events); a bounded
        queue per subscriber — a subscriber that falls too far behind is disconnected."""
        ...

    def metrics_registry(self) -> Any:
        """The prometheus_client CollectorRegistry with this node's metrics."""
        ...

    def healthy(self) -> tuple[bool, str]:
        """(ok, reason) for /healthz: liveness — the node serves and its tasks run."""
        ...

    def ready(self) -> Readiness:
        """For /readyz: whether the node takes part in the chain now (a validator: enough peers
        for a quorum, a recent commit, not halted, not syncing); each condition with its detail."""
        ...

"""Running contract source directly (no chain): compile it, call a method on an in-memory state."""

from __future__ import annotations

from typing import Any

from pilotchain.contracts.resolver import ChainContracts
from pilotchain.contracts.runtime import DeployedContract, PythonContract
from pilotchain.contracts.sandbox import SandboxLimits
from pilotchain.ledger.execution import (
    BlockOverlay,
    Caller,
    ContractError,
    ContractState,
    TxContext,
)

CALLER = Caller(name="bank-client", org="bank", roles=("client",), certificate_id=b"")
#: smaller budgets than a chain's, so the escape suite stays fast
FAST_LIMITS = SandboxLimits(steps_max=200_000, allocation_bytes_max=8 * 1024 * 1024)


class MemoryStore(dict[bytes, bytes]):
    def get(self, key: bytes, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, key, default)


def contract_of(
    code: str, name: str = "probe", limits: SandboxLimits = FAST_LIMITS
) -> PythonContract:
    resolver = ChainContracts()
    compiled = resolver.compile(name.encode() + b"-" + code.encode(), code)
    record = DeployedContract(
        name=name, version="1", code_hash=b"h", permissions=(), activated_height=1, proposal_id=1
    )
    return PythonContract(record, compiled, resolver, limits)


def run(
    code: str,
    method: str = "attack",
    args: Any = None,
    *,
    caller: Caller = CALLER,
    limits: SandboxLimits = FAST_LIMITS,
    store: MemoryStore | None = None,
) -> tuple[Any, ContractState]:
    """(result or the ContractError raised, the call's ContractState)."""
    contract = contract_of(code, limits=limits)
    state = ContractState("probe", BlockOverlay(store if store is not None else MemoryStore()))
    ctx = TxContext(
        chain_id="test", height=7, timestamp_ms=1_000, tx_id=b"\x01" * 32, caller=caller
    )
    try:
        result, _steps = contract.call(method, args, ctx, state)
    except ContractError as exc:
        return exc, state
    return result, state

"""Contract micro-benchmark (``pilotchain bench micro``): how fast the sandbox runs on one core.

This is the one module under ``contracts/`` that reads the clock: it is a measuring shell around
the pure core, never imported by it.

Measured, each on a warm compiled-code cache:

* ``python_transfer_calls_per_s`` — the token example's ``transfer`` called directly through
  :class:`~pilotchain.contracts.runtime.PythonContract` (fresh module globals, meter, API
  binding, two reads, two writes, one event per call);
* ``python_transfer_txs_per_s`` — the same through the ledger's ``execute_transactions`` (argument
  decoding, resolution from state, receipts, write merging; no signatures or storage);
* ``native_kv_calls_per_s`` — the built-in ``kv.put`` for comparison;
* ``metered_loop_steps_per_s`` — loop iterations per second under the step meter;
* ``compile_ms`` — checking and instrumenting the token example once.
"""

from __future__ import annotations

import time
from typing import Any

from pilotchain.codec import encode
from pilotchain.contracts.api import API_NAMES
from pilotchain.contracts.kv import KvContract
from pilotchain.contracts.resolver import ChainContracts
from pilotchain.contracts.runtime import DeployedContract, PythonContract
from pilotchain.contracts.sandbox import BUILTIN_NAMES, SandboxLimits, compile_contract
from pilotchain.errors import InvariantBroken
from pilotchain.ledger.execution import (
    BlockOverlay,
    Caller,
    ContractState,
    TxContext,
    execute_transactions,
)
from pilotchain.ledger.tx import SignedTx, TxBody, encode_args

__all__ = ["run", "TOKEN_SOURCE"]

TOKEN_SOURCE = """
from pilotchain.contracts.api import Map, context, emit, require

balances = Map("balances")

def transfer(to, amount):
    require(isinstance(amount, int) and amount > 0, "amount must be a positive integer")
    sender = context.caller.name
    have = balances.get(sender, 0)
    require(have >= amount, "insufficient balance")
    balances.set(sender, have - amount)
    balances.set(to, balances.get(to, 0) + amount)
    emit("transfer", {"from": sender, "to": to, "amount": amount})
    return have - amount

def spin(n):
    total = 0
    for i in range(n):
        total += i
    return total
"""


class _Store(dict[bytes, bytes]):
    def get(self, key: bytes, default: Any = None) -> Any:
        return dict.get(self, key, default)


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def run(calls: int = 20_000, loop_steps: int = 500_000) -> dict[str, Any]:
    """Run the benchmark; a JSON-ready dict of the measurements."""
    allowed = BUILTIN_NAMES | frozenset(API_NAMES)
    started = time.perf_counter()
    compiled = compile_contract(TOKEN_SOURCE, allowed)
    compile_ms = (time.perf_counter() - started) * 1000

    resolver = ChainContracts()
    code_hash = b"bench-token"
    record = DeployedContract(
        name="token",
        version="1",
        code_hash=code_hash,
        permissions=(),
        activated_height=1,
        proposal_id=1,
    )
    contract = PythonContract(record, compiled, resolver, SandboxLimits())
    caller = Caller(name="alice", org="bank", roles=("client",), certificate_id=b"")
    ctx = TxContext(chain_id="bench", height=1, timestamp_ms=1, tx_id=b"\x00" * 32, caller=caller)
    store = _Store()
    store[b"token\x00m/balances\x00" + encode("alice")] = encode(10**15)

    block = BlockOverlay(store)
    started = time.perf_counter()
    for i in range(calls):
        state = ContractState("token", block)
        contract.call("transfer", {"to": f"account-{i % 1000}", "amount": 1}, ctx, state)
        block.writes.update(state.writes)
    direct_s = time.perf_counter() - started

    # through the ledger's execution path: the contract resolved from state by ChainContracts
    store[b"gov\x00c/token"] = encode(record)
    store[b"gov\x00code/" + code_hash] = TOKEN_SOURCE.encode()
    txs = [
        SignedTx(
            tx_id=i.to_bytes(32, "big"),
            raw=b"",
            body_bytes=b"",
            body=TxBody(
                chain_id="bench",
                signer_certificate=b"alice",
                nonce=i.to_bytes(8, "big"),
                expires_at_ms=10**12,
                contract="token",
                method="transfer",
                args=encode_args({"to": f"account-{i % 1000}", "amount": 1}),
            ),
            signature=b"",
        )
        for i in range(calls)
    ]
    started = time.perf_counter()
    result = execute_transactions(
        txs,
        base=store,
        registry=resolver,
        chain_id="bench",
        height=2,
        timestamp_ms=2,
        caller_of=lambda tx: caller,
    )
    executed_s = time.perf_counter() - started
    failed = sum(1 for receipt in result.receipts if receipt.status != "OK")
    if not (failed == 0):
        raise InvariantBroken(f"{failed} benchmark transfers failed: {result.receipts[0].message}")

    kv = KvContract()
    block = BlockOverlay(_Store())
    started = time.perf_counter()
    for i in range(calls):
        state = ContractState("kv", block)
        kv.call("put", {"key": f"account-{i % 1000}", "value": i}, ctx, state)
        block.writes.update(state.writes)
    kv_s = time.perf_counter() - started

    started = time.perf_counter()
    state = ContractState("token", BlockOverlay(_Store()))
    _, steps = contract.call("spin", {"n": loop_steps}, ctx, state)
    loop_s = time.perf_counter() - started

    return {
        "calls": calls,
        "compile_ms": round(compile_ms, 2),
        "python_transfer_calls_per_s": _rate(calls, direct_s),
        "python_transfer_txs_per_s": _rate(calls, executed_s),
        "native_kv_calls_per_s": _rate(calls, kv_s),
        "metered_loop_steps_per_s": _rate(steps, loop_s),
    }


if __name__ == "__main__":  # pragma: no cover - manual runs
    import json

    print(json.dumps(run(), indent=2))

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

:func:`crypto_api_costs` (run by hand, not by ``run``) measures what the crypto API costs in this
runtime against one metered step, per suite: where the step figures in
:data:`~pilotchain.contracts.runtime.CRYPTO_COSTS` come from (docs/contracts.md, section 3).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from pilotchain.codec import encode
from pilotchain.contracts.api import API_NAMES
from pilotchain.contracts.kv import KvContract
from pilotchain.contracts.resolver import ChainContracts
from pilotchain.contracts.runtime import CRYPTO_COSTS, DeployedContract, PythonContract
from pilotchain.contracts.sandbox import BUILTIN_NAMES, SandboxLimits, compile_contract
from pilotchain.crypto import Suite, get_suite
from pilotchain.errors import InvariantBroken
from pilotchain.ledger.execution import (
    BlockOverlay,
    Caller,
    ContractState,
    StateReader,
    TxContext,
    execute_transactions,
)
from pilotchain.ledger.tx import SignedTx, TxBody, encode_args

__all__ = ["run", "crypto_api_costs", "TOKEN_SOURCE"]

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


CRYPTO_SOURCE = """
from pilotchain.contracts.api import hash, verify_signature

def spin(n):
    for i in range(n):
        pass

def hashes(data, n):
    for i in range(n):
        hash(data)

def verify_one_key(key, message, signature, n):
    for i in range(n):
        verify_signature(key, message, signature)

def verify_new_keys(keys, message, signatures):
    for i in range(len(keys)):
        verify_signature(keys[i], message, signatures[i])
"""


class _FixedSuite(ChainContracts):
    """A resolver whose chain suite is given (the benchmark's store holds no genesis)."""

    def __init__(self, suite: Suite) -> None:
        super().__init__()
        self.suite = suite

    def suite_of(self, state: StateReader) -> Suite:
        return self.suite


def crypto_api_costs(
    suite_name: str, *, loop_steps: int = 500_000, verifies: int = 200, rounds: int = 7
) -> dict[str, Any]:
    """Time per call of ``hash`` and ``verify_signature`` in this runtime on ``suite_name``, in
    microseconds and in metered steps: the time of one iteration of an empty metered loop,
    measured in the same round just before (the loop's own step is subtracted), so a machine
    that speeds up or slows down between rounds shifts both alike. The median over ``rounds``;
    ``new key`` means a key the suite has not parsed before (fresh keys every round)."""
    suite = get_suite(suite_name)
    compiled = compile_contract(CRYPTO_SOURCE, BUILTIN_NAMES | frozenset(API_NAMES))
    record = DeployedContract(
        name="crypto", version="1", code_hash=b"bench-crypto", permissions=(),
        activated_height=1, proposal_id=1,
    )  # fmt: skip
    contract = PythonContract(record, compiled, _FixedSuite(suite), SandboxLimits(steps_max=10**12))
    caller = Caller(name="alice", org="bank", roles=("client",), certificate_id=b"")
    ctx = TxContext(chain_id="bench", height=1, timestamp_ms=1, tx_id=b"\x00" * 32, caller=caller)

    def per_call_s(method: str, args: list[Any], count: int) -> float:
        state = ContractState("crypto", BlockOverlay(_Store()))
        started = time.perf_counter()
        contract.call(method, args, ctx, state)
        return (time.perf_counter() - started) / count

    message = b"consent: share record 42 with hospital-b until 2026-01-01" * 2
    large = b"x" * (64 * 1024)
    key = suite.generate_private_key()
    key_der, signature, large_signature = key.public_key().to_der(), key.sign(message), key.sign(large)
    seconds: dict[str, list[float]] = {}
    steps: dict[str, list[float]] = {}
    for _ in range(rounds):
        signers = [suite.generate_private_key() for _ in range(verifies)]
        new_keys = [signer.public_key().to_der() for signer in signers]
        new_signatures = [signer.sign(message) for signer in signers]
        step_s = per_call_s("spin", [loop_steps], loop_steps)
        measured = {
            "step": step_s,
            "hash 32 B": per_call_s("hashes", [b"x" * 32, 20_000], 20_000),
            "hash 64 KiB": per_call_s("hashes", [large, 100], 100),
            "verify, known key": per_call_s(
                "verify_one_key", [key_der, message, signature, verifies], verifies
            ),
            "verify, new key": per_call_s(
                "verify_new_keys", [new_keys, message, new_signatures], verifies
            ),
            "verify, known key, 64 KiB message": per_call_s(
                "verify_one_key", [key_der, large, large_signature, verifies // 4], verifies // 4
            ),
            "verify, garbage signature": per_call_s(
                "verify_one_key", [key_der, message, b"\x30" * 70, verifies], verifies
            ),
        }
        for name, value in measured.items():
            seconds.setdefault(name, []).append(value)
            steps.setdefault(name, []).append((value - step_s) / step_s)
    costs = CRYPTO_COSTS[suite.name]
    return {
        "suite": suite.name,
        "rounds": rounds,
        "per_call": {
            name: {
                "us_median": round(statistics.median(values) * 1e6, 3),
                "steps_median": round(statistics.median(steps[name])),
                "steps_max": round(max(steps[name])),
            }
            for name, values in seconds.items()
        },
        "charged_steps": {
            "hash 32 B": costs.hash_cost(32),
            "hash 64 KiB": costs.hash_cost(64 * 1024),
            "verify": costs.verify_cost(len(message)),
            "verify, 64 KiB message": costs.verify_cost(64 * 1024),
        },
    }


if __name__ == "__main__":  # pragma: no cover - manual runs
    import json
    import sys

    if sys.argv[1:2] == ["crypto"]:
        print(json.dumps([crypto_api_costs(name) for name in ("intl", "gm")], indent=2))
    else:
        print(json.dumps(run(), indent=2))

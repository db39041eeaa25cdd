"""Ledger micro-benchmark: build and commit blocks of signed kv transactions on one core.

Measures the pieces a block goes through on one node, separately, so a regression points at
its cause: stateless checks + signature verification, execution, Merkle roots, state
commitment + atomic commit, and the whole build→commit path.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from pilotchain.codec import encode
from pilotchain.contracts.kv import KvContract
from pilotchain.crypto import get_suite
from pilotchain.crypto.parallel import verify_batch_parallel
from pilotchain.errors import InvariantBroken
from pilotchain.ledger.block import receipt_root, tx_root
from pilotchain.ledger.execution import Caller, ContractRegistry, execute_transactions
from pilotchain.ledger.genesis import Genesis, ValidatorInfo
from pilotchain.ledger.tx import TxBody, decode_transaction, encode_args, sign_transaction
from pilotchain.node.chain import Ledger


class _BenchAuthenticator:
    def __init__(self, suite: Any, keys: dict[bytes, bytes]) -> None:
        self.suite = suite
        self.keys = keys

    def public_key_of(self, certificate: bytes, now_ms: int) -> bytes:
        return self.keys[certificate]

    def caller_of(self, certificate: bytes, now_ms: int) -> Caller:
        return Caller(name=certificate.decode(), org=certificate.decode(), roles=("client",), certificate_id=certificate)

    def reader(self, certificate: bytes, now_ms: int) -> tuple[bytes, Caller]:
        return self.public_key_of(certificate, now_ms), self.caller_of(certificate, now_ms)


def run(suite_name: str = "intl", blocks: int = 5, txs_per_block: int = 1000) -> dict[str, Any]:
    suite = get_suite(suite_name)
    signers = [suite.private_key_from_seed(bytes([i]) * 32) for i in range(16)]
    certs = [f"client-{i}".encode() for i in range(16)]
    auth = _BenchAuthenticator(suite, {c: k.public_key().to_der() for c, k in zip(certs, signers, strict=True)})
    t0 = 1_000_000
    raw_blocks = []
    for b in range(blocks):
        raws = []
        for i in range(txs_per_block):
            n = b * txs_per_block + i
            body = TxBody(chain_id="bench", signer_certificate=certs[n % 16], nonce=n.to_bytes(8, "big"),
                          expires_at_ms=t0 + 3_000_000, contract="kv", method="put",
                          args=encode_args({"key": f"account-{n % 5000}", "value": n}))
            raws.append(sign_transaction(suite, signers[n % 16], body))
        raw_blocks.append(raws)
    total = blocks * txs_per_block
    registry = ContractRegistry()
    registry.register(KvContract())
    validators = (ValidatorInfo(name="v0", org="o", public_key=signers[0].public_key().to_der()),)
    genesis = Genesis(chain_id="bench", suite=suite_name, genesis_time_ms=t0, organizations=(), validators=validators)

    results: dict[str, Any] = {"suite": suite_name, "blocks": blocks, "txs_per_block": txs_per_block}
    # 1. decode + signature verification, serially, per transaction
    start = time.perf_counter()
    decoded = [[decode_transaction(suite, raw) for raw in raws] for raws in raw_blocks]
    results["decode_tx_per_s"] = round(total / (time.perf_counter() - start))
    start = time.perf_counter()
    for txs in decoded:
        for tx in txs:
            if not (suite.verify(auth.keys[tx.body.signer_certificate], tx.signed_message(), tx.signature)):
                raise InvariantBroken('invariant broken: suite.verify(auth.keys[tx.body.signer_certificate], tx.signed_message(), tx.signature)')
    results["verify_serial_tx_per_s"] = round(total / (time.perf_counter() - start))
    start = time.perf_counter()
    for txs in decoded:
        verify_batch_parallel(suite, [(auth.keys[tx.body.signer_certificate], tx.signed_message(), tx.signature) for tx in txs])
    results["verify_batch_tx_per_s"] = round(total / (time.perf_counter() - start))

    with tempfile.TemporaryDirectory(prefix="pilotchain-bench-") as tmp:
        ledger = Ledger.open(Path(tmp) / "ledger", genesis, auth, registry)
        try:
            # 2. execution alone (kv put) against the committed state
            start = time.perf_counter()
            for txs in decoded:
                execute_transactions(txs, base=ledger.store, registry=registry, chain_id="bench", height=1,
                                     timestamp_ms=t0 + 1,
                                     caller_of=lambda tx: auth.caller_of(tx.body.signer_certificate, 0))
            results["execute_tx_per_s"] = round(total / (time.perf_counter() - start))
            # 3. Merkle roots over transactions and receipts
            result = execute_transactions(decoded[0], base=ledger.store, registry=registry, chain_id="bench",
                                          height=1, timestamp_ms=t0 + 1,
                                          caller_of=lambda tx: auth.caller_of(tx.body.signer_certificate, 0))
            start = time.perf_counter()
            for raws in raw_blocks:
                tx_root(suite, raws)
                receipt_root(suite, result.receipts)
            results["merkle_roots_tx_per_s"] = round(total / (time.perf_counter() - start))
            # 4. the whole path: build (check + verify + execute + roots + state root), then commit
            build_s = commit_s = 0.0
            for b, raws in enumerate(raw_blocks):
                start = time.perf_counter()
                block = ledger.build_block(raws, proposer="v0", timestamp_ms=t0 + 10 + b)
                build_s += time.perf_counter() - start
                if not (all(r.status == "OK" for r in block.receipts)):
                    raise InvariantBroken('invariant broken: all(r.status == "OK" for r in block.receipts)')
                start = time.perf_counter()
                ledger.commit_block(block)
                commit_s += time.perf_counter() - start
            results["build_block_tx_per_s"] = round(total / build_s)
            results["commit_block_tx_per_s"] = round(total / commit_s)
            results["build_and_commit_tx_per_s"] = round(total / (build_s + commit_s))
            results["ledger_bytes_per_tx"] = round(
                sum(len(raw) for _h, raw in ledger.store.iter_blocks(1, None)) / total
            )
        finally:
            ledger.close()
    results["tx_bytes"] = len(raw_blocks[0][0])
    results["encoded_receipt_bytes"] = len(encode(result.receipts[0]))
    return results

"""Crypto throughput: sign/s and verify/s on one core, batch verify/s on all cores, hash and AEAD
MB/s, for both suites.

``run()`` returns plain numbers (for ``make bench`` to store); ``main()`` prints a table::

    .venv/bin/python -m pilotchain.bench.crypto [--seconds 1.0] [--json]

Each case repeats its operation until ``seconds_per_case`` of wall time have passed (at least
``OPERATIONS_MIN`` times) and reports operations per second. Keys come from fixed seeds so runs
are comparable; the numbers are only as quiet as the machine.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from pilotchain.crypto import SUITE_NAMES, CryptoError, Suite, get_suite
from pilotchain.crypto.parallel import verify_batch_parallel, verify_worker_count
from pilotchain.errors import InvariantBroken

__all__ = ["run", "main"]

#: Every case runs at least this many operations, however slow.
OPERATIONS_MIN: Final = 3
MESSAGE_SIZE: Final = 256  # about one transaction
HASH_BUFFER_SIZE: Final = 1024 * 1024
BATCH_KEYS: Final = 16
#: Batch sizes per suite: large enough that the pool is busy, small enough to repeat often.
BATCH_SIZES: Final = {"intl": 1024, "gm": 256}


def _rate(operation: Callable[[], object], seconds: float, units_per_call: int = 1) -> float:
    """Calls of ``operation`` per second (times ``units_per_call``), over ``seconds``."""
    if not (seconds > 0):
        raise InvariantBroken('invariant broken: seconds > 0')
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        operation()
        calls += 1
        now = time.perf_counter()
        if now >= deadline and calls >= OPERATIONS_MIN:
            return calls * units_per_call / (now - start)


def _bench_suite(suite: Suite, seconds: float) -> dict[str, Any]:
    key = suite.private_key_from_seed(b"pilotchain bench key seed ......")
    message = bytes(range(256))[:MESSAGE_SIZE]
    signature = key.sign(message)
    public_der = key.public_key().to_der()
    if not (suite.verify(public_der, message, signature)):
        raise InvariantBroken('invariant broken: suite.verify(public_der, message, signature)')

    keys = [suite.private_key_from_seed(bytes([index]) * 32) for index in range(BATCH_KEYS)]
    batch_size = BATCH_SIZES[suite.name]
    batch = []
    for index in range(batch_size):
        signer = keys[index % BATCH_KEYS]
        payload = message[:-8] + index.to_bytes(8, "big")
        batch.append((signer.public_key().to_der(), payload, signer.sign(payload)))
    if not (all(verify_batch_parallel(suite, batch))):
        raise InvariantBroken('invariant broken: all(verify_batch_parallel(suite, batch))')

    buffer = bytes(HASH_BUFFER_SIZE)
    aead_key, nonce = bytes(suite.aead_key_size), bytes(suite.aead_nonce_size)
    megabytes = HASH_BUFFER_SIZE / 1e6
    verify_rate = _rate(lambda: suite.verify(public_der, message, signature), seconds)
    batch_rate = _rate(lambda: verify_batch_parallel(suite, batch), seconds, batch_size)
    return {
        "signature": suite.signature_name,
        "hash": suite.hash_name,
        "aead": suite.aead_name,
        "sign_per_second": _rate(lambda: key.sign(message), seconds),
        "verify_per_second": verify_rate,
        "batch_verify_per_second": batch_rate,
        "batch_size": batch_size,
        "batch_speedup": batch_rate / verify_rate,
        "hash_mb_per_second": _rate(lambda: suite.hash(buffer), seconds) * megabytes,
        "aead_mb_per_second": _rate(lambda: suite.aead_encrypt(aead_key, nonce, buffer), seconds)
        * megabytes,
    }


def _environment() -> dict[str, Any]:
    environment: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "verify_workers": verify_worker_count(),
        # other work on the machine skews every number, the batch speedup most
        "load_average_1min": os.getloadavg()[0],
        "pynacl": importlib.metadata.version("pynacl"),
        "cryptography": importlib.metadata.version("cryptography"),
    }
    try:
        from pilotchain.crypto.gm import openssl_version

        environment["libcrypto"] = openssl_version()
    except CryptoError as exc:  # the gm suite is then unavailable; say why
        environment["libcrypto"] = f"unavailable: {exc}"
    return environment


def run(seconds_per_case: float = 1.0) -> dict[str, Any]:
    """Measure both suites; ``seconds_per_case`` of wall time per number (6 numbers a suite)."""
    if seconds_per_case <= 0:
        raise ValueError("seconds_per_case must be positive")
    return {
        "seconds_per_case": seconds_per_case,
        "message_size_bytes": MESSAGE_SIZE,
        "environment": _environment(),
        "suites": {name: _bench_suite(get_suite(name), seconds_per_case) for name in SUITE_NAMES},
    }


def _table(results: dict[str, Any]) -> Any:
    from rich.table import Table

    environment = results["environment"]
    suites = results["suites"]
    table = Table(
        title=f"pilotchain crypto, {results['message_size_bytes']}-byte messages",
        caption=(
            "; ".join(
                f"{name}: {numbers['signature']}, {numbers['hash']}, {numbers['aead']}"
                for name, numbers in suites.items()
            )
            + f"\nbatch on {environment['verify_workers']} threads; {environment['libcrypto']}; "
            f"load average {environment['load_average_1min']:.2f}"
        ),
    )
    table.add_column("suite")
    for column in ("sign/s", "verify/s", "batch verify/s", "speedup", "hash MB/s", "AEAD MB/s"):
        table.add_column(column, justify="right")
    for name, numbers in suites.items():
        table.add_row(
            name,
            f"{numbers['sign_per_second']:,.0f}",
            f"{numbers['verify_per_second']:,.0f}",
            f"{numbers['batch_verify_per_second']:,.0f}",
            f"{numbers['batch_speedup']:.2f}x",
            f"{numbers['hash_mb_per_second']:,.0f}",
            f"{numbers['aead_mb_per_second']:,.0f}",
        )
    return table


def main(argv: Sequence[str] | None = None) -> None:
    """Print the crypto benchmark as a table (or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(
        prog="pilotchain-bench-crypto", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="wall time per case (default 1.0)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    arguments = parser.parse_args(argv)
    results = run(arguments.seconds)
    if arguments.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return
    from rich.console import Console

    Console().print(_table(results))


if __name__ == "__main__":
    main()

"""Signature verification on all cores: the shell side of crypto.

Both suites' verifiers are C calls that release the GIL (PyNaCl's cffi calls and the ctypes calls
into OpenSSL both do), so a process-wide thread pool with one worker per core really verifies in
parallel. A batch of at least ``suite.verify_batch_parallel_min`` signatures is split into one
contiguous chunk per worker; the answers are the same as :meth:`Suite.verify_batch` on one thread.
``docs/crypto.md`` has the measurements behind the thresholds.

This module owns threads and reads the environment, so the deterministic core never imports it
(the import-linter contract in ``pyproject.toml`` says so): node shells and benchmarks do.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from pilotchain.crypto.base import Suite

__all__ = [
    "VERIFY_WORKERS_ENV",
    "VERIFY_WORKERS_MAX",
    "verify_batch_async",
    "verify_batch_parallel",
    "verify_worker_count",
]

#: Upper bound on the verification pool's size, whatever os.cpu_count() says.
VERIFY_WORKERS_MAX: Final = 64
#: Environment variable that sets the verification threads per process (default: one per core).
VERIFY_WORKERS_ENV: Final = "PILOTCHAIN_VERIFY_WORKERS"

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None

Items = Sequence[tuple[bytes, bytes, bytes]]


def verify_worker_count() -> int:
    """Threads used for a large batch: ``PILOTCHAIN_VERIFY_WORKERS`` when set (e.g. 1 when several
    nodes share a machine's cores), else one per core."""
    configured = os.environ.get(VERIFY_WORKERS_ENV, "").strip()
    if configured:
        try:
            count = int(configured)
        except ValueError:
            raise ValueError(f"{VERIFY_WORKERS_ENV}={configured!r} is not a whole number of threads") from None
        return max(1, min(count, VERIFY_WORKERS_MAX))
    return max(1, min(os.cpu_count() or 1, VERIFY_WORKERS_MAX))


def _forget_pool_in_child() -> None:
    # A forked child inherits the executor object but not its threads: start a fresh one.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


def _verify_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=verify_worker_count(), thread_name_prefix="pilotchain-verify")
        return _pool


def _chunks(suite: Suite, items: Items) -> list[Items]:
    """One contiguous chunk per verify worker for a large batch; the whole batch otherwise."""
    workers = verify_worker_count()
    if workers == 1 or len(items) < suite.verify_batch_parallel_min:
        return [items]
    chunk_size = -(-len(items) // workers)  # ceiling division: at most `workers` chunks
    return [items[start : start + chunk_size] for start in range(0, len(items), chunk_size)]


def verify_batch_parallel(suite: Suite, items: Items) -> list[bool]:
    """:meth:`Suite.verify_batch` with a large batch spread over the shared pool."""
    chunks = _chunks(suite, items)
    if len(chunks) <= 1:
        return suite.verify_batch(items)
    results: list[bool] = []
    for chunk_results in _verify_pool().map(suite.verify_batch, chunks):
        results.extend(chunk_results)
    if len(results) != len(items):
        raise RuntimeError(f"the verify pool answered {len(results)} verdicts for {len(items)} signatures")
    return results


async def verify_batch_async(suite: Suite, items: Items) -> list[bool]:
    """:func:`verify_batch_parallel` without blocking the running event loop: the chunks run on
    the shared pool directly (no thread that only waits for the others)."""
    if not items:
        return []
    loop = asyncio.get_running_loop()
    pool = _verify_pool()
    verdicts = await asyncio.gather(*(loop.run_in_executor(pool, suite.verify_batch, chunk)
                                      for chunk in _chunks(suite, items)))
    results = [ok for chunk_verdicts in verdicts for ok in chunk_verdicts]
    if len(results) != len(items):
        raise RuntimeError(f"the verify pool answered {len(results)} verdicts for {len(items)} signatures")
    return results

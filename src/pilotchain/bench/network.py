"""Network benchmark in the CAICT method: a real n-node network on this machine, real clients.

Theory of operation
-------------------
``run(options)`` builds a fresh consortium under a temporary folder (``network init``), starts every
validator as its own OS process (``python -m pilotchain node start``), and drives it from one
asyncio load generator in this process:

1. **Deployment**: time from the start of ``init_network`` to the first block committed.
2. **Ceiling**: signature verifications per second on all cores for the suite in use
   (``verify_batch_parallel`` on a large batch), measured before the nodes start, so that
   ``efficiency = committed tx/s × n ÷ ceiling`` says how much of the machine's raw verification
   capacity ends up as committed transactions (every node verifies every transaction).
3. **Clients**: every organisation's client identity plus ``clients_per_org - 1`` more issued by
   the organisation's CA. Transactions (``kv.put`` of a fresh key) are signed *before* each
   measured phase (outside the window), each by a real client key, in a pool of worker processes.
4. **Load**: open loop. Each phase offers a fixed rate: every tick the transactions that are due
   go out as ``POST /v1/txs/batch`` (at most ``batch_size`` each) to the gateways in turn. A
   transaction's submit time is when its batch request goes out; it is *received* when the
   gateway admits it; it is *committed* when its ``tx`` event arrives on the event stream
   (``GET /v1/events?kinds=tx`` of the first node). Success = committed within ``deadline_s`` of
   submit ÷ sent. If the node drops the event subscriber (a block with more transactions than the
   subscriber's queue), the listener reconnects and reads the missed blocks from
   ``/v1/blocks/{height}``; those transactions count as committed when read (a later time, so the
   latency is an upper bound) and ``event_stream.drops`` says how often it happened.
5. **Modes** (``mode``):
   * ``stress``: steps of ``step_s`` seconds at rising offered rates (× ``rate_factor``) until a
     step fails (success < 95 %, or committed tx/s in the step's steady window < 90 % of the
     offered rate), then one step half-way between the last good and the failed rate. The
     sustained rate is the best passing step's committed tx/s.
   * ``spike``: baseline at half the stress rate, bursts of ``spike_s`` seconds at twice the stress
     rate; success of the burst transactions must be ≥ 75 %; recovery = time from the end of a
     burst until everything sent before that moment has committed.
   * ``stability``: 20 % of the stress rate for ``duration_s``; passes with success ≥ 95 % and no
     drift (:func:`drift_verdict`): after a warm-up, the second half of the run's median p50
     latency within +20 % of the first half's, and each node's peak anonymous memory within +10 %.
     The slopes of p50 latency and of memory over the whole run are reported beside it.
   ``spike`` and ``stability`` take the stress rate from ``rate`` or run a stress ladder first.
6. **Extras** on the same network: catch-up (stop one node, run load, restart it, time until it
   reaches the head), query throughput (concurrent ``POST /v1/query/kv/get`` and
   ``GET /v1/state/kv?key_text=``), ledger bytes per committed transaction (size of the data
   folders), CPU and peak RSS per node (psutil, once a second) and of the load generator.

Every node is stopped at the end, also on errors and Ctrl-C. Nothing here asserts a timing: the
numbers are printed and recorded (``pilotchain.bench.results``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

import httpx
import psutil

from pilotchain.codec import encode
from pilotchain.errors import InvariantBroken
from pilotchain.network.processes import EPHEMERAL_PORT_MIN
from pilotchain.sdk import Identity, SignedRequests

__all__ = ["BenchOptions", "run", "MODES", "SUCCESS_MIN"]

MODES: Final = ("stress", "spike", "stability")
#: CAICT thresholds: committed within the deadline ÷ sent.
SUCCESS_MIN: Final = {"stress": 0.95, "spike": 0.75, "stability": 0.95}
#: A stress step keeps up when the committed rate in its steady window is at least this share
#: of the offered rate (besides the success rate).
KEEP_UP_MIN: Final = 0.90
#: Stability: share of the stress rate; spike: multiple of it, and the baseline around bursts.
STABILITY_SHARE: Final = 0.20
SPIKE_MULTIPLE: Final = 2.0
SPIKE_BASELINE_SHARE: Final = 0.5
#: Load generator: a tick is at most this long, at least this short.
TICK_S_MAX: Final = 0.25
TICK_S_MIN: Final = 0.02
#: Batch requests in flight per gateway.
INFLIGHT_PER_GATEWAY: Final = 4
#: Transactions signed per worker task.
SIGN_CHUNK: Final = 2_000
#: How long the first block and a catching-up node may take before the run gives up.
FIRST_BLOCK_TIMEOUT_S: Final = 120.0
CATCHUP_TIMEOUT_S: Final = 90.0
#: How long the end of a phase waits for missed blocks to be read after an event-stream drop.
BACKFILL_WAIT_S: Final = 120.0
#: Chain parameter: a transaction may expire at most one hour ahead (TxLimits.expiry_window_ms_max).
EXPIRY_MS_MAX: Final = 60 * 60 * 1000 - 60_000
#: Batch sizes for the verification ceiling.
CEILING_BATCH: Final = {"intl": 4096, "gm": 1024}
PERCENTILES: Final = (50, 95, 99)
#: First offered rate of the stress ladder per suite (SM2 verifies ~8x slower than Ed25519 here).
RATE_START_DEFAULT: Final = {"intl": 250.0, "gm": 50.0}


@dataclass(frozen=True, slots=True)
class BenchOptions:
    nodes: int = 4
    mode: str = "stress"
    suite: str = "intl"
    orgs: int = 4
    clients_per_org: int = 4
    batch_size: int = 250
    #: stress ladder
    step_s: float = 10.0
    rate_start: float = 0.0  # 0: RATE_START_DEFAULT for the suite
    rate_factor: float = 1.4
    steps_max: int = 12
    rate_max: float = 50_000.0
    #: the stress rate, when known (spike/stability skip the ladder)
    rate: float | None = None
    #: stability run length
    duration_s: float = 1800.0
    #: spike shape
    spike_s: float = 5.0
    spike_count: int = 2
    spike_baseline_s: float = 10.0
    deadline_s: float = 10.0
    #: a stress step keeps up only while its p99 latency stays within this (0: no latency bound)
    latency_p99_max_s: float = 2.0
    #: stress: after the first step that falls behind, bisect between it and the best step until
    #: they are within this share of each other (or steps_max is reached)
    bisect_precision: float = 0.05
    #: chain parameter of the benchmarked network (0: the chain's default, ChainParams.block_txs_max)
    block_txs_max: int = 0
    #: extras (0 turns one off)
    catchup_s: float = 10.0
    query_s: float = 3.0
    query_concurrency: int = 32
    ceiling_s: float = 2.0
    #: py-spy on the first node during the main phase, for at most this many seconds (0: off)
    profile_s: float = 0.0
    profile_node: int = 0
    profile_output: Path | None = None
    workdir: Path | None = None
    keep_workdir: bool = False
    #: run on the network folder an earlier run left (``workdir``): restart its nodes on their
    #: ledgers instead of creating a network, to measure a long chain beside a fresh one
    reuse: Path | None = None
    sign_workers: int = 0  # 0: one per core

    def check(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if self.nodes < 1:
            raise ValueError("nodes must be at least 1")
        if self.suite not in ("intl", "gm"):
            raise ValueError("suite must be intl or gm")
        if not 1 <= self.orgs <= 7:
            raise ValueError("orgs takes 1..7")
        if self.clients_per_org < 1 or self.batch_size < 1:
            raise ValueError("clients_per_org and batch_size must be positive")
        if self.latency_p99_max_s < 0:
            raise ValueError("the p99 bound must be 0 (none) or positive seconds")
        if not 0 < self.bisect_precision < 1:
            raise ValueError("bisect_precision must lie between 0 and 1")
        if self.step_s <= 0 or self.rate_start < 0 or self.rate_factor <= 1 or self.deadline_s <= 0:
            raise ValueError("step_s and deadline_s must be positive, rate_start not negative, rate_factor above 1")
        if self.duration_s <= 0 or self.duration_s * 1000 + 300_000 > EXPIRY_MS_MAX + 300_000:
            raise ValueError("duration_s must be positive and below 59 minutes (transactions expire within an hour)")
        if self.reuse is not None and (self.workdir is not None or self.keep_workdir):
            raise ValueError("reuse runs on an existing network folder: workdir and keep_workdir do not apply")


# --------------------------------------------------------------------------- small helpers

def free_port_block(count: int) -> int:
    """A base port such that base .. base+count-1 are all free on 127.0.0.1 right now, chosen at
    random below Linux's ephemeral range (where the kernel picks outgoing ports) so concurrent
    runs (pytest workers) rarely collide and no outgoing connection can take a node's port."""
    for _ in range(200):
        base = random.randrange(10_000, EPHEMERAL_PORT_MIN - count)
        sockets = []
        try:
            for offset in range(count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free block of ports on 127.0.0.1")


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None for none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary_ms(latencies_s: Iterable[float]) -> dict[str, float | None]:
    values = sorted(latencies_s)
    summary: dict[str, float | None] = {
        f"p{q}": _round_ms(percentile(values, q)) for q in PERCENTILES
    }
    summary["mean"] = _round_ms(statistics.fmean(values)) if values else None
    summary["max"] = _round_ms(values[-1]) if values else None
    return summary


def _round_ms(value_s: float | None) -> float | None:
    return None if value_s is None else round(value_s * 1000, 1)


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, in value units per minute."""
    if len(points) < 3:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - x_mean) ** 2 for x in xs)
    if denominator == 0:
        return None
    return sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / denominator * 60


def anonymous_rss(pid: int) -> int | None:
    """RssAnon of a Linux process in bytes: its heap, without file-backed pages (the ledger's
    memory-mapped database counts in RSS as it is touched, and the kernel can drop it)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def last_problem(home: Path) -> str:
    """The last critical/error line of a node's JSON log (its message), or the last line."""
    try:
        lines = (home / "node.log").read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"no log: {exc}"
    for line in reversed(lines):
        if '"critical"' in line or '"error"' in line:
            try:
                return str(json.loads(line)["msg"])
            except (ValueError, KeyError):
                return line[-300:]
    return lines[-1][-300:] if lines else "empty log"


def directory_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total


# --------------------------------------------------------------------------- signing (worker processes)

_worker_identities: dict[tuple[str, ...], list[Any]] = {}


def _sign_chunk(identity_paths: tuple[str, ...], chain_id: str, first: int, count: int, tag: str,
                expires_in_ms: int) -> list[tuple[bytes, str]]:
    from pilotchain.sdk import Identity, build_transaction

    identities = _worker_identities.get(identity_paths)
    if identities is None:
        identities = _worker_identities[identity_paths] = [Identity.load(path) for path in identity_paths]
    out = []
    for index in range(first, first + count):
        identity = identities[index % len(identities)]
        tx = build_transaction(identity, chain_id, "kv", "put", {"key": f"{tag}{index}", "value": index},
                               expires_in_ms=expires_in_ms)
        out.append((tx.raw, tx.tx_id))
    return out


def _warm_up() -> int:
    return os.getpid()


class Signer:
    """Pre-signs kv.put transactions from many client identities in worker processes.

    The workers are forked when the signer is made, before the event loop or any thread exists
    (``fork`` keeps the parent's imports, and no ``__main__`` is re-imported as with ``spawn``)."""

    def __init__(self, workers: int) -> None:
        if not (workers >= 1):
            raise InvariantBroken('invariant broken: workers >= 1')
        self.identity_paths: tuple[str, ...] = ()
        self.chain_id = ""
        self.next_index = 0
        self.tag = f"b{random.randrange(16**6):06x}-"
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("fork"))
        self._pool.submit(_warm_up).result()  # forks every worker now

    def use(self, identity_paths: Sequence[Path], chain_id: str) -> None:
        if not (identity_paths):
            raise InvariantBroken('invariant broken: identity_paths')
        self.identity_paths = tuple(str(p) for p in identity_paths)
        self.chain_id = chain_id

    def sign(self, count: int, expires_in_ms: int = 5 * 60 * 1000) -> list[tuple[bytes, str]]:
        if not (self.identity_paths):
            raise InvariantBroken("use() first")
        first = self.next_index
        self.next_index += count
        futures = [
            self._pool.submit(_sign_chunk, self.identity_paths, self.chain_id, start,
                              min(SIGN_CHUNK, first + count - start), self.tag, expires_in_ms)
            for start in range(first, first + count, SIGN_CHUNK)
        ]
        out: list[tuple[bytes, str]] = []
        for future in futures:
            out.extend(future.result())
        return out

    def key_of(self, index: int) -> str:
        return f"{self.tag}{index}"

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


#: how long the nodes of a reused network may take to open their ledgers and answer
RESTART_TIMEOUT_S: Final = 180.0


def reused_manifest(directory: Path, options: BenchOptions) -> dict[str, Any]:
    """The manifest of the network folder to reuse, checked against the options."""
    path = directory / "network.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{directory} holds no network to reuse ({path}: {exc}); "
                         "make one with --workdir DIR on an earlier run") from exc
    if manifest.get("suite") != options.suite:
        raise ValueError(f"the network in {directory} uses the {manifest.get('suite')} suite; pass --crypto {manifest.get('suite')}")
    if len(manifest.get("nodes", ())) != options.nodes:
        raise ValueError(f"the network in {directory} has {len(manifest.get('nodes', ()))} nodes; "
                         f"pass --nodes {len(manifest.get('nodes', ()))}")
    return manifest


def issue_bench_clients(directory: Path, manifest: dict[str, Any], per_org: int, now_ms: int) -> list[Path]:
    """Each organisation's client identity plus ``per_org - 1`` more issued by its CA (a reused
    network keeps the ones an earlier run issued)."""
    from pilotchain.identity.files import IdentityBundle, load_ca, save_ca, save_identity

    paths: list[Path] = []
    for org in manifest["organizations"]:
        paths.append(directory / org["client_identity"])
        if per_org <= 1:
            continue
        ca_dir = directory / org["ca_dir"]
        ca = load_ca(ca_dir)
        for number in range(2, per_org + 1):
            existing = directory / "orgs" / org["org"] / f"bench-client-{number}.id"
            if existing.exists():
                paths.append(existing)
                continue
            key = ca.suite.generate_private_key()
            cert = ca.issue(f"{org['org']}-bench-client-{number}", ("client",), key.public_key().to_der(),
                            now_ms=now_ms, valid_ms=86_400_000)
            path = directory / "orgs" / org["org"] / f"bench-client-{number}.id"
            save_identity(path, IdentityBundle(ca.suite, cert, key))
            paths.append(path)
        save_ca(ca_dir, ca, overwrite=True)
    return paths


def verify_ceiling(suite_name: str, seconds: float) -> dict[str, Any]:
    """Signature verifications per second on all cores (``verify_batch_parallel`` on a large batch)."""
    from pilotchain.crypto import get_suite
    from pilotchain.crypto.parallel import verify_batch_parallel, verify_worker_count

    suite = get_suite(suite_name)
    keys = [suite.private_key_from_seed(bytes([index + 1]) * 32) for index in range(16)]
    items = []
    size = CEILING_BATCH[suite_name]
    message = bytes(range(256))
    for index in range(size):
        key = keys[index % len(keys)]
        payload = message[:-8] + index.to_bytes(8, "big")
        items.append((key.public_key().to_der(), payload, key.sign(payload)))
    if not (all(verify_batch_parallel(suite, items))):
        raise InvariantBroken('invariant broken: all(verify_batch_parallel(suite, items))')
    verified = 0
    start = time.perf_counter()
    while True:
        verify_batch_parallel(suite, items)
        verified += size
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and verified >= 2 * size:
            break
    return {"verify_per_second": round(verified / elapsed, 1), "batch_size": size,
            "workers": verify_worker_count(), "signature": suite.signature_name}


# --------------------------------------------------------------------------- the load generator

@dataclass(slots=True)
class Phase:
    name: str
    target_tps: float
    started: float
    ended: float = 0.0
    tx_ids: list[str] = field(default_factory=list)


class Tracker:
    """Submit, admission and commit times per transaction (monotonic seconds)."""

    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.accepted: set[str] = set()
        self.rejected: Counter[str] = Counter()
        self.committed_at: dict[str, float] = {}
        self.backfilled: set[str] = set()
        self.height_txs: Counter[int] = Counter()
        self.commit_heights: dict[str, int] = {}
        self.last_height = 0

    def on_commit(self, tx_id: str, height: int, at: float, backfill: bool = False) -> None:
        if tx_id in self.committed_at:
            return
        self.committed_at[tx_id] = at
        self.height_txs[height] += 1
        self.commit_heights[tx_id] = height
        self.last_height = max(self.last_height, height)
        if backfill:
            self.backfilled.add(tx_id)


class Harness:
    """One benchmark run: the network, the event listener, the load, the samples."""

    def __init__(self, options: BenchOptions, directory: Path, log: Callable[[str], None]) -> None:
        self.options = options
        self.directory = directory
        self.log = log
        self.tracker = Tracker()
        self.origin = time.monotonic()
        self.phases: list[Phase] = []
        self.samples: list[dict[str, Any]] = []
        self.stream_drops: Counter[str] = Counter()
        self.block_seen_at: dict[int, float] = {}
        self._backfills: set[asyncio.Task[None]] = set()
        self.stream_errors: list[str] = []
        self.nodes: list[Any] = []
        #: each node's data folder size before the run (a reused network's chain so far)
        self.data_bytes_at_start: list[int] = []
        self.down: set[str] = set()
        self._http: dict[str, httpx.AsyncClient] = {}
        self._reader: Identity | None = None
        self._stop = asyncio.Event()
        self._connected = {"tx": asyncio.Event(), "block": asyncio.Event()}
        self._tasks: list[asyncio.Task[Any]] = []
        self._processes: dict[str, psutil.Process] = {}
        self.generator_process = psutil.Process()

    # ---------------------------------------------------------------- plumbing

    def now(self) -> float:
        return time.monotonic()

    def http(self, url: str) -> httpx.AsyncClient:
        """The gateway client for ``url``; every request is signed (the gateways answer consortium
        members only) with the network's first client identity — the cost a real client pays."""
        client = self._http.get(url)
        if client is None:
            if self._reader is None:
                from pilotchain.network.processes import reader_identity

                self._reader = reader_identity(self.directory)
                if self._reader is None:
                    raise RuntimeError(f"no client identity in {self.directory} to sign the benchmark's requests")
            client = httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30.0), auth=SignedRequests(self._reader),
                                       limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
            self._http[url] = client
        return client

    def gateways(self) -> list[str]:
        return [n.gateway_url for n in self.nodes if n.name not in self.down]

    async def close(self) -> None:
        """Stop listening, sampling and reading; close the HTTP clients (idempotent)."""
        self._stop.set()
        tasks = [*self._tasks, *self._backfills]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        clients = list(self._http.values())
        self._http.clear()
        for client in clients:
            await client.aclose()

    async def status(self, url: str, timeout_s: float = 2.0) -> dict[str, Any] | None:
        try:
            response = await self.http(url).get("/v1/status", timeout=timeout_s)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        document: dict[str, Any] = response.json()
        return document

    async def height(self, url: str) -> int:
        status = await self.status(url, timeout_s=2.0)
        return -1 if status is None else int(status["height"])

    # ---------------------------------------------------------------- event stream

    async def listen(self, url: str, kind: str) -> None:
        """Follow ``kind`` events (``tx`` or ``block``) of one node; reconnect when dropped.

        Block events are one per block, so that stream is not dropped; they time the blocks.
        The tx stream may be dropped on a block with more transactions than the node queues per
        subscriber: then the missed blocks are read from /v1/blocks and their transactions
        timed by their block's event."""
        decoder = json.JSONDecoder()
        first = True
        while not self._stop.is_set():
            try:
                async with self.http(url).stream(
                    "GET", "/v1/events", params={"kinds": kind}, timeout=httpx.Timeout(10.0, read=None)
                ) as response:
                    async for line in response.aiter_lines():
                        if line.startswith(":"):
                            if line.startswith(": connected"):
                                if not first and kind == "tx":
                                    task = asyncio.create_task(self.backfill(url))
                                    self._backfills.add(task)
                                    task.add_done_callback(self._backfills.discard)
                                first = False
                                self._connected[kind].set()
                            continue
                        if not line.startswith("data:"):
                            continue
                        data = decoder.decode(line[5:])
                        if "height" not in data:
                            continue
                        height = int(data["height"])
                        now = time.monotonic()
                        if kind == "block":
                            self.block_seen_at.setdefault(height, now)
                        elif "tx_id" in data:
                            self.tracker.on_commit(data["tx_id"], height, min(now, self.block_seen_at.get(height, now)))
            except httpx.HTTPError as exc:
                self.stream_errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            if self._stop.is_set():
                return
            self.stream_drops[kind] += 1
            await asyncio.sleep(0.05)

    async def backfill(self, url: str) -> None:
        """After a reconnect: read the blocks from the last seen height to the head."""
        status = await self.status(url, timeout_s=30.0)
        if status is None:
            return
        head = int(status["height"])
        start = max(1, self.tracker.last_height)
        for height in range(start, head + 1):
            try:
                response = await self.http(url).get(f"/v1/blocks/{height}", timeout=60.0)
                block = response.json()
            except (httpx.HTTPError, ValueError):
                continue
            at = self.block_seen_at.get(height, time.monotonic())
            for tx in block.get("transactions", []):
                self.tracker.on_commit(tx["tx_id"], height, at, backfill=True)

    # ---------------------------------------------------------------- resources

    def process_of(self, node: Any) -> psutil.Process | None:
        from pilotchain.network.processes import node_pid

        pid = node_pid(node.home)
        if pid is None:
            self._processes.pop(node.name, None)
            return None
        process = self._processes.get(node.name)
        if process is None or process.pid != pid:
            try:
                process = psutil.Process(pid)
                process.cpu_percent(None)
            except psutil.Error:
                return None
            self._processes[node.name] = process
        return process

    async def sample(self) -> None:
        """CPU and RSS of every node and of this process, once a second."""
        self.generator_process.cpu_percent(None)
        while not self._stop.is_set():
            row: dict[str, Any] = {"t": round(self.now() - self.origin, 2), "nodes": {}}
            for node in self.nodes:
                process = self.process_of(node)
                if process is None:
                    continue
                try:
                    with process.oneshot():
                        row["nodes"][node.name] = {"cpu": process.cpu_percent(None),
                                                   "rss": process.memory_info().rss,
                                                   "rss_anon": anonymous_rss(process.pid)}
                except psutil.Error:
                    continue
            row["generator"] = {"cpu": self.generator_process.cpu_percent(None),
                                "rss": self.generator_process.memory_info().rss}
            self.samples.append(row)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=1.0)

    # ---------------------------------------------------------------- load

    async def post_batch(self, url: str, batch: list[tuple[bytes, str]], gate: asyncio.Semaphore) -> None:
        async with gate:
            body = encode([raw for raw, _ in batch])
            at = time.monotonic()
            sent_at = self.tracker.sent_at
            for _, tx_id in batch:
                sent_at[tx_id] = at
            try:
                response = await self.http(url).post(
                    "/v1/txs/batch", content=body, headers={"content-type": "application/octet-stream"}
                )
            except httpx.HTTPError as exc:
                self.tracker.rejected[f"transport: {type(exc).__name__}"] += len(batch)
                return
            if response.status_code != 202:
                self.tracker.rejected[f"HTTP {response.status_code}"] += len(batch)
                return
            for item in response.json()["results"]:
                if "code" in item:
                    self.tracker.rejected[str(item["code"])] += 1
                else:
                    self.tracker.accepted.add(str(item["tx_id"]))

    async def offer(self, name: str, txs: list[tuple[bytes, str]], rate_tps: float) -> Phase:
        """Send ``txs`` at ``rate_tps`` (open loop), in batches to the gateways in turn."""
        gateways = self.gateways()
        if not (gateways and rate_tps > 0):
            raise InvariantBroken('invariant broken: gateways and rate_tps > 0')
        gate = asyncio.Semaphore(INFLIGHT_PER_GATEWAY * len(gateways))
        tick_s = min(TICK_S_MAX, max(TICK_S_MIN, self.options.batch_size / rate_tps))
        phase = Phase(name=name, target_tps=rate_tps, started=self.now())
        self.phases.append(phase)
        pending: set[asyncio.Task[None]] = set()
        sent = 0
        turn = 0
        while sent < len(txs):
            due = min(len(txs), int((self.now() - phase.started) * rate_tps) + 1)
            while sent < due:
                batch = txs[sent:min(due, sent + self.options.batch_size)]
                sent += len(batch)
                phase.tx_ids.extend(tx_id for _, tx_id in batch)
                task = asyncio.create_task(self.post_batch(gateways[turn % len(gateways)], batch, gate))
                turn += 1
                pending.add(task)
                task.add_done_callback(pending.discard)
            if sent < len(txs):
                await asyncio.sleep(tick_s)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        phase.ended = self.now()
        return phase

    async def drain(self, phases: Sequence[Phase]) -> None:
        """Wait until every admitted transaction of ``phases`` committed, or the deadline passed."""
        deadline = max(p.ended for p in phases) + self.options.deadline_s
        committed = self.tracker.committed_at
        accepted = self.tracker.accepted
        waiting = [tx_id for p in phases for tx_id in p.tx_ids if tx_id in accepted]
        while self.now() < deadline:
            waiting = [tx_id for tx_id in waiting if tx_id not in committed]
            if not waiting:
                break
            await asyncio.sleep(0.1)
        # blocks missed by a dropped tx stream are still being read: their commits count
        if self._backfills:
            await asyncio.wait(set(self._backfills), timeout=BACKFILL_WAIT_S)

    def phase_result(self, phases: Sequence[Phase], *, steady_skip_s: float | None = None) -> dict[str, Any]:
        """Received / committed tx/s, success and latency of the transactions sent in ``phases``."""
        tracker = self.tracker
        deadline = self.options.deadline_s
        ids = [tx_id for p in phases for tx_id in p.tx_ids]
        started = min(p.started for p in phases)
        ended = max(p.ended for p in phases)
        send_s = max(ended - started, 1e-9)
        received = sum(1 for tx_id in ids if tx_id in tracker.accepted)
        latencies = []
        within = 0
        last_commit = started
        for tx_id in ids:
            at = tracker.committed_at.get(tx_id)
            if at is None:
                continue
            latency = at - tracker.sent_at.get(tx_id, at)
            latencies.append(latency)
            if latency <= deadline:
                within += 1
                last_commit = max(last_commit, at)
        # committed tx/s in the steady window: commits seen between start+skip and the end of sending
        skip = min(2.0, send_s / 4) if steady_skip_s is None else steady_skip_s
        window_start = started + skip
        window_s = max(ended - window_start, 1e-9)
        id_set = set(ids)
        steady_commits = sum(1 for tx_id in id_set
                             if window_start <= tracker.committed_at.get(tx_id, -1.0) <= ended)
        start_t, end_t = started - self.origin, ended - self.origin
        cpu_rows = [sum(n["cpu"] for n in row["nodes"].values()) for row in self.samples if start_t <= row["t"] <= end_t]
        return {
            "target_tps": round(sum(p.target_tps * (p.ended - p.started) for p in phases) / send_s, 1),
            "sent": len(ids),
            "offered_tps": round(len(ids) / send_s, 1),
            "received": received,
            "received_tps": round(received / send_s, 1),
            "committed": len(latencies),
            "committed_within_deadline": within,
            "committed_tps": round(steady_commits / window_s, 1),
            "committed_tps_overall": round(within / max(last_commit - started, send_s), 1),
            "success_rate": round(within / len(ids), 4) if ids else 0.0,
            "latency_ms": latency_summary_ms(latencies),
            "duration_s": round(send_s, 2),
            "backfilled": sum(1 for tx_id in ids if tx_id in tracker.backfilled),
            # CPU of all nodes together while sending (100 = one core)
            "node_cpu_percent_total": round(statistics.fmean(cpu_rows), 1) if cpu_rows else None,
        }

    # ---------------------------------------------------------------- network life

    async def deploy(self) -> dict[str, Any]:
        from pilotchain.ledger.genesis import ChainParams
        from pilotchain.network.consortium import init_network, parse_orgs
        from pilotchain.network.processes import nodes_of, start_node

        options = self.options
        if options.reuse is not None:
            return await self.restart()
        started = time.monotonic()
        base = free_port_block(2 * options.nodes)
        params = ChainParams(block_txs_max=options.block_txs_max) if options.block_txs_max else None
        self.manifest = init_network(self.directory, suite_name=options.suite, validators=options.nodes,
                                     orgs=parse_orgs(str(options.orgs)), base_port=base,
                                     now_ms=int(time.time() * 1000), params=params)
        init_s = time.monotonic() - started
        self.nodes = nodes_of(self.directory)
        self.data_bytes_at_start = [0] * len(self.nodes)
        for node in self.nodes:
            start_node(node)
        first: float | None = None
        remaining = {n.gateway_url for n in self.nodes}
        while remaining:
            if time.monotonic() - started > FIRST_BLOCK_TIMEOUT_S:
                raise RuntimeError(f"no first block within {FIRST_BLOCK_TIMEOUT_S:.0f} s; see {self.directory}/nodes/*/node.log")
            heights = await asyncio.gather(*(self.height(url) for url in remaining))
            for url, height in zip(list(remaining), heights, strict=True):
                if height >= 1:
                    remaining.discard(url)
                    first = first or time.monotonic()
            if remaining:
                await asyncio.sleep(0.05)
        if not (first is not None):
            raise InvariantBroken('invariant broken: first is not None')
        return {"init_s": round(init_s, 3), "first_block_s": round(first - started, 3),
                "all_nodes_first_block_s": round(time.monotonic() - started, 3), "base_port": base}

    async def restart(self) -> dict[str, Any]:
        """Start the nodes of an existing network folder on their ledgers; wait until every one
        answers, within a block of the others (a node behind catches up first)."""
        from pilotchain.network.processes import nodes_of, start_node

        self.manifest = reused_manifest(self.directory, self.options)
        self.nodes = nodes_of(self.directory)
        data_bytes = [directory_bytes(node.home / "data") for node in self.nodes]
        started = time.monotonic()
        for node in self.nodes:
            start_node(node)
        heights: list[int] = []
        while True:
            if time.monotonic() - started > RESTART_TIMEOUT_S:
                raise RuntimeError(f"the reused network did not answer within {RESTART_TIMEOUT_S:.0f} s; "
                                   f"see {self.directory}/nodes/*/node.log")
            heights = list(await asyncio.gather(*(self.height(node.gateway_url) for node in self.nodes)))
            if min(heights) >= 1 and max(heights) - min(heights) <= 1:  # one block apart: in step
                break
            await asyncio.sleep(0.1)
        self.data_bytes_at_start = data_bytes
        return {"reused": True, "height_at_start": heights[0], "restart_s": round(time.monotonic() - started, 3),
                "data_dir_bytes_per_node_mean_at_start": round(statistics.fmean(data_bytes)),
                "init_s": None, "first_block_s": None, "all_nodes_first_block_s": None, "base_port": None}

    def stop_all(self) -> None:
        from pilotchain.network.processes import stop_node

        for node in self.nodes:
            with contextlib.suppress(Exception):
                stop_node(node, grace_s=10.0)


# --------------------------------------------------------------------------- modes

async def stress_ladder(harness: Harness, signer: Signer) -> dict[str, Any]:
    options = harness.options
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    failed_rate: float | None = None
    # more nodes share the same cores: start lower (the ladder climbs by rate_factor anyway)
    rate = options.rate_start or RATE_START_DEFAULT[options.suite] * min(1.0, 4 / options.nodes)

    async def step(rate_tps: float) -> dict[str, Any]:
        txs = await asyncio.to_thread(signer.sign, max(1, int(rate_tps * options.step_s)))
        harness.log(f"stress step: {rate_tps:,.0f} tx/s offered for {options.step_s:g} s")
        phase = await harness.offer(f"stress {rate_tps:.0f}", txs, rate_tps)
        await harness.drain([phase])
        result = harness.phase_result([phase])
        p99_ms = result["latency_ms"]["p99"]
        result["passed"] = (result["success_rate"] >= SUCCESS_MIN["stress"]
                            and result["committed_tps"] >= KEEP_UP_MIN * result["offered_tps"]
                            and (options.latency_p99_max_s <= 0
                                 or (p99_ms is not None and p99_ms <= 1000 * options.latency_p99_max_s)))
        result["generator_bound"] = result["offered_tps"] < 0.9 * rate_tps
        harness.log(f"  received {result['received_tps']:,.0f} tx/s, committed {result['committed_tps']:,.0f} tx/s, "
                    f"success {result['success_rate']:.1%}, p50 {result['latency_ms']['p50']} ms -> "
                    f"{'keeps up' if result['passed'] else 'falls behind'}")
        steps.append(result)
        return result

    while len(steps) < options.steps_max and rate <= options.rate_max:
        result = await step(rate)
        if result["passed"]:
            best = result
            if result["generator_bound"]:
                break
            rate *= options.rate_factor
        else:
            failed_rate = rate
            break
    # bisect between the best rate that kept up and the first that did not
    low = best["target_tps"] if best is not None else None
    while (low is not None and failed_rate is not None and len(steps) < options.steps_max
           and failed_rate > low * (1 + options.bisect_precision)):
        middle = (low + failed_rate) / 2
        result = await step(middle)
        if result["passed"]:
            low = middle
            if best is None or result["committed_tps"] > best["committed_tps"]:
                best = result
        else:
            failed_rate = middle
    if best is None:  # nothing kept up: report the least bad step so the run still says something
        best = max(steps, key=lambda s: s["committed_tps"])
    return {
        "sustained_committed_tps": best["committed_tps"],
        "best_step": best,
        "first_failed_rate_tps": failed_rate,
        "found": bool(best.get("passed")),
        "steps": steps,
        "step_s": options.step_s,
        "rate_factor": options.rate_factor,
    }


async def spike(harness: Harness, signer: Signer, stress_tps: float) -> dict[str, Any]:
    options = harness.options
    baseline = max(1.0, SPIKE_BASELINE_SHARE * stress_tps)
    burst = SPIKE_MULTIPLE * stress_tps
    bursts: list[dict[str, Any]] = []
    all_phases: list[Phase] = []
    for number in range(1, options.spike_count + 1):
        before_txs = await asyncio.to_thread(signer.sign, int(baseline * options.spike_baseline_s))
        burst_txs = await asyncio.to_thread(signer.sign, int(burst * options.spike_s))
        after_txs = await asyncio.to_thread(signer.sign, int(baseline * options.spike_baseline_s * 2))
        harness.log(f"spike {number}: baseline {baseline:,.0f} tx/s, burst {burst:,.0f} tx/s for {options.spike_s:g} s")
        before = await harness.offer(f"spike {number} baseline", before_txs, baseline)
        peak = await harness.offer(f"spike {number} burst", burst_txs, burst)
        after = await harness.offer(f"spike {number} recovery", after_txs, baseline)
        await harness.drain([before, peak, after])
        all_phases += [before, peak, after]
        tracker = harness.tracker
        # recovery: until everything sent up to the end of the burst has committed
        earlier = [tx_id for p in (before, peak) for tx_id in p.tx_ids]
        commits = [tracker.committed_at[t] for t in earlier if t in tracker.committed_at]
        recovery_s = max(0.0, max(commits) - peak.ended) if commits else None
        bursts.append({
            "baseline_before": harness.phase_result([before]),
            "burst": harness.phase_result([peak], steady_skip_s=0.0),
            "baseline_after": harness.phase_result([after]),
            "recovery_s": None if recovery_s is None else round(recovery_s, 2),
        })
    burst_success = min(b["burst"]["success_rate"] for b in bursts)
    overall = harness.phase_result(all_phases)
    return {
        "stress_tps": stress_tps, "baseline_tps": round(baseline, 1), "burst_tps": round(burst, 1),
        "burst_s": options.spike_s, "bursts": bursts, "overall": overall,
        "burst_success_rate": burst_success,
        "passed": burst_success >= SUCCESS_MIN["spike"],
        "recovery_s_max": max((b["recovery_s"] or 0.0) for b in bursts),
    }


async def stability(harness: Harness, signer: Signer, stress_tps: float) -> dict[str, Any]:
    options = harness.options
    rate = max(1.0, STABILITY_SHARE * stress_tps)
    count = int(rate * options.duration_s)
    expires = int(min(EXPIRY_MS_MAX, options.duration_s * 1000 + 300_000))
    txs = await asyncio.to_thread(signer.sign, count, expires)
    harness.log(f"stability: {rate:,.0f} tx/s for {options.duration_s:g} s ({count:,} transactions)")
    phase = await harness.offer("stability", txs, rate)
    await harness.drain([phase])
    result = harness.phase_result([phase])
    # drift: p50 latency per window of submit time, and each node's memory over the phase
    window_s = max(5.0, options.duration_s / 30)
    windows: dict[int, list[float]] = {}
    tracker = harness.tracker
    for tx_id in phase.tx_ids:
        at = tracker.committed_at.get(tx_id)
        if at is None:
            continue
        sent = tracker.sent_at[tx_id]
        windows.setdefault(int((sent - phase.started) // window_s), []).append(at - sent)
    latency_windows = [LatencyWindow((index + 0.5) * window_s, percentile(sorted(values), 50) * 1000,  # type: ignore[operator]
                                     len(values))
                       for index, values in sorted(windows.items())]
    latency_points = [(w.t_s, w.p50_ms) for w in latency_windows]
    start_t, end_t = phase.started - harness.origin, phase.ended - harness.origin
    rss_slopes: dict[str, float | None] = {}
    anon_slopes: dict[str, float | None] = {}
    anon_series: dict[str, list[tuple[float, float]]] = {}
    for node in harness.nodes:
        rows = [(row["t"] - start_t, row["nodes"][node.name]) for row in harness.samples
                if start_t <= row["t"] <= end_t and node.name in row["nodes"]]
        slope = slope_per_minute([(t, r["rss"] / 2**20) for t, r in rows])
        rss_slopes[node.name] = None if slope is None else round(slope, 3)
        anon = [(t, r["rss_anon"] / 2**20) for t, r in rows if r.get("rss_anon") is not None]
        anon_series[node.name] = anon
        anon_slope = slope_per_minute(anon)
        anon_slopes[node.name] = None if anon_slope is None else round(anon_slope, 3)
    latency_slope = slope_per_minute(latency_points)
    mean_p50 = statistics.fmean(p[1] for p in latency_points) if latency_points else None
    drift = drift_verdict(latency_windows, anon_series, options.duration_s)
    return {
        "stress_tps": stress_tps, "rate_tps": round(rate, 1), "duration_s": options.duration_s,
        "result": result,
        "passed": result["success_rate"] >= SUCCESS_MIN["stability"] and drift["met"] is True,
        "drift": drift,
        "latency_p50_slope_ms_per_min": None if latency_slope is None else round(latency_slope, 3),
        "latency_p50_drift_pct_over_run": (None if latency_slope is None or not mean_p50 else
                                           round(latency_slope * options.duration_s / 60 / mean_p50 * 100, 1)),
        "latency_windows": [{"t_s": round(w.t_s, 1), "p50_ms": round(w.p50_ms, 1), "txs": w.txs}
                            for w in latency_windows],
        "rss_slope_mb_per_min": rss_slopes,
        "rss_anon_slope_mb_per_min": anon_slopes,
    }


class LatencyWindow(NamedTuple):
    """Transactions submitted in one window of a stability run: its middle (s from the start),
    their p50 latency (ms) and how many committed."""

    t_s: float
    p50_ms: float
    txs: int


#: The stability verdict. The first part of the run is warm-up: the bounded caches fill (decoded
#: transactions, digests, state keys, certificates) and the state tree grows its first levels.
#: The rest is cut in two halves by time; the run drifts if the second half is worse than the
#: first by more than the limits: median of the windows' p50 latency, and each node's peak
#: anonymous memory (the heap; the ledger's memory map is file-backed and grows with the chain).
STABILITY_WARMUP_S_MIN: Final = 60.0
STABILITY_WARMUP_SHARE: Final = 0.2
DRIFT_LATENCY_PCT_MAX: Final = 20.0
DRIFT_MEMORY_PCT_MAX: Final = 10.0
#: a window with fewer transactions than this share of the median window is partial (the last
#: one, when sending ran a moment past the planned end) and is left out of the verdict
PARTIAL_WINDOW_SHARE: Final = 0.5
#: fewest windows and memory samples per half for a verdict
DRIFT_POINTS_MIN: Final = 2


def _change_pct(before: float, after: float) -> float:
    return round((after / before - 1) * 100, 1) if before > 0 else 0.0


def drift_verdict(latency_windows: Sequence[LatencyWindow], memory: Mapping[str, Sequence[tuple[float, float]]],
                  duration_s: float) -> dict[str, Any]:
    """Did latency or memory drift over a stability run? ``memory`` maps each node to (seconds
    from the start, anonymous MiB) samples. ``met`` is None when the run is too short to judge
    (fewer than two latency windows or memory samples in each half after the warm-up), and a
    run that cannot be judged does not pass."""
    warmup_s = max(STABILITY_WARMUP_S_MIN, STABILITY_WARMUP_SHARE * duration_s)
    middle_s = warmup_s + (duration_s - warmup_s) / 2
    verdict: dict[str, Any] = {
        "warmup_s": round(warmup_s, 1), "split_at_s": round(middle_s, 1),
        "latency_pct_max": DRIFT_LATENCY_PCT_MAX, "memory_pct_max": DRIFT_MEMORY_PCT_MAX,
    }
    counts = sorted(w.txs for w in latency_windows)
    full = counts[len(counts) // 2] * PARTIAL_WINDOW_SHARE if counts else 0
    judged = [w for w in latency_windows if w.txs >= full and w.t_s >= warmup_s]
    first = [w.p50_ms for w in judged if w.t_s < middle_s]
    second = [w.p50_ms for w in judged if w.t_s >= middle_s]
    latency: dict[str, Any] = {"windows": [len(first), len(second)], "met": None}
    if len(first) >= DRIFT_POINTS_MIN and len(second) >= DRIFT_POINTS_MIN:
        before, after = statistics.median(first), statistics.median(second)
        latency.update(first_half_p50_ms=round(before, 1), second_half_p50_ms=round(after, 1),
                       change_pct=_change_pct(before, after))
        latency["met"] = latency["change_pct"] <= DRIFT_LATENCY_PCT_MAX
    nodes: dict[str, Any] = {}
    for name, samples in sorted(memory.items()):
        early = [mib for t, mib in samples if warmup_s <= t < middle_s]
        late = [mib for t, mib in samples if t >= middle_s]
        row: dict[str, Any] = {"samples": [len(early), len(late)], "met": None}
        if len(early) >= DRIFT_POINTS_MIN and len(late) >= DRIFT_POINTS_MIN:
            row.update(first_half_peak_mib=round(max(early), 1), second_half_peak_mib=round(max(late), 1),
                       change_pct=_change_pct(max(early), max(late)))
            row["met"] = row["change_pct"] <= DRIFT_MEMORY_PCT_MAX
        nodes[name] = row
    memory_met: bool | None = None
    if nodes and all(row["met"] is not None for row in nodes.values()):
        memory_met = all(row["met"] for row in nodes.values())
    verdict["latency"] = latency
    verdict["memory"] = {"nodes": nodes, "met": memory_met}
    if latency["met"] is None or memory_met is None:
        verdict["met"] = None
        verdict["why"] = (f"too short to judge drift: needs at least {DRIFT_POINTS_MIN} latency windows and memory "
                          f"samples per node on each side of {middle_s:.0f} s after a {warmup_s:.0f}-s warm-up")
    else:
        verdict["met"] = bool(latency["met"] and memory_met)
    return verdict


# --------------------------------------------------------------------------- extras

async def catchup(harness: Harness, signer: Signer, rate_tps: float) -> dict[str, Any]:
    """Stop the last node, run load, restart it, time until it reaches the head."""
    from pilotchain.network.processes import node_pid, start_node, stop_node

    options = harness.options
    node = harness.nodes[-1]
    others = [n for n in harness.nodes if n is not node]
    txs = await asyncio.to_thread(signer.sign, max(1, int(rate_tps * options.catchup_s)))
    stopped_height = await harness.height(node.gateway_url)
    await asyncio.to_thread(stop_node, node, grace_s=10.0)
    harness.down.add(node.name)
    harness.log(f"catch-up: {node.name} stopped at height {stopped_height}; {rate_tps:,.0f} tx/s for {options.catchup_s:g} s")
    phase = await harness.offer("catch-up load", txs, rate_tps)
    await harness.drain([phase])
    heads = await asyncio.gather(*(harness.height(n.gateway_url) for n in others))
    head = max(heads)
    restarted = time.monotonic()
    await asyncio.to_thread(start_node, node)
    answering: float | None = None
    first_height: int | None = None
    progress_at: float | None = None
    reached: float | None = None
    exited = False
    while time.monotonic() - restarted < CATCHUP_TIMEOUT_S:
        if node_pid(node.home) is None:
            exited = True
            break
        height = await harness.height(node.gateway_url)
        now = time.monotonic()
        if height >= 0 and answering is None:
            answering, first_height = now, height
        if first_height is not None and height > first_height and progress_at is None:
            progress_at = now
        if height >= head:
            reached = now
            break
        await asyncio.sleep(0.05)
    harness.down.discard(node.name)
    blocks = max(0, head - stopped_height)
    txs_behind = sum(count for height, count in harness.tracker.height_txs.items() if stopped_height < height <= head)
    result: dict[str, Any] = {
        "node": node.name, "stopped_at_height": stopped_height, "head": head, "blocks_behind": blocks,
        "txs_behind": txs_behind, "reached_head": reached is not None, "load": harness.phase_result([phase]),
    }
    if reached is None:
        result["error"] = (("the restarted node exited: " if exited else
                            f"not at the head within {CATCHUP_TIMEOUT_S:.0f} s: ") + last_problem(node.home))
        harness.log(f"  catch-up failed: {result['error']}")
    if reached is not None:
        total_s = reached - restarted
        sync_s = reached - (answering or restarted)
        result.update({
            "restart_to_head_s": round(total_s, 3),
            "answering_after_s": None if answering is None else round(answering - restarted, 3),
            "height_when_answering": first_height,
            "sync_s": round(sync_s, 3),
            "blocks_per_s": round(blocks / total_s, 1) if total_s > 0 else None,
            "txs_per_s": round(txs_behind / total_s, 1) if total_s > 0 else None,
            "txs_per_s_after_answering": round(txs_behind / sync_s, 1) if sync_s > 0 else None,
        })
    return result


async def query_throughput(harness: Harness, keys: list[str]) -> dict[str, Any]:
    """Concurrent reads on every gateway: kv.get queries, and state reads with proofs."""
    options = harness.options
    gateways = harness.gateways()
    out: dict[str, Any] = {"concurrency": options.query_concurrency, "seconds": options.query_s}
    if not keys:
        return out

    async def hammer(kind: str) -> dict[str, Any]:
        done = 0
        errors = 0
        latencies: list[float] = []
        deadline = time.monotonic() + options.query_s

        async def worker(index: int) -> None:
            nonlocal done, errors
            client = harness.http(gateways[index % len(gateways)])
            rng = random.Random(index)
            while time.monotonic() < deadline:
                key = rng.choice(keys)
                started = time.monotonic()
                try:
                    if kind == "query":
                        response = await client.post("/v1/query/kv/get", content=json.dumps({"args": {"key": key}}),
                                                     headers={"content-type": "application/json"})
                    else:
                        response = await client.get("/v1/state/kv", params={"key_text": f"v/{key}"})
                except httpx.HTTPError:
                    errors += 1
                    continue
                if response.status_code == 200:
                    done += 1
                    latencies.append(time.monotonic() - started)
                else:
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(options.query_concurrency)))
        elapsed = time.monotonic() - started
        return {"per_second": round(done / elapsed, 1), "ok": done, "errors": errors,
                "latency_ms": latency_summary_ms(latencies)}

    out["kv_get_query"] = await hammer("query")
    out["state_read_with_proof"] = await hammer("state")
    return out


def profile_summary(raw_path: Path, top: int = 25) -> dict[str, Any]:
    """Where the sampled stacks of a py-spy ``-f raw`` file spend their time (self and by file)."""
    self_counts: Counter[str] = Counter()
    file_counts: Counter[str] = Counter()
    total = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        self_counts[leaf] += count
        seen: set[str] = set()
        for frame in frames:
            start, end = frame.rfind("("), frame.rfind(")")
            location = frame[start + 1:end] if 0 <= start < end else frame
            path = location.rsplit(":", 1)[0]
            if path not in seen:
                seen.add(path)
                file_counts[path] += count
    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"where": key, "percent": round(100 * value / total, 1)} for key, value in counter.most_common(top)]
    return {"samples": total, "self": share(self_counts), "inclusive_by_file": share(file_counts)}


def start_profile(harness: Harness) -> tuple[subprocess.Popen[bytes], Path] | None:
    options = harness.options
    if options.profile_s <= 0:
        return None
    py_spy = shutil.which("py-spy") or str(Path(os.sys.executable).with_name("py-spy"))  # type: ignore[attr-defined]
    node = harness.nodes[options.profile_node % len(harness.nodes)]
    process = harness.process_of(node)
    if process is None or not Path(py_spy).exists():
        harness.log("profile: py-spy or the node process is missing; skipped")
        return None
    output = harness.directory / f"profile-{node.name}.txt"
    popen = subprocess.Popen([py_spy, "record", "-p", str(process.pid), "-d", str(int(options.profile_s)),
                              "-r", "100", "-f", "raw", "-o", str(output), "--nonblocking"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    harness.log(f"profile: py-spy on {node.name} (pid {process.pid}) for {options.profile_s:g} s")
    return popen, output


# --------------------------------------------------------------------------- report pieces

def node_resources(harness: Harness, start_t: float, end_t: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rows = [row for row in harness.samples if start_t <= row["t"] <= end_t]
    for node in harness.nodes:
        cpu = [row["nodes"][node.name]["cpu"] for row in rows if node.name in row["nodes"]]
        rss_all = [row["nodes"][node.name]["rss"] for row in harness.samples if node.name in row["nodes"]]
        anon_all = [row["nodes"][node.name]["rss_anon"] for row in harness.samples
                    if node.name in row["nodes"] and row["nodes"][node.name].get("rss_anon") is not None]
        out[node.name] = {
            "cpu_percent_mean": round(statistics.fmean(cpu), 1) if cpu else None,
            "cpu_percent_max": round(max(cpu), 1) if cpu else None,
            "rss_mb_peak": round(max(rss_all) / 2**20, 1) if rss_all else None,
            "rss_anon_mb_peak": round(max(anon_all) / 2**20, 1) if anon_all else None,
            "data_dir_bytes": directory_bytes(node.home / "data"),
        }
    generator = [row["generator"]["cpu"] for row in rows]
    out_generator = {
        "cpu_percent_mean": round(statistics.fmean(generator), 1) if generator else None,
        "rss_mb_peak": round(max(row["generator"]["rss"] for row in harness.samples) / 2**20, 1) if harness.samples else None,
    }
    return {"nodes": out, "generator": out_generator}


def timeline(harness: Harness) -> list[dict[str, Any]]:
    """Per second since the start: sent, committed, latency p50/p95 of that second's commits, node CPU/RSS."""
    tracker = harness.tracker
    origin = harness.origin
    sent: Counter[int] = Counter()
    committed: dict[int, list[float]] = {}
    for at in tracker.sent_at.values():
        sent[int(at - origin)] += 1
    for tx_id, at in tracker.committed_at.items():
        sent_at = tracker.sent_at.get(tx_id)
        if sent_at is not None:
            committed.setdefault(int(at - origin), []).append(at - sent_at)
    samples = {int(row["t"]): row for row in harness.samples}
    last = max([*sent, *committed, *samples, 0])
    rows = []
    for second in range(last + 1):
        latencies = sorted(committed.get(second, []))
        sample = samples.get(second)
        rows.append({
            "t": second, "sent": sent.get(second, 0), "committed": len(latencies),
            "p50_ms": _round_ms(percentile(latencies, 50)), "p95_ms": _round_ms(percentile(latencies, 95)),
            "cpu_total": round(sum(n["cpu"] for n in sample["nodes"].values()), 1) if sample else None,
            "rss_mb_total": round(sum(n["rss"] for n in sample["nodes"].values()) / 2**20, 1) if sample else None,
        })
    return rows


def headline(document: dict[str, Any]) -> dict[str, Any]:
    """The CAICT figures of the run's mode, in one flat place."""
    mode = document["config"]["mode"]
    ceiling = document["ceiling"]["verify_per_second"]
    nodes = document["config"]["nodes"]
    if mode == "stress":
        best = document["stress"]["best_step"]
        committed_tps = document["stress"]["sustained_committed_tps"]
    elif mode == "spike":
        best = document["spike"]["overall"]
        committed_tps = document["stress_tps_used"]
    else:
        best = document["stability"]["result"]
        committed_tps = best["committed_tps"]
    return {
        "mode": mode,
        "received_tps": best["received_tps"],
        "committed_tps": committed_tps,
        "success_rate": best["success_rate"],
        "latency_ms": best["latency_ms"],
        "efficiency": round(committed_tps * nodes / ceiling, 4) if ceiling else None,
        "verify_ceiling_per_second": ceiling,
        "floor": floor_verdict(document["config"], committed_tps, best),
    }


#: The issue's floor for n = 4 on this machine: committed tx/s by suite, success, p99.
FLOOR_TPS: Final = {"intl": 2000.0, "gm": 800.0}
FLOOR_SUCCESS: Final = 0.95
FLOOR_P99_MS: Final = 2000.0


def floor_verdict(config: dict[str, Any], committed_tps: float, best: dict[str, Any]) -> dict[str, Any] | None:
    """Whether a 4-node stress result meets the project's published floor (None otherwise)."""
    if config["mode"] != "stress" or config["nodes"] != 4:
        return None
    target = FLOOR_TPS[config["suite"]]
    p99 = best["latency_ms"]["p99"]
    return {
        "committed_tps_min": target,
        "success_min": FLOOR_SUCCESS,
        "p99_ms_max": FLOOR_P99_MS,
        "met": (committed_tps >= target and best["success_rate"] >= FLOOR_SUCCESS
                and p99 is not None and p99 <= FLOOR_P99_MS),
    }


# --------------------------------------------------------------------------- the run

async def _run(options: BenchOptions, directory: Path, signer: Signer,
               log: Callable[[str], None]) -> dict[str, Any]:
    harness = Harness(options, directory, log)
    document: dict[str, Any] = {"config": {k: (str(v) if isinstance(v, Path) else v)
                                           for k, v in asdict(options).items()}}
    try:
        document["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
        log(f"verification ceiling ({options.suite}, all cores, {options.ceiling_s:g} s)…")
        ceiling_before = await asyncio.to_thread(verify_ceiling, options.suite, options.ceiling_s)
        log(f"  {ceiling_before['verify_per_second']:,.0f} verifications/s")
        log(f"network init + start of {options.nodes} nodes ({options.suite}) in {directory}…")
        document["deployment"] = await harness.deploy()
        if options.reuse is not None:
            log(f"  restarted at height {document['deployment']['height_at_start']:,} "
                f"in {document['deployment']['restart_s']:.1f} s")
        else:
            log(f"  first block {document['deployment']['first_block_s']:.2f} s after init started")
        identities = issue_bench_clients(directory, harness.manifest, options.clients_per_org, int(time.time() * 1000))
        signer.use(identities, harness.manifest["chain_id"])
        document["clients"] = {"identities": len(identities), "orgs": options.orgs}
        url = harness.nodes[0].gateway_url
        harness._tasks += [asyncio.create_task(harness.listen(url, "block")),
                           asyncio.create_task(harness.listen(url, "tx")),
                           asyncio.create_task(harness.sample())]
        for event in harness._connected.values():
            await asyncio.wait_for(event.wait(), timeout=30)
        await asyncio.to_thread(signer.sign, 2)  # start the signing workers before anything is measured

        main_started = harness.now() - harness.origin
        profile = start_profile(harness)
        stress_tps = options.rate
        if options.mode == "stress" or stress_tps is None:
            document["stress"] = await stress_ladder(harness, signer)
            stress_tps = document["stress"]["sustained_committed_tps"]
        document["stress_tps_used"] = stress_tps
        if options.mode == "spike":
            document["spike"] = await spike(harness, signer, stress_tps)
        elif options.mode == "stability":
            document["stability"] = await stability(harness, signer, stress_tps)
        main_ended = harness.now() - harness.origin
        if profile is not None:
            popen, output = profile
            if popen.poll() is None:  # the main phase ended first: py-spy writes its file on SIGINT
                popen.send_signal(signal.SIGINT)
            try:
                _, error = popen.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                popen.kill()
                _, error = popen.communicate()
            if output.exists():
                document["profile"] = {"node": harness.nodes[options.profile_node % len(harness.nodes)].name, "seconds": options.profile_s,
                                       **profile_summary(output)}
                if options.profile_output is not None:
                    shutil.copyfile(output, options.profile_output)
            else:
                document["profile"] = {"error": error.decode(errors="replace")[-500:]}
        document["resources"] = node_resources(harness, main_started, main_ended)

        if options.catchup_s > 0 and options.nodes >= 4:
            document["catchup"] = await catchup(harness, signer, max(1.0, SPIKE_BASELINE_SHARE * stress_tps))
        if options.query_s > 0:
            keys = [signer.key_of(i) for i in range(0, signer.next_index, max(1, signer.next_index // 5000))]
            committed_keys = keys  # most of them committed; a missing key is still a valid read
            log(f"queries: {options.query_concurrency} concurrent for {options.query_s:g} s each…")
            document["query"] = await query_throughput(harness, committed_keys)

        committed_total = len(harness.tracker.committed_at)
        data_bytes = [directory_bytes(node.home / "data") - before
                      for node, before in zip(harness.nodes, harness.data_bytes_at_start, strict=True)]
        document["ledger"] = {
            "committed_txs": committed_total,
            "data_dir_bytes_per_node_mean": round(statistics.fmean(data_bytes)),
            "bytes_per_tx": round(statistics.fmean(data_bytes) / committed_total, 1) if committed_total else None,
        }
        document["rejected"] = dict(harness.tracker.rejected)
        document["event_stream"] = {"drops": harness.stream_drops["tx"], "block_stream_drops": harness.stream_drops["block"],
                                    "backfilled_txs": len(harness.tracker.backfilled),
                                    "errors": harness.stream_errors[:5]}
        # the ceiling again with the nodes stopped; the higher of the two counts (noise only lowers it)
        await harness.close()
        await asyncio.to_thread(harness.stop_all)
        ceiling_after = await asyncio.to_thread(verify_ceiling, options.suite, options.ceiling_s)
        document["ceiling"] = {**max(ceiling_before, ceiling_after, key=lambda c: c["verify_per_second"]),
                               "before_per_second": ceiling_before["verify_per_second"],
                               "after_per_second": ceiling_after["verify_per_second"]}
        log(f"verification ceiling after the run: {ceiling_after['verify_per_second']:,.0f}/s")
        if "stability" in document and ceiling_before["verify_per_second"]:
            # context for the drift verdict, not part of it: this VM's speed moves by itself
            document["stability"]["drift"]["machine_change_pct"] = _change_pct(
                ceiling_before["verify_per_second"], ceiling_after["verify_per_second"])
        document["phases"] = [{"name": p.name, "target_tps": round(p.target_tps, 1),
                               "start_s": round(p.started - harness.origin, 2),
                               "end_s": round(p.ended - harness.origin, 2)} for p in harness.phases]
        document["timeline"] = timeline(harness)
        document["summary"] = headline(document)
        return document
    finally:
        await harness.close()
        await asyncio.to_thread(harness.stop_all)


def run(options: BenchOptions, log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Run one benchmark; returns the result document (see the module docstring)."""
    options.check()
    if options.reuse is not None:
        directory = options.reuse
        reused_manifest(directory, options)  # a clear error before anything starts
        cleanup = False
    elif options.workdir is not None:
        directory = options.workdir
        if directory.exists() and any(directory.iterdir()):
            raise ValueError(f"{directory} is not empty")
        directory.mkdir(parents=True, exist_ok=True)
        cleanup = False
    else:
        directory = Path(tempfile.mkdtemp(prefix="pilotchain-bench-"))
        cleanup = not options.keep_workdir
    signer = Signer(options.sign_workers or (os.cpu_count() or 1))
    # the load generator keeps every sent transaction's times in dicts (hundreds of thousands of
    # entries): the node's GC settings keep its collector from scanning them over and over
    import gc

    from pilotchain.node.daemon import tune_gc

    thresholds = gc.get_threshold()
    tune_gc()
    try:
        return asyncio.run(_run(options, directory, signer, log))
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        signer.close()
        if cleanup:
            shutil.rmtree(directory, ignore_errors=True)

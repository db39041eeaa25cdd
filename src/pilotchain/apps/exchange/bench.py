"""``pilotchain bench exchange``: payloads between two organisations' vaults on a running network.

Mounted under ``pilotchain bench`` through the ``pilotchain.bench_workloads`` entry-point group
(``pyproject.toml``): the platform's benchmark command finds it and never imports it.

Theory of operation. A 4-validator network is created in a temporary folder (or ``--workdir``, or
an earlier one restarted with ``--reuse``) and started with ``pilotchain network up``, exactly as
an operator would: ``dataex`` is activated through governance and every organisation's vault runs
as its own process. The bench process plays the members: organisation A's (the provider) and B's
(the consumer). One delivery first warms connections and the vaults' caches (not measured). For
each payload size:

1. **store**: A's members store N random payloads in A's vault (``--concurrency`` at a time); a
   store returns once the payload is durable and its commitment registered on chain.
2. **deliver**: ``--concurrency`` workers, each in turn for its next payload: A's member records a
   PERMIT for B (``dataex.decide``); the moment its ``tx`` event arrives on the event stream of
   B's node is *the PERMIT's commit* (as the network benchmark times commits); B's member then has
   B's vault fetch the payload, which returns once the payload was released by A's vault against
   the PERMIT proven at a certified header, decrypted at B's vault, checked against the
   commitment on chain and stored. **Latency** = that return − the PERMIT's commit. A fetch that
   A's vault refuses because A's node has not applied the PERMIT's block yet is retried at once
   (counted in ``retries``; the latency includes it). **deliveries/s** and **MB/s** (10^6 bytes)
   are over the phase, from the first PERMIT sent to the last fetch returned, so each delivery
   carries the cost of its own PERMIT.
3. **anchoring**: the vaults anchor their signed receipts in Merkle batches on their own timer
   (``anchor_interval_ms``, 1 s by ``network up``). After the phase the bench waits until both
   vaults have anchored every receipt of the phase, then counts the ``dataex.anchor``
   transactions in the blocks committed since the phase began: **anchor transactions per
   delivery**, and receipts per anchor.

Nothing is asserted about speed: the document is printed (a table, or ``--json``) and recorded as
``bench/results/exchange-<suite>-<n>n-<UTC time>-<commit>.json``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pilotchain.apps.exchange.client import VaultClient, VaultError
from pilotchain.apps.exchange.records import CONTRACT
from pilotchain.errors import CoreError
from pilotchain.sdk import Client, Identity, PilotchainError

__all__ = ["ExchangeBenchError", "ExchangeBenchOptions", "PayloadSize", "app", "network_problems", "parse_payloads",
           "run", "tables", "trend_ms"]

PURPOSE = "TREAT"
#: the vault refuses payloads larger than this (VaultLimits.payload_bytes_max)
PAYLOAD_BYTES_MAX = 64 * 1024 * 1024
PAYLOADS_PER_SIZE_MAX = 100_000
CONCURRENCY_MAX = 64
#: how long a worker waits for its PERMIT's commit event before asking the node instead
PERMIT_EVENT_WAIT_S = 20.0
#: a fetch refused because the provider's node has not applied the PERMIT yet is retried this often
FETCH_RETRIES_MAX = 100
RETRYABLE = frozenset({"NO_PERMIT", "STALE_CHAIN", "CHAIN_UNAVAILABLE"})
#: how long the vaults may take to anchor a phase's receipts
SETTLE_S_MAX = 180.0
#: commit times kept for transactions nobody asked about yet (anchors, other members' calls)
COMMITS_KEPT_MAX = 20_000
NETWORK_UP_TIMEOUT_S = 300.0
_UNITS = {"b": 1, "kib": 1024, "mib": 1024 * 1024}


class ExchangeBenchError(CoreError):
    """The benchmark could not run (the message says what failed and where the logs are)."""


# ---------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class PayloadSize:
    label: str
    size_bytes: int
    count: int


def size_label(size_bytes: int) -> str:
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return f"{size_bytes}B"


def parse_payloads(text: str) -> list[PayloadSize]:
    """``"10KiB=200,1MiB=20"`` -> sizes and counts (units B, KiB, MiB); ValueError says what is wrong."""
    sizes = []
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)\s*([A-Za-z]*)\s*=\s*(\d+)", part)
        unit = match.group(2).lower() if match else ""
        if match is None or (unit or "b") not in _UNITS:
            raise ValueError(f"{part!r}: write SIZE=COUNT with SIZE in B, KiB or MiB, e.g. 10KiB=200,1MiB=20")
        size, count = int(match.group(1)) * _UNITS[unit or "b"], int(match.group(3))
        if not 1 <= size <= PAYLOAD_BYTES_MAX:
            raise ValueError(f"{part!r}: a payload is 1 B to {PAYLOAD_BYTES_MAX // 2**20} MiB")
        if not 1 <= count <= PAYLOADS_PER_SIZE_MAX:
            raise ValueError(f"{part!r}: 1 to {PAYLOADS_PER_SIZE_MAX:,} payloads per size")
        sizes.append(PayloadSize(size_label(size), size, count))
    if len({s.size_bytes for s in sizes}) != len(sizes):
        raise ValueError(f"{text!r} names a size twice")
    return sizes


@dataclass(frozen=True, slots=True)
class ExchangeBenchOptions:
    payloads: tuple[PayloadSize, ...]
    concurrency: int = 4
    suite: str = "intl"
    nodes: int = 4
    orgs: int = 2
    workdir: Path | None = None
    reuse: Path | None = None
    keep: bool = False

    def check(self) -> None:
        if not self.payloads:
            raise ValueError("name at least one payload size (--payloads 10KiB=200)")
        if not 1 <= self.concurrency <= CONCURRENCY_MAX:
            raise ValueError(f"--concurrency is 1..{CONCURRENCY_MAX}")
        if self.suite not in ("intl", "gm"):
            raise ValueError("--crypto is intl or gm")
        if self.nodes < 1 or not 2 <= self.orgs <= 7:
            raise ValueError("--nodes is at least 1 and --orgs 2..7 (a provider and a consumer)")
        if self.reuse is not None and not (self.reuse / "network.json").is_file():
            raise ValueError(f"--reuse {self.reuse}: no network.json there (a folder an earlier --workdir run left)")
        if self.workdir is not None and self.workdir.exists() and any(self.workdir.iterdir()):
            raise ValueError(f"--workdir {self.workdir} is not empty")


# ---------------------------------------------------------------------- the network


def _pilotchain(*args: object, timeout_s: float = NETWORK_UP_TIMEOUT_S) -> str:
    """Run a ``pilotchain`` command as an operator would; its stdout, or ExchangeBenchError."""
    command = [sys.executable, "-m", "pilotchain", *map(str, args)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise ExchangeBenchError(f"`pilotchain {' '.join(map(str, args))}` did not finish in {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        raise ExchangeBenchError(f"`pilotchain {' '.join(map(str, args))}` failed ({done.returncode}): "
                                 f"{(done.stderr or done.stdout).strip()[-1500:]}")
    return done.stdout


def network_problems(directory: Path) -> str:
    """What ``network status`` says is down (nodes and vaults, with the reason), or ""."""
    try:
        done = subprocess.run([sys.executable, "-m", "pilotchain", "network", "status", "--dir", str(directory),
                               "--json"], capture_output=True, text=True, timeout=60)
        rows = json.loads(done.stdout)
    except (subprocess.SubprocessError, OSError, ValueError):
        return ""
    down = [f"{row.get('node')}: {row.get('reason') or row.get('state')}" for row in rows
            if isinstance(row, dict) and not row.get("up")]
    return ("; down: " + "; ".join(down)) if down else ""


@dataclass
class Side:
    """One organisation as the bench plays it: a member identity, its vault and its node."""

    org: str
    identity: Identity
    vault_url: str
    node_url: str


@dataclass
class BenchNetwork:
    directory: Path
    manifest: dict[str, Any]
    provider: Side
    consumer: Side
    anchor_interval_ms: int
    up_s: float

    def chain(self, side: Side) -> Client:
        from pilotchain.sdk._network import load_network

        return Client(side.node_url, network=load_network(self.directory), identity=side.identity, timeout=30.0)


def _side(directory: Path, manifest: dict[str, Any], org: dict[str, Any]) -> Side:
    vault = json.loads((directory / "vaults" / org["org"] / "vault.json").read_text())
    return Side(org=org["org"], identity=Identity.load(directory / org["client_identity"]),
                vault_url=str(vault["public_url"]), node_url=str(vault["nodes"][0]))


@contextlib.contextmanager
def bench_network(options: ExchangeBenchOptions, log: Callable[[str], None]) -> Iterator[BenchNetwork]:
    """The network the workload runs on, up with its vaults; stopped (and a temporary folder
    removed) afterwards."""
    from pilotchain.bench.network import free_port_block

    if options.reuse is not None:
        directory, remove = options.reuse, False
    elif options.workdir is not None:
        directory, remove = options.workdir, False
        directory.mkdir(parents=True, exist_ok=True)
    else:
        directory, remove = Path(tempfile.mkdtemp(prefix="pilotchain-bench-exchange-")), not options.keep
    started = time.perf_counter()
    try:
        if options.reuse is None:
            log(f"network init: {options.nodes} validators, {options.orgs} organisations, {options.suite}, in {directory}")
            _pilotchain("network", "init", "--dir", directory, "--orgs", options.orgs, "--validators", options.nodes,
                        "--crypto", options.suite, "--base-port", free_port_block(2 * options.nodes), timeout_s=120)
        log("network up: validators, dataex through governance, a vault per organisation…")
        _pilotchain("network", "up", "--dir", directory)
        manifest = json.loads((directory / "network.json").read_text())
        organizations = manifest["organizations"]
        provider = _side(directory, manifest, organizations[0])
        consumer = _side(directory, manifest, organizations[1])
        interval = json.loads((directory / "vaults" / provider.org / "vault.json").read_text()).get(
            "anchor_interval_ms", 2_000)
        yield BenchNetwork(directory, manifest, provider, consumer, int(interval), time.perf_counter() - started)
    finally:
        if (directory / "network.json").is_file():
            log("network down…")
            with contextlib.suppress(ExchangeBenchError):
                _pilotchain("network", "down", "--dir", directory, "--grace", 10, timeout_s=180)
        if remove:
            shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------- commit times


class CommitWatcher:
    """When each transaction's ``tx`` event arrived on one node's event stream (``perf_counter``)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._seen: OrderedDict[str, tuple[float, str, str]] = OrderedDict()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self.reconnects = 0
        self._thread = threading.Thread(target=self._follow, name="bench-commit-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._client.close()
        self._thread.join(5)

    def _follow(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(PilotchainError, httpx.HTTPError, OSError, RuntimeError):
                for event in self._client.subscribe(["tx"]):
                    at = time.perf_counter()
                    with self._changed:
                        self._seen[str(event.data.get("tx_id"))] = (at, str(event.data.get("status", "")),
                                                                    str(event.data.get("message", "")))
                        while len(self._seen) > COMMITS_KEPT_MAX:
                            self._seen.popitem(last=False)
                        self._changed.notify_all()
                    if self._stop.is_set():
                        return
            if not self._stop.is_set():
                self.reconnects += 1
                self._stop.wait(0.2)

    def wait(self, tx_id: str, timeout_s: float) -> tuple[float, str, str] | None:
        """(arrival, status, message) of ``tx_id``'s commit event; None if it did not come in time."""
        with self._changed:
            self._changed.wait_for(lambda: tx_id in self._seen, timeout_s)
            return self._seen.pop(tx_id, None)


def _watch_commits(network: BenchNetwork) -> CommitWatcher:
    """Follow B's node, and prove the stream is live with one transaction of our own."""
    watcher = CommitWatcher(network.chain(network.consumer))
    watcher.start()
    with network.chain(network.provider) as chain:
        for attempt in range(10):
            probe = chain.invoke(network.provider.identity, "kv", "put",
                                 {"key": f"bench-exchange-probe-{secrets.token_hex(6)}-{attempt}", "value": attempt},
                                 wait=False)
            if watcher.wait(probe.tx_id, 5.0) is not None:
                return watcher
    watcher.close()
    raise ExchangeBenchError(f"no commit event reached the bench from {network.consumer.node_url}/v1/events")


# ---------------------------------------------------------------------- phases


@dataclass(frozen=True, slots=True)
class Stored:
    payload_id: str
    data: bytes
    commitment: str


@dataclass
class PhaseLog:
    latencies_s: list[float] = field(default_factory=list)
    fetch_s: list[float] = field(default_factory=list)
    permit_s: list[float] = field(default_factory=list)
    retries: int = 0
    events_missed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    first_failure: str = ""


def _summary(values_s: list[float]) -> dict[str, float | None]:
    from pilotchain.bench.network import latency_summary_ms

    return latency_summary_ms(values_s)


def trend_ms(values_s: list[float], parts: int = 10) -> list[float]:
    """The median of each consecutive tenth (``parts``) of ``values_s``, in ms: a drift within the
    phase shows here, not in its percentiles."""
    if not values_s:
        return []
    parts = min(parts, len(values_s))
    bounds = [round(i * len(values_s) / parts) for i in range(parts + 1)]
    medians = []
    for start, end in itertools.pairwise(bounds):
        part = sorted(values_s[start:end])
        medians.append(round(part[len(part) // 2] * 1000, 1))
    return medians


def _rates(count: int, size_bytes: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 3), "per_s": round(count / seconds, 2) if seconds > 0 else 0.0,
            "mb_per_s": round(count * size_bytes / seconds / 1e6, 3) if seconds > 0 else 0.0}


def _store(network: BenchNetwork, size: PayloadSize, tag: str, concurrency: int,
           advance: Callable[[], None]) -> tuple[list[Stored], dict[str, Any]]:
    """A's members store ``size.count`` random payloads (``concurrency`` at a time)."""
    side = network.provider
    retention_ms = int(time.time() * 1000) + 30 * 86_400_000
    local = threading.local()
    opened: list[VaultClient] = []

    def put(index: int) -> tuple[Stored, float]:
        if not hasattr(local, "vault"):
            local.vault = VaultClient(side.vault_url, side.identity, timeout=120.0)
            opened.append(local.vault)
        payload_id = f"bench-{tag}-{size.label}-{index:05d}"
        data = os.urandom(size.size_bytes)
        began = time.perf_counter()
        stored = local.vault.put(payload_id, data, media_type="application/octet-stream", classification="general",
                                 retention_until_ms=retention_ms)
        return Stored(payload_id, data, str(stored["commitment"])), time.perf_counter() - began

    results: list[Stored] = []
    durations: list[float] = []
    began = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-store") as pool:
            for future in as_completed([pool.submit(put, i) for i in range(size.count)]):
                try:
                    stored, duration = future.result()
                except VaultError as exc:
                    raise ExchangeBenchError(f"storing a {size.label} payload in {side.org}'s vault failed: "
                                             f"{exc}{network_problems(network.directory)}") from exc
                results.append(stored)
                durations.append(duration)
                advance()
        seconds = time.perf_counter() - began
    finally:
        for client in opened:
            client.close()
    results.sort(key=lambda s: s.payload_id)
    return results, {**_rates(size.count, size.size_bytes, seconds), "latency_ms": _summary(durations)}


def _deliver(network: BenchNetwork, watcher: CommitWatcher, payloads: list[Stored], concurrency: int,
             advance: Callable[[], None]) -> tuple[PhaseLog, float]:
    """``concurrency`` workers: PERMIT committed, then B's vault fetches; the phase's log and length."""
    provider, consumer = network.provider, network.consumer
    log = PhaseLog()
    lock = threading.Lock()
    local = threading.local()
    opened: list[Client | VaultClient] = []

    def one(stored: Stored) -> None:
        if not hasattr(local, "chain"):
            local.chain = network.chain(provider)
            local.vault = VaultClient(consumer.vault_url, consumer.identity, timeout=120.0)
            opened.extend((local.chain, local.vault))
        until_ms = int(time.time() * 1000) + 3_600_000
        sent = time.perf_counter()
        permit = local.chain.invoke(provider.identity, CONTRACT, "decide",
                                    {"payload_id": stored.payload_id, "org": consumer.org, "purpose": PURPOSE,
                                     "until_ms": until_ms}, wait=False)
        seen = watcher.wait(permit.tx_id, PERMIT_EVENT_WAIT_S)
        missed = seen is None
        if seen is None:  # the stream dropped it: the node says when, later than it happened
            local.chain.wait(permit.tx_id, 60.0).raise_for_status()
            committed = time.perf_counter()
        else:
            committed, status, message = seen
            if status != "OK":
                raise ExchangeBenchError(f"the PERMIT for {stored.payload_id} failed: {status} {message}")
        retries = 0
        fetch_began = time.perf_counter()
        while True:
            try:
                copy = local.vault.fetch(stored.payload_id, PURPOSE, owner_org=provider.org)
                break
            except VaultError as exc:
                if exc.code not in RETRYABLE or retries >= FETCH_RETRIES_MAX:
                    raise
                retries += 1
                time.sleep(min(0.005 * retries, 0.1))
        done = time.perf_counter()
        if copy.get("commitment") != stored.commitment:
            raise ExchangeBenchError(f"{consumer.org} holds {stored.payload_id} under another commitment")
        with lock:
            log.latencies_s.append(done - committed)
            log.fetch_s.append(done - fetch_began)
            log.permit_s.append(committed - sent)
            log.retries += retries
            log.events_missed += int(missed)

    began = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-deliver") as pool:
            for future in as_completed([pool.submit(one, stored) for stored in payloads]):
                try:
                    future.result()
                except (VaultError, PilotchainError, ExchangeBenchError, TimeoutError) as exc:
                    code = exc.code if isinstance(exc, VaultError) else type(exc).__name__
                    log.failures[code] += 1
                    log.first_failure = log.first_failure or str(exc)
                advance()
        seconds = time.perf_counter() - began
    finally:
        for client in opened:
            client.close()
    return log, seconds


def _metrics(url: str) -> dict[str, float]:
    """The vault's Prometheus gauges and counters (``/metrics`` answers loopback callers unsigned)."""
    text = httpx.get(url.rstrip("/") + "/metrics", timeout=10.0).text
    values = {}
    for line in text.splitlines():
        if line.startswith("pilotchain_vault_") and " " in line and "{" not in line:
            name, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


def _receipts(side: Side, payloads: list[Stored]) -> list[dict[str, Any]]:
    with VaultClient(side.vault_url, side.identity, timeout=60.0) as vault:
        return [receipt for stored in payloads for receipt in vault.receipts(stored.payload_id)]


def _settle(network: BenchNetwork, payloads: list[Stored]) -> tuple[dict[str, int], float]:
    """Wait until both vaults sent every acknowledgement and anchored every receipt of these
    payloads; receipts per vault, and how long it took."""
    sides = (network.provider, network.consumer)
    began = time.perf_counter()
    while True:
        levels = [_metrics(side.vault_url) for side in sides]
        quiet = all(level.get("pilotchain_vault_outbox", 1) == 0 and level.get("pilotchain_vault_receipts_pending", 1) == 0
                    for level in levels)
        receipts = {side.org: _receipts(side, payloads) for side in sides} if quiet else {}
        if quiet and all(r["anchored"] for rows in receipts.values() for r in rows):
            return {org: len(rows) for org, rows in receipts.items()}, time.perf_counter() - began
        if time.perf_counter() - began > SETTLE_S_MAX:
            raise ExchangeBenchError(f"the vaults did not anchor every receipt within {SETTLE_S_MAX:.0f} s"
                                     f"{network_problems(network.directory)}; logs in "
                                     f"{network.directory}/vaults/*/vault.log and nodes/*/node.log")
        time.sleep(network.anchor_interval_ms / 4000)


def _transactions(network: BenchNetwork, first_height: int, last_height: int) -> Counter[str]:
    """``contract.method`` of every transaction committed in blocks ``first_height..last_height``."""
    counts: Counter[str] = Counter()
    with network.chain(network.provider) as chain:
        for height in range(first_height, last_height + 1):
            for tx in chain.get_block(height).transactions:
                counts[f"{tx.contract}.{tx.method}" if not tx.redacted else f"{tx.contract}.(redacted)"] += 1
    return counts


def _height(network: BenchNetwork) -> int:
    with network.chain(network.provider) as chain:
        return chain.status().height


def _warm_up(network: BenchNetwork, watcher: CommitWatcher, tag: str) -> None:
    """One delivery outside the measurements (connections, the vaults' caches of membership and
    keys), its receipts anchored so that they do not count against the first size."""
    payloads, _ = _store(network, PayloadSize("warm-up", 1024, 1), tag, 1, lambda: None)
    log, _ = _deliver(network, watcher, payloads, 1, lambda: None)
    if log.failures:
        raise ExchangeBenchError(f"the warm-up delivery failed: {log.first_failure}")
    _settle(network, payloads)


def _size_run(network: BenchNetwork, watcher: CommitWatcher, size: PayloadSize, tag: str, concurrency: int,
              progress: Progress) -> dict[str, Any]:
    task = progress.add_task(f"store {size.label} in {network.provider.org}'s vault", total=size.count)
    payloads, store = _store(network, size, tag, concurrency, lambda: progress.advance(task))
    progress.remove_task(task)
    first_height = _height(network) + 1
    task = progress.add_task(f"deliver {size.label} to {network.consumer.org}", total=size.count)
    log, seconds = _deliver(network, watcher, payloads, concurrency, lambda: progress.advance(task))
    progress.remove_task(task)
    task = progress.add_task("anchoring the receipts…", total=None)
    receipts, settle_s = _settle(network, payloads)
    progress.remove_task(task)
    last_height = _height(network)
    transactions = _transactions(network, first_height, last_height)
    with VaultClient(network.consumer.vault_url, network.consumer.identity, timeout=120.0) as vault:
        for stored in (payloads[0], payloads[-1]):  # outside the timing: the copies are the bytes A stored
            if vault.read(stored.payload_id) != stored.data:
                raise ExchangeBenchError(f"{network.consumer.org}'s copy of {stored.payload_id} differs")
    if log.failures:
        log.first_failure += network_problems(network.directory)
    delivered = len(log.latencies_s)
    anchors = transactions.get(f"{CONTRACT}.anchor", 0)
    rates = _rates(delivered, size.size_bytes, seconds)
    return {
        "label": size.label, "size_bytes": size.size_bytes, "count": size.count,
        "store": {"seconds": store["seconds"], "payloads_per_s": store["per_s"], "mb_per_s": store["mb_per_s"],
                  "latency_ms": store["latency_ms"]},
        "delivery": {
            "deliveries": delivered, "failed": sum(log.failures.values()), "failures": dict(log.failures),
            "first_failure": log.first_failure, "seconds": rates["seconds"], "deliveries_per_s": rates["per_s"],
            "mb_per_s": rates["mb_per_s"], "latency_ms": _summary(log.latencies_s),
            "fetch_ms": _summary(log.fetch_s), "permit_commit_ms": _summary(log.permit_s),
            "latency_trend_ms": trend_ms(log.latencies_s),
            "retries": log.retries, "permit_events_missed": log.events_missed,
        },
        "anchoring": {
            "anchor_txs": anchors, "receipts": receipts, "receipts_total": sum(receipts.values()),
            "anchor_txs_per_delivery": round(anchors / delivered, 4) if delivered else None,
            "receipts_per_anchor": round(sum(receipts.values()) / anchors, 2) if anchors else None,
            "settle_s": round(settle_s, 2), "blocks": [first_height, last_height],
            "transactions": dict(sorted(transactions.items())),
        },
    }


def run(options: ExchangeBenchOptions, log: Callable[[str], None] = lambda message: None,
        console: Console | None = None) -> dict[str, Any]:
    """Run the workload; the result document (see the module docstring)."""
    options.check()
    load_average = os.getloadavg()
    tag = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)
    with bench_network(options, log) as network:
        watcher = _watch_commits(network)
        try:
            log("warm-up: one delivery, not measured")
            _warm_up(network, watcher, tag)
            results = []
            with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console or Console(stderr=True), transient=True) as progress:
                for size in options.payloads:
                    log(f"{size.count} × {size.label}: store, then PERMIT → fetch with {options.concurrency} workers")
                    results.append(_size_run(network, watcher, size, tag, options.concurrency, progress))
        finally:
            watcher.close()
        manifest = network.manifest
        config = {
            "nodes": len(manifest["nodes"]), "orgs": len(manifest["organizations"]), "suite": manifest["suite"],
            "provider": network.provider.org, "consumer": network.consumer.org,
            "concurrency": options.concurrency, "payloads": [{"label": s.label, "size_bytes": s.size_bytes,
                                                              "count": s.count} for s in options.payloads],
            "anchor_interval_ms": network.anchor_interval_ms, "reused": options.reuse is not None,
            "purpose": PURPOSE,
        }
        return {
            "config": config,
            "deployment": {"network_up_s": round(network.up_s, 2)},
            "summary": {r["label"]: {
                "deliveries_per_s": r["delivery"]["deliveries_per_s"], "mb_per_s": r["delivery"]["mb_per_s"],
                "latency_p50_ms": r["delivery"]["latency_ms"]["p50"], "latency_p99_ms": r["delivery"]["latency_ms"]["p99"],
                "anchor_txs_per_delivery": r["anchoring"]["anchor_txs_per_delivery"],
                "failed": r["delivery"]["failed"]} for r in results},
            "sizes": results,
            "commit_event_reconnects": watcher.reconnects,
            "load_average_at_start": [round(v, 2) for v in load_average],
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        }


# ---------------------------------------------------------------------- output


def _ms(latency: dict[str, Any]) -> str:
    return " / ".join("–" if latency.get(k) is None else f"{latency[k]:,.0f}" for k in ("p50", "p99"))


def tables(document: dict[str, Any]) -> list[Table]:
    """One column per payload size, one row per measure."""
    config, sizes = document["config"], document["sizes"]
    table = Table(title=f"pilotchain bench exchange: {config['provider']} → {config['consumer']}, "
                        f"{config['nodes']} validators, {config['suite']}, {config['concurrency']} at a time",
                  title_justify="left")
    table.add_column("measure")
    for size in sizes:
        table.add_column(size["label"], justify="right")

    def per_anchor(value: float | None, digits: int) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("deliveries (failed)", lambda s: f"{s['delivery']['deliveries']:,} ({s['delivery']['failed']})"),
        ("deliveries/s", lambda s: f"{s['delivery']['deliveries_per_s']:,.1f}"),
        ("MB/s", lambda s: f"{s['delivery']['mb_per_s']:,.2f}"),
        ("PERMIT commit → decrypted at consumer, p50 / p99 ms", lambda s: _ms(s["delivery"]["latency_ms"])),
        ("  of which the fetch, p50 / p99 ms", lambda s: _ms(s["delivery"]["fetch_ms"])),
        ("PERMIT sent → commit event, p50 / p99 ms", lambda s: _ms(s["delivery"]["permit_commit_ms"])),
        ("fetches retried (PERMIT not applied at the provider yet)", lambda s: f"{s['delivery']['retries']:,}"),
        ("anchor transactions per delivery", lambda s: per_anchor(s["anchoring"]["anchor_txs_per_delivery"], 3)),
        ("receipts per anchor transaction", lambda s: per_anchor(s["anchoring"]["receipts_per_anchor"], 1)),
        ("stores/s (MB/s), registration included", lambda s: f"{s['store']['payloads_per_s']:,.1f} "
                                                              f"({s['store']['mb_per_s']:,.2f})"),
    ]
    for name, cell in rows:
        table.add_row(name, *(cell(size) for size in sizes))
    return [table]


# ---------------------------------------------------------------------- command

app = typer.Typer(help="The data exchange: payloads between two organisations' vaults on a running network.")


@app.callback(invoke_without_command=True)
def exchange(
    payloads: str = typer.Option("10KiB=200,1MiB=20", help="SIZE=COUNT,... (B, KiB, MiB): payloads per size"),
    concurrency: int = typer.Option(4, help="stores and deliveries in flight at a time"),
    crypto: str = typer.Option("intl", help="intl | gm (a new network's suite)"),
    nodes: int = typer.Option(4, help="validators of a new network, each its own process"),
    orgs: int = typer.Option(2, help="organisations of a new network (the first provides, the second consumes)"),
    workdir: Path = typer.Option(None, help="network folder (default: a temporary one, deleted)"),
    keep: bool = typer.Option(False, help="keep the temporary network folder"),
    reuse: Path = typer.Option(None, help="run on the network an earlier --workdir run left in this folder"),
    json_output: bool = typer.Option(False, "--json", help="print one JSON document instead of a table"),
    record: bool = typer.Option(True, help="write the result file under bench/results/"),
) -> None:
    """Store N payloads in A's vault; for each, a PERMIT for B committed, then B's vault fetches it:
    deliveries/s, MB/s, latency from the PERMIT's commit to the payload decrypted at B, and the
    receipts' anchoring transactions per delivery."""
    try:
        options = ExchangeBenchOptions(payloads=tuple(parse_payloads(payloads)), concurrency=concurrency,
                                       suite=crypto, nodes=nodes, orgs=orgs, workdir=workdir, reuse=reuse, keep=keep)
        options.check()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console = Console(stderr=True)
    try:
        document = run(options, log=lambda message: console.print(message, highlight=False), console=console)
    except ExchangeBenchError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    if record:
        from pilotchain.bench import results as bench_results

        path = bench_results.record(f"exchange-{document['config']['suite']}-{document['config']['nodes']}n", document)
        document["result_file"] = str(path)
        console.print(f"recorded {path}")
    if json_output:
        typer.echo(json.dumps(document, sort_keys=True))
        return
    Console().print(*tables(document))

"""Clients that write and read while faults happen, the history they record, and the checker that
judges the history against what every node committed.

A client writes ``kv.put`` of a key no one else writes (``w<client>-<n>``), through one host's
gateway, and waits for the commit; an acknowledged write is one whose commit it saw (with the
height). After each acknowledged write it reads the key back from another host with
``min_height`` = that height (read-your-writes). A write it could not confirm is *unknown*: it may
or may not have been committed, but never twice. The clients submit the same signed transaction
again when they retry, as a real client would.

The checker (pure: a history and the nodes' blocks in, a list of violations out):

* no two nodes disagree at any height (block hash), and the state roots agree at the common height;
* every acknowledged write is committed exactly once on every node, at the height acknowledged;
* an unknown write is committed at most once; no transaction nobody submitted is committed;
* every read answered (not "behind") returned the value the client last wrote to that key and was
  proven at a height at least the one it asked for — never older than the client's last write.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pilotchain.sdk import Client, Identity, PilotchainError, TxBuilder


@dataclass
class Op:
    client: int
    kind: str  # "write" | "read"
    key: str
    value: int
    node: str
    start: float
    end: float = 0.0
    outcome: str = "pending"  # write: ok | unknown | refused; read: ok | behind | error
    tx_id: str = ""
    height: int = 0  # write: committed at; read: proven at
    asked_height: int = 0  # read: min_height
    read_value: Any = None
    detail: str = ""


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: Op) -> None:
        with self.lock:
            self.ops.append(op)


class Writer(threading.Thread):
    """One client: writes its own keys through a preferred host, reads each back from another."""

    def __init__(self, number: int, identity: Identity, chain_id: str, urls: dict[str, str], history: History,
                 stop: threading.Event, seed: int, network: Any) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.number = number
        self.builder = TxBuilder(identity, chain_id)
        self.identity = identity
        self.urls = urls
        self.history = history
        self.stop_event = stop
        self.random = random.Random(seed)
        self.network = network
        self.clients: dict[str, Client] = {}

    def _client(self, node: str) -> Client:
        if node not in self.clients:
            self.clients[node] = Client(self.urls[node], network=self.network, identity=self.identity, timeout=3.0)
        return self.clients[node]

    def run(self) -> None:
        names = sorted(self.urls)
        n = 0
        try:
            while not self.stop_event.is_set():
                n += 1
                key = f"w{self.number}-{n}"
                node = names[(self.number + n) % len(names)]
                written = self._write(key, n, node, names)
                if written is not None:
                    reader = self.random.choice([name for name in names if name != node])
                    self._read(key, n, reader, written)
        finally:
            for client in self.clients.values():
                client.close()

    def _write(self, key: str, value: int, node: str, names: list[str]) -> int | None:
        tx = self.builder.build("kv", "put", {"key": key, "value": value})
        op = Op(self.number, "write", key, value, node, time.monotonic(), tx_id=tx.tx_id)
        deadline = time.monotonic() + 12.0
        tried = node
        while time.monotonic() < deadline and not self.stop_event.is_set():
            try:
                self._client(tried).submit(tx)
                result = self._client(tried).wait(tx.tx_id, timeout_s=4.0)
            except PilotchainError as exc:
                op.detail = str(exc)[:200]
                if "DUPLICATE" in str(exc) or "already" in str(exc).lower():
                    try:
                        result = self._client(tried).wait(tx.tx_id, timeout_s=4.0)
                    except PilotchainError:
                        tried = self.random.choice(names)
                        continue
                else:
                    tried = self.random.choice(names)  # that host is cut off, paused or down: another
                    continue
            if result.committed:
                op.end, op.outcome, op.height, op.node = time.monotonic(), "ok", int(result.height or 0), tried
                self.history.add(op)
                return op.height
            op.detail = f"not committed: {result.state}"
            tried = self.random.choice(names)
        op.end, op.outcome = time.monotonic(), "unknown"
        self.history.add(op)
        return None

    def _read(self, key: str, value: int, node: str, height: int) -> None:
        op = Op(self.number, "read", key, value, node, time.monotonic(), asked_height=height)
        try:
            read = self._client(node).read_state("kv", f"v/{key}", min_height=height)
        except PilotchainError as exc:
            op.outcome = "behind" if "BEHIND" in str(exc) else "error"
            op.detail = str(exc)[:200]
        else:
            op.outcome, op.height, op.read_value = "ok", read.header.height, read.decoded
        op.end = time.monotonic()
        self.history.add(op)


@dataclass
class NodeChain:
    name: str
    hashes: list[str]  # by height, from 1
    tx_ids: list[list[str]]  # committed transaction ids per height
    state_root_at_common: str = ""


def check(history: list[Op], chains: list[NodeChain], owner: str) -> list[str]:
    """The violations (empty: the run is linearizable as far as these properties go)."""
    problems: list[str] = []
    common = min(len(chain.hashes) for chain in chains)
    reference = chains[0]
    for chain in chains[1:]:
        for height in range(common):
            if chain.hashes[height] != reference.hashes[height]:
                problems.append(f"fork: {chain.name} and {reference.name} differ at height {height + 1}")
                break
    if len({chain.state_root_at_common for chain in chains}) != 1:
        problems.append(f"state roots differ at height {common}")
    writes = [op for op in history if op.kind == "write"]
    submitted = {op.tx_id for op in writes}
    for chain in chains:
        where: dict[str, list[int]] = {}
        for height, ids in enumerate(chain.tx_ids, start=1):
            for tx_id in ids:
                where.setdefault(tx_id, []).append(height)
        counts = Counter({tx_id: len(heights) for tx_id, heights in where.items()})
        for op in writes:
            found = where.get(op.tx_id, [])
            if op.outcome == "ok" and found != [op.height]:
                problems.append(f"{chain.name}: acknowledged write {op.key} (tx {op.tx_id[:12]}, height {op.height}) "
                                f"committed at {found}")
            elif op.outcome != "ok" and counts[op.tx_id] > 1:
                problems.append(f"{chain.name}: unknown write {op.key} committed {counts[op.tx_id]} times")
        strangers = sorted(set(where) - submitted)
        if strangers:
            problems.append(f"{chain.name}: {len(strangers)} committed transactions nobody in the run submitted")
    for op in history:
        if op.kind != "read" or op.outcome != "ok":
            continue
        if op.height < op.asked_height:
            problems.append(f"stale read: {op.key} from {op.node} proven at {op.height} < {op.asked_height}")
        if op.read_value != [owner, op.value]:
            problems.append(f"read of {op.key} from {op.node} returned {op.read_value!r}, last written {op.value}")
    return problems

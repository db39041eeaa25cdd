"""Local node processes for `network up` / `network down` / `network status`.

Each node runs as its own OS process (``python -m pilotchain node start --home H``), writing
JSON-lines logs to ``H/node.log``; its pid goes to ``H/node.pid``. Stopping sends SIGTERM (the
node shuts down cleanly) and SIGKILL only after a grace period. Nothing here is part of the
deterministic core.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pilotchain.network.consortium import load_manifest

__all__ = ["NodeProcess", "start_node", "stop_node", "node_pid", "probe_status", "wait_until", "nodes_of"]

PID_FILE = "node.pid"
LOG_FILE = "node.log"


@dataclass(frozen=True, slots=True)
class NodeProcess:
    name: str
    org: str
    home: Path
    gateway_url: str
    p2p_addr: str


def nodes_of(directory: Path) -> list[NodeProcess]:
    manifest = load_manifest(directory)
    return [
        NodeProcess(name=n["name"], org=n["org"], home=(directory / n["home"]).resolve(),
                    gateway_url=n["gateway_url"], p2p_addr=n["p2p_addr"])
        for n in manifest["nodes"]
    ]


def node_pid(home: Path) -> int | None:
    """The pid of the node running in ``home``, or None (a stale pid file is removed)."""
    path = home / PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return None
    except PermissionError:
        return pid
    # a zombie child of ours counts as gone
    with contextlib.suppress(ChildProcessError, OSError):
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            path.unlink(missing_ok=True)
            return None
    return pid


def start_node(node: NodeProcess, *, extra_env: dict[str, str] | None = None) -> int:
    """Start ``node`` in the background unless it already runs; returns its pid."""
    running = node_pid(node.home)
    if running is not None:
        return running
    log = open(node.home / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child
    env = dict(os.environ)
    env.update(extra_env or {})
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "pilotchain", "node", "start", "--home", str(node.home)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # Ctrl-C in the terminal does not hit the nodes; `down` stops them
        )
    finally:
        log.close()
    (node.home / PID_FILE).write_text(f"{process.pid}\n")
    return process.pid


def stop_node(node: NodeProcess, *, grace_s: float = 15.0, kill: bool = False) -> str:
    """Stop ``node``: SIGTERM (or SIGKILL with ``kill``), SIGKILL after ``grace_s``. Returns what happened."""
    pid = node_pid(node.home)
    if pid is None:
        return "not running"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if node_pid(node.home) is None:
            return "killed" if kill else "stopped"
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: node_pid(node.home) is None, timeout_s=5.0)
    (node.home / PID_FILE).unlink(missing_ok=True)
    return "killed after grace period"


def probe_status(url: str, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """The node's /v1/status document, or None when it does not answer."""
    try:
        response = httpx.get(f"{url}/v1/status", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        document: dict[str, Any] = response.json()
    except ValueError:
        return None
    return document


def wait_until(condition: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)

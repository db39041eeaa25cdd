"""Local node processes for `network up` / `network down` / `network status`.

Each node runs as its own OS process (``python -m pilotchain node start --home H``), writing
JSON-lines logs to ``H/node.log``; its pid goes to ``H/node.pid``. Stopping sends SIGTERM (the
node shuts down cleanly) and SIGKILL only after a grace period. Nothing here is part of the
deterministic core.

Telling the truth about a node: :func:`taken_ports` says which listen ports another program
holds before anything starts; :func:`node_state` says whether a node is up — its process alive
(or its gateway answering) *and* its gateway serving this network's genesis hash — and if not,
why (a process that died, with the last error line of its log; a gateway of another network).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pilotchain.network.consortium import load_manifest
from pilotchain.node.config import NodeConfigError, load_node_config
from pilotchain.sdk import IDENTITY_ENV, Identity, SignedRequests
from pilotchain.sdk._network import folder_identity

__all__ = [
    "NodeProcess",
    "NodeState",
    "PortTaken",
    "start_node",
    "stop_node",
    "node_pid",
    "pid_of",
    "stop_pid_file",
    "probe_status",
    "wait_until",
    "nodes_of",
    "taken_ports",
    "last_error_line",
    "log_error_line",
    "node_state",
    "reader_identity",
    "tls_verify",
    "log_size",
    "free_port_block",
    "port_is_free",
    "EPHEMERAL_PORT_MIN",
]

PID_FILE = "node.pid"
LOG_FILE = "node.log"


@dataclass(frozen=True, slots=True)
class NodeProcess:
    name: str
    org: str
    home: Path
    gateway_url: str
    p2p_addr: str
    #: the addresses the node binds (node.json); empty: the advertised ones
    p2p_listen: str = ""
    gateway_listen: str = ""


def nodes_of(directory: Path) -> list[NodeProcess]:
    manifest = load_manifest(directory)
    nodes = []
    for n in manifest["nodes"]:
        home = (directory / n["home"]).resolve()
        try:
            config = load_node_config(home)
            p2p_listen, gateway_listen = config.p2p_listen, config.gateway_listen
        except NodeConfigError:
            p2p_listen, gateway_listen = "", ""
        nodes.append(NodeProcess(name=n["name"], org=n["org"], home=home, gateway_url=n["gateway_url"],
                                 p2p_addr=n["p2p_addr"], p2p_listen=p2p_listen, gateway_listen=gateway_listen))
    return nodes


def node_pid(home: Path, *, forget_stale: bool = True) -> int | None:
    """The pid of the node running in ``home``, or None (a stale pid file is removed unless
    ``forget_stale`` is False: `network status` keeps it, so a node that died stays visible)."""
    return pid_of(home / PID_FILE, forget_stale=forget_stale)


def pid_of(path: Path, *, forget_stale: bool = True) -> int | None:
    """The live process a pid file names, or None (see :func:`node_pid`)."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        if forget_stale:
            path.unlink(missing_ok=True)
        return None
    except PermissionError:
        return pid
    # a zombie child of ours counts as gone
    with contextlib.suppress(ChildProcessError, OSError):
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            if forget_stale:
                path.unlink(missing_ok=True)
            return None
    # so does anyone's zombie: a node started by `network up` is init's child once `up` exits, and an
    # init that reaps lazily (a container's, every few seconds) would make each stop wait for it
    if _is_zombie(pid):
        if forget_stale:
            path.unlink(missing_ok=True)
        return None
    return pid


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped (Linux's /proc; False where there is none)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # the command name (in parentheses) may hold spaces and parentheses: the state follows the last ")"
    return stat[stat.rfind(")") + 1:].split()[:1] == ["Z"]


# ---------------------------------------------------------------------- ports


@dataclass(frozen=True, slots=True)
class PortTaken:
    node: str
    kind: str  #: "p2p" or "gateway"
    host: str
    port: int


def _host_port(address: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a URL's authority."""
    if "://" in address:
        address = address.split("://", 1)[1].split("/", 1)[0]
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def port_is_free(host: str, port: int) -> bool:
    """Whether a listening socket could be bound on ``host:port`` now (SO_REUSEADDR as the node
    uses it, so a port in TIME_WAIT counts as free and one with a listener as taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


#: Linux's default ephemeral range starts here (net.ipv4.ip_local_port_range 32768-60999): ports
#: picked for nodes stay below it, where outgoing connections do not take them at random.
EPHEMERAL_PORT_MIN = 32768


def free_port_block(count: int, *, host: str = "127.0.0.1", start: int = 26600,
                    stop: int = EPHEMERAL_PORT_MIN) -> int:
    """The first base port >= ``start`` such that ``base .. base + count - 1`` are all free on
    ``host`` now (below ``stop``: outside the ephemeral range). NetworkError if there is none."""
    from pilotchain.network.consortium import NetworkError

    base = start
    while base + count <= stop:
        busy = next((port for port in range(base, base + count) if not port_is_free(host, port)), None)
        if busy is None:
            return base
        base = busy + 1
    raise NetworkError(f"no {count} consecutive free ports between {start} and {stop} on {host}")


def taken_ports(nodes: Sequence[NodeProcess]) -> list[PortTaken]:
    """The P2P and gateway ports of the nodes that are not running that something else holds."""
    taken = []
    for node in nodes:
        if node_pid(node.home) is not None:
            continue  # its own process holds them
        for kind, address in (("p2p", node.p2p_listen or node.p2p_addr),
                              ("gateway", node.gateway_listen or node.gateway_url)):
            host, port = _host_port(address)
            if not port_is_free(host, port):
                taken.append(PortTaken(node.name, kind, host, port))
    return taken


# ---------------------------------------------------------------------- logs


#: Bytes read from the end of a log to find its last error.
LOG_TAIL_BYTES = 64 * 1024


def log_size(node: NodeProcess) -> int:
    """The size of the node's log now (read errors from this offset on after a start)."""
    try:
        return (node.home / LOG_FILE).stat().st_size
    except OSError:
        return 0


def _error_of(line: str) -> str | None:
    text = line.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return None
        if not isinstance(record, dict) or str(record.get("level", "")).lower() not in ("error", "critical"):
            return None
        detail = record.get("error") or record.get("exc") or ""
        message = str(record.get("msg") or record.get("event") or "error")
        return f"{message}: {detail}" if detail and str(detail) not in message else message
    if text.lower().startswith(("error:", "fatal:", "critical:")):  # what a command prints before exiting
        return text
    # the last line of a traceback: "OSError: [Errno 98] ...", "pkg.SomeError: ..."
    head = text.split(":", 1)[0]
    if " " not in head and head.rsplit(".", 1)[-1].endswith(("Error", "Exception", "Broken", "Halted")):
        return text
    return None


def last_error_line(node: NodeProcess, *, since: int = 0) -> str | None:
    """The last error in the node's log after byte ``since``: an error record's message or a
    traceback's final line (e.g. ``OSError: [Errno 98] … address already in use``); one line."""
    return log_error_line(node.home / LOG_FILE, since=since)


def log_error_line(path: Path, *, since: int = 0) -> str | None:
    """The last error line of any log file (see :func:`last_error_line`)."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(since, size - LOG_TAIL_BYTES))
            tail = log.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        found = _error_of(line)
        if found is not None:
            return found if len(found) <= 300 else found[:299] + "…"
    return None


# ---------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class NodeState:
    """What `network status` says about a node: ``up`` only when its gateway answers with the
    network's genesis hash; ``state`` is up, syncing, starting or down; ``reason`` says why."""

    state: str
    reason: str
    pid: int | None
    status: dict[str, Any] | None  #: the gateway's /v1/status when it is this network's

    @property
    def up(self) -> bool:
        return self.state in ("up", "syncing")


def node_state(node: NodeProcess, genesis_hash: str, *, timeout_s: float = 1.5, log_since: int = 0,
               identity: Identity | None = None, verify: ssl.SSLContext | bool = True) -> NodeState:
    """Whether ``node`` runs and serves the network with ``genesis_hash`` (hex), and if not why
    (its full status when ``identity``, a member's, may read it)."""
    had_pid_file = (node.home / PID_FILE).exists()
    pid = node_pid(node.home, forget_stale=False)
    status = probe_status(node.gateway_url, timeout_s=timeout_s, identity=identity, verify=verify)
    if status is not None:
        found = str(status.get("genesis_hash", "")).lower()
        if found != genesis_hash.lower():
            return NodeState(
                "down",
                f"its gateway address serves another network (genesis {found[:12]}…, chain "
                f"{status.get('chain_id')!r}; this one is {genesis_hash[:12]}…)"
                + ("" if pid is not None else "; the node is not running"),
                pid, None,
            )
        if status.get("syncing"):
            return NodeState("syncing", "catching up with its peers", pid, status)
        return NodeState("up", "", pid, status)
    if pid is not None:
        return NodeState("starting", "process running, gateway not answering yet", pid, None)
    if had_pid_file:
        error = last_error_line(node, since=log_since)
        return NodeState("down", "process exited" + (f": {error}" if error else f"; see {node.home / LOG_FILE}"),
                         None, None)
    return NodeState("down", "not running", None, None)


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
    return stop_pid_file(node.home / PID_FILE, grace_s=grace_s, kill=kill)


def stop_pid_file(path: Path, *, grace_s: float = 15.0, kill: bool = False) -> str:
    """Stop the process a pid file names (see :func:`stop_node`)."""
    pid = pid_of(path)
    if pid is None:
        return "not running"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if pid_of(path) is None:
            return "killed" if kill else "stopped"
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: pid_of(path) is None, timeout_s=5.0)
    path.unlink(missing_ok=True)
    return "killed after grace period"


def probe_status(url: str, timeout_s: float = 2.0, identity: Identity | None = None,
                 verify: ssl.SSLContext | bool = True) -> dict[str, Any] | None:
    """The node's /v1/status document read as ``identity`` (the gateway answers members only);
    without an identity (or refused), what ``/healthz`` says openly — liveness, chain id and genesis
    hash, no height. None when the gateway does not answer."""
    if identity is not None:
        document = _get_json(f"{url}/v1/status", timeout_s, SignedRequests(identity), verify=verify)
        if document is not None:
            return document
    health = _get_json(f"{url}/healthz", timeout_s, None, accept=(200, 503), verify=verify)
    return health if health is not None and "genesis_hash" in health else None


def _get_json(url: str, timeout_s: float, auth: httpx.Auth | None,
              accept: tuple[int, ...] = (200,), verify: ssl.SSLContext | bool = True) -> dict[str, Any] | None:
    try:
        response = httpx.get(url, timeout=timeout_s, auth=auth, verify=verify)
    except httpx.HTTPError:
        return None
    if response.status_code not in accept:
        return None
    try:
        document = response.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def tls_verify(directory: Path) -> ssl.SSLContext | bool:
    """How tools check the network's gateways: its TLS CA (a ``--tls`` network), else the system's."""
    folder = directory.parent if directory.name == "network.json" else directory
    try:
        ca = json.loads((folder / "network.json").read_text()).get("tls_ca")
    except (OSError, ValueError, AttributeError):
        ca = None
    return ssl.create_default_context(cafile=str(folder / str(ca))) if ca else True


def reader_identity(directory: Path | None) -> Identity | None:
    """The identity a tool signs its reads with for the network in ``directory``: the identity file
    ``$PILOTCHAIN_IDENTITY`` names, else the first organisation's client identity that
    ``network init`` left in the folder (a ceremony's manifest names none: then None)."""
    named = os.environ.get(IDENTITY_ENV, "").strip()
    if named:
        return Identity.load(named)
    path = folder_identity(directory) if directory is not None else None
    return Identity.load(path) if path is not None else None


def wait_until(condition: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)

"""Full pilotchain nodes as separate hosts: one network namespace each, joined by a bridge, with
``tc netem`` latency and loss on every host's link, partitions cut and healed with blackhole
routes, process pauses (SIGSTOP/SIGCONT), kill -9 and restart, and clock offsets between hosts
(libfaketime). The test process reaches every host's gateway over the bridge, as a client on
another machine would.

Everything made here is named after the creating process and removed on exit, also after a
failure (namespaces with their ends of the veth pairs, the bridge, the node processes)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from pilotchain.network.consortium import init_network, parse_orgs

FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
P2P_PORT = 7000
GATEWAY_PORT = 8000


class HostsUnavailable(Exception):
    """This machine cannot create network namespaces (the test says so and skips)."""


def _ip(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *arguments], capture_output=True, text=True, timeout=15)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(arguments)}: {result.stderr.strip()}")
    return result


@dataclass
class Host:
    index: int
    name: str  # the node's name in the network folder
    namespace: str
    address: str
    link: str  # the veth end inside the namespace
    home: Path
    clock_offset_ms: int = 0
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    blackholed: set[str] = field(default_factory=set)

    @property
    def gateway_url(self) -> str:
        return f"http://{self.address}:{GATEWAY_PORT}"


class Hosts:
    """``count`` namespaces on one bridge and a pilotchain network whose node i runs in host i."""

    def __init__(self, directory: Path, count: int, *, suite: str = "intl") -> None:
        if shutil.which("ip") is None or shutil.which("tc") is None:
            raise HostsUnavailable("iproute2 (ip, tc) is not installed; scripts/system-deps.sh installs it")
        self.directory = directory
        tag = f"pj{os.getpid() % 100000}"
        self.tag = tag
        self.bridge = f"{tag}br"
        second = os.getpid() % 200 + 20
        self.subnet = f"10.214.{second}"
        self.hosts: list[Host] = []
        self._namespaces: list[str] = []
        self._bridge_made = False
        self.suite = suite
        self.count = count

    # -- the network of hosts

    def create(self) -> None:
        if _ip("netns", "add", f"{self.tag}probe", check=False).returncode != 0:
            raise HostsUnavailable("creating a network namespace is not permitted here (ip netns add failed)")
        _ip("netns", "del", f"{self.tag}probe", check=False)
        _ip("link", "add", self.bridge, "type", "bridge")
        self._bridge_made = True
        _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        init_network(self.directory, suite_name=self.suite, validators=self.count, orgs=parse_orgs(str(self.count)),
                     base_port=P2P_PORT, now_ms=int(time.time() * 1000) - 60_000)
        manifest = json.loads((self.directory / "network.json").read_text())
        for index, node in enumerate(manifest["nodes"]):
            namespace = f"{self.tag}n{index}"
            outer, inner = f"{self.tag}o{index}", f"{self.tag}i{index}"
            _ip("netns", "add", namespace)
            self._namespaces.append(namespace)
            address = f"{self.subnet}.{index + 1}"
            for step in (("link", "add", outer, "type", "veth", "peer", "name", inner),
                         ("link", "set", inner, "netns", namespace),
                         ("link", "set", outer, "master", self.bridge),
                         ("link", "set", outer, "up"),
                         ("-n", namespace, "addr", "add", f"{address}/24", "dev", inner),
                         ("-n", namespace, "link", "set", inner, "up"),
                         ("-n", namespace, "link", "set", "lo", "up")):
                _ip(*step)
            self.hosts.append(Host(index, node["name"], namespace, address, inner,
                                   self.directory / "nodes" / node["name"]))
        self._rewrite_addresses(manifest)

    def _rewrite_addresses(self, manifest: dict[str, object]) -> None:
        """Node i listens on its own host's address; its peers are the other hosts."""
        by_name = {host.name: host for host in self.hosts}
        for host in self.hosts:
            config_file = host.home / "node.json"
            config = json.loads(config_file.read_text())
            config["p2p_listen"] = config["p2p_advertise"] = f"{host.address}:{P2P_PORT}"
            config["peers"] = {name: f"{by_name[name].address}:{P2P_PORT}" for name in config["peers"]}
            config["gateway_listen"] = f"{host.address}:{GATEWAY_PORT}"
            config["gateway_url"] = host.gateway_url
            config_file.write_text(json.dumps(config, indent=2))
        nodes = manifest["nodes"]
        if not isinstance(nodes, list):
            raise RuntimeError("network.json has no node list")
        for node in nodes:
            node["gateway_url"] = by_name[node["name"]].gateway_url
        (self.directory / "network.json").write_text(json.dumps(manifest, indent=2))

    def destroy(self) -> None:
        for host in self.hosts:
            self.kill(host)
        for namespace in self._namespaces:
            _ip("netns", "del", namespace, check=False)
        if self._bridge_made:
            _ip("link", "del", self.bridge, check=False)

    # -- processes

    def start(self, host: Host) -> None:
        env = dict(os.environ)
        if host.clock_offset_ms:
            # the host's wall clock runs ahead or behind (monotonic time is left alone, as NTP does)
            env.update({"LD_PRELOAD": str(FAKETIME_LIBRARY), "FAKETIME": f"{host.clock_offset_ms / 1000:+.3f}",
                        "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"})
        log = open(host.home / "node.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            host.process = subprocess.Popen(
                ["ip", "netns", "exec", host.namespace, sys.executable, "-m", "pilotchain", "node", "start",
                 "--home", str(host.home)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finally:
            log.close()
        host.paused = False

    def kill(self, host: Host) -> None:
        process = host.process
        if process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        host.process = None
        host.paused = False

    def pause(self, host: Host) -> None:
        if host.process is not None and not host.paused:
            os.killpg(host.process.pid, signal.SIGSTOP)
            host.paused = True

    def resume(self, host: Host) -> None:
        if host.process is not None and host.paused:
            os.killpg(host.process.pid, signal.SIGCONT)
            host.paused = False

    # -- the network between hosts

    def _tc(self, host: Host, *qdisc: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", host.namespace, "tc", "qdisc", "replace", "dev", host.link,
                               "root", *qdisc], capture_output=True, text=True, timeout=15)

    def netem(self, host: Host, *, delay_ms: int, jitter_ms: int, loss_percent: float) -> str:
        """Latency, jitter and loss on ``host``'s link (``tc netem``). A kernel built without netem
        (this project's CI VM has none: "Specified qdisc kind is unknown") gets the nearest thing it
        has — a token bucket (``tbf``) that holds the link to 8 Mbit/s with up to 100 ms of queue, so
        bursts wait — and the answer says which was applied."""
        result = self._tc(host, "netem", "delay", f"{delay_ms}ms", f"{jitter_ms}ms", "loss", f"{loss_percent}%")
        if result.returncode == 0:
            return f"netem {delay_ms}±{jitter_ms} ms, {loss_percent} % loss"
        if "unknown" not in result.stderr:
            raise RuntimeError(f"tc netem on {host.namespace}: {result.stderr.strip()}")
        shaped = self._tc(host, "tbf", "rate", "8mbit", "burst", "32kbit", "latency", "100ms")
        if shaped.returncode != 0:
            raise RuntimeError(f"tc on {host.namespace}: no netem ({result.stderr.strip()}), and tbf failed: "
                               f"{shaped.stderr.strip()}")
        return "tbf 8 Mbit/s, 100 ms queue (this kernel has no netem)"

    def partition(self, groups: Sequence[Sequence[Host]]) -> None:
        """Cut every link between hosts of different groups, both ways (silently: packets vanish)."""
        self.heal()
        for group in groups:
            for host in group:
                for other in self.hosts:
                    if other not in group:
                        _ip("-n", host.namespace, "route", "add", "blackhole", f"{other.address}/32")
                        host.blackholed.add(other.address)

    def heal(self) -> None:
        for host in self.hosts:
            for address in sorted(host.blackholed):
                _ip("-n", host.namespace, "route", "del", "blackhole", f"{address}/32", check=False)
            host.blackholed.clear()


@contextmanager
def hosts(directory: Path, count: int, *, suite: str = "intl") -> Iterator[Hosts]:
    made = Hosts(directory, count, suite=suite)
    try:
        made.create()
        yield made
    finally:
        made.destroy()

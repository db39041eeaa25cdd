"""Shared helpers: a consortium of validators per crypto suite, and running networks that are
always closed, even when a test fails."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest

from pilotchain.codec import encode
from pilotchain.crypto import SUITE_NAMES, CryptoError, PrivateKey, Suite, get_suite
from pilotchain.identity import DAY_MS, CertificateAuthority, Membership
from pilotchain.p2p import NetworkConfig, PeerNetwork

#: the virtual "now" of every test (certificates are issued at T0)
T0 = 1_800_000_000_000
YEAR_MS = 365 * DAY_MS
CHAIN_ID = "p2p-test-chain"
#: every wait in these tests is bounded by this
WAIT_S = 15.0


def suite_available(name: str) -> bool:
    try:
        get_suite(name)
    except (CryptoError, ImportError, OSError):
        return False
    return True


SUITE_PARAMS = [
    pytest.param(name, marks=pytest.mark.skipif(not suite_available(name), reason=f"suite {name} unavailable"))
    for name in SUITE_NAMES
]


def key(suite: Suite, label: str) -> PrivateKey:
    return suite.private_key_from_seed(label.encode().ljust(32, b"."))


@dataclass
class Node:
    """What a node needs to join: its name, key and certificate bytes."""

    name: str
    private_key: PrivateKey
    certificate: bytes


@dataclass
class Consortium:
    suite: Suite
    ca_a: CertificateAuthority
    ca_b: CertificateAuthority
    outsider_ca: CertificateAuthority
    nodes: dict[str, Node] = field(default_factory=dict)

    def membership(self) -> Membership:
        return Membership(self.suite, [self.ca_a.org_certificate, self.ca_b.org_certificate])

    def node(
        self,
        name: str,
        *,
        ca: CertificateAuthority | None = None,
        roles: tuple[str, ...] = ("validator",),
        valid_ms: int = YEAR_MS,
        now_ms: int = T0,
    ) -> Node:
        ca = ca or self.ca_a
        private_key = key(self.suite, f"node {name} {ca.org_id} {roles}")
        certificate = ca.issue(name, roles, private_key.public_key().to_der(), now_ms=now_ms, valid_ms=valid_ms)
        return Node(name, private_key, encode(certificate))


@cache
def consortium(suite_name: str) -> Consortium:
    suite = get_suite(suite_name)

    def ca(org_id: str, label: str) -> CertificateAuthority:
        return CertificateAuthority.create(
            suite, key(suite, label), org_id=org_id, display_name=label, now_ms=T0 - DAY_MS, valid_ms=10 * YEAR_MS
        )

    world = Consortium(suite, ca("bank-a", "bank a ca"), ca("bank-b", "bank b ca"), ca("bank-a", "impostor ca"))
    for index, name in enumerate(["v0", "v1", "v2", "v3"]):
        world.nodes[name] = world.node(name, ca=world.ca_a if index % 2 == 0 else world.ca_b)
    return world


def seeded_random(seed: int) -> Callable[[int], bytes]:
    generator = random.Random(seed)
    return generator.randbytes


def local_address() -> str | None:
    """A non-loopback IPv4 address of this machine, or None (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing lookup only
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, below Linux's ephemeral range (32768+): a port the kernel hands
    out for bind(0) is one it may also give to the next outgoing connection of a parallel test,
    which then holds it when the network under test binds it."""
    generator = random.Random()
    bind_host = "127.0.0.1" if host == "0.0.0.0" else host
    for _ in range(200):
        port = generator.randrange(20_000, 32_000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((bind_host, port))
                if host == "0.0.0.0":
                    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as wildcard:
                        probe.close()
                        wildcard.bind(("0.0.0.0", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below the ephemeral range")


FAST = {
    "reconnect_delay_ms_min": 20,
    "reconnect_delay_ms_max": 200,
    "connect_timeout_ms": 2_000,
    "deferred_dial_ms": 100,
    "handshake_timeout_ms": 3_000,
}


def make_config(name: str, port: int, peers: dict[str, str], host: str = "127.0.0.1", **overrides: Any) -> NetworkConfig:
    settings = {**FAST, **overrides}
    return NetworkConfig(
        chain_id=settings.pop("chain_id", CHAIN_ID),
        node_name=name,
        listen_address=f"{host}:{port}",
        peers=peers,
        **settings,
    )


class Cluster:
    """Networks started by a test; the fixture closes every one of them."""

    def __init__(self) -> None:
        self.networks: list[PeerNetwork] = []

    def add(
        self,
        world: Consortium,
        node: Node,
        config: NetworkConfig,
        *,
        membership: Membership | None = None,
        clock_ms: Callable[[], int] | None = None,
        seed: int | None = None,
    ) -> PeerNetwork:
        network = PeerNetwork(
            config,
            suite=world.suite,
            membership=membership or world.membership(),
            private_key=node.private_key,
            certificate=node.certificate,
            clock_ms=clock_ms or (lambda: T0 + 1_000),
            random_bytes=seeded_random(seed) if seed is not None else seeded_random(zlib.crc32(node.name.encode())),
        )
        self.networks.append(network)
        return network

    async def close(self) -> None:
        await asyncio.gather(*(network.close() for network in self.networks), return_exceptions=True)


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll ``condition`` on every loop turn (yielding to the network) until true, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.005)


def run(test: Callable[[Cluster], Awaitable[None]]) -> None:
    """Run an async test body with a cluster that is closed whatever happens."""

    async def main() -> None:
        cluster = Cluster()
        try:
            await asyncio.wait_for(test(cluster), WAIT_S * 2)
        finally:
            await cluster.close()

    asyncio.run(main())


class LogCapture(logging.Handler):
    """Collects p2p log records (structured fields are record attributes)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, event: str, **fields: Any) -> list[logging.LogRecord]:
        return [
            r
            for r in self.records
            if getattr(r, "event", None) == event and all(getattr(r, k, None) == v for k, v in fields.items())
        ]


@pytest.fixture
def p2p_log() -> Any:
    handler = LogCapture()
    logger = logging.getLogger("pilotchain.p2p")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)

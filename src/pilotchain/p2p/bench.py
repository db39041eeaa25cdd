"""Throughput of one encrypted link between two local nodes: ``python -m pilotchain.p2p.bench``.

Two :class:`PeerNetwork` instances on 127.0.0.1 (one process, one event loop, so the numbers are
a lower bound for two processes on two cores), a throwaway consortium, and a sender that keeps
the bulk queue between half and full (so nothing is dropped). Prints one line per suite and
message size: messages/s and payload MB/s from the first send to the last delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time

from pilotchain.codec import encode
from pilotchain.crypto import get_suite
from pilotchain.errors import InvariantBroken
from pilotchain.identity import CertificateAuthority, Membership
from pilotchain.p2p.config import NetworkConfig
from pilotchain.p2p.framing import MessageKind
from pilotchain.p2p.transport import PeerNetwork, SendResult

__all__ = ["measure_link"]

_DAY_MS = 86_400_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def measure_link(suite_name: str, payload_bytes: int, count: int) -> dict[str, float]:
    """Send ``count`` payloads of ``payload_bytes`` from one node to the other; the rates."""
    suite = get_suite(suite_name)
    now_ms = time.time_ns() // 1_000_000
    ca = CertificateAuthority.create(
        suite, suite.private_key_from_seed(b"bench-ca".ljust(32, b".")), org_id="bench",
        display_name="Bench", now_ms=now_ms - _DAY_MS, valid_ms=30 * _DAY_MS,
    )
    ports = {"a": _free_port(), "b": _free_port()}
    networks = {}
    for name, other in (("a", "b"), ("b", "a")):
        key = suite.private_key_from_seed(f"bench {name}".encode().ljust(32, b"."))
        certificate = ca.issue(name, ["validator"], key.public_key().to_der(), now_ms=now_ms, valid_ms=_DAY_MS)
        config = NetworkConfig(
            chain_id="bench", node_name=name, listen_address=f"127.0.0.1:{ports[name]}",
            peers={other: f"127.0.0.1:{ports[other]}"}, bulk_queue_messages_max=4096, deferred_dial_ms=50,
        )
        networks[name] = PeerNetwork(
            config, suite=suite, membership=Membership(suite, [ca.org_certificate]),
            private_key=key, certificate=encode(certificate),
        )
    sender, receiver = networks["a"], networks["b"]
    try:
        for network in networks.values():
            await network.start()
        while sender.connected_peers() != ["b"] or receiver.connected_peers() != ["a"]:
            await asyncio.sleep(0.01)
        payload = bytes(payload_bytes)
        queue_max = sender.config.bulk_queue_messages_max
        queue_bytes_max = sender.config.bulk_queue_bytes_max

        async def send_all() -> None:
            for _ in range(count):
                while True:
                    queued_messages, queued_bytes = sender.queued("b")
                    if queued_messages < queue_max // 2 and queued_bytes + payload_bytes <= queue_bytes_max // 2:
                        break
                    await asyncio.sleep(0)
                if sender.send("b", MessageKind.MEMPOOL, payload) is not SendResult.QUEUED:
                    raise InvariantBroken('invariant broken: sender.send("b", MessageKind.MEMPOOL, payload) is SendResult.QUEUED')

        started = time.perf_counter()
        send_task = asyncio.create_task(send_all())
        for _ in range(count):
            await receiver.receive()
        elapsed_s = time.perf_counter() - started
        await send_task
    finally:
        for network in networks.values():
            await network.close()
    return {
        "messages_per_s": count / elapsed_s,
        "payload_mb_per_s": count * payload_bytes / elapsed_s / 1e6,
        "elapsed_s": elapsed_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", choices=["intl", "gm"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cases = [(256, 50_000), (4096, 20_000), (1024 * 1024, 200)]
    for suite_name in args.suite or ["intl", "gm"]:
        for payload_bytes, count in cases:
            result = asyncio.run(measure_link(suite_name, payload_bytes, count))
            if args.json:
                print(json.dumps({"suite": suite_name, "payload_bytes": payload_bytes, "count": count, **result}))
            else:
                print(
                    f"{suite_name:5} {payload_bytes:>8} B x {count:>6}: "
                    f"{result['messages_per_s']:>9.0f} msg/s  {result['payload_mb_per_s']:>7.1f} MB/s"
                )


if __name__ == "__main__":
    main()

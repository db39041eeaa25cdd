"""One node in its own network namespace, for test_netns.py (run as a script, not collected).

Connects to its one peer, sends a hello, acknowledges the peer's hello, and exits 0 after the
peer's acknowledgement, printing one JSON line; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from helpers import T0, consortium, make_config, seeded_random  # noqa: E402

from pilotchain.p2p import MessageKind, PeerNetwork  # noqa: E402


async def main(arguments: argparse.Namespace) -> dict[str, object]:
    world = consortium(arguments.suite)
    node = world.nodes[arguments.name]
    peer_name, peer_address = arguments.peer.split("=", 1)
    host, port = arguments.listen.rsplit(":", 1)
    network = PeerNetwork(
        make_config(arguments.name, int(port), {peer_name: peer_address}, host=host),
        suite=world.suite,
        membership=world.membership(),
        private_key=node.private_key,
        certificate=node.certificate,
        clock_ms=lambda: T0 + 1_000,
        random_bytes=seeded_random(len(arguments.name) * 1000 + int(port)),
    )
    await network.start()
    try:
        async with asyncio.timeout(arguments.timeout_s):
            while network.connected_peers() != [peer_name]:
                await asyncio.sleep(0.01)
            remote = network.peers()[peer_name].remote_address  # before the peer may leave
            network.send(peer_name, MessageKind.CONSENSUS, f"hello from {arguments.name}".encode())
            received = []
            while len(received) < 2:
                message = await network.receive()
                received.append(message.payload.decode())
                if message.payload.startswith(b"hello"):
                    network.send(peer_name, MessageKind.CONSENSUS, b"ack")
            while network.queued(peer_name) != (0, 0):
                await asyncio.sleep(0.01)
            return {"name": arguments.name, "received": received, "remote": remote}
    finally:
        await network.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--peer", required=True)
    parser.add_argument("--timeout-s", type=float, default=30.0)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))

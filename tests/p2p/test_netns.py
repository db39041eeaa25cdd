"""Two nodes in two network namespaces joined by a veth pair: real, separate network stacks
and non-loopback addresses. Skips cleanly where ``ip netns`` is missing or not permitted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import SUITE_PARAMS

NODE_SCRIPT = Path(__file__).parent / "netns_node.py"
SUBNET = "10.213.{}.{}"


def ip(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *arguments], capture_output=True, text=True, timeout=10)


@pytest.fixture
def two_namespaces() -> Iterator[tuple[str, str, str, str]]:
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    tag = f"pc{os.getpid() % 100000}"
    ns_a, ns_b, veth_a, veth_b = f"{tag}a", f"{tag}b", f"{tag}va", f"{tag}vb"
    octet = os.getpid() % 200 + 1
    address_a, address_b = SUBNET.format(octet, 1), SUBNET.format(octet, 2)
    created: list[str] = []
    try:
        if ip("netns", "add", ns_a).returncode != 0:
            pytest.skip("ip netns is not permitted here")
        created.append(ns_a)
        if ip("netns", "add", ns_b).returncode != 0:
            pytest.skip("ip netns is not permitted here")
        created.append(ns_b)
        steps = [
            ("link", "add", veth_a, "type", "veth", "peer", "name", veth_b),
            ("link", "set", veth_a, "netns", ns_a),
            ("link", "set", veth_b, "netns", ns_b),
            ("-n", ns_a, "addr", "add", f"{address_a}/24", "dev", veth_a),
            ("-n", ns_b, "addr", "add", f"{address_b}/24", "dev", veth_b),
            ("-n", ns_a, "link", "set", veth_a, "up"),
            ("-n", ns_b, "link", "set", veth_b, "up"),
            ("-n", ns_a, "link", "set", "lo", "up"),
            ("-n", ns_b, "link", "set", "lo", "up"),
        ]
        for step in steps:
            result = ip(*step)
            if result.returncode != 0:
                pytest.skip(f"cannot set up the veth pair ({' '.join(step)}): {result.stderr.strip()}")
        yield ns_a, ns_b, address_a, address_b
    finally:
        for namespace in created:  # deleting a namespace deletes its end of the veth pair
            ip("netns", "del", namespace)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_nodes_in_separate_namespaces_connect(suite_name: str, two_namespaces: tuple[str, str, str, str]) -> None:
    ns_a, ns_b, address_a, address_b = two_namespaces
    port = 7000
    commands = [
        (ns_a, "v0", f"{address_a}:{port}", f"v1={address_b}:{port}"),
        (ns_b, "v1", f"{address_b}:{port}", f"v0={address_a}:{port}"),
    ]
    processes = [
        subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, str(NODE_SCRIPT), "--suite", suite_name,
             "--name", name, "--listen", listen, "--peer", peer, "--timeout-s", "40"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for namespace, name, listen, peer in commands
    ]
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr[-2000:]
            outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    by_name = {output["name"]: output for output in outputs}
    assert sorted(by_name["v0"]["received"]) == ["ack", "hello from v1"]
    assert sorted(by_name["v1"]["received"]) == ["ack", "hello from v0"]
    assert by_name["v0"]["remote"].startswith(address_b)
    assert by_name["v1"]["remote"].startswith(address_a)

"""Four validators as real processes on loopback: crashes, restarts, quorum loss, intruders.

Each test starts its own network on free ports and kills every process in a finally block.
Waits are bounded waits on conditions; "no progress" is checked as "the condition did not come
true within a bounded window".
"""

from __future__ import annotations

import base64
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from pilotchain.codec import encode
from pilotchain.crypto import get_suite
from pilotchain.identity.authority import CertificateAuthority
from pilotchain.identity.files import IdentityBundle
from pilotchain.network.processes import node_pid, start_node, wait_until
from pilotchain.sdk import Client, Identity, SignedRequests, TxRejectedError, build_transaction

from .live import assert_agreement, height, logs, running_network

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _submit_many(node_url: str, identity: Identity, chain_id: str, count: int, tag: str) -> list[str]:
    ids = []
    with Client(node_url, timeout=10.0, identity=identity) as client:
        for i in range(count):
            tx = build_transaction(identity, chain_id, "kv", "put", {"key": f"{tag}-{i}", "value": i})
            ids.append(client.submit(tx))
    return ids


def _committed(node_url: str, tx_ids: list[str], identity: Identity) -> bool:
    with httpx.Client(base_url=node_url, timeout=5.0, auth=SignedRequests(identity)) as http:
        return all(http.get(f"/v1/txs/{tx_id}").json().get("state") == "committed" for tx_id in tx_ids)


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_kill_one_validator_commits_continue_and_it_catches_up(tmp_path: Path, suite: str) -> None:
    with running_network(tmp_path / "net", suite=suite) as nodes:
        identity = Identity.load(tmp_path / "net" / "orgs" / "bank" / "client.id")
        chain_id = "pilot-city"
        first = _submit_many(nodes[0].gateway_url, identity, chain_id, 20, "before")
        assert wait_until(lambda: _committed(nodes[1].gateway_url, first, identity), timeout_s=60), logs(nodes)

        victim = nodes[2]
        pid = node_pid(victim.home)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: node_pid(victim.home) is None, timeout_s=10)
        survivors = [n for n in nodes if n is not victim]
        during = _submit_many(survivors[0].gateway_url, identity, chain_id, 20, "during")
        assert wait_until(lambda: _committed(survivors[1].gateway_url, during, identity), timeout_s=60), logs(nodes)
        top = max(height(n) for n in survivors)

        start_node(victim)
        assert wait_until(lambda: height(victim) >= top, timeout_s=90), logs(nodes)
        assert _committed(victim.gateway_url, first + during, identity)
        after = _submit_many(victim.gateway_url, identity, chain_id, 10, "after")
        assert wait_until(lambda: all(_committed(n.gateway_url, after, identity) for n in nodes), timeout_s=60), logs(nodes)
        assert_agreement(nodes)


def test_two_of_four_down_stops_commits_without_fork_and_restart_resumes(tmp_path: Path) -> None:
    with running_network(tmp_path / "net") as nodes:
        identity = Identity.load(tmp_path / "net" / "orgs" / "hospital" / "client.id")
        for victim in nodes[2:]:
            pid = node_pid(victim.home)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: all(node_pid(v.home) is None for v in nodes[2:]), timeout_s=10)
        # the in-flight height may still finish; after that no quorum exists
        stalled_at = max(height(n) for n in nodes[:2]) + 1
        pending = _submit_many(nodes[0].gateway_url, identity, "pilot-city", 5, "stalled")
        progressed = wait_until(lambda: max(height(n) for n in nodes[:2]) > stalled_at, timeout_s=4)
        assert not progressed, "two of four validators cannot commit"
        for victim in nodes[2:]:
            start_node(victim)
        assert wait_until(lambda: all(_committed(n.gateway_url, pending, identity) for n in nodes), timeout_s=90), logs(nodes)
        assert_agreement(nodes)


def test_outsiders_and_bad_signatures_are_refused(tmp_path: Path) -> None:
    with running_network(tmp_path / "net") as nodes:
        suite = get_suite("intl")
        url = nodes[0].gateway_url
        member = Identity.load(tmp_path / "net" / "orgs" / "bank" / "client.id")
        # an organisation the consortium never admitted, with the same org id as a member
        outsider_ca = CertificateAuthority.create(suite, suite.generate_private_key(), org_id="bank",
                                                  display_name="Fake Bank", now_ms=int(time.time() * 1000) - 1000,
                                                  valid_ms=10**10)
        key = suite.generate_private_key()
        cert = outsider_ca.issue("mallory", ("client", "admin"), key.public_key().to_der(),
                                 now_ms=int(time.time() * 1000) - 1000, valid_ms=10**9)
        outsider = Identity(IdentityBundle(suite, cert, key))
        with Client(url, identity=member) as client:
            with pytest.raises(TxRejectedError) as info:
                client.submit(build_transaction(outsider, "pilot-city", "kv", "put", {"key": "x", "value": 1}))
            assert info.value.code in {"UNKNOWN_SIGNER", "SIGNER_REJECTED"}

            good = build_transaction(member, "pilot-city", "kv", "put", {"key": "y", "value": 2})
            from pilotchain.codec import decode
            from pilotchain.ledger.tx import Transaction

            envelope = decode(good.raw, Transaction)
            forged = encode(Transaction(body=envelope.body, signature=bytes(64)))
            # an unsigned request is refused before anything else; a member's request with a forged
            # transaction inside is refused for the transaction's signature
            anonymous = httpx.post(f"{url}/v1/txs", json={"tx": base64.b64encode(forged).decode()})
            assert anonymous.status_code == 401 and anonymous.json()["code"] == "UNAUTHENTICATED"
            response = httpx.post(f"{url}/v1/txs", json={"tx": base64.b64encode(forged).decode()},
                                  auth=SignedRequests(member))
            assert response.status_code == 400 and response.json()["code"] == "BAD_SIGNATURE"
            assert "signature" in response.json()["message"]

        # the intruder cannot join the P2P network either
        import asyncio

        from pilotchain.identity.membership import Membership
        from pilotchain.p2p import NetworkConfig, PeerNetwork

        node_cert = outsider_ca.issue("intruder-v1", ("validator",), key.public_key().to_der(),
                                      now_ms=int(time.time() * 1000) - 1000, valid_ms=10**9)

        async def intrude() -> bool:
            network = PeerNetwork(
                NetworkConfig(chain_id="pilot-city", node_name="intruder-v1", listen_address="127.0.0.1:0",
                              peers={nodes[0].name: nodes[0].p2p_addr}),
                suite=suite, membership=Membership(suite, [outsider_ca.org_certificate]), private_key=key,
                certificate=encode(node_cert),
            )
            await network.start()
            try:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if network.connected_peers():
                        return True
                    await asyncio.sleep(0.1)
                return False
            finally:
                await network.close()

        assert asyncio.run(intrude()) is False
        assert wait_until(lambda: "p2p.refused" in (nodes[0].home / "node.log").read_text(), timeout_s=10)
        assert all(height(n) >= 1 for n in nodes)

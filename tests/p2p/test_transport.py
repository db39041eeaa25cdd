"""PeerNetwork over real sockets: mesh, refusals, tampering, bounds, reconnects.

Every test runs inside ``run``: a cluster whose networks are closed even when the test fails,
with every wait bounded (``wait_until``) and no sleeps.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from pilotchain.codec import decode
from pilotchain.identity import Certificate, RejectReason
from pilotchain.p2p import (
    FrameOpener,
    FrameSealer,
    Handshake,
    HandshakeRole,
    HandshakeState,
    MessageKind,
    PeerNetwork,
    SendResult,
)
from pilotchain.p2p.framing import encode_length

from .helpers import (
    CHAIN_ID,
    SUITE_PARAMS,
    T0,
    Cluster,
    Consortium,
    LogCapture,
    Node,
    consortium,
    free_port,
    local_address,
    make_config,
    run,
    seeded_random,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


def start_mesh(cluster: Cluster, world: Consortium, names: list[str], host: str = "127.0.0.1", dial_host: str | None = None, **overrides):  # type: ignore[no-untyped-def]
    ports = {name: free_port() for name in names}
    networks = {}
    for name in names:
        peers = {other: f"{dial_host or host}:{ports[other]}" for other in names if other != name}
        networks[name] = cluster.add(world, world.nodes[name], make_config(name, ports[name], peers, host=host, **overrides))
    return networks, ports


async def receive_all(network: PeerNetwork, count: int) -> list:  # type: ignore[type-arg]
    async with asyncio.timeout(15):
        return [await network.receive() for _ in range(count)]


def one_link_per_pair(networks: dict[str, PeerNetwork]) -> bool:
    for name, network in networks.items():
        status = network.peers()
        for other in networks:
            if other == name:
                continue
            mine, theirs = status[other], networks[other].peers()[name]
            if not (mine.connected and theirs.connected):
                return False
            if mine.session != theirs.session:  # both ends kept the same link
                return False
    return True


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_four_nodes_form_a_full_mesh_and_exchange_messages(suite_name: str, p2p_log: LogCapture) -> None:
    world = consortium(suite_name)
    names = ["v0", "v1", "v2", "v3"]

    async def body(cluster: Cluster) -> None:
        networks, _ = start_mesh(cluster, world, names)
        for network in networks.values():
            await network.start()
        await wait_until(lambda: one_link_per_pair(networks), "a full mesh with one link per pair")
        for name, network in networks.items():
            results = network.broadcast(MessageKind.CONSENSUS, f"vote from {name}".encode())
            assert set(results.values()) == {SendResult.QUEUED}, results
            target = "v1" if name == "v0" else "v0"
            assert network.send(target, 77, f"direct from {name}".encode()) == SendResult.QUEUED
        for name, network in networks.items():
            direct_senders = {"v1", "v2", "v3"} if name == "v0" else {"v0"} if name == "v1" else set()
            received = await receive_all(network, 3 + len(direct_senders))
            votes = {(m.peer, m.payload) for m in received if m.kind == MessageKind.CONSENSUS}
            assert votes == {(other, f"vote from {other}".encode()) for other in names if other != name}
            direct = {(m.peer, m.payload) for m in received if m.kind == 77}
            assert direct == {(other, f"direct from {other}".encode()) for other in direct_senders}
            assert await network.receive_nowait() is None
        status = networks["v0"].peers()["v1"]
        assert status.connected and status.org_id == "bank-b" and status.messages_out >= 2
        assert status.bytes_out > 0 and status.bytes_in > 0 and status.since_ms == T0 + 1_000
        connected = p2p_log.events("p2p.connected", node="v0")
        assert {r.peer for r in connected} == {"v1", "v2", "v3"}
        # keys never reach the logs
        for network in networks.values():
            for peer in network._peers.values():
                if peer.link is not None:
                    secret = peer.link.result.keys.send_key.hex()
                    assert all(secret not in r.getMessage() and secret not in str(r.__dict__) for r in p2p_log.records)

    run(body)


def refused_records(log: LogCapture, node: str) -> list[logging.LogRecord]:
    return log.events("p2p.refused", node=node)


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
@pytest.mark.parametrize("case", ["intruder", "revoked", "expired", "client-role"])
def test_untrusted_nodes_are_refused_and_logged(suite_name: str, case: str, p2p_log: LogCapture) -> None:
    world = consortium(suite_name)
    membership = world.membership()
    if case == "intruder":  # a CA outside the consortium, claiming the member org's id
        node, expected = world.node("mallory", ca=world.outsider_ca), {RejectReason.UNKNOWN_ISSUER, RejectReason.BAD_CA_SIGNATURE}
    elif case == "revoked":
        node, expected = world.node("lost", ca=world.ca_b), {RejectReason.REVOKED}
        serial = decode(node.certificate, Certificate).serial
        membership.apply_revocation(world.ca_b.revoke(serial, "key compromised", T0 + 10))
    elif case == "expired":
        node, expected = world.node("old", valid_ms=500), {RejectReason.EXPIRED}
    else:
        node, expected = world.node("teller", roles=("client",)), {RejectReason.MISSING_ROLE}

    async def body(cluster: Cluster) -> None:
        port, bad_port = free_port(), free_port()
        v0 = cluster.add(world, world.nodes["v0"], make_config("v0", port, {node.name: f"127.0.0.1:{bad_port}"}), membership=membership)
        bad = cluster.add(
            world, node, make_config(node.name, bad_port, {"v0": f"127.0.0.1:{port}"}, required_role=None)
        )
        await v0.start()
        await bad.start()
        await wait_until(
            lambda: len(refused_records(p2p_log, "v0")) >= 2, "v0 to refuse both directions (its dial and the intruder's)"
        )
        for record in refused_records(p2p_log, "v0"):
            assert record.reason == "IDENTITY_REJECTED"
            assert RejectReason(record.identity_reason) in expected
            assert record.peer == node.name
        assert v0.connected_peers() == [] and bad.connected_peers() == []
        assert await v0.receive_nowait() is None
        assert bad.send("v0", MessageKind.CONSENSUS, b"let me in") is SendResult.NOT_CONNECTED
        assert "IDENTITY_REJECTED" in (v0.peers()[node.name].last_error or "")

    run(body)


def test_unlisted_member_is_refused(p2p_log: LogCapture) -> None:
    world = consortium("intl")

    async def body(cluster: Cluster) -> None:
        port = free_port()
        v0 = cluster.add(world, world.nodes["v0"], make_config("v0", port, {}))
        v2 = cluster.add(world, world.nodes["v2"], make_config("v2", free_port(), {"v0": f"127.0.0.1:{port}"}))
        await v0.start()
        await v2.start()
        await wait_until(lambda: bool(p2p_log.events("p2p.refused", node="v0", reason="UNLISTED_PEER")), "refusal")
        assert v0.connected_peers() == []

    run(body)


# -- a hand-driven peer: the sans-IO handshake over a raw socket -------------------------------


async def raw_peer(world: Consortium, node: Node, port: int, frame_bytes_max: int = 1 << 20):  # type: ignore[no-untyped-def]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    handshake = Handshake(
        role=HandshakeRole.INITIATOR,
        suite=world.suite,
        chain_id=CHAIN_ID,
        membership=world.membership(),
        private_key=node.private_key,
        certificate=node.certificate,
        random_bytes=seeded_random(4242),
        expected_peer="v0",
    )
    async with asyncio.timeout(10):
        while handshake.state is not HandshakeState.ESTABLISHED:
            for message in handshake.messages_to_send():
                writer.write(encode_length(len(message)) + message)
            await writer.drain()
            header = await reader.readexactly(4)
            handshake.receive(await reader.readexactly(int.from_bytes(header, "big")), T0 + 1_000)
        for message in handshake.messages_to_send():
            writer.write(encode_length(len(message)) + message)
        await writer.drain()
    keys = handshake.result.keys
    sealer = FrameSealer(world.suite, keys.send_key, keys.send_iv, frame_bytes_max)
    opener = FrameOpener(world.suite, keys.receive_key, keys.receive_iv, frame_bytes_max)
    return reader, writer, sealer, opener


async def start_v0_for_raw_peer(cluster: Cluster, world: Consortium, **overrides):  # type: ignore[no-untyped-def]
    port = free_port()
    nowhere = free_port()  # v0's own dial to v1 fails: the raw peer is the only link
    v0 = cluster.add(world, world.nodes["v0"], make_config("v0", port, {"v1": f"127.0.0.1:{nowhere}"}, **overrides))
    await v0.start()
    return v0, port


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_tampered_frame_drops_the_link(suite_name: str, p2p_log: LogCapture) -> None:
    world = consortium(suite_name)

    async def body(cluster: Cluster) -> None:
        v0, port = await start_v0_for_raw_peer(cluster, world)
        reader, writer, sealer, _ = await raw_peer(world, world.nodes["v1"], port)
        try:
            await wait_until(lambda: v0.connected_peers() == ["v1"], "v0 to accept the raw v1")
            writer.write(sealer.seal(MessageKind.CONSENSUS, b"genuine"))
            message = await receive_all(v0, 1)
            assert message[0].payload == b"genuine" and message[0].peer == "v1"
            frame = bytearray(sealer.seal(MessageKind.CONSENSUS, b"tampered"))
            frame[-3] ^= 0x10
            writer.write(bytes(frame) + sealer.seal(MessageKind.CONSENSUS, b"after"))
            await writer.drain()
            await wait_until(lambda: v0.connected_peers() == [], "v0 to drop the link")
            dropped = p2p_log.events("p2p.dropped", node="v0", peer="v1")
            assert dropped and "FRAME_REJECTED" in dropped[-1].reason and "decrypt" in dropped[-1].reason
            assert await v0.receive_nowait() is None  # neither the tampered frame nor later ones
            assert await reader.read() == b""  # v0 closed the connection
        finally:
            writer.close()

    run(body)


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_oversized_frame_is_refused_before_its_body(suite_name: str, p2p_log: LogCapture) -> None:
    world = consortium(suite_name)
    frame_bytes_max = 64 * 1024

    async def body(cluster: Cluster) -> None:
        v0, port = await start_v0_for_raw_peer(
            cluster, world, frame_bytes_max=frame_bytes_max, priority_queue_bytes_max=1 << 20,
            bulk_queue_bytes_max=1 << 20, inbound_bytes_max=1 << 20,
        )
        with pytest.raises(ValueError, match="frame bound"):
            v0.send("v1", MessageKind.SYNC, bytes(frame_bytes_max))
        reader, writer, _, _ = await raw_peer(world, world.nodes["v1"], port)
        try:
            await wait_until(lambda: v0.connected_peers() == ["v1"], "v0 to accept the raw v1")
            writer.write(encode_length(frame_bytes_max + 1))  # the header alone; no body follows
            await writer.drain()
            await wait_until(lambda: v0.connected_peers() == [], "v0 to drop the link")
            reason = p2p_log.events("p2p.dropped", node="v0", peer="v1")[-1].reason
            assert "FRAME_REJECTED" in reason and "limit" in reason
        finally:
            writer.close()
        # an oversized handshake message is refused too
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(encode_length(1 << 20))
            await writer.drain()
            await wait_until(lambda: bool(p2p_log.events("p2p.refused", node="v0", reason="MALFORMED")), "refusal")
            async with asyncio.timeout(10):
                while await reader.read(65536):  # v0's Hello, then end of stream
                    pass
        finally:
            writer.close()

    run(body)


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_reconnect_after_a_restart(suite_name: str, p2p_log: LogCapture) -> None:
    world = consortium(suite_name)

    async def body(cluster: Cluster) -> None:
        networks, ports = start_mesh(cluster, world, ["v0", "v1"])
        for network in networks.values():
            await network.start()
        await wait_until(lambda: one_link_per_pair(networks), "v0 and v1 to connect")
        await networks["v1"].close()
        await wait_until(lambda: networks["v0"].connected_peers() == [], "v0 to notice v1 is gone")
        await wait_until(lambda: bool(p2p_log.events("p2p.reconnecting", node="v0", peer="v1")), "v0 to retry")
        restarted = cluster.add(
            world, world.nodes["v1"], make_config("v1", ports["v1"], {"v0": f"127.0.0.1:{ports['v0']}"}), seed=777
        )
        await restarted.start()
        networks["v1"] = restarted
        await wait_until(lambda: one_link_per_pair(networks), "v0 and the restarted v1 to reconnect")
        assert networks["v0"].send("v1", MessageKind.CONSENSUS, b"welcome back") is SendResult.QUEUED
        assert (await receive_all(restarted, 1))[0].payload == b"welcome back"
        assert networks["v0"].peers()["v1"].connects == 2

    run(body)


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_revocation_while_connected_drops_the_link(suite_name: str, p2p_log: LogCapture) -> None:
    world = consortium(suite_name)
    v0_membership = world.membership()

    async def body(cluster: Cluster) -> None:
        ports = {"v0": free_port(), "v1": free_port()}
        v0 = cluster.add(world, world.nodes["v0"], make_config("v0", ports["v0"], {"v1": f"127.0.0.1:{ports['v1']}"}), membership=v0_membership)
        v1 = cluster.add(world, world.nodes["v1"], make_config("v1", ports["v1"], {"v0": f"127.0.0.1:{ports['v0']}"}))
        await v0.start()
        await v1.start()
        await wait_until(lambda: v0.connected_peers() == ["v1"] and v1.connected_peers() == ["v0"], "connection")
        serial = decode(world.nodes["v1"].certificate, Certificate).serial
        v0_membership.apply_revocation(world.ca_b.revoke(serial, "decommissioned", T0 + 500))
        assert v0.reauthenticate() == ["v1"]
        await wait_until(
            lambda: any(r.identity_reason == "REVOKED" for r in p2p_log.events("p2p.refused", node="v0")), "refusal"
        )
        await wait_until(lambda: len(p2p_log.events("p2p.refused", node="v0")) >= 2, "v1's redial to be refused")
        assert v0.connected_peers() == []

    run(body)


def test_a_slow_reader_does_not_grow_memory_without_bound() -> None:
    world = consortium("intl")
    bounds = {
        "frame_bytes_max": 64 * 1024,
        "bulk_queue_messages_max": 32,
        "bulk_queue_bytes_max": 256 * 1024,
        "priority_queue_messages_max": 16,
        "priority_queue_bytes_max": 64 * 1024,
        "inbound_messages_max": 8,
        "inbound_bytes_max": 128 * 1024,
        "write_buffer_bytes_high": 64 * 1024,
    }
    payload = bytes(16 * 1024)

    async def body(cluster: Cluster) -> None:
        networks, _ = start_mesh(cluster, world, ["v0", "v1"], **bounds)
        v0, v1 = networks["v0"], networks["v1"]
        await v0.start()
        await v1.start()
        await wait_until(lambda: one_link_per_pair(networks), "connection")
        results: dict[SendResult, int] = {}
        link = v0._peers["v1"].link
        assert link is not None
        high_water = {"queued": 0, "socket": 0, "inbound": 0}

        def observe() -> None:
            status = v0.peers()["v1"]
            high_water["queued"] = max(high_water["queued"], status.queued_bytes)
            high_water["socket"] = max(high_water["socket"], link.writer.transport.get_write_buffer_size())
            high_water["inbound"] = max(high_water["inbound"], v1.inbound_buffered()[1])

        # v1 never calls receive(): push 64 MiB of bulk traffic at it.
        for index in range(4096):
            result = v0.send("v1", MessageKind.SYNC, payload)
            results[result] = results.get(result, 0) + 1
            if index % 16 == 0:
                observe()
                await asyncio.sleep(0)  # let the writer run; the socket fills up
        await wait_until(lambda: v0.peers()["v1"].messages_dropped > 0, "the bulk queue to overflow")
        observe()
        assert results.get(SendResult.QUEUED_DROPPED_OLDEST, 0) > 0
        assert high_water["queued"] <= bounds["bulk_queue_bytes_max"]
        assert high_water["socket"] <= bounds["write_buffer_bytes_high"] + bounds["frame_bytes_max"]
        assert high_water["inbound"] <= bounds["inbound_bytes_max"]
        # the priority queue refuses rather than grows
        outcomes = {v0.send("v1", MessageKind.CONSENSUS, b"v" * 100) for _ in range(64)}
        assert SendResult.BACKPRESSURE in outcomes
        assert v0.peers()["v1"].messages_refused > 0
        # once v1 reads, traffic flows again and the link survives
        marker_seen = False
        async with asyncio.timeout(20):
            while not marker_seen:
                message = await v1.receive()
                marker_seen = message.kind == MessageKind.CONSENSUS
        assert v0.connected_peers() == ["v1"]

    run(body)


def test_unsent_bytes_say_when_a_broadcast_has_reached_the_kernel() -> None:
    """A proposer waits for its block preview to leave before it blocks the loop building the
    block (ConsensusNode._propose): unsent_bytes counts what is queued, being sealed (large frames
    are sealed on a thread) or buffered in a link, and reaches 0 once all of it went out."""
    world = consortium("intl")

    async def body(cluster: Cluster) -> None:
        networks, _ = start_mesh(cluster, world, ["v0", "v1", "v2"])
        for network in networks.values():
            await network.start()
        await wait_until(lambda: one_link_per_pair(networks), "connection")
        v0 = networks["v0"]
        assert v0.unsent_bytes() == 0
        payload = bytes(2 * 1024 * 1024)  # large enough to be sealed off the loop
        v0.broadcast(MessageKind.PREVIEW, payload)
        assert v0.unsent_bytes() >= 2 * len(payload)  # queued for both peers, nothing written yet
        await wait_until(lambda: v0.unsent_bytes() == 0, "the preview to leave")
        for name in ("v1", "v2"):
            async with asyncio.timeout(20):
                message = await networks[name].receive()
            assert message.kind == MessageKind.PREVIEW and message.payload == payload

    run(body)


def test_bind_all_interfaces_and_dial_a_configured_non_loopback_address() -> None:
    address = local_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    world = consortium("intl")

    async def body(cluster: Cluster) -> None:
        networks, _ = start_mesh(cluster, world, ["v0", "v1", "v2"], host="0.0.0.0", dial_host=address)
        for network in networks.values():
            await network.start()
        await wait_until(lambda: one_link_per_pair(networks), "a mesh over the configured address")
        assert all(s.remote_address.startswith(address) for s in networks["v0"].peers().values())
        networks["v2"].broadcast(MessageKind.MEMPOOL, b"tx")
        assert (await receive_all(networks["v0"], 1))[0].peer == "v2"

    run(body)


def test_a_stranger_holding_handshakes_open_cannot_lock_out_peers(p2p_log: LogCapture) -> None:
    """One host may hold only its share of the handshake slots: a stranger on 127.0.0.2 that
    opens connections and never speaks gets ``pending_handshakes_per_host_max`` of them, the rest
    refused (logged, counted), and a real peer on 127.0.0.1 still connects while they hang."""
    world = consortium("intl")

    async def body(cluster: Cluster) -> None:
        # a long handshake timeout: the stranger's sockets stay pending for the whole test
        networks, ports = start_mesh(cluster, world, ["v0", "v1"], pending_handshakes_per_host_max=3,
                                     pending_handshakes_max=8, handshake_timeout_ms=60_000)
        await networks["v0"].start()
        strangers = []
        try:
            for _ in range(12):
                strangers.append(await asyncio.open_connection("127.0.0.1", ports["v0"], local_addr=("127.0.0.2", 0)))
            await wait_until(lambda: len(p2p_log.events("p2p.dropped", node="v0", reason="HOST_HANDSHAKES_FULL")) == 9,
                             "v0 to refuse the stranger's connections beyond its share")
            assert not p2p_log.events("p2p.dropped", node="v0", reason="HANDSHAKES_FULL")
            await networks["v1"].start()
            await wait_until(lambda: one_link_per_pair(networks), "v1 to connect while the stranger holds its share")
        finally:
            for _, writer in strangers:
                writer.close()

    run(body)

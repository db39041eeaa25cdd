"""The sans-IO handshake: both sides agree on keys; every way to cheat fails with its reason."""

from __future__ import annotations

import msgspec
import pytest

from pilotchain.codec import decode, encode
from pilotchain.crypto import UnsupportedSuite, get_suite
from pilotchain.identity import Certificate
from pilotchain.identity.errors import RejectReason
from pilotchain.p2p import HandshakeFailed, HandshakeFailure, HandshakeRole, HandshakeState
from pilotchain.p2p.handshake import Auth, Handshake, Hello

from .helpers import (
    CHAIN_ID,
    SUITE_PARAMS,
    T0,
    YEAR_MS,
    Consortium,
    Node,
    consortium,
    seeded_random,
)

NOW = T0 + 1_000


def make(
    world: Consortium,
    node: Node,
    role: HandshakeRole,
    *,
    seed: int,
    chain_id: str = CHAIN_ID,
    expected_peer: str | None = None,
    required_role: str | None = "validator",
    membership=None,  # type: ignore[no-untyped-def]
) -> Handshake:
    return Handshake(
        role=role,
        suite=world.suite,
        chain_id=chain_id,
        membership=membership or world.membership(),
        private_key=node.private_key,
        certificate=node.certificate,
        random_bytes=seeded_random(seed),
        required_role=required_role,
        expected_peer=expected_peer,
    )


def pump(a: Handshake, b: Handshake, now_ms: int = NOW) -> None:
    """Deliver messages both ways until nothing is left to send."""
    for _ in range(10):  # bounded: a handshake is two flights each way
        a_out, b_out = a.messages_to_send(), b.messages_to_send()
        if not a_out and not b_out:
            return
        for message in a_out:
            b.receive(message, now_ms)
        for message in b_out:
            a.receive(message, now_ms)
    raise AssertionError("handshake did not settle")


def pair(world: Consortium, initiator: str = "v0", responder: str = "v1", **kwargs):  # type: ignore[no-untyped-def]
    i = make(world, world.nodes[initiator], HandshakeRole.INITIATOR, seed=1, **kwargs)
    r = make(world, world.nodes[responder], HandshakeRole.RESPONDER, seed=2)
    return i, r


def failure_of(handshake: Handshake, message: bytes, now_ms: int = NOW) -> HandshakeFailed:
    with pytest.raises(HandshakeFailed) as info:
        handshake.receive(message, now_ms)
    assert handshake.state is HandshakeState.FAILED
    return info.value


def rewrite_hello(message: bytes, **changes: object) -> bytes:
    hello = decode(message[1:], Hello)
    return message[:1] + encode(msgspec.structs.replace(hello, **changes))


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_both_sides_derive_matching_directional_keys(suite_name: str) -> None:
    world = consortium(suite_name)
    i, r = pair(world, expected_peer="v1")
    pump(i, r)
    assert i.state is r.state is HandshakeState.ESTABLISHED
    ik, rk = i.result.keys, r.result.keys
    assert ik.send_key == rk.receive_key and ik.receive_key == rk.send_key
    assert ik.send_iv == rk.receive_iv and ik.receive_iv == rk.send_iv
    assert ik.send_key != ik.receive_key
    assert len(ik.send_key) == world.suite.aead_key_size
    assert i.result.session_id == r.result.session_id
    assert i.result.transcript_hash == r.result.transcript_hash
    assert i.result.peer.subject == "v1" and r.result.peer.subject == "v0"
    assert ik.send_key.hex() not in repr(i.result) and repr(ik.send_key) not in repr(i.result)


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_same_randomness_gives_the_same_session(suite_name: str) -> None:
    world = consortium(suite_name)
    sessions = []
    for _ in range(2):
        i, r = pair(world)
        pump(i, r)
        sessions.append((i.result.session_id, i.result.keys))
    if suite_name == "intl":  # Ed25519 signatures are deterministic too
        assert sessions[0] == sessions[1]
    else:  # SM2 signatures are randomised, but the keys depend only on ECDH and the Hellos
        assert sessions[0][0] == sessions[1][0]


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_replayed_hello_and_auth_fail(suite_name: str) -> None:
    """An attacker that recorded a whole session cannot replay it into a new one."""
    world = consortium(suite_name)
    i, r = pair(world)
    hello_i = i.messages_to_send()
    hello_r = r.messages_to_send()
    for message in hello_r:
        i.receive(message, NOW)
    for message in hello_i:
        r.receive(message, NOW)
    auth_i, auth_r = i.messages_to_send(), r.messages_to_send()
    # As the responder, replay v0's recorded Hello and Auth to a fresh v1 (fresh randomness).
    fresh = make(world, world.nodes["v1"], HandshakeRole.RESPONDER, seed=99)
    fresh.receive(hello_i[0], NOW)  # a Hello alone proves nothing: it authenticates the cert
    assert fresh.state is HandshakeState.WAIT_AUTH
    assert failure_of(fresh, auth_i[0]).reason is HandshakeFailure.BAD_SIGNATURE
    # As the initiator side: replay v1's Hello and Auth to a fresh v0.
    fresh_i = make(world, world.nodes["v0"], HandshakeRole.INITIATOR, seed=98)
    fresh_i.receive(hello_r[0], NOW)
    assert failure_of(fresh_i, auth_r[0]).reason is HandshakeFailure.BAD_SIGNATURE


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_reflected_auth_fails(suite_name: str) -> None:
    """An Auth sent back to its author is refused (the role is signed)."""
    world = consortium(suite_name)
    i, r = pair(world)
    hello_i = i.messages_to_send()
    for message in r.messages_to_send():
        i.receive(message, NOW)
    r.receive(hello_i[0], NOW)
    auth_i = i.messages_to_send()
    assert failure_of(i, auth_i[0]).reason is HandshakeFailure.BAD_SIGNATURE


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_reflected_hello_is_a_self_connection(suite_name: str) -> None:
    world = consortium(suite_name)
    i = make(world, world.nodes["v0"], HandshakeRole.INITIATOR, seed=1)
    hello = i.messages_to_send()[0]
    assert failure_of(i, hello).reason is HandshakeFailure.SELF_CONNECTION
    other = make(world, world.nodes["v0"], HandshakeRole.RESPONDER, seed=5)
    other.messages_to_send()
    assert failure_of(other, hello).reason is HandshakeFailure.SELF_CONNECTION


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_wrong_chain_version_and_suite_are_refused(suite_name: str) -> None:
    world = consortium(suite_name)
    other_suite = "gm" if suite_name == "intl" else "intl"
    for changes, reason in [
        ({"chain_id": "another-chain"}, HandshakeFailure.WRONG_CHAIN),
        ({"protocol_version": 2}, HandshakeFailure.VERSION_MISMATCH),
        ({"suite": other_suite}, HandshakeFailure.WRONG_SUITE),
        ({"nonce": b"short"}, HandshakeFailure.MALFORMED),
        ({"key_share": b"\x01" * 7}, HandshakeFailure.BAD_KEY_SHARE),
    ]:
        i, r = pair(world)
        hello = rewrite_hello(r.messages_to_send()[0], **changes)
        failure = failure_of(i, hello)
        assert failure.reason is reason, (changes, failure)
        assert failure.peer_subject == "v1"


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_wrong_chain_between_honest_nodes(suite_name: str) -> None:
    world = consortium(suite_name)
    i = make(world, world.nodes["v0"], HandshakeRole.INITIATOR, seed=1, chain_id="chain-one")
    r = make(world, world.nodes["v1"], HandshakeRole.RESPONDER, seed=2, chain_id="chain-two")
    with pytest.raises(HandshakeFailed) as info:
        pump(i, r)
    assert info.value.reason is HandshakeFailure.WRONG_CHAIN


def test_a_peer_of_the_other_suite_is_refused() -> None:
    _require_gm()
    intl, gm = consortium("intl"), consortium("gm")
    i = make(intl, intl.nodes["v0"], HandshakeRole.INITIATOR, seed=1)
    r = make(gm, gm.nodes["v1"], HandshakeRole.RESPONDER, seed=2)
    assert failure_of(i, r.messages_to_send()[0]).reason is HandshakeFailure.WRONG_SUITE
    assert failure_of(r, i.messages_to_send()[0]).reason is HandshakeFailure.WRONG_SUITE


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_bad_signature_and_bad_key_confirmation(suite_name: str) -> None:
    world = consortium(suite_name)
    for field_name, reason in [
        ("signature", HandshakeFailure.BAD_SIGNATURE),
        ("key_confirmation", HandshakeFailure.BAD_KEY_CONFIRMATION),
    ]:
        i, r = pair(world)
        hello_i = i.messages_to_send()
        for message in r.messages_to_send():
            i.receive(message, NOW)
        r.receive(hello_i[0], NOW)
        auth = decode(r.messages_to_send()[0][1:], Auth)
        value = bytearray(getattr(auth, field_name))
        value[-1] ^= 0x01
        forged = b"\x02" + encode(msgspec.structs.replace(auth, **{field_name: bytes(value)}))
        assert failure_of(i, forged).reason is reason


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_an_impostor_signing_with_another_key_fails(suite_name: str) -> None:
    """Someone presenting v1's (public) certificate without v1's key cannot authenticate."""
    world = consortium(suite_name)
    mallory = Node("v1", world.nodes["v2"].private_key, world.nodes["v1"].certificate)
    with pytest.raises(ValueError, match="not for its private key"):
        make(world, mallory, HandshakeRole.RESPONDER, seed=3)
    # Build the impostor by hand: an honest v1 Hello, then an Auth signed by another key.
    i, r = pair(world)
    hello_i = i.messages_to_send()
    for message in r.messages_to_send():
        i.receive(message, NOW)
    r._private_key = world.nodes["v2"].private_key  # white-box: the impostor's key
    r.receive(hello_i[0], NOW)
    assert failure_of(i, r.messages_to_send()[0]).reason is HandshakeFailure.BAD_SIGNATURE


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_identity_rejections_carry_the_membership_reason(suite_name: str) -> None:
    world = consortium(suite_name)
    cases = [
        (world.node("intruder", ca=world.outsider_ca), None, {RejectReason.UNKNOWN_ISSUER, RejectReason.BAD_CA_SIGNATURE}),
        (world.node("teller", roles=("client",)), None, {RejectReason.MISSING_ROLE}),
        (world.node("old", valid_ms=500), None, {RejectReason.EXPIRED}),
    ]
    revoked = world.node("lost", ca=world.ca_b)
    membership = world.membership()
    serial = decode(revoked.certificate, Certificate).serial
    membership.apply_revocation(world.ca_b.revoke(serial, "key lost", T0 + 10))
    cases.append((revoked, membership, {RejectReason.REVOKED}))
    for node, custom_membership, reasons in cases:
        i = make(world, world.nodes["v0"], HandshakeRole.INITIATOR, seed=1, membership=custom_membership)
        r = make(world, node, HandshakeRole.RESPONDER, seed=2, required_role=None)
        failure = failure_of(i, r.messages_to_send()[0])
        assert failure.reason is HandshakeFailure.IDENTITY_REJECTED
        assert failure.identity_reason in reasons, failure
        assert failure.peer_subject == node.name


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_required_role_is_a_parameter(suite_name: str) -> None:
    world = consortium(suite_name)
    observer = world.node("observer", roles=("auditor",))
    i = make(world, world.nodes["v0"], HandshakeRole.INITIATOR, seed=1, required_role="auditor")
    r = make(world, observer, HandshakeRole.RESPONDER, seed=2, required_role="validator")
    pump(i, r)
    assert i.state is HandshakeState.ESTABLISHED and i.result.peer.subject == "observer"


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_unexpected_peer_is_refused_by_the_initiator(suite_name: str) -> None:
    world = consortium(suite_name)
    i, r = pair(world, responder="v2", expected_peer="v1")
    failure = failure_of(i, r.messages_to_send()[0])
    assert failure.reason is HandshakeFailure.UNEXPECTED_PEER


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_certificate_checked_at_the_given_time(suite_name: str) -> None:
    world = consortium(suite_name)
    i, r = pair(world)
    failure = failure_of(i, r.messages_to_send()[0], now_ms=T0 + 2 * YEAR_MS)
    assert failure.identity_reason is RejectReason.EXPIRED


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_garbage_and_out_of_order_messages(suite_name: str) -> None:
    world = consortium(suite_name)
    for message in [b"", b"\x01", b"\x01garbage", b"\x09" + b"x" * 10, b"\x02" + encode(Auth(b"s", b"c")), b"\x01" * 9000]:
        i, _ = pair(world)
        assert failure_of(i, message).reason is HandshakeFailure.MALFORMED
    i, r = pair(world)
    pump(i, r)
    with pytest.raises(HandshakeFailed):
        i.receive(b"\x01", NOW)


def test_low_order_x25519_share_is_refused() -> None:
    world = consortium("intl")
    i, r = pair(world)
    hello = rewrite_hello(r.messages_to_send()[0], key_share=bytes(32))
    assert failure_of(i, hello).reason is HandshakeFailure.BAD_KEY_SHARE


def test_off_curve_sm2_share_is_refused() -> None:
    _require_gm()
    world = consortium("gm")
    i, r = pair(world)
    share = bytearray(decode(r.messages_to_send()[0][1:], Hello).key_share)
    share[-1] ^= 0x01
    hello = rewrite_hello(make(world, world.nodes["v1"], HandshakeRole.RESPONDER, seed=7).messages_to_send()[0], key_share=bytes(share))
    assert failure_of(i, hello).reason is HandshakeFailure.BAD_KEY_SHARE


def _require_gm() -> None:
    """Skip where this machine's OpenSSL has no SM2 (the gm suite is then unavailable)."""
    try:
        get_suite("gm")
    except UnsupportedSuite as exc:
        pytest.skip(f"the gm suite is unavailable here: {exc}")

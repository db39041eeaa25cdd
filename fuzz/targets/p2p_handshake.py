"""The P2P link handshake (``p2p/handshake.py``): what a node reads from whoever connects."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

from fuzz.harness import NOW_MS, consortium, expect
from pilotchain.identity.records import Role
from pilotchain.p2p.errors import HandshakeFailed
from pilotchain.p2p.handshake import Handshake, HandshakeRole, HandshakeState

CONTRACT = """
Handshake.receive, fed any sequence of messages by the peer, returns or raises HandshakeFailed
(with a reason and a message) and is FAILED for good after it (a message after ESTABLISHED is
refused and changes nothing); it is ESTABLISHED only with a
result naming a consortium validator that is not itself. Byte 0: bit 0 picks the suite, bit 1 the
role (responder / initiator that dialled org-b-validator), bit 2 whether an honest peer's Hello
goes first (so fuzzed Auth messages meet a live transcript); then messages, each with a 2-byte
length.
"""

MAX_LEN = 16 * 1024
_SUITES = ("intl", "gm")


def _random(label: str) -> Callable[[int], bytes]:
    counter = 0

    def random_bytes(size: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(f"{label}/{counter}".encode()).digest(size)

    return random_bytes


def _handshake(suite_name: str, role: HandshakeRole, subject: str, label: str,
               expected_peer: str | None = None) -> Handshake:
    members = consortium(suite_name)
    member = members.members[subject]
    return Handshake(role=role, suite=members.suite, chain_id=members.genesis.chain_id,
                     membership=members.membership(), private_key=member.key, certificate=member.certificate,
                     random_bytes=_random(label), required_role=Role.VALIDATOR, expected_peer=expected_peer)


def one_input(data: bytes) -> None:
    if not data:
        return
    suite_name = _SUITES[data[0] & 1]
    role = HandshakeRole.INITIATOR if data[0] & 2 else HandshakeRole.RESPONDER
    ours = _handshake(suite_name, role, "org-a-validator", "ours",
                      expected_peer="org-b-validator" if role is HandshakeRole.INITIATOR else None)
    ours.messages_to_send()
    if data[0] & 4:
        honest = _handshake(suite_name, role.peer, "org-b-validator", "peer")
        (hello,) = honest.messages_to_send()
        ours.receive(hello, NOW_MS)  # an honest Hello is accepted
        expect(ours.state is HandshakeState.WAIT_AUTH, "an honest Hello did not advance the handshake")
    at = 1
    while at + 2 <= len(data):
        length = int.from_bytes(data[at:at + 2], "big")
        message = data[at + 2:at + 2 + length]
        at += 2 + length
        state = ours.state
        try:
            ours.receive(message, NOW_MS)
        except HandshakeFailed as exc:
            expect(bool(exc.reason) and bool(str(exc).strip()), "HandshakeFailed without a reason")
            # a message after the handshake is refused and changes nothing (an ESTABLISHED one
            # keeps its keys); a refusal before it fails the handshake for good
            expected = state if state is HandshakeState.ESTABLISHED else HandshakeState.FAILED
            expect(ours.state is expected, f"a refused message left the handshake {ours.state.value}")
        ours.messages_to_send()
        if ours.state is HandshakeState.ESTABLISHED:
            result = ours.result
            expect(result.peer.has_role(Role.VALIDATOR), "established with a peer that is not a validator")
            expect(result.peer.subject != "org-a-validator", "established with itself")


def _messages(*messages: bytes) -> bytes:
    return b"".join(len(m).to_bytes(2, "big") + m for m in messages)


def seeds() -> Iterator[bytes]:
    for suite_bit, suite_name in enumerate(_SUITES):
        for role_bit, role in ((0, HandshakeRole.RESPONDER), (2, HandshakeRole.INITIATOR)):
            # a whole honest exchange, recorded from the peer's side
            ours = _handshake(suite_name, role, "org-a-validator", "ours",
                              expected_peer="org-b-validator" if role is HandshakeRole.INITIATOR else None)
            peer = _handshake(suite_name, role.peer, "org-b-validator", "peer")
            (our_hello,) = ours.messages_to_send()
            (peer_hello,) = peer.messages_to_send()
            peer.receive(our_hello, NOW_MS)
            (peer_auth,) = peer.messages_to_send()
            yield bytes([suite_bit | role_bit]) + _messages(peer_hello, peer_auth)
            yield bytes([suite_bit | role_bit | 4]) + _messages(peer_auth)

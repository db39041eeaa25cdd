"""The link handshake: mutual authentication with consortium identities, then session keys.

Theory of operation
-------------------
A sans-IO state machine in the style of SIGMA (Krawczyk, "sign-and-MAC"). It reads no clock,
socket or random source: the caller passes ``now_ms`` and a ``random_bytes`` callable, feeds it
whole handshake messages with :meth:`Handshake.receive` and pulls what to send with
:meth:`Handshake.messages_to_send`. Both sides run the same machine; only the *role* differs
(the side that opened the TCP connection is the initiator)::

    initiator I                                              responder R
    ---------------------------------------------------------------------
    Hello_I = {version, chain, suite, E_I, N_I, cert_I}  ──►
                                                         ◄──  Hello_R = {…, E_R, N_R, cert_R}
    (both Hellos are sent at once: neither depends on the other)

    th  = H("pilotchain/p2p/transcript/v1" ‖ len ‖ Hello_I ‖ len ‖ Hello_R)
    prk = HKDF-Extract(salt = th, ikm = DH(e, E_peer))
    Auth_X = {Sign_X("pilotchain/p2p/auth/v1" ‖ role_X ‖ th),
              HMAC(confirm_X, "pilotchain/p2p/confirm/v1" ‖ role_X ‖ th)}

    Auth_I  ──►                                           ◄──  Auth_R
    (each side sends its Auth as soon as it has the peer's Hello)

Checks, in order, on the peer's Hello: canonical encoding, protocol version, suite, chain id,
nonce and key-share sizes, not a reflection of our own Hello, the certificate
(:meth:`Membership.authenticate` at ``now_ms`` with the required role, ``validator`` by default),
not our own identity, the subject we dialled (initiator only), a valid key share. On the peer's
Auth: the signature by the certificate's key over the transcript, then the key confirmation.

Why replay fails: every transcript contains both sides' fresh ephemeral keys and 32-byte nonces,
so a recorded Hello, or an Auth signed over another transcript, never verifies in a new session;
an attacker that replays a Hello cannot produce the Auth (no identity key) nor the key
confirmation (no ephemeral private key). The role byte in the signed bytes stops an Auth from
being reflected back to its author.

What the handshake does not hide: certificates travel in the clear (a passive observer learns
which consortium members talk to each other). Node identities are not secret in a consortium;
SIGMA-I identity protection can be added later by sealing the certificate under a handshake key.

Key schedule (``L`` = the suite's AEAD key size, HKDF over SHA-256 or SM3)::

    key_i2r = Expand(prk, "pilotchain/p2p/v1 key i2r", L)   iv_i2r = Expand(prk, "… iv i2r", 12)
    key_r2i = Expand(prk, "pilotchain/p2p/v1 key r2i", L)   iv_r2i = Expand(prk, "… iv r2i", 12)
    confirm_I, confirm_R = Expand(prk, "… confirm i" / "… confirm r", 32)
    session_id = Expand(prk, "pilotchain/p2p/v1 session id", 32)   (public: safe to log)
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.crypto import CryptoError, PrivateKey, Suite
from pilotchain.crypto.kex import hkdf_expand, hkdf_extract, hmac_digest, key_exchange_for
from pilotchain.errors import InvariantBroken
from pilotchain.identity.errors import IdentityRejected
from pilotchain.identity.membership import AuthenticatedIdentity, Membership
from pilotchain.identity.records import Certificate, Role, decode_record
from pilotchain.p2p.errors import HandshakeFailed, HandshakeFailure

__all__ = [
    "AEAD_IV_BYTES",
    "CHAIN_ID_CHARS_MAX",
    "HANDSHAKE_MESSAGE_BYTES_MAX",
    "NONCE_BYTES",
    "PROTOCOL_VERSION",
    "Auth",
    "Handshake",
    "HandshakeResult",
    "HandshakeRole",
    "HandshakeState",
    "Hello",
    "SessionKeys",
]

#: bumped on any incompatible change to the handshake or the framing
PROTOCOL_VERSION: Final = 1
NONCE_BYTES: Final = 32
#: a Hello carries a certificate (at most 4 KiB encoded) plus about 200 bytes
HANDSHAKE_MESSAGE_BYTES_MAX: Final = 8 * 1024
CHAIN_ID_CHARS_MAX: Final = 128
AEAD_IV_BYTES: Final = 12
SESSION_ID_BYTES: Final = 32
_KEY_SHARE_BYTES_MAX: Final = 133  # an uncompressed P-521-sized point; ours are 32 or 65
_SIGNATURE_BYTES_MAX: Final = 160
_CONFIRMATION_BYTES_MAX: Final = 64

_DOMAIN_TRANSCRIPT: Final = b"pilotchain/p2p/transcript/v1\x00"
_DOMAIN_AUTH: Final = b"pilotchain/p2p/auth/v1\x00"
_DOMAIN_CONFIRM: Final = b"pilotchain/p2p/confirm/v1\x00"
_LABEL: Final = b"pilotchain/p2p/v1 "

_MESSAGE_HELLO: Final = 1
_MESSAGE_AUTH: Final = 2


class HandshakeRole(enum.IntEnum):
    INITIATOR = 1
    RESPONDER = 2

    @property
    def peer(self) -> HandshakeRole:
        return HandshakeRole.RESPONDER if self is HandshakeRole.INITIATOR else HandshakeRole.INITIATOR


class HandshakeState(enum.Enum):
    #: our Hello is queued; waiting for the peer's
    WAIT_HELLO = "wait-hello"
    #: our Auth is queued; waiting for the peer's
    WAIT_AUTH = "wait-auth"
    ESTABLISHED = "established"
    FAILED = "failed"


class Hello(Record, frozen=True):
    protocol_version: int
    chain_id: str
    suite: str
    #: the sender's ephemeral Diffie-Hellman public key (X25519: 32 bytes; SM2: 65-byte point)
    key_share: bytes
    nonce: bytes
    #: the sender's canonical Certificate bytes
    certificate: bytes


class Auth(Record, frozen=True):
    #: by the sender's identity key over the auth domain, its role and the transcript hash
    signature: bytes
    #: HMAC under the sender's confirmation key over the confirm domain, its role and the hash
    key_confirmation: bytes


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """Directional AEAD keys and IVs for one link. ``repr`` never shows key material."""

    send_key: bytes = field(repr=False)
    send_iv: bytes = field(repr=False)
    receive_key: bytes = field(repr=False)
    receive_iv: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    role: HandshakeRole
    #: the authenticated peer
    peer: AuthenticatedIdentity
    peer_certificate: bytes
    keys: SessionKeys
    #: public (derived from the session secret by a one-way KDF): safe to log, e.g. a prefix
    session_id: bytes
    transcript_hash: bytes


def _wire(message_type: int, record: Record) -> bytes:
    data = bytes([message_type]) + encode(record)
    if not (len(data) <= HANDSHAKE_MESSAGE_BYTES_MAX):
        raise InvariantBroken(len(data))
    return data


def _fail(reason: HandshakeFailure, message: str, peer_subject: str | None = None) -> HandshakeFailed:
    return HandshakeFailed(reason, message, peer_subject=peer_subject)


def _claimed_subject(certificate: bytes) -> str | None:
    """The subject a certificate claims, unverified (for logs), or None when it does not decode."""
    try:
        return decode_record(certificate, Certificate).subject
    except CodecError:
        return None


class Handshake:
    """One side of one handshake. Construct it, send :meth:`messages_to_send`, feed every
    handshake message the peer sends to :meth:`receive` until :attr:`state` is ESTABLISHED
    (then read :attr:`result`) or :meth:`receive` raises :class:`HandshakeFailed`."""

    def __init__(
        self,
        *,
        role: HandshakeRole,
        suite: Suite,
        chain_id: str,
        membership: Membership,
        private_key: PrivateKey,
        certificate: bytes,
        random_bytes: Callable[[int], bytes],
        required_role: Role | str | None = Role.VALIDATOR,
        expected_peer: str | None = None,
    ) -> None:
        """``certificate`` is this node's canonical Certificate bytes for ``private_key``;
        ``expected_peer`` is the subject the initiator means to reach (None: anyone the
        membership accepts with ``required_role``)."""
        own = decode_record(certificate, Certificate)  # CodecError: a caller bug
        if own.public_key_der != private_key.public_key().to_der():
            raise ValueError("the node's certificate is not for its private key")
        if own.suite != suite.name:
            raise ValueError(f"the node's certificate is for suite {own.suite!r}, not {suite.name!r}")
        if not 1 <= len(chain_id) <= CHAIN_ID_CHARS_MAX:
            raise ValueError(f"chain id must be 1-{CHAIN_ID_CHARS_MAX} characters")
        self._role = role
        self._suite = suite
        self._chain_id = chain_id
        self._membership = membership
        self._private_key = private_key
        self._own_public_key_der = own.public_key_der
        self._required_role = required_role
        self._expected_peer = expected_peer
        self._exchange = key_exchange_for(suite)
        ephemeral_random = random_bytes(self._exchange.private_key_bytes)
        nonce = random_bytes(NONCE_BYTES)
        if not (len(ephemeral_random) == self._exchange.private_key_bytes):
            raise InvariantBroken('invariant broken: len(ephemeral_random) == self._exchange.private_key_bytes')
        if not (len(nonce) == NONCE_BYTES):
            raise InvariantBroken('invariant broken: len(nonce) == NONCE_BYTES')
        self._ephemeral_private: bytes | None
        self._ephemeral_private, key_share = self._exchange.keypair(ephemeral_random)
        self._hello = Hello(PROTOCOL_VERSION, chain_id, suite.name, key_share, nonce, bytes(certificate))
        self._hello_bytes = _wire(_MESSAGE_HELLO, self._hello)
        self._outbox: list[bytes] = [self._hello_bytes]
        self._state = HandshakeState.WAIT_HELLO
        self._peer: AuthenticatedIdentity | None = None
        self._peer_certificate = b""
        self._transcript_hash = b""
        self._prk = b""
        self._result: HandshakeResult | None = None

    # -- pulled outputs ------------------------------------------------------------------------

    @property
    def state(self) -> HandshakeState:
        return self._state

    @property
    def role(self) -> HandshakeRole:
        return self._role

    @property
    def result(self) -> HandshakeResult:
        if not (self._result is not None):
            raise InvariantBroken("the handshake is not established")
        return self._result

    def messages_to_send(self) -> list[bytes]:
        """Handshake messages to send to the peer, in order (each call returns each once)."""
        outbox, self._outbox = self._outbox, []
        return outbox

    # -- the one input -------------------------------------------------------------------------

    def receive(self, message: bytes, now_ms: int) -> None:
        """Process one whole handshake message from the peer. Raises :class:`HandshakeFailed`
        (and the handshake is FAILED for good) when the peer must not be trusted."""
        if self._state in (HandshakeState.ESTABLISHED, HandshakeState.FAILED):
            raise _fail(HandshakeFailure.MALFORMED, f"handshake message after the handshake {self._state.value}")
        try:
            self._receive(message, now_ms)
        except HandshakeFailed:
            self._state = HandshakeState.FAILED
            self._ephemeral_private = None
            self._prk = b""
            raise

    def _receive(self, message: bytes, now_ms: int) -> None:
        if not 1 <= len(message) <= HANDSHAKE_MESSAGE_BYTES_MAX:
            raise _fail(HandshakeFailure.MALFORMED, f"handshake message of {len(message)} bytes")
        message_type, body = message[0], message[1:]
        if self._state is HandshakeState.WAIT_HELLO and message_type == _MESSAGE_HELLO:
            self._on_hello(message, body, now_ms)
        elif self._state is HandshakeState.WAIT_AUTH and message_type == _MESSAGE_AUTH:
            self._on_auth(body)
        else:
            raise _fail(
                HandshakeFailure.MALFORMED,
                f"unexpected handshake message type {message_type} in state {self._state.value}",
            )

    # -- handlers ------------------------------------------------------------------------------

    def _on_hello(self, message: bytes, body: bytes, now_ms: int) -> None:
        try:
            hello = decode(body, Hello, max_bytes=HANDSHAKE_MESSAGE_BYTES_MAX)
        except CodecError as exc:
            raise _fail(HandshakeFailure.MALFORMED, f"not a Hello: {exc}") from exc
        claimed = _claimed_subject(hello.certificate)
        self._check_hello_header(hello, claimed)
        identity = self._authenticate(hello.certificate, now_ms, claimed)
        try:
            shared_secret = self._exchange.shared_secret(self._ephemeral_private or b"", hello.key_share)
        except CryptoError as exc:
            raise _fail(HandshakeFailure.BAD_KEY_SHARE, str(exc), claimed) from exc
        self._ephemeral_private = None  # forward secrecy: the ephemeral key is used once
        hellos = (self._hello_bytes, message)
        if self._role is HandshakeRole.RESPONDER:
            hellos = (message, self._hello_bytes)
        transcript = _DOMAIN_TRANSCRIPT + b"".join(len(h).to_bytes(4, "big") + h for h in hellos)
        self._transcript_hash = self._suite.hash(transcript)
        self._prk = hkdf_extract(self._suite, self._transcript_hash, shared_secret)
        self._peer = identity
        self._peer_certificate = hello.certificate
        role_byte = bytes([self._role])
        signature = self._private_key.sign(_DOMAIN_AUTH + role_byte + self._transcript_hash)
        confirmation = hmac_digest(
            self._suite, self._confirm_key(self._role), _DOMAIN_CONFIRM + role_byte + self._transcript_hash
        )
        self._outbox.append(_wire(_MESSAGE_AUTH, Auth(signature, confirmation)))
        self._state = HandshakeState.WAIT_AUTH

    def _check_hello_header(self, hello: Hello, claimed: str | None) -> None:
        if hello.protocol_version != PROTOCOL_VERSION:
            raise _fail(
                HandshakeFailure.VERSION_MISMATCH,
                f"peer speaks protocol version {hello.protocol_version}, this node {PROTOCOL_VERSION}; upgrade the older node",
                claimed,
            )
        if hello.suite != self._suite.name:
            raise _fail(
                HandshakeFailure.WRONG_SUITE,
                f"peer uses crypto suite {hello.suite!r:.40}, this network {self._suite.name!r}",
                claimed,
            )
        if hello.chain_id != self._chain_id:
            raise _fail(
                HandshakeFailure.WRONG_CHAIN,
                f"peer is on chain {hello.chain_id!r:.140}, this node on {self._chain_id!r}; check the peer address",
                claimed,
            )
        if len(hello.nonce) != NONCE_BYTES:
            raise _fail(HandshakeFailure.MALFORMED, f"nonce of {len(hello.nonce)} bytes", claimed)
        if len(hello.key_share) != self._exchange.public_key_bytes:
            raise _fail(
                HandshakeFailure.BAD_KEY_SHARE,
                f"{self._exchange.name} key share of {len(hello.key_share)} bytes, expected {self._exchange.public_key_bytes}",
                claimed,
            )
        if hello.nonce == self._hello.nonce or hello.key_share == self._hello.key_share:
            raise _fail(HandshakeFailure.SELF_CONNECTION, "the peer's Hello reflects this node's own", claimed)

    def _authenticate(self, certificate: bytes, now_ms: int, claimed: str | None) -> AuthenticatedIdentity:
        try:
            identity = self._membership.authenticate(certificate, now_ms, required_role=self._required_role)
        except IdentityRejected as exc:
            raise HandshakeFailed(
                HandshakeFailure.IDENTITY_REJECTED,
                exc.message,
                identity_reason=exc.reason,
                peer_subject=claimed,
            ) from exc
        if identity.public_key_der == self._own_public_key_der:
            raise _fail(HandshakeFailure.SELF_CONNECTION, "the peer presents this node's own identity", identity.subject)
        if self._expected_peer is not None and identity.subject != self._expected_peer:
            raise _fail(
                HandshakeFailure.UNEXPECTED_PEER,
                f"dialled {self._expected_peer!r} but reached {identity.org_id}/{identity.subject!r}; check the peer address",
                identity.subject,
            )
        return identity

    def _on_auth(self, body: bytes) -> None:
        if not (self._peer is not None):
            raise InvariantBroken('invariant broken: self._peer is not None')
        try:
            auth = decode(body, Auth, max_bytes=HANDSHAKE_MESSAGE_BYTES_MAX)
        except CodecError as exc:
            raise _fail(HandshakeFailure.MALFORMED, f"not an Auth: {exc}", self._peer.subject) from exc
        if len(auth.signature) > _SIGNATURE_BYTES_MAX or len(auth.key_confirmation) > _CONFIRMATION_BYTES_MAX:
            raise _fail(HandshakeFailure.MALFORMED, "oversized Auth fields", self._peer.subject)
        peer_role_byte = bytes([self._role.peer])
        signed = _DOMAIN_AUTH + peer_role_byte + self._transcript_hash
        if not self._suite.verify(self._peer.public_key_der, signed, auth.signature):
            raise _fail(
                HandshakeFailure.BAD_SIGNATURE,
                "the peer's signature over this session's transcript does not verify (replayed or forged handshake)",
                self._peer.subject,
            )
        expected = hmac_digest(
            self._suite, self._confirm_key(self._role.peer), _DOMAIN_CONFIRM + peer_role_byte + self._transcript_hash
        )
        if not hmac.compare_digest(expected, auth.key_confirmation):
            raise _fail(
                HandshakeFailure.BAD_KEY_CONFIRMATION,
                "the peer does not hold this session's key",
                self._peer.subject,
            )
        self._result = HandshakeResult(
            role=self._role,
            peer=self._peer,
            peer_certificate=self._peer_certificate,
            keys=self._session_keys(),
            session_id=self._expand("session id", SESSION_ID_BYTES),
            transcript_hash=self._transcript_hash,
        )
        self._prk = b""
        self._state = HandshakeState.ESTABLISHED

    # -- key schedule --------------------------------------------------------------------------

    def _expand(self, label: str, length: int) -> bytes:
        if not (self._prk):
            raise InvariantBroken("no session secret")
        return hkdf_expand(self._suite, self._prk, _LABEL + label.encode(), length)

    def _confirm_key(self, role: HandshakeRole) -> bytes:
        return self._expand("confirm i" if role is HandshakeRole.INITIATOR else "confirm r", 32)

    def _session_keys(self) -> SessionKeys:
        size = self._suite.aead_key_size
        i2r = (self._expand("key i2r", size), self._expand("iv i2r", AEAD_IV_BYTES))
        r2i = (self._expand("key r2i", size), self._expand("iv r2i", AEAD_IV_BYTES))
        send, receive = (i2r, r2i) if self._role is HandshakeRole.INITIATOR else (r2i, i2r)
        return SessionKeys(send_key=send[0], send_iv=send[1], receive_key=receive[0], receive_iv=receive[1])

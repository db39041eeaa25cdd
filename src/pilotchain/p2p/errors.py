"""Errors raised by :mod:`pilotchain.p2p`, by blame.

Error tree::

    P2PError
    ├── HandshakeFailed   the peer could not be authenticated or broke the handshake protocol
    │                     (peer input; carries a HandshakeFailure code, and the membership's
    │                     RejectReason when the certificate itself was refused)
    ├── FrameRejected     a frame that is oversized, malformed or fails to decrypt (peer input;
    │                     the link is dropped)
    └── ConfigError       a network configuration that cannot work (caller error; also ValueError)
"""

from __future__ import annotations

import enum

from pilotchain.errors import CoreError, InvariantBroken
from pilotchain.identity.errors import RejectReason

__all__ = ["ConfigError", "FrameRejected", "HandshakeFailed", "HandshakeFailure", "P2PError"]


class HandshakeFailure(enum.StrEnum):
    """Why a handshake failed (stable codes: logs and metrics match on them)."""

    #: bytes that are not a canonical handshake message, or a message out of order
    MALFORMED = "MALFORMED"
    #: the peer speaks another protocol version
    VERSION_MISMATCH = "VERSION_MISMATCH"
    #: the peer belongs to another chain
    WRONG_CHAIN = "WRONG_CHAIN"
    #: the peer uses another crypto suite
    WRONG_SUITE = "WRONG_SUITE"
    #: the membership refused the peer's certificate (see ``identity_reason``)
    IDENTITY_REJECTED = "IDENTITY_REJECTED"
    #: the peer's certificate is valid but names someone other than the node we dialled
    UNEXPECTED_PEER = "UNEXPECTED_PEER"
    #: the peer is this node (a loop in the configuration, or a reflected handshake)
    SELF_CONNECTION = "SELF_CONNECTION"
    #: the peer's ephemeral public key is invalid (not on the curve, low order)
    BAD_KEY_SHARE = "BAD_KEY_SHARE"
    #: the peer's signature over the transcript does not verify (replay or forgery)
    BAD_SIGNATURE = "BAD_SIGNATURE"
    #: the peer's key confirmation does not verify (it does not hold the session key)
    BAD_KEY_CONFIRMATION = "BAD_KEY_CONFIRMATION"
    #: the handshake did not finish within its deadline
    TIMEOUT = "TIMEOUT"
    #: authenticated, but not in this node's peer list (and unlisted peers are not accepted)
    UNLISTED_PEER = "UNLISTED_PEER"


class P2PError(CoreError):
    """Base of every error this package raises."""


class HandshakeFailed(P2PError):
    """The peer was not authenticated. ``reason`` is a :class:`HandshakeFailure`;
    ``identity_reason`` is the membership's :class:`RejectReason` when the certificate was
    refused (``reason == IDENTITY_REJECTED``), else ``None``."""

    def __init__(
        self,
        reason: HandshakeFailure,
        message: str,
        *,
        identity_reason: RejectReason | None = None,
        peer_subject: str | None = None,
    ) -> None:
        if not (isinstance(reason, HandshakeFailure)):
            raise InvariantBroken('invariant broken: isinstance(reason, HandshakeFailure)')
        if not (message):
            raise InvariantBroken('invariant broken: message')
        if not ((identity_reason is not None) == (reason is HandshakeFailure.IDENTITY_REJECTED)):
            raise InvariantBroken('invariant broken: (identity_reason is not None) == (reason is HandshakeFailure.IDENTITY_REJECTED)')
        detail = f"{reason.value}/{identity_reason.value}" if identity_reason else reason.value
        super().__init__(f"{detail}: {message}")
        self.reason = reason
        self.identity_reason = identity_reason
        self.message = message
        #: the subject the peer's certificate claims (unverified unless the failure came after
        #: the certificate check); for logs only
        self.peer_subject = peer_subject


class FrameRejected(P2PError):
    """A frame the link must not accept; the connection is dropped."""


class ConfigError(P2PError, ValueError):
    """A network configuration that cannot work; the message names the setting and the fix."""

"""Errors raised by :mod:`pilotchain.identity`, and the reason codes they carry.

Error tree (by blame)::

    IdentityLayerError
    ├── IdentityRejected     a certificate that must not be trusted (peer input; carries a reason)
    ├── UpdateRejected       a revocation, rotation or org change membership will not apply
    │                        (peer or governance input; carries a reason; state left unchanged)
    ├── IssueRefused         a CA asked to do something it must not (caller error; also ValueError)
    └── IdentityFileError    an identity or CA file that cannot be read or written (operating error)
"""

from __future__ import annotations

import enum

from pilotchain.errors import CoreError, InvariantBroken

__all__ = [
    "IdentityLayerError",
    "IdentityFileError",
    "IdentityRejected",
    "IssueRefused",
    "RejectReason",
    "UpdateRejected",
]


class RejectReason(enum.StrEnum):
    """Why a certificate or a membership update was refused (stable codes: logs and clients match on them)."""

    #: bytes that are not a canonical certificate / record (truncated, tampered, wrong type)
    MALFORMED = "MALFORMED"
    #: signed with another network's crypto suite
    WRONG_SUITE = "WRONG_SUITE"
    #: names an org that is not in the consortium
    UNKNOWN_ORG = "UNKNOWN_ORG"
    #: names an org the consortium has removed
    ORG_REMOVED = "ORG_REMOVED"
    #: names an issuer key that is not (and never was) a CA key of its org
    UNKNOWN_ISSUER = "UNKNOWN_ISSUER"
    #: issued by a CA key the org rotated away from, after the rotation's cut-over time
    ISSUER_ROTATED = "ISSUER_ROTATED"
    #: the CA signature does not verify
    BAD_CA_SIGNATURE = "BAD_CA_SIGNATURE"
    #: the org CA certificate is not valid yet at this time
    CA_NOT_YET_VALID = "CA_NOT_YET_VALID"
    #: the org CA certificate has expired
    CA_EXPIRED = "CA_EXPIRED"
    #: before the certificate's not_before
    NOT_YET_VALID = "NOT_YET_VALID"
    #: at or after the certificate's not_after
    EXPIRED = "EXPIRED"
    #: revoked by its org
    REVOKED = "REVOKED"
    #: valid, but without the role the action needs
    MISSING_ROLE = "MISSING_ROLE"
    # -- membership updates only --
    #: an org id that is already a member
    DUPLICATE_ORG = "DUPLICATE_ORG"
    #: a serial that is already revoked
    ALREADY_REVOKED = "ALREADY_REVOKED"
    #: a rotation away from a key that is not the org's current CA key (replayed or out of order)
    STALE_ROTATION = "STALE_ROTATION"
    #: a bound (orgs, revocations) would be exceeded
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"


class IdentityLayerError(CoreError):
    """Base of every error this package raises."""


class _Reasoned(IdentityLayerError):
    def __init__(self, reason: RejectReason, message: str) -> None:
        if not (isinstance(reason, RejectReason)):
            raise InvariantBroken('invariant broken: isinstance(reason, RejectReason)')
        if not (message):
            raise InvariantBroken('invariant broken: message')
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


class IdentityRejected(_Reasoned):
    """A certificate that must not be trusted. ``reason`` is a :class:`RejectReason`;
    ``message`` says what is wrong and what to do next."""


class UpdateRejected(_Reasoned):
    """A membership update (revocation, rotation, org added or removed) that was not applied.
    The membership is unchanged."""


class IssueRefused(IdentityLayerError, ValueError):
    """A certificate authority was asked for something it must not do (bad subject, roles, validity)."""


class IdentityFileError(IdentityLayerError):
    """An identity, CA or certificate file that cannot be read or written; the message names the
    file and the fix."""

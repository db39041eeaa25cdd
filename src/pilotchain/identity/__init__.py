"""Identities and membership: who may sign what in a pilotchain consortium.

Theory of operation
-------------------
A consortium is a set of organisations, each with its own certificate authority. An org CA is a
self-signed :class:`OrgCertificate`; genesis lists them. The CA issues :class:`Certificate` records
to its nodes, admins, clients and auditors (:class:`Role`), with a validity interval, and can
:meth:`~CertificateAuthority.revoke` them (:class:`Revocation`) or hand over to a new CA key
(:class:`CaRotation`). Every record is a canonical :class:`pilotchain.codec.Record` signed with the
network's crypto suite (SM2 in a ``gm`` network) over a domain-separated encoding; see
``docs/identity.md`` for why these are not X.509 certificates.

:class:`Membership` is the chain's view: deterministic, no I/O, time passed in as ``now_ms``.
Nothing is trusted unless a member org's CA vouches for it; :meth:`Membership.authenticate`
returns an :class:`AuthenticatedIdentity` or raises :class:`IdentityRejected` with a :class:`RejectReason`.

Modules: ``records`` (formats), ``authority`` (the CA), ``membership`` (the verifier),
``expiry`` (warnings), ``armor`` (text armour) are pure; ``files`` is the I/O shell.

Error tree::

    IdentityLayerError
    ├── IdentityRejected     a certificate that must not be trusted (reason code + what to do)
    ├── UpdateRejected       a membership update that was not applied (reason code)
    ├── IssueRefused         a CA asked to do something it must not (also a ValueError)
    └── IdentityFileError    an identity / CA / record file that cannot be read or written
"""

from __future__ import annotations

from pilotchain.identity.armor import armor, dearmor
from pilotchain.identity.authority import CertificateAuthority, create_org_certificate
from pilotchain.identity.errors import (
    IdentityFileError,
    IdentityLayerError,
    IdentityRejected,
    IssueRefused,
    RejectReason,
    UpdateRejected,
)
from pilotchain.identity.expiry import (
    DAY_MS,
    WARNING_DAYS,
    ExpiryKind,
    ExpiryNotice,
    ExpiryWarning,
    expiry_warnings,
    format_time_ms,
)
from pilotchain.identity.files import (
    IdentityBundle,
    load_ca,
    load_identity,
    load_record,
    save_ca,
    save_identity,
    save_record,
)
from pilotchain.identity.membership import AuthenticatedIdentity, Membership
from pilotchain.identity.records import (
    CaRotation,
    Certificate,
    OrgCertificate,
    Revocation,
    Role,
    certificate_id,
    decode_record,
    key_id,
    signing_bytes,
    verify_record_signature,
)

__all__ = [
    "DAY_MS",
    "WARNING_DAYS",
    "CaRotation",
    "Certificate",
    "CertificateAuthority",
    "ExpiryKind",
    "ExpiryNotice",
    "ExpiryWarning",
    "AuthenticatedIdentity",
    "IdentityBundle",
    "IdentityLayerError",
    "IdentityFileError",
    "IdentityRejected",
    "IssueRefused",
    "Membership",
    "OrgCertificate",
    "RejectReason",
    "Revocation",
    "Role",
    "UpdateRejected",
    "armor",
    "certificate_id",
    "create_org_certificate",
    "dearmor",
    "decode_record",
    "expiry_warnings",
    "format_time_ms",
    "key_id",
    "load_ca",
    "load_identity",
    "load_record",
    "save_ca",
    "save_identity",
    "save_record",
    "signing_bytes",
    "verify_record_signature",
]

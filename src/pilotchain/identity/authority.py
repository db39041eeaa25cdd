"""An organisation's certificate authority: issues, revokes and rotates.

Theory of operation
-------------------
A :class:`CertificateAuthority` holds one org's CA private key, its self-signed
:class:`OrgCertificate` and the next certificate serial. It is deterministic given its inputs:
time comes in as ``now_ms`` and keys come in as :class:`PrivateKey` objects (the shell generates
them). The only state that changes is ``next_serial``; whoever persists the CA must persist it
after every :meth:`issue`, so a serial is never handed out twice.

Serials are unique per org across CA rotations: :meth:`rotate` carries ``next_serial`` over to
the new CA, so a :class:`Revocation` naming ``(org_id, serial)`` is never ambiguous.
"""

from __future__ import annotations

from collections.abc import Iterable

from pilotchain.crypto import KeyFormatError, PrivateKey, Suite
from pilotchain.identity.errors import IssueRefused
from pilotchain.identity.records import (
    FORMAT_VERSION,
    SERIAL_MAX,
    CaRotation,
    Certificate,
    OrgCertificate,
    Revocation,
    Role,
    key_id,
    sign_record,
    verify_record_signature,
)

__all__ = ["CertificateAuthority", "create_org_certificate", "normalise_roles"]


def normalise_roles(roles: Iterable[Role | str]) -> tuple[Role, ...]:
    """Roles as a certificate carries them: known, unique, sorted. Raises :class:`IssueRefused`."""
    result: set[Role] = set()
    for role in roles:
        try:
            result.add(Role(role))
        except ValueError:
            choices = ", ".join(r.value for r in Role)
            raise IssueRefused(f"unknown role {role!r}; choose from {choices}") from None
    if not result:
        raise IssueRefused("a certificate needs at least one role (e.g. client)")
    return tuple(sorted(result))


def create_org_certificate(
    suite: Suite,
    private_key: PrivateKey,
    *,
    org_id: str,
    display_name: str,
    now_ms: int,
    valid_ms: int,
    ca_serial: int = 1,
) -> OrgCertificate:
    """A self-signed org CA certificate valid for ``[now_ms, now_ms + valid_ms)``."""
    if valid_ms <= 0:
        raise IssueRefused(f"a CA needs a positive validity, got {valid_ms} ms")
    try:
        return sign_record(
            OrgCertificate,
            private_key,
            FORMAT_VERSION,
            suite.name,
            ca_serial,
            org_id,
            display_name,
            private_key.public_key().to_der(),
            now_ms,
            now_ms + valid_ms,
        )
    except ValueError as exc:
        raise IssueRefused(f"cannot create the CA certificate for {org_id!r}: {exc}") from exc


class CertificateAuthority:
    """One org's CA: the private key, the org certificate and the next serial to issue."""

    __slots__ = ("_suite", "_private_key", "_org_certificate", "_key_id", "_next_serial")

    def __init__(
        self,
        suite: Suite,
        private_key: PrivateKey,
        org_certificate: OrgCertificate,
        next_serial: int = 1,
    ) -> None:
        public_key_der = private_key.public_key().to_der()
        if org_certificate.suite != suite.name:
            raise IssueRefused(
                f"the CA certificate is for suite {org_certificate.suite!r}, the key for {suite.name!r}"
            )
        if org_certificate.public_key_der != public_key_der:
            raise IssueRefused(
                f"the private key does not belong to org {org_certificate.org_id}'s CA certificate"
            )
        if not verify_record_signature(suite, org_certificate, public_key_der):
            raise IssueRefused(
                f"org {org_certificate.org_id}'s CA certificate is not correctly self-signed"
            )
        if not 1 <= next_serial <= SERIAL_MAX:
            raise IssueRefused(f"next serial must be between 1 and {SERIAL_MAX}, got {next_serial}")
        self._suite = suite
        self._private_key = private_key
        self._org_certificate = org_certificate
        self._key_id = key_id(suite, public_key_der)
        self._next_serial = next_serial

    @classmethod
    def create(
        cls,
        suite: Suite,
        private_key: PrivateKey,
        *,
        org_id: str,
        display_name: str,
        now_ms: int,
        valid_ms: int,
    ) -> CertificateAuthority:
        """A new org CA with a self-signed certificate valid for ``[now_ms, now_ms + valid_ms)``."""
        org_certificate = create_org_certificate(
            suite,
            private_key,
            org_id=org_id,
            display_name=display_name,
            now_ms=now_ms,
            valid_ms=valid_ms,
        )
        return cls(suite, private_key, org_certificate)

    # -- read-only views ---------------------------------------------------------------------------

    @property
    def suite(self) -> Suite:
        return self._suite

    @property
    def org_id(self) -> str:
        return self._org_certificate.org_id

    @property
    def org_certificate(self) -> OrgCertificate:
        return self._org_certificate

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def next_serial(self) -> int:
        return self._next_serial

    @property
    def private_key(self) -> PrivateKey:
        """For the file layer that persists the CA; never print or log it."""
        return self._private_key

    def __repr__(self) -> str:  # never shows the key
        return f"CertificateAuthority(org_id={self.org_id!r}, key_id={self._key_id.hex()[:16]}, next_serial={self._next_serial})"

    # -- operations --------------------------------------------------------------------------------

    def _check_ca_valid_at(self, now_ms: int, action: str) -> None:
        ca = self._org_certificate
        if not ca.not_before_ms <= now_ms < ca.not_after_ms:
            raise IssueRefused(
                f"cannot {action}: org {ca.org_id}'s CA certificate is valid only in "
                f"[{ca.not_before_ms}, {ca.not_after_ms}) ms, now is {now_ms}; rotate the CA first"
            )

    def issue(
        self,
        subject: str,
        roles: Iterable[Role | str],
        public_key_der: bytes,
        *,
        now_ms: int,
        valid_ms: int,
    ) -> Certificate:
        """A certificate for ``subject`` valid for ``[now_ms, now_ms + valid_ms)``.

        Refuses (:class:`IssueRefused`) unknown roles, a key that is not a key of this CA's suite,
        and a validity that outlives the CA certificate. Consumes one serial."""
        self._check_ca_valid_at(now_ms, "issue")
        if valid_ms <= 0:
            raise IssueRefused(f"a certificate needs a positive validity, got {valid_ms} ms")
        not_after_ms = now_ms + valid_ms
        ca = self._org_certificate
        if not_after_ms > ca.not_after_ms:
            days_left = (ca.not_after_ms - now_ms) // 86_400_000
            raise IssueRefused(
                f"the certificate would outlive org {ca.org_id}'s CA (which expires in {days_left} days); "
                "issue it for a shorter validity, or rotate the CA first"
            )
        normalised_roles = normalise_roles(roles)
        try:
            self._suite.public_key(public_key_der)
        except KeyFormatError as exc:
            raise IssueRefused(
                f"the subject key is not a {self._suite.name} public key: {exc}"
            ) from exc
        if self._next_serial > SERIAL_MAX:
            raise IssueRefused(f"org {ca.org_id}'s CA has used every serial")
        try:
            certificate = sign_record(
                Certificate,
                self._private_key,
                FORMAT_VERSION,
                self._suite.name,
                self._next_serial,
                ca.org_id,
                subject,
                normalised_roles,
                bytes(public_key_der),
                now_ms,
                not_after_ms,
                self._key_id,
            )
        except ValueError as exc:
            raise IssueRefused(f"cannot issue a certificate for {subject!r:.80}: {exc}") from exc
        self._next_serial += 1
        return certificate

    def revoke(self, serial: int, reason: str, now_ms: int) -> Revocation:
        """A signed revocation of certificate ``serial`` effective from ``now_ms``."""
        if not 1 <= serial < self._next_serial:
            raise IssueRefused(
                f"serial {serial} was never issued by org {self.org_id}'s CA "
                f"(serials issued so far: 1-{self._next_serial - 1})"
            )
        try:
            return sign_record(
                Revocation,
                self._private_key,
                FORMAT_VERSION,
                self._suite.name,
                self.org_id,
                serial,
                reason,
                now_ms,
                self._key_id,
            )
        except ValueError as exc:
            raise IssueRefused(f"cannot revoke serial {serial}: {exc}") from exc

    def rotate(
        self,
        new_private_key: PrivateKey,
        *,
        now_ms: int,
        valid_ms: int,
        cutover_ms: int,
    ) -> tuple[CertificateAuthority, CaRotation]:
        """Move to ``new_private_key``: the new CA (serials carried over) and the rotation record,
        signed by this (old) key, that the membership applies. Certificates this key issued stay
        valid until ``cutover_ms``; re-issue them with the new CA before then."""
        self._check_ca_valid_at(now_ms, "rotate")
        if cutover_ms < now_ms:
            raise IssueRefused(f"the cut-over time {cutover_ms} is in the past (now {now_ms})")
        if new_private_key.public_key().to_der() == self._org_certificate.public_key_der:
            raise IssueRefused("the new CA key is the old CA key; generate a new key to rotate")
        old = self._org_certificate
        if cutover_ms > old.not_after_ms:
            raise IssueRefused(
                "the cut-over time is after the old CA certificate expires; choose an earlier one"
            )
        new_org_certificate = create_org_certificate(
            self._suite,
            new_private_key,
            org_id=old.org_id,
            display_name=old.display_name,
            now_ms=now_ms,
            valid_ms=valid_ms,
            ca_serial=old.serial + 1,
        )
        rotation = sign_record(
            CaRotation,
            self._private_key,
            FORMAT_VERSION,
            self._suite.name,
            old.org_id,
            self._key_id,
            new_org_certificate,
            cutover_ms,
        )
        return CertificateAuthority(
            self._suite, new_private_key, new_org_certificate, self._next_serial
        ), rotation

"""Membership: which keys the consortium trusts, and for what.

Theory of operation
-------------------
A :class:`Membership` starts from the consortium's org CA certificates (genesis lists them) and
changes only through four updates, each validated in full before anything changes:
:meth:`add_org` and :meth:`remove_org` (consortium governance), :meth:`apply_revocation` and
:meth:`apply_rotation` (signed by the org's current CA key). It is deterministic: the same
updates in the same order give the same answers on every node, and time is always an argument.

:meth:`authenticate` answers "who signed this?": it returns an :class:`AuthenticatedIdentity` or raises
:class:`IdentityRejected` with a :class:`RejectReason` and a message saying what to do next.
Checking a certificate has two parts:

* a *permanent* fact: "these canonical bytes are a certificate of this suite whose signature
  verifies under the CA key with id ``issuer_key_id``". It is cached (bounded, oldest evicted
  first), keyed by the certificate bytes or the decoded record, and shared between copies of a
  membership, because it can never become false;
* a *current* check on every call: the org is a member, the issuer key is its current CA key (or
  a retired one before its cut-over time), the org CA and the certificate are valid at
  ``now_ms``, the serial is not revoked, the required role is held. Dict lookups and integer
  comparisons only.

Rotation policy: certificates issued by a retired CA key are accepted until the rotation's
``cutover_ms`` (capped at the old CA certificate's expiry) and refused (ISSUER_ROTATED) from then
on; re-issue them with the new CA before the cut-over. Revocations must be signed by the org's
current CA key; serials are unique per org across rotations, so a revocation is keyed by
``(org_id, serial)`` and covers a certificate whichever key issued it. A revoked certificate is
refused for ``now_ms >= revoked_at_ms`` (so history before the revocation still verifies).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pilotchain.codec import CodecError, Record
from pilotchain.crypto import KeyFormatError, Suite, get_suite
from pilotchain.errors import InvariantBroken
from pilotchain.identity.errors import IdentityRejected, RejectReason, UpdateRejected
from pilotchain.identity.expiry import ExpiryKind, ExpiryNotice, format_time_ms
from pilotchain.identity.records import (
    CaRotation,
    Certificate,
    OrgCertificate,
    Revocation,
    Role,
    certificate_id,
    decode_record,
    key_id,
    verify_record_signature,
)

__all__ = ["AuthenticatedIdentity", "Membership"]

#: verified-certificate cache entries (each ~1 KB); the oldest is evicted first when full
VERIFIED_CACHE_SIZE_MAX = 100_000
#: orgs in one consortium
ORGS_MAX = 1_000
#: revocations held (all orgs together)
REVOCATIONS_MAX = 1_000_000
#: retired CA keys remembered per org (retired keys past their cut-over are dropped first)
RETIRED_KEYS_MAX = 8

_ROLE_VALUES = frozenset(role.value for role in Role)
_R = RejectReason


class AuthenticatedIdentity(Record, frozen=True):
    """An authenticated signer: what a certificate vouches for, once membership has checked it."""

    org_id: str
    subject: str
    roles: tuple[Role, ...]
    serial: int
    #: the subject's SubjectPublicKeyInfo DER (verify transaction signatures with it)
    public_key_der: bytes
    not_before_ms: int
    not_after_ms: int
    #: the suite hash of the certificate's canonical bytes
    certificate_id: bytes

    def has_role(self, role: Role | str) -> bool:
        return role in self.roles


@dataclass(frozen=True, slots=True)
class _OrgState:
    ca: OrgCertificate
    key_id: bytes
    #: retired CA key id -> (its org certificate, cut-over ms)
    retired: dict[bytes, tuple[OrgCertificate, int]] = field(default_factory=dict)
    removed: bool = False


@dataclass(frozen=True, slots=True)
class _Verified:
    certificate: Certificate
    identity: AuthenticatedIdentity
    revocation_key: tuple[str, int]


def _describe(certificate: Certificate) -> str:
    return f"certificate {certificate.org_id}/{certificate.serial} for {certificate.subject!r}"


def _reject(reason: RejectReason, message: str) -> IdentityRejected:
    return IdentityRejected(reason, message)


class Membership:
    """The consortium's orgs, their CA keys and revocations; authenticates certificates."""

    __slots__ = ("_suite", "_orgs", "_revocations", "_verified", "_verified_size_max", "_version")

    def __init__(
        self,
        suite: Suite | str,
        org_certificates: Iterable[OrgCertificate] = (),
        *,
        verified_cache_size_max: int = VERIFIED_CACHE_SIZE_MAX,
    ) -> None:
        """A membership of ``org_certificates`` (raises :class:`UpdateRejected` on a bad one)."""
        if not (verified_cache_size_max >= 1):
            raise InvariantBroken('invariant broken: verified_cache_size_max >= 1')
        self._suite = get_suite(suite) if isinstance(suite, str) else suite
        self._orgs: dict[str, _OrgState] = {}
        self._revocations: dict[tuple[str, int], Revocation] = {}
        self._verified: dict[bytes | Certificate, _Verified] = {}
        self._verified_size_max = verified_cache_size_max
        self._version = 0
        for org_certificate in org_certificates:
            self.add_org(org_certificate)

    def copy(self) -> Membership:
        """An independent membership with the same state (the verified cache is shared: its
        entries are permanent facts)."""
        other = Membership.__new__(Membership)
        other._suite = self._suite
        other._orgs = dict(self._orgs)
        other._revocations = dict(self._revocations)
        other._verified = self._verified
        other._verified_size_max = self._verified_size_max
        other._version = self._version
        return other

    # -- queries -----------------------------------------------------------------------------------

    @property
    def suite(self) -> Suite:
        return self._suite

    @property
    def version(self) -> int:
        """Counts the changes (orgs added or removed, revocations, rotations) made to this object."""
        return self._version

    def org_ids(self) -> tuple[str, ...]:
        """Member orgs (removed ones excluded), sorted."""
        return tuple(sorted(org_id for org_id, state in self._orgs.items() if not state.removed))

    def org_certificate(self, org_id: str) -> OrgCertificate | None:
        """The current CA certificate of member ``org_id`` (None when unknown or removed)."""
        state = self._orgs.get(org_id)
        return None if state is None or state.removed else state.ca

    def revocation(self, org_id: str, serial: int) -> Revocation | None:
        return self._revocations.get((org_id, serial))

    # -- the hot path ------------------------------------------------------------------------------

    def authenticate(
        self,
        certificate: Certificate | bytes,
        now_ms: int,
        required_role: Role | str | None = None,
    ) -> AuthenticatedIdentity:
        """The identity ``certificate`` (a record or its canonical bytes) vouches for at ``now_ms``,
        holding ``required_role`` if one is given; else :class:`IdentityRejected`."""
        if not (required_role is None or required_role in _ROLE_VALUES):
            raise InvariantBroken(f"unknown role {required_role!r}")
        verified = self._verified.get(certificate)
        if verified is None:
            verified = self._verify(certificate)
        cert = verified.certificate
        state = self._orgs.get(cert.org_id)
        if state is None or state.removed:
            raise self._org_rejection(cert.org_id, state, _describe(cert))
        if cert.issuer_key_id == state.key_id:
            ca = state.ca
        else:
            ca = self._retired_issuer(state, cert, now_ms)
        if not ca.not_before_ms <= now_ms < ca.not_after_ms:
            raise self._ca_time_rejection(ca, cert, now_ms)
        if not cert.not_before_ms <= now_ms < cert.not_after_ms:
            raise self._time_rejection(cert, now_ms)
        revocation = self._revocations.get(verified.revocation_key)
        if revocation is not None and now_ms >= revocation.revoked_at_ms:
            raise _reject(
                _R.REVOKED,
                f"{_describe(cert)} was revoked by its org at {format_time_ms(revocation.revoked_at_ms)} "
                f"(reason: {revocation.reason}); ask org {cert.org_id!r} for a new identity",
            )
        if required_role is not None and required_role not in cert.roles:
            roles = ", ".join(cert.roles)
            raise _reject(
                _R.MISSING_ROLE,
                f"{_describe(cert)} has roles [{roles}] but this needs role {str(required_role)!r}; "
                f"sign with an identity that has it, or ask org {cert.org_id!r} to issue one",
            )
        return verified.identity

    def authenticate_window(self, certificate: bytes, now_ms: int) -> tuple[AuthenticatedIdentity, int, int]:
        """:meth:`authenticate` at ``now_ms``, and the interval ``[from_ms, until_ms)`` around it
        over which the answer stays the same while this membership is unchanged (:attr:`version`):
        the certificate's and its issuer's validity, a retired issuer's cut-over, a revocation."""
        identity = self.authenticate(certificate, now_ms)
        verified = self._verified.get(certificate) or self._verify(certificate)
        cert = verified.certificate
        state = self._orgs[cert.org_id]
        if cert.issuer_key_id == state.key_id:
            ca, until_ms = state.ca, cert.not_after_ms
        else:
            ca, cutover_ms = state.retired[cert.issuer_key_id]
            until_ms = min(cert.not_after_ms, cutover_ms)
        until_ms = min(until_ms, ca.not_after_ms)
        revocation = self._revocations.get(verified.revocation_key)
        if revocation is not None:
            until_ms = min(until_ms, revocation.revoked_at_ms)
        from_ms = max(cert.not_before_ms, ca.not_before_ms)
        if not (from_ms <= now_ms < until_ms):
            raise InvariantBroken("authenticate accepted outside the window it depends on")
        return identity, from_ms, until_ms

    # -- the slow path: first sight of a certificate -----------------------------------------------

    def _verify(self, certificate: Certificate | bytes) -> _Verified:
        """Decode, check the suite, find the issuer key and verify the CA signature; cache."""
        if isinstance(certificate, Certificate):
            cert = certificate
        else:
            if not (isinstance(certificate, bytes)):
                raise InvariantBroken("pass a Certificate or its canonical bytes")
            try:
                cert = decode_record(certificate, Certificate)
            except CodecError as exc:
                raise _reject(
                    _R.MALFORMED,
                    f"not a canonical pilotchain certificate ({exc}); the bytes were damaged or are "
                    "something else: ask the signer's org for its certificate again",
                ) from exc
        if cert.suite != self._suite.name:
            raise _reject(
                _R.WRONG_SUITE,
                f"{_describe(cert)} is for crypto suite {cert.suite!r} but this network uses "
                f"{self._suite.name!r}; issue the identity from the org's {self._suite.name} CA",
            )
        state = self._orgs.get(cert.org_id)
        if state is None or state.removed:
            raise self._org_rejection(cert.org_id, state, _describe(cert))
        if cert.issuer_key_id == state.key_id:
            ca = state.ca
        elif cert.issuer_key_id in state.retired:
            ca = state.retired[cert.issuer_key_id][0]
        else:
            raise self._unknown_issuer(cert)
        if not verify_record_signature(self._suite, cert, ca.public_key_der):
            raise _reject(
                _R.BAD_CA_SIGNATURE,
                f"{_describe(cert)} is not validly signed by org {cert.org_id}'s CA key "
                f"{cert.issuer_key_id.hex()[:16]}: it was altered or forged; get a fresh copy from the org",
            )
        try:
            self._suite.public_key(cert.public_key_der)
        except KeyFormatError as exc:
            raise _reject(
                _R.MALFORMED,
                f"{_describe(cert)} carries a subject key that is not a {self._suite.name} key ({exc}); "
                "the org must re-issue it",
            ) from exc
        encoded_id = (
            self._suite.hash(certificate)
            if isinstance(certificate, bytes)
            else certificate_id(self._suite, cert)
        )
        identity = AuthenticatedIdentity(
            cert.org_id,
            cert.subject,
            cert.roles,
            cert.serial,
            cert.public_key_der,
            cert.not_before_ms,
            cert.not_after_ms,
            encoded_id,
        )
        verified = _Verified(cert, identity, (cert.org_id, cert.serial))
        if len(self._verified) >= self._verified_size_max:
            del self._verified[next(iter(self._verified))]
        self._verified[certificate] = verified
        return verified

    # -- rejections (built only when refusing, never on the accept path) ---------------------------

    def _org_rejection(self, org_id: str, state: _OrgState | None, what: str) -> IdentityRejected:
        if state is None:
            return _reject(
                _R.UNKNOWN_ORG,
                f"{what} names org {org_id!r}, which is not a member of this consortium "
                f"(members: {', '.join(self.org_ids()) or 'none'}); check the org id, or propose adding the org",
            )
        return _reject(
            _R.ORG_REMOVED,
            f"{what} names org {org_id!r}, which the consortium removed; its identities are no longer accepted",
        )

    def _unknown_issuer(self, cert: Certificate) -> IdentityRejected:
        return _reject(
            _R.UNKNOWN_ISSUER,
            f"{_describe(cert)} was issued by CA key {cert.issuer_key_id.hex()[:16]}, which is not a "
            f"CA key of org {cert.org_id!r} known to this consortium; re-issue it from the org's current CA",
        )

    def _retired_issuer(self, state: _OrgState, cert: Certificate, now_ms: int) -> OrgCertificate:
        retired = state.retired.get(cert.issuer_key_id)
        if retired is None:
            raise self._unknown_issuer(cert)
        ca, cutover_ms = retired
        if now_ms >= cutover_ms:
            raise _reject(
                _R.ISSUER_ROTATED,
                f"{_describe(cert)} was issued by org {cert.org_id}'s CA key generation {ca.serial}, "
                f"retired at {format_time_ms(cutover_ms)}; re-issue it with the org's current CA",
            )
        return ca

    def _ca_time_rejection(
        self, ca: OrgCertificate, cert: Certificate, now_ms: int
    ) -> IdentityRejected:
        if now_ms < ca.not_before_ms:
            return _reject(
                _R.CA_NOT_YET_VALID,
                f"org {ca.org_id}'s CA certificate is valid from {format_time_ms(ca.not_before_ms)}, "
                f"now is {format_time_ms(now_ms)}; check this node's clock",
            )
        return _reject(
            _R.CA_EXPIRED,
            f"org {ca.org_id}'s CA certificate expired at {format_time_ms(ca.not_after_ms)}, so "
            f"{_describe(cert)} is refused; the org must rotate its CA and re-issue its identities",
        )

    def _time_rejection(self, cert: Certificate, now_ms: int) -> IdentityRejected:
        if now_ms < cert.not_before_ms:
            return _reject(
                _R.NOT_YET_VALID,
                f"{_describe(cert)} is valid from {format_time_ms(cert.not_before_ms)}, now is "
                f"{format_time_ms(now_ms)}; wait, or check the signer's and this node's clocks",
            )
        return _reject(
            _R.EXPIRED,
            f"{_describe(cert)} expired at {format_time_ms(cert.not_after_ms)}; ask org "
            f"{cert.org_id!r} to issue a new one (pilotchain identity issue)",
        )

    # -- updates (validate everything, then change) ------------------------------------------------

    def _check_update_suite(self, suite_name: str, what: str) -> None:
        if suite_name != self._suite.name:
            raise UpdateRejected(
                _R.WRONG_SUITE,
                f"{what} is for suite {suite_name!r} but this network uses {self._suite.name!r}",
            )

    def _member_state(self, org_id: str, what: str) -> _OrgState:
        state = self._orgs.get(org_id)
        if state is None or state.removed:
            rejection = self._org_rejection(org_id, state, what)
            raise UpdateRejected(rejection.reason, rejection.message)
        return state

    def add_org(self, org_certificate: OrgCertificate) -> None:
        """Admit an org (genesis, or a governance decision). A removed org may be re-admitted
        with a new CA; its revocations stay in force."""
        what = f"org certificate for {org_certificate.org_id!r}"
        self._check_update_suite(org_certificate.suite, what)
        existing = self._orgs.get(org_certificate.org_id)
        if existing is not None and not existing.removed:
            raise UpdateRejected(
                _R.DUPLICATE_ORG,
                f"org {org_certificate.org_id!r} is already a member; rotate its CA instead of adding it again",
            )
        if existing is None and len(self._orgs) >= ORGS_MAX:
            raise UpdateRejected(_R.LIMIT_EXCEEDED, f"a consortium holds at most {ORGS_MAX} orgs")
        if not verify_record_signature(
            self._suite, org_certificate, org_certificate.public_key_der
        ):
            raise UpdateRejected(_R.BAD_CA_SIGNATURE, f"{what} is not correctly self-signed")
        new_key_id = key_id(self._suite, org_certificate.public_key_der)
        self._orgs[org_certificate.org_id] = _OrgState(org_certificate, new_key_id)
        self._version += 1

    def remove_org(self, org_id: str) -> None:
        """Expel an org (a governance decision): every identity it issued is refused from now on."""
        state = self._member_state(org_id, "removal")
        self._orgs[org_id] = _OrgState(state.ca, state.key_id, state.retired, removed=True)
        self._version += 1

    def apply_revocation(self, revocation: Revocation) -> None:
        """Record ``revocation``; it must be signed by the org's current CA key."""
        what = f"revocation of {revocation.org_id}/{revocation.serial}"
        self._check_update_suite(revocation.suite, what)
        state = self._member_state(revocation.org_id, what)
        if revocation.issuer_key_id != state.key_id:
            raise UpdateRejected(
                _R.UNKNOWN_ISSUER,
                f"{what} is signed by CA key {revocation.issuer_key_id.hex()[:16]}, not by the org's "
                "current CA key; sign it with the current CA",
            )
        if not verify_record_signature(self._suite, revocation, state.ca.public_key_der):
            raise UpdateRejected(
                _R.BAD_CA_SIGNATURE, f"{what} is not validly signed by the org's CA"
            )
        revocation_key = (revocation.org_id, revocation.serial)
        if revocation_key in self._revocations:
            raise UpdateRejected(_R.ALREADY_REVOKED, f"{what}: that certificate is already revoked")
        if len(self._revocations) >= REVOCATIONS_MAX:
            raise UpdateRejected(
                _R.LIMIT_EXCEEDED, f"membership holds at most {REVOCATIONS_MAX} revocations"
            )
        self._revocations[revocation_key] = revocation
        self._version += 1

    def apply_rotation(self, rotation: CaRotation, now_ms: int) -> None:
        """Move an org to a new CA key. The old key must sign the rotation and be valid at
        ``now_ms``; certificates it issued stay accepted until the cut-over."""
        what = f"CA rotation of org {rotation.org_id!r}"
        self._check_update_suite(rotation.suite, what)
        state = self._member_state(rotation.org_id, what)
        if rotation.old_key_id != state.key_id:
            raise UpdateRejected(
                _R.STALE_ROTATION,
                f"{what} rotates away from CA key {rotation.old_key_id.hex()[:16]}, which is not the org's "
                "current CA key (already applied, or out of order)",
            )
        if not state.ca.not_before_ms <= now_ms < state.ca.not_after_ms:
            raise UpdateRejected(
                _R.CA_EXPIRED,
                f"{what}: the old CA certificate is not valid now, so it cannot vouch for a successor; "
                "the consortium must remove the org and admit it again with its new CA",
            )
        if not verify_record_signature(self._suite, rotation, state.ca.public_key_der):
            raise UpdateRejected(
                _R.BAD_CA_SIGNATURE, f"{what} is not validly signed by the org's current CA key"
            )
        new_ca = rotation.new_ca
        if not verify_record_signature(self._suite, new_ca, new_ca.public_key_der):
            raise UpdateRejected(
                _R.BAD_CA_SIGNATURE, f"{what}: the new CA certificate is not correctly self-signed"
            )
        new_key_id = key_id(self._suite, new_ca.public_key_der)
        if new_key_id == state.key_id or new_key_id in state.retired:
            raise UpdateRejected(_R.STALE_ROTATION, f"{what} reuses a CA key the org already had")
        if new_ca.serial <= state.ca.serial:
            raise UpdateRejected(
                _R.STALE_ROTATION,
                f"{what}: the new CA generation {new_ca.serial} is not after the current {state.ca.serial}",
            )
        cutover_ms = min(rotation.cutover_ms, state.ca.not_after_ms)
        retired = {kid: entry for kid, entry in state.retired.items() if entry[1] > now_ms}
        if len(retired) >= RETIRED_KEYS_MAX:
            raise UpdateRejected(
                _R.LIMIT_EXCEEDED,
                f"{what}: org already has {RETIRED_KEYS_MAX} retired CA keys before their cut-over",
            )
        retired[state.key_id] = (state.ca, cutover_ms)
        self._orgs[rotation.org_id] = _OrgState(new_ca, new_key_id, retired)
        self._version += 1

    # -- expiry ------------------------------------------------------------------------------------

    def expiring(
        self,
        now_ms: int,
        within_ms: int,
        certificates: Iterable[Certificate] = (),
    ) -> list[ExpiryNotice]:
        """What expires before ``now_ms + within_ms`` (already expired included), soonest first:
        member org CAs, retired CA keys' cut-overs, and the given ``certificates`` (e.g. this node's
        own identity and the validator set's)."""
        if not (within_ms >= 0):
            raise InvariantBroken('invariant broken: within_ms >= 0')
        horizon_ms = now_ms + within_ms
        notices: list[ExpiryNotice] = []
        for org_id in self.org_ids():
            state = self._orgs[org_id]
            if state.ca.not_after_ms <= horizon_ms:
                notices.append(
                    ExpiryNotice(
                        ExpiryKind.ORG_CA,
                        org_id,
                        state.ca.display_name,
                        state.ca.serial,
                        state.ca.not_after_ms,
                    )
                )
            for ca, cutover_ms in state.retired.values():
                if now_ms < cutover_ms <= horizon_ms:
                    notices.append(
                        ExpiryNotice(
                            ExpiryKind.CA_CUTOVER, org_id, ca.display_name, ca.serial, cutover_ms
                        )
                    )
        for cert in certificates:
            if cert.not_after_ms <= horizon_ms:
                notices.append(
                    ExpiryNotice(
                        ExpiryKind.IDENTITY,
                        cert.org_id,
                        cert.subject,
                        cert.serial,
                        cert.not_after_ms,
                    )
                )
        notices.sort(
            key=lambda notice: (notice.not_after_ms, notice.kind, notice.org_id, notice.serial)
        )
        return notices

"""Membership: authentication, every rejection reason, revocation, rotation, caching, updates."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from pilotchain.codec import encode
from pilotchain.crypto import get_suite
from pilotchain.identity import (
    DAY_MS,
    CertificateAuthority,
    IdentityRejected,
    IssueRefused,
    Membership,
    RejectReason,
    Role,
    UpdateRejected,
    certificate_id,
)
from pilotchain.identity import membership as membership_module
from pilotchain.identity.records import Certificate, sign_record

from .helpers import T0, YEAR_MS, key

R = RejectReason


def rejected(membership: Membership, certificate, now_ms: int, role=None) -> IdentityRejected:
    with pytest.raises(IdentityRejected) as info:
        membership.authenticate(certificate, now_ms, role)
    assert info.value.message and info.value.reason.value in str(info.value)
    return info.value


# -- accepting -------------------------------------------------------------------------------------


def test_a_member_orgs_certificate_authenticates_as_record_and_as_bytes(world):
    membership = world.membership()
    cert = world.issue(roles=("client", "admin"))
    identity = membership.authenticate(cert, T0, Role.ADMIN)
    assert (identity.org_id, identity.subject, identity.serial) == ("bank-a", "alice", cert.serial)
    assert identity.roles == (Role.ADMIN, Role.CLIENT) and identity.has_role("client")
    assert identity.public_key_der == cert.public_key_der
    assert identity.certificate_id == certificate_id(world.suite, cert)
    from_bytes = membership.authenticate(encode(cert), T0, "client")
    assert from_bytes == identity
    assert membership.authenticate(encode(cert), T0) is from_bytes, "second sight is a cache hit"


def test_validity_is_half_open(world):
    membership = world.membership()
    cert = world.issue(valid_ms=DAY_MS)
    membership.authenticate(cert, T0)
    membership.authenticate(cert, T0 + DAY_MS - 1)
    assert rejected(membership, cert, T0 + DAY_MS).reason is R.EXPIRED


# -- every rejection reason ------------------------------------------------------------------------


def test_malformed_bytes(world):
    membership = world.membership()
    assert rejected(membership, b"\x00garbage", T0).reason is R.MALFORMED
    assert rejected(membership, encode(world.issue())[:-3], T0).reason is R.MALFORMED
    assert rejected(membership, encode(world.ca_a.org_certificate), T0).reason is R.MALFORMED


def test_wrong_suite_is_named_before_any_signature_check(world):
    membership = world.membership()
    cert = world.issue()
    other = "gm" if world.suite.name == "intl" else "intl"
    error = rejected(membership, msgspec.structs.replace(cert, suite=other), T0)
    assert error.reason is R.WRONG_SUITE and other in error.message


def test_cross_suite_certificate_is_refused(world):
    """A real certificate from a CA of the other suite, same org id, same subject."""
    other = get_suite("gm" if world.suite.name == "intl" else "intl")
    foreign_ca = CertificateAuthority.create(
        other,
        key(other, "bank-a CA"),
        org_id="bank-a",
        display_name="Bank A",
        now_ms=T0,
        valid_ms=YEAR_MS,
    )
    foreign = foreign_ca.issue(
        "alice", ["client"], key(other, "alice").public_key().to_der(), now_ms=T0, valid_ms=DAY_MS
    )
    assert rejected(world.membership(), encode(foreign), T0).reason is R.WRONG_SUITE
    with pytest.raises(UpdateRejected) as info:
        Membership(world.suite, [foreign_ca.org_certificate])
    assert info.value.reason is R.WRONG_SUITE


def test_unknown_org(world):
    outsider = CertificateAuthority.create(
        world.suite,
        key(world.suite, "z"),
        org_id="bank-z",
        display_name="Z",
        now_ms=T0,
        valid_ms=YEAR_MS,
    )
    error = rejected(world.membership(), world.issue(outsider), T0)
    assert error.reason is R.UNKNOWN_ORG and "bank-a, hospital-b" in error.message


def test_org_removed_even_after_the_certificate_was_cached(world):
    membership = world.membership()
    cert = world.issue()
    membership.authenticate(cert, T0)
    membership.remove_org("bank-a")
    assert rejected(membership, cert, T0).reason is R.ORG_REMOVED
    assert rejected(membership, world.issue(), T0).reason is R.ORG_REMOVED, "uncached path too"
    assert membership.org_ids() == ("hospital-b",)
    membership.authenticate(world.issue(world.ca_b), T0)


def test_unknown_issuer_an_impostor_ca_using_a_members_org_id(world):
    impostor = CertificateAuthority.create(
        world.suite,
        key(world.suite, "impostor"),
        org_id="bank-a",
        display_name="Bank A",
        now_ms=T0,
        valid_ms=YEAR_MS,
    )
    assert rejected(world.membership(), world.issue(impostor), T0).reason is R.UNKNOWN_ISSUER


def test_bad_ca_signature_forged_or_altered(world):
    membership = world.membership()
    cert = world.issue(roles=("client",))
    altered = msgspec.structs.replace(cert, roles=(Role.ADMIN, Role.CLIENT))
    assert rejected(membership, altered, T0).reason is R.BAD_CA_SIGNATURE
    # an impostor key claiming to be bank-a's CA key
    fields = msgspec.structs.astuple(cert)[:-1]
    forged = sign_record(Certificate, key(world.suite, "impostor"), *fields)
    assert forged.issuer_key_id == world.ca_a.key_id
    assert rejected(membership, forged, T0).reason is R.BAD_CA_SIGNATURE
    assert rejected(membership, encode(forged), T0).reason is R.BAD_CA_SIGNATURE


def test_subject_key_of_the_wrong_kind_is_malformed(world):
    membership = world.membership()
    fields = list(msgspec.structs.astuple(world.issue())[:-1])
    fields[6] = b"\x30\x03\x02\x01\x01"  # DER, but not a public key
    cert = sign_record(Certificate, world.ca_a.private_key, *fields)
    error = rejected(membership, cert, T0)
    assert error.reason is R.MALFORMED and "subject key" in error.message


def test_time_reasons_for_certificate_and_ca(world):
    membership = world.membership()
    later = world.issue(now_ms=T0 + DAY_MS, valid_ms=DAY_MS)
    assert rejected(membership, later, T0).reason is R.NOT_YET_VALID
    assert rejected(membership, later, T0 + 2 * DAY_MS).reason is R.EXPIRED
    cert = world.issue(valid_ms=10 * YEAR_MS)  # exactly as long as the CA
    assert rejected(membership, cert, T0 - 1).reason is R.CA_NOT_YET_VALID
    assert rejected(membership, cert, T0 + 10 * YEAR_MS).reason is R.CA_EXPIRED


def test_missing_role(world):
    membership = world.membership()
    cert = world.issue(roles=("client",))
    error = rejected(membership, cert, T0, Role.VALIDATOR)
    assert (
        error.reason is R.MISSING_ROLE
        and "validator" in error.message
        and "[client]" in error.message
    )


def test_revoked_from_the_revocation_time_on(world):
    membership = world.membership()
    cert = world.issue()
    other = world.issue(subject="bob")
    membership.authenticate(cert, T0)
    membership.apply_revocation(world.ca_a.revoke(cert.serial, "laptop stolen", T0 + 100))
    membership.authenticate(cert, T0 + 99)  # history before the revocation still verifies
    error = rejected(membership, cert, T0 + 100)
    assert error.reason is R.REVOKED and "laptop stolen" in error.message
    membership.authenticate(other, T0 + 100)
    assert membership.revocation("bank-a", cert.serial).reason == "laptop stolen"


def test_every_authentication_reason_is_exercised():
    """Keeps this file honest: a new reason code needs a test above."""
    authentication_reasons = set(R) - {
        R.DUPLICATE_ORG,
        R.ALREADY_REVOKED,
        R.STALE_ROTATION,
        R.LIMIT_EXCEEDED,
    }
    source = Path(__file__).read_text()
    assert all(f"R.{reason.name}" in source for reason in authentication_reasons)


# -- revocation updates ----------------------------------------------------------------------------


def test_revocation_updates_are_checked_and_leave_state_unchanged_when_refused(world):
    membership = world.membership()
    cert = world.issue()
    revocation = world.ca_a.revoke(cert.serial, "x", T0)
    with pytest.raises(UpdateRejected) as info:
        membership.apply_revocation(msgspec.structs.replace(revocation, serial=cert.serial + 1))
    assert info.value.reason is R.BAD_CA_SIGNATURE
    with pytest.raises(UpdateRejected) as info:  # hospital-b cannot revoke bank-a's certificates
        fields = msgspec.structs.astuple(revocation)[:-2]
        membership.apply_revocation(
            sign_record(type(revocation), world.ca_b.private_key, *fields, world.ca_b.key_id)
        )
    assert info.value.reason is R.UNKNOWN_ISSUER
    membership.authenticate(cert, T0)
    membership.apply_revocation(revocation)
    with pytest.raises(UpdateRejected) as info:
        membership.apply_revocation(revocation)
    assert info.value.reason is R.ALREADY_REVOKED


def test_ca_refuses_to_revoke_a_serial_it_never_issued(world):
    with pytest.raises(IssueRefused, match="never issued"):
        world.ca_a.revoke(1, "x", T0)


# -- rotation --------------------------------------------------------------------------------------


def _rotate(world, membership, *, cutover_ms):
    new_ca, rotation = world.ca_a.rotate(
        key(world.suite, "bank-a CA gen 2"),
        now_ms=T0 + DAY_MS,
        valid_ms=10 * YEAR_MS,
        cutover_ms=cutover_ms,
    )
    membership.apply_rotation(rotation, T0 + DAY_MS)
    return new_ca, rotation


def test_rotation_old_certificates_accepted_until_cutover_then_refused(world):
    membership = world.membership()
    old_cert = world.issue(valid_ms=YEAR_MS)
    cutover_ms = T0 + 30 * DAY_MS
    new_ca, _ = _rotate(world, membership, cutover_ms=cutover_ms)
    assert membership.org_certificate("bank-a") == new_ca.org_certificate
    assert new_ca.next_serial == world.ca_a.next_serial, "serials continue across rotations"
    membership.authenticate(old_cert, cutover_ms - 1)
    error = rejected(membership, old_cert, cutover_ms)
    assert error.reason is R.ISSUER_ROTATED and "re-issue" in error.message
    reissued = new_ca.issue(
        "alice", ["client"], old_cert.public_key_der, now_ms=T0 + DAY_MS, valid_ms=YEAR_MS
    )
    assert membership.authenticate(reissued, cutover_ms).subject == "alice"
    # the new CA revokes a certificate the old key issued (serials are unique per org)
    membership.apply_revocation(new_ca.revoke(old_cert.serial, "superseded", T0 + 2 * DAY_MS))
    assert rejected(membership, old_cert, T0 + 2 * DAY_MS).reason is R.REVOKED
    # and the old key can no longer revoke
    with pytest.raises(UpdateRejected) as info:
        membership.apply_revocation(world.ca_a.revoke(old_cert.serial, "x", T0 + 2 * DAY_MS))
    assert info.value.reason is R.UNKNOWN_ISSUER


def test_rotation_replayed_forged_or_reusing_a_key_is_refused_and_changes_nothing(world):
    membership = world.membership()
    new_ca, rotation = world.ca_a.rotate(
        key(world.suite, "gen 2"), now_ms=T0, valid_ms=YEAR_MS, cutover_ms=T0 + DAY_MS
    )
    before = membership.org_certificate("bank-a")
    forged = msgspec.structs.replace(rotation, cutover_ms=T0 + YEAR_MS)
    with pytest.raises(UpdateRejected) as info:
        membership.apply_rotation(forged, T0)
    assert info.value.reason is R.BAD_CA_SIGNATURE
    assert membership.org_certificate("bank-a") == before
    membership.apply_rotation(rotation, T0)
    with pytest.raises(UpdateRejected) as info:
        membership.apply_rotation(rotation, T0)
    assert info.value.reason is R.STALE_ROTATION
    # rotating back to the retired key
    _, back = new_ca.rotate(
        key(world.suite, "bank-a CA"), now_ms=T0, valid_ms=YEAR_MS, cutover_ms=T0
    )
    with pytest.raises(UpdateRejected) as info:
        membership.apply_rotation(back, T0)
    assert info.value.reason is R.STALE_ROTATION
    assert membership.org_certificate("bank-a") == new_ca.org_certificate


def test_an_expired_ca_cannot_rotate(world):
    membership = world.membership()
    _, rotation = world.ca_a.rotate(
        key(world.suite, "gen 2"), now_ms=T0, valid_ms=YEAR_MS, cutover_ms=T0
    )
    with pytest.raises(UpdateRejected) as info:
        membership.apply_rotation(rotation, T0 + 10 * YEAR_MS)
    assert info.value.reason is R.CA_EXPIRED


def test_ca_refuses_bad_issue_requests(world):
    public_key_der = key(world.suite, "alice").public_key().to_der()
    with pytest.raises(IssueRefused, match="unknown role 'boss'"):
        world.ca_a.issue("alice", ["boss"], public_key_der, now_ms=T0, valid_ms=DAY_MS)
    with pytest.raises(IssueRefused, match="outlive"):
        world.ca_a.issue("alice", ["client"], public_key_der, now_ms=T0, valid_ms=11 * YEAR_MS)
    with pytest.raises(IssueRefused, match="not a .* public key"):
        world.ca_a.issue("alice", ["client"], b"nope", now_ms=T0, valid_ms=DAY_MS)
    with pytest.raises(IssueRefused, match="printable"):
        world.ca_a.issue("al\x00ice", ["client"], public_key_der, now_ms=T0, valid_ms=DAY_MS)
    assert world.ca_a.next_serial == 1, "a refused request consumes no serial"
    with pytest.raises(IssueRefused, match="does not belong"):
        CertificateAuthority(world.suite, world.ca_b.private_key, world.ca_a.org_certificate)


# -- org updates, copies, cache bound --------------------------------------------------------------


def test_org_updates(world):
    membership = world.membership()
    with pytest.raises(UpdateRejected) as info:
        membership.add_org(world.ca_a.org_certificate)
    assert info.value.reason is R.DUPLICATE_ORG
    with pytest.raises(UpdateRejected) as info:
        Membership(
            world.suite, [msgspec.structs.replace(world.ca_a.org_certificate, display_name="Evil")]
        )
    assert info.value.reason is R.BAD_CA_SIGNATURE
    membership.remove_org("hospital-b")
    with pytest.raises(UpdateRejected) as info:
        membership.remove_org("hospital-b")
    assert info.value.reason is R.ORG_REMOVED
    membership.add_org(world.ca_b.org_certificate)  # re-admitted
    membership.authenticate(world.issue(world.ca_b), T0)


def test_limits(world, monkeypatch):
    monkeypatch.setattr(membership_module, "ORGS_MAX", 2)
    membership = world.membership()
    third = CertificateAuthority.create(
        world.suite,
        key(world.suite, "c"),
        org_id="bank-c",
        display_name="C",
        now_ms=T0,
        valid_ms=YEAR_MS,
    )
    with pytest.raises(UpdateRejected) as info:
        membership.add_org(third.org_certificate)
    assert info.value.reason is R.LIMIT_EXCEEDED


def test_copy_is_independent_but_shares_the_verified_cache(world):
    membership = world.membership()
    cert = world.issue()
    membership.authenticate(encode(cert), T0)
    fork = membership.copy()
    fork.apply_revocation(world.ca_a.revoke(cert.serial, "x", T0))
    assert rejected(fork, encode(cert), T0).reason is R.REVOKED
    membership.authenticate(encode(cert), T0)
    assert fork._verified is membership._verified


def test_verified_cache_is_bounded(world):
    membership = Membership(world.suite, [world.ca_a.org_certificate], verified_cache_size_max=2)
    certs = [world.issue(subject=f"user-{i}") for i in range(3)]
    for cert in certs:
        membership.authenticate(cert, T0)
    assert len(membership._verified) == 2
    assert all(membership.authenticate(cert, T0).subject == cert.subject for cert in certs)

"""Certificate formats: canonical round trips, armour, structure rules, tamper evidence."""

from __future__ import annotations

from functools import cache

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotchain.codec import CodecError, encode
from pilotchain.identity import (
    CaRotation,
    Certificate,
    IdentityRejected,
    OrgCertificate,
    Revocation,
    Role,
    armor,
    dearmor,
    decode_record,
    signing_bytes,
    verify_record_signature,
)
from pilotchain.identity.records import sign_record

from .helpers import SUITE_PARAMS, T0, key, shared_world


def test_every_record_round_trips_through_canonical_bytes_and_armour(world):
    cert = world.issue(roles=("validator", "admin"))
    revocation = world.ca_a.revoke(cert.serial, "key lost", T0 + 1)
    _, rotation = world.ca_a.rotate(
        key(world.suite, "bank-a CA 2"), now_ms=T0, valid_ms=10**10, cutover_ms=T0 + 5
    )
    for record in (world.ca_a.org_certificate, cert, revocation, rotation):
        data = encode(record)
        assert decode_record(data, type(record)) == record
        text = armor(record)
        assert dearmor(text, type(record)) == record
    assert cert.roles == (Role.ADMIN, Role.VALIDATOR)
    assert armor(cert).startswith("-----BEGIN PILOTCHAIN CERTIFICATE-----\n")


def test_dearmor_names_the_block_it_found_when_the_type_is_wrong(world):
    text = armor(world.ca_a.org_certificate)
    with pytest.raises(CodecError, match="found a PILOTCHAIN ORG CERTIFICATE block"):
        dearmor(text, Certificate)
    with pytest.raises(CodecError, match="base64"):
        dearmor(text.replace("\n", "\n!", 2), OrgCertificate)


def test_signatures_are_domain_separated_by_record_type(world):
    cert = world.issue()
    revocation = world.ca_a.revoke(cert.serial, "x", T0)
    prefixes = {
        signing_bytes(record).split(b"\x00", 1)[0]
        for record in (cert, revocation, world.ca_a.org_certificate)
    }
    assert len(prefixes) == 3
    assert all(prefix.startswith(b"pilotchain/identity/") for prefix in prefixes)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"roles": ("client", "admin")}, "sorted and unique"),
        ({"roles": ("admin", "admin")}, "sorted and unique"),
        ({"roles": ()}, "at least one role"),
        ({"org_id": "Bank_A"}, "org id"),
        ({"subject": "line\nbreak"}, "printable"),
        ({"subject": "x" * 129}, "printable"),
        ({"not_after_ms": T0}, "not_before_ms < not_after_ms"),
        ({"serial": 0}, "serial"),
        ({"issuer_key_id": b"short"}, "issuer key id"),
        ({"suite": "rot13"}, "unknown crypto suite"),
        ({"version": 2}, "version"),
    ],
)
def test_structure_rules_hold_on_construction_and_on_decode(world, change, message):
    cert = world.issue()
    with pytest.raises(ValueError, match=message):
        msgspec.structs.replace(cert, **change)
    # the same bytes from the wire are refused too
    fields = {**msgspec.structs.asdict(cert), **change}
    data = encode([fields[name] for name in Certificate.__struct_fields__])
    with pytest.raises(CodecError, match=message):
        decode_record(data, Certificate)


def test_non_canonical_and_oversized_bytes_are_refused(world):
    data = encode(world.issue())
    with pytest.raises(CodecError):
        decode_record(data + b"\x00", Certificate)
    with pytest.raises(CodecError, match="limit"):
        decode_record(b"\x90" * 5000, Certificate)


def test_a_rotation_cannot_carry_another_orgs_certificate(world):
    with pytest.raises(ValueError, match="same org"):
        sign_record(
            CaRotation,
            world.ca_a.private_key,
            1,
            world.suite.name,
            "bank-a",
            world.ca_a.key_id,
            world.ca_b.org_certificate,
            T0,
        )


@cache
def _tamper_targets(suite_name: str):
    """Fixed records to tamper with (built once: hypothesis needs the same input every run)."""
    world = shared_world(suite_name)
    cert = world.issue()
    signer_der = world.ca_a.org_certificate.public_key_der
    records = [cert, world.ca_a.revoke(cert.serial, "gone", T0), world.ca_a.org_certificate]
    return world.membership(), [(encode(record), record, signer_der) for record in records]


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_flipping_any_byte_breaks_decoding_or_verification(suite_name, data):
    membership, targets = _tamper_targets(suite_name)
    encoded, record, signer_der = data.draw(st.sampled_from(targets), label="record")
    tampered_bytes = bytearray(encoded)
    index = data.draw(st.integers(0, len(encoded) - 1), label="index")
    tampered_bytes[index] ^= data.draw(st.integers(1, 255), label="xor mask")
    if isinstance(record, Certificate):
        with pytest.raises(IdentityRejected):
            membership.authenticate(bytes(tampered_bytes), T0)
    try:
        tampered = decode_record(bytes(tampered_bytes), type(record))
    except CodecError:
        return
    assert tampered != record
    assert not verify_record_signature(membership.suite, tampered, signer_der)


def test_revocation_bytes_are_not_a_certificate(world):
    revocation = world.ca_a.revoke(world.issue().serial, "x", T0)
    with pytest.raises(CodecError):
        decode_record(encode(revocation), Certificate)
    assert isinstance(decode_record(encode(revocation), Revocation), Revocation)

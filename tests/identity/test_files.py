"""Identity files, CA directories and armoured records on disk: round trips and clear errors."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pilotchain.identity import (
    Certificate,
    IdentityBundle,
    IdentityFileError,
    Revocation,
    load_ca,
    load_identity,
    load_record,
    save_ca,
    save_identity,
    save_record,
)

from .helpers import T0, key


def bundle(world, subject="alice"):
    private_key = key(world.suite, subject)
    cert = world.ca_a.issue(
        subject, ["client"], private_key.public_key().to_der(), now_ms=T0, valid_ms=10**9
    )
    return IdentityBundle(world.suite, cert, private_key)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_identity_file_round_trip_is_private(world, tmp_path):
    path = tmp_path / "alice.json"
    original = bundle(world)
    save_identity(path, original)
    assert mode(path) == 0o600
    loaded = load_identity(path)
    assert loaded.certificate == original.certificate
    assert loaded.private_key.to_pem() == original.private_key.to_pem()
    content = json.loads(path.read_text())
    assert content["certificate"].startswith("-----BEGIN PILOTCHAIN CERTIFICATE-----")
    assert content["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert (content["suite"], content["org"]) == (world.suite.name, "bank-a")
    assert "PRIVATE" not in repr(loaded)
    with pytest.raises(IdentityFileError, match="already exists"):
        save_identity(path, original)
    save_identity(path, bundle(world, "bob"), overwrite=True)
    assert load_identity(path).certificate.subject == "bob"


def test_identity_file_errors_name_the_file_and_the_fix(world, tmp_path):
    path = tmp_path / "alice.json"
    with pytest.raises(IdentityFileError, match="does not exist"):
        load_identity(path)
    save_identity(path, bundle(world))
    os.chmod(path, 0o644)
    with pytest.raises(IdentityFileError, match=f"chmod 600 {path}"):
        load_identity(path)
    os.chmod(path, 0o600)
    content = json.loads(path.read_text())
    content["private_key"] = key(world.suite, "mallory").to_pem().decode()
    path.write_text(json.dumps(content))
    with pytest.raises(IdentityFileError, match="does not belong to the certificate"):
        load_identity(path)
    content["certificate"] = content["certificate"].replace("A", "B", 3)
    path.write_text(json.dumps(content))
    with pytest.raises(IdentityFileError, match="certificate is damaged"):
        load_identity(path)
    path.write_text("{not json")
    with pytest.raises(IdentityFileError, match="not a pilotchain identity file"):
        load_identity(path)


def test_ca_directory_round_trip_keeps_the_serial(world, tmp_path):
    ca_dir = tmp_path / "ca"
    world.issue()
    save_ca(ca_dir, world.ca_a)
    assert mode(ca_dir) == 0o700
    assert mode(ca_dir / "ca-key.pem") == 0o600 and mode(ca_dir / "ca.json") == 0o600
    assert mode(ca_dir / "org-certificate.pem") == 0o644
    loaded = load_ca(ca_dir)
    assert loaded.org_certificate == world.ca_a.org_certificate
    assert loaded.next_serial == 2 and loaded.key_id == world.ca_a.key_id
    with pytest.raises(IdentityFileError, match="already holds a CA"):
        save_ca(ca_dir, world.ca_a)
    with pytest.raises(IdentityFileError, match="ca-init"):
        load_ca(tmp_path / "elsewhere")


def test_armoured_records_on_disk(world, tmp_path):
    revocation = world.ca_a.revoke(world.issue().serial, "left", T0)
    save_record(tmp_path / "r.pem", revocation)
    assert load_record(tmp_path / "r.pem", Revocation) == revocation
    with pytest.raises(IdentityFileError, match="found a PILOTCHAIN REVOCATION block"):
        load_record(tmp_path / "r.pem", Certificate)

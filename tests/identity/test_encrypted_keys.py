"""Private keys at rest under a passphrase: encrypted PKCS#8 for both suites, interoperable with
openssl and ``cryptography``; wrong or missing passphrases are clear errors; a node starts with
an encrypted key given the passphrase."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from pilotchain.cli.identity_cmd import app
from pilotchain.crypto import get_suite
from pilotchain.identity import DAY_MS, CertificateAuthority
from pilotchain.identity.errors import IdentityFileError
from pilotchain.identity.files import (
    PASSPHRASE_ENV,
    IdentityBundle,
    PassphraseRequired,
    decrypt_private_key_pem,
    encrypt_private_key_pem,
    is_encrypted_key_file,
    key_passphrase,
    load_ca,
    load_identity,
    save_ca,
    save_identity,
)
from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.node.config import NodeConfigError

from .helpers import T0

PASS = b"correct horse battery staple"


def _ca(suite_name: str) -> CertificateAuthority:
    suite = get_suite(suite_name)
    return CertificateAuthority.create(suite, suite.generate_private_key(), org_id="bank-a",
                                       display_name="Bank A", now_ms=T0, valid_ms=365 * DAY_MS)


def _bundle(ca: CertificateAuthority) -> IdentityBundle:
    key = ca.suite.generate_private_key()
    cert = ca.issue("alice", ("client",), key.public_key().to_der(), now_ms=T0, valid_ms=DAY_MS)
    return IdentityBundle(ca.suite, cert, key)


def test_identity_round_trip_and_errors(tmp_path: Path, suite_name: str) -> None:
    bundle = _bundle(_ca(suite_name))
    path = tmp_path / "alice.id"
    save_identity(path, bundle, passphrase=PASS)
    text = path.read_text()
    assert is_encrypted_key_file(text) and "BEGIN PRIVATE KEY" not in text
    loaded = load_identity(path, passphrase=PASS)
    assert loaded.private_key.to_pem() == bundle.private_key.to_pem()
    with pytest.raises(PassphraseRequired, match=PASSPHRASE_ENV):
        load_identity(path)
    with pytest.raises(IdentityFileError, match="wrong passphrase"):
        load_identity(path, passphrase=b"not it")
    # an unencrypted file still loads, with or without a passphrase
    save_identity(tmp_path / "plain.id", bundle)
    assert load_identity(tmp_path / "plain.id", passphrase=PASS).certificate == bundle.certificate


def test_ca_round_trip_issue_and_rotation_keep_the_key_encrypted(tmp_path: Path, suite_name: str) -> None:
    ca = _ca(suite_name)
    save_ca(tmp_path / "ca", ca, passphrase=PASS)
    assert is_encrypted_key_file((tmp_path / "ca" / "ca-key.pem").read_text())
    with pytest.raises(PassphraseRequired):
        load_ca(tmp_path / "ca")
    loaded = load_ca(tmp_path / "ca", passphrase=PASS)
    assert loaded.key_id == ca.key_id
    loaded.issue("bob", ("client",), ca.suite.generate_private_key().public_key().to_der(), now_ms=T0, valid_ms=DAY_MS)
    save_ca(tmp_path / "ca", loaded, overwrite=True, passphrase=PASS)  # an issue: same key, no retired copy
    assert not list((tmp_path / "ca").glob("ca-key.gen*.pem"))
    rotated, _ = loaded.rotate(ca.suite.generate_private_key(), now_ms=T0, valid_ms=DAY_MS, cutover_ms=T0 + 1)
    save_ca(tmp_path / "ca", rotated, overwrite=True, passphrase=PASS)
    retired = tmp_path / "ca" / "ca-key.gen1.pem"
    assert is_encrypted_key_file(retired.read_text())
    assert load_ca(tmp_path / "ca", passphrase=PASS).key_id == rotated.key_id


def test_interoperates_with_openssl_and_cryptography(tmp_path: Path, suite_name: str) -> None:
    key = get_suite(suite_name).generate_private_key()
    encrypted = encrypt_private_key_pem(key.to_pem(), PASS)
    if suite_name == "intl":  # cryptography reads ours and we read cryptography's
        assert serialization.load_pem_private_key(encrypted, PASS) is not None
        theirs = serialization.load_pem_private_key(key.to_pem(), None).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASS))
        assert decrypt_private_key_pem(theirs.decode(), PASS) == key.to_pem()
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    (tmp_path / "k.pem").write_bytes(encrypted)
    out = subprocess.run(["openssl", "pkcs8", "-in", str(tmp_path / "k.pem"), "-passin", "pass:" + PASS.decode()],
                         capture_output=True, check=True, timeout=30)
    assert out.stdout == key.to_pem()
    theirs = subprocess.run(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", "pass:pw"],
                            input=key.to_pem(), capture_output=True, check=True, timeout=30).stdout
    assert decrypt_private_key_pem(theirs.decode(), b"pw") == key.to_pem()


def test_other_pbes_shapes_and_damage_are_clear_errors(tmp_path: Path) -> None:
    pem = get_suite("intl").generate_private_key().to_pem()
    if shutil.which("openssl") is not None:
        des = subprocess.run(["openssl", "pkcs8", "-topk8", "-v2", "des3", "-passout", "pass:pw"],
                             input=pem, capture_output=True, check=True, timeout=30).stdout
        with pytest.raises(IdentityFileError, match="openssl pkcs8"):
            decrypt_private_key_pem(des.decode(), b"pw")
    with pytest.raises(IdentityFileError, match="not valid base64|damaged"):
        decrypt_private_key_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", b"pw")


def test_passphrase_sources(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    assert key_passphrase(secret, environ={}) == b"s3cret"
    assert key_passphrase(None, environ={PASSPHRASE_ENV: "from-env"}) == b"from-env"
    assert key_passphrase(None, environ={}) is None
    secret.chmod(0o644)
    with pytest.raises(IdentityFileError, match="chmod 600"):
        key_passphrase(secret, environ={})


def test_cli_encrypts_with_a_passphrase_file_and_refuses_without(tmp_path: Path, suite_name: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    runner = CliRunner()
    secret = tmp_path / "pass"
    secret.write_text(PASS.decode() + "\n")
    secret.chmod(0o600)
    ca, alice = tmp_path / "ca", tmp_path / "alice.id"

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, [*args, "--now-ms", str(T0)])
        assert (result.exit_code == 0) is ok, result.output
        assert "Traceback" not in result.output
        return result.output

    run("ca-init", "--org", "bank-a", "--name", "Bank A", "--suite", suite_name, "--out", str(ca),
        "--passphrase-file", str(secret))
    out = run("issue", "--ca", str(ca), "--name", "alice", "--role", "client", "--out", str(alice), ok=False)
    assert "encrypted" in out and PASSPHRASE_ENV in out
    run("issue", "--ca", str(ca), "--name", "alice", "--role", "client", "--out", str(alice),
        "--passphrase-file", str(secret))
    assert load_identity(alice, passphrase=PASS).certificate.subject == "alice"
    assert "alice" in run("show", str(alice), "--json")  # the certificate is public: no passphrase
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    out = run("revoke", "--ca", str(ca), "--serial", "1", "--reason", "test", "--out", str(tmp_path / "r.pem"), ok=False)
    assert "wrong passphrase" in out
    monkeypatch.setenv(PASSPHRASE_ENV, PASS.decode())
    run("revoke", "--ca", str(ca), "--serial", "1", "--reason", "test", "--out", str(tmp_path / "r.pem"))


def test_node_loads_an_encrypted_key_from_env_or_passphrase_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pilotchain.node.daemon import ConsensusNode

    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    init_network(tmp_path / "net", orgs=parse_orgs("1"), validators=1, now_ms=int(time.time() * 1000))
    home = tmp_path / "net" / "nodes" / "bigdata-bureau-v1"
    save_identity(home / "node.id", load_identity(home / "node.id"), overwrite=True, passphrase=PASS)
    with pytest.raises(NodeConfigError, match="encrypted"):
        ConsensusNode.from_home(home)
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(NodeConfigError, match="wrong passphrase"):
        ConsensusNode.from_home(home)
    monkeypatch.setenv(PASSPHRASE_ENV, PASS.decode())
    node = ConsensusNode.from_home(home)
    node.ledger.close()
    monkeypatch.delenv(PASSPHRASE_ENV)
    secret = tmp_path / "node.pass"
    secret.write_text(PASS.decode())
    secret.chmod(0o600)
    config = json.loads((home / "node.json").read_text())
    config["passphrase_file"] = str(secret)  # absolute: outside the home
    (home / "node.json").write_text(json.dumps(config))
    node = ConsensusNode.from_home(home)
    node.ledger.close()


def test_the_sdk_opens_an_encrypted_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pilotchain.sdk import Identity, IdentityError

    bundle = _bundle(_ca("intl"))
    path = tmp_path / "client.id"
    save_identity(path, bundle, passphrase=PASS)
    monkeypatch.delenv("PILOTCHAIN_KEY_PASSPHRASE", raising=False)
    with pytest.raises(IdentityError, match="passphrase"):
        Identity.load(path)
    assert Identity.load(path, passphrase=PASS.decode()).certificate == bundle.certificate
    monkeypatch.setenv("PILOTCHAIN_KEY_PASSPHRASE", PASS.decode())
    assert Identity.load(path).certificate_bytes == Identity.load(path, passphrase=PASS).certificate_bytes
    with pytest.raises(IdentityError):
        Identity.load(path, passphrase="wrong passphrase")

"""`pilotchain identity` through Typer's CliRunner, on a pretend clock (--now-ms)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pilotchain.cli.identity_cmd import app
from pilotchain.identity import DAY_MS, Membership, Revocation, load_identity, load_record
from pilotchain.identity.files import CA_CERTIFICATE_FILE

from .helpers import T0


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(app, [*args, "--now-ms", str(T0)])
        assert (result.exit_code == 0) is ok, result.output
        assert "PRIVATE KEY" not in result.output, "keys are never printed"
        return result

    return invoke


def test_ca_init_issue_show_revoke(run, tmp_path, suite_name):
    ca, alice = tmp_path / "ca", tmp_path / "alice.json"
    run("ca-init", "--org", "bank-a", "--name", "Bank A", "--suite", suite_name, "--out", str(ca))
    run(
        "issue",
        "--ca",
        str(ca),
        "--name",
        "alice",
        "--role",
        "client",
        "--role",
        "admin",
        "--valid-days",
        "20",
        "--out",
        str(alice),
    )
    shown = run("show", str(alice))
    assert "alice" in shown.output and "admin, client" in shown.output and "20" in shown.output
    assert "expires in 20 days" in shown.output  # the < 30 days warning
    summary = json.loads(run("show", str(alice), "--json").output)
    assert summary["roles"] == ["admin", "client"] and summary["days_left"] == 20
    assert (
        summary["org"] == "bank-a" and summary["suite"] == suite_name and summary["has_private_key"]
    )
    org = json.loads(run("show", str(ca / CA_CERTIFICATE_FILE), "--json").output)
    assert org["kind"] == "org-certificate" and org["days_left"] == 3650

    # what the CLI wrote is what the chain accepts
    from pilotchain.identity import OrgCertificate

    membership = Membership(suite_name, [load_record(ca / CA_CERTIFICATE_FILE, OrgCertificate)])
    identity = membership.authenticate(load_identity(alice).certificate, T0, "admin")
    run(
        "revoke",
        "--ca",
        str(ca),
        "--serial",
        str(identity.serial),
        "--reason",
        "left [ops]",
        "--out",
        str(tmp_path / "rev.pem"),
    )
    membership.apply_revocation(load_record(tmp_path / "rev.pem", Revocation))
    assert membership.revocation("bank-a", identity.serial).reason == "left [ops]"


def test_serials_are_persisted_between_issues(run, tmp_path):
    ca = tmp_path / "ca"
    run("ca-init", "--org", "bank-a", "--name", "Bank A", "--out", str(ca))
    for name in ("a", "b"):
        run(
            "issue",
            "--ca",
            str(ca),
            "--name",
            name,
            "--role",
            "client",
            "--out",
            str(tmp_path / f"{name}.json"),
        )
    assert [load_identity(tmp_path / f"{n}.json").certificate.serial for n in "ab"] == [1, 2]


def test_errors_are_one_clear_line_and_exit_1(run, tmp_path):
    ca = tmp_path / "ca"
    result = run("ca-init", "--org", "Bank_A", "--name", "x", "--out", str(ca), ok=False)
    assert "org id 'Bank_A' is not valid" in result.output
    run("ca-init", "--org", "bank-a", "--name", "Bank A", "--out", str(ca))
    result = run(
        "issue",
        "--ca",
        str(ca),
        "--name",
        "x",
        "--role",
        "boss",
        "--out",
        str(tmp_path / "x.json"),
        ok=False,
    )
    assert "unknown role 'boss'" in result.output and "Traceback" not in result.output
    result = run(
        "issue",
        "--ca",
        str(ca),
        "--name",
        "x",
        "--role",
        "client",
        "--valid-days",
        "4000",
        "--out",
        str(tmp_path / "x.json"),
        ok=False,
    )
    assert "outlive" in result.output
    assert (
        "never issued"
        in run(
            "revoke",
            "--ca",
            str(ca),
            "--serial",
            "9",
            "--reason",
            "x",
            "--out",
            str(tmp_path / "r.pem"),
            ok=False,
        ).output
    )
    assert (
        "not a CA directory"
        in run(
            "revoke",
            "--ca",
            str(tmp_path),
            "--serial",
            "1",
            "--reason",
            "x",
            "--out",
            str(tmp_path / "r.pem"),
            ok=False,
        ).output
    )
    assert "does not exist" in run("show", str(tmp_path / "none.json"), ok=False).output


def test_show_marks_an_expired_certificate(tmp_path):
    runner = CliRunner()
    ca, alice = tmp_path / "ca", tmp_path / "alice.json"
    runner.invoke(
        app, ["ca-init", "--org", "bank-a", "--name", "A", "--out", str(ca), "--now-ms", str(T0)]
    )
    runner.invoke(
        app,
        [
            "issue",
            "--ca",
            str(ca),
            "--name",
            "alice",
            "--role",
            "client",
            "--valid-days",
            "1",
            "--out",
            str(alice),
            "--now-ms",
            str(T0),
        ],
    )
    result = runner.invoke(app, ["show", str(alice), "--now-ms", str(T0 + 2 * DAY_MS)])
    assert result.exit_code == 0 and "EXPIRED" in result.output


def test_rotate_keeps_the_old_key_and_the_chain_applies_the_rotation(run, tmp_path):
    from pilotchain.identity import CaRotation, IdentityRejected, OrgCertificate, RejectReason

    ca = tmp_path / "ca"
    run("ca-init", "--org", "bank-a", "--name", "Bank A", "--out", str(ca))
    genesis_org = load_record(ca / CA_CERTIFICATE_FILE, OrgCertificate)
    run(
        "issue",
        "--ca",
        str(ca),
        "--name",
        "alice",
        "--role",
        "client",
        "--out",
        str(tmp_path / "a.json"),
    )
    result = run(
        "rotate", "--ca", str(ca), "--cutover-days", "30", "--out", str(tmp_path / "rot.pem")
    )
    assert "generation 2" in result.output
    assert (ca / "ca-key.gen1.pem").exists() and oct(
        (ca / "ca-key.gen1.pem").stat().st_mode & 0o777
    ) == "0o600"
    run(
        "issue",
        "--ca",
        str(ca),
        "--name",
        "bob",
        "--role",
        "client",
        "--out",
        str(tmp_path / "b.json"),
    )

    membership = Membership("intl", [genesis_org])
    membership.apply_rotation(load_record(tmp_path / "rot.pem", CaRotation), T0)
    alice = load_identity(tmp_path / "a.json").certificate
    bob = load_identity(tmp_path / "b.json").certificate
    assert (alice.serial, bob.serial) == (1, 2)
    membership.authenticate(alice, T0 + 30 * DAY_MS - 1)
    membership.authenticate(bob, T0 + 30 * DAY_MS)
    with pytest.raises(IdentityRejected) as info:
        membership.authenticate(alice, T0 + 30 * DAY_MS)
    assert info.value.reason is RejectReason.ISSUER_ROTATED

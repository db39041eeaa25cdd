"""`pilotchain crypto ...`: the exact command shapes, exit codes, files and messages."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilotchain.cli.crypto_cmd import public_key_path_for
from pilotchain.cli.main import app
from pilotchain.crypto import get_suite

runner = CliRunner()


def run(*arguments: str | Path, stdin: bytes | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["crypto", *map(str, arguments)], input=stdin)
    # user errors exit through typer.Exit; anything else escaping is a bug (a traceback)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def fails(*arguments: str | Path) -> str:
    """Run a command that must fail: exit status 1 and one line starting with "error: "."""
    code, output = run(*arguments)
    assert code == 1
    assert output.count("\n") == 1 and output.startswith("error: "), output
    return output


@pytest.fixture(params=["intl", "gm"])
def suite_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def keypair(tmp_path: Path, suite_name: str) -> tuple[Path, Path]:
    key = tmp_path / "node.pem"
    code, output = run("keygen", "--suite", suite_name, "--out", key)
    assert code == 0, output
    return key, tmp_path / "node.pub.pem"


def test_public_key_path_naming() -> None:
    assert public_key_path_for(Path("a/node.pem")) == Path("a/node.pub.pem")
    assert public_key_path_for(Path("node.key")) == Path("node.key.pub.pem")


def test_keygen_writes_both_files_private_mode_0600(tmp_path: Path, suite_name: str) -> None:
    key = tmp_path / "node.pem"
    code, output = run("keygen", "--suite", suite_name, "--out", key)
    assert code == 0
    assert str(key) in output and "node.pub.pem" in output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    suite = get_suite(suite_name)
    private = suite.load_private_key_pem(key.read_bytes())
    assert (
        suite.load_public_key_pem((tmp_path / "node.pub.pem").read_bytes()).to_der()
        == private.public_key().to_der()
    )


def test_keygen_refuses_to_overwrite_unless_forced(
    keypair: tuple[Path, Path], suite_name: str
) -> None:
    key, public = keypair
    before = key.read_bytes()
    code, output = run("keygen", "--suite", suite_name, "--out", key)
    assert code == 1 and "already exists" in output and "--force" in output
    assert key.read_bytes() == before
    key.chmod(0o644)
    code, _ = run("keygen", "--suite", suite_name, "--out", key, "--force")
    assert code == 0 and key.read_bytes() != before
    assert stat.S_IMODE(key.stat().st_mode) == 0o600  # --force also restores the mode


def test_keygen_refuses_when_only_the_public_file_exists(tmp_path: Path, suite_name: str) -> None:
    (tmp_path / "node.pub.pem").write_text("keep me")
    code, output = run("keygen", "--suite", suite_name, "--out", tmp_path / "node.pem")
    assert code == 1 and "node.pub.pem already exists" in output
    assert not (tmp_path / "node.pem").exists()


def test_json_outputs(tmp_path: Path, keypair: tuple[Path, Path], suite_name: str) -> None:
    key, public = keypair
    message = tmp_path / "m"
    message.write_bytes(b"hello")
    code, output = run("pubkey", "--suite", suite_name, "--key", key, "--json")
    document = json.loads(output)
    assert code == 0 and document["ok"] and document["public_key_pem"] == public.read_text()
    code, output = run(
        "sign",
        "--suite",
        suite_name,
        "--key",
        key,
        "--in",
        message,
        "--out",
        tmp_path / "s",
        "--json",
    )
    assert (
        code == 0
        and bytes.fromhex(json.loads(output)["signature_hex"]) == (tmp_path / "s").read_bytes()
    )
    code, output = run(
        "verify",
        "--suite",
        suite_name,
        "--pubkey",
        public,
        "--in",
        message,
        "--sig",
        tmp_path / "s",
        "--json",
    )
    assert code == 0 and json.loads(output) == {"ok": True, "suite": suite_name, "valid": True}
    code, output = run("hash", "--suite", suite_name, message, "--json")
    assert (
        code == 0 and json.loads(output)["digest_hex"] == get_suite(suite_name).hash(b"hello").hex()
    )
    code, output = run("keygen", "--suite", suite_name, "--out", key, "--json")
    document = json.loads(output)
    assert code == 1 and document["ok"] is False and "already exists" in document["error"]


def test_pubkey_prints_pem_or_writes_it(
    tmp_path: Path, keypair: tuple[Path, Path], suite_name: str
) -> None:
    key, public = keypair
    code, output = run("pubkey", "--suite", suite_name, "--key", key)
    assert code == 0 and output == public.read_text()
    code, _ = run("pubkey", "--suite", suite_name, "--key", key, "--out", tmp_path / "p.pem")
    assert code == 0 and (tmp_path / "p.pem").read_bytes() == public.read_bytes()


def test_sign_verify_and_every_way_to_fail(
    tmp_path: Path, keypair: tuple[Path, Path], suite_name: str
) -> None:
    key, public = keypair
    message, signature = tmp_path / "m", tmp_path / "m.sig"
    message.write_bytes(b"payload")
    assert (
        run("sign", "--suite", suite_name, "--key", key, "--in", message, "--out", signature)[0]
        == 0
    )
    assert run(
        "verify", "--suite", suite_name, "--pubkey", public, "--in", message, "--sig", signature
    ) == (0, "valid\n")

    def verify_fails(*arguments: str | Path) -> str:
        return fails("verify", "--suite", suite_name, *arguments)

    base = ("--pubkey", public, "--in", message, "--sig", signature)
    message.write_bytes(b"payload!")
    assert "invalid" in verify_fails(*base)
    message.write_bytes(b"payload")
    signature.write_bytes(b"\x00" * 10)
    assert "invalid" in verify_fails(*base)
    signature.write_bytes(b"")
    assert "invalid" in verify_fails(*base)
    assert "cannot read signature" in verify_fails(
        "--pubkey", public, "--in", message, "--sig", tmp_path / "missing"
    )
    assert "cannot read signed file" in verify_fails(
        "--pubkey", public, "--in", tmp_path, "--sig", signature
    )
    assert "is a private key" in verify_fails("--pubkey", key, "--in", message, "--sig", signature)
    other = "gm" if suite_name == "intl" else "intl"
    assert run("keygen", "--suite", other, "--out", tmp_path / "other.pem")[0] == 0
    assert f"not a public key of the {suite_name} suite" in verify_fails(
        "--pubkey", tmp_path / "other.pub.pem", "--in", message, "--sig", signature
    )
    (tmp_path / "big.sig").write_bytes(b"\x00" * 5000)
    assert "larger than any signature" in verify_fails(
        "--pubkey", public, "--in", message, "--sig", tmp_path / "big.sig"
    )


def test_sign_errors(tmp_path: Path, keypair: tuple[Path, Path], suite_name: str) -> None:
    key, public = keypair
    message = tmp_path / "m"
    message.write_bytes(b"x")
    code, output = run(
        "sign", "--suite", suite_name, "--key", public, "--in", message, "--out", tmp_path / "s"
    )
    assert code == 1 and "not a private key" in output and "keygen" in output
    code, output = run(
        "sign",
        "--suite",
        suite_name,
        "--key",
        key,
        "--in",
        tmp_path / "nope",
        "--out",
        tmp_path / "s",
    )
    assert code == 1 and "No such file" in output
    (tmp_path / "s").write_bytes(b"old")
    code, output = run(
        "sign", "--suite", suite_name, "--key", key, "--in", message, "--out", tmp_path / "s"
    )
    assert code == 1 and "--force" in output and (tmp_path / "s").read_bytes() == b"old"


def test_hash_file_and_stdin(tmp_path: Path, suite_name: str) -> None:
    data = b"0123456789" * 300_000  # several read chunks
    (tmp_path / "f").write_bytes(data)
    expected = get_suite(suite_name).hash(data).hex() + "\n"
    assert run("hash", "--suite", suite_name, tmp_path / "f") == (0, expected)
    assert run("hash", "--suite", suite_name, "-", stdin=data) == (0, expected)
    code, output = run("hash", "--suite", suite_name, tmp_path / "missing")
    assert code == 1 and "cannot read" in output


def test_unknown_suite_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["crypto", "keygen", "--suite", "rsa", "--out", str(tmp_path / "k.pem")]
    )
    assert result.exit_code == 2 and "intl" in result.output and "gm" in result.output


# -- encrypt / decrypt ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 255, 256, 1024 * 1024])
def test_encrypt_decrypt_round_trip(
    tmp_path: Path, keypair: tuple[Path, Path], suite_name: str, size: int
) -> None:
    key, public = keypair
    plain, sealed, back = tmp_path / "plain", tmp_path / "plain.sealed", tmp_path / "back"
    plain.write_bytes(bytes(index % 253 for index in range(size)))
    code, output = run("encrypt", "-s", suite_name, "-p", public, "-i", plain, "-o", sealed)
    assert code == 0 and f"wrote {sealed}" in output
    bare = suite_name == "gm" and 1 <= size <= 255
    assert sealed.read_bytes()[:1] == (b"\x30" if bare else b"P")
    code, output = run("decrypt", "-s", suite_name, "-k", key, "-i", sealed, "-o", back)
    assert code == 0 and f"wrote {back} ({size} bytes" in output
    assert back.read_bytes() == plain.read_bytes()
    assert stat.S_IMODE(back.stat().st_mode) == 0o600


def test_encrypt_decrypt_json(tmp_path: Path, keypair: tuple[Path, Path], suite_name: str) -> None:
    key, public = keypair
    plain, sealed = tmp_path / "plain", tmp_path / "sealed"
    plain.write_bytes(b"data key")
    code, output = run(
        "encrypt", "-s", suite_name, "-p", public, "-i", plain, "-o", sealed, "--json"
    )
    assert code == 0 and json.loads(output) == {
        "ok": True,
        "suite": suite_name,
        "out": str(sealed),
        "plaintext_bytes": 8,
        "sealed_bytes": sealed.stat().st_size,
        "format": "sm2-der" if suite_name == "gm" else "envelope-v1",
    }
    code, output = run(
        "decrypt", "-s", suite_name, "-k", key, "-i", sealed, "-o", tmp_path / "b", "--json"
    )
    assert code == 0 and json.loads(output) == {
        "ok": True,
        "suite": suite_name,
        "out": str(tmp_path / "b"),
        "plaintext_bytes": 8,
    }
    code, output = run(
        "decrypt", "-s", suite_name, "-k", key, "-i", plain, "-o", tmp_path / "c", "--json"
    )
    document = json.loads(output)
    assert code == 1 and document["ok"] is False and "not a pilotchain sealed" in document["error"]
    assert document["hint"]


def test_encrypt_decrypt_every_way_to_fail(
    tmp_path: Path, keypair: tuple[Path, Path], suite_name: str
) -> None:
    key, public = keypair
    plain, sealed = tmp_path / "plain", tmp_path / "sealed"
    plain.write_bytes(b"secret")
    assert run("encrypt", "-s", suite_name, "-p", public, "-i", plain, "-o", sealed)[0] == 0

    def decrypt_fails(*arguments: str | Path) -> str:
        return fails("decrypt", "-s", suite_name, *arguments, "-o", tmp_path / "out")

    assert run("keygen", "-s", suite_name, "--out", tmp_path / "stranger.pem")[0] == 0
    wrong = decrypt_fails("-k", tmp_path / "stranger.pem", "-i", sealed)
    assert "cannot decrypt" in wrong and "pilotchain crypto pubkey" in wrong
    changed = bytearray(sealed.read_bytes())
    changed[-1] ^= 0x01
    (tmp_path / "changed").write_bytes(bytes(changed))
    assert "cannot decrypt" in decrypt_fails("-k", key, "-i", tmp_path / "changed")
    (tmp_path / "cut").write_bytes(sealed.read_bytes()[:3])
    cut = decrypt_fails("-k", key, "-i", tmp_path / "cut")  # "PCS" / a DER fragment
    assert ("truncated to 3 bytes" if suite_name == "intl" else "cannot decrypt") in cut
    assert "is a public key, not a private key" in decrypt_fails("-k", public, "-i", sealed)
    assert "cannot read encrypted file" in decrypt_fails("-k", key, "-i", tmp_path / "missing")
    other = "gm" if suite_name == "intl" else "intl"
    assert run("keygen", "-s", other, "--out", tmp_path / "other.pem")[0] == 0
    assert f"not a private key of the {suite_name} suite" in decrypt_fails(
        "-k", tmp_path / "other.pem", "-i", sealed
    )
    code, output = run(
        "decrypt", "-s", other, "-k", tmp_path / "other.pem", "-i", sealed, "-o", tmp_path / "o"
    )
    assert code == 1 and f"sealed for the {suite_name} suite" in output
    assert f"pass --suite {suite_name}" in output
    assert "is a private key" in fails(
        "encrypt", "-s", suite_name, "-p", key, "-i", plain, "-o", tmp_path / "x"
    )
    other_public = tmp_path / "other.pub.pem"
    assert f"not a public key of the {suite_name} suite" in fails(
        "encrypt", "-s", suite_name, "-p", other_public, "-i", plain, "-o", tmp_path / "x"
    )
    assert "--force" in fails("encrypt", "-s", suite_name, "-p", public, "-i", plain, "-o", sealed)
    assert not (tmp_path / "out").exists()


def test_encrypt_and_decrypt_help_say_what_they_take() -> None:
    for command, words in [
        ("encrypt", ["--pubkey", "X25519 or Ed25519", "SM2", "openssl pkeyutl -decrypt"]),
        ("decrypt", ["--key", "openssl genpkey -algorithm SM2", "mode 0600"]),
    ]:
        code, output = run(command, "--help")
        assert code == 0
        flat = " ".join(output.replace("│", " ").split())
        for word in words:
            assert word in flat, (command, word)

"""Interop with the `openssl` command line, both ways, for both suites.

What pilotchain signs must verify with `openssl`, and what `openssl` signs must verify with
`pilotchain crypto verify`; keys made by either load in the other; digests agree. For SM2 the
distinguishing ID must be passed explicitly to `openssl` (``-sigopt distid:1234567812345678``):
without it OpenSSL 3 uses no ID, and the signature does not verify — checked below too.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilotchain.cli.main import app
from pilotchain.crypto import KeyFormatError, get_suite

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(
    OPENSSL is None,
    reason="the openssl command line is not installed (make system-deps installs it)",
)
DISTID = "distid:1234567812345678"
runner = CliRunner()


def openssl(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *map(str, arguments)], capture_output=True, text=True, check=False, timeout=60
    )


def openssl_ok(*arguments: str | Path) -> str:
    result = openssl(*arguments)
    assert result.returncode == 0, f"openssl {arguments} failed: {result.stderr}"
    return result.stdout


def pilotchain(*arguments: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["crypto", *map(str, arguments)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.fixture
def message(tmp_path: Path) -> Path:
    path = tmp_path / "message.bin"
    path.write_bytes(b"pilotchain interop \x00\xff" * 50)
    return path


# -- gm: SM2 / SM3 ---------------------------------------------------------------------------


def test_gm_openssl_signs_pilotchain_verifies(tmp_path: Path, message: Path) -> None:
    key, public, signature = tmp_path / "key.pem", tmp_path / "pub.pem", tmp_path / "sig"
    openssl_ok("genpkey", "-algorithm", "SM2", "-out", key)
    openssl_ok("pkey", "-in", key, "-pubout", "-out", public)
    openssl_ok("dgst", "-sm3", "-sign", key, "-sigopt", DISTID, "-out", signature, message)
    assert pilotchain(
        "verify", "--suite", "gm", "--pubkey", public, "--in", message, "--sig", signature
    ) == (0, "valid\n")
    # and the key openssl made loads in pilotchain and signs there
    assert (
        pilotchain(
            "sign", "--suite", "gm", "--key", key, "--in", message, "--out", tmp_path / "sig2"
        )[0]
        == 0
    )
    assert (
        pilotchain("pubkey", "--suite", "gm", "--key", key, "--out", tmp_path / "pub2.pem")[0] == 0
    )
    assert (tmp_path / "pub2.pem").read_bytes() == public.read_bytes()


def test_gm_pilotchain_signs_openssl_verifies(tmp_path: Path, message: Path) -> None:
    key, signature = tmp_path / "node.pem", tmp_path / "sig"
    assert pilotchain("keygen", "--suite", "gm", "--out", key)[0] == 0
    public = tmp_path / "node.pub.pem"
    assert (
        pilotchain("sign", "--suite", "gm", "--key", key, "--in", message, "--out", signature)[0]
        == 0
    )
    verified = openssl(
        "dgst", "-sm3", "-verify", public, "-sigopt", DISTID, "-signature", signature, message
    )
    assert verified.returncode == 0 and "Verified OK" in verified.stdout, verified.stderr
    # the ID is part of what is signed: without it (or with another) openssl rejects the signature
    assert (
        openssl("dgst", "-sm3", "-verify", public, "-signature", signature, message).returncode != 0
    )
    assert (
        openssl(
            "dgst",
            "-sm3",
            "-verify",
            public,
            "-sigopt",
            "distid:other",
            "-signature",
            signature,
            message,
        ).returncode
        != 0
    )
    # and openssl reads pilotchain's private key and derives the same public key
    assert openssl_ok("pkey", "-in", key, "-pubout") == public.read_text()


def test_gm_seed_key_without_embedded_public_key_loads_in_openssl(
    tmp_path: Path, message: Path
) -> None:
    suite = get_suite("gm")
    key = suite.private_key_from_seed(b"interop seed of thirty-two bytes!")
    key_path = tmp_path / "seed.pem"
    key_path.write_bytes(key.to_pem())
    assert openssl_ok("pkey", "-in", key_path, "-pubout").encode() == key.public_key().to_pem()
    signature = tmp_path / "sig"
    openssl_ok("dgst", "-sm3", "-sign", key_path, "-sigopt", DISTID, "-out", signature, message)
    assert suite.verify(key.public_key().to_der(), message.read_bytes(), signature.read_bytes())


def test_gm_hash_equals_openssl_sm3(message: Path) -> None:
    expected = openssl_ok("dgst", "-sm3", "-r", message).split()[0]
    assert pilotchain("hash", "--suite", "gm", message) == (0, expected + "\n")


# -- intl: Ed25519 / SHA-256 -----------------------------------------------------------------


def test_intl_openssl_signs_pilotchain_verifies(tmp_path: Path, message: Path) -> None:
    key, public, signature = tmp_path / "key.pem", tmp_path / "pub.pem", tmp_path / "sig"
    openssl_ok("genpkey", "-algorithm", "ED25519", "-out", key)
    openssl_ok("pkey", "-in", key, "-pubout", "-out", public)
    openssl_ok("pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", message, "-out", signature)
    assert pilotchain(
        "verify", "--suite", "intl", "--pubkey", public, "--in", message, "--sig", signature
    ) == (0, "valid\n")
    # Ed25519 is deterministic: pilotchain with the same key writes the same bytes
    mine = tmp_path / "mine.sig"
    assert (
        pilotchain("sign", "--suite", "intl", "--key", key, "--in", message, "--out", mine)[0] == 0
    )
    assert mine.read_bytes() == signature.read_bytes()


def test_intl_pilotchain_signs_openssl_verifies(tmp_path: Path, message: Path) -> None:
    key, signature = tmp_path / "node.pem", tmp_path / "sig"
    assert pilotchain("keygen", "--suite", "intl", "--out", key)[0] == 0
    public = tmp_path / "node.pub.pem"
    assert (
        pilotchain("sign", "--suite", "intl", "--key", key, "--in", message, "--out", signature)[0]
        == 0
    )
    verified = openssl(
        "pkeyutl",
        "-verify",
        "-rawin",
        "-pubin",
        "-inkey",
        public,
        "-in",
        message,
        "-sigfile",
        signature,
    )
    assert verified.returncode == 0 and "Signature Verified Successfully" in verified.stdout, (
        verified.stderr
    )
    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(message.read_bytes() + b"!")
    assert (
        openssl(
            "pkeyutl",
            "-verify",
            "-rawin",
            "-pubin",
            "-inkey",
            public,
            "-in",
            tampered,
            "-sigfile",
            signature,
        ).returncode
        != 0
    )
    assert openssl_ok("pkey", "-in", key, "-pubout") == public.read_text()


def test_intl_hash_equals_openssl_sha256(message: Path) -> None:
    expected = openssl_ok("dgst", "-sha256", "-r", message).split()[0]
    assert pilotchain("hash", "--suite", "intl", message) == (0, expected + "\n")


@pytest.mark.parametrize(("suite_name", "algorithm"), [("gm", "SM2"), ("intl", "ED25519")])
def test_openssl_key_of_one_suite_is_refused_by_the_other(
    tmp_path: Path, message: Path, suite_name: str, algorithm: str
) -> None:
    key = tmp_path / "key.pem"
    openssl_ok("genpkey", "-algorithm", algorithm, "-out", key)
    other = "intl" if suite_name == "gm" else "gm"
    code, output = pilotchain(
        "sign", "--suite", other, "--key", key, "--in", message, "--out", tmp_path / "sig"
    )
    assert code == 1 and f"is not a private key of the {other} suite" in output
    p256 = tmp_path / "p256.pem"
    openssl_ok("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p256)
    code, output = pilotchain(
        "sign", "--suite", suite_name, "--key", p256, "--in", message, "--out", tmp_path / "sig"
    )
    assert code == 1 and "Traceback" not in output


@pytest.mark.parametrize("algorithm", ["SM2", "ED25519"])
def test_encrypted_openssl_keys_are_refused_with_a_hint(
    tmp_path: Path, message: Path, algorithm: str
) -> None:
    key = tmp_path / "encrypted.pem"
    openssl_ok("genpkey", "-algorithm", algorithm, "-aes256", "-pass", "pass:secret", "-out", key)
    suite_name = "gm" if algorithm == "SM2" else "intl"
    code, output = pilotchain(
        "sign", "--suite", suite_name, "--key", key, "--in", message, "--out", tmp_path / "sig"
    )
    assert code == 1 and "encrypted private key" in output and "openssl pkey" in output
    # below the CLI, the suite refuses it too, without prompting for a passphrase
    with pytest.raises(KeyFormatError):
        get_suite(suite_name).load_private_key_pem(key.read_bytes())


def test_gm_refuses_non_canonical_keys_openssl_can_write(tmp_path: Path) -> None:
    # Keys are compared as bytes on chain, so one key must have one encoding.
    suite = get_suite("gm")
    key, public = tmp_path / "key.pem", tmp_path / "pub.pem"
    openssl_ok("genpkey", "-algorithm", "SM2", "-out", key)
    openssl_ok("pkey", "-in", key, "-pubout", "-out", public)
    compressed, explicit_key, explicit_public = (
        tmp_path / name for name in ("c.pem", "x.pem", "xp.pem")
    )
    openssl_ok(
        "ec", "-pubin", "-in", public, "-pubout", "-conv_form", "compressed", "-out", compressed
    )
    openssl_ok("ec", "-in", key, "-param_enc", "explicit", "-out", explicit_key)
    openssl_ok("pkey", "-in", explicit_key, "-pubout", "-out", explicit_public)
    for path in (compressed, explicit_public):
        with pytest.raises(KeyFormatError, match="canonical"):
            suite.load_public_key_pem(path.read_bytes())
    with pytest.raises(KeyFormatError, match="named_curve"):
        suite.load_private_key_pem(explicit_key.read_bytes())
    assert suite.load_public_key_pem(public.read_bytes()).to_pem() == public.read_bytes()


# -- encryption: SM2 both ways (GB/T 35276 DER), intl keys openssl writes ---------------------


@pytest.fixture
def openssl_sm2_key(tmp_path: Path) -> tuple[Path, Path]:
    key, public = tmp_path / "sm2.pem", tmp_path / "sm2.pub.pem"
    openssl_ok("genpkey", "-algorithm", "SM2", "-out", key)
    openssl_ok("pkey", "-in", key, "-pubout", "-out", public)
    return key, public


@pytest.mark.parametrize("size", [1, 16, 255, 256, 1000])
def test_gm_openssl_encrypts_pilotchain_decrypts(
    tmp_path: Path, openssl_sm2_key: tuple[Path, Path], size: int
) -> None:
    key, public = openssl_sm2_key
    plain, sealed, back = tmp_path / "plain", tmp_path / "sealed", tmp_path / "back"
    plain.write_bytes(bytes((index * 31 + 7) % 256 for index in range(size)))
    openssl_ok("pkeyutl", "-encrypt", "-pubin", "-inkey", public, "-in", plain, "-out", sealed)
    code, output = pilotchain(
        "decrypt", "--suite", "gm", "--key", key, "--in", sealed, "--out", back
    )
    assert code == 0, output
    assert back.read_bytes() == plain.read_bytes()
    # one changed byte in openssl's ciphertext, or one byte appended, and pilotchain refuses
    changed = bytearray(sealed.read_bytes())
    changed[-1] ^= 0x80
    sealed.write_bytes(bytes(changed))
    code, output = pilotchain(
        "decrypt", "--suite", "gm", "--key", key, "--in", sealed, "--out", tmp_path / "x"
    )
    assert code == 1 and "cannot decrypt" in output
    sealed.write_bytes(bytes(changed[:-1]) + bytes([changed[-1] ^ 0x80]) + b"\x00")
    code, output = pilotchain(
        "decrypt", "--suite", "gm", "--key", key, "--in", sealed, "--out", tmp_path / "y"
    )
    assert code == 1 and "cannot decrypt" in output


@pytest.mark.parametrize("size", [1, 32, 255])
def test_gm_pilotchain_encrypts_openssl_decrypts(
    tmp_path: Path, openssl_sm2_key: tuple[Path, Path], size: int
) -> None:
    key, public = openssl_sm2_key
    plain, sealed = tmp_path / "plain", tmp_path / "sealed"
    plain.write_bytes(bytes(range(256))[:size])
    code, output = pilotchain(
        "encrypt", "--suite", "gm", "--pubkey", public, "--in", plain, "--out", sealed
    )
    assert code == 0 and "openssl also reads" in output
    decrypted = subprocess.run(
        [OPENSSL or "openssl", "pkeyutl", "-decrypt", "-inkey", str(key), "-in", str(sealed)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert decrypted.returncode == 0, decrypted.stderr
    assert decrypted.stdout == plain.read_bytes()
    # and openssl parses it as GB/T 35276: SEQUENCE { INTEGER x, INTEGER y, hash, ciphertext }
    structure = openssl_ok("asn1parse", "-inform", "DER", "-in", sealed)
    kinds = [line.split("prim: ")[1].split("  ")[0] for line in structure.splitlines()[1:]]
    assert kinds == ["INTEGER", "INTEGER", "OCTET STRING", "OCTET STRING"], structure
    assert f"l={size:>4} prim: OCTET STRING" in structure.splitlines()[-1]


def test_gm_keys_pilotchain_makes_work_with_openssl_encryption(tmp_path: Path) -> None:
    key, public = tmp_path / "node.pem", tmp_path / "node.pub.pem"
    assert pilotchain("keygen", "--suite", "gm", "--out", key)[0] == 0
    plain, sealed = tmp_path / "plain", tmp_path / "sealed"
    plain.write_bytes(b"a 16-byte SM4 key")
    openssl_ok("pkeyutl", "-encrypt", "-pubin", "-inkey", public, "-in", plain, "-out", sealed)
    assert pilotchain(
        "decrypt", "--suite", "gm", "--key", key, "--in", sealed, "--out", tmp_path / "back"
    )[0] == 0
    assert (tmp_path / "back").read_bytes() == plain.read_bytes()


@pytest.mark.parametrize("algorithm", ["X25519", "ED25519"])
def test_intl_encrypts_to_keys_openssl_writes(
    tmp_path: Path, message: Path, algorithm: str
) -> None:
    key, public = tmp_path / "key.pem", tmp_path / "pub.pem"
    openssl_ok("genpkey", "-algorithm", algorithm, "-out", key)
    openssl_ok("pkey", "-in", key, "-pubout", "-out", public)
    sealed, back = tmp_path / "sealed", tmp_path / "back"
    assert pilotchain(
        "encrypt", "--suite", "intl", "--pubkey", public, "--in", message, "--out", sealed
    )[0] == 0
    assert pilotchain(
        "decrypt", "--suite", "intl", "--key", key, "--in", sealed, "--out", back
    )[0] == 0
    assert back.read_bytes() == message.read_bytes()


def test_openssl_sm2_key_is_refused_for_intl_encryption(
    tmp_path: Path, message: Path, openssl_sm2_key: tuple[Path, Path]
) -> None:
    _, public = openssl_sm2_key
    code, output = pilotchain(
        "encrypt", "--suite", "intl", "--pubkey", public, "--in", message, "--out", tmp_path / "s"
    )
    assert code == 1 and "X25519 or Ed25519" in output and "--suite" in output

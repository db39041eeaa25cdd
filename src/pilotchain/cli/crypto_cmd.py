"""`pilotchain crypto ...`: keys, signatures, digests and encryption for integrators.

Every command takes ``--suite {intl,gm}`` and ``--json``. Files are the same bytes the
``openssl`` command line reads and writes: PKCS#8 PEM private keys, SubjectPublicKeyInfo PEM
public keys, raw signature files (64 bytes for Ed25519, DER ``SEQUENCE{r, s}`` for SM2), and for
gm a small encrypted file is the GB/T 35276 DER SM2 ciphertext of ``openssl pkeyutl -encrypt``.

User errors (a missing file, a key of the other suite, a bad signature) print one line saying
what went wrong and what to do next, and exit with status 1 — never a traceback. With ``--json``
the same line goes to stdout as ``{"ok": false, "error": ..., "hint": ...}``.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn

import typer

from pilotchain.crypto import (
    CryptoError,
    KeyFormatError,
    PrivateKey,
    SealError,
    SealFailure,
    SealPrivateKey,
    SealPublicKey,
    Suite,
    get_suite,
    load_seal_private_key,
    load_seal_public_key,
    open_sealed,
    seal,
)
from pilotchain.crypto.sealing import GM_DIRECT_MAX

__all__ = ["app", "public_key_path_for"]

app = typer.Typer(
    help="Keys, signatures, digests and encryption (intl: Ed25519/SHA-256, gm: SM2/SM3).",
    no_args_is_help=True,
)

#: Bound on a key file: real PEM keys are a few hundred bytes.
KEY_FILE_SIZE_MAX: Final = 64 * 1024
#: Bound on a signature file (an SM2 DER signature is at most 72 bytes).
SIGNATURE_FILE_SIZE_MAX: Final = 1024
#: Bound on a file to sign or verify: signatures need the whole message in memory.
MESSAGE_FILE_SIZE_MAX: Final = 1024 * 1024 * 1024
#: Bound on an encrypted file: the largest file to encrypt plus the envelope (under 200 bytes).
SEALED_FILE_SIZE_MAX: Final = MESSAGE_FILE_SIZE_MAX + 4096
#: Read size when hashing (hashing streams, so it has no size bound).
HASH_CHUNK_SIZE: Final = 1024 * 1024
PRIVATE_KEY_FILE_MODE: Final = 0o600
#: Decrypted files hold what someone thought worth encrypting: readable by the owner only.
DECRYPTED_FILE_MODE: Final = 0o600


class SuiteName(enum.StrEnum):
    intl = "intl"
    gm = "gm"


SuiteOption = Annotated[
    SuiteName, typer.Option("--suite", "-s", help="Crypto suite: intl (Ed25519) or gm (SM2).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts).")]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")]


class UserError(Exception):
    """Something the user can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _fail(error: UserError, as_json: bool) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": error.message, "hint": error.hint}))
    else:
        hint = f" ({error.hint})" if error.hint else ""
        typer.echo(f"error: {error.message}{hint}", err=True)
    raise typer.Exit(1)


@contextlib.contextmanager
def _reporting(as_json: bool) -> Iterator[None]:
    """Turn user errors, and crypto errors from below, into one line and exit status 1."""
    try:
        yield
    except UserError as error:
        _fail(error, as_json)
    except CryptoError as exc:  # e.g. libcrypto.so.3 missing for gm; the message says what to do
        _fail(UserError(str(exc)), as_json)


def _emit(as_json: bool, text: str, fields: dict[str, Any]) -> None:
    if as_json:
        typer.echo(json.dumps({"ok": True, **fields}, sort_keys=True))
    else:
        typer.echo(text)


def _read(path: Path, what: str, size_max: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > size_max:
            raise UserError(f"{path} is {size} bytes, larger than any {what} ({size_max} max)")
        return path.read_bytes()
    except OSError as exc:
        raise UserError(
            f"cannot read {what} {path}: {exc.strerror or exc}", "check the path"
        ) from exc


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(HASH_CHUNK_SIZE):
            yield chunk


def _read_private_pem(suite: Suite, path: Path) -> bytes:
    pem = _read(path, "private key", KEY_FILE_SIZE_MAX)
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem:
        raise UserError(
            f"{path} is an encrypted private key; pilotchain reads unencrypted PKCS#8 keys",
            f"decrypt it with `openssl pkey -in {path} -out PLAIN.pem` and keep PLAIN.pem mode 0600",
        )
    if b"PUBLIC KEY-----" in pem and b"PRIVATE KEY-----" not in pem:
        raise UserError(
            f"{path} is a public key, not a private key",
            f"pass the private key it belongs to (`pilotchain crypto keygen --suite {suite.name} "
            "--out KEY.pem` writes both: KEY.pem is the private one)",
        )
    return pem


def _wrong_private_key(suite: Suite, path: Path, exc: KeyFormatError, kinds: str) -> UserError:
    return UserError(
        f"{path} is not a private key of the {suite.name} suite ({kinds}): {exc}",
        f"make one with `pilotchain crypto keygen --suite {suite.name} --out KEY.pem`, "
        "or pass the --suite the key was made for",
    )


def _load_private(suite: Suite, path: Path) -> PrivateKey:
    pem = _read_private_pem(suite, path)
    try:
        return suite.load_private_key_pem(pem)
    except KeyFormatError as exc:
        raise _wrong_private_key(suite, path, exc, suite.signature_name) from exc


def _read_public_pem(suite: Suite, path: Path) -> bytes:
    pem = _read(path, "public key", KEY_FILE_SIZE_MAX)
    if b"PRIVATE KEY-----" in pem:
        raise UserError(
            f"{path} is a private key, not a public key",
            f"pass its public key instead: `pilotchain crypto pubkey --suite {suite.name} "
            f"--key {path}` prints it",
        )
    return pem


def _wrong_public_key(suite: Suite, path: Path, exc: KeyFormatError, kinds: str) -> UserError:
    return UserError(
        f"{path} is not a public key of the {suite.name} suite ({kinds}): {exc}",
        "pass the --suite the key was made for",
    )


def _write_new(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write ``data`` to ``path`` with ``mode``; refuse to replace an existing file unless
    ``force``. The mode is set at creation, so a private key is never readable by others."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, mode)
    except FileExistsError as exc:
        raise UserError(f"{path} already exists", "pass --force to overwrite it") from exc
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}", "check the path") from exc
    with os.fdopen(descriptor, "wb") as stream:
        os.fchmod(stream.fileno(), mode)  # O_TRUNC keeps an old file's mode; --force resets it
        stream.write(data)


def public_key_path_for(private_key_path: Path) -> Path:
    """``node.pem`` -> ``node.pub.pem``; any other name gets ``.pub.pem`` appended."""
    if private_key_path.suffix == ".pem":
        return private_key_path.with_suffix(".pub.pem")
    return private_key_path.with_name(private_key_path.name + ".pub.pem")


@app.command()
def keygen(
    suite_name: SuiteOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Private key file (PKCS#8 PEM).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Make a key pair: OUT (private, mode 0600) and OUT with .pub.pem (public)."""
    with _reporting(as_json):
        suite = get_suite(suite_name.value)
        public_path = public_key_path_for(out)
        if not force:
            for path in (out, public_path):
                if path.exists():
                    raise UserError(f"{path} already exists", "pass --force to overwrite it")
        key = suite.generate_private_key()
        public = key.public_key()
        _write_new(out, key.to_pem(), PRIVATE_KEY_FILE_MODE, force)
        _write_new(public_path, public.to_pem(), 0o644, force)
    _emit(
        as_json,
        f"wrote {suite.signature_name} private key {out} (mode 0600) and public key {public_path}",
        {
            "suite": suite.name,
            "private_key": str(out),
            "public_key": str(public_path),
            "public_key_der_hex": public.to_der().hex(),
        },
    )


@app.command()
def pubkey(
    suite_name: SuiteOption,
    key_path: Annotated[Path, typer.Option("--key", "-k", help="Private key file (PEM).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the PEM here instead of stdout.")
    ] = None,
    force: ForceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Print (or write) the public key of a private key, as SubjectPublicKeyInfo PEM."""
    with _reporting(as_json):
        suite = get_suite(suite_name.value)
        public = _load_private(suite, key_path).public_key()
        if out is not None:
            _write_new(out, public.to_pem(), 0o644, force)
    fields: dict[str, Any] = {
        "suite": suite.name,
        "public_key_pem": public.to_pem().decode(),
        "public_key_der_hex": public.to_der().hex(),
    }
    if out is not None:
        fields["out"] = str(out)
        _emit(as_json, f"wrote public key {out}", fields)
    else:
        _emit(as_json, public.to_pem().decode().rstrip("\n"), fields)


@app.command()
def sign(
    suite_name: SuiteOption,
    key_path: Annotated[Path, typer.Option("--key", "-k", help="Private key file (PEM).")],
    in_path: Annotated[Path, typer.Option("--in", "-i", help="File to sign.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Signature file (raw bytes).")],
    force: ForceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Sign a file; the signature file is what `openssl` reads with -signature / -sigfile."""
    with _reporting(as_json):
        suite = get_suite(suite_name.value)
        key = _load_private(suite, key_path)
        message = _read(in_path, "file to sign", MESSAGE_FILE_SIZE_MAX)
        signature = key.sign(message)
        _write_new(out, signature, 0o644, force)
    _emit(
        as_json,
        f"wrote {suite.signature_name} signature {out} ({len(signature)} bytes)",
        {"suite": suite.name, "out": str(out), "signature_hex": signature.hex()},
    )


@app.command()
def verify(
    suite_name: SuiteOption,
    pubkey_path: Annotated[
        Path, typer.Option("--pubkey", "-p", help="Public key file (SubjectPublicKeyInfo PEM).")
    ],
    in_path: Annotated[Path, typer.Option("--in", "-i", help="File that was signed.")],
    sig_path: Annotated[Path, typer.Option("--sig", help="Signature file (raw bytes).")],
    as_json: JsonOption = False,
) -> None:
    """Check a signature: prints "valid" and exits 0, or prints why not and exits 1."""
    with _reporting(as_json):
        suite = get_suite(suite_name.value)
        pem = _read_public_pem(suite, pubkey_path)
        try:
            public = suite.load_public_key_pem(pem)
        except KeyFormatError as exc:
            raise _wrong_public_key(suite, pubkey_path, exc, suite.signature_name) from exc
        message = _read(in_path, "signed file", MESSAGE_FILE_SIZE_MAX)
        signature = _read(sig_path, "signature", SIGNATURE_FILE_SIZE_MAX)
        if not public.verify(message, signature):
            raise UserError(
                f"invalid: {sig_path} is not a valid {suite.signature_name} signature "
                f"of {in_path} by {pubkey_path}",
                "the file, the signature or the key differs from what was signed",
            )
    _emit(as_json, "valid", {"suite": suite.name, "valid": True})


@app.command("hash")
def hash_file(
    suite_name: SuiteOption,
    path: Annotated[Path, typer.Argument(help="File to hash ('-' for standard input).")],
    as_json: JsonOption = False,
) -> None:
    """Print the suite's digest of FILE in hex (SHA-256 for intl, SM3 for gm)."""
    with _reporting(as_json):
        suite = get_suite(suite_name.value)
        if str(path) == "-":
            stdin = sys.stdin.buffer
            digest = suite.hash_chunks(iter(lambda: stdin.read(HASH_CHUNK_SIZE), b""))
        else:
            try:
                digest = suite.hash_chunks(_chunks(path))
            except OSError as exc:
                raise UserError(
                    f"cannot read file to hash {path}: {exc.strerror or exc}", "check the path"
                ) from exc
    _emit(
        as_json,
        digest.hex(),
        {
            "suite": suite.name,
            "algorithm": suite.hash_name,
            "file": str(path),
            "digest_hex": digest.hex(),
        },
    )


#: what each suite accepts as an encryption key (the names in error messages)
_SEAL_KEY_KINDS: Final = {"intl": "X25519 or Ed25519", "gm": "SM2"}


def _load_seal_public(suite: Suite, path: Path) -> SealPublicKey:
    pem = _read_public_pem(suite, path)
    try:
        return load_seal_public_key(suite, pem)
    except KeyFormatError as exc:
        raise _wrong_public_key(suite, path, exc, _SEAL_KEY_KINDS[suite.name]) from exc


def _load_seal_private(suite: Suite, path: Path) -> SealPrivateKey:
    pem = _read_private_pem(suite, path)
    try:
        return load_seal_private_key(suite, pem)
    except KeyFormatError as exc:
        raise _wrong_private_key(suite, path, exc, _SEAL_KEY_KINDS[suite.name]) from exc


def _open_error(error: SealError, suite: Suite, key_path: Path, in_path: Path) -> UserError:
    if error.reason is SealFailure.WRONG_SUITE:
        other = "gm" if suite.name == "intl" else "intl"
        return UserError(f"{in_path}: {error}", f"pass --suite {other} and a key of that suite")
    if error.reason is SealFailure.MALFORMED:
        return UserError(
            f"{in_path}: {error}",
            "pass a file that `pilotchain crypto encrypt` or `openssl pkeyutl -encrypt` wrote, "
            "complete and unchanged",
        )
    return UserError(
        f"cannot decrypt {in_path} with {key_path}: it was not encrypted to this key, or it was "
        "changed or cut short",
        f"check that the sender encrypted to the public key of {key_path} "
        f"(`pilotchain crypto pubkey --suite {suite.name} --key {key_path}` prints it)",
    )


@app.command(
    help="Encrypt a file to a public key: only the matching private key decrypts it.\n\n"
    "intl: ephemeral X25519, HKDF-SHA-256, AES-256-GCM. gm: SM2 encryption (GB/T 32918.4); "
    "a file of 1 to 255 bytes becomes the standard SM2 ciphertext that "
    "`openssl pkeyutl -decrypt` reads, anything else an SM2-encrypted SM4 key plus SM4-GCM. "
    "Layouts: docs/crypto.md."
)
def encrypt(
    suite_name: SuiteOption,
    pubkey_path: Annotated[
        Path,
        typer.Option(
            "--pubkey",
            "-p",
            help="Recipient's public key, SubjectPublicKeyInfo PEM: X25519 or Ed25519 for intl "
            "(a `keygen` .pub.pem works), SM2 for gm (`openssl pkey -pubout` works).",
        ),
    ],
    in_path: Annotated[Path, typer.Option("--in", "-i", help="File to encrypt.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Encrypted file to write.")],
    force: ForceOption = False,
    as_json: JsonOption = False,
) -> None:
    with _reporting(as_json):
        suite = get_suite(suite_name.value)
        recipient = _load_seal_public(suite, pubkey_path)
        plaintext = _read(in_path, "file to encrypt", MESSAGE_FILE_SIZE_MAX)
        sealed = seal(recipient, plaintext)
        _write_new(out, sealed, 0o644, force)
    bare_sm2 = suite.name == "gm" and 1 <= len(plaintext) <= GM_DIRECT_MAX
    _emit(
        as_json,
        f"wrote {out} ({len(sealed)} bytes, "
        + ("an SM2 ciphertext openssl also reads)" if bare_sm2 else "a pilotchain envelope)"),
        {
            "suite": suite.name,
            "out": str(out),
            "plaintext_bytes": len(plaintext),
            "sealed_bytes": len(sealed),
            "format": "sm2-der" if bare_sm2 else "envelope-v1",
        },
    )


@app.command()
def decrypt(
    suite_name: SuiteOption,
    key_path: Annotated[
        Path,
        typer.Option(
            "--key",
            "-k",
            help="Your private key, unencrypted PEM: X25519 or Ed25519 for intl (a `keygen` key "
            "works), SM2 for gm (`openssl genpkey -algorithm SM2` works).",
        ),
    ],
    in_path: Annotated[Path, typer.Option("--in", "-i", help="Encrypted file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Decrypted file (mode 0600).")],
    force: ForceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Decrypt a file encrypted to your public key (by `encrypt`, or for gm by openssl)."""
    with _reporting(as_json):
        suite = get_suite(suite_name.value)
        key = _load_seal_private(suite, key_path)
        sealed = _read(in_path, "encrypted file", SEALED_FILE_SIZE_MAX)
        try:
            plaintext = open_sealed(key, sealed)
        except SealError as error:
            raise _open_error(error, suite, key_path, in_path) from error
        _write_new(out, plaintext, DECRYPTED_FILE_MODE, force)
    _emit(
        as_json,
        f"wrote {out} ({len(plaintext)} bytes, mode 0600)",
        {"suite": suite.name, "out": str(out), "plaintext_bytes": len(plaintext)},
    )

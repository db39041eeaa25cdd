"""Files an operator handles: identity files, CA directories, armoured records.

This is the I/O shell around the pure identity core. Every operating error (missing file, bad
permissions, damaged content, a key that does not match its certificate) becomes an
:class:`IdentityFileError` naming the file and the fix.

Identity file (JSON, mode 0600)::

    {"format": "pilotchain-identity/1", "suite": "intl", "org": "bank-a", "subject": "alice",
     "certificate": "-----BEGIN PILOTCHAIN CERTIFICATE-----\\n...",
     "private_key": "-----BEGIN PRIVATE KEY-----\\n..."}

CA directory (mode 0700)::

    ca.json               {"format": "pilotchain-ca/1", suite, org, next_serial, org_certificate}  0600
    ca-key.pem            the CA private key, PKCS#8 PEM                                           0600
    ca-key.genN.pem       a retired CA key (generation N), kept after a rotation                    0600
    org-certificate.pem   the armoured org certificate: what genesis lists                         0644

Files holding private keys are written atomically (temporary file, fsync, rename) with mode 0600,
and refused on load when group or others can read them.

With a passphrase, a private key is stored as an encrypted PKCS#8 PEM
(``-----BEGIN ENCRYPTED PRIVATE KEY-----``, RFC 5958 ``EncryptedPrivateKeyInfo``): PBES2 with
PBKDF2-HMAC-SHA256 (600,000 iterations, 16-byte random salt) and AES-256-CBC, the form
``openssl pkcs8 -topk8 -v2 aes-256-cbc`` writes and reads. It is the same for both suites:
``cryptography`` cannot load SM2 keys (it refuses the SM2 curve), so the encryption wraps the
suite's unencrypted PKCS#8 bytes with ``cryptography``'s PBKDF2 and AES instead of asking a key
object to serialise itself. Only that one PBES2 shape is read; anything else is refused with a
message naming the ``openssl`` command that converts it.
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from pilotchain.codec import CodecError
from pilotchain.crypto import CryptoError, PrivateKey, Suite, get_suite
from pilotchain.identity.armor import armor as armor_record
from pilotchain.identity.armor import dearmor
from pilotchain.identity.authority import CertificateAuthority
from pilotchain.identity.errors import IdentityFileError, IdentityLayerError
from pilotchain.identity.records import Certificate, OrgCertificate, S, SignedRecord

__all__ = [
    "CA_CERTIFICATE_FILE",
    "CA_KEY_FILE",
    "CA_STATE_FILE",
    "IdentityBundle",
    "PASSPHRASE_ENV",
    "PassphraseRequired",
    "decrypt_private_key_pem",
    "encrypt_private_key_pem",
    "is_encrypted_key_file",
    "key_passphrase",
    "load_ca",
    "load_identity",
    "load_record",
    "save_ca",
    "save_identity",
    "save_record",
]

IDENTITY_FORMAT = "pilotchain-identity/1"
CA_FORMAT = "pilotchain-ca/1"
CA_STATE_FILE = "ca.json"
CA_KEY_FILE = "ca-key.pem"
CA_CERTIFICATE_FILE = "org-certificate.pem"
#: no identity, CA or record file pilotchain reads is bigger than this
FILE_BYTES_MAX = 64 * 1024
_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644
#: the environment variable a node or the CLI reads a key passphrase from
PASSPHRASE_ENV = "PILOTCHAIN_KEY_PASSPHRASE"
#: PBKDF2-HMAC-SHA256 iterations for keys written here (OWASP's 2023 figure; ~0.1 s per key)
KDF_ITERATIONS = 600_000
#: the most iterations a key file may ask for (a hostile file must not stall the reader)
KDF_ITERATIONS_MAX = 10_000_000
PASSPHRASE_BYTES_MAX = 1024
_ENCRYPTED_LABEL = "ENCRYPTED PRIVATE KEY"
_SALT_BYTES = 16


class PassphraseRequired(IdentityFileError):
    """The key is encrypted and no passphrase was given."""


class _IdentityFile(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    suite: str
    org: str
    subject: str
    certificate: str
    private_key: str


class _CaFile(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    suite: str
    org: str
    next_serial: int
    org_certificate: str


@dataclass(frozen=True, slots=True)
class IdentityBundle:
    """A certificate with its private key, as a node, admin or client holds it."""

    suite: Suite
    certificate: Certificate
    private_key: PrivateKey

    def __post_init__(self) -> None:
        if self.certificate.suite != self.suite.name:
            raise IdentityFileError(
                f"the certificate is for suite {self.certificate.suite!r}, the bundle for {self.suite.name!r}"
            )
        if self.private_key.public_key().to_der() != self.certificate.public_key_der:
            raise IdentityFileError("the private key does not belong to the certificate")

    def __repr__(self) -> str:  # never shows the key
        cert = self.certificate
        return (
            f"IdentityBundle({cert.org_id}/{cert.serial} {cert.subject!r}, suite={self.suite.name})"
        )


# -- low-level file helpers -----------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    if not overwrite and path.exists():
        raise IdentityFileError(f"{path} already exists; choose another path or remove it first")
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # the umask must not widen or narrow it
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise IdentityFileError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _read(path: Path, *, private: bool) -> bytes:
    try:
        with open(path, "rb") as handle:
            if private:
                mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
                if mode & 0o077:
                    raise IdentityFileError(
                        f"{path} holds a private key but others can read it (mode {mode:04o}); run: chmod 600 {path}"
                    )
            data = handle.read(FILE_BYTES_MAX + 1)
    except FileNotFoundError as exc:
        raise IdentityFileError(f"{path} does not exist") from exc
    except IsADirectoryError as exc:
        raise IdentityFileError(f"{path} is a directory, expected a file") from exc
    except OSError as exc:
        raise IdentityFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > FILE_BYTES_MAX:
        raise IdentityFileError(
            f"{path} is larger than {FILE_BYTES_MAX} bytes; it is not a pilotchain identity file"
        )
    return data


def _text(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IdentityFileError(f"{path} is not UTF-8 text") from exc


def _suite(path: Path, name: str) -> Suite:
    try:
        return get_suite(name)
    except (CryptoError, ImportError) as exc:
        raise IdentityFileError(
            f"{path} names crypto suite {name!r}, which this build cannot load: {exc}"
        ) from exc


def _private_key(path: Path, suite: Suite, pem: str, passphrase: bytes | None = None) -> PrivateKey:
    encrypted = is_encrypted_key_file(pem)
    if encrypted:
        if passphrase is None:
            raise PassphraseRequired(
                f"{path}: the private key is encrypted; give its passphrase "
                f"(set {PASSPHRASE_ENV}, or --passphrase-file FILE, or answer the prompt)"
            )
        try:
            pem = decrypt_private_key_pem(pem, passphrase).decode("ascii")
        except IdentityFileError as exc:
            raise IdentityFileError(f"{path}: {exc}") from exc
    try:
        return suite.load_private_key_pem(pem.encode("ascii"))
    except (CryptoError, UnicodeEncodeError) as exc:
        if encrypted:  # CBC padding passes by chance for 1 wrong passphrase in ~256
            raise IdentityFileError(f"{path}: wrong passphrase for the private key") from exc
        raise IdentityFileError(
            f"{path}: the private key is not a {suite.name} PKCS#8 PEM key"
        ) from exc


def _key_pem(private_key: PrivateKey, passphrase: bytes | None) -> bytes:
    pem = private_key.to_pem()
    return pem if passphrase is None else encrypt_private_key_pem(pem, passphrase)


# -- encrypted PKCS#8 (PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC) -------------------------------------
# Fixed DER shapes, like crypto/gm.py's PKCS#8 template: the object identifiers below, encoded.
_OID_PBES2 = bytes.fromhex("06092a864886f70d01050d")  # 1.2.840.113549.1.5.13
_OID_PBKDF2 = bytes.fromhex("06092a864886f70d01050c")  # 1.2.840.113549.1.5.12
_OID_HMAC_SHA256 = bytes.fromhex("06082a864886f70d0209")  # 1.2.840.113549.2.9
_OID_AES256_CBC = bytes.fromhex("060960864801650304012a")  # 2.16.840.1.101.3.4.1.42
_NULL = b"\x05\x00"


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _der_items(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, content) items of ``data``, strictly DER (definite, minimal lengths)."""
    items = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise ValueError("truncated")
        tag, first = data[at], data[at + 1]
        at += 2
        if first < 0x80:
            size = first
        else:
            count = first & 0x7F
            if not 1 <= count <= 3 or at + count > len(data) or data[at] == 0:
                raise ValueError("bad length")
            size = int.from_bytes(data[at : at + count], "big")
            if size < 0x80:
                raise ValueError("non-minimal length")
            at += count
        if at + size > len(data):
            raise ValueError("truncated")
        items.append((tag, data[at : at + size]))
        at += size
    return items


def _der_shape(data: bytes, tags: tuple[int, ...]) -> list[bytes]:
    items = _der_items(data)
    if tuple(tag for tag, _ in items) != tags:
        raise ValueError("unexpected structure")
    return [content for _, content in items]


def _aes_key(passphrase: bytes, salt: bytes, iterations: int) -> bytes:
    return PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(passphrase)


def _pem_body(pem: str, label: str) -> bytes:
    lines = [line.strip() for line in pem.strip().splitlines()]
    if len(lines) < 3 or lines[0] != f"-----BEGIN {label}-----" or lines[-1] != f"-----END {label}-----":
        raise IdentityFileError(f"not a PEM {label.lower()}")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError as exc:
        raise IdentityFileError(f"the PEM {label.lower()} is not valid base64") from exc


def _check_passphrase(passphrase: bytes) -> None:
    if not 1 <= len(passphrase) <= PASSPHRASE_BYTES_MAX:
        raise IdentityFileError(f"a key passphrase takes 1..{PASSPHRASE_BYTES_MAX} bytes")


def is_encrypted_key_file(pem: str | bytes) -> bool:
    """True when ``pem`` is (or an identity file / PEM text holds) an encrypted PKCS#8 key."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    return f"-----BEGIN {_ENCRYPTED_LABEL}-----" in text


def encrypt_private_key_pem(pem: bytes, passphrase: bytes, *, iterations: int | None = None) -> bytes:
    """An unencrypted PKCS#8 PEM (``PrivateKey.to_pem``) as an encrypted PKCS#8 PEM
    (``iterations`` of PBKDF2; default :data:`KDF_ITERATIONS`)."""
    _check_passphrase(passphrase)
    iterations = KDF_ITERATIONS if iterations is None else iterations
    plain = _pem_body(pem.decode("ascii"), "PRIVATE KEY")
    salt, iv = os.urandom(_SALT_BYTES), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES256(_aes_key(passphrase, salt, iterations)), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    kdf = _der(0x30, _OID_PBKDF2 + _der(0x30, _der(0x04, salt) + _der_int(iterations)
                                         + _der(0x30, _OID_HMAC_SHA256 + _NULL)))
    scheme = _der(0x30, _OID_AES256_CBC + _der(0x04, iv))
    algorithm = _der(0x30, _OID_PBES2 + _der(0x30, kdf + scheme))
    der = _der(0x30, algorithm + _der(0x04, ciphertext))
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {_ENCRYPTED_LABEL}-----", *lines, f"-----END {_ENCRYPTED_LABEL}-----", ""]).encode("ascii")


def decrypt_private_key_pem(pem: str, passphrase: bytes) -> bytes:
    """The unencrypted PKCS#8 PEM inside an encrypted one; :class:`IdentityFileError` on a wrong
    passphrase or a PBES2 shape other than PBKDF2-HMAC-SHA256 + AES-256-CBC."""
    _check_passphrase(passphrase)
    der = _pem_body(pem, _ENCRYPTED_LABEL)
    try:
        (info,) = _der_shape(der, (0x30,))
        algorithm, ciphertext = _der_shape(info, (0x30, 0x04))
        oid_pbes2, params = _der_shape(algorithm, (0x06, 0x30))
        kdf, scheme = _der_shape(params, (0x30, 0x30))
        oid_kdf, kdf_params = _der_shape(kdf, (0x06, 0x30))
        kdf_items = _der_items(kdf_params)
        oid_cipher, iv = _der_shape(scheme, (0x06, 0x04))
    except ValueError as exc:
        raise IdentityFileError(f"the encrypted private key is damaged ({exc})") from exc
    supported = (
        _der(0x06, oid_pbes2) == _OID_PBES2
        and _der(0x06, oid_kdf) == _OID_PBKDF2
        and _der(0x06, oid_cipher) == _OID_AES256_CBC
        and len(iv) == 16
        and 2 <= len(kdf_items) <= 4
        and kdf_items[0][0] == 0x04
        and kdf_items[1][0] == 0x02
    )
    prf_ok = False
    if supported:
        rest = kdf_items[2:]
        if rest and rest[0][0] == 0x02:  # optional keyLength: must be 32
            supported = int.from_bytes(rest[0][1], "big") == 32
            rest = rest[1:]
        prf_ok = len(rest) == 1 and rest[0][0] == 0x30 and _der(0x30, rest[0][1]) in (
            _der(0x30, _OID_HMAC_SHA256 + _NULL), _der(0x30, _OID_HMAC_SHA256))
    if not (supported and prf_ok):
        raise IdentityFileError(
            "the encrypted private key is not PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC; convert it with "
            "`openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256`"
        )
    salt, iterations = kdf_items[0][1], int.from_bytes(kdf_items[1][1], "big")
    if not 1 <= iterations <= KDF_ITERATIONS_MAX or not 8 <= len(salt) <= 64:
        raise IdentityFileError(f"the encrypted private key asks for {iterations} KDF iterations; refused")
    decryptor = Cipher(algorithms.AES256(_aes_key(passphrase, salt, iterations)), modes.CBC(iv)).decryptor()
    try:
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise IdentityFileError("wrong passphrase for the private key") from exc
    body = base64.b64encode(plain).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN PRIVATE KEY-----", *lines, "-----END PRIVATE KEY-----", ""]).encode("ascii")


def key_passphrase(
    passphrase_file: str | os.PathLike[str] | None = None, *, environ: dict[str, str] | None = None
) -> bytes | None:
    """The key passphrase from ``passphrase_file`` (its first line; the file must be 0600) or else
    the environment variable ``PILOTCHAIN_KEY_PASSPHRASE``; ``None`` when neither is given."""
    if passphrase_file is not None:
        path = Path(passphrase_file)
        data = _read(path, private=True)
        lines = data.splitlines()
        passphrase = lines[0] if lines else b""
        if not passphrase:
            raise IdentityFileError(f"{path} is empty; write the key passphrase on its first line")
        return passphrase
    value = (os.environ if environ is None else environ).get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None


# -- armoured records -----------------------------------------------------------------------------


def save_record(
    path: str | os.PathLike[str], record: SignedRecord, *, overwrite: bool = False
) -> None:
    """Write ``record`` armoured (public data: mode 0644)."""
    _write_atomic(
        Path(path), armor_record(record).encode("ascii"), _PUBLIC_MODE, overwrite=overwrite
    )


def load_record(path: str | os.PathLike[str], type_: type[S]) -> S:
    """Read the first armoured ``type_`` record in the file ``path``."""
    file_path = Path(path)
    text = _text(file_path, _read(file_path, private=False))
    try:
        return dearmor(text, type_)
    except CodecError as exc:
        raise IdentityFileError(f"{file_path}: {exc}") from exc


# -- identity files -------------------------------------------------------------------------------


def save_identity(
    path: str | os.PathLike[str],
    bundle: IdentityBundle,
    *,
    overwrite: bool = False,
    passphrase: bytes | None = None,
) -> None:
    """Write ``bundle`` as an identity file with mode 0600 (the key encrypted under
    ``passphrase`` when one is given)."""
    cert = bundle.certificate
    content = _IdentityFile(
        IDENTITY_FORMAT,
        bundle.suite.name,
        cert.org_id,
        cert.subject,
        armor_record(cert),
        _key_pem(bundle.private_key, passphrase).decode("ascii"),
    )
    _write_atomic(
        Path(path),
        msgspec.json.format(msgspec.json.encode(content)) + b"\n",
        _PRIVATE_MODE,
        overwrite=overwrite,
    )


def load_identity(
    path: str | os.PathLike[str], *, passphrase: bytes | None = None
) -> IdentityBundle:
    """Read an identity file; checks permissions, format, and that key and certificate match.
    An encrypted key needs ``passphrase`` (:class:`PassphraseRequired` without it)."""
    file_path = Path(path)
    data = _read(file_path, private=True)
    try:
        content = msgspec.json.decode(data, type=_IdentityFile)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # invalid UTF-8 in a string is the latter
        raise IdentityFileError(f"{file_path} is not a pilotchain identity file: {exc}") from exc
    if content.format != IDENTITY_FORMAT:
        raise IdentityFileError(
            f"{file_path} has format {content.format!r}; this build reads {IDENTITY_FORMAT!r}"
        )
    suite = _suite(file_path, content.suite)
    try:
        certificate = dearmor(content.certificate, Certificate)
    except CodecError as exc:
        raise IdentityFileError(f"{file_path}: the certificate is damaged: {exc}") from exc
    if certificate.org_id != content.org or certificate.subject != content.subject:
        raise IdentityFileError(
            f"{file_path}: the 'org'/'subject' fields do not match the certificate"
        )
    private_key = _private_key(file_path, suite, content.private_key, passphrase)
    try:
        return IdentityBundle(suite, certificate, private_key)
    except IdentityFileError as exc:
        raise IdentityFileError(f"{file_path}: {exc}") from exc


# -- CA directories -------------------------------------------------------------------------------


def save_ca(
    directory: str | os.PathLike[str],
    ca: CertificateAuthority,
    *,
    overwrite: bool = False,
    passphrase: bytes | None = None,
) -> None:
    """Write (or, with ``overwrite``, update) a CA directory: key, state, org certificate. With
    ``passphrase`` a new key file is encrypted; an existing encrypted key file needs it too."""
    root = Path(directory)
    if not overwrite and (root / CA_STATE_FILE).exists():
        raise IdentityFileError(f"{root} already holds a CA; choose another directory")
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise IdentityFileError(f"cannot create {root}: {exc.strerror or exc}") from exc
    key_path = root / CA_KEY_FILE
    key_pem = _key_pem(ca.private_key, passphrase)
    if overwrite and key_path.exists():
        stored = _text(key_path, _read(key_path, private=True))
        stored_key = _private_key(key_path, ca.suite, stored, passphrase)
        if (
            stored_key.to_pem() != ca.private_key.to_pem()
        ):  # a rotation: keep the retired key, never lose it
            retired_path = root / f"ca-key.gen{ca.org_certificate.serial - 1}.pem"
            try:
                os.replace(key_path, retired_path)
            except OSError as exc:
                raise IdentityFileError(
                    f"cannot move {key_path} aside: {exc.strerror or exc}"
                ) from exc
            _write_atomic(key_path, key_pem, _PRIVATE_MODE, overwrite=False)
        # else: after an issue only the serial changes; leave the key file alone
    else:
        _write_atomic(key_path, key_pem, _PRIVATE_MODE, overwrite=overwrite)
    state = _CaFile(
        CA_FORMAT, ca.suite.name, ca.org_id, ca.next_serial, armor_record(ca.org_certificate)
    )
    _write_atomic(
        root / CA_STATE_FILE,
        msgspec.json.format(msgspec.json.encode(state)) + b"\n",
        _PRIVATE_MODE,
        overwrite=overwrite,
    )
    save_record(root / CA_CERTIFICATE_FILE, ca.org_certificate, overwrite=overwrite)


def load_ca(
    directory: str | os.PathLike[str], *, passphrase: bytes | None = None
) -> CertificateAuthority:
    """Read a CA directory written by :func:`save_ca` (``passphrase`` for an encrypted key)."""
    root = Path(directory)
    state_path = root / CA_STATE_FILE
    if not state_path.exists():
        raise IdentityFileError(
            f"{root} is not a CA directory (no {CA_STATE_FILE}); create one with `pilotchain identity ca-init`"
        )
    try:
        state = msgspec.json.decode(_read(state_path, private=True), type=_CaFile)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # invalid UTF-8 in a string is the latter
        raise IdentityFileError(f"{state_path} is damaged: {exc}") from exc
    if state.format != CA_FORMAT:
        raise IdentityFileError(
            f"{state_path} has format {state.format!r}; this build reads {CA_FORMAT!r}"
        )
    suite = _suite(state_path, state.suite)
    try:
        org_certificate = dearmor(state.org_certificate, OrgCertificate)
    except CodecError as exc:
        raise IdentityFileError(f"{state_path}: the org certificate is damaged: {exc}") from exc
    if org_certificate.org_id != state.org:
        raise IdentityFileError(f"{state_path}: the 'org' field does not match the org certificate")
    key_path = root / CA_KEY_FILE
    private_key = _private_key(
        key_path, suite, _text(key_path, _read(key_path, private=True)), passphrase
    )
    try:
        return CertificateAuthority(suite, private_key, org_certificate, state.next_serial)
    except IdentityLayerError as exc:
        raise IdentityFileError(f"{root}: {exc}") from exc

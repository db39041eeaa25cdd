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
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import msgspec

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


def _private_key(path: Path, suite: Suite, pem: str) -> PrivateKey:
    try:
        return suite.load_private_key_pem(pem.encode("ascii"))
    except (CryptoError, UnicodeEncodeError) as exc:
        raise IdentityFileError(
            f"{path}: the private key is not a {suite.name} PKCS#8 PEM key"
        ) from exc


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
    path: str | os.PathLike[str], bundle: IdentityBundle, *, overwrite: bool = False
) -> None:
    """Write ``bundle`` as an identity file with mode 0600."""
    cert = bundle.certificate
    content = _IdentityFile(
        IDENTITY_FORMAT,
        bundle.suite.name,
        cert.org_id,
        cert.subject,
        armor_record(cert),
        bundle.private_key.to_pem().decode("ascii"),
    )
    _write_atomic(
        Path(path),
        msgspec.json.format(msgspec.json.encode(content)) + b"\n",
        _PRIVATE_MODE,
        overwrite=overwrite,
    )


def load_identity(path: str | os.PathLike[str]) -> IdentityBundle:
    """Read an identity file; checks permissions, format, and that key and certificate match."""
    file_path = Path(path)
    data = _read(file_path, private=True)
    try:
        content = msgspec.json.decode(data, type=_IdentityFile)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
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
    try:
        return IdentityBundle(
            suite, certificate, _private_key(file_path, suite, content.private_key)
        )
    except IdentityFileError as exc:
        raise IdentityFileError(f"{file_path}: {exc}") from exc


# -- CA directories -------------------------------------------------------------------------------


def save_ca(
    directory: str | os.PathLike[str], ca: CertificateAuthority, *, overwrite: bool = False
) -> None:
    """Write (or, with ``overwrite``, update) a CA directory: key, state, org certificate."""
    root = Path(directory)
    if not overwrite and (root / CA_STATE_FILE).exists():
        raise IdentityFileError(f"{root} already holds a CA; choose another directory")
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise IdentityFileError(f"cannot create {root}: {exc.strerror or exc}") from exc
    key_path = root / CA_KEY_FILE
    key_pem = ca.private_key.to_pem()
    if overwrite and key_path.exists():
        if (
            _read(key_path, private=True) != key_pem
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


def load_ca(directory: str | os.PathLike[str]) -> CertificateAuthority:
    """Read a CA directory written by :func:`save_ca`."""
    root = Path(directory)
    state_path = root / CA_STATE_FILE
    if not state_path.exists():
        raise IdentityFileError(
            f"{root} is not a CA directory (no {CA_STATE_FILE}); create one with `pilotchain identity ca-init`"
        )
    try:
        state = msgspec.json.decode(_read(state_path, private=True), type=_CaFile)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
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
    private_key = _private_key(key_path, suite, _text(key_path, _read(key_path, private=True)))
    try:
        return CertificateAuthority(suite, private_key, org_certificate, state.next_serial)
    except IdentityLayerError as exc:
        raise IdentityFileError(f"{root}: {exc}") from exc

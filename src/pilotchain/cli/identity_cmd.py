"""`pilotchain identity ...`: org certificate authorities, identity files, revocations, rotations.

The shell around :mod:`pilotchain.identity`: it reads the clock, generates keys, and reads and
writes files. Private keys are written to 0600 files and never printed or logged.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pilotchain.crypto import SUITE_NAMES, CryptoError, Suite, get_suite
from pilotchain.identity import (
    DAY_MS,
    Certificate,
    CertificateAuthority,
    IdentityBundle,
    IdentityFileError,
    IdentityLayerError,
    OrgCertificate,
    certificate_id,
    dearmor,
    format_time_ms,
    load_ca,
    load_identity,
    save_ca,
    save_identity,
    save_record,
)
from pilotchain.identity.armor import armor_label
from pilotchain.identity.files import (
    CA_CERTIFICATE_FILE,
    PASSPHRASE_ENV,
    PassphraseRequired,
    key_passphrase,
)

app = typer.Typer(
    help="Org certificate authorities, identities (certificate + key) and revocations.",
    no_args_is_help=True,
)

#: below this many days left, `show` colours the validity as a warning
WARN_DAYS = 30
#: below this many days left, `show` colours it as critical
CRITICAL_DAYS = 7

# markup off: subjects, reasons and messages may contain "[...]", which must print as is
_out = Console(highlight=False, markup=False)
_err = Console(stderr=True, highlight=False, markup=False)

NowOption = Annotated[
    int | None,
    typer.Option(
        "--now-ms", hidden=True, help="Pretend the time is this (Unix ms); for tests and drills."
    ),
]


PassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help=f"File (mode 0600) whose first line is the key passphrase; default: ${PASSPHRASE_ENV}.",
    ),
]
AskPassphraseOption = Annotated[
    bool, typer.Option("--ask-passphrase", help="Prompt for the key passphrase (hidden input).")
]
_T = TypeVar("_T")


def given_passphrase(passphrase_file: Path | None, ask: bool, *, new: bool = False) -> bytes | None:
    """The passphrase the user gave: ``--passphrase-file``, else a hidden prompt with
    ``--ask-passphrase`` (typed twice for a new key), else $PILOTCHAIN_KEY_PASSPHRASE, else None."""
    if passphrase_file is None and ask:
        text = typer.prompt(
            "New key passphrase" if new else "Key passphrase", hide_input=True,
            confirmation_prompt=new,
        )
        return str(text).encode("utf-8")
    return key_passphrase(passphrase_file)


def unlocked(
    load: Callable[[bytes | None], _T], passphrase: bytes | None
) -> tuple[_T, bytes | None]:
    """``load(passphrase)`` and the passphrase that worked: an encrypted key without a passphrase
    prompts when a terminal is attached (otherwise the error says how to give one)."""
    try:
        return load(passphrase), passphrase
    except PassphraseRequired:
        if passphrase is not None or not sys.stdin.isatty():
            raise
        typed = str(typer.prompt("Key passphrase", hide_input=True)).encode("utf-8")
        return load(typed), typed


def _now_ms(now_ms: int | None) -> int:
    return time.time_ns() // 1_000_000 if now_ms is None else now_ms


def _fail(message: str) -> typer.Exit:
    _err.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    return typer.Exit(code=1)


def _suite(name: str) -> Suite:
    try:
        return get_suite(name)
    except (CryptoError, ImportError) as exc:
        raise _fail(f"crypto suite {name!r} is not available: {exc}") from exc


@app.command("ca-init")
def ca_init(
    org: Annotated[
        str, typer.Option("--org", help="Org id, e.g. bank-a (lowercase, digits, '-').")
    ],
    name: Annotated[str, typer.Option("--name", help="The org's display name.")],
    out: Annotated[Path, typer.Option("--out", help="New CA directory (created, mode 0700).")],
    suite: Annotated[
        str, typer.Option("--suite", help=f"Crypto suite: {' or '.join(SUITE_NAMES)}.")
    ] = "intl",
    valid_days: Annotated[
        int, typer.Option("--valid-days", min=1, help="CA validity in days.")
    ] = 3650,
    passphrase_file: PassphraseFileOption = None,
    ask_passphrase: AskPassphraseOption = False,
    now_ms: NowOption = None,
) -> None:
    """Create an org certificate authority: a new CA key and its self-signed org certificate.
    With a passphrase (file, prompt or environment) the CA key is stored encrypted."""
    chosen = _suite(suite)
    try:
        passphrase = given_passphrase(passphrase_file, ask_passphrase, new=True)
        ca = CertificateAuthority.create(
            chosen,
            chosen.generate_private_key(),
            org_id=org,
            display_name=name,
            now_ms=_now_ms(now_ms),
            valid_ms=valid_days * DAY_MS,
        )
        save_ca(out, ca, passphrase=passphrase)
    except IdentityLayerError as exc:
        raise _fail(str(exc)) from exc
    cert = ca.org_certificate
    _out.print(f"created CA for org {cert.org_id!r} ({cert.display_name}), suite {chosen.name}")
    _out.print(f"  CA key id:   {ca.key_id.hex()}")
    _out.print(f"  valid until: {format_time_ms(cert.not_after_ms)}")
    _out.print(f"  org certificate for genesis: {out / CA_CERTIFICATE_FILE}")
    _out.print(f"  keep {out} private: it holds the CA key")


@app.command("issue")
def issue(
    ca_dir: Annotated[Path, typer.Option("--ca", help="The org's CA directory (from ca-init).")],
    name: Annotated[str, typer.Option("--name", help="Subject name, e.g. node-1 or alice.")],
    out: Annotated[Path, typer.Option("--out", help="Identity file to write (mode 0600).")],
    role: Annotated[
        list[str],
        typer.Option("--role", help="admin, validator, client or auditor; repeat for several."),
    ],
    valid_days: Annotated[int, typer.Option("--valid-days", min=1, help="Validity in days.")] = 365,
    passphrase_file: PassphraseFileOption = None,
    ask_passphrase: AskPassphraseOption = False,
    out_passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--out-passphrase-file",
            help="Encrypt the new identity's key with this file's passphrase (default: the CA's).",
        ),
    ] = None,
    now_ms: NowOption = None,
) -> None:
    """Issue an identity: a new key pair and a certificate signed by the org CA, in one file.
    The CA passphrase (if the CA key is encrypted) also encrypts the new key, unless
    --out-passphrase-file names another."""
    try:
        passphrase = given_passphrase(passphrase_file, ask_passphrase)
        ca, passphrase = unlocked(lambda p: load_ca(ca_dir, passphrase=p), passphrase)
        out_passphrase = (
            key_passphrase(out_passphrase_file) if out_passphrase_file is not None else passphrase
        )
        if out.exists():
            raise IdentityFileError(f"{out} already exists; choose another path or remove it first")
        private_key = ca.suite.generate_private_key()
        certificate = ca.issue(
            name,
            role,
            private_key.public_key().to_der(),
            now_ms=_now_ms(now_ms),
            valid_ms=valid_days * DAY_MS,
        )
        save_ca(ca_dir, ca, overwrite=True, passphrase=passphrase)  # persist the serial first
        save_identity(out, IdentityBundle(ca.suite, certificate, private_key), passphrase=out_passphrase)
    except IdentityLayerError as exc:
        raise _fail(str(exc)) from exc
    _out.print(
        f"issued {certificate.org_id}/{certificate.serial} {certificate.subject!r} "
        f"[{', '.join(certificate.roles)}], valid until {format_time_ms(certificate.not_after_ms)}"
    )
    _out.print(f"  identity file: {out} (mode 0600: it holds the private key)")


def _load_shown(path: Path) -> tuple[Certificate | OrgCertificate, bool]:
    """The certificate in ``path`` (identity file, armoured certificate or org certificate) and
    whether the file also holds a private key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise IdentityFileError(f"{path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentityFileError(f"cannot read {path}: {exc}") from exc
    if text.lstrip().startswith("{"):
        try:
            return load_identity(path).certificate, True
        except PassphraseRequired:  # the certificate is public: show it without unlocking
            armoured = json.loads(text).get("certificate", "")
            try:
                return dearmor(armoured, Certificate), True
            except ValueError as exc:
                raise IdentityFileError(f"{path}: {exc}") from exc
    label = armor_label(text)
    try:
        if label == "PILOTCHAIN ORG CERTIFICATE":
            return dearmor(text, OrgCertificate), False
        return dearmor(text, Certificate), False
    except ValueError as exc:
        raise IdentityFileError(f"{path}: {exc}") from exc


def _summary(
    cert: Certificate | OrgCertificate, has_private_key: bool, now_ms: int
) -> dict[str, Any]:
    suite = get_suite(cert.suite)
    days_left = -((now_ms - cert.not_after_ms) // DAY_MS)  # whole days, rounded up
    common = {
        "suite": cert.suite,
        "serial": cert.serial,
        "not_before_ms": cert.not_before_ms,
        "not_after_ms": cert.not_after_ms,
        "not_before": format_time_ms(cert.not_before_ms),
        "not_after": format_time_ms(cert.not_after_ms),
        "days_left": days_left,
        "valid_now": cert.not_before_ms <= now_ms < cert.not_after_ms,
    }
    if isinstance(cert, OrgCertificate):
        return {
            "kind": "org-certificate",
            "subject": cert.display_name,
            "org": cert.org_id,
            "roles": ["ca"],
            **common,
            "key_id": suite.hash(cert.public_key_der).hex(),
            "has_private_key": False,
        }
    return {
        "kind": "certificate",
        "subject": cert.subject,
        "org": cert.org_id,
        "roles": [str(role) for role in cert.roles],
        **common,
        "issuer_key_id": cert.issuer_key_id.hex(),
        "certificate_id": certificate_id(suite, cert).hex(),
        "has_private_key": has_private_key,
    }


@app.command("show")
def show(
    file: Annotated[Path, typer.Argument(help="Identity file, certificate or org certificate.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    now_ms: NowOption = None,
) -> None:
    """Show a certificate: subject, org, roles, validity and days left (never the private key)."""
    try:
        cert, has_private_key = _load_shown(file)
    except IdentityLayerError as exc:
        raise _fail(str(exc)) from exc
    summary = _summary(cert, has_private_key, _now_ms(now_ms))
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    days_left = summary["days_left"]
    if not summary["valid_now"]:
        style = "bold red"
        left = "EXPIRED" if days_left < 0 else f"{days_left} (not yet valid)"
    else:
        style = (
            "red" if days_left < CRITICAL_DAYS else "yellow" if days_left < WARN_DAYS else "green"
        )
        left = str(days_left)
    table = Table(title=f"{summary['kind']} {file}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("subject", summary["subject"])
    table.add_row("org", summary["org"])
    table.add_row("roles", ", ".join(summary["roles"]))
    table.add_row("serial", str(summary["serial"]))
    table.add_row("suite", summary["suite"])
    table.add_row("valid from", summary["not_before"])
    table.add_row("valid until", summary["not_after"])
    table.add_row("days left", Text(left, style=style))
    if "certificate_id" in summary:
        table.add_row("issuer key id", summary["issuer_key_id"])
        table.add_row("certificate id", summary["certificate_id"])
        table.add_row(
            "private key", "in this file (not shown)" if has_private_key else "not in this file"
        )
    else:
        table.add_row("CA key id", summary["key_id"])
    _out.print(table)
    if summary["valid_now"] and days_left < WARN_DAYS:
        _err.print(
            Text.assemble(
                ("warning:", style), f" expires in {days_left} days; issue a new one before then"
            )
        )


@app.command("revoke")
def revoke(
    ca_dir: Annotated[Path, typer.Option("--ca", help="The org's CA directory.")],
    serial: Annotated[
        int, typer.Option("--serial", min=1, help="Serial of the certificate to revoke.")
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Why, e.g. 'key compromised' or 'left the org'.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Revocation file to write; submit it to the chain.")
    ],
    passphrase_file: PassphraseFileOption = None,
    ask_passphrase: AskPassphraseOption = False,
    now_ms: NowOption = None,
) -> None:
    """Sign a revocation of one certificate; submitting it to the chain makes members refuse it."""
    try:
        passphrase = given_passphrase(passphrase_file, ask_passphrase)
        ca, passphrase = unlocked(lambda p: load_ca(ca_dir, passphrase=p), passphrase)
        revocation = ca.revoke(serial, reason, _now_ms(now_ms))
        save_record(out, revocation)
    except IdentityLayerError as exc:
        raise _fail(str(exc)) from exc
    _out.print(
        f"revoked {revocation.org_id}/{revocation.serial} from {format_time_ms(revocation.revoked_at_ms)}: "
        f"{revocation.reason}"
    )
    _out.print(f"  revocation file: {out} (submit it to the chain)")


@app.command("rotate")
def rotate(
    ca_dir: Annotated[
        Path, typer.Option("--ca", help="The org's CA directory (updated in place).")
    ],
    cutover_days: Annotated[
        int,
        typer.Option(
            "--cutover-days",
            min=0,
            help="Identities the old key issued stay accepted this many days; re-issue them before then.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Rotation file to write; submit it to the chain.")
    ],
    valid_days: Annotated[
        int, typer.Option("--valid-days", min=1, help="New CA validity in days.")
    ] = 3650,
    passphrase_file: PassphraseFileOption = None,
    ask_passphrase: AskPassphraseOption = False,
    now_ms: NowOption = None,
) -> None:
    """Move the org CA to a new key: a rotation signed by the old key, for the chain to apply.
    The new key is stored under the same passphrase as the old one."""
    now = _now_ms(now_ms)
    try:
        passphrase = given_passphrase(passphrase_file, ask_passphrase)
        ca, passphrase = unlocked(lambda p: load_ca(ca_dir, passphrase=p), passphrase)
        if out.exists():
            raise IdentityFileError(f"{out} already exists; choose another path or remove it first")
        new_ca, rotation = ca.rotate(
            ca.suite.generate_private_key(),
            now_ms=now,
            valid_ms=valid_days * DAY_MS,
            cutover_ms=now + cutover_days * DAY_MS,
        )
        save_record(out, rotation)
        save_ca(ca_dir, new_ca, overwrite=True, passphrase=passphrase)
    except IdentityLayerError as exc:
        raise _fail(str(exc)) from exc
    _out.print(
        f"rotated org {new_ca.org_id!r} to CA generation {new_ca.org_certificate.serial}, "
        f"key id {new_ca.key_id.hex()}"
    )
    _out.print(
        f"  identities from the old key are accepted until {format_time_ms(rotation.cutover_ms)}; "
        "re-issue them before then"
    )
    _out.print(f"  rotation file: {out} (submit it to the chain); old key kept in {ca_dir}")

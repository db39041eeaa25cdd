"""Shared helpers for the crypto tests."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

SUITE_NAMES = ("intl", "gm")


def der_integer(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 8) // 8 or 1, "big")
    assert len(body) < 128
    return b"\x02" + bytes([len(body)]) + body


def sm2_signature_der(r: int, s: int) -> bytes:
    """DER SEQUENCE { INTEGER r, INTEGER s } (minimal encoding)."""
    body = der_integer(r) + der_integer(s)
    return b"\x30" + bytes([len(body)]) + body


def ed25519_pkcs8_pem(secret: bytes) -> bytes:
    """PKCS#8 PEM of a raw 32-byte Ed25519 secret (as RFC 8032 prints it)."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(secret)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def spki_raw_ed25519(der: bytes) -> bytes:
    """The raw 32-byte key inside an Ed25519 SubjectPublicKeyInfo (fixed 12-byte prefix)."""
    assert der[:12] == bytes.fromhex("302a300506032b6570032100"), der.hex()
    return der[12:]


def pem(label: str, der: bytes) -> bytes:
    """Wrap DER in a PEM block."""
    return (
        f"-----BEGIN {label}-----\n".encode()
        + base64.encodebytes(der)
        + f"-----END {label}-----\n".encode()
    )

"""Crypto suites: one per network, fixed at genesis.

=========  ==================  ========  =============  =========================================
suite      signatures          hash      AEAD           encodings
=========  ==================  ========  =============  =========================================
``intl``   Ed25519 (RFC 8032)  SHA-256   AES-256-GCM    PKCS#8 / SPKI PEM; signature raw 64 bytes
``gm``     SM2 (GB/T 32918)    SM3       SM4-GCM        PKCS#8 / SPKI PEM; signature DER (r, s)
=========  ==================  ========  =============  =========================================

Everything above this package sees only :class:`Suite`, :class:`PrivateKey` and
:class:`PublicKey`. Public keys travel as SubjectPublicKeyInfo DER bytes (the canonical form that
identities and the chain store); :meth:`Suite.public_key` turns them into verifier objects and
caches them, so a hot verifier does not re-parse keys. A key has exactly one accepted DER
encoding (gm: named curve, uncompressed point), so keys can be compared as bytes.
:mod:`pilotchain.crypto.parallel` (a shell module, not re-exported here) spreads large batches
over one thread per core. Details, the OpenSSL
binding behind SM2 and measured numbers: ``docs/crypto.md``.

Key agreement (X25519 for ``intl``, ECDH on the SM2 curve for ``gm``) and HKDF over the suite's
hash live in :mod:`pilotchain.crypto.kex`; :func:`key_exchange_for`, :func:`hkdf_extract`,
:func:`hkdf_expand` and :func:`hmac_digest` are re-exported here.

Sealing to a recipient's public key (ephemeral X25519 + HKDF-SHA-256 + AES-256-GCM for
``intl``; SM2 encryption, GB/T 32918.4, with an SM4-GCM envelope for longer data, for ``gm``) is
:mod:`pilotchain.crypto.sealing`: :func:`load_seal_public_key`, :func:`seal`,
:func:`load_seal_private_key`, :func:`open_sealed`, re-exported here.

Error tree::

    CryptoError
    ├── KeyFormatError      a key that is not a valid PEM/DER key of this suite
    ├── UnsupportedSuite    a suite name pilotchain does not know
    └── SealError           sealed bytes that cannot be opened; .reason is a SealFailure:
                            MALFORMED, WRONG_SUITE or CANNOT_DECRYPT (wrong key, altered or
                            cut-off bytes, other associated data: never said which)
"""

from __future__ import annotations

from pilotchain.crypto.base import (
    CryptoError,
    KeyFormatError,
    PrivateKey,
    PublicKey,
    Suite,
    UnsupportedSuite,
)
from pilotchain.crypto.kex import (
    KeyExchange,
    hkdf_expand,
    hkdf_extract,
    hmac_digest,
    key_exchange_for,
)
from pilotchain.crypto.sealing import (
    SealError,
    SealFailure,
    SealPrivateKey,
    SealPublicKey,
    load_seal_private_key,
    load_seal_public_key,
    open_sealed,
    seal,
    sealed_suite,
)

__all__ = [
    "CryptoError",
    "KeyExchange",
    "KeyFormatError",
    "PrivateKey",
    "PublicKey",
    "SealError",
    "SealFailure",
    "SealPrivateKey",
    "SealPublicKey",
    "Suite",
    "UnsupportedSuite",
    "SUITE_NAMES",
    "get_suite",
    "hkdf_expand",
    "hkdf_extract",
    "hmac_digest",
    "key_exchange_for",
    "load_seal_private_key",
    "load_seal_public_key",
    "open_sealed",
    "seal",
    "sealed_suite",
]

SUITE_NAMES = ("intl", "gm")

_suites: dict[str, Suite] = {}


def get_suite(name: str) -> Suite:
    """The suite called ``name`` (``"intl"`` or ``"gm"``)."""
    suite = _suites.get(name)
    if suite is not None:
        return suite
    if name == "intl":
        from pilotchain.crypto.intl import IntlSuite

        suite = IntlSuite()
    elif name == "gm":
        from pilotchain.crypto.gm import GmSuite

        suite = GmSuite()
    else:
        raise UnsupportedSuite(
            f"unknown crypto suite {name!r}; choose one of {', '.join(SUITE_NAMES)}"
        )
    _suites[name] = suite
    return suite

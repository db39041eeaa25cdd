"""Sealing: encrypt to a recipient's public key, so that only the holder of its private key
can read the result (hybrid public-key encryption).

========  =====================================================================================
suite     construction
========  =====================================================================================
``intl``  ephemeral X25519 (RFC 7748) with the recipient's key, HKDF-SHA-256 (RFC 5869) of the
          shared secret, AES-256-GCM over the data. Recipients are X25519 keys or the Ed25519
          keys ``pilotchain crypto keygen --suite intl`` makes (mapped to X25519 by libsodium's
          ``crypto_sign_ed25519_{pk,sk}_to_curve25519``).
``gm``    SM2 public-key encryption (GB/T 32918.4, KDF and hash SM3) through OpenSSL 3. For 1 to
          255 bytes without associated data the sealed bytes are exactly the GB/T 35276 DER
          ciphertext ``SEQUENCE { x, y, hash, ciphertext }`` that ``openssl pkeyutl -encrypt``
          writes and ``openssl pkeyutl -decrypt`` reads. Otherwise (0 bytes, longer data, or
          associated data) a random SM4 key is SM2-encrypted and SM4-GCM encrypts the data.
========  =====================================================================================

Both envelopes start with the magic ``PCS`` (``50 43 53``), a version byte (1) and a suite id
(1 intl, 2 gm); the bare SM2 ciphertext starts with ``30`` (a DER SEQUENCE), so every sealed byte
string says what it is (:func:`sealed_suite`). The layouts byte by byte, the HKDF info string and
the openssl commands are in ``docs/crypto.md`` ("Sealing").

Opening fails with :class:`SealError`, whose :attr:`SealError.reason` is one of
:class:`SealFailure`: ``MALFORMED`` (not sealed bytes, truncated before the ciphertext, an
unknown version), ``WRONG_SUITE`` (sealed for the other suite) or ``CANNOT_DECRYPT``. The last
one is deliberately the only answer for a wrong key, a changed byte, a cut-off ciphertext and
the wrong associated data alike: which step failed is not said.

Randomness: :func:`seal` draws the ephemeral key, data key and nonce from libsodium's CSPRNG
unless the caller passes them (tests pass them to reproduce the fixed vectors in
``tests/crypto/seal_vectors.json``). The SM2 step draws its own k inside OpenSSL.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final

import nacl.bindings
import nacl.exceptions
import nacl.utils
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from pilotchain.crypto.base import CryptoError, KeyFormatError, PrivateKey, PublicKey, Suite
from pilotchain.crypto.kex import X25519KeyExchange, hkdf_expand, hkdf_extract
from pilotchain.errors import InvariantBroken

if TYPE_CHECKING:
    from pilotchain.crypto._openssl import Sm2Key

__all__ = [
    "GM_DIRECT_MAX",
    "INTL_INFO_DOMAIN",
    "SEAL_MAGIC",
    "SEAL_VERSION",
    "SealError",
    "SealFailure",
    "SealPrivateKey",
    "SealPublicKey",
    "load_seal_private_key",
    "load_seal_public_key",
    "open_sealed",
    "seal",
    "sealed_suite",
]

SEAL_MAGIC: Final = b"PCS"
SEAL_VERSION: Final = 1
_SUITE_IDS: Final = {"intl": 1, "gm": 2}
_SUITE_NAMES: Final = {number: name for name, number in _SUITE_IDS.items()}
_HEADER_SIZE: Final = len(SEAL_MAGIC) + 2
_DER_SEQUENCE: Final = 0x30

#: HKDF-SHA-256 info = this || ephemeral X25519 public key (32) || recipient X25519 public key (32)
INTL_INFO_DOMAIN: Final = b"pilotchain/seal/v1/intl/x25519-hkdf-sha256-aes-256-gcm\x00"
_X25519_SIZE: Final = 32
_NONCE_SIZE: Final = 12
_TAG_SIZE: Final = 16
_INTL_AES_KEY_SIZE: Final = 32
_INTL_PREFIX_SIZE: Final = _HEADER_SIZE + _X25519_SIZE + _NONCE_SIZE

#: Longest data the gm suite seals as a bare GB/T 35276 SM2 ciphertext (from 1 byte up)
GM_DIRECT_MAX: Final = 255
_SM4_KEY_SIZE: Final = 16
_GM_LENGTH_SIZE: Final = 2

_X25519 = X25519KeyExchange()


class SealFailure(enum.Enum):
    """Why :func:`open_sealed` refused."""

    MALFORMED = "malformed"
    WRONG_SUITE = "wrong_suite"
    CANNOT_DECRYPT = "cannot_decrypt"


class SealError(CryptoError):
    """Sealed bytes that cannot be opened; :attr:`reason` says which kind of failure."""

    def __init__(self, reason: SealFailure, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _cannot_decrypt() -> SealError:
    return SealError(
        SealFailure.CANNOT_DECRYPT,
        "cannot decrypt: not sealed to this key, or the sealed bytes or associated data changed",
    )


def _malformed(why: str) -> SealError:
    return SealError(SealFailure.MALFORMED, f"not a pilotchain sealed envelope: {why}")


# -- keys -----------------------------------------------------------------------------------------


class _SealKey:
    """One half of a sealing key pair: raw X25519 bytes (intl) or an OpenSSL SM2 key (gm)."""

    __slots__ = ("suite_name", "_x25519", "_sm2")

    def __init__(self, suite_name: str, *, x25519: bytes = b"", sm2: Sm2Key | None = None) -> None:
        self.suite_name = suite_name
        self._x25519 = x25519
        self._sm2 = sm2


class SealPublicKey(_SealKey):
    """A recipient :func:`seal` encrypts to. Make one with :func:`load_seal_public_key`."""

    __slots__ = ()


class SealPrivateKey(_SealKey):
    """The key :func:`open_sealed` decrypts with. Make one with :func:`load_seal_private_key`."""

    __slots__ = ()

    def public_key(self) -> SealPublicKey:
        """The recipient key that seals to this private key."""
        if self._sm2 is not None:
            from pilotchain.crypto._openssl import Sm2Key

            return SealPublicKey("gm", sm2=Sm2Key.from_public_der(self._sm2.public_der()))
        return SealPublicKey("intl", x25519=_X25519.keypair(self._x25519)[1])


def _x25519_from_ed25519_public(raw: bytes) -> bytes:
    try:
        return bytes(nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(raw))
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError) as exc:
        raise KeyFormatError("an Ed25519 public key that has no X25519 form") from exc


def _x25519_from_ed25519_seed(seed: bytes) -> bytes:
    _public, secret = nacl.bindings.crypto_sign_seed_keypair(seed)
    return bytes(nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(secret))


_NOT_INTL = (
    "not an X25519 or Ed25519 key (the intl suite seals with X25519; was the key made for gm?)"
)


def _intl_public(data: bytes) -> SealPublicKey:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"not a SubjectPublicKeyInfo public key: {exc}") from exc
    except UnsupportedAlgorithm as exc:  # e.g. an SM2 key, whose curve cryptography lacks
        raise KeyFormatError(f"{_NOT_INTL}: {exc}") from exc
    raw_format = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(key, x25519.X25519PublicKey):
        return SealPublicKey("intl", x25519=key.public_bytes(*raw_format))
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = _x25519_from_ed25519_public(key.public_bytes(*raw_format))
        return SealPublicKey("intl", x25519=raw)
    raise KeyFormatError(_NOT_INTL)


def _intl_private(pem: bytes) -> SealPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"not an unencrypted PKCS#8 PEM private key: {exc}") from exc
    except UnsupportedAlgorithm as exc:
        raise KeyFormatError(f"{_NOT_INTL}: {exc}") from exc
    raw_format = (
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    if isinstance(key, x25519.X25519PrivateKey):
        return SealPrivateKey("intl", x25519=key.private_bytes(*raw_format))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(*raw_format)
        return SealPrivateKey("intl", x25519=_x25519_from_ed25519_seed(seed))
    raise KeyFormatError(_NOT_INTL)


def load_seal_public_key(suite: Suite, data: bytes | PublicKey) -> SealPublicKey:
    """The recipient for a SubjectPublicKeyInfo key (PEM or DER bytes, or a suite's
    :class:`PublicKey`): X25519 or Ed25519 for ``intl``, SM2 for ``gm`` — including the PEM
    that ``openssl pkey -pubout`` writes. :class:`KeyFormatError` for anything else."""
    if isinstance(data, PublicKey):
        data = data.to_der()
    data = bytes(data)
    if suite.name == "intl":
        return _intl_public(data)
    if suite.name == "gm":
        from pilotchain.crypto._openssl import Sm2Key

        if data.lstrip().startswith(b"-----BEGIN"):
            return SealPublicKey("gm", sm2=Sm2Key.from_public_pem(data))
        return SealPublicKey("gm", sm2=Sm2Key.from_public_der(data))
    raise CryptoError(f"no sealing for suite {suite.name!r}")


def load_seal_private_key(suite: Suite, data: bytes | PrivateKey) -> SealPrivateKey:
    """The opener for an unencrypted PEM private key (or a suite's :class:`PrivateKey`):
    X25519 or Ed25519 PKCS#8 for ``intl``; SM2 PKCS#8 or SEC 1 for ``gm``, as
    ``openssl genpkey -algorithm SM2`` and ``pilotchain crypto keygen`` write them."""
    if isinstance(data, PrivateKey):
        data = data.to_pem()
    data = bytes(data)
    if suite.name == "intl":
        return _intl_private(data)
    if suite.name == "gm":
        from pilotchain.crypto._openssl import Sm2Key

        return SealPrivateKey("gm", sm2=Sm2Key.from_private_pem(data))
    raise CryptoError(f"no sealing for suite {suite.name!r}")


# -- sealing --------------------------------------------------------------------------------------


def _header(suite_name: str) -> bytes:
    return SEAL_MAGIC + bytes([SEAL_VERSION, _SUITE_IDS[suite_name]])


def _fresh(value: bytes | None, size: int, name: str) -> bytes:
    if value is None:
        return bytes(nacl.utils.random(size))
    if len(value) != size:
        raise CryptoError(f"{name} must be {size} bytes, got {len(value)}")
    return bytes(value)


def _intl_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    suite = _suite("intl")
    prk = hkdf_extract(suite, b"", shared)
    info = INTL_INFO_DOMAIN + ephemeral_public + recipient_public
    return hkdf_expand(suite, prk, info, _INTL_AES_KEY_SIZE)


def seal(
    recipient: SealPublicKey,
    plaintext: bytes,
    *,
    associated_data: bytes = b"",
    ephemeral_private: bytes | None = None,
    data_key: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """``plaintext`` encrypted to ``recipient``; only its private key opens the result.

    ``associated_data`` is authenticated, not encrypted, and not stored: :func:`open_sealed`
    must be given the same bytes. The keyword arguments after it fix the randomness, for test
    vectors only: ``ephemeral_private`` (32 bytes, intl), ``data_key`` (16 bytes, gm envelope)
    and ``nonce`` (12 bytes); by default each is fresh from the CSPRNG. A fixed ``data_key``
    makes gm write the envelope even for 1 to 255 bytes.
    """
    plaintext = bytes(plaintext)
    associated_data = bytes(associated_data)
    if recipient.suite_name == "intl":
        if data_key is not None:
            raise CryptoError("intl sealing derives its key; it takes no data_key")
        ephemeral, ephemeral_public = _X25519.keypair(
            _fresh(ephemeral_private, _X25519_SIZE, "ephemeral_private")
        )
        key = _intl_key(
            _X25519.shared_secret(ephemeral, recipient._x25519), ephemeral_public, recipient._x25519
        )
        prefix = _header("intl") + ephemeral_public + _fresh(nonce, _NONCE_SIZE, "nonce")
        return prefix + _suite("intl").aead_encrypt(
            key, prefix[-_NONCE_SIZE:], plaintext, prefix + associated_data
        )
    if not (recipient.suite_name == "gm" and recipient._sm2 is not None):
        raise InvariantBroken('invariant broken: recipient.suite_name == "gm" and recipient._sm2 is not None')
    if ephemeral_private is not None:
        raise CryptoError("gm sealing has no ephemeral_private (OpenSSL draws SM2's k)")
    if 1 <= len(plaintext) <= GM_DIRECT_MAX and not associated_data and data_key is None:
        return recipient._sm2.encrypt(plaintext)
    key = _fresh(data_key, _SM4_KEY_SIZE, "data_key")
    sealed_key = recipient._sm2.encrypt(key)
    prefix = (
        _header("gm")
        + len(sealed_key).to_bytes(_GM_LENGTH_SIZE, "big")
        + sealed_key
        + _fresh(nonce, _NONCE_SIZE, "nonce")
    )
    return prefix + _suite("gm").aead_encrypt(
        key, prefix[-_NONCE_SIZE:], plaintext, prefix + associated_data
    )


def _suite(suite_name: str) -> Suite:
    from pilotchain.crypto import get_suite  # not at import time: the package imports this module

    return get_suite(suite_name)


# -- opening --------------------------------------------------------------------------------------


def sealed_suite(sealed: bytes) -> str:
    """The suite ``sealed`` was sealed for, read from its first bytes (nothing is decrypted);
    :class:`SealError` (``MALFORMED``) when they are neither an envelope nor an SM2 ciphertext."""
    if not sealed:
        raise _malformed("empty")
    if sealed[0] == _DER_SEQUENCE:
        return "gm"
    if len(sealed) < _HEADER_SIZE:
        if SEAL_MAGIC.startswith(sealed[: len(SEAL_MAGIC)]):
            raise _malformed(f"truncated to {len(sealed)} bytes")
        raise _malformed("it starts with neither the magic 'PCS' nor a DER SEQUENCE")
    if sealed[: len(SEAL_MAGIC)] != SEAL_MAGIC:
        raise _malformed("it starts with neither the magic 'PCS' nor a DER SEQUENCE")
    version, suite_id = sealed[len(SEAL_MAGIC)], sealed[len(SEAL_MAGIC) + 1]
    if version != SEAL_VERSION:
        raise _malformed(
            f"envelope version {version}; this pilotchain reads version {SEAL_VERSION}"
        )
    name = _SUITE_NAMES.get(suite_id)
    if name is None:
        raise _malformed(f"unknown suite id {suite_id}")
    return name


def open_sealed(key: SealPrivateKey, sealed: bytes, *, associated_data: bytes = b"") -> bytes:
    """The plaintext :func:`seal` sealed to ``key``'s public key, given the same associated
    data; :class:`SealError` otherwise (see :class:`SealFailure`)."""
    sealed = bytes(sealed)
    associated_data = bytes(associated_data)
    suite_name = sealed_suite(sealed)
    if suite_name != key.suite_name:
        raise SealError(
            SealFailure.WRONG_SUITE,
            f"sealed for the {suite_name} suite, but the key is a {key.suite_name} key",
        )
    if suite_name == "intl":
        return _open_intl(key, sealed, associated_data)
    return _open_gm(key, sealed, associated_data)


def _open_intl(key: SealPrivateKey, sealed: bytes, associated_data: bytes) -> bytes:
    if len(sealed) < _INTL_PREFIX_SIZE + _TAG_SIZE:
        raise _malformed(
            f"truncated: {len(sealed)} bytes, an intl envelope has at least "
            f"{_INTL_PREFIX_SIZE + _TAG_SIZE}"
        )
    prefix = sealed[:_INTL_PREFIX_SIZE]
    ephemeral_public = prefix[_HEADER_SIZE : _HEADER_SIZE + _X25519_SIZE]
    recipient_public = _X25519.keypair(key._x25519)[1]
    try:
        shared = _X25519.shared_secret(key._x25519, ephemeral_public)
        aes_key = _intl_key(shared, ephemeral_public, recipient_public)
        return _suite("intl").aead_decrypt(
            aes_key, prefix[-_NONCE_SIZE:], sealed[_INTL_PREFIX_SIZE:], prefix + associated_data
        )
    except CryptoError:  # a low-order ephemeral key or a failed tag: the same answer
        raise _cannot_decrypt() from None


def _open_gm(key: SealPrivateKey, sealed: bytes, associated_data: bytes) -> bytes:
    if not (key._sm2 is not None):
        raise InvariantBroken('invariant broken: key._sm2 is not None')
    if sealed[0] == _DER_SEQUENCE:
        if associated_data:  # a bare SM2 ciphertext authenticates no associated data
            raise _cannot_decrypt()
        plaintext = key._sm2.decrypt(sealed)
        if plaintext is None:
            raise _cannot_decrypt()
        return plaintext
    length_end = _HEADER_SIZE + _GM_LENGTH_SIZE
    if len(sealed) < length_end:
        raise _malformed(f"truncated: {len(sealed)} bytes, before the SM2 ciphertext's length")
    sealed_key_end = length_end + int.from_bytes(sealed[_HEADER_SIZE:length_end], "big")
    prefix_end = sealed_key_end + _NONCE_SIZE
    if len(sealed) < prefix_end + _TAG_SIZE:
        raise _malformed(
            f"truncated: {len(sealed)} bytes, a gm envelope with this SM2 ciphertext has at "
            f"least {prefix_end + _TAG_SIZE}"
        )
    data_key = key._sm2.decrypt(sealed[length_end:sealed_key_end])
    if data_key is None or len(data_key) != _SM4_KEY_SIZE:
        raise _cannot_decrypt()
    prefix = sealed[:prefix_end]
    try:
        return _suite("gm").aead_decrypt(
            data_key, prefix[-_NONCE_SIZE:], sealed[prefix_end:], prefix + associated_data
        )
    except CryptoError:
        raise _cannot_decrypt() from None

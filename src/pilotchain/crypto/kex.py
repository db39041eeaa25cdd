"""Ephemeral key agreement and HKDF (pure: randomness is an argument, nothing is drawn here).

Used by the p2p link handshake and by :mod:`pilotchain.crypto.sealing`.

========  =====================================  ====================  ==================
suite     ephemeral key agreement                KDF                   link AEAD
========  =====================================  ====================  ==================
``intl``  X25519 (RFC 7748)                      HKDF-SHA-256          AES-256-GCM
``gm``    ECDH on the SM2 curve (GB/T 32918.3    HKDF-SM3 (RFC 5869    SM4-GCM
          point multiplication, x coordinate)    with HMAC-SM3)
========  =====================================  ====================  ==================

A :class:`KeyExchange` turns ``private_key_bytes`` random bytes into an ephemeral key pair and
computes the shared secret with the peer's public key. Invalid peer keys (not on the curve,
low order, an all-zero X25519 result) raise :class:`pilotchain.crypto.CryptoError`.

The ``gm`` exchange is plain ECDH on the SM2 curve (the x coordinate of ``d·Q``), not the
three-pass SM2 key agreement protocol of GB/T 32918.3: the handshake authenticates the shares
with signatures and derives keys with HKDF-SM3 itself. Its OpenSSL glue, and why it uses the
``EC_POINT`` API rather than ``EVP_PKEY_derive``, is in ``pilotchain.crypto._sm2_ecdh``; it is
loaded on first use, so an ``intl`` node never needs ``libcrypto.so.3``.
"""

from __future__ import annotations

import abc
from typing import Final

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from pilotchain.crypto.base import CryptoError, Suite
from pilotchain.errors import InvariantBroken

__all__ = [
    "HKDF_OUTPUT_BYTES_MAX",
    "KeyExchange",
    "Sm2KeyExchange",
    "X25519KeyExchange",
    "hkdf_expand",
    "hkdf_extract",
    "hmac_digest",
    "key_exchange_for",
]

#: RFC 5869: at most 255 blocks of output
HKDF_OUTPUT_BYTES_MAX: Final = 255 * 32


class KeyExchange(abc.ABC):
    """Ephemeral Diffie-Hellman for one suite."""

    #: e.g. "X25519"
    name: str
    #: random bytes consumed to make one private key
    private_key_bytes: int
    #: size of an encoded public key
    public_key_bytes: int

    @abc.abstractmethod
    def keypair(self, random: bytes) -> tuple[bytes, bytes]:
        """``(private, public)`` made from exactly ``private_key_bytes`` random bytes."""

    @abc.abstractmethod
    def shared_secret(self, private: bytes, peer_public: bytes) -> bytes:
        """The shared secret; :class:`CryptoError` for an invalid ``peer_public``."""


class X25519KeyExchange(KeyExchange):
    name = "X25519"
    private_key_bytes = 32
    public_key_bytes = 32

    def keypair(self, random: bytes) -> tuple[bytes, bytes]:
        if not (len(random) == self.private_key_bytes):
            raise InvariantBroken('invariant broken: len(random) == self.private_key_bytes')
        public = X25519PrivateKey.from_private_bytes(random).public_key().public_bytes_raw()
        return random, public

    def shared_secret(self, private: bytes, peer_public: bytes) -> bytes:
        if len(peer_public) != self.public_key_bytes:
            raise CryptoError(f"an X25519 public key is 32 bytes, got {len(peer_public)}")
        try:
            # cryptography refuses low-order points (an all-zero shared secret) with ValueError
            return X25519PrivateKey.from_private_bytes(private).exchange(
                X25519PublicKey.from_public_bytes(peer_public)
            )
        except ValueError as exc:
            raise CryptoError(f"X25519 key agreement failed: {exc}") from exc


class Sm2KeyExchange(KeyExchange):
    """ECDH on the SM2 curve; see ``pilotchain.crypto._sm2_ecdh`` for why not EVP_PKEY_derive."""

    name = "SM2-ECDH"
    # 64 random bytes reduced mod n - 1: the bias is below 2^-250
    private_key_bytes = 64
    public_key_bytes = 65

    def keypair(self, random: bytes) -> tuple[bytes, bytes]:
        from pilotchain.crypto._sm2_ecdh import SM2_CURVE_ORDER, sm2_public_point

        if not (len(random) == self.private_key_bytes):
            raise InvariantBroken('invariant broken: len(random) == self.private_key_bytes')
        scalar = 1 + int.from_bytes(random, "big") % (SM2_CURVE_ORDER - 1)
        private = scalar.to_bytes(32, "big")
        return private, sm2_public_point(private)

    def shared_secret(self, private: bytes, peer_public: bytes) -> bytes:
        from pilotchain.crypto._sm2_ecdh import sm2_ecdh

        return sm2_ecdh(private, peer_public)


_EXCHANGES: dict[str, KeyExchange] = {}


def key_exchange_for(suite: Suite) -> KeyExchange:
    """X25519 for ``intl``, SM2-curve ECDH for ``gm``."""
    exchange = _EXCHANGES.get(suite.name)
    if exchange is None:
        if suite.name == "intl":
            exchange = X25519KeyExchange()
        elif suite.name == "gm":
            exchange = Sm2KeyExchange()
        else:
            raise CryptoError(f"no key exchange for suite {suite.name!r}")
        _EXCHANGES[suite.name] = exchange
    return exchange


def _hash_algorithm(suite: Suite) -> hashes.HashAlgorithm:
    if suite.name == "gm":
        return hashes.SM3()
    if not (suite.name == "intl"):
        raise InvariantBroken(f"X25519 is the intl suite's key exchange, not {suite.name!r}'s")
    return hashes.SHA256()


def hmac_digest(suite: Suite, key: bytes, data: bytes) -> bytes:
    """HMAC over the suite's hash (HMAC-SHA-256 or HMAC-SM3)."""
    mac = hmac.HMAC(key, _hash_algorithm(suite))
    mac.update(data)
    return mac.finalize()


def hkdf_extract(suite: Suite, salt: bytes, input_key_material: bytes) -> bytes:
    """RFC 5869 HKDF-Extract with the suite's hash."""
    return hmac_digest(suite, salt or bytes(suite.digest_size), input_key_material)


def hkdf_expand(suite: Suite, pseudorandom_key: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand with the suite's hash."""
    if not 1 <= length <= HKDF_OUTPUT_BYTES_MAX:
        raise CryptoError(f"HKDF output must be 1..{HKDF_OUTPUT_BYTES_MAX} bytes, not {length}")
    output = b""
    block = b""
    counter = 1
    while len(output) < length:
        block = hmac_digest(suite, pseudorandom_key, block + info + bytes([counter]))
        output += block
        counter += 1
    return output[:length]

"""The link handshake's key agreement and HKDF, which live in :mod:`pilotchain.crypto.kex`.

Kept as a name for code written against it; new code imports from ``pilotchain.crypto.kex``.
"""

from __future__ import annotations

from pilotchain.crypto.kex import hkdf_expand, hkdf_extract, hmac_digest, key_exchange_for

__all__ = ["hkdf_expand", "hkdf_extract", "hmac_digest", "key_exchange_for"]

"""Elliptic-curve Diffie-Hellman on the SM2 curve through OpenSSL 3's ``libcrypto``.

Why not ``EVP_PKEY_derive``: OpenSSL 3.0 does ECDH on the SM2 curve only for keys it generated
itself. The ``EC`` key manager refuses to import a key on curve SM2 (``EVP_PKEY_fromdata`` fails,
"sm2 keys must be SM2 keys"), and keys of type ``SM2`` — the only kind it will import — have no
key-exchange operation ("operation not supported for this keytype"). The handshake must build
its ephemeral key from injected randomness (so that tests and the simulator are deterministic)
and must import the peer's public point, so neither path works. The low-level ``EC_POINT`` API
does both and is still exported by every OpenSSL 3 build (deprecated, not removed):

==============================================  ===============================================
what                                            OpenSSL calls
==============================================  ===============================================
the curve                                       ``EC_GROUP_new_by_curve_name(NID_sm2)``
public point of a private scalar                ``EC_POINT_mul(group, R, d, NULL, NULL, ctx)``
parse the peer's point (checks it is on curve)  ``EC_POINT_oct2point``
shared point                                    ``EC_POINT_mul(group, R, NULL, Q, d, ctx)``
x coordinate (the shared secret, as in ECDH)    ``EC_POINT_get_affine_coordinates``
==============================================  ===============================================

``EC_POINT_mul`` with a single scalar uses OpenSSL's constant-time Montgomery ladder. The SM2
curve has cofactor 1, so any point on the curve other than infinity is in the prime-order group
and no small-subgroup check is needed beyond "on the curve, not infinity".

The same rules as :mod:`pilotchain.crypto._openssl`: declared ``argtypes``/``restype`` for every
function, every return checked, every object freed in a ``finally``, errors carry OpenSSL's own
message. This module is imported only by the ``gm`` key exchange
(:class:`pilotchain.crypto.kex.Sm2KeyExchange`), never directly from outside the package.
"""

from __future__ import annotations

import ctypes
from typing import Final

from pilotchain.crypto._openssl import _declare, _fail, _lib
from pilotchain.crypto.base import CryptoError
from pilotchain.crypto.gm import SM2_CURVE_ORDER
from pilotchain.errors import InvariantBroken

__all__ = [
    "SM2_CURVE_ORDER",
    "SM2_POINT_BYTES",
    "SM2_SCALAR_BYTES",
    "sm2_ecdh",
    "sm2_public_point",
]

SM2_SCALAR_BYTES: Final = 32
#: uncompressed SEC 1 point: 0x04 || x(32) || y(32)
SM2_POINT_BYTES: Final = 65
_POINT_CONVERSION_UNCOMPRESSED: Final = 4
_NID_SM2: Final = 1172

_p = ctypes.c_void_p
_int = ctypes.c_int
_size = ctypes.c_size_t
_buf = ctypes.c_char_p

_declare("OBJ_sn2nid", _int, _buf)
_declare("EC_GROUP_new_by_curve_name", _p, _int)
_declare("EC_POINT_new", _p, _p)
_declare("EC_POINT_free", None, _p)
_declare("EC_POINT_clear_free", None, _p)
_declare("EC_POINT_oct2point", _int, _p, _p, _buf, _size, _p)
_declare("EC_POINT_point2oct", _size, _p, _p, _int, _buf, _size, _p)
_declare("EC_POINT_mul", _int, _p, _p, _p, _p, _p, _p)
_declare("EC_POINT_is_at_infinity", _int, _p, _p)
_declare("EC_POINT_get_affine_coordinates", _int, _p, _p, _p, _p, _p)
_declare("BN_bin2bn", _p, _buf, _int, _p)
_declare("BN_bn2binpad", _int, _p, _buf, _int)
_declare("BN_new", _p)
_declare("BN_free", None, _p)
_declare("BN_clear_free", None, _p)
_declare("BN_CTX_new", _p)
_declare("BN_CTX_free", None, _p)


def _sm2_group() -> int:
    nid = _lib.OBJ_sn2nid(b"SM2")
    if not (nid == _NID_SM2):
        raise InvariantBroken(f"OpenSSL names SM2 with NID {nid}, expected {_NID_SM2}")
    group = _lib.EC_GROUP_new_by_curve_name(nid)
    if not group:
        raise _fail("this OpenSSL has no SM2 curve")
    # Built once, never freed: an EC_GROUP is only read after construction (thread-safe).
    return int(group)


_GROUP: Final = _sm2_group()


def _scalar(private_scalar: bytes) -> int:
    """A BIGNUM for ``private_scalar`` (caller frees it with BN_clear_free)."""
    if len(private_scalar) != SM2_SCALAR_BYTES:
        raise CryptoError(f"an SM2 private scalar is {SM2_SCALAR_BYTES} bytes, got {len(private_scalar)}")
    value = int.from_bytes(private_scalar, "big")
    if not 1 <= value < SM2_CURVE_ORDER:
        raise CryptoError("an SM2 private scalar must be in [1, n - 1]")
    bignum = _lib.BN_bin2bn(private_scalar, SM2_SCALAR_BYTES, None)
    if not bignum:
        raise _fail("BN_bin2bn failed")
    return int(bignum)


def _point_bytes(point: int) -> bytes:
    out = ctypes.create_string_buffer(SM2_POINT_BYTES)
    written = _lib.EC_POINT_point2oct(
        _GROUP, point, _POINT_CONVERSION_UNCOMPRESSED, out, SM2_POINT_BYTES, None
    )
    if written != SM2_POINT_BYTES:
        raise _fail("EC_POINT_point2oct failed")
    return out.raw


def sm2_public_point(private_scalar: bytes) -> bytes:
    """The uncompressed public point ``d·G`` of the 32-byte big-endian scalar ``d``."""
    scalar = _scalar(private_scalar)
    try:
        point = _lib.EC_POINT_new(_GROUP)
        if not point:
            raise _fail("EC_POINT_new failed")
        try:
            if _lib.EC_POINT_mul(_GROUP, point, scalar, None, None, None) != 1:
                raise _fail("EC_POINT_mul (public point) failed")
            return _point_bytes(point)
        finally:
            _lib.EC_POINT_free(point)
    finally:
        _lib.BN_clear_free(scalar)


def sm2_ecdh(private_scalar: bytes, peer_point: bytes) -> bytes:
    """The x coordinate (32 bytes) of ``d·Q``; :class:`CryptoError` when ``Q`` is not an
    uncompressed point on the SM2 curve or the result is the point at infinity."""
    if len(peer_point) != SM2_POINT_BYTES or peer_point[0] != _POINT_CONVERSION_UNCOMPRESSED:
        raise CryptoError(
            f"an SM2 ephemeral public key is a {SM2_POINT_BYTES}-byte uncompressed point"
        )
    scalar = _scalar(private_scalar)
    try:
        peer = _lib.EC_POINT_new(_GROUP)
        shared = _lib.EC_POINT_new(_GROUP)
        x = _lib.BN_new()
        try:
            if not (peer and shared and x):
                raise _fail("out of memory")
            if _lib.EC_POINT_oct2point(_GROUP, peer, peer_point, SM2_POINT_BYTES, None) != 1:
                _lib.ERR_clear_error()
                raise CryptoError("the peer's ephemeral public key is not a point on the SM2 curve")
            if _lib.EC_POINT_mul(_GROUP, shared, None, peer, scalar, None) != 1:
                raise _fail("EC_POINT_mul (shared point) failed")
            if _lib.EC_POINT_is_at_infinity(_GROUP, shared) == 1:
                raise CryptoError("the SM2 shared point is the point at infinity")
            if _lib.EC_POINT_get_affine_coordinates(_GROUP, shared, x, None, None) != 1:
                raise _fail("EC_POINT_get_affine_coordinates failed")
            out = ctypes.create_string_buffer(SM2_SCALAR_BYTES)
            if _lib.BN_bn2binpad(x, out, SM2_SCALAR_BYTES) != SM2_SCALAR_BYTES:
                raise _fail("BN_bn2binpad failed")
            return out.raw
        finally:
            _lib.BN_clear_free(x)
            _lib.EC_POINT_clear_free(shared)
            _lib.EC_POINT_free(peer)
    finally:
        _lib.BN_clear_free(scalar)

"""A small ctypes binding to the system's OpenSSL 3 ``libcrypto.so.3``, for SM2.

Why it exists: the ``cryptography`` wheel has SM3 and SM4 but no SM2 signing, and a pure-Python
SM2 manages about 90 verifies per second. OpenSSL 3 implements SM2 (GB/T 32918) natively, so this
module calls the handful of EVP functions the ``gm`` suite needs and nothing else:

==============================================  ===============================================
what                                            OpenSSL calls
==============================================  ===============================================
load a PKCS#8 PEM private key                   ``BIO_new_mem_buf``, ``PEM_read_bio_PrivateKey``
load a SubjectPublicKeyInfo DER / PEM key       ``d2i_PUBKEY``, ``PEM_read_bio_PUBKEY``
write keys                                      ``i2d_PUBKEY``, ``PEM_write_bio_PKCS8PrivateKey``
generate a key                                  ``EVP_PKEY_CTX_new_from_name("SM2")``,
                                                ``EVP_PKEY_keygen_init``, ``EVP_PKEY_generate``
sign / verify with SM3 and the Z value          ``EVP_PKEY_CTX_new_from_pkey``,
                                                ``EVP_PKEY_CTX_set1_id`` (distinguishing ID),
                                                ``EVP_MD_CTX_set_pkey_ctx``,
                                                ``EVP_DigestSignInit`` / ``EVP_DigestSign``,
                                                ``EVP_DigestVerifyInit`` / ``EVP_DigestVerify``
encrypt / decrypt (GB/T 32918.4 with SM3,      ``EVP_PKEY_encrypt_init``, ``EVP_PKEY_encrypt``,
DER ciphertext of GB/T 35276)                   ``EVP_PKEY_decrypt_init``, ``EVP_PKEY_decrypt``
errors                                          ``ERR_get_error``, ``ERR_error_string_n``,
                                                ``ERR_clear_error``
==============================================  ===============================================

Rules this module keeps:

* every function has ``argtypes`` and ``restype`` declared (a wrong pointer width is a crash);
* every return value is checked, and a failure becomes :class:`CryptoError` carrying OpenSSL's
  own error string;
* every OpenSSL object is freed in a ``finally`` — except the :class:`Sm2Key` handle itself, which
  lives as long as its Python owner and is freed by ``__del__``;
* thread safety: ``ctypes.CDLL`` releases the GIL during each call, so several threads really do
  verify in parallel. OpenSSL 3 is thread-safe for this use: an ``EVP_PKEY`` is only read (each
  operation creates its own ``EVP_PKEY_CTX`` and ``EVP_MD_CTX``), the fetched ``EVP_MD`` is an
  immutable shared object, and the error queue is per thread.

``_lib``, ``_declare`` and ``_fail`` are shared with :mod:`pilotchain.crypto._sm2_ecdh`
(SM2-curve ECDH), which declares its own, disjoint set of functions on the same handle: keep the
names stable and never redeclare a function with different types (``argtypes`` live on the
shared handle).

Nothing here is imported unless the ``gm`` suite is used, so an ``intl`` network does not need
``libcrypto.so.3``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Iterator
from typing import Final

from pilotchain.crypto.base import CryptoError, KeyFormatError
from pilotchain.errors import InvariantBroken

__all__ = [
    "DEFAULT_SM2_ID",
    "SM2_SIGNATURE_SIZE_MAX",
    "Sm2Key",
    "openssl_version",
]

#: The default distinguishing ID of GB/T 32918 / GM/T 0009, mixed into the Z value.
DEFAULT_SM2_ID: Final = b"1234567812345678"
#: DER SEQUENCE { INTEGER r, INTEGER s } with 256-bit r and s is at most 72 bytes.
SM2_SIGNATURE_SIZE_MAX: Final = 72
#: Bound on what we hand to OpenSSL in one ``int``-sized length argument.
_INT_MAX: Final = 2**31 - 1
_OPENSSL_3: Final = 0x30000000
_ERROR_STRING_SIZE: Final = 256
_GROUP_NAME_SIZE: Final = 64
_BIO_CTRL_INFO: Final = 3  # BIO_get_mem_data is BIO_ctrl(bio, BIO_CTRL_INFO, 0, &ptr)

_p = ctypes.c_void_p
_int = ctypes.c_int
_size = ctypes.c_size_t
_buf = ctypes.c_char_p


def _libcrypto_candidates() -> Iterator[str]:
    yield "libcrypto.so.3"  # Debian's libssl3; the common case, found without a search
    found = ctypes.util.find_library("crypto")  # runs ldconfig: only when the above failed
    if found is not None and found != "libcrypto.so.3":
        yield found


def _load_libcrypto() -> ctypes.CDLL:
    errors: list[str] = []
    for name in _libcrypto_candidates():
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
            continue
        lib.OpenSSL_version_num.argtypes = []
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        if lib.OpenSSL_version_num() >= _OPENSSL_3:
            return lib
        errors.append(f"{name}: OpenSSL older than 3.0")
    raise CryptoError(
        "the gm suite needs OpenSSL 3 (libcrypto.so.3) for SM2 and could not load it "
        f"({'; '.join(errors)}); install it with `make system-deps` (Debian package libssl3)"
    )


_lib = _load_libcrypto()


def _declare(name: str, restype: object, *argtypes: object) -> None:
    function = getattr(_lib, name)
    function.restype = restype
    function.argtypes = list(argtypes)


_declare("OpenSSL_version", _buf, _int)
_declare("ERR_get_error", ctypes.c_ulong)
_declare("ERR_error_string_n", None, ctypes.c_ulong, _buf, _size)
_declare("ERR_clear_error", None)
_declare("BIO_new_mem_buf", _p, _buf, _int)
_declare("BIO_s_mem", _p)
_declare("BIO_new", _p, _p)
_declare("BIO_free", _int, _p)
_declare("BIO_ctrl", ctypes.c_long, _p, _int, ctypes.c_long, _p)
_declare("PEM_read_bio_PrivateKey", _p, _p, _p, _p, _p)
_declare("PEM_read_bio_PUBKEY", _p, _p, _p, _p, _p)
_declare("PEM_write_bio_PKCS8PrivateKey", _int, _p, _p, _p, _p, _int, _p, _p)
_declare("d2i_PUBKEY", _p, _p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long)
_declare("i2d_PUBKEY", _int, _p, ctypes.POINTER(ctypes.c_void_p))
_declare("CRYPTO_free", None, _p, _buf, _int)
_declare("EVP_PKEY_free", None, _p)
_declare("EVP_PKEY_is_a", _int, _p, _buf)
_declare("EVP_PKEY_get0_type_name", _buf, _p)
_declare("EVP_PKEY_get_group_name", _int, _p, _buf, _size, ctypes.POINTER(_size))
_declare("EVP_PKEY_CTX_new_from_name", _p, _p, _buf, _buf)
_declare("EVP_PKEY_CTX_new_from_pkey", _p, _p, _p, _buf)
_declare("EVP_PKEY_CTX_free", None, _p)
_declare("EVP_PKEY_CTX_set1_id", _int, _p, _buf, _int)
_declare("EVP_PKEY_keygen_init", _int, _p)
_declare("EVP_PKEY_generate", _int, _p, ctypes.POINTER(ctypes.c_void_p))
_declare("EVP_MD_fetch", _p, _p, _buf, _buf)
_declare("EVP_MD_CTX_new", _p)
_declare("EVP_MD_CTX_free", None, _p)
_declare("EVP_MD_CTX_set_pkey_ctx", None, _p, _p)
_declare("EVP_DigestSignInit", _int, _p, _p, _p, _p, _p)
_declare("EVP_DigestSign", _int, _p, _buf, ctypes.POINTER(_size), _buf, _size)
_declare("EVP_DigestVerifyInit", _int, _p, _p, _p, _p, _p)
_declare("EVP_DigestVerify", _int, _p, _buf, _size, _buf, _size)
_declare("EVP_PKEY_encrypt_init", _int, _p)
_declare("EVP_PKEY_encrypt", _int, _p, _buf, ctypes.POINTER(_size), _buf, _size)
_declare("EVP_PKEY_decrypt_init", _int, _p)
_declare("EVP_PKEY_decrypt", _int, _p, _buf, ctypes.POINTER(_size), _buf, _size)


def openssl_version() -> str:
    """The loaded libcrypto's version line, e.g. ``"OpenSSL 3.0.19 27 Jan 2026"``."""
    version = _lib.OpenSSL_version(0)
    if not (isinstance(version, bytes)):
        raise InvariantBroken('invariant broken: isinstance(version, bytes)')
    return version.decode()


def _openssl_errors() -> str:
    """Drain this thread's OpenSSL error queue into one readable string."""
    messages: list[str] = []
    buffer = ctypes.create_string_buffer(_ERROR_STRING_SIZE)
    for _ in range(32):  # the queue holds at most 16 entries; the bound is for safety
        code = _lib.ERR_get_error()
        if code == 0:
            break
        _lib.ERR_error_string_n(code, buffer, _ERROR_STRING_SIZE)
        messages.append(buffer.value.decode(errors="replace"))
    return "; ".join(messages) if messages else "no OpenSSL error recorded"


def _fail(what: str, error: type[CryptoError] = CryptoError) -> CryptoError:
    return error(f"{what} ({_openssl_errors()})")


def _fetch_sm3() -> int:
    md = _lib.EVP_MD_fetch(None, b"SM3", None)
    if not md:
        raise _fail("this OpenSSL has no SM3 digest")
    # Fetched once, shared by every thread, never freed: EVP_MD objects are immutable.
    return int(md)


_SM3: Final = _fetch_sm3()


def _new_pkey_ctx(pkey: int, distinguishing_id: bytes | None = None) -> int:
    """An ``EVP_PKEY_CTX`` for ``pkey``, carrying the SM2 distinguishing ID when one is given
    (signatures need it; encryption has none). The caller frees it."""
    pctx = _lib.EVP_PKEY_CTX_new_from_pkey(None, pkey, None)
    if not pctx:
        raise _fail("EVP_PKEY_CTX_new_from_pkey failed")
    if distinguishing_id is None:
        return int(pctx)
    if _lib.EVP_PKEY_CTX_set1_id(pctx, distinguishing_id, len(distinguishing_id)) != 1:
        _lib.EVP_PKEY_CTX_free(pctx)
        raise _fail("could not set the SM2 distinguishing ID")
    return int(pctx)


def _pem_bio_bytes(bio: int) -> bytes:
    data = ctypes.c_void_p()
    length = _lib.BIO_ctrl(bio, _BIO_CTRL_INFO, 0, ctypes.byref(data))
    if length <= 0 or not data.value:
        raise _fail("could not read the PEM back from the memory BIO")
    return ctypes.string_at(data.value, length)


def _sm2_key_problem(pkey: int) -> str | None:
    """Why ``pkey`` is not an SM2 key on the named SM2 curve, or None when it is."""
    if _lib.EVP_PKEY_is_a(pkey, b"SM2") != 1:
        type_name = _lib.EVP_PKEY_get0_type_name(pkey) or b"unknown"
        return f"not an SM2 key but a {type_name.decode()} key"
    group = ctypes.create_string_buffer(_GROUP_NAME_SIZE)
    length = _size(0)
    if _lib.EVP_PKEY_get_group_name(pkey, group, _GROUP_NAME_SIZE, ctypes.byref(length)) != 1:
        _lib.ERR_clear_error()
        return "an SM2 key without a named curve (explicit curve parameters are refused)"
    if group.value != b"SM2":
        return f"an SM2 key on curve {group.value.decode(errors='replace')}"
    return None


def _der_sequence_size(data: bytes) -> int | None:
    """Total size (header included) of the DER SEQUENCE ``data`` starts with, or None when
    ``data`` does not start with a definite-length SEQUENCE header."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if not 1 <= count <= 4 or len(data) < 2 + count:
        return None
    length = int.from_bytes(data[2 : 2 + count], "big")
    if length < 0x80 or data[2] == 0:
        return None  # DER takes the short form below 128 and no leading zero length octet
    return 2 + count + length


class Sm2Key:
    """An owned ``EVP_PKEY*`` of type SM2, private or public-only.

    Immutable once built and safe to share between threads. Construct it with one of the
    ``from_*`` / :meth:`generate` class methods, never directly.
    """

    __slots__ = ("_pkey", "has_private", "__weakref__")

    _pkey: int
    has_private: bool

    def __init__(self, pkey: int, *, has_private: bool) -> None:
        if not (pkey):
            raise InvariantBroken("Sm2Key needs a non-NULL EVP_PKEY")
        self._pkey = pkey
        self.has_private = has_private
        problem = _sm2_key_problem(pkey)
        if problem is not None:
            _lib.EVP_PKEY_free(pkey)
            self._pkey = 0
            raise KeyFormatError(
                f"{problem} (the gm suite signs with SM2 on the named curve SM2, "
                "OID 1.2.156.10197.1.301)"
            )

    def __del__(self) -> None:
        pkey, self._pkey = getattr(self, "_pkey", 0), 0
        if pkey:
            _lib.EVP_PKEY_free(pkey)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def generate(cls) -> Sm2Key:
        """A fresh key from OpenSSL's CSPRNG."""
        pctx = _lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        if not pctx:
            raise _fail("this OpenSSL cannot make SM2 keys")
        try:
            if _lib.EVP_PKEY_keygen_init(pctx) != 1:
                raise _fail("EVP_PKEY_keygen_init failed")
            pkey = ctypes.c_void_p()
            if _lib.EVP_PKEY_generate(pctx, ctypes.byref(pkey)) != 1 or not pkey.value:
                raise _fail("SM2 key generation failed")
        finally:
            _lib.EVP_PKEY_CTX_free(pctx)
        return cls(pkey.value, has_private=True)

    @classmethod
    def from_private_pem(cls, pem: bytes) -> Sm2Key:
        """Load an unencrypted private key (PKCS#8 or SEC1 "EC PRIVATE KEY" PEM)."""
        pkey = cls._read_pem(pem, _lib.PEM_read_bio_PrivateKey, "private")
        return cls(pkey, has_private=True)

    @classmethod
    def from_public_pem(cls, pem: bytes) -> Sm2Key:
        """Load a SubjectPublicKeyInfo PEM public key."""
        pkey = cls._read_pem(pem, _lib.PEM_read_bio_PUBKEY, "public")
        return cls(pkey, has_private=False)

    @classmethod
    def from_public_der(cls, der: bytes) -> Sm2Key:
        """Load a SubjectPublicKeyInfo DER public key; trailing bytes are rejected."""
        if not der or len(der) > _INT_MAX:
            raise KeyFormatError("not a SubjectPublicKeyInfo DER public key: empty or oversized")
        buffer = ctypes.create_string_buffer(der, len(der))
        cursor = ctypes.cast(buffer, ctypes.c_char_p)
        start = ctypes.addressof(buffer)
        pkey = _lib.d2i_PUBKEY(None, ctypes.byref(cursor), len(der))
        if not pkey:
            raise _fail("not a SubjectPublicKeyInfo DER public key", KeyFormatError)
        consumed = ctypes.cast(cursor, ctypes.c_void_p).value or 0
        if consumed - start != len(der):
            _lib.EVP_PKEY_free(pkey)
            raise KeyFormatError("not a SubjectPublicKeyInfo DER public key: trailing bytes")
        return cls(pkey, has_private=False)

    @staticmethod
    def _read_pem(pem: bytes, reader: Callable[..., int | None], kind: str) -> int:
        if not pem or len(pem) > _INT_MAX:
            raise KeyFormatError(f"not a PEM {kind} key: empty or oversized")
        bio = _lib.BIO_new_mem_buf(pem, len(pem))
        if not bio:
            raise _fail("BIO_new_mem_buf failed")
        try:
            # A NULL password callback would prompt on the terminal for an encrypted key; the
            # empty passphrase below makes an encrypted key fail instead.
            pkey = reader(bio, None, None, ctypes.c_char_p(b""))
        finally:
            _lib.BIO_free(bio)
        if not pkey:
            raise _fail(f"not an unencrypted PEM {kind} key", KeyFormatError)
        return int(pkey)

    # -- encodings ---------------------------------------------------------------------------

    def public_der(self) -> bytes:
        """SubjectPublicKeyInfo DER of the public half."""
        out = ctypes.c_void_p()
        length = _lib.i2d_PUBKEY(self._pkey, ctypes.byref(out))
        if length <= 0 or not out.value:
            raise _fail("i2d_PUBKEY failed")
        try:
            return ctypes.string_at(out.value, length)
        finally:
            _lib.CRYPTO_free(out.value, None, 0)

    def private_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM of the private key."""
        if not self.has_private:
            raise CryptoError("this SM2 key has no private half")
        bio = _lib.BIO_new(_lib.BIO_s_mem())
        if not bio:
            raise _fail("BIO_new failed")
        try:
            if _lib.PEM_write_bio_PKCS8PrivateKey(bio, self._pkey, None, None, 0, None, None) != 1:
                raise _fail("PEM_write_bio_PKCS8PrivateKey failed")
            return _pem_bio_bytes(bio)
        finally:
            _lib.BIO_free(bio)

    # -- operations --------------------------------------------------------------------------

    def sign(self, message: bytes, distinguishing_id: bytes = DEFAULT_SM2_ID) -> bytes:
        """SM2 signature (DER SEQUENCE{r, s}) over SM3(Z || message)."""
        if not self.has_private:
            raise CryptoError("cannot sign with a public SM2 key")
        pctx = _new_pkey_ctx(self._pkey, distinguishing_id)
        try:
            mctx = _lib.EVP_MD_CTX_new()
            if not mctx:
                raise _fail("EVP_MD_CTX_new failed")
            try:
                _lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
                if _lib.EVP_DigestSignInit(mctx, None, _SM3, None, self._pkey) != 1:
                    raise _fail("EVP_DigestSignInit (SM2 with SM3) failed")
                signature = ctypes.create_string_buffer(SM2_SIGNATURE_SIZE_MAX)
                size = _size(SM2_SIGNATURE_SIZE_MAX)
                if (
                    _lib.EVP_DigestSign(mctx, signature, ctypes.byref(size), message, len(message))
                    != 1
                ):
                    raise _fail("SM2 signing failed")
            finally:
                _lib.EVP_MD_CTX_free(mctx)
        finally:
            _lib.EVP_PKEY_CTX_free(pctx)
        if not (8 <= size.value <= SM2_SIGNATURE_SIZE_MAX):
            raise InvariantBroken(f"OpenSSL reported an SM2 signature of {size.value} bytes")
        return signature.raw[: size.value]

    def verify(
        self, message: bytes, signature: bytes, distinguishing_id: bytes = DEFAULT_SM2_ID
    ) -> bool:
        """True when ``signature`` is a valid SM2 signature over ``message``; never raises for bad
        input (a malformed signature is simply not valid)."""
        if not 8 <= len(signature) <= SM2_SIGNATURE_SIZE_MAX:
            return False
        pctx = _new_pkey_ctx(self._pkey, distinguishing_id)
        try:
            mctx = _lib.EVP_MD_CTX_new()
            if not mctx:
                raise _fail("EVP_MD_CTX_new failed")
            try:
                _lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
                if _lib.EVP_DigestVerifyInit(mctx, None, _SM3, None, self._pkey) != 1:
                    raise _fail("EVP_DigestVerifyInit (SM2 with SM3) failed")
                result = _lib.EVP_DigestVerify(
                    mctx, signature, len(signature), message, len(message)
                )
            finally:
                _lib.EVP_MD_CTX_free(mctx)
        finally:
            _lib.EVP_PKEY_CTX_free(pctx)
        if result != 1:
            # 0 = bad signature, negative = malformed DER: both simply "not valid". Drop the
            # queued errors so they do not surface in an unrelated later message.
            _lib.ERR_clear_error()
            return False
        return True

    def encrypt(self, plaintext: bytes) -> bytes:
        """SM2 public-key encryption (GB/T 32918.4, KDF and C3 hash SM3) of 1 or more bytes: the
        GB/T 35276 DER ``SEQUENCE { INTEGER x, INTEGER y, OCTET STRING hash, OCTET STRING
        ciphertext }``, exactly what ``openssl pkeyutl -encrypt`` writes. OpenSSL draws the
        ephemeral scalar k from its own CSPRNG."""
        if not plaintext or len(plaintext) > _INT_MAX:
            raise CryptoError("SM2 encryption takes 1 byte or more (OpenSSL refuses an empty input)")
        pctx = _new_pkey_ctx(self._pkey)
        try:
            if _lib.EVP_PKEY_encrypt_init(pctx) != 1:
                raise _fail("EVP_PKEY_encrypt_init (SM2) failed")
            size = _size(0)
            if _lib.EVP_PKEY_encrypt(pctx, None, ctypes.byref(size), plaintext, len(plaintext)) != 1:
                raise _fail("SM2 encryption failed (sizing the output)")
            out = ctypes.create_string_buffer(size.value)
            if _lib.EVP_PKEY_encrypt(pctx, out, ctypes.byref(size), plaintext, len(plaintext)) != 1:
                raise _fail("SM2 encryption failed")
        finally:
            _lib.EVP_PKEY_CTX_free(pctx)
        return out.raw[: size.value]

    def decrypt(self, ciphertext: bytes) -> bytes | None:
        """The plaintext of an SM2 DER ciphertext, or None when it does not decrypt (malformed
        DER, a point off the curve, the wrong key, an altered byte): deliberately one answer for
        every failure, and the OpenSSL error queue is dropped, not reported."""
        if not self.has_private:
            raise CryptoError("cannot decrypt with a public SM2 key")
        if _der_sequence_size(ciphertext) != len(ciphertext):
            # OpenSSL decodes the first SEQUENCE and ignores what follows: refuse a ciphertext
            # with bytes appended or missing here, so one ciphertext has one byte string
            return None
        pctx = _new_pkey_ctx(self._pkey)
        try:
            if _lib.EVP_PKEY_decrypt_init(pctx) != 1:
                raise _fail("EVP_PKEY_decrypt_init (SM2) failed")
            size = _size(0)
            out: ctypes.Array[ctypes.c_char] | None = None
            ok = (
                _lib.EVP_PKEY_decrypt(pctx, None, ctypes.byref(size), ciphertext, len(ciphertext))
                == 1
            )
            if ok:
                out = ctypes.create_string_buffer(max(size.value, 1))
                ok = (
                    _lib.EVP_PKEY_decrypt(
                        pctx, out, ctypes.byref(size), ciphertext, len(ciphertext)
                    )
                    == 1
                )
        finally:
            _lib.EVP_PKEY_CTX_free(pctx)
        if not ok or out is None:
            _lib.ERR_clear_error()
            return None
        plaintext = out.raw[: size.value]
        ctypes.memset(out, 0, len(out))  # best effort: do not leave the plaintext in a freed buffer
        return plaintext

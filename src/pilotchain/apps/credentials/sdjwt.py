"""SD-JWT (RFC 9901) for both crypto suites: issue, present, verify. Pure: no I/O, no clock;
randomness comes in as a ``random_bytes`` callable.

Theory of operation
-------------------
An SD-JWT is an issuer-signed JWT (a compact JWS) whose selectively disclosable claims are
replaced by digests, followed by the disclosures the holder chooses to reveal::

    <issuer-signed JWT>~<disclosure>~<disclosure>~...~           (no key-binding JWT)

A disclosure is ``base64url(UTF-8 JSON [salt, name, value])`` (an object property) or
``base64url([salt, value])`` (an array element); its digest is ``base64url(H(disclosure as
ASCII))`` with the hash ``_sd_alg`` names. The JWT's ``_sd`` arrays hold the property digests
(sorted, padded with decoy digests of random bytes so their count does not reveal how many claims
there are), array elements ``{"...": digest}``. A salt is 128 random bits, so a digest does not
confirm a guessed value.

Verification follows RFC 9901 §7.1: the JWS signature with the issuer's key and the expected
algorithm; every disclosure well formed, its digest found exactly once in the payload (directly
or inside another disclosed value); no digest twice; no disclosed name ``_sd`` or ``...`` or one
already present at its level. Anything else is refused with a reason.

Algorithms (JOSE ``alg`` / ``_sd_alg``), one per crypto suite:

* ``intl``: ``EdDSA`` (RFC 8037, Ed25519) and ``sha-256`` — registered, so standard SD-JWT
  libraries verify these credentials (the tests check with the ``sd-jwt`` reference package).
* ``gm``: ``urn:oid:1.2.156.10197.1.501`` (SM2 signature with SM3, GB/T 32918.2 with the default
  distinguishing ID ``1234567812345678``, the signature encoded as R ‖ S, 32 bytes each, as JOSE
  encodes ECDSA) and ``sm3``. JOSE registers no SM2 algorithm, so ``alg`` is a collision-resistant
  name (RFC 7515 §4.1.1): the OID of SM2-with-SM3 (GM/T 0006) as a URN. ``sm3`` is not in the IANA
  Named Information Hash Algorithm registry that ``_sd_alg`` draws from; it is this profile's own
  label. The same signature converted to GB/T 35276 DER verifies with ``openssl dgst -sm3``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from pilotchain.crypto import PrivateKey, Suite, get_suite
from pilotchain.errors import CoreError

__all__ = [
    "ALG_EDDSA",
    "ALG_SM2_SM3",
    "JwsAlgorithm",
    "ParsedSdJwt",
    "SdJwtInvalid",
    "VerifiedSdJwt",
    "algorithm_for",
    "b64url_decode",
    "b64url_encode",
    "disclosure_digest",
    "issue_sd_jwt",
    "make_disclosure",
    "parse_sd_jwt",
    "select_disclosures",
    "verify_sd_jwt",
]

ALG_EDDSA = "EdDSA"
ALG_SM2_SM3 = "urn:oid:1.2.156.10197.1.501"
SD_ALG_SHA256 = "sha-256"
SD_ALG_SM3 = "sm3"
SEPARATOR = "~"
#: bounds on what a verifier parses
SD_JWT_CHARS_MAX = 64 * 1024
DISCLOSURES_MAX = 256
SALT_BYTES = 16
_SM2_COORDINATE_BYTES = 32
_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_RESERVED_NAMES = ("_sd", "...", "_sd_alg")


class SdJwtInvalid(CoreError):
    """An SD-JWT that does not verify or is malformed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------------------ base64url


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: only the alphabet, and only the canonical encoding (the
    unused low bits of the last character are zero), so one string has one meaning."""
    if not isinstance(text, str) or not set(text) <= _B64URL_ALPHABET or len(text) % 4 == 1:
        raise SdJwtInvalid("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SdJwtInvalid(f"not base64url: {exc}") from exc
    if b64url_encode(data) != text:
        raise SdJwtInvalid("not the canonical base64url encoding")
    return data


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise SdJwtInvalid(f"JSON member {name!r} appears twice")
        result[name] = value
    return result


def _reject_constant(name: str) -> Any:
    raise SdJwtInvalid(f"JSON constant {name} is not allowed")


def _json_loads(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except SdJwtInvalid as exc:
        raise SdJwtInvalid(f"{what}: {exc.reason}") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SdJwtInvalid(f"{what} is not JSON: {exc}") from exc


# ------------------------------------------------------------------------------ algorithms


@dataclass(frozen=True, slots=True)
class JwsAlgorithm:
    """A JWS signature algorithm on one pilotchain suite, and the digest for disclosures."""

    alg: str
    sd_alg: str
    suite: Suite

    def digest(self, data: bytes) -> bytes:
        return self.suite.hash(data)

    def sign(self, key: PrivateKey, signing_input: bytes) -> bytes:
        signature = key.sign(signing_input)
        if self.alg != ALG_SM2_SM3:
            return signature
        r, s = decode_dss_signature(signature)
        return r.to_bytes(_SM2_COORDINATE_BYTES, "big") + s.to_bytes(_SM2_COORDINATE_BYTES, "big")

    def verify(self, public_key_der: bytes, signing_input: bytes, signature: bytes) -> bool:
        if self.alg == ALG_SM2_SM3:
            if len(signature) != 2 * _SM2_COORDINATE_BYTES:
                return False
            signature = sm2_signature_der(signature)
        return self.suite.verify(public_key_der, signing_input, signature)


def sm2_signature_der(raw: bytes) -> bytes:
    """A JOSE R ‖ S SM2 signature as GB/T 35276 DER (what OpenSSL and the gm suite read)."""
    half = len(raw) // 2
    return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


def algorithm_for(suite_name: str) -> JwsAlgorithm:
    """The profile's algorithm for a chain suite (``intl`` or ``gm``)."""
    suite = get_suite(suite_name)
    if suite.name == "gm":
        return JwsAlgorithm(alg=ALG_SM2_SM3, sd_alg=SD_ALG_SM3, suite=suite)
    return JwsAlgorithm(alg=ALG_EDDSA, sd_alg=SD_ALG_SHA256, suite=suite)


# ------------------------------------------------------------------------------ issuing


def make_disclosure(salt: bytes, name: str | None, value: Any) -> str:
    """The disclosure of an object property (``name``) or an array element (``name`` None)."""
    content = [b64url_encode(salt), value] if name is None else [b64url_encode(salt), name, value]
    return b64url_encode(json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def disclosure_digest(algorithm: JwsAlgorithm, disclosure: str) -> str:
    return b64url_encode(algorithm.digest(disclosure.encode("ascii")))


def issue_sd_jwt(
    algorithm: JwsAlgorithm,
    key: PrivateKey,
    header: dict[str, Any],
    claims: dict[str, Any],
    disclosable: dict[str, Any],
    *,
    random_bytes: Callable[[int], bytes],
    digests_min: int = 0,
) -> tuple[str, list[str]]:
    """Sign ``claims`` (always visible) with the ``disclosable`` properties hidden behind digests
    (top level, each one a disclosure), padded with decoys to at least ``digests_min`` digests.
    Returns the issuer-signed JWT and the disclosures (in the order of ``disclosable``)."""
    clash = set(claims) & (set(disclosable) | set(_RESERVED_NAMES))
    if clash:
        raise ValueError(f"claims {sorted(clash)} are visible and disclosable, or reserved")
    disclosures = [make_disclosure(random_bytes(SALT_BYTES), name, value) for name, value in disclosable.items()]
    digests = [disclosure_digest(algorithm, d) for d in disclosures]
    while len(digests) < digests_min:
        digests.append(b64url_encode(algorithm.digest(random_bytes(SALT_BYTES))))
    payload = dict(claims)
    payload["_sd"] = sorted(digests)
    payload["_sd_alg"] = algorithm.sd_alg
    protected = dict(header)
    protected["alg"] = algorithm.alg
    signing_input = b64url_encode(_json_bytes(protected)) + "." + b64url_encode(_json_bytes(payload))
    signature = algorithm.sign(key, signing_input.encode("ascii"))
    return signing_input + "." + b64url_encode(signature), disclosures


def serialize(issuer_jwt: str, disclosures: Iterable[str]) -> str:
    """The compact SD-JWT (no key-binding JWT: it ends with ``~``)."""
    return SEPARATOR.join([issuer_jwt, *disclosures, ""])


# ------------------------------------------------------------------------------ parsing


@dataclass(frozen=True, slots=True)
class ParsedSdJwt:
    """The parts of a compact SD-JWT, decoded but not verified."""

    issuer_jwt: str
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes
    disclosures: tuple[str, ...]
    key_binding_jwt: str


def parse_sd_jwt(text: str) -> ParsedSdJwt:
    if not isinstance(text, str) or len(text) > SD_JWT_CHARS_MAX:
        raise SdJwtInvalid(f"an SD-JWT is a text of at most {SD_JWT_CHARS_MAX} characters")
    parts = text.split(SEPARATOR)
    if len(parts) < 2:
        raise SdJwtInvalid("not an SD-JWT: no '~' after the issuer-signed JWT")
    issuer_jwt, disclosures, key_binding_jwt = parts[0], parts[1:-1], parts[-1]
    if len(disclosures) > DISCLOSURES_MAX:
        raise SdJwtInvalid(f"{len(disclosures)} disclosures, at most {DISCLOSURES_MAX}")
    pieces = issuer_jwt.split(".")
    if len(pieces) != 3:
        raise SdJwtInvalid("the issuer-signed JWT is not a compact JWS (three dot-separated parts)")
    header = _json_loads(b64url_decode(pieces[0]), "the JWT header")
    payload = _json_loads(b64url_decode(pieces[1]), "the JWT payload")
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise SdJwtInvalid("the JWT header and payload are JSON objects")
    return ParsedSdJwt(issuer_jwt=issuer_jwt, header=header, payload=payload,
                       signing_input=(pieces[0] + "." + pieces[1]).encode("ascii"),
                       signature=b64url_decode(pieces[2]), disclosures=tuple(disclosures),
                       key_binding_jwt=key_binding_jwt)


def select_disclosures(text: str, names: Sequence[str]) -> str:
    """The holder's presentation: the same issuer-signed JWT with only the disclosures of the
    top-level claims ``names`` (each must be disclosable). The JWT is not re-signed."""
    parsed = parse_sd_jwt(text)
    chosen, found = [], set()
    for disclosure in parsed.disclosures:
        content = _json_loads(b64url_decode(disclosure), "a disclosure")
        if isinstance(content, list) and len(content) == 3 and content[1] in names:
            chosen.append(disclosure)
            found.add(content[1])
    missing = [name for name in names if name not in found]
    if missing:
        raise SdJwtInvalid(f"no disclosure for {', '.join(missing)} in this SD-JWT")
    return serialize(parsed.issuer_jwt, chosen)


# ------------------------------------------------------------------------------ verifying


@dataclass(frozen=True, slots=True)
class VerifiedSdJwt:
    """What the verified SD-JWT says: its header, the processed claims (disclosed ones in
    place, ``_sd``/``_sd_alg`` removed), the names disclosed and how many digests were hidden."""

    header: dict[str, Any]
    claims: dict[str, Any]
    disclosed: tuple[str, ...]
    undisclosed_digests: int
    issuer_jwt: str


def verify_signature(parsed: ParsedSdJwt, algorithm: JwsAlgorithm, public_key_der: bytes) -> None:
    if parsed.header.get("alg") != algorithm.alg:
        raise SdJwtInvalid(f"signed with {parsed.header.get('alg')!r}; this chain's suite uses {algorithm.alg!r}")
    if not algorithm.verify(public_key_der, parsed.signing_input, parsed.signature):
        raise SdJwtInvalid("the issuer's signature does not verify with the registered key")


def verify_sd_jwt(parsed: ParsedSdJwt, algorithm: JwsAlgorithm, public_key_der: bytes) -> VerifiedSdJwt:
    """RFC 9901 §7.1 with the issuer's key; raises :class:`SdJwtInvalid`."""
    verify_signature(parsed, algorithm, public_key_der)
    return process_disclosures(parsed, algorithm)


def process_disclosures(parsed: ParsedSdJwt, algorithm: JwsAlgorithm) -> VerifiedSdJwt:
    """The disclosure half of RFC 9901 §7.1 (the signature is checked separately)."""
    sd_alg = parsed.payload.get("_sd_alg", SD_ALG_SHA256)
    if sd_alg != algorithm.sd_alg:
        raise SdJwtInvalid(f"disclosure digests use {sd_alg!r}; this profile uses {algorithm.sd_alg!r}")
    if parsed.key_binding_jwt:
        raise SdJwtInvalid("a key-binding JWT is present but this profile issues credentials without holder binding")
    by_digest: dict[str, tuple[str, Any]] = {}
    for disclosure in parsed.disclosures:
        content = _json_loads(b64url_decode(disclosure), "a disclosure")
        digest = disclosure_digest(algorithm, disclosure)
        if digest in by_digest:
            raise SdJwtInvalid("the same disclosure twice")
        by_digest[digest] = (disclosure, content)
    state = _Unpacker(by_digest)
    claims = state.unpack_object(parsed.payload, top=True)
    unused = [d for d in by_digest if d not in state.used]
    if unused:
        raise SdJwtInvalid(f"{len(unused)} disclosure(s) match no digest of the issuer-signed JWT")
    return VerifiedSdJwt(header=parsed.header, claims=claims, disclosed=tuple(state.disclosed),
                         undisclosed_digests=state.digests_seen - len(state.used), issuer_jwt=parsed.issuer_jwt)


class _Unpacker:
    def __init__(self, by_digest: dict[str, tuple[str, Any]]) -> None:
        self.by_digest = by_digest
        self.used: set[str] = set()
        self.seen: set[str] = set()
        self.disclosed: list[str] = []
        self.digests_seen = 0
        self.depth = 0

    def _claim(self, digest: Any) -> tuple[str, Any] | None:
        if not isinstance(digest, str):
            raise SdJwtInvalid("a digest is not a string")
        if digest in self.seen:
            raise SdJwtInvalid("a digest appears twice in the SD-JWT")
        self.seen.add(digest)
        self.digests_seen += 1
        found = self.by_digest.get(digest)
        if found is None:
            return None
        self.used.add(digest)
        return found

    def unpack(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self.unpack_object(value)
        if isinstance(value, list):
            return self.unpack_array(value)
        return value

    def unpack_object(self, value: dict[str, Any], *, top: bool = False) -> dict[str, Any]:
        self.depth += 1
        if self.depth > 32:
            raise SdJwtInvalid("claims nest deeper than 32 levels")
        digests = value.get("_sd", [])
        if not isinstance(digests, list):
            raise SdJwtInvalid("_sd is not an array")
        if not top and "_sd_alg" in value:
            raise SdJwtInvalid("_sd_alg appears below the top level")
        out = {name: self.unpack(item) for name, item in value.items() if name not in ("_sd", "_sd_alg")}
        for digest in digests:
            found = self._claim(digest)
            if found is None:
                continue
            _, content = found
            if not (isinstance(content, list) and len(content) == 3 and isinstance(content[0], str)
                    and isinstance(content[1], str)):
                raise SdJwtInvalid("an object-property disclosure is not [salt, name, value]")
            name = content[1]
            if name in _RESERVED_NAMES:
                raise SdJwtInvalid(f"a disclosure names the reserved claim {name!r}")
            if name in out:
                raise SdJwtInvalid(f"a disclosure repeats the claim {name!r}")
            out[name] = self.unpack(content[2])
            if top:
                self.disclosed.append(name)
        self.depth -= 1
        return out

    def unpack_array(self, value: list[Any]) -> list[Any]:
        self.depth += 1
        if self.depth > 32:
            raise SdJwtInvalid("claims nest deeper than 32 levels")
        out = []
        for item in value:
            if isinstance(item, dict) and len(item) == 1 and "..." in item:
                found = self._claim(item["..."])
                if found is None:
                    continue
                _, content = found
                if not (isinstance(content, list) and len(content) == 2 and isinstance(content[0], str)):
                    raise SdJwtInvalid("an array-element disclosure is not [salt, value]")
                out.append(self.unpack(content[1]))
            else:
                out.append(self.unpack(item))
        self.depth -= 1
        return out

"""Requests signed with the caller's consortium identity: HTTP Message Signatures (RFC 9421).

Every gateway endpoint but ``/healthz`` and ``/readyz`` answers only an authenticated consortium
member (``/metrics`` also answers a scraper on the node's own host). A request carries:

* ``Pilotchain-Certificate``: the caller's certificate (canonical bytes, base64url, no padding);
* ``Content-Digest`` (RFC 9530, ``sha-256``) of the body, when there is one;
* ``Signature-Input`` / ``Signature`` under the label ``pilotchain``, covering ``@method``,
  ``@target-uri``, ``pilotchain-certificate`` and ``content-digest``, with the parameters
  ``tag`` (``pilotchain-request-v1``), ``created`` (seconds), ``nonce`` (128 random bits, hex), ``keyid`` (the certificate id, hex) and
  ``alg``: ``ed25519`` (RFC 9421's Ed25519, for the ``intl`` suite) or ``sm2-sm3`` (SM2 with SM3
  and the default distinguishing id, for ``gm``; not in the IANA registry, named here).

The gateway checks the certificate against the consortium's membership now (unknown, expired and
revoked identities are refused), the signature with the certificate's key, ``created`` within the
skew window, and refuses a nonce it has seen within the window (a replayed request). Signing and
verification use the maintained ``http-message-signatures`` package; this module adds only the two
algorithm bindings to pilotchain's suites and the header conventions above.
"""

from __future__ import annotations

import base64
import datetime
import secrets
from collections.abc import Generator, Iterable, Iterator

import httpx
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPSignatureAlgorithm,
    HTTPSignatureKeyResolver,
)
from http_message_signatures.exceptions import InvalidSignature

from pilotchain.crypto import PrivateKey, PublicKey
from pilotchain.sdk._identity import Identity

__all__ = [
    "CERTIFICATE_HEADER",
    "COVERED_COMPONENTS",
    "SIGNATURE_LABEL",
    "SIGNATURE_TAG",
    "SignedRequests",
    "algorithm_for",
]

SIGNATURE_LABEL = "pilotchain"
#: the signed ``tag`` parameter: this application's signatures, version 1
SIGNATURE_TAG = "pilotchain-request-v1"
CERTIFICATE_HEADER = "pilotchain-certificate"
#: what every signature covers (content-digest is added, and covered, when there is a body)
COVERED_COMPONENTS = ("@method", "@target-uri", CERTIFICATE_HEADER)


class _SuiteAlgorithm(HTTPSignatureAlgorithm):
    """RFC 9421 signing and verification with a pilotchain suite's keys."""

    def __init__(self, public_key: PublicKey | None = None, private_key: PrivateKey | None = None) -> None:
        self.public_key = public_key
        self.private_key = private_key

    def sign(self, message: bytes) -> bytes:
        if self.private_key is None:
            raise InvalidSignature("no signing key")
        return self.private_key.sign(message)

    def verify(self, signature: bytes, message: bytes) -> None:
        if self.public_key is None or not self.public_key.verify(message, signature):
            raise InvalidSignature("the signature does not verify with the certificate's key")


class Ed25519Algorithm(_SuiteAlgorithm):
    algorithm_id = "ed25519"


class Sm2Sm3Algorithm(_SuiteAlgorithm):
    algorithm_id = "sm2-sm3"


def algorithm_for(suite_name: str) -> type[_SuiteAlgorithm]:
    """The signature algorithm of the suite ``intl`` or ``gm``."""
    return Ed25519Algorithm if suite_name == "intl" else Sm2Sm3Algorithm


def content_digest_header(sha256: bytes) -> str:
    """RFC 9530 ``Content-Digest`` for a SHA-256 digest."""
    return "sha-256=:" + base64.b64encode(sha256).decode("ascii") + ":"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _OwnKey(HTTPSignatureKeyResolver):
    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    def resolve_private_key(self, key_id: str) -> PrivateKey:
        return self._identity.bundle.private_key

    def resolve_public_key(self, key_id: str) -> PublicKey:
        return self._identity.bundle.private_key.public_key()


class _RequestView:
    """What the signer reads and writes of an httpx request."""

    def __init__(self, request: httpx.Request) -> None:
        self.method = request.method
        self.url = str(request.url)
        self.headers = _Headers(request.headers)


class _Headers:
    def __init__(self, headers: httpx.Headers) -> None:
        self._headers = headers

    def items(self) -> Iterable[tuple[str, str]]:
        return self._headers.multi_items()

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._headers

    def __setitem__(self, name: str, value: str) -> None:
        self._headers[name] = value

    def __delitem__(self, name: str) -> None:
        del self._headers[name]


class SignedRequests(httpx.Auth):
    """An httpx auth flow that signs every request with ``identity`` (see the module docstring)."""

    requires_request_body = True

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self._certificate = b64url(identity.certificate_bytes)
        self._key_id = identity.certificate_id.hex()
        self._signer = HTTPMessageSigner(signature_algorithm=algorithm_for(identity.suite.name),
                                         key_resolver=_OwnKey(identity))

    def sign(self, request: httpx.Request, *, created: datetime.datetime | None = None,
             nonce: str | None = None) -> httpx.Request:
        request.headers[CERTIFICATE_HEADER] = self._certificate
        body = request.content
        self._signer.sign(
            _RequestView(request),
            key_id=self._key_id,
            created=created or datetime.datetime.now(datetime.UTC),
            nonce=nonce or secrets.token_hex(16),
            label=SIGNATURE_LABEL,
            tag=SIGNATURE_TAG,
            covered_component_ids=COVERED_COMPONENTS,
            body=body if body else None,
        )
        return request

    def sign_streamed(self, request: httpx.Request, content_sha256: bytes) -> httpx.Request:
        """Sign a request whose body streams (a large upload, never held in memory): the caller
        hashed the body beforehand; the signature covers its RFC 9530 ``Content-Digest``, and the
        server checks the digest while it reads the stream (and keeps nothing if it differs)."""
        request.headers[CERTIFICATE_HEADER] = self._certificate
        request.headers["content-digest"] = content_digest_header(content_sha256)
        self._signer.sign(
            _RequestView(request),
            key_id=self._key_id,
            created=datetime.datetime.now(datetime.UTC),
            nonce=secrets.token_hex(16),
            label=SIGNATURE_LABEL,
            tag=SIGNATURE_TAG,
            covered_component_ids=(*COVERED_COMPONENTS, "content-digest"),
            use_existing_digest=True,
        )
        return request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield self.sign(request)

"""No anonymous reads: every request is signed by a consortium member (RFC 9421).

:class:`SignedRequestMiddleware` admits a request only when it carries a valid HTTP Message
Signature (label ``pilotchain``) by the key of a certificate the consortium vouches for now, over
``@method``, ``@target-uri``, ``pilotchain-certificate`` and, when there is a body, its
``content-digest``; ``created`` within ``skew_s`` of the node's clock; and a nonce not seen within
the replay window (the conventions are in :mod:`pilotchain.sdk._signing`, which signs). Anything else
is answered 401 with the reason, and counted. Open without a signature: ``/healthz`` and
``/readyz`` (probes; they name the chain, nothing of its contents) and ``/metrics`` from a loopback
address (a local Prometheus agent; scrape through it or a proxy that signs).

The authenticated certificate is put in the ASGI scope (``pilotchain.caller_certificate``), so a
query runs as the caller who signed it and never as a certificate named in the body.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import anyio
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver
from http_message_signatures.exceptions import HTTPMessageSignaturesException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pilotchain.crypto import PublicKey, Suite
from pilotchain.errors import CoreError
from pilotchain.gateway._middleware import _send_json, json_error_body
from pilotchain.ledger.tx import TxRejected
from pilotchain.sdk._signing import (
    CERTIFICATE_HEADER,
    COVERED_COMPONENTS,
    SIGNATURE_LABEL,
    SIGNATURE_TAG,
    algorithm_for,
)

__all__ = ["CALLER_SCOPE_KEY", "OPEN_PATHS", "ReplayCache", "RequestAuthenticator", "SignedRequestMiddleware"]

CALLER_SCOPE_KEY = "pilotchain.caller_certificate"
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
#: a signature's ``created`` may differ from the node's clock by this much
SKEW_S = 60
#: nonces are remembered this long (and a signature older than this is refused anyway)
REPLAY_WINDOW_S = 300
#: at most this many nonces remembered (oldest forgotten first; the window bounds them too)
REPLAY_NONCES_MAX = 200_000
#: certificates in one header (base64url of the canonical bytes)
CERTIFICATE_HEADER_BYTES_MAX = 8_192


class ReplayCache:
    """Nonces seen within the window, per key id; bounded."""

    def __init__(self, window_s: int = REPLAY_WINDOW_S, size_max: int = REPLAY_NONCES_MAX) -> None:
        self.window_s = window_s
        self.size_max = size_max
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def first_use(self, key_id: str, nonce: str, now_s: float) -> bool:
        """True the first time (``key_id``, ``nonce``) is seen within the window."""
        with self._lock:
            return self._first_use(key_id, nonce, now_s)

    def _first_use(self, key_id: str, nonce: str, now_s: float) -> bool:
        while self._seen:
            oldest_key, seen_at = next(iter(self._seen.items()))
            if now_s - seen_at <= self.window_s and len(self._seen) < self.size_max:
                break
            del self._seen[oldest_key]
        key = (key_id, nonce)
        if key in self._seen:
            return False
        self._seen[key] = now_s
        return True


class _Refused(CoreError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _Unavailable(CoreError):
    """The node cannot check identities now (stopping, its store closed)."""


class _HeaderView:
    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._items = [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in raw]

    def items(self) -> Iterable[tuple[str, str]]:
        return self._items

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._items))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(field == name.lower() for field, _ in self._items)

    def get(self, name: str) -> str | None:
        return next((value for field, value in self._items if field == name), None)

    def __setitem__(self, name: str, value: str) -> None:  # pragma: no cover - read-only view
        raise TypeError("read-only")

    def __delitem__(self, name: str) -> None:  # pragma: no cover - read-only view
        raise TypeError("read-only")


class _RequestView:
    def __init__(self, scope: Scope, headers: _HeaderView) -> None:
        self.method = scope["method"]
        self.headers = headers
        host = headers.get("host") or ""
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        self.url = f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")


class _CertificateKey(HTTPSignatureKeyResolver):
    def __init__(self, key_id: str, public_key: PublicKey) -> None:
        self._key_id = key_id
        self._public_key = public_key

    def resolve_public_key(self, key_id: str) -> PublicKey | None:
        return self._public_key if key_id == self._key_id else None

    def resolve_private_key(self, key_id: str) -> Any:  # pragma: no cover - the gateway never signs
        raise HTTPMessageSignaturesException("the gateway does not sign requests")


def _is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class RequestAuthenticator(Protocol):
    """Who vouches for a request's certificate: a node (``NodeAPI``), or a vault that proves
    membership from its node's state (such an authenticator sets ``blocking = True``: it is then
    called from a worker thread, not the event loop)."""

    def authenticate(self, certificate: bytes) -> bytes:
        """The certificate's SPKI DER when a current member's; TxRejected otherwise."""
        ...

    def healthy(self) -> tuple[bool, str]: ...


class SignedRequestMiddleware:
    """See the module docstring. ``refused(reason, remote, message)`` counts and logs refusals."""

    def __init__(self, app: ASGIApp, *, node: RequestAuthenticator, suite: Suite,
                 refused: Callable[[str, str, str], None] | None = None,
                 clock_s: Callable[[], float] = time.time, skew_s: int = SKEW_S,
                 replay: ReplayCache | None = None,
                 streamed: Callable[[Scope], bool] | None = None) -> None:
        self.app = app
        self.node = node
        self.suite = suite
        self._refused = refused
        self._clock_s = clock_s
        self.skew_s = skew_s
        self.replay = replay if replay is not None else ReplayCache()
        self._algorithm = algorithm_for(suite.name)
        #: requests whose body streams to the endpoint unread: their signature must cover a
        #: Content-Digest, which the endpoint checks against the bytes as they arrive
        self._streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or (
                scope["path"] == "/metrics" and _is_loopback(scope)):
            await self.app(scope, receive, send)
            return
        streamed = self._streamed is not None and self._streamed(scope)
        body, messages = (b"", []) if streamed else await _read_body(receive)
        try:
            if getattr(self.node, "blocking", False):  # it asks its node over the network: off the loop
                certificate = await anyio.to_thread.run_sync(lambda: self._verify(scope, body, streamed=streamed))
            else:
                certificate = self._verify(scope, body, streamed=streamed)
        except _Unavailable as exc:
            await _send_json(send, 503, json_error_body("UNAVAILABLE", str(exc)), [(b"retry-after", b"1")])
            return
        except _Refused as refusal:
            if self._refused is not None:
                remote = scope["client"][0] if scope.get("client") else "?"
                self._refused(refusal.reason, remote,
                              f"refused {scope.get('method')} {scope.get('path')} from {remote}: {refusal.message}")
            await _send_json(send, 401, json_error_body("UNAUTHENTICATED", refusal.message),
                             [(b"www-authenticate", b'Signature label="pilotchain"')])
            return
        scope[CALLER_SCOPE_KEY] = certificate  # in place: the outer middlewares read the route from it
        replay = iter(messages)

        async def replayed() -> Message:
            message = next(replay, None)
            return message if message is not None else await receive()

        await self.app(scope, replayed, send)

    def _verify(self, scope: Scope, body: bytes, *, streamed: bool = False) -> bytes:
        headers = _HeaderView(scope.get("headers", ()))
        encoded = headers.get(CERTIFICATE_HEADER)
        if encoded is None or "signature" not in headers or "signature-input" not in headers:
            raise _Refused("UNSIGNED", "this gateway answers consortium members only: sign the request with your "
                           "identity (the SDK's Client(identity=...), the CLI's --identity; HTTP Message "
                           "Signatures, RFC 9421, see docs/api.md)")
        if len(encoded) > CERTIFICATE_HEADER_BYTES_MAX:
            raise _Refused("MALFORMED", f"the {CERTIFICATE_HEADER} header is too large")
        try:
            certificate = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError) as exc:
            raise _Refused("MALFORMED", f"the {CERTIFICATE_HEADER} header is not base64url: {exc}") from None
        try:
            public_key_der = self.node.authenticate(certificate)
        except TxRejected as exc:
            raise _Refused("NOT_A_MEMBER", f"the signing certificate is not a current consortium member's: "
                           f"{exc.message}") from None
        except Exception:  # noqa: BLE001 - a node that cannot read its membership now
            healthy, reason = self.node.healthy()
            if healthy:
                raise
            raise _Unavailable(f"the node cannot check identities now ({reason}); "
                               "retry later or ask another node") from None
        key_id = self.suite.hash(certificate).hex()
        try:
            public_key = self.suite.public_key(public_key_der)
        except Exception as exc:  # noqa: BLE001 - a key membership accepted but this suite cannot load
            raise _Refused("MALFORMED", f"the certificate's key cannot be used: {exc}") from None
        verifier = HTTPMessageVerifier(signature_algorithm=self._algorithm,
                                       key_resolver=_CertificateKey(key_id, public_key))
        verifier.max_clock_skew = datetime.timedelta(seconds=self.skew_s)
        required = [*COVERED_COMPONENTS, "content-digest"] if body or streamed else list(COVERED_COMPONENTS)
        try:
            results = verifier.verify(_RequestView(scope, headers), expect_label=SIGNATURE_LABEL, expect_tag=SIGNATURE_TAG,
                                      max_age=datetime.timedelta(seconds=self.replay.window_s),
                                      require_components=required, body=None if streamed else body)
        except HTTPMessageSignaturesException as exc:
            raise _Refused("BAD_SIGNATURE", f"the request signature does not verify: {exc}") from None
        parameters = results[0].parameters if results else {}
        if parameters.get("keyid") != key_id:
            raise _Refused("BAD_SIGNATURE", "the signature's keyid is not the certificate's id")
        created = parameters.get("created")
        now_s = self._clock_s()
        if not isinstance(created, int) or abs(now_s - created) > self.skew_s:
            raise _Refused("STALE", f"the signature was created {created}, the node's clock says {int(now_s)}: "
                           f"sign each request when you send it (clocks within {self.skew_s} s)")
        nonce = parameters.get("nonce")
        if not isinstance(nonce, str) or len(nonce) < 16:
            raise _Refused("BAD_SIGNATURE", "the signature needs a nonce of at least 16 characters")
        if not self.replay.first_use(key_id, nonce, now_s):
            raise _Refused("REPLAYED", "this signed request was already used (a replay); sign every request anew")
        return certificate


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole body (already bounded by the body-limit middleware outside this one)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages

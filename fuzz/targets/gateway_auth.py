"""The gateway's request authentication (``gateway/_auth.py``): the first thing it does with the
method, target, headers and body of every request from anyone (RFC 9421 signatures, parsed by
``http-message-signatures`` and ``http-sf``, both instrumented here)."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator
from typing import Any

import httpx
from http_message_signatures import signatures as _signatures

from fuzz.harness import NOW_MS, consortium, expect
from pilotchain.gateway._auth import SignedRequestMiddleware, _Refused, _Unavailable
from pilotchain.ledger.auth import MembershipAuthenticator

CONTRACT = """
SignedRequestMiddleware's check of a request (method, target, headers, body: any bytes) returns
the signer's certificate only for a request signed by a current member's key over the required
components, with a fresh created time and an unused nonce, and otherwise refuses it (401 with a
reason, or 503) — it never raises anything else, which would be a 500. Input: an HTTP/1.1-style
head ("METHOD target", then "name: value" lines), a blank line, then the body.
"""

MAX_LEN = 8 * 1024
_CREATED = datetime.datetime.fromtimestamp(NOW_MS / 1000, datetime.UTC)


class _FrozenDatetime(datetime.datetime):
    """The library reads the wall clock for ``created`` checks; the fuzz clock is NOW_MS, so an
    input means the same on every run (the middleware's own clock is ``clock_s``)."""

    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> _FrozenDatetime:
        return cls.fromtimestamp(NOW_MS / 1000, tz or datetime.UTC)


class _FrozenClock:
    timezone = datetime.timezone
    timedelta = datetime.timedelta
    datetime = _FrozenDatetime


_REAL_CLOCK = _signatures.datetime  # type: ignore[attr-defined]


class _Node:
    """The node side of authentication: the fuzz consortium's membership, always healthy."""

    def __init__(self) -> None:
        self._authenticator = MembershipAuthenticator(consortium("intl").membership())

    def authenticate(self, certificate: bytes) -> bytes:
        return self._authenticator.reader(certificate, NOW_MS)[0]

    def healthy(self) -> tuple[bool, str]:
        return True, ""


@functools.cache
def _node() -> _Node:
    return _Node()


def _scope(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    head, _, body = data.partition(b"\n\n")
    lines = head.split(b"\n")
    method, _, target = lines[0].partition(b" ")
    path, _, query = target.partition(b"?")
    if not method or not path.startswith(b"/"):
        return None  # not what an HTTP server hands an ASGI app
    headers = []
    for line in lines[1:]:
        name, separator, value = line.partition(b":")
        if separator and name and not any(c in name for c in b" \t\r"):
            headers.append((name.strip().lower(), value.strip()))
    scope = {"type": "http", "method": method.decode("latin-1"), "path": path.decode("latin-1"),
             "raw_path": path, "query_string": query, "headers": headers, "scheme": "http",
             "client": ("203.0.113.7", 40000)}
    return scope, body


def one_input(data: bytes) -> None:
    parsed = _scope(data)
    if parsed is None:
        return
    scope, body = parsed
    middleware = SignedRequestMiddleware(None, node=_node(), suite=consortium("intl").suite,  # type: ignore[arg-type]
                                         clock_s=lambda: NOW_MS / 1000)
    # the library's wall clock is frozen only while this input runs: the fuzz target is also
    # loaded inside pytest workers that go on to verify real requests (a module-level patch made
    # every later signature in that worker "too old")
    _signatures.datetime = _FrozenClock  # type: ignore[attr-defined]
    try:
        certificate = middleware._verify(scope, body)
    except (_Refused, _Unavailable) as exc:
        expect(bool(str(exc).strip()), "a refusal without a message")
        return
    finally:
        _signatures.datetime = _REAL_CLOCK  # type: ignore[attr-defined]
    identity = _node()._authenticator.identity(certificate, NOW_MS)
    expect(identity.org_id in ("org-a", "org-b"), "admitted a request signed by a non-member")


def seeds() -> Iterator[bytes]:
    from pilotchain.crypto import get_suite
    from pilotchain.identity.files import IdentityBundle
    from pilotchain.identity.records import Certificate, decode_record
    from pilotchain.sdk import Identity
    from pilotchain.sdk._signing import SignedRequests

    member = consortium("intl").members["org-a-client"]
    identity = Identity(IdentityBundle(get_suite("intl"), decode_record(member.certificate, Certificate), member.key))
    signer = SignedRequests(identity)
    for method, url, content in (("GET", "http://node.example:26601/v1/status", b""),
                                 ("POST", "http://node.example:26601/v1/txs?wait=1", b'{"tx": "AAEC"}'),
                                 ("GET", "http://node.example:26601/v1/state/kv/beds", b"")):
        request = signer.sign(httpx.Request(method, url, content=content), created=_CREATED, nonce="0123456789abcdef01")
        head = [f"{method} {request.url.raw_path.decode()}".encode()]
        head += [name + b": " + value for name, value in request.headers.raw]
        yield b"\n".join(head) + b"\n\n" + content

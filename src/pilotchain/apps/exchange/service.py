"""The vault's REST service (FastAPI): its own organisation's members store, read, fetch and purge
payloads; other organisations' vaults ask for deliveries and send acknowledgements.

Every request but ``/healthz`` (and ``/metrics`` from the vault's own host) is an RFC 9421 signed
request by a current consortium member — the gateway's middleware, with membership proven from
chain state (:meth:`~pilotchain.apps.exchange.chainview.ChainView.member`). Uploads stream: the
signature covers the body's ``Content-Digest``, which is checked while the bytes are stored (and
nothing is kept if it differs), so a 64 MiB payload never sits in memory.

Routes (local = members of the vault's organisation only)::

    PUT  /v1/payloads/{id}            local   upload (body streams); headers below; 201
    GET  /v1/payloads                 local   list (?after=&limit=)
    GET  /v1/payloads/{id}            local   metadata
    GET  /v1/payloads/{id}/content    local   the plaintext (streams)
    POST /v1/payloads/{id}/fetch      local   {"purpose", "owner_org"?}: get a copy from its owner
    POST /v1/payloads/{id}/purge      local   {"reason"}: purge own payload on chain and here
    GET  /v1/receipts?payload_id=     local   receipts with their anchoring proofs
    GET  /v1/requests?payload_id=     local   deliveries made and asked for, with outcomes
    POST /v1/deliveries               members a delivery request (msgpack DeliveryRequest) -> package
    POST /v1/acknowledgements         members a consumer's signed receipt for a delivery we made
    POST /v1/audit/export             local   {"payload_id"|"org"|"subject"|"since_ms"|"until_ms"} -> evidence file

Upload headers: ``Content-Type`` (the media type), ``Pilotchain-Classification``,
``Pilotchain-Retention-Until`` (ms since 1970), optional ``Pilotchain-Policy`` (a contract that
decides) and ``Pilotchain-Subjects`` (comma-separated pseudonymous references).

Extensions: an application that releases data its own way (the government catalogue releases
agreed fields of records) adds routes to the vault through the ``pilotchain.vault_extensions``
entry points: ``extend(app, vault)`` mounts its routes (behind the same signed-request check) and
may append background duties to ``app.state.maintenance_steps`` (the maintenance thread runs them
after its own) and shutdown hooks to ``app.state.closers``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import queue
import re
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pilotchain.apps.exchange.records import DeliveryRequest, ExchangeError
from pilotchain.apps.exchange.store import TIME_MS_MAX, VaultStoreError, VaultStoreReason
from pilotchain.apps.exchange.vault import Vault, frames_of, payload_json, sha256_checked
from pilotchain.codec import CodecError, decode
from pilotchain.errors import CoreError
from pilotchain.gateway._auth import CALLER_SCOPE_KEY, OPEN_PATHS, SignedRequestMiddleware
from pilotchain.gateway._middleware import JsonErrorMiddleware
from pilotchain.gateway.app import without_validation_error
from pilotchain.identity.records import ORG_ID_PATTERN, Certificate, decode_record
from pilotchain.ledger.tx import RejectCode
from pilotchain.sdk import PilotchainError

__all__ = ["EXTENSION_GROUP", "VaultAuthenticator", "create_vault_app", "vault_extensions"]

_log = logging.getLogger("pilotchain.vault")

#: applications' vault extensions (name -> ``extend(app, vault)``)
EXTENSION_GROUP = "pilotchain.vault_extensions"
#: what an audit export answers
EVIDENCE_MEDIA_TYPE = "application/vnd.pilotchain.evidence"
#: a delivery package
DELIVERY_MEDIA_TYPE = "application/vnd.pilotchain.delivery"
#: a delivery request or acknowledgement body
SMALL_BODY_BYTES_MAX = 64 * 1024
#: chunks buffered between the upload's socket and the store (bounded memory)
UPLOAD_QUEUE_CHUNKS = 4

HTTP_OF_CODE = {
    "NOT_FOUND": 404, "PURGED": 410, "NOT_REGISTERED": 404, "REPLAYED": 409, "DUPLICATE": 409,
    "NO_PERMIT": 403, "WITHDRAWN": 403, "EXPIRED": 403, "WRONG_PURPOSE": 403, "NOT_OWNER": 403,
    "PERMISSION_DENIED": 403, "NO_KEY": 409, "NO_ENDPOINT": 409, "TOO_LARGE": 413, "BAD_DIGEST": 400,
    "BAD_REQUEST": 400, "BAD_ID": 400, "BAD_ARGUMENT": 400, "STALE_CHAIN": 503, "CHAIN_UNAVAILABLE": 503,
    "UNREACHABLE": 502, "UNPROVEN": 502, "COMMITMENT_MISMATCH": 502, "TAMPERED": 502, "MISMATCH": 409,
    # a schema-valid fetch of the organisation's own payload: the request is fine, the payload is here
    "OWN_PAYLOAD": 409,
}
#: store refusals that are the caller's to fix, by HTTP status; any other store failure (its home
#: altered, full, locked, closed, an I/O error) is the vault's: 503 when retrying can help, else 500
_STATUS_OF_STORE_REASON = {
    VaultStoreReason.NOT_FOUND: 404, VaultStoreReason.PURGED: 410, VaultStoreReason.DUPLICATE: 409,
    VaultStoreReason.TOO_LARGE: 413, VaultStoreReason.BAD_ID: 400, VaultStoreReason.BAD_ARGUMENT: 400,
    VaultStoreReason.COMMITMENT_MISMATCH: 502, VaultStoreReason.STORAGE_FULL: 503, VaultStoreReason.LOCKED: 503,
    VaultStoreReason.CLOSED: 503,
}

# -- the OpenAPI: every status and content type an operation answers (tests/apps/exchange/test_api_contract.py)

#: payload ids in paths and queries (the store's rule, docs/exchange.md)
PAYLOAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_PAYLOAD_ID_RE = re.compile(PAYLOAD_ID_PATTERN[1:-1], re.ASCII)
_ORG_PATTERN = ORG_ID_PATTERN.pattern
_CLASSIFICATION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_CLASSIFICATION_RE = re.compile(_CLASSIFICATION_PATTERN[1:-1], re.ASCII)
#: ms since 1970 as ASCII digits (int() would take ' 7', '+7', '7_0' and '١')
_TIME_MS_RE = re.compile(r"[0-9]{1,19}", re.ASCII)
#: a purge reason (the store holds it to str.isprintable(), which no JSON schema pattern can say)
_PURGE_REASON_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]{1,256}$"
#: the one route whose body streams unread past the signature check
_UPLOAD_PATH = re.compile(r"/v1/payloads/[^/]+")
#: what a listing page may hold
LIST_LIMIT_MAX = 1000
#: the body of every refusal
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    "required": ["code", "message"],
}
_ERROR_MEANINGS: dict[int, str] = {
    400: "BAD_REQUEST, BAD_ID, BAD_ARGUMENT, BAD_DIGEST, MALFORMED or the code of a refused dataex call: "
         "the message says what to fix",
    401: "UNAUTHENTICATED: not signed (RFC 9421) by a current consortium member, or stale, replayed or not "
         "verifying (an upload's signature must cover its Content-Digest)",
    403: "PERMISSION_DENIED (the signer is not of this vault's organisation) or the release rule's refusal: "
         "NO_PERMIT, WITHDRAWN, EXPIRED, WRONG_PURPOSE, NOT_OWNER",
    404: "NOT_FOUND: no such payload, registration, delivery or route",
    405: "METHOD_NOT_ALLOWED: the Allow header lists the methods this path serves",
    409: "DUPLICATE, REPLAYED, MISMATCH, NO_KEY, NO_ENDPOINT or OWN_PAYLOAD: the request conflicts with what "
         "the vault or the chain holds",
    410: "PURGED: the payload was purged (its tombstone remains)",
    413: "TOO_LARGE: the body is over its bound",
    500: "INTERNAL: a bug or a failed store; the vault log has the details",
    502: "UNREACHABLE, UNPROVEN, COMMITMENT_MISMATCH, TAMPERED: another organisation's vault or the chain "
         "answered wrongly or not at all",
    503: "UNAVAILABLE, CHAIN_UNAVAILABLE, STALE_CHAIN, STORAGE_FULL: the vault cannot serve this now; retry later",
}
#: what any signed request may be answered besides its own outcomes (the middlewares' refusals)
_SIGNED_ERRORS = (401, 405, 500, 503)
#: open probes
_OPEN_ERRORS = (405, 500)


def _documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses: each the JSON error body."""
    return {status: {"description": _ERROR_MEANINGS[status], "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
            for status in sorted(set(statuses))}


def _json_body(properties: dict[str, Any], *, required: tuple[str, ...] = (), description: str = "") -> dict[str, Any]:
    """``openapi_extra`` for an operation that reads a JSON object itself."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": list(required)}
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": schema}}}}


def _binary_body(media_type: str, description: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": description,
                            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}}


def _binary_answer(media_type: str, description: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": description,
                     "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}}


class VaultAuthenticator:
    """What the signed-request middleware asks: is this certificate a current member's? (It
    reads proven membership through the organisation's node: blocking, so off the event loop.)"""

    blocking = True

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._problem = ""

    def authenticate(self, certificate: bytes) -> bytes:
        try:
            key, _ = self.vault.chain.member(certificate)
        except ExchangeError as exc:
            self._problem = exc.message
            raise
        self._problem = ""
        return key

    def healthy(self) -> tuple[bool, str]:
        return (not self._problem, self._problem or "ok")


class _ApiError(CoreError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _from_exchange(exc: ExchangeError) -> _ApiError:
    return _ApiError(HTTP_OF_CODE.get(exc.code, 400), exc.code, exc.message)


def _from_store(exc: VaultStoreError) -> _ApiError:
    return _ApiError(_STATUS_OF_STORE_REASON.get(exc.reason, 500), exc.reason.name, str(exc))


class _VaultCollector(Collector):
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def collect(self) -> Iterator[Any]:
        counters = self.vault.counters
        usage = self.vault.store.usage()
        totals = (
            ("pilotchain_vault_deliveries", "Payloads delivered to other organisations", counters.deliveries),
            ("pilotchain_vault_received", "Copies received from other organisations", counters.received),
            ("pilotchain_vault_delivered_bytes", "Plaintext bytes delivered", counters.delivered_bytes),
            ("pilotchain_vault_received_bytes", "Plaintext bytes received", counters.received_bytes),
            ("pilotchain_vault_anchored_receipts", "Receipts anchored on chain", counters.anchored_receipts),
            ("pilotchain_vault_anchor_batches", "Anchoring transactions", counters.anchored_batches),
            ("pilotchain_vault_purged_copies", "Copies deleted after a purge on chain", counters.purged_copies),
        )
        for name, documentation, value in totals:
            family = CounterMetricFamily(name, documentation)
            family.add_metric([], value)
            yield family
        refusals = CounterMetricFamily("pilotchain_vault_refusals", "Requests refused, by reason", labels=["reason"])
        for code, count in sorted(counters.refusals.items()):
            refusals.add_metric([code], count)
        yield refusals
        levels = (
            ("pilotchain_vault_receipts_pending", "Receipts waiting to be anchored", self.vault.book.pending_count()),
            ("pilotchain_vault_outbox", "Acknowledgements and confirmations queued", self.vault.book.outbox_depth()),
            ("pilotchain_vault_payloads", "Live payloads (own and copies)", usage.live_count),
            ("pilotchain_vault_payload_bytes", "Plaintext bytes of live payloads", usage.live_bytes),
        )
        for name, documentation, value in levels:
            gauge = GaugeMetricFamily(name, documentation)
            gauge.add_metric([], value)
            yield gauge


def _caller(request: Request) -> Certificate:
    raw = request.scope.get(CALLER_SCOPE_KEY)
    if raw is None:  # pragma: no cover - the middleware refuses unsigned requests first
        raise _ApiError(401, "UNAUTHENTICATED", "sign the request")
    return decode_record(raw, Certificate)


def create_vault_app(vault: Vault) -> FastAPI:
    app = FastAPI(title=f"pilotchain vault ({vault.org})", version="1", docs_url=None, redoc_url=None)
    registry = CollectorRegistry()
    registry.register(_VaultCollector(vault))
    requests_total = Counter("pilotchain_vault_http_requests", "HTTP requests by route and status",
                             ["route", "status"], registry=registry)
    up = Gauge("pilotchain_vault_up", "1 while the vault serves", registry=registry)
    up.set(1)

    # errors: the JSON body everywhere (the `count` middleware below counts every answer once, by
    # route template: a label per raw path would grow without bound)
    @app.exception_handler(_ApiError)
    async def _api_error(_request: Request, exc: _ApiError) -> JSONResponse:
        return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            allowed = _allowed_methods(app, request)
            return JSONResponse({"code": "METHOD_NOT_ALLOWED",
                                 "message": f"{request.method} is not served at this path; it serves {', '.join(allowed)}"},
                                status_code=405, headers={"Allow": ", ".join(allowed)})
        if exc.status_code == 404:
            return JSONResponse({"code": "NOT_FOUND", "message": "no such endpoint; see /openapi.json"}, status_code=404)
        return JSONResponse({"code": "BAD_REQUEST", "message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return JSONResponse({"code": "BAD_REQUEST", "message": problems or "invalid request"}, status_code=400)

    generated_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, completed: every operation (extensions' too) lists the refusals
        the middlewares answer, 400 instead of FastAPI's 422 where there is input to refuse."""
        if app.openapi_schema is None:
            app.openapi_schema = _completed(generated_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    def local(request: Request) -> Certificate:
        caller = _caller(request)
        if caller.org_id != vault.org:
            raise _ApiError(403, RejectCode.PERMISSION_DENIED.value,
                            f"this vault serves {vault.org}'s members; {caller.org_id} talks to its own vault "
                            "(other organisations' vaults ask for deliveries)")
        return caller

    async def blocking(function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
        except ExchangeError as exc:
            raise _from_exchange(exc) from exc
        except VaultStoreError as exc:
            raise _from_store(exc) from exc

    @app.get("/healthz", summary="Liveness, and the organisation this vault serves (open: no signature)")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "org": vault.org, "chain_id": vault.chain.genesis.chain_id}

    @app.get("/metrics", summary="Prometheus text: deliveries, refusals by reason, queue depths, bytes (open to a "
                                 "scraper on the vault's host; others sign)", response_class=Response,
             responses={200: {"description": "the Prometheus text exposition format",
                              "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.put("/v1/payloads/{payload_id}", status_code=201,
             summary="Store a payload and register its commitment",
             description="The body is the payload (any media type: its Content-Type is kept and served back). The "
                         "signature covers the body's RFC 9530 Content-Digest (sha-256), checked while the bytes "
                         "are stored; nothing is kept if it differs. Acknowledged once stored and registered on "
                         "chain (the dataex contract checks what a schema cannot: the classification is one the "
                         "consortium allows, the retention ends in the future).",
             responses={201: {"description": "stored and registered: the payload's metadata, tx_id and height"},
                        **_documented(403, 409, 413, 502)},
             openapi_extra=_binary_body("*/*", "the payload's bytes, streamed"))
    async def upload(
        payload_id: Annotated[str, Path(json_schema_extra={"pattern": PAYLOAD_ID_PATTERN})],
        request: Request,
        retention_until: Annotated[str, Header(alias="pilotchain-retention-until", description="ms since 1970",
                                               json_schema_extra={"pattern": _TIME_MS_RE.pattern.join("^$")})],
        classification: Annotated[str, Header(alias="pilotchain-classification",
                                              json_schema_extra={"pattern": _CLASSIFICATION_PATTERN})] = "general",
        policy: Annotated[str, Header(alias="pilotchain-policy", max_length=63,
                                      description="a contract that decides releases")] = "",
        subjects_text: Annotated[str, Header(alias="pilotchain-subjects", max_length=16 * 129,
                                             description="comma-separated pseudonymous references")] = "",
    ) -> JSONResponse:
        local(request)
        headers = request.headers
        _require_payload_id(payload_id)
        digest = _content_sha256(headers.get("content-digest"))
        if not _TIME_MS_RE.fullmatch(retention_until) or int(retention_until) > TIME_MS_MAX:
            raise _ApiError(400, "BAD_REQUEST", "Pilotchain-Retention-Until is a time in ms since 1970 (ASCII digits)")
        if not _CLASSIFICATION_RE.fullmatch(classification):
            raise _ApiError(400, "BAD_REQUEST", "Pilotchain-Classification is 1..64 of A-Z a-z 0-9 . _ - "
                                                "(one the consortium allows: general, important, core by default)")
        retention = int(retention_until)
        subjects = [s.strip() for s in subjects_text.split(",") if s.strip()]
        pieces: queue.Queue[bytes | None] = queue.Queue(UPLOAD_QUEUE_CHUNKS)
        stop = threading.Event()

        def source() -> Iterator[bytes]:
            while True:
                piece = pieces.get()
                if piece is None:
                    return
                if stop.is_set():
                    raise ExchangeError("BAD_REQUEST", "the upload was cut off")
                yield piece

        def put() -> dict[str, Any]:
            return vault.put(payload_id, sha256_checked(source(), digest),
                             media_type=headers.get("content-type", "application/octet-stream"),
                             classification=classification,
                             retention_until_ms=retention, policy=policy,
                             subjects=subjects)

        async def offer(piece: bytes | None) -> bool:
            """Hand a piece to the store's thread (waits while the queue is full); False once
            the store stopped (it refused the upload: its error is the answer)."""
            while not worker.done():
                try:
                    pieces.put_nowait(piece)
                    return True
                except queue.Full:
                    await asyncio.sleep(0.002)
            return False

        worker = asyncio.ensure_future(blocking(put))
        try:
            async for piece in request.stream():
                if piece and not await offer(piece):
                    break
        except BaseException:
            stop.set()  # the client went away: the store keeps nothing
            await offer(None)
            raise
        await offer(None)
        result = await worker
        return JSONResponse(result, status_code=201)

    @app.get("/v1/payloads", summary="This organisation's payloads and copies, in id order",
             responses=_documented(403))
    async def list_payloads(
        request: Request,
        after: Annotated[str | None, Query(json_schema_extra={"pattern": PAYLOAD_ID_PATTERN})] = None,
        limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 100,
    ) -> dict[str, Any]:
        local(request)
        if after is not None:
            _require_payload_id(after)
        page = await blocking(vault.store.list, after=after, limit=limit, include_purged=True)
        return {"items": [payload_json(p) for p in page.items], "next_after": page.next_after}

    @app.get("/v1/payloads/{payload_id}", summary="A payload's metadata (a purged one's tombstone)",
             responses=_documented(403, 404))
    async def get_payload(payload_id: Annotated[str, Path(json_schema_extra={"pattern": PAYLOAD_ID_PATTERN})],
                          request: Request) -> dict[str, Any]:
        local(request)
        _require_payload_id(payload_id)
        return payload_json(await blocking(vault.store.get, payload_id))

    @app.get("/v1/payloads/{payload_id}/content", summary="A payload's bytes (streamed), as its media type",
             response_class=Response,
             responses={**_binary_answer("*/*", "the payload, with the Content-Type it was stored with"),
                        **_documented(403, 404, 410)})
    async def content(payload_id: Annotated[str, Path(json_schema_extra={"pattern": PAYLOAD_ID_PATTERN})],
                      request: Request) -> StreamingResponse:
        local(request)
        _require_payload_id(payload_id)
        stored = await blocking(vault.store.verify, payload_id)
        return StreamingResponse(vault.store.read(payload_id), media_type=stored.media_type,
                                 headers={"content-length": str(stored.size_bytes)})

    @app.post("/v1/payloads/{payload_id}/fetch", summary="Get a copy from the owner's vault (needs a PERMIT)",
              responses=_documented(403, 404, 409, 410, 413, 502),
              openapi_extra=_json_body({"purpose": {"type": "string", "minLength": 1, "maxLength": 64},
                                        "owner_org": {"type": "string", "pattern": _ORG_PATTERN}},
                                       required=("purpose",), description="why (the PERMIT's purpose); optionally "
                                       "the owner the caller expects"))
    async def fetch(payload_id: Annotated[str, Path(json_schema_extra={"pattern": PAYLOAD_ID_PATTERN})],
                    request: Request) -> dict[str, Any]:
        local(request)
        _require_payload_id(payload_id)
        document = await _json(request)
        purpose = document.get("purpose")
        owner = document.get("owner_org")
        if not isinstance(purpose, str) or not 1 <= len(purpose) <= 64 or not (
                owner is None or isinstance(owner, str) and ORG_ID_PATTERN.fullmatch(owner)):
            raise _ApiError(400, "BAD_REQUEST", 'body is {"purpose": "<1..64 characters>", "owner_org"?: "<org id>"}')
        result: dict[str, Any] = await blocking(vault.fetch, payload_id, purpose, owner_org=owner)
        return result

    @app.post("/v1/payloads/{payload_id}/purge", summary="Purge an own payload on chain and here",
              responses=_documented(403, 404, 409, 410, 413, 502),
              openapi_extra=_json_body({"reason": {"type": "string", "pattern": _PURGE_REASON_PATTERN}},
                                       required=("reason",), description="why (recorded on chain): 1..256 "
                                       "printable characters (str.isprintable: no control, format, private-use, "
                                       "unassigned or separator characters but the space; the pattern says what "
                                       "a JSON schema can)"))
    async def purge(payload_id: Annotated[str, Path(json_schema_extra={"pattern": PAYLOAD_ID_PATTERN})],
                    request: Request) -> dict[str, Any]:
        local(request)
        _require_payload_id(payload_id)
        document = await _json(request)
        reason = document.get("reason")
        if not isinstance(reason, str) or not 1 <= len(reason) <= 256:
            raise _ApiError(400, "BAD_REQUEST", 'body is {"reason": "<1..256 printable characters>"}')
        result: dict[str, Any] = await blocking(vault.purge, payload_id, reason)
        return result

    @app.get("/v1/receipts", summary="Receipts (of one payload) with their anchoring proofs",
             responses=_documented(403))
    async def receipts(request: Request,
                       payload_id: Annotated[str, Query(json_schema_extra={"pattern": PAYLOAD_ID_PATTERN})],
                       ) -> dict[str, Any]:
        local(request)
        _require_payload_id(payload_id)

        def collect() -> list[dict[str, Any]]:
            out = []
            for receipt_id, row in vault.book.receipts_of(payload_id):
                proof = vault.book.proof(receipt_id)
                out.append({
                    "receipt_id": receipt_id.hex(), "kind": row.kind, "request_id": row.request_id,
                    "signed": base64.b64encode(row.signed).decode(), "anchored": proof is not None,
                    "proof": None if proof is None else {
                        "root": proof.root.hex(), "index": proof.index, "count": proof.count,
                        "path": [p.hex() for p in proof.path], "tx_id": proof.tx_id, "height": proof.height},
                })
            return out

        return {"payload_id": payload_id, "receipts": await blocking(collect)}

    @app.get("/v1/requests", summary="Deliveries made and asked for, with their outcomes",
             responses=_documented(403))
    async def requests(
        request: Request,
        payload_id: Annotated[str | None, Query(json_schema_extra={"pattern": PAYLOAD_ID_PATTERN})] = None,
    ) -> dict[str, Any]:
        local(request)
        if payload_id is not None:
            _require_payload_id(payload_id)
        rows = await blocking(vault.book.requests, payload_id)
        return {"requests": [{"request_id": r.request_id, "role": r.role, "payload_id": r.payload_id,
                              "peer_org": r.peer_org, "purpose": r.purpose, "outcome": r.outcome,
                              "at_ms": r.at_ms, "detail": r.detail} for r in rows]}

    @app.post("/v1/audit/export", summary="An offline-verifiable audit file for a payload, an organisation, a "
                                         "data subject or a time range", response_class=Response,
              responses={**_binary_answer(EVIDENCE_MEDIA_TYPE, "the evidence bundle (pilotchain audit verify checks "
                                                               "it offline)"),
                         **_documented(403, 404, 413, 502)},
              openapi_extra=_audit_selection_body())
    async def audit_export(request: Request) -> Response:
        local(request)
        document = await _json(request)
        from pilotchain.apps.exchange.audit import Selection, export_audit

        fields = {name: document.get(name) for name in _SELECTION_FIELDS}
        if all(value is None for value in fields.values()):
            raise _ApiError(400, "BAD_REQUEST", "name at least one of payload_id, org, subject, since_ms, until_ms")
        _require_selection(fields)
        try:
            selection = Selection(**fields)
        except TypeError as exc:  # pragma: no cover - the names are fixed above
            raise _ApiError(400, "BAD_REQUEST", str(exc)) from exc
        try:
            bundle: bytes = await blocking(export_audit, vault, selection)
        except PilotchainError as exc:
            raise _ApiError(502, "UNPROVEN", f"the chain cannot prove this now: {exc}") from exc
        return Response(bundle, media_type=EVIDENCE_MEDIA_TYPE)

    @app.post("/v1/deliveries", summary="Another organisation's vault asks for a payload (needs a PERMIT)",
              description="The body is a canonical DeliveryRequest (msgpack, docs/exchange.md); the answer is the "
                          "sealed delivery package, or the release rule's refusal.",
              response_class=Response,
              responses={**_binary_answer(DELIVERY_MEDIA_TYPE, "the sealed package: a header frame, then the "
                                                                "encrypted chunks"),
                         **_documented(403, 404, 409, 410, 413, 502)},
              openapi_extra=_binary_body("application/msgpack", "a canonical DeliveryRequest"))
    async def deliveries(request: Request) -> StreamingResponse:
        caller = _caller(request)
        body = await request.body()
        if len(body) > SMALL_BODY_BYTES_MAX:
            raise _ApiError(413, "TOO_LARGE", "a delivery request is small")
        try:
            asked = decode(body, DeliveryRequest)
        except CodecError as exc:
            raise _ApiError(400, "BAD_REQUEST", f"body is a canonical DeliveryRequest: {exc}") from exc
        header, frames = await blocking(vault.deliver, asked, caller.org_id)
        return StreamingResponse(frames_of(header, frames), media_type=DELIVERY_MEDIA_TYPE)

    @app.post("/v1/acknowledgements", status_code=201, summary="A consumer's signed receipt for a delivery we made",
              responses={201: {"description": "kept: the receipt's id"}, **_documented(404, 409, 413)},
              openapi_extra=_binary_body("application/msgpack", "the consumer's signed Receipt (msgpack)"))
    async def acknowledgements(request: Request) -> JSONResponse:
        caller = _caller(request)
        body = await request.body()
        if len(body) > SMALL_BODY_BYTES_MAX:
            raise _ApiError(413, "TOO_LARGE", "a receipt is small")
        try:
            receipt_id = await blocking(vault.acknowledged, body, caller.org_id)
        except CodecError as exc:
            raise _ApiError(400, "MALFORMED", f"the signed record does not hold a canonical Receipt: {exc}") from exc
        return JSONResponse({"receipt_id": receipt_id.hex()}, status_code=201)

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        route = request.scope.get("route")
        requests_total.labels(route=getattr(route, "path", "?"), status=str(response.status_code)).inc()
        return response

    app.state.maintenance_steps = []
    app.state.closers = []
    for extend in vault_extensions().values():
        extend(app, vault)

    def streamed(scope: Any) -> bool:
        # the upload route only: a PUT elsewhere is answered 405 (or 404), not refused for its digest
        return scope.get("method") == "PUT" and _UPLOAD_PATH.fullmatch(str(scope.get("path", ""))) is not None

    app.add_middleware(SignedRequestMiddleware, node=VaultAuthenticator(vault), suite=vault.suite,
                       streamed=streamed, refused=_refused_logger())
    app.add_middleware(JsonErrorMiddleware)
    return app


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods the routes at this request's path serve (Starlette's 405 names only the first
    route it tried: PUT for GET /v1/payloads/{id}'s path)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _completed(document: dict[str, Any]) -> dict[str, Any]:
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            statuses = list(_OPEN_ERRORS if path in OPEN_PATHS else _SIGNED_ERRORS)
            if "422" in responses or operation.get("parameters") or operation.get("requestBody"):
                statuses.append(400)
            for status, documented in _documented(*statuses).items():
                responses.setdefault(str(status), documented)
    return without_validation_error(document)


def vault_extensions() -> dict[str, Any]:
    """The installed applications' vault extensions by name; one that fails to load is skipped
    with a warning (the vault's own routes keep working)."""
    from importlib.metadata import entry_points

    found: dict[str, Any] = {}
    for entry in sorted(entry_points(group=EXTENSION_GROUP), key=lambda e: e.name):
        try:
            found[entry.name] = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken application must not stop the vault
            _log.warning("the vault extension %r did not load: %s", entry.name, exc)
    return found


def _refused_logger() -> Any:
    def refused(reason: str, remote: str, message: str) -> None:
        _log.warning(message, extra={"event": "vault.unauthenticated", "reason": reason, "remote": remote})
    return refused


_SELECTION_FIELDS = ("payload_id", "org", "subject", "since_ms", "until_ms")
_SUBJECT_CHARS_MAX = 128
#: times in a JSON body: JSON's safe integers (a client's JSON parser may hold larger ones as floats)
_SELECTION_TIME_MS_MAX = 2**53 - 1


def _audit_selection_body() -> dict[str, Any]:
    time_ms = {"type": "integer", "minimum": 0, "maximum": _SELECTION_TIME_MS_MAX}
    body = _json_body({"payload_id": {"type": "string", "pattern": PAYLOAD_ID_PATTERN},
                       "org": {"type": "string", "pattern": _ORG_PATTERN},
                       "subject": {"type": "string", "minLength": 1, "maxLength": _SUBJECT_CHARS_MAX},
                       "since_ms": time_ms, "until_ms": time_ms},
                      description="what the export covers: every condition given must hold, at least one is given")
    body["requestBody"]["content"]["application/json"]["schema"]["anyOf"] = [
        {"required": [name]} for name in _SELECTION_FIELDS]
    return body


def _require_selection(fields: dict[str, Any]) -> None:
    payload_id, org, subject = fields["payload_id"], fields["org"], fields["subject"]
    if payload_id is not None:
        _require_payload_id(payload_id)
    if org is not None and not (isinstance(org, str) and ORG_ID_PATTERN.fullmatch(org)):
        raise _ApiError(400, "BAD_REQUEST", "org is an organisation id (a-z 0-9 -, 1..63)")
    if subject is not None and not (isinstance(subject, str) and 1 <= len(subject) <= _SUBJECT_CHARS_MAX):
        raise _ApiError(400, "BAD_REQUEST", f"subject is 1..{_SUBJECT_CHARS_MAX} characters")
    for name in ("since_ms", "until_ms"):
        value = fields[name]
        if isinstance(value, float) and value.is_integer():  # JSON's 262.0 is the integer 262
            value = fields[name] = int(value)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 0 <= value <= _SELECTION_TIME_MS_MAX):
            raise _ApiError(400, "BAD_REQUEST", f"{name} is milliseconds since 1970, 0..2**53-1")


def _require_payload_id(payload_id: object) -> None:
    if not isinstance(payload_id, str) or not _PAYLOAD_ID_RE.fullmatch(payload_id):
        raise _ApiError(400, "BAD_ID", f"a payload id is 1..128 of A-Z a-z 0-9 . _ : - starting with a letter or "
                                       f"digit; got {str(payload_id)[:140]!r}")


def _content_sha256(header: str | None) -> bytes:
    if not header or not header.startswith("sha-256=:") or not header.endswith(":"):
        raise _ApiError(400, "BAD_REQUEST", "an upload carries Content-Digest: sha-256=:<base64>: (RFC 9530)")
    try:
        digest = base64.b64decode(header[len("sha-256=:"):-1], validate=True)
    except (binascii.Error, ValueError):
        raise _ApiError(400, "BAD_REQUEST", "Content-Digest is not base64") from None
    if len(digest) != 32:
        raise _ApiError(400, "BAD_REQUEST", "Content-Digest sha-256 is 32 bytes")
    return digest


async def _json(request: Request) -> dict[str, Any]:
    import json

    body = await request.body()
    if len(body) > SMALL_BODY_BYTES_MAX:
        raise _ApiError(413, "TOO_LARGE", "the body is too large")
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _ApiError(400, "BAD_REQUEST", f"body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise _ApiError(400, "BAD_REQUEST", "body is a JSON object")
    return document


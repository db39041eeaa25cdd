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
import threading
from collections.abc import Iterator
from typing import Any

import anyio
from fastapi import FastAPI, Request
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

from pilotchain.apps.exchange.records import DeliveryRequest, ExchangeError
from pilotchain.apps.exchange.store import VaultStoreError, VaultStoreReason
from pilotchain.apps.exchange.vault import Vault, frames_of, payload_json, sha256_checked
from pilotchain.codec import CodecError, decode
from pilotchain.errors import CoreError
from pilotchain.gateway._auth import CALLER_SCOPE_KEY, SignedRequestMiddleware
from pilotchain.gateway._middleware import JsonErrorMiddleware
from pilotchain.identity.records import Certificate, decode_record
from pilotchain.ledger.tx import RejectCode
from pilotchain.sdk import PilotchainError

__all__ = ["EXTENSION_GROUP", "VaultAuthenticator", "create_vault_app", "vault_extensions"]

_log = logging.getLogger("pilotchain.vault")

#: applications' vault extensions (name -> ``extend(app, vault)``)
EXTENSION_GROUP = "pilotchain.vault_extensions"
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
    "OWN_PAYLOAD": 400,
}


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
    code = exc.reason.name
    return _ApiError(HTTP_OF_CODE.get(code, 500 if exc.reason == VaultStoreReason.IO_ERROR else 400), code, str(exc))


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

    @app.exception_handler(_ApiError)
    async def _api_error(request: Request, exc: _ApiError) -> JSONResponse:
        requests_total.labels(route=request.scope.get("path", "?"), status=str(exc.status)).inc()
        return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status)

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

    @app.get("/healthz", summary="Liveness, and the organisation this vault serves")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "org": vault.org, "chain_id": vault.chain.genesis.chain_id}

    @app.get("/metrics", summary="Prometheus: deliveries, refusals by reason, queue depths, bytes")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.put("/v1/payloads/{payload_id}", status_code=201, summary="Store a payload and register its commitment")
    async def upload(payload_id: str, request: Request) -> JSONResponse:
        local(request)
        headers = request.headers
        digest = _content_sha256(headers.get("content-digest"))
        try:
            retention = int(headers.get("pilotchain-retention-until", ""))
        except ValueError:
            raise _ApiError(400, "BAD_REQUEST", "Pilotchain-Retention-Until is a time in ms since 1970") from None
        subjects = [s.strip() for s in headers.get("pilotchain-subjects", "").split(",") if s.strip()]
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
                             classification=headers.get("pilotchain-classification", "general"),
                             retention_until_ms=retention, policy=headers.get("pilotchain-policy", ""),
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

    @app.get("/v1/payloads", summary="This organisation's payloads and copies")
    async def list_payloads(request: Request, after: str | None = None, limit: int = 100) -> dict[str, Any]:
        local(request)
        page = await blocking(vault.store.list, after=after, limit=max(1, min(limit, 1000)), include_purged=True)
        return {"items": [payload_json(p) for p in page.items], "next_after": page.next_after}

    @app.get("/v1/payloads/{payload_id}", summary="A payload's metadata")
    async def get_payload(payload_id: str, request: Request) -> dict[str, Any]:
        local(request)
        return payload_json(await blocking(vault.store.get, payload_id))

    @app.get("/v1/payloads/{payload_id}/content", summary="A payload's bytes (streamed)")
    async def content(payload_id: str, request: Request) -> StreamingResponse:
        local(request)
        stored = await blocking(vault.store.verify, payload_id)
        return StreamingResponse(vault.store.read(payload_id), media_type=stored.media_type,
                                 headers={"content-length": str(stored.size_bytes)})

    @app.post("/v1/payloads/{payload_id}/fetch", summary="Get a copy from the owner's vault (needs a PERMIT)")
    async def fetch(payload_id: str, request: Request) -> dict[str, Any]:
        local(request)
        document = await _json(request)
        purpose = document.get("purpose")
        if not isinstance(purpose, str) or not purpose:
            raise _ApiError(400, "BAD_REQUEST", 'body is {"purpose": "...", "owner_org": "..."?}')
        owner = document.get("owner_org")
        result: dict[str, Any] = await blocking(vault.fetch, payload_id, purpose,
                                                owner_org=owner if isinstance(owner, str) else None)
        return result

    @app.post("/v1/payloads/{payload_id}/purge", summary="Purge an own payload on chain and here")
    async def purge(payload_id: str, request: Request) -> dict[str, Any]:
        local(request)
        document = await _json(request)
        reason = document.get("reason")
        if not isinstance(reason, str) or not reason:
            raise _ApiError(400, "BAD_REQUEST", 'body is {"reason": "..."}')
        result: dict[str, Any] = await blocking(vault.purge, payload_id, reason)
        return result

    @app.get("/v1/receipts", summary="Receipts (of one payload) with their anchoring proofs")
    async def receipts(request: Request, payload_id: str) -> dict[str, Any]:
        local(request)

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

    @app.get("/v1/requests", summary="Deliveries made and asked for, with their outcomes")
    async def requests(request: Request, payload_id: str | None = None) -> dict[str, Any]:
        local(request)
        rows = await blocking(vault.book.requests, payload_id)
        return {"requests": [{"request_id": r.request_id, "role": r.role, "payload_id": r.payload_id,
                              "peer_org": r.peer_org, "purpose": r.purpose, "outcome": r.outcome,
                              "at_ms": r.at_ms, "detail": r.detail} for r in rows]}

    @app.post("/v1/audit/export", summary="An offline-verifiable audit file for a payload, an organisation, a "
                                         "data subject or a time range", response_class=Response)
    async def audit_export(request: Request) -> Response:
        local(request)
        document = await _json(request)
        from pilotchain.apps.exchange.audit import Selection, export_audit

        fields = {name: document.get(name) for name in ("payload_id", "org", "subject", "since_ms", "until_ms")}
        if all(value is None for value in fields.values()):
            raise _ApiError(400, "BAD_REQUEST", "name at least one of payload_id, org, subject, since_ms, until_ms")
        try:
            selection = Selection(**fields)
        except TypeError as exc:  # pragma: no cover - the names are fixed above
            raise _ApiError(400, "BAD_REQUEST", str(exc)) from exc
        try:
            bundle: bytes = await blocking(export_audit, vault, selection)
        except PilotchainError as exc:
            raise _ApiError(502, "UNPROVEN", f"the chain cannot prove this now: {exc}") from exc
        return Response(bundle, media_type="application/vnd.pilotchain.evidence")

    @app.post("/v1/deliveries", summary="Another organisation's vault asks for a payload (needs a PERMIT)")
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
        return StreamingResponse(frames_of(header, frames), media_type="application/vnd.pilotchain.delivery")

    @app.post("/v1/acknowledgements", summary="A consumer's signed receipt for a delivery we made")
    async def acknowledgements(request: Request) -> JSONResponse:
        caller = _caller(request)
        body = await request.body()
        if len(body) > SMALL_BODY_BYTES_MAX:
            raise _ApiError(413, "TOO_LARGE", "a receipt is small")
        receipt_id = await blocking(vault.acknowledged, body, caller.org_id)
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
        return scope.get("method") == "PUT" and str(scope.get("path", "")).startswith("/v1/payloads/")

    app.add_middleware(SignedRequestMiddleware, node=VaultAuthenticator(vault), suite=vault.suite,
                       streamed=streamed, refused=_refused_logger())
    app.add_middleware(JsonErrorMiddleware)
    return app


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


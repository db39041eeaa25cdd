"""The REST/SSE gateway: one FastAPI app over any :class:`~pilotchain.node.api.NodeAPI`.

Theory of operation
-------------------
The app is a thin translation layer: it parses and bounds requests, calls the node on the
event loop thread, and renders the node's types as JSON with the conventions of
:mod:`pilotchain.sdk.wire` (hex ids and hashes, base64 bytes, tagged JSON values). It holds no
chain state of its own. Every error is JSON ``{"code": ..., "message": ...}``: transaction
refusals carry their :class:`~pilotchain.ledger.tx.RejectCode`; the gateway's own codes are
``BAD_REQUEST``, ``NOT_FOUND``, ``TOO_LARGE``, ``TIMEOUT``, ``UNSUPPORTED_MEDIA_TYPE``,
``UNAVAILABLE``, ``NOT_READY`` and ``INTERNAL``.

Bounds: request bodies (the chain's ``tx_bytes_max``, base64 and JSON overhead included; 413
before reading), the time to send a body (408), JSON nesting (400, checked on the bytes before
parsing), event stream subscribers (the node's), events per stream (``?limit=``), heartbeat
interval; connection bounds are the server's (:mod:`pilotchain.gateway._limits`). ``/healthz``
is liveness, ``/readyz`` readiness. CORS is off unless ``cors_origins`` is given. See docs/api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from pilotchain import __version__
from pilotchain.codec import CodecError, decode, encode
from pilotchain.contracts.reads import ReadAccess
from pilotchain.crypto import Suite, get_suite
from pilotchain.errors import InvariantBroken
from pilotchain.gateway._auth import CALLER_SCOPE_KEY, SignedRequestMiddleware
from pilotchain.gateway._middleware import (
    BodyLimitMiddleware,
    GatewayMetrics,
    JsonErrorMiddleware,
    MetricsMiddleware,
)
from pilotchain.ledger.block import Block, BlockHeader, block_hash
from pilotchain.ledger.genesis import genesis_hash
from pilotchain.ledger.tx import RejectCode, TxRejected
from pilotchain.node.api import (
    EventKind,
    NodeAPI,
    NodeEvent,
    NodeStatus,
    Readiness,
    TxState,
    TxStatus,
)
from pilotchain.sdk.wire import (
    WireError,
    b64,
    decode_value,
    from_tagged_json,
    header_to_json,
    receipt_to_json,
    redacted_receipt_json,
    redacted_tx_json,
    state_proof_to_json,
    to_tagged_json,
    tx_proof_to_json,
    tx_summary,
    unb64,
    unb64url,
    unhex,
)
from pilotchain.storage.errors import LimitExceeded

__all__ = ["create_app", "GatewayOptions", "HTTP_STATUS_OF_CODE", "without_validation_error"]

_ACCESS_SCOPE_KEY = "pilotchain.read_access"

#: HTTP status for each transaction refusal code (anything not listed: 400).
HTTP_STATUS_OF_CODE: dict[str, int] = {
    RejectCode.DUPLICATE: 409,
    RejectCode.MEMPOOL_FULL: 429,
    RejectCode.TOO_LARGE: 413,
    RejectCode.UNKNOWN_CONTRACT: 404,
    RejectCode.UNKNOWN_METHOD: 404,
    RejectCode.PERMISSION_DENIED: 403,
}

#: JSON envelope and base64 overhead allowed on top of the chain's tx_bytes_max.
BODY_OVERHEAD_BYTES = 4096
#: Seconds between SSE keep-alive comments.
HEARTBEAT_S = 15.0
#: Highest ``?limit=`` on the event stream.
EVENTS_PER_STREAM_MAX = 1_000_000
#: State keys are at most this long (the execution layer's bound, namespace excluded).
STATE_KEY_BYTES_MAX = 1024
#: JSON bodies nest at most this deep: above anything a valid body needs (tagged JSON values
#: nest at most 32 levels, ~3 JSON levels each for a $map) and far below Python's recursion limit
JSON_DEPTH_MAX = 128
#: A batch body is {"txs": [...]}: two levels
BATCH_JSON_DEPTH_MAX = 4
#: Seconds a client has to send a request body once its head arrived (408 after)
BODY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    #: origins allowed by CORS; None (default): no CORS headers at all
    cors_origins: tuple[str, ...] | None = None
    #: request body bound; None: derived from the chain's tx_bytes_max
    body_bytes_max: int | None = None
    heartbeat_s: float = HEARTBEAT_S
    #: JSON bodies nesting deeper are refused (400) before parsing
    json_depth_max: int = JSON_DEPTH_MAX
    #: a request body must arrive within this many seconds (408)
    body_timeout_s: float = BODY_TIMEOUT_S


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra


def _error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, **extra}, status_code=status, headers=headers
    )


#: The body of every refusal (more fields may follow: ``tx_id``, ``head``, ``state``, ...)
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    "required": ["code", "message"],
}
_ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "BAD_REQUEST (or a transaction refusal code): the request is malformed; the message says why",
    401: "UNAUTHENTICATED: not signed by a current consortium member (HTTP Message Signatures)",
    403: "PERMISSION_DENIED: the signer may not read this",
    404: "NOT_FOUND (or UNKNOWN_CONTRACT / UNKNOWN_METHOD)",
    405: "METHOD_NOT_ALLOWED: the Allow header lists the methods this path serves",
    408: "TIMEOUT: the request body did not arrive in time",
    409: "DUPLICATE: already pending or committed",
    413: "TOO_LARGE: the body (or the transaction) is over the limit",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "MEMPOOL_FULL: retry after the Retry-After seconds",
    500: "INTERNAL: a bug; the node logged it",
    503: "UNAVAILABLE: the node cannot serve now; retry after the Retry-After seconds",
}
#: What any signed request may be answered besides its own outcomes (the middleware's refusals)
_SIGNED_ERRORS = (400, 401, 405, 408, 413, 500, 503)
#: Path parameters: what the gateway accepts, for clients generated from the OpenAPI
_HEIGHT_PATTERN = r"^[0-9]{1,19}$"
_TX_ID_PATTERN = r"^[0-9a-fA-F]{64}$"
_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_KINDS_PATTERN = r"^(block|tx|contract_event)(,(block|tx|contract_event))*$"
#: keys every node's store holds under any contract name: 189..191 bytes (its bound is 256 bytes
#: of contract name, a NUL and the key; longer keys are answered 400)
_KEY_PATTERN = r"^(?:[A-Za-z0-9_-]{4}){0,63}(?:[A-Za-z0-9_-]{2}(?:==)?|[A-Za-z0-9_-]{3}=?)?$"
_NAME_RE = re.compile(_NAME_PATTERN)
_HEIGHT_RE = re.compile(_HEIGHT_PATTERN)
_LIMIT_RE = re.compile(r"[0-9]{1,7}")
_KINDS_RE = re.compile(_KINDS_PATTERN)
#: One Server-Sent Event as a client parses it (``data`` is JSON)
_SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}},
    "required": ["event", "data"],
}


def without_validation_error(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (FastAPI's OpenAPI, changed in place) without FastAPI's 422 responses and
    their schemas: pilotchain's apps answer invalid requests 400 with their JSON error body."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    if "components" in document and not schemas:
        document["components"].pop("schemas", None)
        if not document["components"]:
            document.pop("components")
    return document


def _documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses: each a JSON error body."""
    return {
        status: {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        }
        for status in sorted(set(statuses))
    }


#: transactions in one batch submission
BATCH_TXS_MAX = 5_000
#: bytes in one batch submission body
BATCH_BODY_BYTES_MAX = 32 * 1024 * 1024


def _rejected(exc: TxRejected) -> _ApiError:
    status = HTTP_STATUS_OF_CODE.get(exc.code, 400)
    headers = {"Retry-After": "2"} if exc.code == RejectCode.MEMPOOL_FULL else None
    extra = {"tx_id": exc.tx_id.hex()} if exc.tx_id is not None else {}
    return _ApiError(status, exc.code.value, exc.message, headers, **extra)


def create_app(node: NodeAPI, options: GatewayOptions | None = None) -> FastAPI:
    """The gateway app for ``node`` (OpenAPI at ``/openapi.json``, docs at ``/docs``)."""
    options = options or GatewayOptions()
    suite: Suite = get_suite(node.genesis.suite)
    tx_bytes_max = node.genesis.params.tx_limits.tx_bytes_max
    body_bytes_max = options.body_bytes_max or (tx_bytes_max * 4 // 3 + BODY_OVERHEAD_BYTES)
    metrics = GatewayMetrics()
    public_genesis_hash = genesis_hash(suite, node.genesis).hex()
    app = FastAPI(
        title="pilotchain gateway",
        version=__version__,
        description="REST and Server-Sent Events access to a pilotchain node for consortium members: every "
        "request but /healthz and /readyz is signed with the caller's identity "
        "(HTTP Message Signatures, RFC 9421). See docs/api.md.",
        # the Swagger/ReDoc pages load their assets from a CDN (blank offline): off; /openapi.json stays
        docs_url=None,
        redoc_url=None,
    )
    #: set by the server handle on close: event streams end so the server can stop
    app.state.closing = asyncio.Event()
    #: the server counts and logs its connection refusals here too
    app.state.metrics = metrics

    # -- errors: JSON everywhere -------------------------------------------------------------

    @app.exception_handler(_ApiError)
    async def _api_error(_request: Request, exc: _ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
        message = (
            "no such endpoint; see /openapi.json" if exc.status_code == 404 else str(exc.detail)
        )
        # a 405 keeps Starlette's Allow header (RFC 9110: the methods the path serves)
        return _error_response(exc.status_code, code, message, dict(exc.headers or {}) or None)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return _error_response(400, "BAD_REQUEST", problems or "invalid request")

    generated_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's OpenAPI without its 422 validation error: the gateway answers those 400
        with the JSON error body, as every operation documents."""
        if app.openapi_schema is None:
            without_validation_error(generated_openapi())
        return app.openapi_schema or generated_openapi()

    app.openapi = openapi  # type: ignore[method-assign]

    # -- helpers --------------------------------------------------------------------------------

    def require_available() -> None:
        ok, reason = node.healthy()
        if not ok:
            raise _ApiError(
                503,
                "UNAVAILABLE",
                f"the node cannot take requests now: {reason}; retry shortly",
                {"Retry-After": "5"},
            )

    def access_of(request: Request) -> ReadAccess:
        """What the request's signer may read (decided once per request, at the head state)."""
        access: ReadAccess | None = request.scope.get(_ACCESS_SCOPE_KEY)
        if access is None:
            certificate: bytes | None = request.scope.get(CALLER_SCOPE_KEY)
            if certificate is None:  # pragma: no cover - the signature middleware refuses first
                raise _ApiError(401, "UNAUTHENTICATED", "sign the request with a consortium identity")
            try:
                access = node.read_access(certificate)
            except TxRejected as exc:
                raise _ApiError(403, exc.code.value, exc.message) from exc
            request.scope[_ACCESS_SCOPE_KEY] = access
        return access

    def hidden_because(access: ReadAccess, summary: dict[str, Any]) -> str | None:
        """None when the reader may see this transaction summary, else why not."""
        contract = str(summary.get("contract", ""))
        signer_org = str((summary.get("signer") or {}).get("org", ""))
        return None if access.may_read_tx(contract, signer_org) else access.refusal(contract)

    def require_name(name: str, what: str) -> None:
        if not _NAME_RE.fullmatch(name):
            raise _ApiError(400, "BAD_REQUEST",
                            f"{what} names are 1..63 of a-z 0-9 _, starting with a letter; got {name[:80]!r}")

    def require_readable(access: ReadAccess, contract: str) -> None:
        if not access.may_read(contract):
            raise _ApiError(403, RejectCode.PERMISSION_DENIED.value, access.refusal(contract))

    def block_json(block: Block, access: ReadAccess) -> dict[str, Any]:
        certificate = node.get_certificate(block.header.height)
        transactions: list[dict[str, Any]] = []
        receipts: list[dict[str, Any]] = []
        for raw, receipt in zip(block.txs, block.receipts, strict=True):
            summary = tx_summary(suite, raw)
            reason = hidden_because(access, summary)
            if reason is None:
                transactions.append(summary)
                receipts.append(receipt_to_json(receipt))
            else:
                transactions.append(redacted_tx_json(suite, raw, receipt.tx_id, str(summary.get("contract", "")), reason))
                receipts.append(redacted_receipt_json(suite, receipt))
        return {
            "height": block.header.height,
            "hash": block_hash(suite, block.header).hex(),
            "header": header_to_json(block.header),
            "transactions": transactions,
            "receipts": receipts,
            "certificate": b64(certificate) if certificate is not None else None,
        }

    def header_block(header: BlockHeader) -> dict[str, Any]:
        certificate = node.get_certificate(header.height)
        return {
            "header": header_to_json(header),
            "block_hash": block_hash(suite, header).hex(),
            "certificate": b64(certificate) if certificate is not None else None,
        }

    def tx_json(status: TxStatus, access: ReadAccess) -> dict[str, Any]:
        document: dict[str, Any] = {"tx_id": status.tx_id.hex(), "state": status.state.value}
        if status.state == TxState.REJECTED:
            document.update(code=status.reason_code, message=status.reason)
        elif status.state == TxState.COMMITTED:
            if not (status.tx_raw is not None and status.receipt is not None):
                raise InvariantBroken('invariant broken: status.tx_raw is not None and status.receipt is not None')
            if not (status.header is not None and status.proof is not None):
                raise InvariantBroken('invariant broken: status.header is not None and status.proof is not None')
            summary = tx_summary(suite, status.tx_raw)
            reason = hidden_because(access, summary)
            if reason is not None:
                raise _ApiError(403, RejectCode.PERMISSION_DENIED.value, reason, tx_id=status.tx_id.hex())
            document.update(
                height=status.height,
                index=status.proof.index,
                tx=summary,
                receipt=receipt_to_json(status.receipt),
                proof=tx_proof_to_json(status.proof),
                **header_block(status.header),
            )
        return document

    # -- endpoints ------------------------------------------------------------------------------

    @app.get(
        "/healthz",
        summary="Liveness: 200 when the node can serve, else 503 with the reason",
        responses={503: {"description": "the node cannot serve: the reason, with the chain's identity",
                         "content": {"application/json": {}}}, **_documented(405, 500)},
    )
    async def healthz() -> JSONResponse:
        ok, reason = node.healthy()
        # the chain's public identity, so a tool can tell which network a gateway serves before
        # it trusts it (nothing of the chain's contents: those are for members, signed)
        return JSONResponse({"ok": ok, "reason": reason, "chain_id": node.genesis.chain_id,
                             "genesis_hash": public_genesis_hash}, status_code=200 if ok else 503)

    @app.get(
        "/readyz",
        summary="Readiness: 200 when the node takes part in the chain, else 503 with the failed conditions",
        responses={503: {"description": "NOT_READY: the checks, the failed ones and why",
                         "content": {"application/json": {}}}, **_documented(405, 500)},
    )
    async def readyz() -> JSONResponse:
        readiness = node.ready()
        return JSONResponse(readiness_json(readiness), status_code=200 if readiness.ready else 503)

    @app.get(
        "/metrics",
        summary="Prometheus text: the node's metrics and the gateway's request metrics (open to a local "
                "scraper; others sign)",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
                   **_documented(*_SIGNED_ERRORS)},
    )
    async def prometheus_metrics() -> Response:
        body = generate_latest(node.metrics_registry()) + generate_latest(metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/status", summary="Chain, head block, validators, peers, mempool",
             responses=_documented(*_SIGNED_ERRORS))
    async def get_status() -> dict[str, Any]:
        return status_json(node.status())

    @app.get("/v1/blocks/latest", summary="The head block (transactions the caller may not read redacted)",
             responses=_documented(*_SIGNED_ERRORS, 403))
    async def get_latest_block(request: Request) -> dict[str, Any]:
        height = node.status().height
        block = node.get_block(height)
        if block is None:  # pragma: no cover - the head is always readable
            raise _ApiError(404, "NOT_FOUND", "the node has no blocks yet")
        return block_json(block, access_of(request))

    @app.get(
        "/v1/blocks/{height}",
        summary="A committed block: header, transactions, receipts, certificate (transactions the "
                "caller may not read redacted to their Merkle leaf hashes)",
        responses=_documented(*_SIGNED_ERRORS, 403, 404),
    )
    async def get_block(height: Annotated[str, Path(json_schema_extra={"pattern": _HEIGHT_PATTERN})],
                        request: Request) -> dict[str, Any]:
        if not _HEIGHT_RE.fullmatch(height):  # ASCII digits: str.isdigit() takes '١' and '²'
            raise _ApiError(
                400,
                "BAD_REQUEST",
                f"block height must be a non-negative integer or 'latest', got {height!r}",
            )
        block = node.get_block(int(height))
        if block is None:
            head = node.status().height
            raise _ApiError(
                404, "NOT_FOUND", f"no block at height {height}; the head is at {head}", head=head
            )
        return block_json(block, access_of(request))

    @app.get(
        "/v1/blocks/{height}/raw",
        summary="A committed block's canonical bytes (what the commit certificate covers)",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                   **_documented(*_SIGNED_ERRORS, 403, 404)},
    )
    async def get_block_raw(height: Annotated[str, Path(json_schema_extra={"pattern": _HEIGHT_PATTERN})],
                            request: Request) -> Response:
        if not _HEIGHT_RE.fullmatch(height):  # ASCII digits: str.isdigit() takes '١' and '²'
            raise _ApiError(400, "BAD_REQUEST", f"block height must be a non-negative integer, got {height!r}")
        block = node.get_block(int(height))
        if block is None:
            raise _ApiError(404, "NOT_FOUND", f"no block at height {height}; the head is at {node.status().height}")
        access = access_of(request)
        for raw in block.txs:
            reason = hidden_because(access, tx_summary(suite, raw))
            if reason is not None:
                raise _ApiError(403, RejectCode.PERMISSION_DENIED.value,
                                f"block {height} holds a transaction you may not read: {reason}; "
                                f"GET /v1/blocks/{height} shows the block with it redacted")
        return Response(encode(block), media_type="application/octet-stream")

    @app.post(
        "/v1/txs",
        status_code=202,
        summary='Submit a signed transaction (wire bytes as application/octet-stream, or JSON {"tx": base64})',
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"tx": {"type": "string", "format": "byte"}},
                            "required": ["tx"],
                        },
                    },
                },
            },
        },
        # 400: malformed, non-canonical, bad signature, expired, ...
        responses=_documented(*_SIGNED_ERRORS, 403, 404, 409, 415, 429),
    )
    async def submit_tx(request: Request) -> JSONResponse:
        body = await request.body()
        content_type = (
            request.headers.get("content-type", "application/octet-stream")
            .split(";")[0]
            .strip()
            .lower()
        )
        if content_type == "application/json":
            try:
                document = json.loads(body)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise _ApiError(400, "BAD_REQUEST", f"body is not JSON: {exc}") from exc
            if not isinstance(document, dict) or "tx" not in document:
                raise _ApiError(
                    400,
                    "BAD_REQUEST",
                    'JSON body must be {"tx": "<base64 of the signed transaction>"}',
                )
            try:
                raw = unb64(document["tx"], "tx")
            except WireError as exc:
                raise _ApiError(400, "BAD_REQUEST", str(exc)) from exc
        elif content_type == "application/octet-stream":
            raw = body
        else:
            raise _ApiError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                'send the transaction as application/octet-stream or JSON {"tx": base64}',
            )
        if not raw:
            raise _ApiError(
                400, "BAD_REQUEST", "empty body; send the signed transaction's wire bytes"
            )
        if len(raw) > tx_bytes_max:
            raise _ApiError(
                413,
                RejectCode.TOO_LARGE.value,
                f"transaction is {len(raw)} bytes, limit {tx_bytes_max}; split the call or store large data off-chain",
            )
        require_available()
        try:
            tx_id = await node.submit_tx(raw)
        except TxRejected as exc:
            raise _rejected(exc) from exc
        return JSONResponse(
            {
                "tx_id": tx_id.hex(),
                "state": TxState.PENDING.value,
                "status_url": f"/v1/txs/{tx_id.hex()}",
            },
            status_code=202,
        )

    @app.post(
        "/v1/txs/batch",
        summary="Submit many signed transactions at once (one result per transaction, in order)",
        status_code=202,  # the batch was read; each transaction's fate is in its result
        responses=_documented(*_SIGNED_ERRORS, 415),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"},
                        "description": "the canonical encoding (MessagePack array of byte strings) of the wire bytes",
                    },
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"txs": {"type": "array", "items": {"type": "string", "format": "byte"}}},
                            "required": ["txs"],
                        },
                    },
                },
            },
        },
    )
    async def submit_txs(request: Request) -> JSONResponse:
        body = await request.body()
        content_type = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
        raws: list[bytes]
        if content_type == "application/json":
            try:
                document = json.loads(body)
                items = document["txs"]
                if not isinstance(items, list):
                    raise TypeError("txs is not a list")
                raws = [unb64(item, "txs[]") for item in items]
            except (ValueError, UnicodeDecodeError, KeyError, TypeError, WireError, RecursionError) as exc:
                raise _ApiError(400, "BAD_REQUEST", f'body must be {{"txs": ["<base64>", ...]}}: {exc}') from exc
        elif content_type == "application/octet-stream":
            try:
                raws = decode(body, list[bytes], max_bytes=BATCH_BODY_BYTES_MAX)
            except CodecError as exc:
                raise _ApiError(400, "BAD_REQUEST", f"body is not a canonical list of transactions: {exc}") from exc
        else:
            raise _ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send application/octet-stream or JSON {\"txs\": [...]}")
        if not raws or len(raws) > BATCH_TXS_MAX:
            raise _ApiError(400, "BAD_REQUEST", f"a batch holds 1..{BATCH_TXS_MAX} transactions, got {len(raws)}")
        require_available()
        results = await node.submit_txs(raws)
        accepted = sum(1 for r in results if isinstance(r, bytes))
        return JSONResponse(
            {
                "accepted": accepted,
                "rejected": len(results) - accepted,
                "results": [
                    {"tx_id": r.hex(), "state": TxState.PENDING.value}
                    if isinstance(r, bytes)
                    else {"code": r.code.value, "message": r.message, **({"tx_id": r.tx_id.hex()} if r.tx_id else {})}
                    for r in results
                ],
            },
            status_code=202,  # the batch was read; each transaction's fate is in its result
        )

    @app.get(
        "/v1/txs/{tx_id}",
        summary="A transaction: pending, committed (receipt, proof, header) or rejected",
        responses=_documented(*_SIGNED_ERRORS, 403, 404),
    )
    async def get_tx(tx_id: Annotated[str, Path(json_schema_extra={"pattern": _TX_ID_PATTERN})],
                     request: Request) -> dict[str, Any]:
        if tx_id == "batch":  # the path of POST /v1/txs/batch: no other method is served there
            raise _ApiError(405, "METHOD_NOT_ALLOWED", "Method Not Allowed", {"Allow": "POST"})
        try:
            tx_id_bytes = unhex(tx_id, "transaction id")
        except WireError as exc:
            raise _ApiError(400, "BAD_REQUEST", f"{exc}; transaction ids are hex") from exc
        if len(tx_id_bytes) != len(suite.hash(b"")):
            raise _ApiError(
                400,
                "BAD_REQUEST",
                f"transaction ids are {len(suite.hash(b''))} bytes ({2 * len(suite.hash(b''))} hex digits)",
            )
        status = node.tx_status(tx_id_bytes)
        if status.state == TxState.UNKNOWN:
            raise _ApiError(
                404,
                "NOT_FOUND",
                "this node knows no such transaction (never submitted here, or forgotten); submit it again",
                state=TxState.UNKNOWN.value,
                tx_id=tx_id_bytes.hex(),
            )
        return tx_json(status, access_of(request))

    def state_json(contract: str, key: bytes, access: ReadAccess, min_height: int | None = None) -> dict[str, Any]:
        require_name(contract, "contract")
        if len(key) > STATE_KEY_BYTES_MAX or not key:
            raise _ApiError(400, "BAD_REQUEST", f"state keys are 1..{STATE_KEY_BYTES_MAX} bytes")
        require_readable(access, contract)
        try:
            read = node.read_state(contract, key)
        except LimitExceeded as exc:  # the store bounds contract + key more tightly than execution
            raise _ApiError(400, "BAD_REQUEST", f"no state key this long can be stored: {exc}") from exc
        if min_height is not None and read.header.height < min_height:
            # read-your-writes: a client that saw its write committed at H never gets older state
            raise _ApiError(503, "BEHIND", f"this node's state is at height {read.header.height}, below the "
                            f"min_height {min_height} asked for; retry after the Retry-After seconds or ask "
                            "another node", {"Retry-After": "1"}, height=read.header.height)
        return {
            "contract": read.contract,
            "key": b64(read.key),
            "value": b64(read.value) if read.value is not None else None,
            "value_decoded": decode_value(read.value),
            "proof": state_proof_to_json(read.proof),
            **header_block(read.header),
        }

    @app.get(
        "/v1/state/{contract}",
        summary="A state value by ?key= (URL-safe base64) or ?key_text=, with proof",
        responses=_documented(*_SIGNED_ERRORS, 403, 404),
        openapi_extra={"parameters": [
            {"name": "min_height", "in": "query", "required": False,
             "description": "read-your-writes: answer only from state at this height or later "
                            "(503 BEHIND with Retry-After otherwise: retry, or ask another node)",
             "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}},
        ]},
    )
    async def get_state_query(
        contract: Annotated[str, Path(json_schema_extra={"pattern": _NAME_PATTERN})],
        request: Request, key: str | None = None, key_text: str | None = None
    ) -> dict[str, Any]:
        min_text = request.query_params.get("min_height")
        if min_text is not None and not _HEIGHT_RE.fullmatch(min_text):
            raise _ApiError(400, "BAD_REQUEST", "min_height is a block height (ASCII digits)")
        min_height = int(min_text) if min_text is not None else None
        if min_height is not None and min_height > 2**63 - 1:
            raise _ApiError(400, "BAD_REQUEST", "min_height is at most 2**63 - 1")
        if (key is None) == (key_text is None):
            raise _ApiError(
                400, "BAD_REQUEST", "give exactly one of ?key= (URL-safe base64) or ?key_text="
            )
        if key_text is not None:
            return state_json(contract, key_text.encode(), access_of(request), min_height)
        if not (key is not None):
            raise InvariantBroken('invariant broken: key is not None')
        try:
            return state_json(contract, unb64url(key), access_of(request), min_height)
        except WireError as exc:
            raise _ApiError(400, "BAD_REQUEST", str(exc)) from exc

    @app.get(
        "/v1/state/{contract}/{key}",
        summary="A state value (key as URL-safe base64) with its proof and header",
        responses=_documented(*_SIGNED_ERRORS, 403, 404),
    )
    async def get_state(contract: Annotated[str, Path(json_schema_extra={"pattern": _NAME_PATTERN})],
                        key: Annotated[str, Path(json_schema_extra={"pattern": _KEY_PATTERN, "minLength": 2})],
                        request: Request) -> dict[str, Any]:
        try:
            return state_json(contract, unb64url(key), access_of(request))
        except WireError as exc:
            raise _ApiError(400, "BAD_REQUEST", str(exc)) from exc

    @app.post(
        "/v1/query/{contract}/{method}",
        summary="A read-only contract call against the head state (no transaction)",
        responses=_documented(*_SIGNED_ERRORS, 403, 404, 429),
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "args": {"description": "tagged JSON value"},
                                "caller_certificate": {"type": "string", "format": "byte"},
                            },
                        }
                    }
                },
            }
        },
    )
    async def query(contract: Annotated[str, Path(json_schema_extra={"pattern": _NAME_PATTERN})],
                    method: Annotated[str, Path(json_schema_extra={"pattern": _NAME_PATTERN})],
                    request: Request) -> dict[str, Any]:
        require_name(contract, "contract")
        require_name(method, "method")
        body = await request.body()
        document: Any = {}
        if body.strip():
            try:
                document = json.loads(body)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise _ApiError(400, "BAD_REQUEST", f"body is not JSON: {exc}") from exc
            if not isinstance(document, dict):
                raise _ApiError(
                    400,
                    "BAD_REQUEST",
                    'body must be {"args": ..., "caller_certificate": base64 | null}',
                )
        # a query runs as the caller who signed the request, never as a certificate in the body
        certificate: bytes | None = request.scope.get(CALLER_SCOPE_KEY)
        try:
            args = from_tagged_json(document.get("args"))
            certificate_text = document.get("caller_certificate")
            if certificate_text is not None and unb64(certificate_text, "caller_certificate") != certificate:
                raise _ApiError(403, RejectCode.PERMISSION_DENIED.value,
                                "caller_certificate must be the certificate that signed the request (or omitted): "
                                "a query runs as its signer")
        except WireError as exc:
            raise _ApiError(400, RejectCode.BAD_ARGUMENTS.value, str(exc)) from exc
        except RecursionError as exc:  # pragma: no cover - the nesting bound comes first
            raise _ApiError(400, "BAD_REQUEST", "args nest too deep") from exc
        require_available()
        require_readable(access_of(request), contract)
        try:
            result = node.query(contract, method, args, certificate)
        except TxRejected as exc:
            raise _rejected(exc) from exc
        try:
            return {"result": to_tagged_json(result)}
        except WireError as exc:
            raise _ApiError(
                500, "INTERNAL", f"the contract returned a value JSON cannot carry: {exc}"
            ) from exc

    @app.get(
        "/v1/events",
        summary="Server-Sent Events: blocks, committed transactions, contract events (?kinds=block,tx&limit=N)",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {"schema": _SSE_EVENT_SCHEMA}}},
                   **_documented(*_SIGNED_ERRORS, 403)},
        openapi_extra={"parameters": [
            {"name": "kinds", "in": "query", "required": False,
             "description": "comma-separated event kinds; all when absent",
             "schema": {"type": "string", "pattern": _KINDS_PATTERN}},
            {"name": "limit", "in": "query", "required": False,
             "description": "end the stream after this many events",
             "schema": {"type": "integer", "minimum": 1, "maximum": EVENTS_PER_STREAM_MAX}},
        ]},
    )
    async def events(request: Request) -> StreamingResponse:
        kinds = request.query_params.get("kinds")
        limit_text = request.query_params.get("limit")
        if limit_text is not None and not _LIMIT_RE.fullmatch(limit_text):
            raise _ApiError(400, "BAD_REQUEST", f"limit must be an integer 1..{EVENTS_PER_STREAM_MAX}")
        limit = int(limit_text) if limit_text is not None else None
        wanted: frozenset[EventKind] | None = None
        if kinds is not None:
            names = kinds.split(",")
            unknown = [name for name in names if name not in EventKind.__members__.values()]
            if unknown or not _KINDS_RE.fullmatch(kinds):
                raise _ApiError(
                    400,
                    "BAD_REQUEST",
                    f"unknown event kinds {unknown}; give ?kinds= as a comma-separated list (no spaces) "
                    f"of {', '.join(kind.value for kind in EventKind)}, or leave it out for all",
                )
            wanted = frozenset(EventKind(name) for name in names)
        if limit is not None and not 1 <= limit <= EVENTS_PER_STREAM_MAX:
            raise _ApiError(400, "BAD_REQUEST", f"limit must be 1..{EVENTS_PER_STREAM_MAX}")
        access_of(request)  # a revoked member is refused before the stream starts
        certificate: bytes = request.scope[CALLER_SCOPE_KEY]
        try:
            subscription = node.subscribe(wanted)
        except RuntimeError as exc:
            raise _ApiError(503, "UNAVAILABLE", str(exc), {"Retry-After": "5"}) from exc
        stream = _sse_stream(subscription, limit, options.heartbeat_s, app.state.closing,
                             _EventFilter(node, certificate))
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # inside the body limit (which bounds what the signature check reads), outside the endpoints
    app.add_middleware(SignedRequestMiddleware, node=node, suite=suite, refused=metrics.refused)
    app.add_middleware(BodyLimitMiddleware, body_bytes_max=body_bytes_max,
                       path_limits={"/v1/txs/batch": BATCH_BODY_BYTES_MAX},
                       json_depth_max=options.json_depth_max,
                       path_depths={"/v1/txs/batch": min(BATCH_JSON_DEPTH_MAX, options.json_depth_max)},
                       body_timeout_s=options.body_timeout_s, refused=metrics.refused)
    if options.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(options.cors_origins), allow_methods=["GET", "POST"]
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(JsonErrorMiddleware)
    return app


def readiness_json(readiness: Readiness) -> dict[str, Any]:
    """``{"ready", "checks": [{"name", "ok", "detail"}]}``; when not ready also the error shape
    (``code`` NOT_READY, ``message``) and ``failed``, the conditions that do not hold."""
    document: dict[str, Any] = {
        "ready": readiness.ready,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in readiness.checks],
    }
    if not readiness.ready:
        failed = readiness.failed
        document.update(
            code="NOT_READY",
            message="not ready: " + "; ".join(f"{c.name}: {c.detail}" for c in failed),
            failed=[{"name": c.name, "detail": c.detail} for c in failed],
        )
    return document


def status_json(status: NodeStatus) -> dict[str, Any]:
    return {
        "chain_id": status.chain_id,
        "node": status.node,
        "org": status.org,
        "suite": status.suite,
        "height": status.height,
        "last_block_hash": status.last_block_hash.hex(),
        "last_block_time_ms": status.last_block_time_ms,
        "state_root": status.state_root.hex(),
        "validators": list(status.validators),
        "genesis_hash": status.genesis_hash.hex(),
        "peers": dict(status.peers),
        "mempool": {"size": status.mempool_size},
        "consensus": status.consensus,
        "syncing": status.syncing,
    }


_JSON_ENCODER = msgspec.json.Encoder()

#: Events the stream sends in one write when many are waiting (one block's worth, typically).
SSE_EVENTS_PER_WRITE_MAX = 1024


def _sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append("data: ")
    # msgspec: several times faster than json.dumps, compact, and bytes inside contract event
    # data become base64 strings instead of an error
    return "\n".join(lines).encode() + _JSON_ENCODER.encode(data) + b"\n\n"


class _EventFilter:
    """Which events one subscriber may see: blocks always; transactions and contract events of
    contracts it may read (decided again at each new height, so a permission change or a
    revocation takes effect within a block)."""

    def __init__(self, node: NodeAPI, certificate: bytes) -> None:
        self._node = node
        self._certificate = certificate
        self._height = -1
        self._access: ReadAccess | None = None

    def __call__(self, event: NodeEvent) -> bool:
        if event.kind == EventKind.BLOCK:
            return True
        if self._access is None or event.height != self._height:
            self._access = self._node.read_access(self._certificate)  # TxRejected: revoked
            self._height = event.height
        return self._access.may_read(str(event.data.get("contract", "")))


async def _sse_stream(
    subscription: AsyncIterator[Any], limit: int | None, heartbeat_s: float, closing: asyncio.Event,
    visible: Callable[[NodeEvent], bool] = lambda _event: True,
) -> AsyncIterator[bytes]:
    """Frame node events as SSE; keep-alive comments while idle; ends on limit, drop or close."""
    sent = 0
    iterator = subscription.__aiter__()
    closing_task = asyncio.ensure_future(closing.wait())
    next_task: asyncio.Future[Any] | None = None
    reason = "closed"
    try:
        yield b": connected\n\n"
        while limit is None or sent < limit:
            if next_task is None:
                next_task = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait(
                {next_task, closing_task}, timeout=heartbeat_s, return_when=asyncio.FIRST_COMPLETED
            )
            if closing_task in done:
                reason = "the gateway is shutting down; reconnect to another node or later"
                break
            if next_task not in done:
                yield b": keep-alive\n\n"
                continue
            task, next_task = next_task, None
            try:
                event = task.result()
            except StopAsyncIteration:
                reason = (
                    "the node ended this stream (it drops subscribers that fall behind); reconnect and "
                    "catch up with GET /v1/blocks/{height}"
                )
                break
            # everything already queued goes out in the same write: per-event writes through
            # the ASGI stack cost more than the events themselves when a block commits thousands
            batch = [event]
            take_ready = getattr(iterator, "take_ready", None)
            if take_ready is not None:
                room = SSE_EVENTS_PER_WRITE_MAX - 1 if limit is None else min(SSE_EVENTS_PER_WRITE_MAX, limit - sent) - 1
                batch.extend(take_ready(room))
            try:
                chunk = [_sse(e.kind.value, e.data, e.height) for e in batch if visible(e)]
            except TxRejected as exc:
                reason = f"your identity is no longer accepted: {exc.message}"
                break
            if chunk:
                yield b"".join(chunk)
                sent += len(chunk)
        else:
            reason = f"sent the {limit} events asked for"
        yield _sse("close", {"reason": reason})
    finally:
        closing_task.cancel()
        if next_task is not None:
            next_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await next_task
        aclose = getattr(subscription, "aclose", None)
        if aclose is not None:
            await aclose()

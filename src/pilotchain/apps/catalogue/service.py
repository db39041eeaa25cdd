"""The catalogue's routes on each organisation's vault (a ``pilotchain.vault_extensions`` entry point).

Every request is RFC 9421-signed by a current member (the vault's own middleware checks it before
these routes run). Routes (local = members of the vault's organisation only)::

    PUT  /v1/catalogue/datasets/{entry_id}  local   {"records": [...], "retention_days"?}: a new dataset version
    POST /v1/catalogue/calls                local   {"agreement_id", "fields"?, "where"?, "offset"?, "limit"?}:
                                                    call the provider under an agreement; the verified records
    GET  /v1/catalogue/calls?day=           local   calls made and answered that day, with outcomes
    GET  /v1/catalogue/receipts?day=        local   that day's receipts and where each is anchored
    GET  /v1/catalogue/usage?since=&until=  local and the Big-Data Bureau: an evidence bundle of the
                                                    anchored receipts of those days (header
                                                    Pilotchain-Pending-Receipts: how many wait for anchoring)
    POST /v1/catalogue/deliveries           members a CallRequest (msgpack) -> CallPackage (msgpack)
    POST /v1/catalogue/acknowledgements     members a consumer's signed receipt for a call answered here
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from pilotchain.apps.catalogue.calls import CALL_RECORDS_MAX, CatalogueVault
from pilotchain.apps.catalogue.records import CallRequest
from pilotchain.apps.exchange.records import ExchangeError
from pilotchain.apps.exchange.store import VaultStoreError
from pilotchain.apps.exchange.vault import Vault
from pilotchain.codec import CodecError, decode
from pilotchain.errors import CoreError
from pilotchain.gateway._auth import CALLER_SCOPE_KEY
from pilotchain.identity.records import Certificate, decode_record

__all__ = ["extend"]

DATASET_BODY_BYTES_MAX = 32 * 1024 * 1024
SMALL_BODY_BYTES_MAX = 256 * 1024
USAGE_DAYS_MAX = 366

HTTP_OF_CODE = {
    "NOT_FOUND": 404, "NO_AGREEMENT": 404, "NO_DATA": 404, "NOT_PARTY": 403, "NOT_OWNER": 403, "REVOKED": 403,
    "ENTRY_WITHDRAWN": 403, "DUTY_RETIRED": 403, "NOT_YET": 403, "EXPIRED": 403, "FIELD_NOT_AGREED": 403,
    "FIELD_NOT_SHARED": 403, "POLICY_DENIED": 403, "CONSENT_REQUIRED": 403, "PERMISSION_DENIED": 403,
    "REPLAYED": 409, "NO_KEY": 409, "NO_ENDPOINT": 409, "DUPLICATE": 409, "MISMATCH": 409, "BAD_REQUEST": 400,
    "BAD_RECORDS": 400, "MALFORMED": 400, "TOO_LARGE": 413, "STALE_CHAIN": 503, "CHAIN_UNAVAILABLE": 503,
    "UNREACHABLE": 502, "UNPROVEN": 502, "COMMITMENT_MISMATCH": 502, "UNSEALABLE": 502, "PUBLISH_FAILED": 502,
    "POLICY_INVALID": 500,
}


class _Refusal(CoreError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _caller(request: Request) -> Certificate:
    raw = request.scope.get(CALLER_SCOPE_KEY)
    if raw is None:  # pragma: no cover - the vault's middleware refuses unsigned requests first
        raise _Refusal(401, "UNAUTHENTICATED", "sign the request")
    return decode_record(raw, Certificate)


async def _body(request: Request, limit: int) -> bytes:
    body = await request.body()
    if len(body) > limit:
        raise _Refusal(413, "TOO_LARGE", f"the body is larger than {limit:,} bytes")
    return body


async def _json(request: Request, limit: int = SMALL_BODY_BYTES_MAX) -> dict[str, Any]:
    body = await _body(request, limit)
    try:
        document = json.loads(body or b"{}")
    except (ValueError, RecursionError) as exc:
        raise _Refusal(400, "BAD_REQUEST", f"body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise _Refusal(400, "BAD_REQUEST", "body is a JSON object")
    return document


def _day(text: str | None, name: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(str(text))
    except ValueError:
        raise _Refusal(400, "BAD_REQUEST", f"{name} is a day, YYYY-MM-DD (UTC)") from None


def extend(app: FastAPI, vault: Vault) -> None:
    """Mount the catalogue on ``vault``'s app (its state under ``<vault home>/catalogue/``)."""
    catalogue = CatalogueVault(vault, vault.store.path.parent / "catalogue")
    app.state.catalogue = catalogue
    app.state.maintenance_steps.append(catalogue.send_acks)
    app.state.closers.append(catalogue.close)

    @app.exception_handler(_Refusal)
    async def refused(request: Request, exc: _Refusal) -> JSONResponse:
        return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status)

    async def blocking(function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
        except ExchangeError as exc:
            raise _Refusal(HTTP_OF_CODE.get(exc.code, 400), exc.code, exc.message) from exc
        except VaultStoreError as exc:
            raise _Refusal(HTTP_OF_CODE.get(exc.reason.name, 400), exc.reason.name, str(exc)) from exc

    def local(request: Request) -> Certificate:
        caller = _caller(request)
        if caller.org_id != vault.org:
            raise _Refusal(403, "PERMISSION_DENIED", f"this vault serves {vault.org}'s members; {caller.org_id} "
                                                     "talks to its own vault")
        return caller

    @app.put("/v1/catalogue/datasets/{entry_id}", status_code=201, tags=["catalogue"],
             summary="Publish a new version of an entry's data: stored here, its field-level commitment on chain")
    async def publish(entry_id: str, request: Request) -> JSONResponse:
        local(request)
        document = await _json(request, DATASET_BODY_BYTES_MAX)
        records = document.get("records")
        retention = document.get("retention_days", 5 * 365)
        if not isinstance(records, list) or not isinstance(retention, int) or retention < 1:
            raise _Refusal(400, "BAD_REQUEST", 'body is {"records": [{field: value, ...}, ...], "retention_days"?: n}')
        result = await blocking(catalogue.publish_dataset, entry_id, records, retention_days=retention)
        return JSONResponse(result, status_code=201)

    @app.post("/v1/catalogue/calls", tags=["catalogue"],
              summary="Call a provider under an agreement: the agreed fields of the selected records, each verified")
    async def call(request: Request) -> dict[str, Any]:
        local(request)
        document = await _json(request)
        agreement_id = document.get("agreement_id")
        fields = document.get("fields", [])
        where = document.get("where", {})
        offset, limit = document.get("offset", 0), document.get("limit", 100)
        if not isinstance(agreement_id, str) or not isinstance(fields, list) or not isinstance(where, dict) \
                or not all(isinstance(v, list) for v in where.values()) or not isinstance(offset, int) \
                or not isinstance(limit, int) or not 1 <= limit <= CALL_RECORDS_MAX:
            raise _Refusal(400, "BAD_REQUEST", 'body is {"agreement_id", "fields"?: [...], "where"?: {field: [values]}, '
                                               f'"offset"?: n, "limit"?: 1..{CALL_RECORDS_MAX}}}')
        result: dict[str, Any] = await blocking(catalogue.call, agreement_id, fields=fields, where=where,
                                                offset=offset, limit=limit)
        return result

    @app.get("/v1/catalogue/calls", tags=["catalogue"], summary="Calls made and answered on a day, with outcomes")
    async def calls(request: Request, day: str) -> dict[str, Any]:
        local(request)
        return {"day": _day(day, "day").isoformat(), "calls": await blocking(catalogue.calls_of_day, day)}

    @app.get("/v1/catalogue/receipts", tags=["catalogue"], summary="A day's call receipts and their anchoring")
    async def receipts(request: Request, day: str) -> dict[str, Any]:
        local(request)
        return {"day": _day(day, "day").isoformat(), "receipts": await blocking(catalogue.receipts_of_day, day)}

    @app.get("/v1/catalogue/usage", tags=["catalogue"], response_class=Response,
             summary="An evidence bundle of the anchored call receipts of a range of days (for the Big-Data Bureau)")
    async def usage(request: Request, since: str, until: str) -> Response:
        caller = _caller(request)
        bureau = await blocking(catalogue.view.bureau)
        if caller.org_id not in (vault.org, bureau):
            raise _Refusal(403, "PERMISSION_DENIED", f"usage evidence goes to {vault.org}'s members and the Big-Data "
                                                     f"Bureau ({bureau})")
        first, last = _day(since, "since"), _day(until, "until")
        if not 0 <= (last - first).days < USAGE_DAYS_MAX:
            raise _Refusal(400, "BAD_REQUEST", f"since <= until, at most {USAGE_DAYS_MAX} days")
        days = [(first + datetime.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
        bundle, pending = await blocking(catalogue.usage_evidence, days)
        headers = {"pilotchain-pending-receipts": str(pending)}
        if bundle is None:
            return Response(status_code=204, headers=headers)
        return Response(bundle, media_type="application/vnd.pilotchain.evidence", headers=headers)

    @app.post("/v1/catalogue/deliveries", tags=["catalogue"], response_class=Response,
              summary="Another department's vault calls under an agreement (the release rule decides)")
    async def deliveries(request: Request) -> Response:
        caller = _caller(request)
        body = await _body(request, SMALL_BODY_BYTES_MAX)
        try:
            asked = decode(body, CallRequest)
        except CodecError as exc:
            raise _Refusal(400, "BAD_REQUEST", f"body is a canonical CallRequest: {exc}") from exc
        package: bytes = await blocking(catalogue.answer, asked, caller.org_id)
        return Response(package, media_type="application/msgpack")

    @app.post("/v1/catalogue/acknowledgements", tags=["catalogue"], status_code=201,
              summary="A consumer's signed receipt for a call answered here")
    async def acknowledgements(request: Request) -> JSONResponse:
        caller = _caller(request)
        body = await _body(request, SMALL_BODY_BYTES_MAX)
        receipt_id = await blocking(catalogue.acknowledged, body, caller.org_id)
        return JSONResponse({"receipt_id": receipt_id.hex()}, status_code=201)

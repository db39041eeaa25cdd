"""The explorer's web app: FastAPI over one SDK client that reads as one organisation.

Each request reads the node through ``client`` (requests signed as the organisation's identity,
block bodies and transaction proofs verified by the SDK) and renders a page with
:mod:`pilotchain.apps.explorer.pages`. Handlers are plain ``def``: FastAPI runs them in its
thread pool, so a slow node never blocks the event loop. A node error becomes a page that says
what went wrong (404 for what does not exist, 502 for a node that failed or could not be proven).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, overload

from fastapi import FastAPI, Query, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from pilotchain.apps.explorer import apppages, chainread, govpages, indexpages, pages, proofs
from pilotchain.apps.explorer.certify import CertificateCheck, check_certificate, validators_at
from pilotchain.apps.explorer.index import Cursor, Indexer
from pilotchain.apps.explorer.live import LiveFeed
from pilotchain.apps.explorer.messages import LANGUAGES, pick_language, t, use_language
from pilotchain.apps.explorer.signing import (
    WINDOW_BLOCKS,
    BlockSigners,
    ValidatorSigning,
    validator_signing,
)
from pilotchain.crypto import get_suite
from pilotchain.identity.records import Certificate
from pilotchain.ledger.block import BlockHeader
from pilotchain.ledger.genesis import Genesis, ValidatorInfo
from pilotchain.sdk import (
    AsyncClient,
    BlockInfo,
    Client,
    NotFound,
    PilotchainError,
    TxRejectedError,
)

__all__ = ["create_app"]

_TX_ID = re.compile(r"^[0-9a-fA-F]{64}\Z")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
#: characters of a state key typed into the state page
STATE_KEY_CHARS_MAX = 1024
#: rows on one page of an index listing (?limit= up to the index's own bound)
INDEX_PAGE_ROWS = 50
#: characters of a search the index is asked about
SEARCH_CHARS_MAX = 200
LANGUAGE_COOKIE = "lang"
#: how long the language switch is remembered
LANGUAGE_COOKIE_S = 365 * 24 * 3600
_STATIC = {"explorer.css": "text/css; charset=utf-8", "explorer.js": "text/javascript; charset=utf-8",
           "verify.js": "text/javascript; charset=utf-8"}
#: proposals shown on the governance page (the newest; gov.list's own bound is larger)
PROPOSALS_SHOWN_MAX = 64
#: how long the header's list of deployed applications is kept before governance is asked again
APPS_REFRESH_S = 10.0
#: characters of a credential issuer's id (a URL) asked about
ISSUER_CHARS_MAX = 256
#: characters of a receivable id asked about (the contract's ids are shorter)
RECEIVABLE_ID_CHARS_MAX = 128
#: characters of a green-certificate lot id asked about (the contract's own bound)
LOT_ID_CHARS_MAX = 200
#: rows of one catalogue query page (the contract's PAGE_MAX is 200)
CATALOGUE_PAGE_ROWS = 200
#: transactions of each contract the data-exchange access log reads (the newest the index holds)
ACCESS_LOG_TXS_MAX = 50


def create_app(client: Client, org: str, genesis: Genesis, *,
               live: Callable[[], AsyncClient] | None = None, identities: Sequence[Certificate] = (),
               clock_ms: Callable[[], int] | None = None, index: Indexer | None = None) -> FastAPI:
    """The console for ``org``; ``client`` must sign as one of ``org``'s identities; ``genesis``
    (the network's, from its folder) names the first validators, against which (and governance's
    changes since) each block's commit certificate is checked. ``live`` opens an asynchronous client
    like ``client`` for the live feed (``/api/live``; without it the overview only polls its numbers).
    ``identities`` are the organisation's own certificates (from its folder) the organisations page
    lists with their status; ``clock_ms`` is the time expiry warnings are measured from. ``index``
    (fed from the node's blocks while the app runs) answers search by identity, contract and event."""
    if client.identity is None:
        raise ValueError("the explorer reads as an organisation's identity: give the client one")
    suite = get_suite(genesis.suite)
    feed = LiveFeed(live) if live is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if index is not None:
            index.start()
        yield
        if feed is not None:
            await feed.stop()
        if index is not None:
            await asyncio.to_thread(index.stop)

    app = FastAPI(title=f"pilotchain explorer ({org})", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    chain_id = ""

    def chain() -> str:
        nonlocal chain_id
        if not chain_id:
            try:
                chain_id = client.chain_id()
            except PilotchainError:
                return "(node not answering)"  # the page still says what went wrong
        return chain_id

    def failure(exc: PilotchainError, what: str) -> HTMLResponse:
        refused = isinstance(exc, TxRejectedError) and exc.code == "PERMISSION_DENIED"  # the organisation may not read it
        code = 404 if isinstance(exc, NotFound) else 403 if refused else 502
        return HTMLResponse(pages.render_error(org, chain_id, t("error.not_shown", what=what), str(exc)), status_code=code)

    @overload
    def certified(header: BlockHeader, certificate: bytes | None) -> CertificateCheck: ...
    @overload
    def certified(header: None, certificate: bytes | None) -> None: ...
    def certified(header: BlockHeader | None, certificate: bytes | None) -> CertificateCheck | None:
        if header is None:
            return None
        return check_certificate(header, certificate, in_force(header.height), suite)

    def in_force(height: int) -> list[ValidatorInfo]:
        """The validators in force at ``height``: genesis's, then governance's changes."""
        return validators_at(genesis, client.query("gov", "validators").get("history", []), height)

    def proof_failure(exc: PilotchainError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404 if isinstance(exc, NotFound) else 502)

    def validators() -> list[dict[str, Any]]:
        try:
            document = client.query("gov", "validators")
            return list(document["current"])
        except (PilotchainError, KeyError, TypeError):
            return [{"name": name, "org": "", "power": ""} for name in client.status().validators]

    window: dict[int, BlockSigners] = {}  # blocks never change once committed: each is read once
    window_lock = threading.Lock()

    def signing(head: BlockInfo) -> list[ValidatorSigning]:
        """The validators in force at ``head`` and what the newest blocks' certificates say of them."""
        history = client.query("gov", "validators").get("history", [])
        low = max(head.height - WINDOW_BLOCKS + 1, 1)
        with window_lock:
            known = {height: block for height, block in window.items() if low <= height <= head.height}
        for height in range(low, head.height + 1):
            if height not in known:
                found = head if height == head.height else client.get_block(height)
                check = check_certificate(found.header, found.certificate, validators_at(genesis, history, height), suite)
                signers = frozenset(name for name, _ in check.signers) if check.state == "verified" else None
                known[height] = BlockSigners(height, found.header.proposer, signers)
        with window_lock:
            window.clear()
            window.update(known)
        return validator_signing(validators_at(genesis, history, head.height), known.values(), head.height)

    def deployed(contract: str) -> bool:
        """Governance activated ``contract`` and has not frozen it."""
        record = client.query("gov", "contract", {"name": contract})
        return bool(record) and not record.get("frozen")

    deployed_apps: list[Any] = [-APPS_REFRESH_S, ()]  # when read (monotonic s), the contracts deployed
    deployed_lock = threading.Lock()

    def app_links() -> list[tuple[str, str]]:
        """The applications' pages to link from the header (governance asked at most every few seconds)."""
        with deployed_lock:
            read_s, names = deployed_apps
        if time.monotonic() - read_s >= APPS_REFRESH_S:
            try:
                names = tuple(contract for contract in apppages.APPS if deployed(contract))
            except PilotchainError:
                return []  # the node does not answer: the page itself says so
            with deployed_lock:
                deployed_apps[:] = [time.monotonic(), names]
        return [apppages.APPS[contract][:2] for contract in names]

    @app.middleware("http")
    async def language(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Every page in the reader's language: the switch's cookie, else Accept-Language; the header
        links the applications deployed on this chain."""
        use_language(pick_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")))
        if not request.url.path.startswith(("/api/", "/static/", "/healthz", "/lang/")):
            pages.use_app_links(await asyncio.to_thread(app_links))
        response = await call_next(request)
        response.headers["Vary"] = "Cookie, Accept-Language"
        return response

    @app.get("/lang/{code}", response_model=None)
    def switch_language(code: str, request: Request) -> Response:
        """Keep the reader's language in a cookie and go back to the page they were on."""
        if code not in LANGUAGES:
            return Response(f"languages: {', '.join(LANGUAGES)}", status_code=404)
        referer = request.headers.get("referer", "")
        back = referer.split(str(request.base_url).rstrip("/"), 1)[1] if referer.startswith(str(request.base_url)) else "/"
        response = RedirectResponse(back if back.startswith("/") and not back.startswith("//") else "/", status_code=303)
        response.set_cookie(LANGUAGE_COOKIE, code, max_age=LANGUAGE_COOKIE_S, samesite="lax")
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "org": org}

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in _STATIC:
            return Response("not found", status_code=404)
        body = resources.files("pilotchain.apps.explorer").joinpath("static", name).read_bytes()
        return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "max-age=300"})

    @app.get("/api/status")
    def api_status() -> JSONResponse:
        try:
            info = client.status()
        except PilotchainError as exc:
            return JSONResponse({"error": str(exc)}, status_code=502)
        connected = sum(1 for up in info.peers.values() if up)
        return JSONResponse({"height": info.height, "mempool": info.mempool_size,
                             "peers": f"{connected} of {len(info.peers)}", "last_block_time_ms": info.last_block_time_ms})

    @app.get("/api/live", response_model=None)
    async def api_live() -> Response:
        """Server-Sent Events: a snapshot, then each committed block's point and the node's state."""
        if feed is None:
            return JSONResponse({"error": "live updates are off (the explorer was started without a live feed)"},
                                status_code=404)
        try:
            subscriber = feed.subscribe()
        except OverflowError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return StreamingResponse(feed.frames(subscriber), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/api/proof/tx/{tx_id}")
    def api_tx_proof(tx_id: str) -> JSONResponse:
        """What the transaction page's browser check recomputes (static/verify.js)."""
        if not _TX_ID.match(tx_id):
            return JSONResponse({"error": "a transaction id is 64 hex digits"}, status_code=400)
        try:
            result = client.get_tx(tx_id.lower())
            if not result.committed or result.header is None:
                return JSONResponse({"error": f"transaction {tx_id} is {result.state}, not in a block"}, status_code=404)
            return JSONResponse(proofs.tx_proof(genesis.suite, result, in_force(result.header.height)))
        except PilotchainError as exc:
            return proof_failure(exc)

    @app.get("/api/proof/block/{height}")
    def api_block_proof(height: int) -> JSONResponse:
        """What the block page's browser check recomputes (static/verify.js)."""
        try:
            found = client.get_block(height)
            return JSONResponse(proofs.block_proof(genesis.suite, found, in_force(found.height)))
        except PilotchainError as exc:
            return proof_failure(exc)

    @app.get("/api/proof/state")
    def api_state_proof(contract: str, key: str) -> JSONResponse:
        """What the state page's browser check recomputes (static/verify.js); ``key`` in hex."""
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            return JSONResponse({"error": "the key is hex"}, status_code=400)
        if not _NAME.match(contract):
            return JSONResponse({"error": "a contract name is a lower-case identifier"}, status_code=400)
        try:
            found = client.read_state(contract, raw)
            return JSONResponse(proofs.state_proof(genesis.suite, found, in_force(found.header.height)))
        except PilotchainError as exc:
            return proof_failure(exc)

    @app.get("/state", response_class=HTMLResponse)
    def state(contract: str = "", key: str = "", map: str = "") -> HTMLResponse:  # noqa: A002 - the form's field
        if not key:  # the form (a contract page links here with its name filled in)
            return HTMLResponse(pages.render_state(org, chain(), contract, "", map, None, None))
        if not _NAME.match(contract) or (map and not _NAME.match(map)) or len(key) > STATE_KEY_CHARS_MAX:
            return HTMLResponse(pages.render_error(org, chain(), t("state.title"), t("state.bad")), status_code=400)
        try:
            raw = pages.state_key(key, map)
        except ValueError:
            return HTMLResponse(pages.render_error(org, chain(), t("state.title"), t("state.bad")), status_code=400)
        try:
            found = client.read_state(contract, raw)
            check = certified(found.header, found.certificate)
            return HTMLResponse(pages.render_state(org, chain(), contract, key, map, found, check))
        except PilotchainError as exc:
            return failure(exc, t("state.title"))

    @app.get("/", response_class=HTMLResponse)
    def overview() -> HTMLResponse:
        try:
            info = client.status()
            head = client.get_block(info.height) if info.height >= 1 else None
            check = certified(head.header, head.certificate) if head is not None else None
            shown: list[dict[str, Any]] | list[ValidatorSigning] = validators()
            if head is not None:
                # governance's validators unreadable: the plain list, without health
                with contextlib.suppress(PilotchainError, KeyError, TypeError, ValueError):
                    shown = signing(head)
            return HTMLResponse(pages.render_overview(org, info, shown, head, check, live=feed is not None))
        except PilotchainError as exc:
            return failure(exc, t("overview.title"))

    @app.get("/blocks", response_class=HTMLResponse)
    def blocks(before: int | None = Query(default=None, ge=1)) -> HTMLResponse:
        try:
            height = client.status().height
            top = min(height, before - 1) if before is not None else height
            shown: list[BlockInfo] = [client.get_block(h) for h in range(top, max(top - pages.BLOCKS_PER_PAGE, 0), -1)]
            return HTMLResponse(pages.render_blocks(org, chain(), shown, height))
        except PilotchainError as exc:
            return failure(exc, t("blocks.title"))

    @app.get("/blocks/{height}", response_class=HTMLResponse)
    def block(height: int) -> HTMLResponse:
        try:
            found = client.get_block(height)
            check = certified(found.header, found.certificate)
            return HTMLResponse(pages.render_block(org, chain(), found, check))
        except PilotchainError as exc:
            return failure(exc, t("block.title", height=height))

    @app.get("/tx/{tx_id}", response_class=HTMLResponse)
    def tx(tx_id: str) -> HTMLResponse:
        if not _TX_ID.match(tx_id):
            return HTMLResponse(pages.render_error(org, chain(), t("tx.title"), t("error.tx_id")),
                                status_code=400)
        try:
            result = client.get_tx(tx_id.lower())
            return HTMLResponse(pages.render_tx(org, chain(), result, certified(result.header, result.certificate)))
        except PilotchainError as exc:
            return failure(exc, t("tx.title"))

    @app.get("/search", response_model=None)
    def search(q: str = "") -> Response:
        wanted = q.strip()
        if wanted.isascii() and wanted.isdigit():
            return RedirectResponse(f"/blocks/{int(wanted)}", status_code=303)
        if _TX_ID.match(wanted):
            return RedirectResponse(f"/tx/{wanted.lower()}", status_code=303)
        if index is not None:
            target = _found(wanted)
            if target is not None:
                return RedirectResponse(target, status_code=303)
            message = t("error.search_all", query=repr(wanted))
        else:
            message = t("error.search", query=repr(wanted))
        return HTMLResponse(pages.render_error(org, chain(), t("search.title"), message), status_code=400)

    def _found(wanted: str) -> str | None:
        """Where the index finds ``wanted``: an identity (org/subject), a contract, an event name."""
        if index is None or not wanted or len(wanted) > SEARCH_CHARS_MAX:
            return None
        quoted = urllib.parse.quote(wanted, safe="")
        if "/" in wanted:
            who, _, subject = wanted.partition("/")
            if index.index.identities(who, subject):
                return f"/identities?q={quoted}"
        if index.index.knows(contract=wanted):
            return f"/txs?contract={quoted}"
        if index.index.knows(event=wanted):
            return f"/events?name={quoted}"
        return None

    def index_off() -> HTMLResponse:
        return HTMLResponse(pages.render_error(org, chain(), t("search.title"), t("index.off")), status_code=404)

    def paged(before: str | None) -> tuple[Indexer, Cursor | None] | HTMLResponse:
        """The index and the page cursor, or the page that says why a listing cannot be shown."""
        if index is None:
            return index_off()
        try:
            return index, Cursor.parse(before)
        except ValueError:
            return HTMLResponse(pages.render_error(org, chain(), t("search.title"), t("index.bad_cursor")), status_code=400)

    @app.get("/txs", response_class=HTMLResponse)
    def indexed_txs(contract: str | None = None, signer: str | None = None, before: str | None = None,
                    limit: int = Query(default=INDEX_PAGE_ROWS, ge=1, le=100)) -> HTMLResponse:
        found = paged(before)
        if isinstance(found, HTMLResponse):
            return found
        indexer, cursor = found
        if contract is not None:
            rows = indexer.index.txs_by_contract(contract, cursor, limit)
            title, params = t("index.by_contract", contract=contract), {"contract": contract}
        elif signer is not None:
            rows = indexer.index.txs_by_signer(signer, cursor, limit)
            who = next((f"{r['signer_org']}/{r['signer_subject']}" for r in rows), signer[:16])
            title, params = t("index.by_signer", signer=who), {"signer": signer}
        else:
            return HTMLResponse(pages.render_error(org, chain(), t("search.title"), t("index.what")), status_code=400)
        return HTMLResponse(indexpages.render_txs(org, chain(), title, params, rows, limit, indexer.index.indexed_height(),
                                                  indexer.problem))

    @app.get("/events", response_class=HTMLResponse)
    def indexed_events(name: str, before: str | None = None,
                       limit: int = Query(default=INDEX_PAGE_ROWS, ge=1, le=100)) -> HTMLResponse:
        found = paged(before)
        if isinstance(found, HTMLResponse):
            return found
        indexer, cursor = found
        rows = indexer.index.events_by_name(name, cursor, limit)
        return HTMLResponse(indexpages.render_events(org, chain(), name, rows, limit, indexer.index.indexed_height(),
                                                     indexer.problem))

    @app.get("/identities", response_class=HTMLResponse)
    def identities_seen(q: str = "") -> HTMLResponse:
        if index is None:
            return index_off()
        who, _, subject = q.strip().partition("/")
        rows = index.index.identities(who or None, subject or None)
        return HTMLResponse(indexpages.render_identities(org, chain(), q, rows, index.index.indexed_height(), index.problem))

    @app.get("/governance", response_class=HTMLResponse)
    def governance() -> HTMLResponse:
        try:
            proposals = client.query("gov", "list", {"limit": PROPOSALS_SHOWN_MAX})
            members = client.query("gov", "members")
            return HTMLResponse(pages.render_governance(org, chain(), proposals, members))
        except PilotchainError as exc:
            return failure(exc, t("gov.title"))

    now_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)

    def proposals() -> list[dict[str, Any]]:
        return list(client.query("gov", "list", {"limit": chainread.PROPOSALS_READ_MAX}))

    @app.get("/governance/{proposal_id}", response_class=HTMLResponse)
    def proposal(proposal_id: int) -> HTMLResponse:
        try:
            listed = proposals()
            found = next((p for p in listed if p.get("id") == proposal_id), None)
            if found is None:
                return HTMLResponse(pages.render_error(org, chain(), t("gov.proposal", id=proposal_id), t(
                    "gov.unknown_proposal", id=proposal_id, count=chainread.PROPOSALS_READ_MAX)), status_code=404)
            steps, complete = chainread.proposal_steps(client, found, client.status().height)
            change = chainread.proposal_change(client, genesis, found, listed)
            return HTMLResponse(govpages.render_proposal(org, chain(), found, steps, complete, change))
        except PilotchainError as exc:
            return failure(exc, t("gov.proposal", id=proposal_id))

    @app.get("/contracts", response_class=HTMLResponse)
    def contracts() -> HTMLResponse:
        try:
            names = chainread.contract_names(proposals())
            records = [record for record in (client.query("gov", "contract", {"name": name}) for name in names) if record]
            return HTMLResponse(govpages.render_contracts(org, chain(), records))
        except PilotchainError as exc:
            return failure(exc, t("contracts.title"))

    @app.get("/contracts/{name}", response_class=HTMLResponse)
    def contract(name: str) -> HTMLResponse:
        if not _NAME.match(name):
            return HTMLResponse(pages.render_error(org, chain(), t("col.contract"), t("contract.bad_name")),
                                status_code=400)
        try:
            record = client.query("gov", "contract", {"name": name})
            if not record:
                return HTMLResponse(pages.render_error(org, chain(), t("contract.title", name=name),
                                                       t("contract.unknown", name=repr(name))), status_code=404)
            source = client.read_state("gov", b"code/" + bytes.fromhex(record["code_hash"]))
            deployments = sorted((p for p in proposals() if p.get("kind") == "deploy_contract" and p.get("status") == "executed"
                                  and p.get("target", {}).get("name") == name), key=lambda p: int(p["id"]))
            return HTMLResponse(govpages.render_contract(org, chain(), record, source, deployments, indexed=index is not None))
        except PilotchainError as exc:
            return failure(exc, t("contract.title", name=name))

    @app.get("/orgs", response_class=HTMLResponse)
    def orgs() -> HTMLResponse:
        try:
            members = client.query("gov", "members")
            view = chainread.membership_view(client, genesis)
            seen = index.index.identities() if index is not None else None
            return HTMLResponse(govpages.render_orgs(org, chain(), members, view.cas, view.changes, identities,
                                                     view.revoked, now_ms(), view.partial, seen))
        except PilotchainError as exc:
            return failure(exc, t("orgs.title"))

    def app_page(contract: str, render: Callable[[], str]) -> HTMLResponse:
        """``contract``'s page drawn by ``render`` — or why not: not deployed (404), what was asked
        for is not there or not well formed (the contract's words, 404), refused by its ``@read``
        (403), the node failed (502)."""
        try:
            if not deployed(contract):
                return HTMLResponse(apppages.render_not_deployed(org, chain(), contract), status_code=404)
            return HTMLResponse(render())
        except TxRejectedError as exc:
            if exc.code != "BAD_ARGUMENTS":
                return failure(exc, t(apppages.APPS[contract][2]))
            return HTMLResponse(pages.render_error(org, chain(), t(apppages.APPS[contract][2]), exc.message),
                                status_code=404)
        except PilotchainError as exc:
            return failure(exc, t(apppages.APPS[contract][2]))

    @app.get("/apps/currency", response_class=HTMLResponse)
    def currency_supply() -> HTMLResponse:
        return app_page("currency", lambda: apppages.render_supply(org, chain(), client.query("currency", "supply_audit")))

    @app.get("/apps/dataex", response_class=HTMLResponse)
    def access_log() -> HTMLResponse:
        def render() -> str:
            if index is None:
                return apppages.render_access_log(org, chain(), None, 0, 0)
            entries, read = _access_entries(index)
            return apppages.render_access_log(org, chain(), entries, read, index.index.indexed_height())

        return app_page("dataex", render)

    def _access_entries(indexer: Indexer) -> tuple[list[apppages.LogEntry], int]:
        """The data-exchange events about ``org``'s payloads (or naming it) in the newest indexed
        transactions of ``dataex`` and of ``health`` (whose requests decide through ``dataex``)."""
        rows = [row for contract in ("dataex", "health")
                for row in indexer.index.txs_by_contract(contract, None, ACCESS_LOG_TXS_MAX)]
        owners: dict[str, str] = {}

        def owner(payload_id: Any) -> str:
            if not isinstance(payload_id, str):
                return ""
            if payload_id not in owners:
                try:
                    record = client.query("dataex", "payload", {"payload_id": payload_id})
                except TxRejectedError:  # the contract refused (a malformed id, a read it withholds)
                    record = None
                owners[payload_id] = str(record.get("owner", "")) if isinstance(record, dict) else ""
            return owners[payload_id]

        entries = []
        for row in sorted(rows, key=lambda r: (r["height"], r["index"]), reverse=True):
            if row["redacted"] or row["status"] != "OK":
                continue
            result = client.get_tx(row["tx_id"])
            for event in result.events:
                data = event.data if isinstance(event.data, dict) else {}
                if event.contract != "dataex" or event.name not in apppages.ACCESS_EVENTS:
                    continue
                if data.get("owner") == org or data.get("org") == org or owner(data.get("id")) == org:
                    entries.append(apppages.LogEntry(int(row["height"]), str(row["tx_id"]), event.name, data))
        return entries, len(rows)

    @app.get("/apps/health", response_class=HTMLResponse)
    def review_queue() -> HTMLResponse:
        return app_page("health", lambda: apppages.render_review_queue(org, chain(), client.query("health", "review_queue")))

    @app.get("/apps/credentials", response_class=HTMLResponse)
    def credentials(iss: str = "") -> HTMLResponse:
        wanted = iss.strip()[:ISSUER_CHARS_MAX]

        def render() -> str:
            seen = _issuers_seen(index) if index is not None else None
            record = client.query("credentials", "issuer", {"iss": wanted}) if wanted else None
            if not isinstance(record, dict):
                return apppages.render_credentials(org, chain(), wanted, seen, None, [], [])
            count = int(record.get("batches", 0))
            ids = [client.query("credentials", "batch_at", {"iss": wanted, "n": n})
                   for n in range(count - 1, max(count - apppages.BATCHES_SHOWN_MAX, 0) - 1, -1)]
            batches = [b for b in (client.query("credentials", "batch", {"batch_id": i}) for i in ids if isinstance(i, str))
                       if isinstance(b, dict)]
            lists = [r for r in (client.query("credentials", "status_list", {"list_id": list_id})
                                 for list_id in record.get("lists", [])) if isinstance(r, dict)]
            return apppages.render_credentials(org, chain(), wanted, seen, record, batches, lists)

        return app_page("credentials", render)

    def _issuers_seen(indexer: Indexer) -> list[str]:
        """The issuers registered in the newest indexed credentials transactions."""
        found: list[str] = []
        for row in indexer.index.txs_by_contract("credentials", None, ACCESS_LOG_TXS_MAX):
            if row["redacted"] or row["status"] != "OK" or row["method"] != "register_issuer":
                continue
            for event in client.get_tx(row["tx_id"]).events:
                iss = event.data.get("iss") if isinstance(event.data, dict) else None
                if event.name == "issuer_registered" and isinstance(iss, str) and iss not in found:
                    found.append(iss)
        return found

    @app.get("/apps/receivables", response_class=HTMLResponse)
    def receivables(id: str = "") -> HTMLResponse:  # noqa: A002 - the form's field
        wanted = id.strip()[:RECEIVABLE_ID_CHARS_MAX]

        def render() -> str:
            holdings = client.query("receivables", "holdings_of", {"org": org})
            lineage = client.query("receivables", "lineage", {"receivable_id": wanted}) if wanted else None
            return apppages.render_receivables(org, chain(), holdings, wanted, lineage)

        return app_page("receivables", render)

    @app.get("/apps/greencert", response_class=HTMLResponse)
    def greencert(lot: str = "") -> HTMLResponse:
        wanted = lot.strip()[:LOT_ID_CHARS_MAX]

        def render() -> str:
            holdings = client.query("greencert", "holdings", {"org": org})
            trace = client.query("greencert", "trace", {"lot_id": wanted}) if wanted else None
            return apppages.render_greencert(org, chain(), holdings, wanted, trace if isinstance(trace, dict) else None)

        return app_page("greencert", render)

    @app.get("/apps/catalogue", response_class=HTMLResponse)
    def catalogue() -> HTMLResponse:
        def render() -> str:
            listed = client.query("catalogue", "entries_list", {"offset": 0, "limit": apppages.ENTRIES_SHOWN_MAX})
            total = int(client.query("catalogue", "requests_list", {"offset": 0, "limit": 1})["total"])
            requests: list[dict[str, Any]] = []
            for offset in range(max(total - apppages.USAGE_REQUESTS_MAX, 0), total, CATALOGUE_PAGE_ROWS):
                chunk = client.query("catalogue", "requests_list", {"offset": offset, "limit": CATALOGUE_PAGE_ROWS})
                requests += [r for r in chunk["items"] if isinstance(r, dict)]
            return apppages.render_catalogue(org, chain(), listed["items"], int(listed["total"]), requests, total)

        return app_page("catalogue", render)

    return app

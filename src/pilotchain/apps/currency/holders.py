"""An operator's REST service for its wallet holders, the holder SDK and CLI, and the keeper that
returns expired red envelopes to their funders.

Theory of operation
-------------------
Holders are not consortium members: their operator carries their instructions to the chain. One
operator runs one holder service (``pilotchain currency holders serve --network DIR --org ORG``;
``network up`` of a currency network starts one per operator). It signs transactions with the
operator's identity, reads and writes through the SDK, and serves the operator's own wallets only.

*Who is asking.* Every request but ``/healthz``, ``/openapi.json`` and ``/metrics`` (the latter
from the service's own host only) carries an HTTP Message Signature (RFC 9421, the maintained
``http-message-signatures`` package, as the node gateway uses) made with the **wallet's own key**
— the key registered in the wallet's record on chain: label ``holder``, tag
``pilotchain-holder-v1``, ``keyid`` the wallet id, covering ``@method``, ``@path``, ``@query``
and, with a body, its RFC 9530 ``Content-Digest``; ``created`` within :data:`SKEW_S` of the
service's clock, and a ``nonce`` not seen within the replay window. An unknown wallet, a bad
signature, a stale or replayed one is answered 401 with what to do; a signature by one wallet on
another's path 403; another operator's wallet 404. Nothing reaches the chain before that.

*What a holder does.* ``GET /v1/wallets/{id}`` (what ``currency wallet show`` shows: balance,
envelopes, held value, what is left of the limits today and this year, Asia/Shanghai), ``GET
/v1/wallets/{id}/history`` (the wallet's movements, paged by movement number), ``POST
/v1/wallets/{id}/payments`` (an instruction the wallet's key signed — the statement of
:mod:`~pilotchain.apps.currency.statements` — checked by the operator, then submitted with the
payments that arrived within the batch window as one ``currency.pay_batch`` transaction the
operator signs (:class:`PaymentBatcher`: each payment applied or refused on its own); idempotent
by the client key), ``POST
/v1/wallets/{id}/requests`` (a payment request to show as text or a QR code) and ``POST
/v1/wallets/{id}/unload`` (back to a deposit). Errors are the gateway's JSON shape ``{"code",
"message"}``.

*What the service follows.* :class:`ChainFollower` reads the committed blocks in order (through
the SDK, which checks them) and indexes what the service needs: its own wallets' movements (the
history) and the red-envelope campaigns that were funded. :class:`EnvelopeKeeper` watches the
operator's campaigns and, once a campaign's window has ended by the chain's certified time (the
newest block's), submits ``envelope_expire`` in batches until the contract answers done — the
unspent value goes back to the funder with no one calling anything. Both derive everything from
the chain: a restarted service reads it again, and the contract makes a second sweep a no-op.
"""

import base64
import binascii
import bisect
import concurrent.futures
import dataclasses
import datetime
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier, HTTPSignatureKeyResolver
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from pilotchain.apps.currency.audit import Movement, movements
from pilotchain.apps.currency.client import CurrencyClient, CurrencyError, HolderKey, new_client_key
from pilotchain.apps.currency.statements import StatementError, check_id, statement
from pilotchain.errors import CoreError
from pilotchain.ledger.tx import decode_args
from pilotchain.network.services import OrgHttpServices
from pilotchain.sdk import BlockInfo, PilotchainError
from pilotchain.sdk._signing import algorithm_for

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from pilotchain.crypto import PrivateKey, PublicKey

__all__ = [
    "SIGNATURE_LABEL",
    "SIGNATURE_TAG",
    "ChainFollower",
    "EnvelopeKeeper",
    "HolderClient",
    "HolderError",
    "HolderMetrics",
    "HolderSignature",
    "create_holder_app",
    "holder_app",
    "holders_app",
    "payment_request",
    "read_payment_request",
]

_log = logging.getLogger("pilotchain.currency.holders")

#: the RFC 9421 signature label and tag of a holder's request (not a member's: another tag)
SIGNATURE_LABEL = "holder"
SIGNATURE_TAG = "pilotchain-holder-v1"
#: what every holder signature covers (``content-digest`` too when there is a body)
COVERED_COMPONENTS = ("@method", "@path", "@query")
#: a signature's ``created`` may differ from the service's clock by this much
SKEW_S = 60
#: nonces are remembered this long (an older signature is refused anyway)
REPLAY_WINDOW_S = 300
#: a request body (an instruction is a few hundred bytes)
BODY_BYTES_MAX = 16 * 1024
#: movements in one history page, by default and at most
HISTORY_PAGE = 50
HISTORY_PAGE_MAX = 500
#: blocks the follower reads in one pass (the background loop comes back for the rest)
BLOCKS_PER_SYNC_MAX = 2_000
#: recipients one envelope_expire call sweeps (the contract's default; it allows 1..1000)
EXPIRE_BATCH = 200
#: envelope_expire calls for one campaign in one keeper pass
EXPIRE_CALLS_PER_TICK_MAX = 50
#: a chain that commits no empty blocks (a development node) shows no time passing: the keeper
#: also tries once its own clock is this far past a campaign's end — the block's time decides
CLOCK_GRACE_MS = 5_000
#: seconds between the background passes (follow the chain, then sweep)
MAINTENANCE_INTERVAL_S = 2.0
#: payments arriving this close together are submitted in one ``pay_batch`` transaction
BATCH_WINDOW_MS = 20
#: the contract's payment and query ids
_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"
_ID_RE = re.compile(_ID_PATTERN[1:-1])
_WALLET_PATH_RE = re.compile(r"^/v1/wallets/([^/]+)(?:/[^/]*)?\Z")
_HEX_PATTERN = r"^(?:[0-9a-fA-F]{2}){1,128}$"
_HEX_RE = re.compile(_HEX_PATTERN[1:-1])
AMOUNT_MAX = 10**15
SEQ_MAX = 2**62
MEMO_MAX = 256
WALLET_SCOPE_KEY = "pilotchain.holder_wallet"
OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})


class HolderError(CoreError):
    """What a holder service refused (``status``, ``code``) with its reason in words."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class _Refused(CoreError):
    """A request the service answers with an error (status, code, message)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


# ------------------------------------------------------------------------------ payment requests

def payment_request(to: str, amount: int, memo: str = "") -> str:
    """A payment request a payee shows as text or a QR code (``currency wallet request``):
    base64url of ``{"to", "amount" (fen), "memo"}``, unpadded."""
    check_id("wallet", to)
    document = {"to": to, "amount": amount, "memo": memo}
    return base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode().rstrip("=")


def read_payment_request(token: str) -> tuple[str, int, str]:
    """(payee, amount in fen, memo) of a payment request; StatementError if it is none."""
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode() + b"=="))
        payee, amount, memo = str(document["to"]), document["amount"], str(document.get("memo", ""))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise StatementError(f"not a payment request ({exc}); ask the payee for the text `currency wallet request` "
                             "printed") from None
    if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= AMOUNT_MAX:
        raise StatementError(f"the payment request's amount {amount!r} is not a whole number of fen")
    return check_id("payee", payee), amount, memo


# ------------------------------------------------------------------------------ signing (the holder's side)

class _OwnKey(HTTPSignatureKeyResolver):
    def __init__(self, key: HolderKey) -> None:
        self._key = key

    def resolve_private_key(self, key_id: str) -> "PrivateKey":
        return self._key.private_key

    def resolve_public_key(self, key_id: str) -> "PublicKey":
        return self._key.private_key.public_key()


class HolderSignature(httpx.Auth):
    """An httpx auth flow signing every request with a wallet's own key (the module docstring)."""

    requires_request_body = True

    def __init__(self, wallet_id: str, key: HolderKey) -> None:
        self.wallet_id = check_id("wallet", wallet_id)
        self._signer = HTTPMessageSigner(signature_algorithm=algorithm_for(key.suite.name), key_resolver=_OwnKey(key))

    def sign(self, request: httpx.Request, *, created: datetime.datetime | None = None,
             nonce: str | None = None) -> httpx.Request:
        body = request.content
        self._signer.sign(request, key_id=self.wallet_id, created=created or datetime.datetime.now(datetime.UTC),
                          nonce=nonce or secrets.token_hex(16), label=SIGNATURE_LABEL, tag=SIGNATURE_TAG,
                          covered_component_ids=COVERED_COMPONENTS, body=body if body else None)
        return request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield self.sign(request)


# ------------------------------------------------------------------------------ the holder SDK

class HolderClient:
    """A holder's own client of their operator's holder service: every request signed by the
    wallet's key; instructions signed by it too (the operator never holds it).

        with HolderClient("http://127.0.0.1:27700", "alice", HolderKey.load(path, "intl")) as me:
            me.wallet()["balance"]; me.pay("shop", 3_850)
    """

    def __init__(self, url: str, wallet_id: str, key: HolderKey, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None, chain_id: str | None = None) -> None:
        self.wallet_id = check_id("wallet", wallet_id)
        self.key = key
        self.auth = HolderSignature(wallet_id, key)
        self._http = httpx.Client(base_url=url, timeout=timeout, transport=transport, auth=self.auth)
        self._chain_id = chain_id

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "HolderClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _answer(self, response: httpx.Response) -> Any:
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.status_code >= 400:
            if isinstance(document, dict) and "code" in document:
                raise HolderError(response.status_code, str(document["code"]), str(document.get("message", "")))
            raise HolderError(response.status_code, "HTTP", f"the service answered {response.status_code}: "
                                                            f"{response.text[:200]}")
        return document

    def _call(self, method: str, path: str, **options: Any) -> Any:
        try:
            return self._answer(self._http.request(method, path, **options))
        except httpx.HTTPError as exc:
            raise HolderError(503, "UNREACHABLE", f"the holder service at {self._http.base_url} did not answer "
                                                  f"({exc}); check the URL your operator gave you") from exc

    def health(self) -> dict[str, Any]:
        document: dict[str, Any] = self._call("GET", "/healthz", auth=None)
        return document

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str(self.health()["chain_id"])
        return self._chain_id

    def wallet(self) -> dict[str, Any]:
        document: dict[str, Any] = self._call("GET", f"/v1/wallets/{self.wallet_id}")
        return document

    def history(self, after: int = 0, limit: int = HISTORY_PAGE) -> dict[str, Any]:
        document: dict[str, Any] = self._call("GET", f"/v1/wallets/{self.wallet_id}/history",
                                              params={"after": after, "limit": limit})
        return document

    def history_all(self) -> list[dict[str, Any]]:
        """Every movement of the wallet (page after page)."""
        rows: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.history(after, HISTORY_PAGE_MAX)
            rows.extend(page["movements"])
            if page["next"] is None:
                return rows
            after = int(page["next"])

    def _instruction(self, kind: str, fields: list[object], seq: int | None) -> tuple[int, str]:
        seq = self.key.next_seq() if seq is None else seq
        return seq, self.key.sign(statement(self.chain_id, kind, self.wallet_id, seq, fields)).hex()

    def pay(self, payee: str, amount: int, client_key: str | None = None, memo: str = "",
            seq: int | None = None) -> dict[str, Any]:
        """Pay ``amount`` fen to ``payee``: the instruction is signed here with the wallet's key; the
        operator submits it. The same ``client_key`` again returns the first result."""
        client_key = client_key or new_client_key()
        seq, signature = self._instruction("pay", [payee, amount, client_key], seq)
        document: dict[str, Any] = self._call("POST", f"/v1/wallets/{self.wallet_id}/payments", json={
            "payee": payee, "amount": amount, "client_key": client_key, "seq": seq, "signature": signature,
            "memo": memo})
        return document

    def request(self, amount: int, memo: str = "") -> dict[str, Any]:
        document: dict[str, Any] = self._call("POST", f"/v1/wallets/{self.wallet_id}/requests",
                                              json={"amount": amount, "memo": memo})
        return document

    def unload(self, amount: int, client_key: str | None = None, seq: int | None = None) -> dict[str, Any]:
        client_key = client_key or new_client_key()
        seq, signature = self._instruction("unload", [amount, client_key], seq)
        document: dict[str, Any] = self._call("POST", f"/v1/wallets/{self.wallet_id}/unload", json={
            "amount": amount, "client_key": client_key, "seq": seq, "signature": signature})
        return document


# ------------------------------------------------------------------------------ metrics

class HolderMetrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("pilotchain_holder_requests", "Requests answered, by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.seconds = Histogram("pilotchain_holder_request_seconds", "Time to answer, by endpoint", ["endpoint"],
                                 registry=self.registry)
        self.refusals = Counter("pilotchain_holder_refusals", "Requests refused, by reason (authentication, the "
                                "operator's checks, the contract's refusals)", ["reason"], registry=self.registry)
        self.submissions = Counter("pilotchain_holder_submissions", "Holder instructions submitted to the chain, by "
                                   "method and outcome", ["method", "outcome"], registry=self.registry)
        self.keeper_calls = Counter("pilotchain_holder_keeper_calls", "envelope_expire calls by the keeper, by "
                                    "outcome", ["outcome"], registry=self.registry)
        self.keeper_ended = Counter("pilotchain_holder_keeper_campaigns_ended", "Campaigns the keeper swept to the "
                                    "end", registry=self.registry)
        self.keeper_open = Gauge("pilotchain_holder_keeper_campaigns_open", "The operator's campaigns not yet "
                                 "swept", registry=self.registry)
        self.height = Gauge("pilotchain_holder_chain_height", "The last block the service has read",
                            registry=self.registry)
        self.batch_payments = Histogram("pilotchain_holder_batch_payments", "Payments per pay_batch transaction",
                                        buckets=(1, 2, 5, 10, 20, 50, 100, 200), registry=self.registry)


# ------------------------------------------------------------------------------ following the chain

def _currency_events(block: BlockInfo, contract: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, data) of the contract's events committed in ``block`` (failed transactions have none)."""
    for receipt in block.receipts:
        if receipt.status != "OK":
            continue
        for event in receipt.events:
            if event.contract == contract and event.name != "move":
                yield event.name, decode_args(event.data)


def _movement_json(move: Movement) -> dict[str, Any]:
    document = dataclasses.asdict(move)
    document["from"], document["to"] = document.pop("source"), document.pop("target")
    return document


def _wallet_of_bucket(bucket: str) -> str | None:
    """The wallet a bucket belongs to (``wallet:W``, ``env:W:campaign``, ``held:W``), else None."""
    kind, _, rest = bucket.partition(":")
    if kind in ("wallet", "held"):
        return rest
    if kind == "env":
        return rest.rpartition(":")[0]
    return None


class ChainFollower:
    """The committed blocks read in order: the operator's wallets (``wallet_opened``), their
    movements, and every funded campaign (``campaign``). Derived from the chain only; thread-safe."""

    def __init__(self, currency: CurrencyClient, org: str, *, metrics: HolderMetrics | None = None) -> None:
        self.currency = currency
        self.org = org
        self.metrics = metrics
        #: the last block read and its certified time
        self.height = 0
        self.time_ms = 0
        self.head = 0
        self._wallets: set[str] = set()
        self._moves: dict[str, list[Movement]] = {}
        self._campaigns: list[str] = []
        self._lock = threading.Lock()

    def sync(self, blocks_max: int = BLOCKS_PER_SYNC_MAX) -> bool:
        """Read up to ``blocks_max`` new blocks; True when the head is reached."""
        with self._lock:
            self.head = self.currency.client.status().height
            end = min(self.head, self.height + blocks_max)
            for height in range(self.height + 1, end + 1):
                self._index(self.currency.client.get_block(height))
            if self.metrics is not None:
                self.metrics.height.set(self.height)
            return self.height >= self.head

    def _index(self, block: BlockInfo) -> None:
        contract = self.currency.contract
        for name, data in _currency_events(block, contract):
            if name == "wallet_opened" and data.get("operator") == self.org:
                self._wallets.add(str(data["wallet"]))
            elif name == "campaign":
                self._campaigns.append(str(data["campaign"]))
        for move in movements(block, contract):
            touched = {_wallet_of_bucket(move.source), _wallet_of_bucket(move.target)}
            for wallet in self._wallets.intersection(touched):
                self._moves.setdefault(wallet, []).append(move)
        self.height = block.height
        self.time_ms = block.header.timestamp_ms

    def campaigns(self, start: int = 0) -> list[str]:
        """Campaigns funded so far, in order, from index ``start``."""
        with self._lock:
            return self._campaigns[start:]

    def history(self, wallet: str, after: int, limit: int) -> tuple[list[Movement], int | None]:
        """The wallet's movements numbered above ``after`` (at most ``limit``), and the cursor of
        the next page (None: no more)."""
        with self._lock:
            rows = self._moves.get(wallet, [])
            start = bisect.bisect_right(rows, after, key=lambda move: move.n)
            page = rows[start:start + limit]
            more = start + limit < len(rows)
        return page, (page[-1].n if more and page else None)


class EnvelopeKeeper:
    """Returns the unspent value of the operator's ended red-envelope campaigns to their funders
    (``envelope_expire`` in batches until done), by the chain's certified time."""

    def __init__(self, currency: CurrencyClient, follower: ChainFollower, *, clock_ms: Callable[[], int] | None = None,
                 batch: int = EXPIRE_BATCH, metrics: HolderMetrics | None = None) -> None:
        self.currency = currency
        self.follower = follower
        self.org = follower.org
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.batch = batch
        self.metrics = metrics
        #: the operator's campaigns still to sweep: id -> until_ms
        self.pending: dict[str, int] = {}
        self._seen = 0

    def due(self, until_ms: int) -> bool:
        """Ended by the newest block's certified time (or, on a chain that has committed nothing
        since, by this service's clock and CLOCK_GRACE_MS: the sweep's own block decides)."""
        return self.follower.time_ms >= until_ms or self.clock_ms() >= until_ms + CLOCK_GRACE_MS

    def tick(self) -> list[dict[str, Any]]:
        """One pass: look at the campaigns funded since the last pass, sweep the ended ones. The
        final answer of every campaign swept to its end."""
        for campaign in self.follower.campaigns(self._seen):
            record = self.currency.query("campaign", {"campaign_id": campaign})  # a failure: looked at next pass
            if record is not None and record["operator"] == self.org and record["status"] != "ended":
                self.pending[campaign] = int(record["until_ms"])
            self._seen += 1
        ended = []
        for campaign, until_ms in sorted(self.pending.items(), key=lambda item: item[1]):
            if self.due(until_ms):
                result = self._sweep(campaign)
                if result is not None:
                    ended.append(result)
        if self.metrics is not None:
            self.metrics.keeper_open.set(len(self.pending))
        return ended

    def _sweep(self, campaign: str) -> dict[str, Any] | None:
        for _ in range(EXPIRE_CALLS_PER_TICK_MAX):
            try:
                result = self.currency.envelope_expire(campaign, self.batch)
            except CurrencyError as exc:
                early = "runs until" in exc.message
                self._count("early" if early else "refused")
                (_log.debug if early else _log.warning)("envelope_expire %s: %s", campaign, exc)
                return None
            self._count("swept")
            if result["done"]:
                del self.pending[campaign]
                if self.metrics is not None:
                    self.metrics.keeper_ended.inc()
                _log.info("campaign %s ended: %d fen returned to its funder in all", campaign, result["returned"])
                return dict(result)
        return None

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.keeper_calls.labels(outcome=outcome).inc()


class Maintenance:
    """The background thread: follow the chain, then sweep ended campaigns, every ``interval_s``."""

    def __init__(self, follower: ChainFollower, keeper: EnvelopeKeeper, interval_s: float = MAINTENANCE_INTERVAL_S
                 ) -> None:
        self.follower = follower
        self.keeper = keeper
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> None:
        try:
            self.follower.sync()
            self.keeper.tick()
        except PilotchainError as exc:
            _log.warning("the holder service could not follow the chain now (%s); retrying", exc)
        except Exception:  # noqa: BLE001 - the loop must outlive one bad pass; the log has the bug
            _log.exception("the holder service's maintenance pass failed; retrying")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="holder-maintenance", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


# ------------------------------------------------------------------------------ who is asking (the service's side)

class _WalletKeys(HTTPSignatureKeyResolver):
    """The signature's ``keyid`` (a wallet id) to the key in that wallet's record on chain."""

    def __init__(self, lookup: Callable[[str], dict[str, Any] | None], suite_name: str) -> None:
        from pilotchain.crypto import get_suite

        self._lookup = lookup
        self._suite = get_suite(suite_name)
        self.asked: str | None = None
        self.record: dict[str, Any] | None = None
        self.failure: PilotchainError | None = None

    def resolve_public_key(self, key_id: str) -> "PublicKey | None":
        self.asked = key_id
        if not isinstance(key_id, str) or not _ID_RE.fullmatch(key_id):
            return None
        try:
            record = self._lookup(key_id)
        except PilotchainError as exc:
            self.failure = exc
            return None
        if record is None:
            return None
        self.record = record
        return self._suite.public_key(bytes(record["key"]))

    def resolve_private_key(self, key_id: str) -> Any:  # pragma: no cover - the service never signs
        raise HTTPMessageSignaturesException("the holder service does not sign requests")


@dataclasses.dataclass(frozen=True, slots=True)
class _Received:
    """What the verifier reads of a request: its method, its URL as sent (raw path and query: the
    host is not covered) and every header field line."""

    method: str
    url: str
    headers: Any


class HolderAuthenticator:
    """Checks one request's holder signature (see the module docstring); the wallet's record."""

    def __init__(self, currency: CurrencyClient, org: str, suite_name: str, *,
                 clock_s: Callable[[], float] = time.time) -> None:
        self.currency = currency
        self.org = org
        self.suite_name = suite_name
        from pilotchain.gateway._auth import ReplayCache

        self.clock_s = clock_s
        self.replay = ReplayCache(REPLAY_WINDOW_S)
        self._algorithm = algorithm_for(suite_name)

    def authenticate(self, scope: "Scope", body: bytes) -> dict[str, Any]:
        from starlette.datastructures import Headers

        headers = Headers(scope=scope)
        if "signature" not in headers or "signature-input" not in headers:
            raise _Refused(401, "UNSIGNED", "sign the request with your wallet's own key: HTTP Message Signatures "
                           f"(RFC 9421), label {SIGNATURE_LABEL!r}, tag {SIGNATURE_TAG!r}, keyid your wallet id, "
                           f"covering {', '.join(COVERED_COMPONENTS)} and content-digest (the holder SDK's "
                           "HolderClient and `pilotchain currency holder ...` do this)")
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        received = _Received(scope["method"], "http://holder.invalid" + path + (f"?{query}" if query else ""), headers)
        keys = _WalletKeys(self.currency.wallet, self.suite_name)
        verifier = HTTPMessageVerifier(signature_algorithm=self._algorithm, key_resolver=keys)
        verifier.max_clock_skew = datetime.timedelta(seconds=SKEW_S)
        required = [*COVERED_COMPONENTS, "content-digest"] if body else list(COVERED_COMPONENTS)
        try:
            results = verifier.verify(received, expect_label=SIGNATURE_LABEL, expect_tag=SIGNATURE_TAG, max_age=None,
                                      require_components=required, body=body)
        except HTTPMessageSignaturesException as exc:
            if keys.failure is not None:
                raise _Refused(503, "UNAVAILABLE", f"the chain cannot be read now ({keys.failure}); retry shortly",
                               {"Retry-After": "2"}) from None
            if keys.asked is not None and keys.record is None:
                raise _Refused(401, "UNKNOWN_WALLET", f"there is no wallet {keys.asked!r} on the chain: the "
                               "signature's keyid is your wallet id (your operator told you which)") from None
            raise _Refused(401, "BAD_SIGNATURE", f"the request signature does not verify ({exc}): sign every request "
                           "anew with your wallet's own key, over the exact body you send") from None
        parameters = results[0].parameters if results else {}
        record = keys.record
        if record is None:  # pragma: no cover - a verified signature resolved its key
            raise _Refused(401, "BAD_SIGNATURE", "the signature names no wallet")
        wallet = str(record["id"])
        created, now_s = parameters.get("created"), self.clock_s()
        if not isinstance(created, int) or abs(now_s - created) > SKEW_S:
            raise _Refused(401, "STALE", f"the signature was created at {created}, the service's clock says "
                           f"{int(now_s)}: sign each request when you send it (clocks within {SKEW_S} s)")
        nonce = parameters.get("nonce")
        if not isinstance(nonce, str) or len(nonce) < 16:
            raise _Refused(401, "BAD_SIGNATURE", "the signature needs a nonce of at least 16 characters")
        if not self.replay.first_use(wallet, nonce, now_s):
            raise _Refused(401, "REPLAYED", "this signed request was already used (a replay): sign every request "
                           "anew (a fresh nonce)")
        match = _WALLET_PATH_RE.match(scope["path"])
        if match is not None and match.group(1) != wallet:
            raise _Refused(403, "PERMISSION_DENIED", f"signed by wallet {wallet}: a holder reads and instructs only "
                           f"their own wallet, not {match.group(1)!r}")
        if record["operator"] != self.org:
            raise _Refused(404, "NOT_FOUND", f"wallet {wallet} is managed by {record['operator']}, not by {self.org}: "
                           f"use {record['operator']}'s holder service")
        return record


def _error_json(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> "JSONResponse":
    from fastapi.responses import JSONResponse

    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


class _SignedByHolder:
    """ASGI middleware: reads the (bounded) body, authenticates the holder off the event loop,
    puts the wallet's record and the body in the scope, and replays the body to the app."""

    def __init__(self, app: "ASGIApp", *, authenticator: HolderAuthenticator, metrics: HolderMetrics,
                 metrics_open: Callable[["Scope"], bool]) -> None:
        self.app = app
        self.authenticator = authenticator
        self.metrics = metrics
        self.metrics_open = metrics_open

    async def __call__(self, scope: "Scope", receive: "Receive", send: "Send") -> None:
        import anyio

        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or (
                scope["path"] == "/metrics" and self.metrics_open(scope)):
            await self.app(scope, receive, send)
            return
        try:
            body, messages = await _read_body(scope, receive)
            record = await anyio.to_thread.run_sync(self.authenticator.authenticate, scope, body)
        except _Refused as refusal:
            self.metrics.refusals.labels(reason=refusal.code).inc()
            remote = scope["client"][0] if scope.get("client") else "?"
            _log.info("refused %s %s from %s: %s", scope["method"], scope["path"], remote, refusal.code)
            headers = dict(refusal.headers)
            if refusal.status == 401:
                headers["WWW-Authenticate"] = f'Signature label="{SIGNATURE_LABEL}"'
            await _error_json(refusal.status, refusal.code, refusal.message, headers)(scope, receive, send)
            return
        scope[WALLET_SCOPE_KEY] = record
        scope[_BODY_SCOPE_KEY] = body
        replay = iter(messages)

        async def replayed() -> "Message":
            message = next(replay, None)
            return message if message is not None else await receive()

        await self.app(scope, replayed, send)


_BODY_SCOPE_KEY = "pilotchain.holder_body"


async def _read_body(scope: "Scope", receive: "Receive") -> tuple[bytes, list["Message"]]:
    from starlette.datastructures import Headers

    declared = Headers(scope=scope).get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > BODY_BYTES_MAX:
        raise _Refused(413, "TOO_LARGE", f"a request body is at most {BODY_BYTES_MAX} bytes")
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > BODY_BYTES_MAX:
            raise _Refused(413, "TOO_LARGE", f"a request body is at most {BODY_BYTES_MAX} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


class _Metered:
    """ASGI middleware: every answer counted by endpoint (the route's path template) and status."""

    def __init__(self, app: "ASGIApp", *, metrics: HolderMetrics, routes: Callable[[], list[Any]]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def _endpoint(self, scope: "Scope") -> str:
        from starlette.routing import Match

        for route in self.routes():
            if route.matches(scope)[0] == Match.FULL:
                return str(route.path)
        return "other"

    async def __call__(self, scope: "Scope", receive: "Receive", send: "Send") -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = self._endpoint(scope)
        status = 500
        started = time.perf_counter()

        async def tracking(message: "Message") -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        finally:
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            self.metrics.seconds.labels(endpoint=endpoint).observe(time.perf_counter() - started)


# ------------------------------------------------------------------------------ the OpenAPI document

_ERRORS: dict[int, str] = {
    400: "BAD_REQUEST: the body or a parameter is malformed (the message says which); or the contract's "
         "BAD_ARGUMENTS",
    401: "UNSIGNED, UNKNOWN_WALLET, BAD_SIGNATURE, STALE or REPLAYED: sign every request anew with the wallet's key "
         "(WWW-Authenticate names the label)",
    403: "PERMISSION_DENIED: signed by another wallet's key, or an instruction whose signature does not verify",
    404: "NOT_FOUND: the wallet is another operator's (the message names it), or no such endpoint",
    405: "METHOD_NOT_ALLOWED: the Allow header lists the methods this path serves",
    409: "REFUSED: the operator's checks (KYC, status, limits) or the contract refused the instruction; the "
         "message says why in words; nothing moved",
    413: f"TOO_LARGE: a request body is at most {BODY_BYTES_MAX} bytes",
    500: "INTERNAL: a bug; the service logged it",
    503: "UNAVAILABLE: the chain cannot be read or written now, or the service is still reading it; retry after "
         "Retry-After (an instruction: with the same client_key)",
    504: "TIMEOUT: submitted but not committed in time; it may still commit: ask again with the same client_key",
}
_SIGNED = (401, 403, 404, 413, 500, 503)
_ID_SCHEMA: dict[str, Any] = {"type": "string", "pattern": _ID_PATTERN}
_FEN: dict[str, Any] = {"type": "integer", "minimum": 0}
_FEN_OR_NONE: dict[str, Any] = {"type": ["integer", "null"], "minimum": 0}
_LIMITS: dict[str, Any] = {
    "type": "object", "required": ["balance_max", "payment_max", "daily_max", "annual_max"],
    "properties": {name: _FEN_OR_NONE for name in ("balance_max", "payment_max", "daily_max", "annual_max")},
}
_WALLET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "wallet": _ID_SCHEMA, "operator": {"type": "string"},
        "kind": {"type": "string", "enum": ["personal", "corporate", "merchant", "sub"]},
        "tier": {"type": "integer", "minimum": 0, "maximum": 4},
        "status": {"type": "string", "enum": ["active", "receive_only", "frozen", "closed"]},
        "balance": _FEN, "held": _FEN, "envelopes": {"type": "object", "additionalProperties": _FEN}, "total": _FEN,
        "today": {"type": "string", "description": "today's date in Asia/Shanghai (YYYY-MM-DD), from the chain's time"},
        "limits": _LIMITS,
        "left": {"type": "object", "required": ["daily", "annual", "balance", "payment"],
                 "properties": {name: _FEN_OR_NONE for name in ("daily", "annual", "balance", "payment")},
                 "description": "left today and this year (Asia/Shanghai), room below the balance cap, the "
                                "single-payment limit; null: no limit"},
        "seq": {"type": "integer", "minimum": 0, "description": "the last instruction's sequence number"},
        "public_key": {"type": "string", "description": "the wallet's key (hex of its SubjectPublicKeyInfo DER)"},
        "opened_ms": {"type": "integer"},
    },
    "required": ["wallet", "operator", "kind", "tier", "status", "balance", "held", "envelopes", "total", "today",
                 "limits", "left", "seq", "public_key", "opened_ms"],
}
_MOVEMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "kind": {"type": "string"}, "from": {"type": "string"},
                   "to": {"type": "string"}, "amount": {"type": "integer", "minimum": 1}, "ref": {"type": "string"},
                   "height": {"type": "integer"}, "time_ms": {"type": "integer"}, "tx_id": {"type": "string"}},
    "required": ["n", "kind", "from", "to", "amount", "ref", "height", "time_ms", "tx_id"],
}
_HISTORY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"wallet": _ID_SCHEMA, "movements": {"type": "array", "items": _MOVEMENT_SCHEMA},
                   "next": {"type": ["integer", "null"], "description": "`after` for the next page; null: no more"},
                   "height": {"type": "integer", "description": "the last block read"}},
    "required": ["wallet", "movements", "next", "height"],
}
_PAYMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "payer": _ID_SCHEMA, "payee": _ID_SCHEMA,
                   "amount": {"type": "integer", "minimum": 1}, "own": _FEN, "envelopes": _FEN,
                   "parts": {"type": "object", "additionalProperties": _FEN}, "height": {"type": "integer"},
                   "ms": {"type": "integer"}, "large": {"type": "boolean"},
                   "replayed": {"type": "boolean", "description": "true: this client_key was paid before; this is "
                                                                  "that payment"}},
    "required": ["id", "payer", "payee", "amount", "own", "envelopes", "height", "replayed"],
}
_SIGNATURE_FIELD: dict[str, Any] = {"type": "string", "pattern": _HEX_PATTERN,
                                    "description": "hex of the wallet key's signature over the statement"}
_SEQ_FIELD: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": SEQ_MAX,
                              "description": "above the wallet's last accepted seq (the SDK uses microseconds)"}
_AMOUNT_FIELD: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": AMOUNT_MAX, "description": "fen"}
_PAY_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["payee", "amount", "client_key", "seq", "signature"],
    "properties": {"payee": _ID_SCHEMA, "amount": _AMOUNT_FIELD, "client_key": _ID_SCHEMA, "seq": _SEQ_FIELD,
                   "signature": _SIGNATURE_FIELD, "memo": {"type": "string", "maxLength": MEMO_MAX}},
    "description": "signature over `pilotchain/currency/v1|<chain id>|pay|<wallet>|<seq>|<payee>|<amount>|"
                   "<client_key>` (docs/currency.md)",
}
_UNLOAD_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["amount", "client_key", "seq", "signature"],
    "properties": {"amount": _AMOUNT_FIELD, "client_key": _ID_SCHEMA, "seq": _SEQ_FIELD,
                   "signature": _SIGNATURE_FIELD},
    "description": "signature over `pilotchain/currency/v1|<chain id>|unload|<wallet>|<seq>|<amount>|<client_key>`",
}
_REQUEST_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["amount"],
    "properties": {"amount": _AMOUNT_FIELD, "memo": {"type": "string", "maxLength": MEMO_MAX}},
}
_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"request": {"type": "string", "description": "show it as text or a QR code; the payer pays it "
                                                               "with `currency wallet pay --request`"},
                   "to": _ID_SCHEMA, "amount": {"type": "integer"}, "memo": {"type": "string"}},
    "required": ["request", "to", "amount", "memo"],
}
_UNLOAD_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"wallet": _ID_SCHEMA, "balance": _FEN},
                                  "required": ["wallet", "balance"]}
_HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "org": {"type": "string"}, "chain_id": {"type": "string"},
                   "suite": {"type": "string"}, "height": {"type": "integer"}, "read": {"type": "integer"},
                   "reason": {"type": "string"}},
    "required": ["ok", "org"],
}


def _responses(ok: dict[str, Any], *errors: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses``: 200 with ``ok``, each error status with the gateway's error body."""
    from pilotchain.gateway.app import _ERROR_SCHEMA

    answers: dict[int | str, dict[str, Any]] = {200: {"description": "done",
                                                      "content": {"application/json": {"schema": ok}}}}
    for status in sorted(set(errors)):
        answers[status] = {"description": _ERRORS[status], "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    return answers


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


# ------------------------------------------------------------------------------ reading an instruction

def _fields(raw: bytes, schema: dict[str, Any]) -> dict[str, Any]:
    """The body's JSON object, each field checked as ``schema`` says (400 in words otherwise)."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Refused(400, "BAD_REQUEST", f"the body is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise _Refused(400, "BAD_REQUEST", "the body is a JSON object")
    unknown = sorted(set(document) - set(schema["properties"]))
    if unknown:
        raise _Refused(400, "BAD_REQUEST", f"unknown fields {', '.join(unknown)}; the fields are "
                                           f"{', '.join(schema['properties'])}")
    missing = [name for name in schema["required"] if name not in document]
    if missing:
        raise _Refused(400, "BAD_REQUEST", f"missing {', '.join(missing)}")
    return {name: _field(name, document[name], schema["properties"][name]) for name in document}


def _field(name: str, value: Any, rule: dict[str, Any]) -> Any:
    if rule["type"] == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not rule["minimum"] <= value <= rule["maximum"]:
            raise _Refused(400, "BAD_REQUEST", f"{name} is a whole number from {rule['minimum']} to {rule['maximum']}")
        return value
    if not isinstance(value, str):
        raise _Refused(400, "BAD_REQUEST", f"{name} is a text")
    if "pattern" in rule and not re.fullmatch(rule["pattern"][1:-1], value):
        what = "hex" if rule["pattern"] == _HEX_PATTERN else "1..64 letters, digits and . _ : -"
        raise _Refused(400, "BAD_REQUEST", f"{name} is {what}")
    if len(value) > rule.get("maxLength", len(value)):
        raise _Refused(400, "BAD_REQUEST", f"{name} is at most {rule['maxLength']} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refused(400, "BAD_REQUEST", f"{name} is not valid Unicode text") from None
    return value


def wallet_view(record: dict[str, Any]) -> dict[str, Any]:
    """What a holder sees of their wallet (the contract's ``wallet`` query, without the AML flags,
    the KYC link and the day counters)."""
    return {"wallet": record["id"], "operator": record["operator"], "kind": record["kind"], "tier": record["tier"],
            "status": record["status"], "balance": record["balance"], "held": record["held"],
            "envelopes": dict(record["envelopes"]), "total": record["total"], "today": record["today"],
            "limits": {name: record["limits"][name] for name in ("balance_max", "payment_max", "daily_max",
                                                                  "annual_max")},
            "left": dict(record["left"]), "seq": record["seq"], "public_key": bytes(record["key"]).hex(),
            "opened_ms": record["opened_ms"]}


def _operator_checks(record: dict[str, Any], amount: int, kyc_required: bool) -> None:
    """The operator's own checks before it carries a payment (the contract checks them again,
    atomically with the payment): KYC, the wallet's status, its limits today and this year."""
    from pilotchain.apps.currency.story import yuan

    wallet = record["id"]
    if record["status"] != "active":
        raise _Refused(409, "REFUSED", f"wallet {wallet} is {record['status']}: it cannot pay (ask your operator)")
    if kyc_required and not record.get("kyc"):
        raise _Refused(409, "REFUSED", f"wallet {wallet} has no KYC record at {record['operator']}: complete your "
                                       "identity check with your operator before paying")
    left, limits = record["left"], record["limits"]
    if left["payment"] is not None and amount > left["payment"]:
        raise _Refused(409, "REFUSED", f"{yuan(amount)} is above wallet {wallet}'s single-payment limit "
                                       f"{yuan(left['payment'])}; nothing was paid")
    if left["daily"] is not None and amount > left["daily"]:
        raise _Refused(409, "REFUSED", f"wallet {wallet} has {yuan(left['daily'])} left of its daily limit "
                                       f"{yuan(limits['daily_max'])} today ({record['today']}, Asia/Shanghai); "
                                       "nothing was paid")
    if left["annual"] is not None and amount > left["annual"]:
        raise _Refused(409, "REFUSED", f"wallet {wallet} has {yuan(left['annual'])} left of its annual limit "
                                       f"{yuan(limits['annual_max'])} this year; nothing was paid")


_STATUS_OF_CONTRACT_CODE = {"BAD_ARGUMENTS": 400, "PERMISSION_DENIED": 403}


def _refusal_of(exc: CurrencyError) -> _Refused:
    status = _STATUS_OF_CONTRACT_CODE.get(exc.code, 409)
    return _Refused(status, "REFUSED" if status == 409 else exc.code, f"the contract refused: {exc.message}")


# ------------------------------------------------------------------------------ the service

class PaymentBatcher:
    """The operator's front end for payments: instructions that arrive within ``window_s`` of the
    first waiting one (or ``batch_max`` of them) go to the chain as one ``pay_batch`` transaction
    the operator signs; each caller gets its own payment's answer — the payment, or its refusal as
    the :class:`CurrencyError` a ``pay`` alone would raise (a refused one changes nothing and stops
    no other). A failure of the whole submission (timeout, node unreachable) reaches every caller
    of the batch. Thread-safe: the service's request threads call :meth:`pay` concurrently."""

    def __init__(self, submit_batch: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], *, window_s: float,
                 batch_max: int = 100, on_batch: Callable[[int], None] | None = None) -> None:
        if window_s <= 0 or not 1 <= batch_max <= 200:
            raise ValueError("a batch waits a positive time and carries 1..200 payments")
        self.submit_batch = submit_batch
        self.window_s = window_s
        self.batch_max = batch_max
        self.on_batch = on_batch
        self._lock = threading.Lock()
        self._waiting: list[tuple[dict[str, Any], concurrent.futures.Future[dict[str, Any]]]] = []
        self._timer: threading.Timer | None = None

    def pay(self, args: dict[str, Any]) -> dict[str, Any]:
        """Submit one signed ``pay`` instruction with the others waiting; its committed payment."""
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        with self._lock:
            self._waiting.append((args, future))
            full = self._take() if len(self._waiting) >= self.batch_max else None
            if full is None and self._timer is None:
                self._timer = threading.Timer(self.window_s, self._flush)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self._submit(full)
        return future.result()

    def _take(self) -> list[tuple[dict[str, Any], concurrent.futures.Future[dict[str, Any]]]]:
        batch, self._waiting = self._waiting, []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return batch

    def _flush(self) -> None:
        with self._lock:
            batch = self._take()
        if batch:
            self._submit(batch)

    def _submit(self, batch: list[tuple[dict[str, Any], concurrent.futures.Future[dict[str, Any]]]]) -> None:
        if self.on_batch is not None:
            self.on_batch(len(batch))
        try:
            results = self.submit_batch([args for args, _ in batch])
            if len(results) != len(batch):
                raise CurrencyError("EXECUTION_FAILED", f"{len(results)} answers for {len(batch)} payments")
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch gets the failure
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, results, strict=True):
            if outcome.get("ok"):
                future.set_result(outcome["payment"])
            else:
                future.set_exception(CurrencyError(str(outcome.get("code")), str(outcome.get("message"))))


class _Settings:
    """The contract's configuration, read again at most every ``ttl_s`` seconds."""

    def __init__(self, currency: CurrencyClient, ttl_s: float = 30.0) -> None:
        self.currency = currency
        self.ttl_s = ttl_s
        self._value: dict[str, Any] | None = None
        self._read_s = 0.0

    def get(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._value is None or now - self._read_s > self.ttl_s:
            self._value, self._read_s = self.currency.config(), now
        return self._value


def create_holder_app(currency: CurrencyClient, suite_name: str, *, clock_ms: Callable[[], int] | None = None,
                      clock_s: Callable[[], float] = time.time,
                      maintenance_interval_s: float | None = MAINTENANCE_INTERVAL_S,
                      metrics_open: Callable[["Scope"], bool] | None = None,
                      batch_window_ms: int = BATCH_WINDOW_MS) -> "FastAPI":
    """The holder service of ``currency``'s operator (its identity signs every transaction).

    ``clock_ms``: the keeper's clock (the service's, by default); ``clock_s``: the clock request
    signatures are checked against; ``maintenance_interval_s``: seconds between the background
    passes (follow the chain, sweep ended campaigns), run while the app is served (None: none,
    a test drives ``app.state.follower`` and ``app.state.keeper``); ``metrics_open``: who reads
    ``/metrics`` unsigned (default: the service's own host, as the gateway's); ``batch_window_ms``:
    payments that arrive this close together go to the chain as one ``pay_batch`` transaction
    (:class:`PaymentBatcher`; 0: one ``pay`` transaction each)."""
    import contextlib
    from collections.abc import AsyncIterator

    from fastapi import FastAPI, Path, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from pilotchain import __version__
    from pilotchain.crypto import get_suite
    from pilotchain.gateway._auth import _is_loopback
    from pilotchain.gateway._middleware import JsonErrorMiddleware
    from pilotchain.gateway.app import without_validation_error
    from pilotchain.sdk import TimeoutError as SdkTimeout

    org = currency.identity.org
    suite = get_suite(suite_name)
    metrics = HolderMetrics()
    follower = ChainFollower(currency, org, metrics=metrics)
    keeper = EnvelopeKeeper(currency, follower, clock_ms=clock_ms, metrics=metrics)
    maintenance = Maintenance(follower, keeper, maintenance_interval_s) if maintenance_interval_s is not None else None
    settings = _Settings(currency)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if maintenance is not None:
            maintenance.start()
        try:
            yield
        finally:
            if maintenance is not None:
                maintenance.stop()

    app = FastAPI(title=f"pilotchain currency: {org}'s holder service", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description=f"{org}'s wallet holders read their wallets and instruct payments here; every request "
                              "is signed with the wallet's own key (HTTP Message Signatures, RFC 9421: label "
                              f"{SIGNATURE_LABEL!r}, tag {SIGNATURE_TAG!r}, keyid the wallet id). docs/currency.md.")
    app.state.follower, app.state.keeper, app.state.metrics, app.state.maintenance = (follower, keeper, metrics,
                                                                                      maintenance)

    @app.exception_handler(_Refused)
    async def _refused(_request: Request, exc: _Refused) -> JSONResponse:
        metrics.refusals.labels(reason=exc.code).inc()
        return _error_json(exc.status, exc.code, exc.message, exc.headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
        message = "no such endpoint; see /openapi.json" if exc.status_code == 404 else str(exc.detail)
        return _error_json(exc.status_code, code, message, dict(exc.headers or {}) or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return _error_json(400, "BAD_REQUEST", problems or "invalid request")

    generated_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            without_validation_error(generated_openapi())
        return app.openapi_schema or generated_openapi()

    app.openapi = openapi  # type: ignore[method-assign]

    def holder(request: Request) -> dict[str, Any]:
        record: dict[str, Any] = request.scope[WALLET_SCOPE_KEY]
        return record

    def instruction(request: Request, schema: dict[str, Any]) -> dict[str, Any]:
        return _fields(request.scope[_BODY_SCOPE_KEY], schema)

    def signed_by_holder(record: dict[str, Any], kind: str, seq: int, fields: list[object], signature: str) -> bytes:
        """The instruction's signature bytes once they verify with the wallet's key over a new seq."""
        text = statement(currency.chain_id, kind, record["id"], seq, fields)
        signature_bytes = bytes.fromhex(signature)
        if not suite.public_key(bytes(record["key"])).verify(text.encode("utf-8"), signature_bytes):
            raise _Refused(403, "PERMISSION_DENIED", f"the instruction's signature does not verify with wallet "
                           f"{record['id']}'s key: sign the statement {text!r} with it")
        if seq <= record["seq"]:
            raise _Refused(409, "REFUSED", f"seq {seq} is not above {record['seq']}, the wallet's last accepted "
                           "instruction: sign it again with a new seq")
        return signature_bytes

    def submitted(method: str, args: dict[str, Any], through: PaymentBatcher | None = None) -> dict[str, Any]:
        try:
            result: dict[str, Any] = currency.submit(method, args) if through is None else through.pay(args)
        except CurrencyError as exc:
            metrics.submissions.labels(method=method, outcome="refused").inc()
            raise _refusal_of(exc) from None
        except SdkTimeout as exc:
            metrics.submissions.labels(method=method, outcome="timeout").inc()
            raise _Refused(504, "TIMEOUT", f"{exc}; ask again with the same client_key: it is paid at most once") \
                from None
        except PilotchainError as exc:
            metrics.submissions.labels(method=method, outcome="unavailable").inc()
            raise _Refused(503, "UNAVAILABLE", f"the chain did not take the instruction ({exc}); retry with the same "
                           "client_key", {"Retry-After": "2"}) from None
        metrics.submissions.labels(method=method, outcome="committed").inc()
        _log.info("%s for wallet %s committed", method, args.get("wallet") or args.get("payer"))
        return result

    batcher = (PaymentBatcher(currency.pay_batch, window_s=batch_window_ms / 1000,
                              on_batch=metrics.batch_payments.observe) if batch_window_ms > 0 else None)
    app.state.batcher = batcher

    def chain_read(read: Callable[[], Any]) -> Any:
        try:
            return read()
        except PilotchainError as exc:
            raise _Refused(503, "UNAVAILABLE", f"the chain cannot be read now ({exc}); retry shortly",
                           {"Retry-After": "2"}) from None

    wallet_path = Annotated[str, Path(pattern=_ID_PATTERN, description="the wallet id (the signature's keyid)")]

    @app.get("/healthz", summary="Liveness: 200 while the operator's node answers, else 503 with the reason",
             responses={200: {"description": "serving", "content": {"application/json": {"schema": _HEALTH_SCHEMA}}},
                        503: {"description": "the node does not answer",
                              "content": {"application/json": {"schema": _HEALTH_SCHEMA}}}})
    def healthz() -> JSONResponse:
        try:
            info = currency.client.status()
        except PilotchainError as exc:
            return JSONResponse({"ok": False, "org": org, "reason": f"the node does not answer: {exc}"},
                                status_code=503)
        return JSONResponse({"ok": True, "org": org, "chain_id": info.chain_id, "suite": info.suite,
                             "height": info.height, "read": follower.height})

    @app.get("/metrics", summary="Prometheus text: requests by endpoint and status, submissions, refusals, the "
                                 "keeper (the service's own host only)", response_class=Response,
             responses={200: {"description": "the metrics",
                              "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
                        **{k: v for k, v in _responses({}, 401, 500).items() if k != 200}})
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/wallets/{wallet_id}", summary="The wallet: balance, red envelopes, held value, status, tier, and "
                                                "what is left of its limits today and this year (Asia/Shanghai)",
             responses=_responses(_WALLET_SCHEMA, 400, *_SIGNED))
    def get_wallet(wallet_id: wallet_path, request: Request) -> JSONResponse:
        return JSONResponse(wallet_view(holder(request)))

    @app.get("/v1/wallets/{wallet_id}/history", summary="The wallet's movements (own funds, red envelopes, held "
                                                        "value), oldest first, paged by movement number",
             responses=_responses(_HISTORY_SCHEMA, 400, *_SIGNED))
    def get_history(wallet_id: wallet_path, request: Request,
                    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="movements numbered above this")] = 0,
                    limit: Annotated[int, Query(ge=1, le=HISTORY_PAGE_MAX)] = HISTORY_PAGE) -> JSONResponse:
        holder(request)
        if not chain_read(lambda: follower.sync()):
            raise _Refused(503, "UNAVAILABLE", f"the service is still reading the chain (block {follower.height} of "
                           f"{follower.head}); retry shortly", {"Retry-After": "2"})
        rows, following = follower.history(wallet_id, after, limit)
        return JSONResponse({"wallet": wallet_id, "movements": [_movement_json(m) for m in rows], "next": following,
                             "height": follower.height})

    @app.post("/v1/wallets/{wallet_id}/payments",
              summary="Pay: an instruction the wallet's key signed; the operator checks KYC, status and limits and "
                      "submits it (with the payments that arrived with it: currency.pay_batch) in a transaction it "
                      "signs. Idempotent by client_key: the same key again answers the first payment",
              responses=_responses(_PAYMENT_SCHEMA, 400, 409, 504, *_SIGNED), openapi_extra=_body(_PAY_BODY))
    def pay(wallet_id: wallet_path, request: Request) -> JSONResponse:
        record = holder(request)
        fields = instruction(request, _PAY_BODY)
        done = chain_read(lambda: currency.payment(f"{wallet_id}:{fields['client_key']}"))
        if done is not None:
            metrics.submissions.labels(method="pay", outcome="replayed").inc()
            return JSONResponse({**done, "replayed": True})
        signature = signed_by_holder(record, "pay", fields["seq"],
                                     [fields["payee"], fields["amount"], fields["client_key"]], fields["signature"])
        _operator_checks(record, fields["amount"], bool(chain_read(settings.get).get("kyc_required")))
        result = submitted("pay", {"payer": wallet_id, "payee": fields["payee"], "amount": fields["amount"],
                                   "client_key": fields["client_key"], "seq": fields["seq"], "signature": signature,
                                   "memo": fields.get("memo", "")}, batcher)
        return JSONResponse({**result, "replayed": False})

    @app.post("/v1/wallets/{wallet_id}/requests",
              summary="A payment request to this wallet, to show as text or a QR code (what `currency wallet "
                      "request` prints)",
              responses=_responses(_REQUEST_SCHEMA, 400, *_SIGNED), openapi_extra=_body(_REQUEST_BODY))
    def request_payment(wallet_id: wallet_path, request: Request) -> JSONResponse:
        holder(request)
        fields = instruction(request, _REQUEST_BODY)
        memo = fields.get("memo", "")
        return JSONResponse({"request": payment_request(wallet_id, fields["amount"], memo), "to": wallet_id,
                             "amount": fields["amount"], "memo": memo})

    @app.post("/v1/wallets/{wallet_id}/unload",
              summary="Back to a deposit at the operator: an instruction the wallet's key signed (own funds only: "
                      "red envelopes are not redeemable)",
              responses=_responses(_UNLOAD_SCHEMA, 400, 409, 504, *_SIGNED), openapi_extra=_body(_UNLOAD_BODY))
    def unload(wallet_id: wallet_path, request: Request) -> JSONResponse:
        record = holder(request)
        fields = instruction(request, _UNLOAD_BODY)
        signature = signed_by_holder(record, "unload", fields["seq"], [fields["amount"], fields["client_key"]],
                                     fields["signature"])
        if record["status"] in ("frozen", "closed"):
            raise _Refused(409, "REFUSED", f"wallet {wallet_id} is {record['status']}: nothing can leave it")
        result = submitted("unload", {"wallet": wallet_id, "amount": fields["amount"],
                                      "client_key": fields["client_key"], "seq": fields["seq"],
                                      "signature": signature})
        return JSONResponse(result)

    authenticator = HolderAuthenticator(currency, org, suite_name, clock_s=clock_s)
    app.add_middleware(_SignedByHolder, authenticator=authenticator, metrics=metrics,
                       metrics_open=metrics_open or _is_loopback)
    app.add_middleware(_Metered, metrics=metrics, routes=lambda: list(app.routes))
    app.add_middleware(JsonErrorMiddleware)
    return app


def serve(directory: Path, org: str, *, port: int, host: str = "127.0.0.1", identity: Path | None = None,
          interval_s: float = MAINTENANCE_INTERVAL_S, batch_window_ms: int = BATCH_WINDOW_MS) -> None:
    """Serve ``org``'s holder service until interrupted (``currency holders serve``)."""
    import uvicorn

    from pilotchain.apps.currency.network import load_profile
    from pilotchain.apps.explorer.cli import connect
    from pilotchain.network.consortium import load_manifest

    operators = load_profile(directory)["operators"]
    if org not in operators:
        raise HolderError(2, "BAD_REQUEST", f"{org} is not an operator of this currency network (its operators: "
                                            f"{', '.join(operators)})")
    client, node_url = connect(directory, org, identity)
    currency = CurrencyClient(client, client.identity)  # type: ignore[arg-type]
    try:
        if currency.operator(org) is None:
            raise HolderError(1, "NOT_AUTHORISED", f"{org} is not an authorised operator on the chain yet: found the "
                                                  f"network first (`pilotchain network up --dir {directory}`)")
    except PilotchainError as exc:
        raise HolderError(3, "UNREACHABLE", f"{org}'s node at {node_url} does not answer ({exc}); is the network up "
                                            f"(`pilotchain network up --dir {directory}`)?") from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_holder_app(currency, str(load_manifest(directory)["suite"]), maintenance_interval_s=interval_s,
                            batch_window_ms=batch_window_ms)
    _log.info("%s's holder service at http://%s:%d/ (node %s)", org, host, port, node_url)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        client.close()


# ------------------------------------------------------------------------------ beside `network up`

HOLDERS_FOLDER = "holders"
CONFIG_FILE = "holders.json"
PID_FILE = "holders.pid"
LOG_FILE = "holders.log"
#: the first port tried for the holder services (one per operator, consecutive free ports)
HOLDERS_PORT_BASE = 27700
START_TIMEOUT_S = 60.0


_PROCESSES = OrgHttpServices(label="holder service", row_name="holders", config_file=CONFIG_FILE,
                             pid_file=PID_FILE, log_file=LOG_FILE, port_base=HOLDERS_PORT_BASE,
                             start_timeout_s=START_TIMEOUT_S)


def holder_homes(directory: Path) -> dict[str, Path]:
    """Each operator's holder service folder in a currency network folder (``holders/<org>``)."""
    from pilotchain.apps.currency.network import load_profile

    return {org: directory / HOLDERS_FOLDER / org for org in load_profile(directory)["operators"]}


def service_url(home: Path) -> str:
    return _PROCESSES.url(home)


def start_services(directory: Path, console: Any) -> None:
    """Start one holder service per operator (``network up`` of a currency network)."""
    import sys

    network = str(directory.resolve())
    _PROCESSES.up(holder_homes(directory), lambda org, port: (
        sys.executable, "-m", "pilotchain", "currency", "holders", "serve", "--network", network, "--org", org,
        "--port", str(port)), console)


def stop_services(directory: Path, console: Any) -> None:
    _PROCESSES.down(holder_homes(directory), console)


def service_rows(directory: Path) -> list[dict[str, Any]]:
    """``network status`` rows: each operator's holder service."""
    return _PROCESSES.status(holder_homes(directory))


# ------------------------------------------------------------------------------ the CLI

holders_app = typer.Typer(help="An operator's REST service for its wallet holders (and the red-envelope keeper).",
                          no_args_is_help=True)
holder_app = typer.Typer(help="A holder's wallet through the operator's holder service: the wallet's own key signs "
                              "every request and every instruction.", no_args_is_help=True)

ServiceOption = Annotated[str, typer.Option("--service", envvar="PILOTCHAIN_HOLDER_SERVICE",
                                            help="The holder service's URL (your operator gives it).")]
WalletOption = Annotated[str, typer.Option("--wallet", envvar="PILOTCHAIN_WALLET", help="Your wallet id.")]
HolderKeyOption = Annotated[Path, typer.Option("--key", help="Your wallet's key file (currency wallet keygen).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@holders_app.command("serve")
def serve_command(
    network: Annotated[Path, typer.Option("--network", envvar="PILOTCHAIN_NETWORK", help="A currency network folder.")],
    org: Annotated[str, typer.Option("--org", help="The operator whose holders this serves.")],
    port: Annotated[int, typer.Option("--port", help="The port to serve on.")] = HOLDERS_PORT_BASE,
    host: Annotated[str, typer.Option("--host", help="The address to serve on (default: this machine only).")]
    = "127.0.0.1",
    identity: Annotated[Path | None, typer.Option("--identity", "-i", help="Sign as this identity file instead of "
                                                  "the operator's client identity.")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between passes of the chain follower and the keeper.")]
    = MAINTENANCE_INTERVAL_S,
    batch_window_ms: Annotated[int, typer.Option("--batch-window-ms", min=0, max=2_000,
                                                 help="Payments arriving this close together go to the chain in "
                                                      "one pay_batch transaction (0: one transaction each).")]
    = BATCH_WINDOW_MS,
) -> None:
    """Serve ORG's wallet holders until interrupted: their wallets, history, payments and unloads,
    every request signed with the wallet's own key; expired red envelopes go back to their funders."""
    try:
        serve(network, org, port=port, host=host, identity=identity, interval_s=interval,
              batch_window_ms=batch_window_ms)
    except HolderError as exc:
        _fail(exc.message, exc.status if exc.status in (1, 2, 3) else 1)


def _print(text: str) -> None:
    from rich.console import Console

    Console().print(text)


def _fail(message: str, code: int = 1) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def _holder(service: str, wallet: str, key_path: Path) -> HolderClient:
    try:
        health = httpx.get(service.rstrip("/") + "/healthz", timeout=30.0).json()
        suite = str(health["suite"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        _fail(f"the holder service at {service} does not answer ({exc}); check the URL your operator gave you", 3)
        raise  # (unreachable: _fail exits)
    try:
        key = HolderKey.load(key_path, suite)
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the key {key_path}: {exc}", 2)
        raise
    try:
        return HolderClient(service, wallet, key, chain_id=str(health["chain_id"]))
    except StatementError as exc:
        _fail(str(exc), 2)
        raise


def _holder_call(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except HolderError as exc:
        _fail(f"{exc.message} ({exc.code})", 3 if exc.status in (502, 503, 504) else 1)
    except StatementError as exc:
        _fail(str(exc), 2)


def _dump(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _yuan(fen: int | None) -> str:
    from pilotchain.apps.currency.story import yuan

    return "no limit" if fen is None else yuan(fen)


@holder_app.command("show")
def holder_show(service: ServiceOption, wallet: WalletOption, key: HolderKeyOption, json_output: JsonOption = False
                ) -> None:
    """Balance, red envelopes, held value and what is left of the limits today (Asia/Shanghai)."""
    with _holder(service, wallet, key) as me:
        view = _holder_call(me.wallet)
    if json_output:
        _dump(view)
        return
    tier = f", tier {view['tier']}" if view["kind"] == "personal" else ""
    lines = [f"wallet {view['wallet']} ({view['kind']}{tier}, {view['status']}, operator {view['operator']})",
             f"  balance (own funds)       {_yuan(view['balance'])}"]
    lines += [f"  red envelope {campaign:<12} {_yuan(value)}" for campaign, value in view["envelopes"].items()]
    lines += [f"  held (escrow, holds)      {_yuan(view['held'])}",
              f"  left today ({view['today']}) {_yuan(view['left']['daily'])}",
              f"  left this year            {_yuan(view['left']['annual'])}",
              f"  single payment up to      {_yuan(view['left']['payment'])}"]
    _print("\n".join(lines))


@holder_app.command("history")
def holder_history(service: ServiceOption, wallet: WalletOption, key: HolderKeyOption,
                   json_output: JsonOption = False) -> None:
    """Every movement in or out of the wallet."""
    with _holder(service, wallet, key) as me:
        rows = _holder_call(me.history_all)
    if json_output:
        _dump(rows)
        return
    _print("\n".join([f"history of {wallet}"] + [f"  #{m['n']:<6} block {m['height']:<6} {m['kind']:<16} "
                                                   f"{m['from']} -> {m['to']}  {_yuan(m['amount'])}" for m in rows]))


@holder_app.command("pay")
def holder_pay(
    service: ServiceOption, wallet: WalletOption, key: HolderKeyOption,
    payee: Annotated[str | None, typer.Option("--to", help="The payee's wallet.")] = None,
    amount: Annotated[str | None, typer.Argument(help="Yuan, e.g. 38.50.")] = None,
    request: Annotated[str | None, typer.Option(help="A payment request (currency wallet request) instead.")] = None,
    client_key: Annotated[str | None, typer.Option(help="An idempotency key: resubmitting it pays once.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Pay: your key signs the instruction here; your operator's service checks and submits it."""
    from pilotchain.apps.currency.cli import parse_yuan

    memo = ""
    if request is not None:
        payee, fen, memo = _holder_call(lambda: read_payment_request(request))
    elif payee is None or amount is None:
        _fail("pay --to WALLET AMOUNT, or --request REQUEST", 2)
        return
    else:
        fen = parse_yuan(amount)
    with _holder(service, wallet, key) as me:
        result = _holder_call(lambda: me.pay(str(payee), fen, client_key, memo))
    if json_output:
        _dump(result)
        return
    again = " (already paid with this client key: the same payment)" if result["replayed"] else ""
    _print(f"paid {_yuan(result['amount'])} to {result['payee']} ({_yuan(result['envelopes'])} from red envelopes); "
           f"payment {result['id']}{again}")


@holder_app.command("unload")
def holder_unload(service: ServiceOption, wallet: WalletOption, key: HolderKeyOption,
                  amount: Annotated[str, typer.Argument(help="Yuan.")], json_output: JsonOption = False) -> None:
    """Back to a deposit at your operator."""
    from pilotchain.apps.currency.cli import parse_yuan

    with _holder(service, wallet, key) as me:
        result = _holder_call(lambda: me.unload(parse_yuan(amount)))
    if json_output:
        _dump(result)
        return
    _print(f"{wallet}: balance {_yuan(result['balance'])}")

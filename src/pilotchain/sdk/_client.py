"""Client (sync) and AsyncClient over httpx, with one shared, I/O-free core.

The core (:class:`_Core`) turns each call into a request description and each response into a
result or an error; the two clients only send. httpx errors are translated at the send with
``raise ... from exc``.

A client pinned to a chain (``network=``, ``expected_genesis=``, ``expected_chain_id=``, or
``$PILOTCHAIN_NETWORK``; see :mod:`pilotchain.sdk._network`) reads ``/v1/status`` once before its
first request and raises :class:`WrongNetwork` if the gateway serves another chain.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pilotchain.codec import encode
from pilotchain.crypto import Suite, UnsupportedSuite, get_suite
from pilotchain.ledger.tx import RejectCode
from pilotchain.sdk._errors import (
    ApiError,
    NetworkFileError,
    NotFound,
    PilotchainError,
    ResponseError,
    TimeoutError,
    TransportError,
    TxRejectedError,
    Unavailable,
    WrongNetwork,
)
from pilotchain.sdk._identity import Identity
from pilotchain.sdk._models import (
    BlockInfo,
    ChainEvent,
    HeaderVerifier,
    NodeInfo,
    StateValue,
    TxResult,
)
from pilotchain.sdk._network import NETWORK_ENV, NetworkPin, folder_identity, load_network, pin_of
from pilotchain.sdk._signing import SignedRequests
from pilotchain.sdk._sse import SseDecoder, SseMessage
from pilotchain.sdk._tx import DEFAULT_EXPIRES_IN_MS, SignedTransaction, build_transaction
from pilotchain.sdk.wire import WireError, b64, from_tagged_json, to_tagged_json

__all__ = ["Client", "AsyncClient", "DEFAULT_NODE_URL", "NODE_URL_ENV", "default_node_url", "resolve_pin"]

DEFAULT_NODE_URL = "http://127.0.0.1:26601"
NODE_URL_ENV = "PILOTCHAIN_NODE"
DEFAULT_TIMEOUT_S = 10.0
#: Waiting for a commit polls the transaction this often at first, backing off to the max.
POLL_INTERVAL_S = 0.05
POLL_INTERVAL_S_MAX = 1.0
#: An event stream with no bytes (not even a keep-alive) for this long is considered dead.
STREAM_IDLE_S_MAX = 60.0

_REJECT_CODES = frozenset(code.value for code in RejectCode)


def default_node_url() -> str:
    """``$PILOTCHAIN_NODE`` or http://127.0.0.1:26601."""
    return os.environ.get(NODE_URL_ENV) or DEFAULT_NODE_URL


NetworkSpec = str | os.PathLike[str] | NetworkPin


def resolve_pin(
    base_url: str | None,
    network: NetworkSpec | None,
    expected_genesis: str | None,
    expected_chain_id: str | None,
) -> tuple[str, NetworkPin | None]:
    """The gateway URL and the pin a client gets from its arguments.

    URL: ``base_url``, else ``$PILOTCHAIN_NODE``, else the network's first gateway, else the
    default. Pin: ``network`` (a folder, a network.json or a :class:`NetworkPin`; without any pin
    argument and without ``base_url``, ``$PILOTCHAIN_NETWORK``), narrowed by ``expected_genesis``
    / ``expected_chain_id``, which must agree with it."""
    if network is None and base_url is None and expected_genesis is None and expected_chain_id is None:
        network = os.environ.get(NETWORK_ENV) or None
    pin = network if isinstance(network, NetworkPin) else load_network(network) if network is not None else None
    if expected_genesis is not None or expected_chain_id is not None:
        explicit = pin_of(expected_genesis, expected_chain_id)
        if pin is None:
            pin = explicit
        else:
            for mine, theirs, what in (
                (pin.genesis_hash, explicit.genesis_hash, "genesis hash"),
                (pin.chain_id, explicit.chain_id, "chain id"),
            ):
                if mine is not None and theirs is not None and mine != theirs:
                    raise PilotchainError(f"the expected {what} {theirs} contradicts {pin.source} ({mine})")
            pin = NetworkPin(
                genesis_hash=pin.genesis_hash or explicit.genesis_hash,
                chain_id=pin.chain_id or explicit.chain_id,
                source=pin.source,
                gateway_urls=pin.gateway_urls,
                tls_ca=pin.tls_ca,
            )
    url = base_url or os.environ.get(NODE_URL_ENV) or (pin.gateway_urls[0] if pin and pin.gateway_urls else None)
    return url or DEFAULT_NODE_URL, pin


@dataclass
class _Request:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: sign this request as this identity instead of the client's (a query as a given caller)
    signer: Identity | None = None


def _raw_of(tx: bytes | SignedTransaction) -> bytes:
    return tx.raw if isinstance(tx, SignedTransaction) else bytes(tx)


def _key_bytes(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else bytes(key)


class _Core:
    """Everything both clients share that does no I/O."""

    def __init__(
        self,
        base_url: str,
        verify: bool,
        verify_header: HeaderVerifier | None,
        pin: NetworkPin | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.verify = verify
        self.verify_header = verify_header
        self.node_info: NodeInfo | None = None
        self.pin = pin
        #: True once the gateway's status matched the pin (or when there is no pin)
        self.pinned = pin is None

    def check_pin(self, info: NodeInfo) -> NodeInfo:
        """``info`` if the gateway serves the pinned chain; WrongNetwork otherwise."""
        self.check_identity(info.chain_id, info.genesis_hash, info.node)
        return info

    def check_health(self, response: httpx.Response) -> bool:
        """``/healthz`` is open (no signature) and names the chain the gateway serves, so a pinned
        client learns it is talking to a stranger before it sends a signed request. True when the open health answer carried the chain's identity and it matched (else
        WrongNetwork); False when it did not say (an older gateway: check the status instead)."""
        try:
            document = response.json()
        except ValueError:
            return False
        if not isinstance(document, dict) or not isinstance(document.get("genesis_hash"), str):
            return False
        self.check_identity(str(document.get("chain_id", "")), document["genesis_hash"], "?")
        return True

    def check_identity(self, chain_id: str, genesis: str, node: str) -> None:
        pin = self.pin
        if pin is None or self.pinned:
            return
        if pin.genesis_hash is not None and genesis.lower() != pin.genesis_hash:
            expected, found, what = pin.genesis_hash, genesis.lower(), "genesis"
        elif pin.chain_id is not None and chain_id != pin.chain_id:
            expected, found, what = pin.chain_id, chain_id, "chain id"
        else:
            self.pinned = True
            return
        raise WrongNetwork(
            self.base_url,
            expected,
            found,
            f"{self.base_url} serves another network: {what} {found[:16]}… (chain {chain_id!r}, "
            f"node {node!r}), expected {expected[:16]}… from {pin.source}; nothing was sent to it. "
            "Another network may hold these ports: point --node at this network's gateway "
            "(`pilotchain network status --dir DIR` lists them) or restart it on free ports "
            "(`pilotchain network init --base-port N`)",
        )

    # -- errors -------------------------------------------------------------------------------------

    def transport_error(self, exc: httpx.HTTPError) -> PilotchainError:
        if isinstance(exc, httpx.TimeoutException):
            return TransportError(
                f"{self.base_url} did not answer in time ({type(exc).__name__}); "
                "is the node overloaded? retry or raise the timeout"
            )
        return TransportError(
            f"cannot reach {self.base_url}: {exc or type(exc).__name__}; is the node running? "
            "try `pilotchain network status`"
        )

    def check(self, response: httpx.Response) -> Any:
        """The JSON body of a successful response; the right error otherwise."""
        if response.status_code < 400:
            try:
                return response.json()
            except ValueError as exc:
                raise ResponseError(
                    f"{self.base_url} answered non-JSON ({response.headers.get('content-type')}); "
                    "is this a pilotchain gateway URL?"
                ) from exc
        try:
            document = response.json()
            code, message = str(document["code"]), str(document["message"])
        except (ValueError, KeyError, TypeError):
            document = {}
            code, message = (
                f"HTTP_{response.status_code}",
                response.text[:200] or response.reason_phrase,
            )
        if response.status_code == 404:
            raise NotFound(404, code, message)
        if code in _REJECT_CODES:
            raise TxRejectedError(code, message, document.get("tx_id"))
        if response.status_code in (429, 503):
            raise Unavailable(response.status_code, code, message)
        raise ApiError(response.status_code, code, message)

    def suite_of(self, info: NodeInfo) -> Suite:
        try:
            return get_suite(info.suite)
        except UnsupportedSuite as exc:
            raise ResponseError(
                f"the node uses crypto suite {info.suite!r}, which this SDK does not know"
            ) from exc

    # -- requests -----------------------------------------------------------------------------------

    @staticmethod
    def submit_many_request(txs: Iterable[bytes | SignedTransaction]) -> _Request:
        return _Request(
            "POST",
            "/v1/txs/batch",
            content=encode([_raw_of(tx) for tx in txs]),
            headers={"content-type": "application/octet-stream"},
        )

    @staticmethod
    def submit_request(tx: bytes | SignedTransaction) -> _Request:
        return _Request(
            "POST",
            "/v1/txs",
            content=_raw_of(tx),
            headers={"content-type": "application/octet-stream"},
        )

    @staticmethod
    def tx_request(tx_id: str) -> _Request:
        return _Request("GET", f"/v1/txs/{tx_id}")

    @staticmethod
    def block_request(height: int | str) -> _Request:
        if isinstance(height, str) and height != "latest":
            raise ValueError("height is a non-negative integer or 'latest'")
        return _Request("GET", f"/v1/blocks/{height}")

    @staticmethod
    def state_request(contract: str, key: bytes, min_height: int | None = None) -> _Request:
        params = {"key": b64(key).replace("+", "-").replace("/", "_")}
        if min_height is not None:
            params["min_height"] = str(min_height)
        return _Request("GET", f"/v1/state/{contract}", params=params)

    @staticmethod
    def query_request(contract: str, method: str, args: Any, caller: Identity | None) -> _Request:
        try:
            # the query runs as whoever signs the request: the caller, else the client's identity
            document = {"args": to_tagged_json(args)}
        except WireError as exc:
            raise PilotchainError(f"query arguments cannot be sent: {exc}") from exc
        return _Request(
            "POST",
            f"/v1/query/{contract}/{method}",
            signer=caller,
            content=json.dumps(document).encode(),
            headers={"content-type": "application/json"},
        )

    @staticmethod
    def events_params(kinds: Iterable[str] | None, limit: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if kinds:
            params["kinds"] = ",".join(kinds)
        if limit is not None:
            params["limit"] = limit
        return params

    @staticmethod
    def event_of(message: SseMessage) -> ChainEvent | None:
        """The ChainEvent in ``message``; None for the closing message."""
        if message.event == "close":
            return None
        try:
            data = json.loads(message.data)
        except ValueError as exc:
            raise ResponseError(f"an event carried non-JSON data: {exc}") from exc
        height = int(message.id) if message.id and message.id.isdigit() else None
        return ChainEvent(kind=message.event, height=height, data=data)


def _query_result(document: Any) -> Any:
    try:
        return from_tagged_json(document["result"])
    except (KeyError, TypeError, WireError) as exc:
        raise ResponseError(f"not a query result: {exc}") from exc


def _batch_results(document: Any) -> list[str | TxRejectedError]:
    try:
        return [
            str(item["tx_id"]) if "code" not in item
            else TxRejectedError(str(item["code"]), str(item["message"]), item.get("tx_id"))
            for item in document["results"]
        ]
    except (KeyError, TypeError) as exc:
        raise ResponseError(f"not a batch submission answer: {exc}") from exc


def _check_min_height(value: StateValue, min_height: int | None) -> None:
    if min_height is not None and value.header.height < min_height:
        raise Unavailable(503, "BEHIND", f"the node answered from height {value.header.height}, below the "
                          f"min_height {min_height} asked for; retry, or read from another node")


def _accepted_id(document: Any) -> str:
    try:
        return str(document["tx_id"])
    except (KeyError, TypeError) as exc:
        raise ResponseError(f"not a submit answer: {exc}") from exc


class _Backoff:
    def __init__(self, timeout_s: float) -> None:
        self.deadline = time.monotonic() + timeout_s
        self.interval_s = POLL_INTERVAL_S

    def next_wait_s(self) -> float | None:
        """Seconds to wait before the next poll; None when the deadline has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            return None
        wait = min(self.interval_s, left)
        self.interval_s = min(self.interval_s * 1.5, POLL_INTERVAL_S_MAX)
        return wait


class Client:
    """A synchronous client for one node's gateway.

    ``transport`` replaces the network (e.g. :func:`pilotchain.testing.local_chain`'s
    in-process transport, or ``httpx.MockTransport``). With ``verify=True`` every proof is checked
    (see :mod:`pilotchain.sdk._models` for how far that trust goes); ``verify_header`` adds the
    light-client check of each header's commit certificate.

    Pinning: ``network`` (a folder made by ``pilotchain network init``, its network.json, or a
    :class:`NetworkPin`), ``expected_genesis`` (hex) and/or ``expected_chain_id`` — or
    ``$PILOTCHAIN_NETWORK`` when neither a URL nor a pin is given. A pinned client checks the
    gateway's genesis hash once, before its first request, and raises :class:`WrongNetwork` for a
    gateway of another chain. Without ``base_url`` it talks to ``$PILOTCHAIN_NODE``, else the
    network's first gateway, else http://127.0.0.1:26601.

    Signing: every request is signed as ``identity`` (else ``$PILOTCHAIN_IDENTITY``, else a
    ``network init`` folder's first client; an ``invoke`` adopts its identity when there is none):
    the gateway answers consortium members only. TLS: ``tls_ca`` (else ``$PILOTCHAIN_TLS_CA``, else
    the CA the network folder names) is the CA an https gateway's certificate must chain to."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        verify: bool = True,
        verify_header: HeaderVerifier | None = None,
        network: NetworkSpec | None = None,
        expected_genesis: str | None = None,
        expected_chain_id: str | None = None,
        identity: Identity | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
    ) -> None:
        url, pin = resolve_pin(base_url, network, expected_genesis, expected_chain_id)
        tls = self.tls_verify = _tls_verify(tls_ca, pin)
        self._core = _Core(url, verify, verify_header, pin)
        self._signer = _signer_for(identity, network)
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self._core.base_url, transport=transport, timeout=timeout, auth=self._signer, verify=tls
        )

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def pin(self) -> NetworkPin | None:
        """The chain this client is pinned to (None: any gateway is trusted to be the right one)."""
        return self._core.pin

    @property
    def identity(self) -> Identity | None:
        """Who this client's requests are signed as (None: unsigned until an invoke names one)."""
        return self._signer.identity if self._signer is not None else None

    def _adopt(self, identity: Identity) -> None:
        if self._signer is None:
            self._signer = SignedRequests(identity)
            self._http.auth = self._signer

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, request: _Request, *, pinned: bool = False) -> Any:
        if not (pinned or self._core.pinned):
            self._check_pin()
        try:
            response = self._http.request(
                request.method,
                request.path,
                params=request.params or None,
                content=request.content,
                headers=request.headers or None,
                auth=SignedRequests(request.signer) if request.signer is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise self._core.transport_error(exc) from exc
        return self._core.check(response)

    def _check_pin(self) -> None:
        """Before the first request of a pinned client: which chain does the gateway serve?"""
        try:
            response = self._http.get("/healthz", auth=None)
        except httpx.HTTPError as exc:
            raise self._core.transport_error(exc) from exc
        if not self._core.check_health(response):
            self._core.check_pin(NodeInfo.from_json(self._send(_Request("GET", "/v1/status"), pinned=True)))

    def _suite(self) -> Suite | None:
        if not self._core.verify:
            return None
        info = self._core.node_info or self.status()
        return self._core.suite_of(info)

    # -- reading ------------------------------------------------------------------------------------

    def status(self) -> NodeInfo:
        """The node's status; for a pinned client, WrongNetwork if it serves another chain."""
        if not self._core.pinned:
            self._check_pin()  # openly, before a signed request goes to what may be a stranger
        info = self._core.check_pin(NodeInfo.from_json(self._send(_Request("GET", "/v1/status"), pinned=True)))
        self._core.node_info = info
        return info

    def get_block(self, height: int | str = "latest") -> BlockInfo:
        document = self._send(self._core.block_request(height))
        return BlockInfo.from_json(document, self._suite(), self._core.verify_header)

    def get_tx(self, tx_id: str) -> TxResult:
        """The transaction's state; committed ones come with a verified proof. NotFound if unknown."""
        document = self._send(self._core.tx_request(tx_id))
        return TxResult.from_json(
            document, self._suite(), self._core.verify_header, expected_tx_id=tx_id
        )

    def read_state(self, contract: str, key: bytes | str, *, verify: bool = True,
                   min_height: int | None = None) -> StateValue:
        """``contract``'s raw state value at ``key`` with its proof (checked unless ``verify=False``).
        ``min_height``: read-your-writes — only state at that height or later (pass the height your
        write committed at); a node behind it answers 503 (:class:`Unavailable`, code ``BEHIND``:
        retry, or read from another node), and a read proven at a lower height is refused here too."""
        key_bytes = _key_bytes(key)
        document = self._send(self._core.state_request(contract, key_bytes, min_height))
        suite = self._suite() if verify else None
        value = StateValue.from_json(document, contract, key_bytes, suite, self._core.verify_header)
        _check_min_height(value, min_height)
        return value

    def query(
        self, contract: str, method: str, args: Any = None, *, caller: Identity | None = None
    ) -> Any:
        """A read-only call against the head state (no transaction, nothing to verify)."""
        return _query_result(self._send(self._core.query_request(contract, method, args, caller)))

    # -- writing ------------------------------------------------------------------------------------

    def submit(self, tx: bytes | SignedTransaction) -> str:
        """Hand a signed transaction to the node; its id (hex) once admitted to the mempool."""
        return _accepted_id(self._send(self._core.submit_request(tx)))

    def submit_many(self, txs: Iterable[bytes | SignedTransaction]) -> list[str | TxRejectedError]:
        """Hand many signed transactions to the node in one request (at most 5,000); one result
        each, in order: the id (hex) of an admitted one, or the TxRejectedError of a refused one."""
        return _batch_results(self._send(self._core.submit_many_request(txs)))

    def submit_and_wait(self, tx: bytes | SignedTransaction, timeout_s: float = 30.0) -> TxResult:
        """Submit and wait until committed (verified) — TxRejectedError if refused or dropped,
        TimeoutError after ``timeout_s``. A duplicate of a known transaction waits for it."""
        try:
            tx_id = self.submit(tx)
        except TxRejectedError as exc:
            if exc.code != RejectCode.DUPLICATE or exc.tx_id is None:
                raise
            tx_id = exc.tx_id
        return self.wait(tx_id, timeout_s)

    def wait(self, tx_id: str, timeout_s: float = 30.0) -> TxResult:
        """Poll until ``tx_id`` is committed or rejected (see :meth:`submit_and_wait`)."""
        backoff = _Backoff(timeout_s)
        while True:
            try:
                result = self.get_tx(tx_id)
            except NotFound:
                result = None
            if result is not None and result.rejected:
                result.raise_for_status()
            if result is not None and result.committed:
                return result
            wait_s = backoff.next_wait_s()
            if wait_s is None:
                raise TimeoutError(
                    f"transaction {tx_id} was not committed within {timeout_s} s; it may still "
                    f"commit: check with `pilotchain tx get {tx_id}`"
                )
            time.sleep(wait_s)

    def chain_id(self) -> str:
        return (self._core.node_info or self.status()).chain_id

    def invoke(
        self,
        identity: Identity,
        contract: str,
        method: str,
        args: Any = None,
        *,
        wait: bool = True,
        timeout_s: float = 30.0,
        check: bool = True,
        expires_in_ms: int = DEFAULT_EXPIRES_IN_MS,
    ) -> TxResult:
        """Build, sign, submit and (``wait``) wait for a call; ``check`` raises TxRejectedError when
        execution failed. Without ``wait`` the result is pending. A client without an identity of
        its own signs its requests as ``identity`` from then on."""
        self._adopt(identity)
        tx = build_transaction(
            identity, self.chain_id(), contract, method, args, expires_in_ms=expires_in_ms
        )
        if not wait:
            return TxResult(tx_id=self.submit(tx), state="pending")
        result = self.submit_and_wait(tx, timeout_s)
        return result.raise_for_status() if check else result

    # -- events -------------------------------------------------------------------------------------

    def subscribe(
        self, kinds: Iterable[str] | None = None, *, limit: int | None = None
    ) -> Iterator[ChainEvent]:
        """Events from now on ("block", "tx", "contract_event"); ends after ``limit`` events or when
        the node ends the stream."""
        if not self._core.pinned:
            self.status()
        params = self._core.events_params(kinds, limit)
        timeout = httpx.Timeout(self.timeout, read=STREAM_IDLE_S_MAX)
        decoder = SseDecoder()
        try:
            with self._http.stream("GET", "/v1/events", params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    self._core.check(response)
                for line in response.iter_lines():
                    message = decoder.decode(line)
                    if message is None:
                        continue
                    event = self._core.event_of(message)
                    if event is None:
                        return
                    yield event
        except httpx.HTTPError as exc:
            raise self._core.transport_error(exc) from exc


class AsyncClient:
    """The asynchronous twin of :class:`Client` (same methods, awaitable)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        verify: bool = True,
        verify_header: HeaderVerifier | None = None,
        network: NetworkSpec | None = None,
        expected_genesis: str | None = None,
        expected_chain_id: str | None = None,
        identity: Identity | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
    ) -> None:
        url, pin = resolve_pin(base_url, network, expected_genesis, expected_chain_id)
        tls = self.tls_verify = _tls_verify(tls_ca, pin)
        self._core = _Core(url, verify, verify_header, pin)
        self._signer = _signer_for(identity, network)
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self._core.base_url, transport=transport, timeout=timeout, auth=self._signer, verify=tls
        )

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def pin(self) -> NetworkPin | None:
        return self._core.pin

    @property
    def identity(self) -> Identity | None:
        return self._signer.identity if self._signer is not None else None

    def _adopt(self, identity: Identity) -> None:
        if self._signer is None:
            self._signer = SignedRequests(identity)
            self._http.auth = self._signer

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _send(self, request: _Request, *, pinned: bool = False) -> Any:
        if not (pinned or self._core.pinned):
            await self._check_pin()
        try:
            response = await self._http.request(
                request.method,
                request.path,
                params=request.params or None,
                content=request.content,
                headers=request.headers or None,
                auth=SignedRequests(request.signer) if request.signer is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise self._core.transport_error(exc) from exc
        return self._core.check(response)

    async def _check_pin(self) -> None:
        try:
            response = await self._http.get("/healthz", auth=None)
        except httpx.HTTPError as exc:
            raise self._core.transport_error(exc) from exc
        if not self._core.check_health(response):
            self._core.check_pin(NodeInfo.from_json(await self._send(_Request("GET", "/v1/status"), pinned=True)))

    async def _suite(self) -> Suite | None:
        if not self._core.verify:
            return None
        info = self._core.node_info or await self.status()
        return self._core.suite_of(info)

    async def status(self) -> NodeInfo:
        if not self._core.pinned:
            await self._check_pin()
        info = self._core.check_pin(
            NodeInfo.from_json(await self._send(_Request("GET", "/v1/status"), pinned=True))
        )
        self._core.node_info = info
        return info

    async def get_block(self, height: int | str = "latest") -> BlockInfo:
        document = await self._send(self._core.block_request(height))
        return BlockInfo.from_json(document, await self._suite(), self._core.verify_header)

    async def get_tx(self, tx_id: str) -> TxResult:
        document = await self._send(self._core.tx_request(tx_id))
        return TxResult.from_json(
            document, await self._suite(), self._core.verify_header, expected_tx_id=tx_id
        )

    async def read_state(
        self, contract: str, key: bytes | str, *, verify: bool = True, min_height: int | None = None
    ) -> StateValue:
        key_bytes = _key_bytes(key)
        document = await self._send(self._core.state_request(contract, key_bytes, min_height))
        suite = await self._suite() if verify else None
        value = StateValue.from_json(document, contract, key_bytes, suite, self._core.verify_header)
        _check_min_height(value, min_height)
        return value

    async def query(
        self, contract: str, method: str, args: Any = None, *, caller: Identity | None = None
    ) -> Any:
        return _query_result(
            await self._send(self._core.query_request(contract, method, args, caller))
        )

    async def submit(self, tx: bytes | SignedTransaction) -> str:
        return _accepted_id(await self._send(self._core.submit_request(tx)))

    async def submit_many(self, txs: Iterable[bytes | SignedTransaction]) -> list[str | TxRejectedError]:
        return _batch_results(await self._send(self._core.submit_many_request(txs)))

    async def submit_and_wait(
        self, tx: bytes | SignedTransaction, timeout_s: float = 30.0
    ) -> TxResult:
        try:
            tx_id = await self.submit(tx)
        except TxRejectedError as exc:
            if exc.code != RejectCode.DUPLICATE or exc.tx_id is None:
                raise
            tx_id = exc.tx_id
        return await self.wait(tx_id, timeout_s)

    async def wait(self, tx_id: str, timeout_s: float = 30.0) -> TxResult:
        backoff = _Backoff(timeout_s)
        while True:
            try:
                result: TxResult | None = await self.get_tx(tx_id)
            except NotFound:
                result = None
            if result is not None and result.rejected:
                result.raise_for_status()
            if result is not None and result.committed:
                return result
            wait_s = backoff.next_wait_s()
            if wait_s is None:
                raise TimeoutError(
                    f"transaction {tx_id} was not committed within {timeout_s} s; it may still "
                    f"commit: check with `pilotchain tx get {tx_id}`"
                )
            await asyncio.sleep(wait_s)

    async def chain_id(self) -> str:
        return (self._core.node_info or await self.status()).chain_id

    async def invoke(
        self,
        identity: Identity,
        contract: str,
        method: str,
        args: Any = None,
        *,
        wait: bool = True,
        timeout_s: float = 30.0,
        check: bool = True,
        expires_in_ms: int = DEFAULT_EXPIRES_IN_MS,
    ) -> TxResult:
        self._adopt(identity)
        tx = build_transaction(
            identity, await self.chain_id(), contract, method, args, expires_in_ms=expires_in_ms
        )
        if not wait:
            return TxResult(tx_id=await self.submit(tx), state="pending")
        result = await self.submit_and_wait(tx, timeout_s)
        return result.raise_for_status() if check else result

    async def subscribe(
        self, kinds: Iterable[str] | None = None, *, limit: int | None = None
    ) -> AsyncIterator[ChainEvent]:
        if not self._core.pinned:
            await self.status()
        params = self._core.events_params(kinds, limit)
        timeout = httpx.Timeout(self.timeout, read=STREAM_IDLE_S_MAX)
        decoder = SseDecoder()
        try:
            async with self._http.stream(
                "GET", "/v1/events", params=params, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._core.check(response)
                async for line in response.aiter_lines():
                    message = decoder.decode(line)
                    if message is None:
                        continue
                    event = self._core.event_of(message)
                    if event is None:
                        return
                    yield event
        except httpx.HTTPError as exc:
            raise self._core.transport_error(exc) from exc


#: an identity file whose key signs this process's requests when a client is given none
IDENTITY_ENV = "PILOTCHAIN_IDENTITY"


def _signer_for(identity: Identity | None, network: NetworkSpec | None = None) -> SignedRequests | None:
    """The request signer: ``identity``, else the identity file ``$PILOTCHAIN_IDENTITY`` names,
    else the first client identity of a ``network init`` folder given as ``network``, else none
    (the gateway then answers only /healthz, /readyz and /openapi.json; an invoke adopts its
    identity)."""
    if identity is None:
        path: str | Path | None = os.environ.get(IDENTITY_ENV, "").strip() or None
        folder = network if network is not None else (os.environ.get(NETWORK_ENV, "").strip() or None)
        if path is None and isinstance(folder, (str, os.PathLike)):
            path = folder_identity(folder)
        if path is None:
            return None
        identity = Identity.load(path)
    return SignedRequests(identity)


#: a PEM file of the CA that certifies the gateways' TLS certificates (else the network folder's)
TLS_CA_ENV = "PILOTCHAIN_TLS_CA"


def _tls_verify(tls_ca: str | os.PathLike[str] | None, pin: NetworkPin | None) -> ssl.SSLContext | bool:
    """How a client checks an https gateway: ``tls_ca``, else ``$PILOTCHAIN_TLS_CA``, else the CA a
    network folder names; none of them: the system's trusted CAs."""
    path = tls_ca or os.environ.get(TLS_CA_ENV, "").strip() or (pin.tls_ca if pin is not None else None)
    if not path:
        return True
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise NetworkFileError(f"cannot use {path} as the gateways' TLS CA: {exc}") from exc

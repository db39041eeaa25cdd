"""One organisation's vault: the logic of storing, releasing, fetching and purging payloads.

The vault runs as its own process (``pilotchain vault serve``), one per organisation, beside (not
inside) that organisation's node — see ARCHITECTURE.md for why. It holds:

* the payload store (:mod:`.store`: encrypted at rest, crash-safe),
* the organisation's vault identity (a consortium ``client`` certificate: it signs transactions,
  delivery requests and receipts) and its encryption private key (whose public half the
  organisation's admin registered on chain with ``dataex.register_org``),
* the receipt book (:mod:`.receipts`),
* a proven view of the chain (:mod:`.chainview`) through its organisation's node.

Release rule (provider side, :meth:`Vault.deliver`): the requester is a current member (signed
request, membership proven from chain state); the request id was never seen (a replay is
refused); the payload is the vault's own, live, registered with the same commitment and not
purged; and the ``dataex`` state at a *fresh certified* block holds ``PERMIT`` for the
requester's organisation, this purpose, until a time after that block. Anything else is refused
with its reason, recorded and counted; nothing is released.

Threads: every public method blocks (store, LMDB, HTTP to the node and to other vaults); the web
layer (:mod:`.service`) calls them from a thread pool.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from pilotchain.apps.exchange.chainview import ChainView, ProvenFact
from pilotchain.apps.exchange.delivery import (
    FrameReader,
    frame,
    open_payload,
    read_header,
    seal_frames,
    verify_receipt,
)
from pilotchain.apps.exchange.receipts import (
    BatchRow,
    BatchState,
    OutboxItem,
    ReceiptBook,
    RequestRow,
)
from pilotchain.apps.exchange.records import (
    CONTRACT,
    RECEIPT_DOMAIN,
    DeliveryHeader,
    DeliveryRequest,
    ExchangeError,
    Receipt,
    ReceiptKind,
    check_request_id,
    sign_record,
)
from pilotchain.apps.exchange.store import (
    CHUNK_BYTES,
    CopyOrigin,
    PayloadRole,
    StoredPayload,
    VaultStore,
    VaultStoreError,
    VaultStoreReason,
)
from pilotchain.codec import decode, encode
from pilotchain.crypto import PrivateKey
from pilotchain.crypto.sealing import (
    SealPrivateKey,
    load_seal_private_key,
    load_seal_public_key,
    seal,
)
from pilotchain.errors import CoreError
from pilotchain.sdk import (
    Client,
    Identity,
    PilotchainError,
    SignedRequests,
    TxRejectedError,
    build_transaction,
)

__all__ = ["DELIVERY_DOMAIN", "RECEIPT_DOMAIN", "Vault", "VaultCounters", "frames_of", "payload_json",
           "release_problem", "sha256_checked"]

DELIVERY_DOMAIN = "delivery"
#: how long a vault waits for one of its transactions to commit
TX_WAIT_S = 30.0
#: blocks one purge reconciliation reads at most (the rest on the next maintenance step)
PURGE_SCAN_BLOCKS_MAX = 500
#: an anchoring transaction not committed within this is sent again (a fresh one)
ANCHOR_TX_LIFETIME_MS = 120_000
#: a vault-to-vault request (headers and first bytes); the body streams after
PEER_TIMEOUT_S = 30.0

_log = logging.getLogger("pilotchain.vault")


@dataclass
class VaultCounters:
    """What ``/metrics`` shows (the service turns these into Prometheus metrics)."""

    deliveries: int = 0
    delivered_bytes: int = 0
    received: int = 0
    received_bytes: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    anchored_batches: int = 0
    anchored_receipts: int = 0
    purged_copies: int = 0

    def refuse(self, code: str) -> None:
        self.refusals[code] = self.refusals.get(code, 0) + 1


class Vault:
    def __init__(self, *, org: str, store: VaultStore, book: ReceiptBook, chain: ChainView,
                 identity: Identity, encryption_key: PrivateKey, client: Client,
                 peer_auth: Callable[[Identity], httpx.Auth] | None = None,
                 peer_transport: Callable[[str], httpx.BaseTransport | None] | None = None,
                 peer_tls_verify: Any = True,
                 clock_ms: Callable[[], int] | None = None) -> None:
        if identity.org != org:
            raise ExchangeError("CONFIG", f"the vault of {org} needs an identity of {org}, not {identity.org}")
        self.org = org
        self.store = store
        self.book = book
        self.chain = chain
        self.identity = identity
        self.client = client
        self.suite = chain.suite
        #: the organisation's encryption key pair (a suite key kept apart from the signing key):
        #: deliveries are sealed to its public half, registered on chain
        self.seal_key: SealPrivateKey = load_seal_private_key(self.suite, encryption_key)
        self.encryption_public_key: bytes = encryption_key.public_key().to_der()
        self.counters = VaultCounters()
        self._peer_auth = peer_auth or SignedRequests
        self._peer_transport = peer_transport or (lambda _url: None)
        self._peer_tls_verify = peer_tls_verify
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._anchor_lock = threading.Lock()
        #: the chain height up to which purges were reconciled (None: not yet since start)
        self._purge_height: int | None = None

    # ------------------------------------------------------------------ helpers

    def now_ms(self) -> int:
        return self._clock_ms()

    def peer_client(self, url: str) -> httpx.Client:
        """An HTTP client to another organisation's vault at ``url``, its requests signed by this
        vault's identity (what vault extensions use to talk vault to vault)."""
        return httpx.Client(base_url=url.rstrip("/"), timeout=PEER_TIMEOUT_S, auth=self._peer_auth(self.identity),
                            transport=self._peer_transport(url), verify=self._peer_tls_verify)

    def _submit(self, method: str, args: dict[str, Any]) -> tuple[str, int]:
        """Sign, submit and wait for a ``dataex`` call; (tx id, height). ExchangeError if it failed."""
        try:
            result = self.client.invoke(self.identity, CONTRACT, method, args, timeout_s=TX_WAIT_S, check=False)
        except PilotchainError as exc:
            raise ExchangeError("CHAIN_UNAVAILABLE", f"cannot send {CONTRACT}.{method} to the chain: {exc}") from exc
        if result.state != "committed" or result.receipt is None or result.receipt.status != "OK":
            why = result.receipt.message if result.receipt is not None else (result.message or result.state)
            code = result.receipt.status if result.receipt is not None else (result.code or "NOT_COMMITTED")
            raise ExchangeError(code, f"{CONTRACT}.{method} failed: {why}")
        return result.tx_id, result.height or -1

    def _refuse(self, code: str, message: str, request: RequestRow | None = None) -> ExchangeError:
        self.counters.refuse(code)
        if request is not None:
            self.book.settle_request(msgspec.structs.replace(request, outcome=f"refused:{code}", detail=message))
        _log.warning("refused: %s", message, extra={"event": "vault.refused", "code": code})
        return ExchangeError(code, message)

    # ------------------------------------------------------------------ own payloads

    def put(self, payload_id: str, chunks: Iterable[bytes], *, media_type: str, classification: str,
            retention_until_ms: int, policy: str = "", subjects: Iterable[str] = ()) -> dict[str, Any]:
        """Store a payload (durable, encrypted) and register its commitment on chain.

        Acknowledged (returned) only once both hold. If registration fails the stored copy is
        purged again, so nothing unregistered lingers."""
        stored = self.store.put(payload_id, chunks, owner_org=self.org, media_type=media_type,
                                classification=classification, retention_until_ms=retention_until_ms,
                                created_ms=self.now_ms())
        try:
            tx_id, height = self._submit("register", {
                "payload_id": payload_id, "commitment": stored.commitment, "size": stored.size_bytes,
                "media_type": media_type, "classification": classification,
                "retention_until_ms": retention_until_ms, "policy": policy, "subjects": list(subjects)})
        except ExchangeError:
            self.store.purge(payload_id, "registration failed", purged_ms=self.now_ms())
            raise
        return {**payload_json(stored), "tx_id": tx_id, "height": height}

    def register_org(self, admin: Identity, endpoint: str) -> str:
        """Register (or update) this vault's encryption key and URL, signed by an org admin."""
        if admin.org != self.org:
            raise ExchangeError("CONFIG", f"{admin.subject} is not an admin of {self.org}")
        result = self.client.invoke(admin, CONTRACT, "register_org",
                                    {"public_key": self.encryption_public_key, "endpoint": endpoint},
                                    timeout_s=TX_WAIT_S, check=False)
        if result.receipt is None or result.receipt.status != "OK":
            raise ExchangeError("REGISTER_FAILED", f"register_org failed: {result.receipt.message if result.receipt else result.message}")
        return result.tx_id

    def purge(self, payload_id: str, reason: str) -> dict[str, Any]:
        """Purge an own payload on chain (every holder then deletes its copy) and here."""
        stored = self.store.get(payload_id)
        if stored.role != PayloadRole.OWN:
            raise ExchangeError("NOT_OWNER", f"{payload_id} is a copy from {stored.owner_org}; its owner purges it")
        fact = self.chain.payload(payload_id, fresh=False)
        tx_id = ""
        if isinstance(fact.value, dict) and fact.value.get("purged") is None:
            tx_id, _ = self._submit("purge", {"payload_id": payload_id, "reason": reason})
        tombstone = self.store.purge(payload_id, reason, purged_ms=self.now_ms())
        return {**payload_json(tombstone), "tx_id": tx_id}

    # ------------------------------------------------------------------ provider side

    def deliver(self, request: DeliveryRequest, requester_org: str) -> tuple[DeliveryHeader, Iterator[bytes]]:
        """Check everything the release rule demands, record the delivery receipt (durably), and
        return the package's header and frames. Raises ExchangeError with the refusal's code."""
        request_id = check_request_id(request.request_id)
        row = RequestRow(request_id=request_id, role="provider", payload_id=request.payload_id,
                         peer_org=requester_org, purpose=request.purpose, outcome="pending", at_ms=self.now_ms())
        self.book.claim_request(row)  # REPLAYED after the first time
        if request.owner_org != self.org:
            raise self._refuse("NOT_OWNER", f"payload {request.payload_id} is not {self.org}'s; ask {request.owner_org}", row)
        try:
            stored = self.store.get(request.payload_id)
        except VaultStoreError as exc:
            code = "PURGED" if exc.reason == VaultStoreReason.PURGED else "NOT_FOUND"
            raise self._refuse(code, f"payload {request.payload_id}: {exc}", row) from exc
        if stored.role != PayloadRole.OWN:
            raise self._refuse("NOT_OWNER", f"{request.payload_id} here is a copy; ask its owner {stored.owner_org}", row)
        registration = self.chain.payload(request.payload_id)
        permit = self.chain.decision(request.payload_id, requester_org)
        problem = release_problem(stored, registration, permit, requester_org, request.purpose)
        if problem is not None:
            raise self._refuse(problem[0], problem[1], row)
        org_fact = self.chain.org(requester_org)
        if not isinstance(org_fact.value, dict) or not isinstance(org_fact.value.get("public_key"), bytes):
            raise self._refuse("NO_KEY", f"{requester_org} has registered no vault key (dataex.register_org)", row)
        try:
            recipient = load_seal_public_key(self.suite, org_fact.value["public_key"])
        except CoreError as exc:
            raise self._refuse("NO_KEY", f"{requester_org}'s registered key is unusable: {exc}", row) from exc
        data_key = secrets.token_bytes(self.suite.aead_key_size)
        nonce_prefix = secrets.token_bytes(7)
        receipt = Receipt(kind=ReceiptKind.DELIVERED, request_id=request_id, payload_id=stored.payload_id,
                          commitment=stored.commitment, provider_org=self.org, consumer_org=requester_org,
                          purpose=request.purpose, proof_height=permit.height, proof_block_hash=permit.block_hash,
                          at_ms=permit.timestamp_ms)
        signed = sign_record(self.identity, RECEIPT_DOMAIN, receipt)
        header = DeliveryHeader(
            request_id=request_id, payload_id=stored.payload_id, owner_org=self.org, consumer_org=requester_org,
            media_type=stored.media_type, classification=stored.classification,
            retention_until_ms=stored.retention_until_ms, size=stored.size_bytes, salt=stored.salt,
            commitment=stored.commitment,
            sealed_key=seal(recipient, data_key, associated_data=request_id.encode()),
            nonce_prefix=nonce_prefix, chunk_bytes=CHUNK_BYTES, receipt=signed)
        # the receipt is durable before a byte of the payload leaves
        self.book.add_receipt(signed, ReceiptKind.DELIVERED, request_id, stored.payload_id, self.now_ms(),
                              request=msgspec.structs.replace(row, outcome="delivered"))
        self.counters.deliveries += 1
        self.counters.delivered_bytes += stored.size_bytes
        _log.info("delivered %s to %s for %s", stored.payload_id, requester_org, request.purpose,
                  extra={"event": "vault.delivered", "request_id": request_id})
        frames = seal_frames(self.suite, data_key, nonce_prefix, request_id, self.store.read(stored.payload_id))
        return header, frames

    def acknowledged(self, signed_receipt: bytes, sender_org: str) -> bytes:
        """A consumer's ``received`` (or ``refused``) receipt for one of our deliveries: keep it."""
        signed, certificate, receipt = verify_receipt(self.suite, signed_receipt)
        if certificate.org_id != sender_org or receipt.consumer_org != sender_org or receipt.provider_org != self.org:
            raise ExchangeError("MALFORMED", "an acknowledgement must be the consumer's own, for our delivery")
        if self.book.request(receipt.request_id) is None:
            raise ExchangeError("NOT_FOUND", f"no delivery {receipt.request_id} was made here")
        return self.book.add_receipt(signed_receipt, receipt.kind, receipt.request_id, receipt.payload_id, self.now_ms())

    # ------------------------------------------------------------------ consumer side

    def fetch(self, payload_id: str, purpose: str, *, owner_org: str | None = None) -> dict[str, Any]:
        """Ask the owner's vault for ``payload_id``; decrypt, check its commitment against the
        chain, keep the copy, sign and anchor the ``received`` receipt."""
        registration = self.chain.payload(payload_id, fresh=False)
        record = registration.value
        if not isinstance(record, dict):
            raise ExchangeError("NOT_FOUND", f"no payload {payload_id} is registered on chain")
        if record.get("purged") is not None:
            raise ExchangeError("PURGED", f"payload {payload_id} was purged ({record['purged'].get('reason')})")
        owner = str(record["owner"])
        if owner_org is not None and owner_org != owner:
            raise ExchangeError("NOT_OWNER", f"payload {payload_id} belongs to {owner}, not {owner_org}")
        if owner == self.org:
            raise ExchangeError("OWN_PAYLOAD", f"{payload_id} is {self.org}'s own payload; read it, no fetch needed")
        endpoint = self.chain.org(owner).value
        if not isinstance(endpoint, dict) or not endpoint.get("endpoint"):
            raise ExchangeError("NO_ENDPOINT", f"{owner} has registered no vault endpoint")
        request_id = secrets.token_hex(16)
        row = RequestRow(request_id=request_id, role="consumer", payload_id=payload_id, peer_org=owner,
                         purpose=purpose, outcome="pending", at_ms=self.now_ms())
        self.book.claim_request(row)
        body = encode(DeliveryRequest(payload_id=payload_id, owner_org=owner, purpose=purpose, request_id=request_id))
        url = str(endpoint["endpoint"]).rstrip("/")
        try:
            with httpx.Client(base_url=url, timeout=PEER_TIMEOUT_S, auth=self._peer_auth(self.identity),
                              transport=self._peer_transport(url), verify=self._peer_tls_verify) as http, \
                    http.stream("POST", "/v1/deliveries", content=body,
                                headers={"content-type": "application/msgpack"}) as response:
                if response.status_code != 200:
                    response.read()
                    code, message = _error_of(response)
                    self.book.settle_request(msgspec.structs.replace(row, outcome=f"refused:{code}", detail=message))
                    self.counters.refuse(code)
                    raise ExchangeError(code, f"{owner}'s vault refused: {message}")
                return self._consume(row, record, response.iter_bytes())
        except httpx.HTTPError as exc:
            self.book.settle_request(msgspec.structs.replace(row, outcome="refused:UNREACHABLE", detail=str(exc)))
            raise ExchangeError("UNREACHABLE", f"cannot reach {owner}'s vault at {url}: {exc}") from exc

    def _consume(self, row: RequestRow, record: dict[str, Any], pieces: Iterable[bytes]) -> dict[str, Any]:
        reader = FrameReader(pieces)
        header, signed, certificate, delivered = read_header(self.suite, reader)
        expected = (row.request_id, row.payload_id, self.org, row.peer_org, record["commitment"])
        found = (delivered.request_id, delivered.payload_id, delivered.consumer_org, delivered.provider_org,
                 delivered.commitment)
        if found != expected or header.commitment != record["commitment"] or certificate.org_id != row.peer_org:
            raise ExchangeError("MALFORMED", "the delivery's receipt does not describe this request and payload")
        self.chain.member(signed.certificate)  # the provider's signer is a current member
        chunks = open_payload(self.suite, self.seal_key, header, row.request_id, reader)
        answers = self.suite.hash(header.receipt)
        try:
            stored = self._keep(header, record, chunks)
        except (VaultStoreError, ExchangeError) as exc:
            mismatch = isinstance(exc, VaultStoreError) and exc.reason == VaultStoreReason.COMMITMENT_MISMATCH
            code = "COMMITMENT_MISMATCH" if mismatch else getattr(exc, "code", "TAMPERED")
            self._complain(row, header, answers, code, str(exc))
            raise ExchangeError(code, f"the delivery of {row.payload_id} was refused: {exc}") from exc
        received = Receipt(kind=ReceiptKind.RECEIVED, request_id=row.request_id, payload_id=row.payload_id,
                           commitment=stored.commitment, provider_org=row.peer_org, consumer_org=self.org,
                           purpose=row.purpose, proof_height=delivered.proof_height,
                           proof_block_hash=delivered.proof_block_hash, at_ms=delivered.at_ms, answers=answers,
                           note="commitment verified")
        mine = sign_record(self.identity, RECEIPT_DOMAIN, received)
        self.book.add_receipt(header.receipt, ReceiptKind.DELIVERED, row.request_id, row.payload_id, self.now_ms())
        self.book.add_receipt(mine, ReceiptKind.RECEIVED, row.request_id, row.payload_id, self.now_ms(),
                              request=msgspec.structs.replace(row, outcome="received"))
        self.book.queue(OutboxItem(kind="ack", payload_id=row.payload_id, peer_org=row.peer_org, data=mine))
        self.counters.received += 1
        self.counters.received_bytes += header.size
        return {**payload_json(stored), "request_id": row.request_id}

    def _keep(self, header: DeliveryHeader, record: dict[str, Any], chunks: Iterator[bytes]) -> StoredPayload:
        """Store the copy (or, when a live copy is here already, check the bytes against the
        commitment without keeping a second one)."""
        try:
            existing: StoredPayload | None = self.store.get(header.payload_id)
        except VaultStoreError as exc:
            if exc.reason != VaultStoreReason.NOT_FOUND:
                raise
            existing = None
        if existing is None:
            return self.store.put(
                header.payload_id, chunks, owner_org=header.owner_org, media_type=header.media_type,
                classification=header.classification, retention_until_ms=header.retention_until_ms,
                created_ms=self.now_ms(), salt=header.salt,
                copy_of=CopyOrigin(from_org=header.owner_org, request_id=header.request_id),
                expected_commitment=record["commitment"])
        commitment = self.suite.hash_chunks(_prefixed(header.salt, chunks))
        if commitment != record["commitment"]:
            raise VaultStoreError(VaultStoreReason.COMMITMENT_MISMATCH,
                                  "the delivered bytes do not match the payload's commitment on chain",
                                  payload_id=header.payload_id)
        return existing

    def _complain(self, row: RequestRow, header: DeliveryHeader, answers: bytes, code: str, detail: str) -> None:
        refused = Receipt(kind=ReceiptKind.REFUSED, request_id=row.request_id, payload_id=row.payload_id,
                          commitment=header.commitment, provider_org=row.peer_org, consumer_org=self.org,
                          purpose=row.purpose, proof_height=-1, proof_block_hash=b"", at_ms=self.now_ms(),
                          answers=answers, note=f"{code}: {detail}"[:256])
        mine = sign_record(self.identity, RECEIPT_DOMAIN, refused)
        self.book.add_receipt(mine, ReceiptKind.REFUSED, row.request_id, row.payload_id, self.now_ms(),
                              request=msgspec.structs.replace(row, outcome="complained", detail=code))
        self.book.queue(OutboxItem(kind="complain", payload_id=row.payload_id, peer_org=row.peer_org,
                                   data=encode([row.request_id, code, self.suite.hash(mine)])))
        self.counters.refuse(code)

    # ------------------------------------------------------------------ background work

    def anchor_once(self, batch_max: int = 1024) -> BatchRow | None:
        """Anchor the open batch, or seal and anchor the next one; the batch anchored (or None)."""
        with self._anchor_lock:
            open_batches = self.book.open_batches()
            batch = open_batches[0] if open_batches else self.book.seal_batch(batch_max)
            if batch is None:
                return None
            fact = self.chain.fact(_anchor_key(batch.root), fresh=False)
            ours = fact.value.get("by", {}).get(self.org) if isinstance(fact.value, dict) else None
            if ours is None:
                tx_id, height = self._send_anchor(batch)
            elif batch.tx_id:  # anchored before a crash: we recorded which transaction did it
                tx_id, height = batch.tx_id, int(ours.get("height", -1))
            else:  # pragma: no cover - the transaction id is recorded before it is sent
                raise ExchangeError("CORRUPT", f"batch {batch.root.hex()} is anchored by a transaction not recorded here")
            done = msgspec.structs.replace(batch, state=BatchState.ANCHORED, tx_id=tx_id, height=height,
                                           anchored_ms=self.now_ms())
            self.book.update_batch(done)
            self.counters.anchored_batches += 1
            self.counters.anchored_receipts += len(batch.receipt_ids)
            return done

    def _send_anchor(self, batch: BatchRow) -> tuple[str, int]:
        """Sign the anchoring transaction, record it with the batch (durably), then send it: after
        a crash the batch names the transaction that anchored it, or it is sent again."""
        raw = batch.tx_raw
        if batch.state != BatchState.SUBMITTED or not raw:
            tx = build_transaction(self.identity, self.chain.genesis.chain_id, CONTRACT, "anchor",
                                   {"batch": {"root": batch.root, "size": len(batch.receipt_ids)}, "kind": "receipts"},
                                   expires_in_ms=ANCHOR_TX_LIFETIME_MS)
            raw = tx.raw
            batch = msgspec.structs.replace(batch, state=BatchState.SUBMITTED, tx_id=tx.tx_id, tx_raw=raw)
            self.book.update_batch(batch)
        try:
            result = self.client.submit_and_wait(raw, TX_WAIT_S)
        except TxRejectedError as exc:  # expired while we were down: a fresh transaction next time
            self.book.update_batch(msgspec.structs.replace(batch, state=BatchState.SEALED, tx_id="", tx_raw=b""))
            raise ExchangeError("ANCHOR_REFUSED", f"the anchoring transaction was refused: {exc}") from exc
        except PilotchainError as exc:
            raise ExchangeError("CHAIN_UNAVAILABLE", f"cannot anchor now: {exc}") from exc
        if result.receipt is None or result.receipt.status != "OK":
            raise ExchangeError("ANCHOR_FAILED", f"anchoring failed: {result.receipt.message if result.receipt else result.state}")
        return result.tx_id, result.height or -1

    def flush_outbox(self) -> int:
        """Send queued acknowledgements, complaints and purge confirmations; how many went."""
        sent = 0
        for key, item in self.book.outbox():
            try:
                if item.kind == "ack":
                    self._send_ack(item)
                elif item.kind == "complain":
                    request_id, code, evidence = decode(item.data, tuple[str, str, bytes])
                    self._submit("complain", {"payload_id": item.payload_id, "request_id": request_id,
                                              "reason": code, "evidence": evidence})
                elif item.kind == "confirm_purge":
                    self._submit("confirm_purge", {"payload_id": item.payload_id})
            except (ExchangeError, httpx.HTTPError, PilotchainError) as exc:
                if isinstance(exc, ExchangeError) and "confirmed already" in exc.message:
                    self.book.done(key)
                    continue
                self.book.retry_later(key, item)
                _log.info("will retry %s for %s: %s", item.kind, item.payload_id, exc)
                continue
            self.book.done(key)
            sent += 1
        return sent

    def _send_ack(self, item: OutboxItem) -> None:
        endpoint = self.chain.org(item.peer_org).value
        if not isinstance(endpoint, dict):
            raise ExchangeError("NO_ENDPOINT", f"{item.peer_org} has no vault endpoint")
        url = str(endpoint["endpoint"]).rstrip("/")
        with httpx.Client(base_url=url, timeout=PEER_TIMEOUT_S, auth=self._peer_auth(self.identity),
                          transport=self._peer_transport(url), verify=self._peer_tls_verify) as http:
            response = http.post("/v1/acknowledgements", content=item.data,
                                 headers={"content-type": "application/msgpack"})
        if response.status_code not in (200, 201):
            raise ExchangeError("ACK_REFUSED", f"{item.peer_org}'s vault answered {response.status_code}")

    def reconcile_purges(self) -> list[str]:
        """Delete every copy whose payload the chain says is purged, and confirm it on chain
        (also after this vault was offline when the purge happened); the ids deleted.

        The first call (after the vault starts) checks every copy it holds against the chain; later
        calls read only the blocks committed since (at most PURGE_SCAN_BLOCKS_MAX per call) for
        ``dataex.purge`` calls, so the idle cost follows the chain's purges, not the copies held."""
        try:
            head = self.client.status().height
        except PilotchainError as exc:
            raise ExchangeError("CHAIN_UNAVAILABLE", f"cannot read the chain: {exc}") from exc
        if self._purge_height is None:
            deleted = self._reconcile(self._copies())
            self._purge_height = head
            return deleted
        candidates: set[str] = set()
        last = min(head, self._purge_height + PURGE_SCAN_BLOCKS_MAX)
        for height in range(self._purge_height + 1, last + 1):
            try:
                block = self.client.get_block(height)
            except PilotchainError as exc:
                raise ExchangeError("CHAIN_UNAVAILABLE", f"cannot read block {height}: {exc}") from exc
            for tx in block.transactions:
                if not tx.redacted and tx.contract == CONTRACT and tx.method == "purge" and isinstance(tx.args, dict):
                    candidates.add(str(tx.args.get("payload_id")))
        self._purge_height = last
        held = [stored for stored in (self._copy(pid) for pid in sorted(candidates)) if stored is not None]
        return self._reconcile(held)

    def _copies(self) -> list[StoredPayload]:
        found: list[StoredPayload] = []
        after: str | None = None
        while True:
            page = self.store.list(after=after, limit=256)
            found += [p for p in page.items if p.role == PayloadRole.COPY and p.purge is None]
            if page.next_after is None:
                return found
            after = page.next_after

    def _copy(self, payload_id: str) -> StoredPayload | None:
        try:
            stored = self.store.get(payload_id)
        except VaultStoreError:
            return None
        return stored if stored.role == PayloadRole.COPY and stored.purge is None else None

    def _reconcile(self, copies: list[StoredPayload]) -> list[str]:
        deleted = []
        for stored in copies:
            record = self.chain.payload(stored.payload_id, fresh=False).value
            if isinstance(record, dict) and record.get("purged") is not None:
                purged = record["purged"]
                self.store.purge(stored.payload_id, f"purged by {purged.get('by_org')}: {purged.get('reason')}",
                                 purged_ms=self.now_ms())
                self.book.queue(OutboxItem(kind="confirm_purge", payload_id=stored.payload_id,
                                           peer_org=str(record["owner"]), data=b""))
                self.counters.purged_copies += 1
                deleted.append(stored.payload_id)
        return deleted


def release_problem(stored: StoredPayload, registration: ProvenFact, permit: ProvenFact, org: str,
                    purpose: str) -> tuple[str, str] | None:
    """Why a payload may not be released to ``org`` for ``purpose`` now (None: it may)."""
    record = registration.value
    if not isinstance(record, dict):
        return "NOT_REGISTERED", f"payload {stored.payload_id} is not registered on chain"
    if record.get("owner") != stored.owner_org or record.get("commitment") != stored.commitment:
        return "MISMATCH", f"payload {stored.payload_id} on chain is not the one in this vault"
    if record.get("purged") is not None:
        return "PURGED", f"payload {stored.payload_id} was purged"
    decision = permit.value
    if not isinstance(decision, dict):
        return "NO_PERMIT", f"{org} holds no decision for payload {stored.payload_id} (at block {permit.height})"
    if decision.get("decision") == "WITHDRAWN":
        return "WITHDRAWN", f"{org}'s PERMIT for {stored.payload_id} was withdrawn: {decision.get('reason')}"
    if decision.get("decision") != "PERMIT":
        return "NO_PERMIT", f"{org}'s decision for {stored.payload_id} is {decision.get('decision')}"
    if decision.get("purpose") != purpose:
        return "WRONG_PURPOSE", f"{org}'s PERMIT is for purpose {decision.get('purpose')}, not {purpose}"
    until = decision.get("until_ms")
    if not isinstance(until, int) or until <= permit.timestamp_ms:
        return "EXPIRED", f"{org}'s PERMIT for {stored.payload_id} ended at {until} (block time {permit.timestamp_ms})"
    return None


def payload_json(stored: StoredPayload) -> dict[str, Any]:
    return {
        "payload_id": stored.payload_id, "owner_org": stored.owner_org, "role": stored.role.value,
        "media_type": stored.media_type, "size": stored.size_bytes, "commitment": stored.commitment.hex(),
        "classification": stored.classification, "retention_until_ms": stored.retention_until_ms,
        "created_ms": stored.created_ms, "state": stored.state.value,
        "copy_of": None if stored.copy_of is None else {"from_org": stored.copy_of.from_org,
                                                        "request_id": stored.copy_of.request_id},
        "purge": None if stored.purge is None else {"reason": stored.purge.reason, "purged_ms": stored.purge.purged_ms},
    }


def _anchor_key(root: bytes) -> bytes:
    return b"m/anchors\x00" + encode(root)


def _prefixed(salt: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    yield salt
    yield from chunks


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        document = response.json()
        return str(document.get("code", response.status_code)), str(document.get("message", response.text))
    except ValueError:
        return str(response.status_code), response.text[:200]


def frames_of(header: DeliveryHeader, frames: Iterator[bytes]) -> Iterator[bytes]:
    """The whole package: the header frame, then the sealed chunks."""
    yield frame(encode(header))
    yield from frames


def sha256_checked(pieces: Iterable[bytes], expected: bytes) -> Iterator[bytes]:
    """Pass ``pieces`` through; at the end, raise unless their SHA-256 is ``expected``."""
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece)
        yield piece
    if digest.digest() != expected:
        raise ExchangeError("BAD_DIGEST", "the uploaded bytes do not match the signed Content-Digest")


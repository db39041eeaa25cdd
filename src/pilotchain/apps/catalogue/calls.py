"""A department's vault in the directory chain: publishing datasets, answering calls, making calls.

Mounted on the organisation's exchange vault (:mod:`.service`), it shares the vault's payload
store (datasets are dataex payloads whose policy is the ``catalogue`` contract, so the exchange
never releases them whole), its proven view of the chain, its identity and encryption key, and
its receipt book (so catalogue receipts are anchored in the vault's batches). Its own small LMDB
(``<vault home>/catalogue/``) holds the call log, the calls counted per agreement and the
acknowledgements still to send.

Release rule (provider side, :meth:`CatalogueVault.answer`), on facts proven at certified blocks
no older than the vault's freshness bound:

1. the call id was never seen (``REPLAYED``);
2. an agreement with this id exists (``NO_AGREEMENT``), this vault's organisation is its provider
   and the caller's organisation its consumer (``NOT_PARTY``), not revoked (``REVOKED``);
3. its entry is active and was not withdrawn since the agreement (``ENTRY_WITHDRAWN``), the duty
   the consumer cited is not retired (``DUTY_RETIRED``);
4. the certified time is within the agreed period (``NOT_YET`` / ``EXPIRED``);
5. every field asked for — and every field a selection filters on — is an agreed field
   (``FIELD_NOT_AGREED``) and still shared by the entry's current version (``FIELD_NOT_SHARED``);
6. the entry's current usage policy permits this call, as the count-th under the agreement
   (``POLICY_DENIED`` / ``CONSENT_REQUIRED``);
7. the entry has data on chain (``NO_DATA``) whose commitment matches the stored dataset.

Then only the asked fields of the selected records are put into the disclosure (the others are
never read into it: a hidden field contributes its leaf hash), the ``delivered`` receipt is kept
durably before the package is sealed to the consumer's registered key. A call refused by 2-6
gets a signed ``rejected`` receipt, anchored like the others: the log of calls outside the
agreement is evidence too.

Threads: every public method blocks (store, LMDB, HTTP); the routes call them from a thread pool.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import lmdb
import msgspec

from pilotchain.apps.catalogue.disclosure import (
    DISCLOSURE_FORMAT,
    Dataset,
    DatasetCommitment,
    DatasetError,
    Disclosure,
    DisclosureInvalid,
    make_dataset,
    verify_disclosure,
)
from pilotchain.apps.catalogue.policy import PolicyError, evaluate
from pilotchain.apps.catalogue.records import (
    CONTRACT,
    RECEIPT_DOMAIN,
    CallPackage,
    CallReceipt,
    CallRequest,
    CatalogueError,
    ReceiptKind,
    check_call_id,
    day_of,
    usage_key,
)
from pilotchain.apps.catalogue.view import CatalogueView
from pilotchain.apps.exchange.chainview import ProvenFact
from pilotchain.apps.exchange.receipts import OutboxItem
from pilotchain.apps.exchange.records import ExchangeError, SignedRecord, sign_record, verify_signed
from pilotchain.apps.exchange.store import VaultStoreError
from pilotchain.apps.exchange.vault import Vault
from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.crypto.sealing import SealError, load_seal_public_key, open_sealed, seal
from pilotchain.errors import CoreError
from pilotchain.sdk import PilotchainError

__all__ = ["CALL_RECORDS_MAX", "CallRow", "CatalogueVault"]

DATASET_MEDIA_TYPE = "application/vnd.pilotchain.catalogue-dataset"
#: records one call may return (page with offset for more)
CALL_RECORDS_MAX = 1000
#: a sealed package is at most this large
PACKAGE_BYTES_MAX = 32 * 1024 * 1024
#: dataset commitments kept in memory (each holds its records and the record tree)
COMMITMENT_CACHE = 2
RETENTION_DAYS_DEFAULT = 5 * 365
_DAY_MS = 86_400_000

_log = logging.getLogger("pilotchain.catalogue")


class CallRow(Record, frozen=True):
    """A call this vault answered (provider) or made (consumer), and how it ended."""

    call_id: str
    role: str
    agreement_id: str
    entry_id: str
    peer_org: str
    outcome: str  # pending | delivered | received | rejected:<CODE> | refused:<CODE>
    at_ms: int
    fields: tuple[str, ...] = ()
    records: int = 0
    size_bytes: int = 0
    receipt_ids: tuple[bytes, ...] = ()
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "role": self.role, "agreement_id": self.agreement_id,
                "entry_id": self.entry_id, "peer_org": self.peer_org, "outcome": self.outcome, "at_ms": self.at_ms,
                "day": day_of(self.at_ms), "fields": list(self.fields), "records": self.records,
                "size_bytes": self.size_bytes, "receipt_ids": [r.hex() for r in self.receipt_ids],
                "detail": self.detail}


class _CallLog:
    """LMDB: calls (call id -> CallRow), by_day (day \\0 call id), counts (agreement -> calls
    delivered), acks (call id -> [provider, signed receipt] still to send)."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(str(path), map_size=1 << 30, max_dbs=4, sync=True, metasync=True, subdir=True)
        self._calls = self._env.open_db(b"calls")
        self._by_day = self._env.open_db(b"by_day")
        self._counts = self._env.open_db(b"counts")
        self._acks = self._env.open_db(b"acks")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._env.close()

    def claim(self, row: CallRow) -> None:
        with self._lock, self._env.begin(write=True) as txn:
            if not txn.put(row.call_id.encode(), encode(row), db=self._calls, overwrite=False):
                raise CatalogueError("REPLAYED", f"call {row.call_id} was seen before (a replay); every call needs a "
                                     "fresh call_id")
            txn.put(day_of(row.at_ms).encode() + b"\x00" + row.call_id.encode(), b"", db=self._by_day)

    def settle(self, row: CallRow, *, counted: bool = False) -> None:
        with self._lock, self._env.begin(write=True) as txn:
            txn.put(row.call_id.encode(), encode(row), db=self._calls)
            if counted:
                raw = txn.get(row.agreement_id.encode(), db=self._counts)
                count = int.from_bytes(raw, "big") if raw else 0
                txn.put(row.agreement_id.encode(), (count + 1).to_bytes(8, "big"), db=self._counts)

    def call(self, call_id: str) -> CallRow | None:
        with self._env.begin() as txn:
            raw = txn.get(call_id.encode(), db=self._calls)
        return None if raw is None else decode(raw, CallRow)

    def delivered_count(self, agreement_id: str) -> int:
        with self._env.begin() as txn:
            raw = txn.get(agreement_id.encode(), db=self._counts)
        return int.from_bytes(raw, "big") if raw else 0

    def calls_of_day(self, day: str, limit: int) -> list[CallRow]:
        prefix = day.encode() + b"\x00"
        out: list[CallRow] = []
        with self._env.begin() as txn:
            cursor = txn.cursor(db=self._by_day)
            if cursor.set_range(prefix):
                for key, _ in cursor:
                    if not key.startswith(prefix) or len(out) >= limit:
                        break
                    raw = txn.get(key[len(prefix):], db=self._calls)
                    if raw is not None:
                        out.append(decode(raw, CallRow))
        return sorted(out, key=lambda row: (row.at_ms, row.call_id))

    def queue_ack(self, call_id: str, provider: str, signed: bytes) -> None:
        with self._lock, self._env.begin(write=True) as txn:
            txn.put(call_id.encode(), encode([provider, signed]), db=self._acks)

    def acks(self) -> list[tuple[str, str, bytes]]:
        with self._env.begin() as txn:
            items = [(key.decode(), *decode(raw, tuple[str, bytes])) for key, raw in txn.cursor(db=self._acks)]
        return [(call_id, provider, signed) for call_id, provider, signed in items]

    def ack_sent(self, call_id: str) -> None:
        with self._lock, self._env.begin(write=True) as txn:
            txn.delete(call_id.encode(), db=self._acks)


def _names(entry: Mapping[str, Any], *, shared_only: bool = False) -> list[str]:
    return [str(f["name"]) for f in entry["fields"] if not shared_only or f["sharing"] != "not_shared"]


class CatalogueVault:
    def __init__(self, vault: Vault, home: Path) -> None:
        self.vault = vault
        self.view = CatalogueView(vault.chain)
        self.log = _CallLog(home)
        self._commitments: OrderedDict[str, DatasetCommitment] = OrderedDict()
        self._commitment_lock = threading.Lock()
        self._publish_lock = threading.Lock()

    def close(self) -> None:
        self.log.close()

    @property
    def org(self) -> str:
        return self.vault.org

    # ------------------------------------------------------------------ datasets (provider)

    def publish_dataset(self, entry_id: str, rows: Sequence[Mapping[str, Any]], *,
                        retention_days: int = RETENTION_DAYS_DEFAULT) -> dict[str, Any]:
        """Store a new version of ``entry_id``'s data (structured records of its fields) in this
        vault and put its field-level commitment on chain; the dataset's version and root."""
        entry = self.view.entry(entry_id, fresh=False).value
        if not isinstance(entry, dict):
            raise CatalogueError("NOT_FOUND", f"no catalogue entry {entry_id} on chain")
        if entry["owner"] != self.org:
            raise CatalogueError("NOT_OWNER", f"entry {entry_id} is {entry['owner']}'s; its department publishes its data")
        if entry["status"] != "active":
            raise CatalogueError("ENTRY_WITHDRAWN", f"entry {entry_id} is withdrawn: {entry.get('reason')}")
        try:
            dataset = make_dataset(entry_id, entry["fields"], entry["key_field"], rows, secrets.token_bytes(32))
        except DatasetError as exc:
            raise CatalogueError("BAD_RECORDS", f"the records do not fit entry {entry_id} (version "
                                 f"{entry['version']}): {exc}") from exc
        commitment = DatasetCommitment.build(self.vault.suite, dataset)
        with self._publish_lock:
            current = self.view.dataset(entry_id, fresh=False).value
            version = (current["version"] if isinstance(current, dict) else 0) + 1
            payload_id = f"{entry_id}:{version}.{secrets.token_hex(3)}"
            stored = self.vault.put(payload_id, [encode(dataset)], media_type=DATASET_MEDIA_TYPE,
                                    classification=str(entry["classification"]),
                                    retention_until_ms=self.vault.now_ms() + retention_days * _DAY_MS,
                                    policy=CONTRACT)
            result = self.vault.client.invoke(
                self.vault.identity, CONTRACT, "publish_dataset",
                {"entry_id": entry_id, "payload_id": payload_id, "root": commitment.root,
                 "records": len(dataset.records), "fields": list(dataset.fields)}, check=False, timeout_s=30.0)
            if result.receipt is None or result.receipt.status != "OK":
                self.vault.purge(payload_id, "the dataset's publication on chain failed")
                why = result.receipt.message if result.receipt is not None else result.message
                raise CatalogueError("PUBLISH_FAILED", f"{CONTRACT}.publish_dataset failed: {why}")
        self._remember(payload_id, commitment)
        published = result.result
        return {"entry_id": entry_id, "version": published["version"], "payload_id": payload_id,
                "root": commitment.root.hex(), "records": len(dataset.records), "fields": list(dataset.fields),
                "dataset_commitment_bytes": stored["size"], "tx_id": result.tx_id, "height": result.height}

    def _remember(self, payload_id: str, commitment: DatasetCommitment) -> None:
        with self._commitment_lock:
            self._commitments[payload_id] = commitment
            self._commitments.move_to_end(payload_id)
            while len(self._commitments) > COMMITMENT_CACHE:
                self._commitments.popitem(last=False)

    def _commitment(self, payload_id: str, root: bytes) -> DatasetCommitment:
        with self._commitment_lock:
            cached = self._commitments.get(payload_id)
        if cached is None:
            try:
                dataset = decode(b"".join(self.vault.store.read(payload_id)), Dataset)
            except (VaultStoreError, CodecError) as exc:
                raise CatalogueError("NO_DATA", f"the dataset {payload_id} cannot be read here: {exc}") from exc
            cached = DatasetCommitment.build(self.vault.suite, dataset)
            self._remember(payload_id, cached)
        if cached.root != root:
            raise CatalogueError("MISMATCH", f"the dataset {payload_id} in this vault is not the one committed on chain")
        return cached

    # ------------------------------------------------------------------ answering a call (provider)

    def answer(self, request: CallRequest, requester_org: str) -> bytes:
        """Check the release rule, keep the ``delivered`` receipt, return the sealed CallPackage
        (canonical bytes). CatalogueError with the refusal's code otherwise."""
        call_id = check_call_id(request.call_id)
        row = CallRow(call_id=call_id, role="provider", agreement_id=request.agreement_id, entry_id="",
                      peer_org=requester_org, outcome="pending", at_ms=self.vault.now_ms(), fields=request.fields)
        self.log.claim(row)  # REPLAYED from the second time on
        try:
            return self._answer(request, requester_org, row)
        except ExchangeError as exc:  # refusals the release rule did not record as rejections
            settled = self.log.call(call_id)
            if settled is not None and settled.outcome == "pending":
                self.log.settle(msgspec.structs.replace(row, outcome=f"refused:{exc.code}", detail=exc.message[:256]))
            raise

    def _answer(self, request: CallRequest, requester_org: str, row: CallRow) -> bytes:
        if not 1 <= request.limit <= CALL_RECORDS_MAX or request.offset < 0:
            raise CatalogueError("BAD_REQUEST", f"limit is 1..{CALL_RECORDS_MAX} records, offset >= 0")
        agreement_fact = self.view.agreement(request.agreement_id)
        agreement = agreement_fact.value
        if not isinstance(agreement, dict):
            raise self._reject(row, agreement_fact, None, "NO_AGREEMENT",
                               f"no agreement {request.agreement_id} is on chain (at block {agreement_fact.height})")
        row = msgspec.structs.replace(row, entry_id=str(agreement["entry_id"]))
        if agreement["provider"] != self.org or agreement["consumer"] != requester_org:
            raise self._reject(row, agreement_fact, agreement, "NOT_PARTY",
                               f"agreement {request.agreement_id} is between {agreement['provider']} (provider) and "
                               f"{agreement['consumer']} (consumer), not {requester_org} asking {self.org}")
        if agreement["status"] != "active":
            raise self._reject(row, agreement_fact, agreement, "REVOKED",
                               f"agreement {request.agreement_id} was revoked: {agreement.get('reason')}")
        entry = self.view.entry(str(agreement["entry_id"])).value
        if not isinstance(entry, dict) or entry["status"] != "active" \
                or entry["withdrawals"] != agreement["entry_withdrawals"]:
            reason = entry.get("reason") if isinstance(entry, dict) else "gone"
            raise self._reject(row, agreement_fact, agreement, "ENTRY_WITHDRAWN",
                               f"entry {agreement['entry_id']} was withdrawn ({reason}); its agreements ended")
        duty = self.view.duty(str(agreement["duty_id"])).value
        if not isinstance(duty, dict) or duty["status"] != "active":
            raise self._reject(row, agreement_fact, agreement, "DUTY_RETIRED",
                               f"the duty {agreement['duty_id']} the agreement cites is retired")
        at = agreement_fact.timestamp_ms
        if at < agreement["from_ms"]:
            raise self._reject(row, agreement_fact, agreement, "NOT_YET",
                               f"agreement {request.agreement_id} starts at {agreement['from_ms']} (block time {at})")
        if at >= agreement["until_ms"]:
            raise self._reject(row, agreement_fact, agreement, "EXPIRED",
                               f"agreement {request.agreement_id} ended at {agreement['until_ms']} (block time {at})")
        asked = list(request.fields) or list(agreement["fields"])
        outside = [f for f in [*asked, *request.where] if f not in agreement["fields"]]
        if outside:
            raise self._reject(row, agreement_fact, agreement, "FIELD_NOT_AGREED",
                               f"{', '.join(sorted(set(outside)))} not agreed (the agreement covers "
                               f"{', '.join(agreement['fields'])})")
        not_shared = [f for f in [*asked, *request.where] if f not in _names(entry, shared_only=True)]
        if not_shared:
            raise self._reject(row, agreement_fact, agreement, "FIELD_NOT_SHARED",
                               f"{', '.join(sorted(set(not_shared)))} no longer shared by entry {entry['id']} "
                               f"(version {entry['version']})")
        fields = [name for name in _names(entry) if name in asked]
        facts = {"target": entry["id"], "recipient": requester_org, "purpose": agreement["purpose"], "dateTime": at,
                 "elapsedTime": agreement["until_ms"] - agreement["from_ms"],
                 "count": self.log.delivered_count(request.agreement_id) + 1, "pc:fields": fields,
                 "pc:duty": agreement["duty_id"], "consented": list(agreement.get("consented", []))}
        try:
            decision = evaluate(entry["policy"], facts)
        except PolicyError as exc:
            raise CatalogueError("POLICY_INVALID", f"entry {entry['id']}'s policy cannot be evaluated: {exc}") from exc
        if decision.outcome == "deny":
            raise self._reject(row, agreement_fact, agreement, "POLICY_DENIED",
                               f"the usage policy {entry['policy']['uid']} denies this call "
                               f"({decision.rule or 'no rule'}: {decision.reason})")
        if decision.outcome == "consent":
            raise self._reject(row, agreement_fact, agreement, "CONSENT_REQUIRED",
                               f"the usage policy now needs the {decision.consent_party}'s consent ({decision.rule}); "
                               "file a new request")
        dataset = self.view.dataset(str(entry["id"])).value
        if not isinstance(dataset, dict):
            raise CatalogueError("NO_DATA", f"entry {entry['id']} has no data published yet")
        missing = [f for f in [*fields, *request.where] if f not in dataset["fields"]]
        if missing:
            raise CatalogueError("NO_DATA", f"the published data of {entry['id']} has no {', '.join(missing)} yet")
        commitment = self._commitment(str(dataset["payload_id"]), dataset["root"])
        try:
            matched = commitment.select({f: tuple(v) for f, v in request.where.items()})
        except CodecError as exc:
            raise CatalogueError("BAD_REQUEST", f"a selection value has no canonical encoding: {exc}") from exc
        page = matched[request.offset:request.offset + request.limit]
        released = [name for name in dataset["fields"] if name in fields]
        disclosure = Disclosure(
            format=DISCLOSURE_FORMAT, call_id=row.call_id, agreement_id=request.agreement_id, entry_id=str(entry["id"]),
            dataset_version=int(dataset["version"]), root=commitment.root, record_count=len(commitment.dataset.records),
            schema=tuple(dataset["fields"]), fields=tuple(released), matched=len(matched),
            records=commitment.disclose(page, released))
        body = encode(disclosure)
        org_record = self.vault.chain.org(requester_org).value
        if not isinstance(org_record, dict) or not isinstance(org_record.get("public_key"), bytes):
            raise CatalogueError("NO_KEY", f"{requester_org} has registered no vault key (dataex.register_org)")
        try:
            recipient = load_seal_public_key(self.vault.suite, org_record["public_key"])
        except CoreError as exc:
            raise CatalogueError("NO_KEY", f"{requester_org}'s registered key is unusable: {exc}") from exc
        receipt = self._receipt(ReceiptKind.DELIVERED, row.call_id, agreement_fact, agreement, released,
                                len(page), len(body), int(dataset["version"]), commitment.root,
                                self.vault.suite.hash(body))
        signed = sign_record(self.vault.identity, RECEIPT_DOMAIN, receipt)
        # the receipt is durable before anything leaves
        receipt_id = self.vault.book.add_receipt(signed, ReceiptKind.DELIVERED, row.call_id, usage_key(day_of(at)),
                                                 self.vault.now_ms())
        self.log.settle(msgspec.structs.replace(row, outcome="delivered", fields=tuple(released), records=len(page),
                                                size_bytes=len(body), receipt_ids=(receipt_id,), at_ms=at),
                        counted=True)
        _log.info("released %s of %d records of %s to %s", ",".join(released), len(page), entry["id"], requester_org,
                  extra={"event": "catalogue.delivered", "call_id": row.call_id})
        sealed = seal(recipient, body, associated_data=row.call_id.encode())
        return encode(CallPackage(call_id=row.call_id, receipt=signed, sealed=sealed))

    def _receipt(self, kind: str, call_id: str, fact: ProvenFact, agreement: Mapping[str, Any] | None,
                 fields: Sequence[str], records: int, size_bytes: int, dataset_version: int, root: bytes,
                 digest: bytes, *, consumer: str = "", code: str = "", note: str = "") -> CallReceipt:
        return CallReceipt(
            kind=kind, call_id=call_id, agreement_id=str(agreement["id"]) if agreement else "",
            entry_id=str(agreement["entry_id"]) if agreement else "", provider_org=self.org,
            consumer_org=str(agreement["consumer"]) if agreement and not consumer else consumer,
            purpose=str(agreement["purpose"]) if agreement else "", fields=tuple(fields), records=records,
            size_bytes=size_bytes, dataset_version=dataset_version, root=root, disclosure_digest=digest,
            proof_height=fact.height, proof_block_hash=fact.block_hash, at_ms=fact.timestamp_ms, code=code,
            note=note[:256])

    def _reject(self, row: CallRow, fact: ProvenFact, agreement: Mapping[str, Any] | None, code: str,
                message: str) -> CatalogueError:
        """Sign and keep a ``rejected`` receipt for a call outside its agreement (anchored like
        every receipt), settle the call; the error to raise."""
        receipt = self._receipt(ReceiptKind.REJECTED, row.call_id, fact, agreement, row.fields, 0, 0, 0, b"", b"",
                                consumer=row.peer_org, code=code, note=message)
        receipt = msgspec.structs.replace(receipt, agreement_id=row.agreement_id)
        signed = sign_record(self.vault.identity, RECEIPT_DOMAIN, receipt)
        receipt_id = self.vault.book.add_receipt(signed, ReceiptKind.REJECTED, row.call_id,
                                                 usage_key(day_of(fact.timestamp_ms)), self.vault.now_ms())
        self.log.settle(msgspec.structs.replace(row, outcome=f"rejected:{code}", detail=message[:256],
                                                receipt_ids=(receipt_id,), at_ms=fact.timestamp_ms))
        _log.warning("rejected a call of %s: %s", row.peer_org, message,
                     extra={"event": "catalogue.rejected", "code": code, "call_id": row.call_id})
        return CatalogueError(code, message)

    def acknowledged(self, signed_receipt: bytes, sender_org: str) -> bytes:
        """A consumer's ``received`` (or ``refused``) receipt for a call we answered: keep it."""
        signed, certificate = verify_signed(self.vault.suite, signed_receipt, RECEIPT_DOMAIN)
        try:
            receipt = decode(signed.body, CallReceipt)
        except CodecError as exc:
            raise CatalogueError("MALFORMED", f"not a call receipt: {exc}") from exc
        if receipt.kind not in (ReceiptKind.RECEIVED, ReceiptKind.REFUSED) or certificate.org_id != sender_org \
                or receipt.consumer_org != sender_org or receipt.provider_org != self.org:
            raise CatalogueError("MALFORMED", "an acknowledgement is the consumer's own receipt for a call answered here")
        row = self.log.call(receipt.call_id)
        if row is None or row.role != "provider" or row.outcome != "delivered":
            raise CatalogueError("NOT_FOUND", f"no call {receipt.call_id} was answered here")
        ours = self.vault.book.receipt(row.receipt_ids[0])
        if ours is None or receipt.answers != self.vault.suite.hash(ours.signed):
            raise CatalogueError("MALFORMED", "the acknowledgement answers another receipt than the one we signed")
        return self.vault.book.add_receipt(signed_receipt, receipt.kind, receipt.call_id,
                                           usage_key(day_of(receipt.at_ms)), self.vault.now_ms())

    # ------------------------------------------------------------------ making a call (consumer)

    def call(self, agreement_id: str, *, fields: Sequence[str] = (), where: Mapping[str, Sequence[Any]] | None = None,
             offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """Ask the provider's vault for records under ``agreement_id``; check every value against
        the dataset's commitment on chain; sign and keep the ``received`` receipt; the records."""
        fact = self.view.agreement(agreement_id, fresh=False)
        agreement = fact.value
        if not isinstance(agreement, dict):
            raise CatalogueError("NO_AGREEMENT", f"no agreement {agreement_id} is on chain")
        if agreement["consumer"] != self.org:
            raise CatalogueError("NOT_PARTY", f"agreement {agreement_id} is {agreement['consumer']}'s, not {self.org}'s")
        provider = str(agreement["provider"])
        endpoint = self.vault.chain.org(provider).value
        if not isinstance(endpoint, dict) or not endpoint.get("endpoint"):
            raise CatalogueError("NO_ENDPOINT", f"{provider} has registered no vault endpoint")
        request = CallRequest(call_id=secrets.token_hex(16), agreement_id=agreement_id, fields=tuple(fields),
                              where={str(k): tuple(v) for k, v in (where or {}).items()}, offset=offset, limit=limit)
        row = CallRow(call_id=request.call_id, role="consumer", agreement_id=agreement_id,
                      entry_id=str(agreement["entry_id"]), peer_org=provider, outcome="pending",
                      at_ms=self.vault.now_ms(), fields=tuple(fields))
        self.log.claim(row)
        url = str(endpoint["endpoint"])
        try:
            with self.vault.peer_client(url) as http:
                response = http.post("/v1/catalogue/deliveries", content=encode(request),
                                     headers={"content-type": "application/msgpack"})
        except httpx.HTTPError as exc:
            self.log.settle(msgspec.structs.replace(row, outcome="refused:UNREACHABLE", detail=str(exc)[:256]))
            raise CatalogueError("UNREACHABLE", f"cannot reach {provider}'s vault at {url}: {exc}") from exc
        if response.status_code != 200:
            code, message = _error_of(response)
            self.log.settle(msgspec.structs.replace(row, outcome=f"refused:{code}", detail=message[:256]))
            raise CatalogueError(code, f"{provider}'s vault refused: {message}")
        if len(response.content) > PACKAGE_BYTES_MAX:
            raise CatalogueError("MALFORMED", "the package is larger than a call may return")
        return self._consume(row, request, agreement, response.content)

    def _consume(self, row: CallRow, request: CallRequest, agreement: Mapping[str, Any], raw: bytes) -> dict[str, Any]:
        try:
            package = decode(raw, CallPackage)
        except CodecError as exc:
            raise CatalogueError("MALFORMED", f"the answer is not a call package: {exc}") from exc
        signed, certificate = verify_signed(self.vault.suite, package.receipt, RECEIPT_DOMAIN)
        delivered = decode(signed.body, CallReceipt)
        expected = (row.call_id, row.agreement_id, self.org, row.peer_org, ReceiptKind.DELIVERED)
        found = (delivered.call_id, delivered.agreement_id, delivered.consumer_org, delivered.provider_org,
                 delivered.kind)
        asked = tuple(f for f in agreement["fields"] if f in request.fields)
        if package.call_id != row.call_id or found != expected or certificate.org_id != row.peer_org \
                or (request.fields and asked != delivered.fields) \
                or not set(delivered.fields) <= set(agreement["fields"]):
            raise CatalogueError("MALFORMED", "the provider's receipt does not describe this call (or releases fields "
                                              "outside the agreement)")
        self.vault.chain.member(signed.certificate)  # signed by a current member of the provider
        answers = self.vault.suite.hash(package.receipt)
        try:
            body = open_sealed(self.vault.seal_key, package.sealed, associated_data=row.call_id.encode())
        except SealError as exc:
            raise CatalogueError("UNSEALABLE", f"the package does not open with our key: {exc}") from exc
        version = self.view.dataset_version(delivered.entry_id, delivered.dataset_version).value
        try:
            if self.vault.suite.hash(body) != delivered.disclosure_digest or len(body) != delivered.size_bytes:
                raise DisclosureInvalid("digest", "the disclosure is not the one the provider's receipt names")
            disclosure = decode(body, Disclosure)
            if (disclosure.call_id, disclosure.agreement_id, disclosure.fields, len(disclosure.records)) != \
                    (row.call_id, row.agreement_id, delivered.fields, delivered.records):
                raise DisclosureInvalid("header", "the disclosure is for another call than the receipt says")
            if not isinstance(version, dict) or version["root"] != delivered.root:
                raise DisclosureInvalid("commitment", f"dataset version {delivered.dataset_version} of "
                                                      f"{delivered.entry_id} is not on chain with that root")
            records = verify_disclosure(self.vault.suite, disclosure, root=version["root"],
                                        record_count=int(version["records"]), schema=tuple(version["fields"]))
        except (DisclosureInvalid, CodecError) as exc:
            code = "COMMITMENT_MISMATCH"
            self._refuse(row, delivered, answers, version, code, str(exc))
            raise CatalogueError(code, f"the answer to call {row.call_id} was refused: {exc}") from exc
        received = msgspec.structs.replace(delivered, kind=ReceiptKind.RECEIVED, answers=answers,
                                           note=f"{len(records)} records verified against the commitment")
        mine = sign_record(self.vault.identity, RECEIPT_DOMAIN, received)
        usage = usage_key(day_of(delivered.at_ms))
        theirs_id = self.vault.book.add_receipt(package.receipt, ReceiptKind.DELIVERED, row.call_id, usage,
                                                self.vault.now_ms())
        mine_id = self.vault.book.add_receipt(mine, ReceiptKind.RECEIVED, row.call_id, usage, self.vault.now_ms())
        self.log.settle(msgspec.structs.replace(row, outcome="received", fields=delivered.fields,
                                                records=delivered.records, size_bytes=delivered.size_bytes,
                                                receipt_ids=(theirs_id, mine_id), at_ms=delivered.at_ms))
        self.log.queue_ack(row.call_id, row.peer_org, mine)
        self._send_ack(row.call_id, row.peer_org, mine)  # its vault just answered; the others wait for maintenance
        current = self.view.dataset(delivered.entry_id, fresh=False).value
        return {"call_id": row.call_id, "agreement_id": row.agreement_id, "entry_id": delivered.entry_id,
                "provider": row.peer_org, "fields": list(delivered.fields), "records": records,
                "matched": disclosure.matched, "offset": request.offset, "dataset_version": delivered.dataset_version,
                "root": delivered.root.hex(), "verified": True,
                "current_dataset": isinstance(current, dict) and current["version"] == delivered.dataset_version,
                "receipt_ids": [theirs_id.hex(), mine_id.hex()], "at_ms": delivered.at_ms}

    def _refuse(self, row: CallRow, delivered: CallReceipt, answers: bytes, version: Any, code: str,
                detail: str) -> None:
        refused = msgspec.structs.replace(delivered, kind=ReceiptKind.REFUSED, answers=answers, code=code,
                                          note=detail[:256])
        mine = sign_record(self.vault.identity, RECEIPT_DOMAIN, refused)
        receipt_id = self.vault.book.add_receipt(mine, ReceiptKind.REFUSED, row.call_id,
                                                 usage_key(day_of(delivered.at_ms)), self.vault.now_ms())
        self.log.settle(msgspec.structs.replace(row, outcome=f"refused:{code}", detail=detail[:256],
                                                receipt_ids=(receipt_id,)))
        if isinstance(version, dict):  # a complaint on chain against the dataset's payload
            self.vault.book.queue(OutboxItem(kind="complain", payload_id=str(version["payload_id"]),
                                             peer_org=row.peer_org,
                                             data=encode([row.call_id, code, self.vault.suite.hash(mine)])))
        self.log.queue_ack(row.call_id, row.peer_org, mine)

    def send_acks(self) -> int:
        """Send queued ``received`` / ``refused`` receipts to the providers; how many arrived."""
        return sum(1 for call_id, provider, signed in self.log.acks() if self._send_ack(call_id, provider, signed))

    def _send_ack(self, call_id: str, provider: str, signed: bytes) -> bool:
        try:
            endpoint = self.vault.chain.org(provider).value
            if not isinstance(endpoint, dict):
                return False
            with self.vault.peer_client(str(endpoint["endpoint"])) as http:
                response = http.post("/v1/catalogue/acknowledgements", content=signed,
                                     headers={"content-type": "application/msgpack"})
        except (httpx.HTTPError, ExchangeError, PilotchainError) as exc:
            _log.info("will retry the acknowledgement of call %s: %s", call_id, exc)
            return False
        if response.status_code in (200, 201) or _error_of(response)[0] in ("NOT_FOUND", "MALFORMED"):
            self.log.ack_sent(call_id)  # kept, or never to be kept: do not send it again
        return response.status_code in (200, 201)

    # ------------------------------------------------------------------ evidence

    def receipts_of_day(self, day: str) -> list[dict[str, Any]]:
        out = []
        for receipt_id, row in self.vault.book.receipts_of(usage_key(day)):
            proof = self.vault.book.proof(receipt_id)
            receipt = decode(decode(row.signed, SignedRecord).body, CallReceipt)
            out.append({"receipt_id": receipt_id.hex(), "kind": row.kind, "call_id": row.request_id,
                        "agreement_id": receipt.agreement_id, "entry_id": receipt.entry_id,
                        "provider": receipt.provider_org, "consumer": receipt.consumer_org,
                        "records": receipt.records, "size_bytes": receipt.size_bytes, "code": receipt.code,
                        "at_ms": receipt.at_ms, "anchored": proof is not None,
                        "anchor": None if proof is None else {"root": proof.root.hex(), "index": proof.index,
                                                              "count": proof.count, "tx_id": proof.tx_id,
                                                              "height": proof.height}})
        return out

    def usage_evidence(self, days: Sequence[str]) -> tuple[bytes | None, int]:
        """An evidence bundle of every anchored catalogue receipt of ``days`` (and how many are
        not anchored yet): the receipts with their paths to batch roots whose anchoring
        transactions come with inclusion proofs, headers, commit certificates and the validator
        history (pilotchain.sdk.evidence). None when no receipt of those days is anchored."""
        from pilotchain.apps.exchange.receipts import BatchState
        from pilotchain.sdk.evidence import AttachmentBatch, export_evidence

        batches: dict[bytes, tuple[str, list[bytes], set[int]]] = {}
        pending = 0
        for day in days:
            for _, row in self.vault.book.receipts_of(usage_key(day)):
                batch = self.vault.book.batch(row.batch_root) if row.batch_root else None
                if batch is None or batch.state != BatchState.ANCHORED or not batch.tx_id:
                    pending += 1
                    continue
                if row.batch_root not in batches:
                    documents = []
                    for receipt_id in batch.receipt_ids:
                        kept = self.vault.book.receipt(receipt_id)
                        if kept is None:  # pragma: no cover - receipts are never deleted
                            raise CatalogueError("CORRUPT", "an anchored batch names a receipt the book lost")
                        documents.append(kept.signed)
                    batches[row.batch_root] = (batch.tx_id, documents, set())
                batches[row.batch_root][2].add(row.index)
        if not batches:
            return None, pending
        attachments = [AttachmentBatch(tx_id=tx_id, argument="batch", documents=tuple(documents),
                                       include=tuple(sorted(indices)))
                       for tx_id, documents, indices in batches.values()]
        try:
            bundle = export_evidence(self.vault.client, [], attachments=attachments, genesis=self.vault.chain.genesis)
        except PilotchainError as exc:
            raise CatalogueError("UNPROVEN", f"the chain cannot prove these receipts now: {exc}") from exc
        return bundle, pending

    def calls_of_day(self, day: str, limit: int = 10_000) -> list[dict[str, Any]]:
        return [row.as_json() for row in self.log.calls_of_day(day, limit)]


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        document = response.json()
        return str(document.get("code", response.status_code)), str(document.get("message", response.text))
    except ValueError:
        return str(response.status_code), response.text[:200]

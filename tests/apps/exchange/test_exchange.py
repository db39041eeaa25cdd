"""The data exchange end to end, in process: a payload registered by A, refused to B before a
PERMIT, delivered after it (decrypted, commitment checked, receipts on both sides anchored with
proofs), refused again after the PERMIT is withdrawn, replays refused, purged everywhere."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from pilotchain.apps.exchange.client import VaultError
from pilotchain.apps.exchange.records import (
    CONTRACT,
    DeliveryRequest,
    Receipt,
    ReceiptKind,
    verify_signed,
)
from pilotchain.apps.exchange.vault import RECEIPT_DOMAIN
from pilotchain.codec import decode, encode
from pilotchain.ledger import merkle
from pilotchain.ledger.tx import decode_transaction
from pilotchain.sdk import SignedRequests
from tests.apps.exchange.helpers import Exchange, endpoint, exchange

pytestmark = pytest.mark.timeout(180)

MARKER = b"PATIENT-42 diagnosis: confidential marker 7f3a"


def _payload() -> bytes:
    return MARKER + bytes(range(256)) * 9000  # ~2.3 MB: several chunks


def _refused(call: Any, code: str) -> VaultError:
    with pytest.raises(VaultError) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


def _decide(world: Exchange, owner: str, payload_id: str, org: str, *, purpose: str = "TREAT",
            until_ms: int | None = None) -> None:
    until = until_ms if until_ms is not None else int(time.time() * 1000) + 3_600_000
    world.as_org(owner).invoke(world.chain.identity(owner), CONTRACT, "decide",
                               {"payload_id": payload_id, "org": org, "purpose": purpose, "until_ms": until})


def _every_block_bytes(world: Exchange) -> bytes:
    client = world.as_org(next(iter(world.vaults)))
    head = client.status().height
    return b"".join(t.raw for h in range(1, head + 1) for t in client.get_block(h).transactions)


def test_a_payload_travels_only_under_a_current_permit(tmp_path: Path) -> None:
    with exchange(tmp_path) as world:
        a, b, c = list(world.vaults)
        data = _payload()
        with world.client(a) as vault_a, world.client(b) as vault_b, world.client(c) as vault_c:
            registered = vault_a.put("scan-001", data, media_type="application/dicom", classification="important",
                                     retention_until_ms=int(time.time() * 1000) + 10**9, subjects=["pt:9f2c"])
            assert registered["size"] == len(data) and registered["tx_id"]
            on_chain = world.as_org(b).query(CONTRACT, "payload", {"payload_id": "scan-001"})
            assert on_chain["owner"] == a and on_chain["commitment"].hex() == registered["commitment"]
            assert on_chain["classification"] == "important" and on_chain["subjects"] == ["pt:9f2c"]
            assert vault_a.read("scan-001") == data

            # before a PERMIT: refused, recorded on both sides, nothing released
            error = _refused(lambda: vault_b.fetch("scan-001", "TREAT"), "NO_PERMIT")
            assert "holds no decision" in error.message
            assert any(r["outcome"] == "refused:NO_PERMIT" for r in vault_a.requests("scan-001"))
            _refused(lambda: vault_b.get("scan-001"), "NOT_FOUND")

            _decide(world, a, "scan-001", b)
            _refused(lambda: vault_b.fetch("scan-001", "HRESCH"), "WRONG_PURPOSE")
            fetched = vault_b.fetch("scan-001", "TREAT")
            assert fetched["role"] == "copy" and fetched["commitment"] == registered["commitment"]
            assert vault_b.read("scan-001") == data
            # C holds no PERMIT of its own: B's does not help it
            _refused(lambda: vault_c.fetch("scan-001", "TREAT"), "NO_PERMIT")

            # receipts: the provider's "delivered", the consumer's "received", both anchored
            world.vaults[b].flush_outbox()  # B's acknowledgement reaches A
            for org in (a, b):
                assert world.vaults[org].anchor_once() is not None
            kinds_a = {r["kind"]: r for r in vault_a.receipts("scan-001")}
            kinds_b = {r["kind"]: r for r in vault_b.receipts("scan-001")}
            assert {"delivered", "received"} <= set(kinds_a) and {"delivered", "received"} <= set(kinds_b)
            suite = world.vaults[a].suite
            for holder, receipt in [*((a, r) for r in kinds_a.values()), *((b, r) for r in kinds_b.values())]:
                assert receipt["anchored"], receipt
                proof = receipt["proof"]
                signed = base64.b64decode(receipt["signed"])
                assert merkle.verify_inclusion(suite.hash, bytes.fromhex(proof["root"]), signed, proof["index"],
                                               proof["count"], [bytes.fromhex(p) for p in proof["path"]])
                anchored = world.as_org(a).query(CONTRACT, "anchored", {"root": bytes.fromhex(proof["root"])})
                assert anchored is not None and anchored["count"] == proof["count"] and holder in anchored["by"]
                verify_signed(suite, signed, RECEIPT_DOMAIN)
            received = decode(verify_signed(suite, base64.b64decode(kinds_b["received"]["signed"]),
                                            RECEIPT_DOMAIN)[0].body, Receipt)
            assert received.kind == ReceiptKind.RECEIVED and received.note == "commitment verified"

            # withdrawn: B's next fetch is refused with the reason
            world.as_org(a).invoke(world.chain.identity(a), CONTRACT, "withdraw",
                                   {"payload_id": "scan-001", "org": b, "reason": "consent withdrawn"})
            error = _refused(lambda: vault_b.fetch("scan-001", "TREAT"), "WITHDRAWN")
            assert "consent withdrawn" in error.message

            # no payload byte is in any block
            assert MARKER not in _every_block_bytes(world)
            assert data[1000:1064] not in _every_block_bytes(world)


def test_replayed_and_foreign_requests_get_nothing(tmp_path: Path) -> None:
    with exchange(tmp_path) as world:
        a, b, c = list(world.vaults)
        with world.client(a) as vault_a:
            vault_a.put("doc", b"x" * 1000, media_type="text/plain", classification="general",
                        retention_until_ms=int(time.time() * 1000) + 10**9)
        _decide(world, a, "doc", b)
        request = encode(DeliveryRequest(payload_id="doc", owner_org=a, purpose="TREAT", request_id="ab" * 16))
        transport = world.transport(endpoint(a))
        import httpx

        with httpx.Client(base_url=endpoint(a), transport=transport,
                          auth=SignedRequests(world.chain.identity(b))) as as_b:
            first = as_b.post("/v1/deliveries", content=request)
            assert first.status_code == 200
            again = as_b.post("/v1/deliveries", content=request)  # the same request id: a replay
            assert again.status_code == 409 and again.json()["code"] == "REPLAYED"
            # B's members may not use A's vault as their own
            local = as_b.get("/v1/payloads/doc")
            assert local.status_code == 403
        with httpx.Client(base_url=endpoint(a), transport=transport) as anonymous:
            assert anonymous.post("/v1/deliveries", content=request).status_code == 401
            assert anonymous.get("/healthz").json()["org"] == a
        # C asks with a fresh request id but holds no PERMIT
        with httpx.Client(base_url=endpoint(a), transport=transport,
                          auth=SignedRequests(world.chain.identity(c))) as as_c:
            other = encode(DeliveryRequest(payload_id="doc", owner_org=a, purpose="TREAT", request_id="cd" * 16))
            refused = as_c.post("/v1/deliveries", content=other)
            assert refused.status_code == 403 and refused.json()["code"] == "NO_PERMIT"
        metrics = httpx.Client(base_url=endpoint(a), transport=transport).get("/metrics").text
        assert 'pilotchain_vault_refusals_total{reason="NO_PERMIT"} 1.0' in metrics
        assert "pilotchain_vault_deliveries_total 1.0" in metrics


def test_a_purge_reaches_every_copy(tmp_path: Path) -> None:
    with exchange(tmp_path) as world:
        a, b, _ = list(world.vaults)
        with world.client(a) as vault_a, world.client(b) as vault_b:
            vault_a.put("rec", b"record" * 100, media_type="text/plain", classification="general",
                        retention_until_ms=int(time.time() * 1000) + 10**9)
            _decide(world, a, "rec", b)
            vault_b.fetch("rec", "TREAT")
            assert world.vaults[b].reconcile_purges() == []  # the first pass checks every copy: none purged
            purged = vault_a.purge("rec", "patient asked to delete (PIPL art. 47)")
            assert purged["state"] == "purged" and purged["tx_id"]
            _refused(lambda: vault_b.fetch("rec", "TREAT"), "PURGED")
            assert world.vaults[b].reconcile_purges() == ["rec"]  # later passes: the purge found in the new blocks
            assert world.vaults[b].flush_outbox() >= 1
            assert vault_b.get("rec")["state"] == "purged"
            _refused(lambda: vault_b.read("rec"), "PURGED")
            record = world.as_org(a).query(CONTRACT, "payload", {"payload_id": "rec"})
            assert record["purged"]["reason"].startswith("patient asked") and record["commitment"]
            confirmations = json.dumps([r for r in world.vaults[b].book.requests("rec")], default=str)
            assert "received" in confirmations
            assert world.vaults[b].reconcile_purges() == []  # idempotent


def test_the_tx_arguments_carry_only_commitments(tmp_path: Path) -> None:
    with exchange(tmp_path) as world:
        a = next(iter(world.vaults))
        with world.client(a) as vault_a:
            result = vault_a.put("p", MARKER, media_type="text/plain", classification="core",
                                 retention_until_ms=int(time.time() * 1000) + 10**9)
        tx = world.as_org(a).get_tx(result["tx_id"])
        assert tx.state == "committed"
        body = decode_transaction(world.vaults[a].suite, _raw_of(world, result["tx_id"])).body
        assert MARKER not in body.args
        salt_free = world.vaults[a].suite.hash(MARKER)
        assert salt_free.hex() != result["commitment"]  # salted: a guess cannot be confirmed


def _raw_of(world: Exchange, tx_id: str) -> bytes:
    client = world.as_org(next(iter(world.vaults)))
    tx = client.get_tx(tx_id)
    assert tx.height is not None
    block = client.get_block(tx.height)
    return next(t.raw for t in block.transactions if t.tx_id == tx_id)


def test_a_delivery_that_does_not_match_its_commitment_is_refused_and_complained_of(tmp_path: Path) -> None:
    with exchange(tmp_path) as world:
        a, b, _ = list(world.vaults)
        with world.client(a) as vault_a, world.client(b) as vault_b:
            vault_a.put("lab", b"HbA1c 6.1 %" * 500, media_type="text/plain", classification="general",
                        retention_until_ms=int(time.time() * 1000) + 10**9)
            _decide(world, a, "lab", b)
            honest_read = world.vaults[a].store.read

            def forged(payload_id: str) -> Any:  # a provider that alters the bytes it sends
                for chunk in honest_read(payload_id):
                    yield chunk.replace(b"6.1", b"9.9")

            world.vaults[a].store.read = forged  # type: ignore[method-assign]
            error = _refused(lambda: vault_b.fetch("lab", "TREAT"), "COMMITMENT_MISMATCH")
            assert "refused" in error.message
            _refused(lambda: vault_b.get("lab"), "NOT_FOUND")  # nothing kept
            refused = [r for r in vault_b.receipts("lab") if r["kind"] == "refused"]
            assert len(refused) == 1
            assert world.vaults[b].flush_outbox() >= 1  # the signed complaint goes on chain
            request_id = refused[0]["request_id"]
            complaint = world.as_org(a).query(CONTRACT, "complaint", {"request_id": request_id})
            assert complaint["org"] == b and complaint["owner"] == a and complaint["reason"] == "COMMITMENT_MISMATCH"
            assert world.vaults[b].anchor_once() is not None
            assert all(r["anchored"] for r in vault_b.receipts("lab"))


def test_the_async_client_stores_fetches_and_reads(tmp_path: Path) -> None:
    import asyncio

    import httpx

    from pilotchain.apps.exchange.client import AsyncVaultClient

    with exchange(tmp_path, orgs=2) as world:
        a, b = list(world.vaults)
        _ = b

        async def main() -> None:
            transport = httpx.ASGITransport(app=world.apps[a])
            async with AsyncVaultClient(endpoint(a), world.chain.identity(a), transport=transport) as vault_a:
                stored = await vault_a.put("async-1", b"via the async client", media_type="text/plain",
                                           classification="general", retention_until_ms=int(time.time() * 1000) + 10**9)
                assert stored["size"] == 20
                assert (await vault_a.get("async-1"))["state"] == "live"
                assert await vault_a.read("async-1") == b"via the async client"

        asyncio.run_coroutine_threadsafe(main(), world.chain._loop_thread.loop).result(60)


def test_the_release_rule_names_every_reason() -> None:
    from pilotchain.apps.exchange.chainview import ProvenFact
    from pilotchain.apps.exchange.store import PayloadRole, StoredPayload
    from pilotchain.apps.exchange.vault import release_problem

    stored = StoredPayload(payload_id="p", owner_org="a", role=PayloadRole.OWN, copy_of=None, media_type="text/plain",
                           size_bytes=1, salt=b"s" * 32, commitment=b"c" * 32, classification="general",
                           retention_until_ms=10**13, created_ms=0)
    registered = ProvenFact({"owner": "a", "commitment": b"c" * 32, "purged": None}, 5, b"h" * 32, 1_000)

    def permit(**changes: Any) -> ProvenFact:
        decision = {"decision": "PERMIT", "purpose": "TREAT", "until_ms": 2_000, "reason": ""}
        decision.update(changes)
        return ProvenFact(decision, 5, b"h" * 32, 1_000)

    assert release_problem(stored, registered, permit(), "b", "TREAT") is None
    cases = {
        "EXPIRED": release_problem(stored, registered, permit(until_ms=1_000), "b", "TREAT"),
        "WRONG_PURPOSE": release_problem(stored, registered, permit(), "b", "HRESCH"),
        "WITHDRAWN": release_problem(stored, registered, permit(decision="WITHDRAWN", reason="x"), "b", "TREAT"),
        "NO_PERMIT": release_problem(stored, registered, ProvenFact(None, 5, b"h" * 32, 1_000), "b", "TREAT"),
        "PURGED": release_problem(stored, ProvenFact({**registered.value, "purged": {"reason": "r"}}, 5, b"h" * 32,
                                                     1_000), permit(), "b", "TREAT"),
        "MISMATCH": release_problem(stored, ProvenFact({**registered.value, "commitment": b"d" * 32}, 5, b"h" * 32,
                                                       1_000), permit(), "b", "TREAT"),
        "NOT_REGISTERED": release_problem(stored, ProvenFact(None, 5, b"h" * 32, 1_000), permit(), "b", "TREAT"),
    }
    for code, problem in cases.items():
        assert problem is not None and problem[0] == code, (code, problem)


def test_the_vault_describes_its_api_in_openapi(tmp_path: Path) -> None:
    import httpx

    with exchange(tmp_path, orgs=2) as world:
        a = next(iter(world.vaults))
        with httpx.Client(base_url=endpoint(a), transport=world.transport(endpoint(a)),
                          auth=SignedRequests(world.chain.identity(a))) as http:
            spec = http.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.")
        assert {"/v1/payloads/{payload_id}", "/v1/deliveries", "/v1/audit/export", "/v1/receipts"} <= set(spec["paths"])


def test_who_may_purge_the_owner_a_legal_order_or_anyone_after_retention(tmp_path: Path) -> None:
    with exchange(tmp_path, init={"args": {"legal_orgs": ["hospital"]}}) as world:
        a, b, c = list(world.vaults)
        assert c == "hospital"
        now = int(time.time() * 1000)
        with world.client(a) as vault_a:
            vault_a.put("kept", b"k" * 10, media_type="text/plain", classification="general", retention_until_ms=now + 10**9)
            vault_a.put("short", b"s" * 10, media_type="text/plain", classification="general", retention_until_ms=now + 3_000)
        purge = {"payload_id": "kept", "reason": "not mine to purge"}
        refused = world.as_org(b).invoke(world.chain.identity(b), CONTRACT, "purge", purge, check=False)
        assert refused.receipt is not None and refused.receipt.status == "PERMISSION_DENIED"
        ordered = world.as_org(c).invoke(world.chain.identity(c), CONTRACT, "purge",
                                         {"payload_id": "kept", "reason": "court order 2026-17"}, check=False)
        assert ordered.receipt is not None and ordered.receipt.status == "OK"
        record = world.as_org(a).query(CONTRACT, "payload", {"payload_id": "kept"})
        assert record["purged"]["grounds"] == "legal order" and record["purged"]["by_org"] == c
        # once retention has passed (block time), anyone may purge
        deadline = time.monotonic() + 20
        while world.as_org(b).status().last_block_time_ms < now + 3_000:  # wait on the chain's clock, bounded
            assert time.monotonic() < deadline, "the chain's time did not pass the retention"
            world.as_org(b).invoke(world.chain.identity(b), "kv", "put", {"key": "tick", "value": 1})
        expired = world.as_org(b).invoke(world.chain.identity(b), CONTRACT, "purge",
                                         {"payload_id": "short", "reason": "retention ended"}, check=False)
        assert expired.receipt is not None and expired.receipt.status == "OK", expired.receipt
        assert world.as_org(a).query(CONTRACT, "payload", {"payload_id": "short"})["purged"]["grounds"] == "retention expired"

"""The gateway over a LocalNode through ASGITransport (no sockets): every endpoint, every error path."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from pilotchain.crypto import get_suite
from pilotchain.gateway import GatewayOptions, create_app
from pilotchain.ledger.block import block_hash, verify_tx_proof
from pilotchain.node.local import LocalNode
from pilotchain.node.mempool import MempoolLimits
from pilotchain.sdk import SignedRequests, build_transaction
from pilotchain.sdk.wire import (
    b64,
    header_from_json,
    receipt_from_json,
    state_proof_from_json,
    tx_proof_from_json,
    unb64,
)
from pilotchain.storage import verify_state_proof
from pilotchain.testing import Consortium
from tests.gateway.helpers import BASE_URL, gateway, run, signed, wait_until

OCTETS = {"content-type": "application/octet-stream"}


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["code"] == code, document
    assert document["message"]
    return document


# ---------------------------------------------------------------------- status, health, metrics


def test_status_health_metrics_openapi(consortium: Consortium, tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (node, client):
            status = (await client.get("/v1/status")).json()
            assert status["chain_id"] == consortium.genesis.chain_id
            assert status["node"] == consortium.validator and status["suite"] == "intl"
            assert status["height"] == 0 and status["validators"] == [consortium.validator]
            assert (
                status["mempool"] == {"size": 0}
                and status["peers"] == {}
                and status["syncing"] is False
            )
            assert len(bytes.fromhex(status["last_block_hash"])) == 32
            assert len(bytes.fromhex(status["state_root"])) == 32

            health = await client.get("/healthz")
            assert health.status_code == 200 and health.json() == {
                "ok": True, "reason": "ok", "chain_id": consortium.genesis.chain_id, "genesis_hash": status["genesis_hash"]}

            metrics = await client.get("/metrics")
            assert metrics.status_code == 200 and metrics.headers["content-type"].startswith(
                "text/plain"
            )
            assert "pilotchain_node_height" in metrics.text
            assert (
                'pilotchain_gateway_requests_total{method="GET",route="/v1/status",status="200"} 1.0'
                in metrics.text
            )
            assert "pilotchain_gateway_request_seconds_bucket" in metrics.text

            spec = (await client.get("/openapi.json")).json()
            for path in (
                "/v1/status",
                "/v1/blocks/{height}",
                "/v1/blocks/latest",
                "/v1/txs",
                "/v1/txs/{tx_id}",
                "/v1/state/{contract}/{key}",
                "/v1/query/{contract}/{method}",
                "/v1/events",
                "/metrics",
                "/healthz",
            ):
                assert path in spec["paths"], path

    run(main())


def test_unhealthy_node_is_503(consortium: Consortium, tmp_path: Path) -> None:
    async def main() -> None:
        node = LocalNode.open(tmp_path / "d", consortium.genesis)
        app = create_app(node)
        raw, _ = signed(consortium.clients["bigdata-bureau"], consortium)
        await node.close()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL,
                auth=SignedRequests(consortium.reader()),
        ) as client:
            health = await client.get("/healthz")
            assert health.status_code == 503 and health.json()["ok"] is False
            response = await client.post("/v1/txs", content=raw, headers=OCTETS)
            _error(response, 503, "UNAVAILABLE")
            assert response.headers["retry-after"]

    run(main())


# ---------------------------------------------------------------------- submit → commit → proofs


@pytest.mark.parametrize("suite_fixture", ["consortium", "gm_consortium"])
def test_submit_commit_and_every_proof_verifies(
    suite_fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    consortium: Consortium = request.getfixturevalue(suite_fixture)
    suite = get_suite(consortium.genesis.suite)
    alice = consortium.clients["bigdata-bureau"]

    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (node, client):
            raw, tx_id = signed(alice, consortium, {"key": "rate", "value": 425})
            accepted = await client.post("/v1/txs", content=raw, headers=OCTETS)
            assert accepted.status_code == 202
            assert accepted.json() == {
                "tx_id": tx_id,
                "state": "pending",
                "status_url": f"/v1/txs/{tx_id}",
            }
            assert (await client.get(f"/v1/txs/{tx_id}")).json() == {
                "tx_id": tx_id,
                "state": "pending",
            }
            assert (await client.get("/v1/status")).json()["mempool"]["size"] == 1

            block = node.produce_block()
            assert block is not None and block.header.height == 1

            document = (await client.get(f"/v1/txs/{tx_id}")).json()
            assert (
                document["state"] == "committed"
                and document["height"] == 1
                and document["index"] == 0
            )
            header = header_from_json(document["header"])
            assert block_hash(suite, header).hex() == document["block_hash"]
            receipt = receipt_from_json(document["receipt"])
            assert receipt.status == "OK" and document["receipt"]["events"][0]["name"] == "put"
            assert document["receipt"]["events"][0]["data"] == {
                "key": "rate",
                "org": "bigdata-bureau",
            }
            assert verify_tx_proof(
                suite,
                header,
                unb64(document["tx"]["raw"]),
                receipt,
                tx_proof_from_json(document["proof"]),
            )
            assert document["tx"]["signer"]["org"] == "bigdata-bureau"
            assert document["tx"]["contract"] == "kv" and document["tx"]["method"] == "put"
            assert document["tx"]["args"] == {"key": "rate", "value": 425}
            assert document["certificate"] is None

            for path in ("/v1/blocks/1", "/v1/blocks/latest"):
                block_doc = (await client.get(path)).json()
                assert block_doc["height"] == 1 and block_doc["hash"] == document["block_hash"]
                assert block_doc["transactions"][0]["tx_id"] == tx_id
                assert block_doc["receipts"][0]["status"] == "OK"
                assert block_doc["transactions"][0]["signer"]["subject"] == alice.subject
                assert block_doc["certificate"] is None
            genesis_block = (await client.get("/v1/blocks/0")).json()
            assert genesis_block["height"] == 0 and genesis_block["transactions"] == []

            # state: kv stores (org, value) under "v/<key>"
            key = b"v/rate"
            by_path = (
                await client.get(
                    f"/v1/state/kv/{base64.urlsafe_b64encode(key).decode().rstrip('=')}"
                )
            ).json()
            by_text = (await client.get("/v1/state/kv", params={"key_text": "v/rate"})).json()
            by_query = (
                await client.get(
                    "/v1/state/kv", params={"key": base64.urlsafe_b64encode(key).decode()}
                )
            ).json()
            assert by_path == by_text == by_query
            assert by_path["value_decoded"] == ["bigdata-bureau", 425]
            state_header = header_from_json(by_path["header"])
            assert verify_state_proof(
                state_header.state_root,
                b"kv\x00" + key,
                unb64(by_path["value"]),
                state_proof_from_json(by_path["proof"]),
                suite.hash,
            )
            absent = (await client.get("/v1/state/kv", params={"key_text": "v/none"})).json()
            assert absent["value"] is None and absent["value_decoded"] is None
            assert verify_state_proof(
                state_header.state_root,
                b"kv\x00v/none",
                None,
                state_proof_from_json(absent["proof"]),
                suite.hash,
            )

            # JSON submission of a second transaction
            raw2, tx_id2 = signed(alice, consortium, {"key": "rate", "value": 430})
            accepted = await client.post("/v1/txs", json={"tx": b64(raw2)})
            assert accepted.status_code == 202 and accepted.json()["tx_id"] == tx_id2

            # a read-only query sees the committed value
            answer = await client.post("/v1/query/kv/get", json={"args": {"key": "rate"}})
            assert answer.status_code == 200 and answer.json() == {"result": 425}

    run(main())


def test_failed_execution_is_committed_with_its_reason(
    consortium: Consortium, tmp_path: Path
) -> None:
    owner, other = consortium.clients["bigdata-bureau"], consortium.clients["bank"]

    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (node, client):
            raw, _ = signed(owner, consortium, {"key": "owned", "value": 1})
            await client.post("/v1/txs", content=raw, headers=OCTETS)
            node.produce_block()
            raw, tx_id = signed(other, consortium, {"key": "owned", "value": 2})
            assert (await client.post("/v1/txs", content=raw, headers=OCTETS)).status_code == 202
            node.produce_block()
            receipt = (await client.get(f"/v1/txs/{tx_id}")).json()["receipt"]
            assert receipt["status"] == "PERMISSION_DENIED" and "owned by" in receipt["message"]

    run(main())


# ---------------------------------------------------------------------- submit errors


def test_submit_error_paths(consortium: Consortium, tmp_path: Path) -> None:
    alice = consortium.clients["bigdata-bureau"]

    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (node, client):
            _error(await client.post("/v1/txs", json={"tx": "not base64!"}), 400, "BAD_REQUEST")
            _error(await client.post("/v1/txs", json={"nope": 1}), 400, "BAD_REQUEST")
            _error(
                await client.post(
                    "/v1/txs", content=b"{not json", headers={"content-type": "application/json"}
                ),
                400,
                "BAD_REQUEST",
            )
            _error(await client.post("/v1/txs", content=b"", headers=OCTETS), 400, "BAD_REQUEST")
            _error(
                await client.post("/v1/txs", content=b"x", headers={"content-type": "text/plain"}),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            )
            _error(
                await client.post("/v1/txs", content=b"\x01\x02garbage", headers=OCTETS),
                400,
                "MALFORMED",
            )

            raw, tx_id = signed(alice, consortium)
            # the signature is the last 64 bytes (bin8: c4 40); re-encode its length as bin16
            assert raw[-66:-64] == b"\xc4\x40"
            non_canonical = raw[:-66] + b"\xc5\x00\x40" + raw[-64:]
            _error(
                await client.post("/v1/txs", content=non_canonical, headers=OCTETS),
                400,
                "NON_CANONICAL",
            )

            forged = raw[:-1] + bytes([raw[-1] ^ 1])
            refused = _error(
                await client.post("/v1/txs", content=forged, headers=OCTETS), 400, "BAD_SIGNATURE"
            )
            assert refused["tx_id"] == tx_id
            # the refusal is remembered for the id
            remembered = (await client.get(f"/v1/txs/{tx_id}")).json()
            assert remembered["state"] == "rejected" and remembered["code"] == "BAD_SIGNATURE"

            assert (await client.post("/v1/txs", content=raw, headers=OCTETS)).status_code == 202
            _error(await client.post("/v1/txs", content=raw, headers=OCTETS), 409, "DUPLICATE")
            node.produce_block()
            _error(await client.post("/v1/txs", content=raw, headers=OCTETS), 409, "DUPLICATE")

            expired, expired_id = signed(alice, consortium, now_ms=1_000, expires_in_ms=1)
            _error(await client.post("/v1/txs", content=expired, headers=OCTETS), 400, "EXPIRED")
            rejected = (await client.get(f"/v1/txs/{expired_id}")).json()
            assert rejected == {
                "tx_id": expired_id,
                "state": "rejected",
                "code": "EXPIRED",
                "message": rejected["message"],
            }

            wrong_chain = build_transaction(
                alice, "other-chain", "kv", "put", {"key": "k", "value": 1}
            ).raw
            _error(
                await client.post("/v1/txs", content=wrong_chain, headers=OCTETS),
                400,
                "WRONG_CHAIN",
            )

    run(main())


def test_body_limits_are_413(consortium: Consortium, tmp_path: Path) -> None:
    limit = consortium.genesis.params.tx_limits.tx_bytes_max

    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (_node, client):
            _error(
                await client.post("/v1/txs", content=b"\x00" * (limit + 1), headers=OCTETS),
                413,
                "TOO_LARGE",
            )
            _error(
                await client.post("/v1/txs", json={"tx": b64(b"\x00" * (limit + 1))}),
                413,
                "TOO_LARGE",
            )
            huge = b"\x00" * (limit * 2)
            _error(await client.post("/v1/txs", content=huge, headers=OCTETS), 413, "TOO_LARGE")

            async def chunks() -> Any:  # no Content-Length: counted while streaming
                for _ in range(3):
                    yield b"\x00" * limit

            _error(await client.post("/v1/txs", content=chunks(), headers=OCTETS), 413, "TOO_LARGE")
            _error(
                await client.post(
                    "/v1/query/kv/get", content=huge, headers={"content-type": "application/json"}
                ),
                413,
                "TOO_LARGE",
            )

    run(main())


def test_mempool_full_is_429(consortium: Consortium, tmp_path: Path) -> None:
    alice = consortium.clients["bigdata-bureau"]

    async def main() -> None:
        async with gateway(consortium, tmp_path / "d", mempool_limits=MempoolLimits(txs_max=1)) as (
            _node,
            client,
        ):
            assert (
                await client.post("/v1/txs", content=signed(alice, consortium)[0], headers=OCTETS)
            ).status_code == 202
            response = await client.post(
                "/v1/txs", content=signed(alice, consortium)[0], headers=OCTETS
            )
            _error(response, 429, "MEMPOOL_FULL")
            assert response.headers["retry-after"]

    run(main())


# ---------------------------------------------------------------------- reads: errors


def test_read_error_paths(consortium: Consortium, tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (_node, client):
            unknown = _error(await client.get("/v1/txs/" + "ab" * 32), 404, "NOT_FOUND")
            assert unknown["state"] == "unknown"
            _error(await client.get("/v1/txs/zz"), 400, "BAD_REQUEST")
            _error(await client.get("/v1/txs/abcd"), 400, "BAD_REQUEST")
            missing = _error(await client.get("/v1/blocks/7"), 404, "NOT_FOUND")
            assert missing["head"] == 0
            _error(await client.get("/v1/blocks/-1"), 400, "BAD_REQUEST")
            _error(await client.get("/v1/blocks/one"), 400, "BAD_REQUEST")
            _error(await client.get("/v1/state/kv/not+base64url"), 400, "BAD_REQUEST")
            _error(await client.get("/v1/state/kv"), 400, "BAD_REQUEST")
            _error(
                await client.get("/v1/state/kv", params={"key": "YQ", "key_text": "a"}),
                400,
                "BAD_REQUEST",
            )
            _error(
                await client.get("/v1/state/kv", params={"key_text": "x" * 2000}),
                400,
                "BAD_REQUEST",
            )

            _error(
                await client.post("/v1/query/nope/get", json={"args": {"key": "a"}}),
                404,
                "UNKNOWN_CONTRACT",
            )
            _error(
                await client.post("/v1/query/kv/get", json={"args": {"wrong": 1}}),
                400,
                "BAD_ARGUMENTS",
            )
            _error(
                await client.post("/v1/query/kv/get", json={"args": {"key": 1.5}}),
                400,
                "BAD_ARGUMENTS",
            )
            _error(
                await client.post(
                    "/v1/query/kv/get", content=b"[1,", headers={"content-type": "application/json"}
                ),
                400,
                "BAD_REQUEST",
            )
            _error(await client.post("/v1/query/kv/get", json=[1]), 400, "BAD_REQUEST")
            _error(
                await client.post("/v1/query/kv/get", json={"caller_certificate": "%%"}),
                400,
                "BAD_ARGUMENTS",
            )
            assert (
                await client.post("/v1/query/kv/get", json={"args": {"key": "absent"}})
            ).json() == {"result": None}

            _error(await client.get("/v1/nothing-here"), 404, "NOT_FOUND")
            _error(await client.delete("/v1/status"), 405, "METHOD_NOT_ALLOWED")
            _error(
                await client.get("/v1/events", params={"kinds": "block,nonsense"}),
                400,
                "BAD_REQUEST",
            )
            _error(await client.get("/v1/events", params={"limit": 0}), 400, "BAD_REQUEST")
            _error(await client.get("/v1/events", params={"limit": "many"}), 400, "BAD_REQUEST")

    run(main())


def test_query_with_caller_certificate(consortium: Consortium, tmp_path: Path) -> None:
    alice = consortium.clients["bigdata-bureau"]

    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (_node, client):
            # a query runs as the signer of the request: naming the signer's own certificate is fine,
            # any other certificate (e.g. one copied from a block) is refused
            assert consortium.reader() is alice
            document = {"args": {"key": "a"}, "caller_certificate": b64(alice.certificate_bytes)}
            assert (await client.post("/v1/query/kv/get", json=document)).json() == {"result": None}
            other = consortium.clients["bank"]
            document["caller_certificate"] = b64(other.certificate_bytes)
            _error(await client.post("/v1/query/kv/get", json=document), 403, "PERMISSION_DENIED")
            document["caller_certificate"] = b64(b"not a certificate")
            _error(await client.post("/v1/query/kv/get", json=document), 403, "PERMISSION_DENIED")

    run(main())


class _BrokenNode:
    """A NodeAPI whose reads fail: the gateway must answer JSON 500, never a traceback."""

    def __init__(self, node: LocalNode) -> None:
        self.suite, self.genesis, self._node = node.suite, node.genesis, node

    def status(self) -> Any:
        raise RuntimeError("disk on fire")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node, name)


def test_internal_errors_are_json(consortium: Consortium, tmp_path: Path) -> None:
    async def main() -> None:
        node = LocalNode.open(tmp_path / "d", consortium.genesis)
        try:
            app = create_app(_BrokenNode(node))  # type: ignore[arg-type]
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=BASE_URL,
                auth=SignedRequests(consortium.reader()),
            ) as client:
                response = await client.get("/v1/status")
                document = _error(response, 500, "INTERNAL")
                assert (
                    "disk on fire" not in document["message"] and "Traceback" not in response.text
                )
        finally:
            await node.close()

    run(main())


def test_cors_is_off_by_default_and_configurable(consortium: Consortium, tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway(consortium, tmp_path / "a") as (_node, client):
            response = await client.get("/v1/status", headers={"origin": "https://app.example"})
            assert "access-control-allow-origin" not in response.headers
        options = GatewayOptions(cors_origins=("https://app.example",))
        async with gateway(consortium, tmp_path / "b", options=options) as (_node, client):
            response = await client.get("/v1/status", headers={"origin": "https://app.example"})
            assert response.headers["access-control-allow-origin"] == "https://app.example"

    run(main())


# ---------------------------------------------------------------------- events


def _parse_sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for chunk in text.split("\n\n"):
        lines = [line for line in chunk.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_sse_delivers_block_tx_and_contract_events(consortium: Consortium, tmp_path: Path) -> None:
    alice = consortium.clients["bigdata-bureau"]

    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (node, client):
            everything = asyncio.ensure_future(client.get("/v1/events", params={"limit": 3}))
            blocks_only = asyncio.ensure_future(
                client.get("/v1/events", params={"kinds": "block", "limit": 1})
            )
            await wait_until(lambda: node.subscriber_count == 2, "two subscribers")
            raw, tx_id = signed(alice, consortium, {"key": "e", "value": 1})
            assert (await client.post("/v1/txs", content=raw, headers=OCTETS)).status_code == 202
            block = node.produce_block()
            assert block is not None
            response = await asyncio.wait_for(everything, 10)
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _parse_sse(response.text)
            assert [kind for kind, _ in events] == ["block", "tx", "contract_event", "close"]
            assert events[0][1]["height"] == 1 and events[0][1]["tx_count"] == 1
            assert events[1][1]["tx_id"] == tx_id and events[1][1]["status"] == "OK"
            assert events[2][1]["data"] == {"key": "e", "org": "bigdata-bureau"}
            assert "3 events" in events[3][1]["reason"]
            only = _parse_sse((await asyncio.wait_for(blocks_only, 10)).text)
            assert [kind for kind, _ in only] == ["block", "close"]
            await wait_until(lambda: node.subscriber_count == 0, "subscribers to leave")

    run(main())


def test_sse_sends_a_whole_block_of_events_in_order_and_keeps_the_limit(
    consortium: Consortium, tmp_path: Path
) -> None:
    """A committed block queues many events at once; they go out batched, in order, and a
    ``limit`` inside the batch is still exact."""
    alice = consortium.clients["bigdata-bureau"]

    async def main() -> None:
        async with gateway(consortium, tmp_path / "d") as (node, client):
            limited = asyncio.ensure_future(client.get("/v1/events", params={"limit": 7}))
            whole = asyncio.ensure_future(client.get("/v1/events", params={"limit": 11}))
            await wait_until(lambda: node.subscriber_count == 2, "two subscribers")
            tx_ids = []
            for index in range(5):
                raw, tx_id = signed(alice, consortium, {"key": f"batch{index}", "value": index})
                assert (await client.post("/v1/txs", content=raw, headers=OCTETS)).status_code == 202
                tx_ids.append(tx_id)
            block = node.produce_block()
            assert block is not None and len(block.txs) == 5
            events = _parse_sse((await asyncio.wait_for(whole, 10)).text)
            assert [kind for kind, _ in events] == ["block"] + ["tx", "contract_event"] * 5 + ["close"]
            assert sorted(data["tx_id"] for kind, data in events if kind == "tx") == sorted(tx_ids)
            seen = [data["tx_id"] for kind, data in events if kind == "tx"]
            assert seen == [receipt.tx_id.hex() for receipt in block.receipts]
            first = _parse_sse((await asyncio.wait_for(limited, 10)).text)
            assert [kind for kind, _ in first] == ["block"] + ["tx", "contract_event"] * 3 + ["close"]
            assert "7 events" in first[-1][1]["reason"]
            await wait_until(lambda: node.subscriber_count == 0, "subscribers to leave")

    run(main())


def test_sse_ends_when_the_gateway_closes(consortium: Consortium, tmp_path: Path) -> None:
    async def main() -> None:
        node = LocalNode.open(tmp_path / "d", consortium.genesis)
        app = create_app(node)
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=BASE_URL,
                auth=SignedRequests(consortium.reader()),
            ) as client:
                stream = asyncio.ensure_future(client.get("/v1/events"))
                await wait_until(lambda: node.subscriber_count == 1, "the subscriber")
                app.state.closing.set()
                events = _parse_sse((await asyncio.wait_for(stream, 10)).text)
                assert events[-1][0] == "close" and "shutting down" in events[-1][1]["reason"]
        finally:
            await node.close()

    run(main())

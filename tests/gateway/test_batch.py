"""Batch submission: one request, many signed transactions, one result each."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from pilotchain.codec import encode
from pilotchain.sdk import SignedRequests, TxRejectedError, build_transaction
from pilotchain.testing import async_local_chain


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_batch_admits_valid_and_reports_each_refusal(suite: str) -> None:
    asyncio.run(_batch(suite))


async def _batch(suite: str) -> None:
    async with async_local_chain(suite=suite, auto_produce=False) as chain:
        identity = chain.identity()
        good = [build_transaction(identity, chain.chain_id, "kv", "put", {"key": f"b{i}", "value": i}) for i in range(20)]
        wrong_chain = build_transaction(identity, "other-chain", "kv", "put", {"key": "x", "value": 1})
        raws = [t.raw for t in good] + [wrong_chain.raw, good[0].raw, b"\x00garbage"]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=chain.app), base_url="http://node",
                                     auth=SignedRequests(chain.consortium.reader())) as http:
            response = await http.post("/v1/txs/batch", content=encode(raws),
                                       headers={"content-type": "application/octet-stream"})
            assert response.status_code == 202, response.text
            document = response.json()
            assert document["accepted"] == 20 and document["rejected"] == 3
            codes = [r.get("code") for r in document["results"][20:]]
            assert codes == ["WRONG_CHAIN", "DUPLICATE", "MALFORMED"]
            assert [r["tx_id"] for r in document["results"][:20]] == [t.tx_id for t in good]
            as_json = await http.post("/v1/txs/batch", json={"txs": [base64.b64encode(b"\x01").decode()]})
            assert as_json.status_code == 202 and as_json.json()["results"][0]["code"] == "MALFORMED"
            empty = await http.post("/v1/txs/batch", content=encode([]), headers={"content-type": "application/octet-stream"})
            assert empty.status_code == 400
        from pilotchain.sdk import AsyncClient

        async with AsyncClient("http://node", transport=chain.transport(), identity=chain.consortium.reader()) as client:
            results = await client.submit_many([t.raw for t in good[:2]] + [b"\x00"])
        assert isinstance(results[2], TxRejectedError) and results[2].code == "MALFORMED"
        assert isinstance(results[0], TxRejectedError) and results[0].code == "DUPLICATE"
        chain.node.produce_block()
        status = chain.node.tx_status(bytes.fromhex(good[5].tx_id))
        assert status.state.value == "committed"

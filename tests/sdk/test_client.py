"""The SDK against an in-process LocalChain: calls, verified reads, tampering, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pilotchain.ledger.block import BlockHeader
from pilotchain.sdk import (
    ApiError,
    AsyncClient,
    Client,
    Identity,
    IdentityError,
    NotFound,
    PilotchainError,
    ProofError,
    ResponseError,
    SignedRequests,
    TimeoutError,
    TransportError,
    TxBuilder,
    TxRejectedError,
    Unavailable,
    build_transaction,
)
from pilotchain.sdk.wire import b64, unb64
from pilotchain.testing import IN_PROCESS_URL, LocalChain, async_local_chain, local_chain

Mutation = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalChain]:
    with local_chain(suite="intl", orgs=2) as running:
        yield running


@pytest.fixture(scope="module")
def batch_chain() -> Iterator[tuple[LocalChain, list[str]]]:
    """Four transactions committed in one block (so Merkle paths are not empty)."""
    with local_chain(suite="intl", orgs=2, auto_produce=False) as running:
        client = running.client()
        builder = TxBuilder(running.identity(), running.chain_id)
        ids = [
            client.submit(builder.build("kv", "put", {"key": f"k{n}", "value": n}))
            for n in range(4)
        ]
        assert running.produce_block() == 1
        yield running, ids


# ---------------------------------------------------------------------- the happy path, both suites


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_invoke_commits_and_every_read_verifies(suite: str) -> None:
    with local_chain(suite=suite, orgs=2) as chain, chain.client() as client:
        alice = chain.identity("bigdata-bureau")
        info = client.status()
        assert info.suite == suite and info.chain_id == chain.chain_id and info.height == 0

        stored = {"n": 425, "raw": b"\x00\x01"}
        result = client.invoke(alice, "kv", "put", {"key": "rate", "value": stored})
        assert result.ok and result.committed and result.verified and result.height == 1
        assert (
            result.contract == "kv"
            and result.method == "put"
            and result.signer_org == "bigdata-bureau"
        )
        assert [(e.name, e.data) for e in result.events] == [
            ("put", {"key": "rate", "org": "bigdata-bureau"})
        ]

        fetched = client.get_tx(result.tx_id)
        assert (
            fetched.verified
            and fetched.receipt == result.receipt
            and fetched.header == result.header
        )

        value = client.read_state("kv", "v/rate")
        assert value.verified and value.decoded == ["bigdata-bureau", stored]
        absent = client.read_state("kv", b"v/none")
        assert absent.value is None and absent.verified

        assert client.query("kv", "get", {"key": "rate"}) == stored
        assert client.query("kv", "get", {"key": "rate"}, caller=alice) == stored

        block = client.get_block("latest")
        assert block.height == 1 and block.verified and block.transactions[0].tx_id == result.tx_id
        assert block.transactions[0].args == {"key": "rate", "value": stored}
        assert client.get_block(0).height == 0


def test_async_client_invokes_and_subscribes() -> None:
    async def main() -> None:
        async with async_local_chain(suite="intl", orgs=2) as chain, chain.client() as client:
            alice = chain.identity()
            stream = client.subscribe(["block", "tx"], limit=2)
            events_task = asyncio.ensure_future(_collect(stream))
            for _ in range(10_000):  # bounded wait for the subscription (no sleeps)
                if chain.node.subscriber_count:
                    break
                await asyncio.sleep(0)
            result = await client.invoke(alice, "kv", "put", {"key": "a", "value": 1})
            assert result.ok and result.verified
            events = await asyncio.wait_for(events_task, 10)
            assert [e.kind for e in events] == ["block", "tx"]
            assert events[1].data["tx_id"] == result.tx_id and events[0].height == result.height
            assert (await client.get_tx(result.tx_id)).verified
            assert (await client.read_state("kv", "v/a")).verified
            assert (await client.get_block(1)).verified
            assert await client.query("kv", "get", {"key": "a"}) == 1
            pending = await client.invoke(alice, "kv", "put", {"key": "b", "value": 2}, wait=False)
            assert pending.pending
            assert (await client.wait(pending.tx_id, 10)).ok
            with pytest.raises(NotFound):
                await client.get_tx("00" * 32)

    asyncio.run(main())


async def _collect(stream: Any) -> list[Any]:
    return [event async for event in stream]


def test_failed_execution_raises_unless_check_false(chain: LocalChain) -> None:
    with chain.client() as client:
        client.invoke(chain.identity("bigdata-bureau"), "kv", "put", {"key": "owned", "value": 1})
        with pytest.raises(TxRejectedError) as info:
            client.invoke(chain.identity("bank"), "kv", "put", {"key": "owned", "value": 2})
        assert info.value.code == "PERMISSION_DENIED" and info.value.tx_id
        result = client.invoke(
            chain.identity("bank"), "kv", "put", {"key": "owned", "value": 3}, check=False
        )
        assert result.committed and not result.ok and result.status == "PERMISSION_DENIED"


def test_reads_with_min_height_never_answer_from_older_state(chain: LocalChain) -> None:
    """Read-your-writes: the height a write committed at, passed as min_height, is served or
    refused (503 BEHIND, Retry-After) — never answered from older state."""
    with chain.client() as client:
        written = client.invoke(chain.identity("bigdata-bureau"), "kv", "put", {"key": "ryw", "value": 7})
        value = client.read_state("kv", "v/ryw", min_height=written.height)
        assert value.header.height >= written.height and value.decoded == ["bigdata-bureau", 7]
        with pytest.raises(Unavailable) as behind:
            client.read_state("kv", "v/ryw", min_height=written.height + 1_000)
        assert behind.value.status_code == 503 and behind.value.code == "BEHIND"
    with httpx.Client(base_url=chain.serve_http(), auth=SignedRequests(chain.identity())) as http:
        raw = http.get("/v1/state/kv", params={"key_text": "v/ryw", "min_height": str(written.height + 1_000)})
        assert raw.status_code == 503 and raw.headers["Retry-After"] == "1" and raw.json()["code"] == "BEHIND"
        for bad in ("-1", "1.5", "\u0661", "99999999999999999999", ""):
            refused = http.get("/v1/state/kv", params={"key_text": "v/ryw", "min_height": bad})
            assert refused.status_code == 400, bad


def test_refusals_duplicates_and_not_found(chain: LocalChain) -> None:
    with chain.client() as client:
        alice = chain.identity()
        with pytest.raises(TxRejectedError) as info:
            client.submit(
                build_transaction(alice, "other-chain", "kv", "put", {"key": "k", "value": 1})
            )
        assert info.value.code == "WRONG_CHAIN"
        tx = build_transaction(alice, chain.chain_id, "kv", "put", {"key": "dup", "value": 1})
        first = client.submit_and_wait(tx, 10)
        again = client.submit_and_wait(tx, 10)  # DUPLICATE of a committed one: waits for it
        assert again.tx_id == first.tx_id and again.height == first.height
        with pytest.raises(TxRejectedError) as info:
            client.submit(tx)
        assert info.value.code == "DUPLICATE"
        with pytest.raises(NotFound):
            client.get_tx("ab" * 32)
        with pytest.raises(NotFound):
            client.get_block(10_000)
        with pytest.raises(NotFound):
            client.query("nope", "get", {})
        with pytest.raises(TxRejectedError) as info:
            client.query("kv", "get", {"nokey": 1})
        assert info.value.code == "BAD_ARGUMENTS"
        expired = build_transaction(
            alice,
            chain.chain_id,
            "kv",
            "put",
            {"key": "x", "value": 1},
            now_ms=1_000,
            expires_in_ms=1,
        )
        with pytest.raises(TxRejectedError) as info:
            client.submit_and_wait(expired, 5)
        assert info.value.code == "EXPIRED"
        rejected = client.get_tx(expired.tx_id)
        assert rejected.rejected and rejected.code == "EXPIRED"
        with pytest.raises(TxRejectedError):
            rejected.raise_for_status()


# ---------------------------------------------------------------------- tampering


def _tampering_client(
    chain: LocalChain, path_part: str, mutate: Mutation, **options: Any
) -> Client:
    inner = chain.transport()

    def handler(request: httpx.Request) -> httpx.Response:
        response = inner.handle_request(request)
        if path_part in request.url.path and response.status_code == 200:
            document = json.loads(response.read())
            mutate(document)
            return httpx.Response(200, json=document)
        return response

    options.setdefault("identity", chain.consortium.reader())
    return Client(IN_PROCESS_URL, transport=httpx.MockTransport(handler), **options)


def _flip_hex(text: str) -> str:
    return ("1" if text[0] == "0" else "0") + text[1:]


def _flip_b64(text: str) -> str:
    data = bytearray(unb64(text))
    data[-1] ^= 1
    return b64(bytes(data))


def _set_header_tx_root_and_hash(document: dict[str, Any]) -> None:
    """A consistent lie: change the header and report the matching block hash."""
    from pilotchain.crypto import get_suite
    from pilotchain.ledger.block import block_hash
    from pilotchain.sdk.wire import header_from_json, header_to_json

    document["header"]["tx_root"] = _flip_hex(document["header"]["tx_root"])
    header = header_from_json(document["header"])
    document["header"] = header_to_json(header)
    document["block_hash"] = block_hash(get_suite("intl"), header).hex()


TX_TAMPERING: dict[str, Mutation] = {
    "receipt status": lambda d: d["receipt"].update(status="EXECUTION_FAILED"),
    "receipt result": lambda d: d["receipt"].update(result_base64=b64(b"\xc3")),
    "receipt event": lambda d: d["receipt"]["events"][0].update(data_base64=b64(b"\xc2")),
    "tx bytes": lambda d: d["tx"].update(raw=_flip_b64(d["tx"]["raw"])),
    "tx path": lambda d: d["proof"]["tx_path"].__setitem__(0, _flip_hex(d["proof"]["tx_path"][0])),
    "receipt path": lambda d: d["proof"]["receipt_path"].__setitem__(
        0, _flip_hex(d["proof"]["receipt_path"][0])
    ),
    "proof index": lambda d: d["proof"].update(index=(d["proof"]["index"] + 1) % 4),
    "header state root": lambda d: d["header"].update(
        state_root=_flip_hex(d["header"]["state_root"])
    ),
    "header and hash": _set_header_tx_root_and_hash,
    "answer for another tx": lambda d: d.update(tx_id="00" * 32),
}


@pytest.mark.parametrize("name", list(TX_TAMPERING))
def test_tampered_transaction_answers_raise_proof_error(
    batch_chain: tuple[LocalChain, list[str]], name: str
) -> None:
    chain, ids = batch_chain
    with (
        _tampering_client(chain, "/v1/txs/", TX_TAMPERING[name]) as client,
        pytest.raises(ProofError),
    ):
        client.get_tx(ids[1])
    with chain.client() as honest:
        assert honest.get_tx(ids[1]).verified


STATE_TAMPERING: dict[str, Mutation] = {
    "value": lambda d: d.update(value=_flip_b64(d["value"])),
    "value removed": lambda d: d.update(value=None),
    "proof entry": lambda d: d["proof"]["entries"][0].__setitem__(
        1, _flip_b64(d["proof"]["entries"][0][1])
    ),
    "proof sibling": lambda d: d["proof"]["siblings"].__setitem__(
        0, _flip_hex(d["proof"]["siblings"][0])
    ),
    "header state root": lambda d: d["header"].update(
        state_root=_flip_hex(d["header"]["state_root"])
    ),
    "header and hash": _set_header_tx_root_and_hash,
    "another key": lambda d: d.update(key=b64(b"v/k2")),
}


@pytest.mark.parametrize("name", list(STATE_TAMPERING))
def test_tampered_state_answers_raise_proof_error(
    batch_chain: tuple[LocalChain, list[str]], name: str
) -> None:
    chain, _ids = batch_chain
    mutate = STATE_TAMPERING[name]
    if name == "header and hash":

        def mutate(d: dict[str, Any]) -> None:  # the state root is what a state proof binds to
            d["header"]["state_root"] = _flip_hex(d["header"]["state_root"])
            _set_header_tx_root_and_hash(d)

    with _tampering_client(chain, "/v1/state/", mutate) as client, pytest.raises(ProofError):
        client.read_state("kv", b"v/k1")
    with _tampering_client(chain, "/v1/state/", mutate) as client:
        if name != "another key":
            client.read_state("kv", b"v/k1", verify=False)  # the caller opted out


BLOCK_TAMPERING: dict[str, Mutation] = {
    "transaction": lambda d: d["transactions"][0].update(
        raw=_flip_b64(d["transactions"][0]["raw"])
    ),
    "receipt": lambda d: d["receipts"][2].update(message="forged"),
    "dropped transaction": lambda d: (d["transactions"].pop(), d["receipts"].pop()),
    "hash": lambda d: d.update(hash=_flip_hex(d["hash"])),
}


@pytest.mark.parametrize("name", list(BLOCK_TAMPERING))
def test_tampered_blocks_raise_proof_error(
    batch_chain: tuple[LocalChain, list[str]], name: str
) -> None:
    chain, _ids = batch_chain
    with (
        _tampering_client(chain, "/v1/blocks/", BLOCK_TAMPERING[name]) as client,
        pytest.raises(ProofError),
    ):
        client.get_block(1)


def test_verify_header_hook_sees_every_header(batch_chain: tuple[LocalChain, list[str]]) -> None:
    chain, ids = batch_chain
    seen: list[tuple[int, bytes | None]] = []

    def record(header: BlockHeader, certificate: bytes | None) -> None:
        seen.append((header.height, certificate))

    with Client(IN_PROCESS_URL, transport=chain.transport(), verify_header=record,
                identity=chain.consortium.reader()) as client:
        client.get_tx(ids[0])
        client.read_state("kv", "v/k0")
        client.get_block(1)
    assert seen == [(1, None), (1, None), (1, None)]

    def refuse(header: BlockHeader, certificate: bytes | None) -> None:
        raise ProofError(f"block {header.height} has no commit certificate")

    with Client(IN_PROCESS_URL, transport=chain.transport(), verify_header=refuse,
                identity=chain.consortium.reader()) as client:
        with pytest.raises(ProofError, match="no commit certificate"):
            client.get_tx(ids[0])
        with pytest.raises(ProofError):
            client.read_state("kv", "v/k0")


# ---------------------------------------------------------------------- errors at the boundary


def _mock(handler: Callable[[httpx.Request], httpx.Response]) -> Client:
    return Client("http://node.test", transport=httpx.MockTransport(handler))


def test_http_errors_are_translated() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(TransportError, match="is the node running") as info:
        _mock(unreachable).status()
    assert isinstance(info.value.__cause__, httpx.ConnectError)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(TransportError, match="did not answer in time"):
        _mock(slow).status()

    def unavailable(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"code": "UNAVAILABLE", "message": "stopping"})

    with pytest.raises(Unavailable) as unavailable_info:
        _mock(unavailable).status()
    assert (
        unavailable_info.value.status_code == 503 and unavailable_info.value.code == "UNAVAILABLE"
    )

    def html(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>hello</html>", headers={"content-type": "text/html"})

    with pytest.raises(ResponseError, match="gateway URL"):
        _mock(html).status()

    def wrong_shape(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"hello": "world"})

    with pytest.raises(ResponseError):
        _mock(wrong_shape).status()

    def teapot(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(418, text="short and stout")

    with pytest.raises(ApiError) as api_info:
        _mock(teapot).status()
    assert api_info.value.code == "HTTP_418" and not isinstance(api_info.value, NotFound)


def test_wait_times_out_with_advice() -> None:
    def always_pending(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"tx_id": request.url.path.rsplit("/", 1)[-1], "state": "pending"}
        )

    client = Client("http://node.test", transport=httpx.MockTransport(always_pending), verify=False)
    with pytest.raises(TimeoutError, match="pilotchain tx get") as info:
        client.wait("ab" * 32, timeout_s=0.1)
    assert isinstance(info.value, PilotchainError)


def test_identity_errors(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="does not exist"):
        Identity.load(tmp_path / "missing.id")
    bad = tmp_path / "bad.id"
    bad.write_text("{}")
    bad.chmod(0o600)
    with pytest.raises(IdentityError):
        Identity.load(bad)


def test_arguments_that_cannot_be_encoded(chain: LocalChain) -> None:
    with pytest.raises(PilotchainError, match="floats"):
        build_transaction(chain.identity(), chain.chain_id, "kv", "put", {"value": 1.5})
    with chain.client() as client, pytest.raises(PilotchainError, match="cannot be sent"):
        client.query("kv", "get", {"key": object()})
    with pytest.raises(ValueError):
        build_transaction(chain.identity(), chain.chain_id, "kv", "put", {}, expires_in_ms=0)


def test_async_client_translates_errors() -> None:
    async def main() -> None:
        def unreachable(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        async with AsyncClient(
            "http://node.test", transport=httpx.MockTransport(unreachable)
        ) as client:
            with pytest.raises(TransportError):
                await client.status()

    asyncio.run(main())

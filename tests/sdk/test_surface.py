"""The SDK's curated surface, its error tree, and the pure pieces (wire format, SSE decoder)."""

from __future__ import annotations

import asyncio
import builtins

import pytest

import pilotchain.gateway as gateway_package
import pilotchain.sdk as sdk
from pilotchain.gateway.app import _sse_stream
from pilotchain.sdk._sse import SseDecoder, SseMessage
from pilotchain.sdk.wire import WireError, from_tagged_json, to_tagged_json, unb64url

EXPECTED_SDK = {
    "Client",
    "AsyncClient",
    "DEFAULT_NODE_URL",
    "NODE_URL_ENV",
    "default_node_url",
    "SignedRequests",
    "IDENTITY_ENV",
    "TLS_CA_ENV",
    "Identity",
    "SignedTransaction",
    "TxBuilder",
    "build_transaction",
    "DEFAULT_EXPIRES_IN_MS",
    "NodeInfo",
    "BlockInfo",
    "BlockTx",
    "TxResult",
    "ContractEvent",
    "StateValue",
    "ChainEvent",
    "HeaderVerifier",
    "PilotchainError",
    "TransportError",
    "ApiError",
    "NotFound",
    "Unavailable",
    "TxRejectedError",
    "ProofError",
    "EvidenceError",
    "TimeoutError",
    "IdentityError",
    "ResponseError",
    "WrongNetwork",
    "NetworkFileError",
    "NetworkPin",
    "NETWORK_ENV",
    "load_network",
    "load_genesis_pin",
    "pin_of",
}


@pytest.mark.parametrize(
    "package, expected",
    [
        (sdk, EXPECTED_SDK),
        (
            gateway_package,
            {"create_app", "GatewayOptions", "GatewayLimits", "HTTP_STATUS_OF_CODE", "serve", "GatewayServer",
             "RateLimitFilter"},
        ),
    ],
)
def test_curated_all(package: object, expected: set[str]) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert set(names) == expected and len(names) == len(set(names))
    for name in names:
        assert getattr(package, name) is not None
    public = {n for n in vars(package) if not n.startswith("_")} - set(names)
    modules = {n for n in public if type(getattr(package, n)).__name__ == "module"}
    assert public - modules == {"annotations"}, "public names outside __all__"


def test_error_tree() -> None:
    for name in (
        "TransportError",
        "ApiError",
        "TxRejectedError",
        "ProofError",
        "EvidenceError",
        "TimeoutError",
        "IdentityError",
        "ResponseError",
        "WrongNetwork",
        "NetworkFileError",
    ):
        assert issubclass(getattr(sdk, name), sdk.PilotchainError)
    assert issubclass(sdk.NotFound, sdk.ApiError) and issubclass(sdk.Unavailable, sdk.ApiError)
    assert issubclass(sdk.TimeoutError, builtins.TimeoutError)
    error = sdk.TxRejectedError("DUPLICATE", "already committed", "ab")
    assert (error.code, error.message, error.tx_id) == ("DUPLICATE", "already committed", "ab")
    assert "PilotchainError" in (sdk._errors.__doc__ or "")


def test_tagged_json_round_trips_and_refuses_floats() -> None:
    value = {"a": [1, b"\x00\xff", None, True], "m": {1: "one", (2, 3): b"x"}, "s": "text"}
    tagged = to_tagged_json(value)
    assert tagged["a"][1] == {"$bytes": "AP8="}
    assert tagged["m"] == {"$map": [[1, "one"], [[2, 3], {"$bytes": "eA=="}]]}
    assert from_tagged_json(tagged) == {**value, "m": {1: "one", (2, 3): b"x"}}
    with pytest.raises(WireError, match="floats"):
        from_tagged_json({"x": 1.5})
    with pytest.raises(WireError):
        from_tagged_json({"$bytes": "!!"})
    with pytest.raises(WireError, match="deeper"):
        to_tagged_json(_nested(40))
    assert unb64url("YQ") == b"a" and unb64url("YQ==") == b"a"
    with pytest.raises(WireError, match="key_text"):
        unb64url("a+b/")


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_sse_decoder() -> None:
    decoder = SseDecoder()
    lines = [
        ": connected",
        "",
        "id: 3",
        "event: block",
        'data: {"h":',
        "data: 3}",
        "",
        "event: close",
        "data: {}",
        "",
    ]
    messages = [m for m in (decoder.decode(line) for line in lines) if m is not None]
    assert messages == [SseMessage("block", '{"h":\n3}', "3"), SseMessage("close", "{}", None)]


def test_sse_stream_sends_keep_alives_while_idle() -> None:
    class Idle:
        def __aiter__(self) -> Idle:
            return self

        async def __anext__(self) -> object:
            await asyncio.Event().wait()  # never
            raise StopAsyncIteration

    async def main() -> list[bytes]:
        closing = asyncio.Event()
        stream = _sse_stream(Idle(), None, 0.0, closing)
        chunks = [await anext(stream), await anext(stream)]
        closing.set()
        chunks += [chunk async for chunk in stream]
        return chunks

    chunks = asyncio.run(main())
    assert chunks[0] == b": connected\n\n" and chunks[1] == b": keep-alive\n\n"
    assert chunks[-1].startswith(b"event: close\n")

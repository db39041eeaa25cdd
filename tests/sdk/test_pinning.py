"""A client pinned to one chain refuses a gateway of another (in-process, two consortia)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pilotchain.cli.client_cmd import EXIT_USAGE, EXIT_WRONG_NETWORK
from pilotchain.sdk import (
    AsyncClient,
    Client,
    NetworkFileError,
    PilotchainError,
    WrongNetwork,
    load_genesis_pin,
    load_network,
    pin_of,
)
from pilotchain.testing import IN_PROCESS_URL, LocalChain, async_local_chain, local_chain
from tests.sdk.test_server import _cli


@pytest.fixture(scope="module")
def chains() -> Iterator[tuple[LocalChain, LocalChain]]:
    """Two consortia with the same chain id ("pilot-city"): only the genesis hash tells them apart."""
    with local_chain(orgs=2) as a, local_chain(orgs=2) as b:
        yield a, b


class _Recording(httpx.BaseTransport):
    """Passes requests on and remembers them (what reached the gateway)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return self.inner.handle_request(request)


def _genesis_of(chain: LocalChain) -> str:
    with chain.client() as client:
        return client.status().genesis_hash


def test_pins_from_network_folder_genesis_file_and_hash_agree(chains: tuple[LocalChain, LocalChain]) -> None:
    a, b = chains
    folder = a.consortium.directory
    from_folder = load_network(folder)
    assert from_folder.genesis_hash == _genesis_of(a) != _genesis_of(b)
    assert from_folder.chain_id == a.chain_id == b.chain_id
    assert from_folder.gateway_urls == tuple(
        n["gateway_url"] for n in json.loads((folder / "network.json").read_text())["nodes"]
    )
    assert load_network(folder / "network.json") == from_folder
    assert load_genesis_pin(folder / "genesis.json").genesis_hash == from_folder.genesis_hash
    assert pin_of(from_folder.genesis_hash.upper()).genesis_hash == from_folder.genesis_hash


def test_the_right_network_is_checked_once(chains: tuple[LocalChain, LocalChain]) -> None:
    a, _ = chains
    transport = _Recording(a.transport())
    with Client(IN_PROCESS_URL, transport=transport, network=a.consortium.directory) as client:
        assert client.pin is not None and client.pin.genesis_hash == _genesis_of(a)
        assert client.query("kv", "get", {"key": "nothing"}) is None
        result = client.invoke(a.identity(), "kv", "put", {"key": "pinned", "value": 1})
        assert result.ok
    # the chain is checked once, openly (/healthz names it, no signed request goes out first)
    checks = [path for method, path in transport.seen if path == "/healthz"]
    assert len(checks) == 1 and transport.seen[0] == ("GET", "/healthz")


@pytest.mark.parametrize("how", ["network", "genesis_hash", "genesis_file"])
def test_a_gateway_of_another_chain_is_refused_before_anything_is_sent(
    chains: tuple[LocalChain, LocalChain], how: str
) -> None:
    a, b = chains
    expected = _genesis_of(a)
    options: dict[str, object] = {
        "network": {"network": a.consortium.directory},
        "genesis_hash": {"expected_genesis": expected},
        "genesis_file": {"network": load_genesis_pin(a.consortium.directory / "genesis.json")},
    }[how]
    transport = _Recording(b.transport())
    height_before = _height(b)
    with Client(IN_PROCESS_URL, transport=transport, **options) as client:  # type: ignore[arg-type]
        with pytest.raises(WrongNetwork) as caught:
            client.invoke(b.identity(), "kv", "put", {"key": "stray", "value": 1})
        with pytest.raises(WrongNetwork):
            client.get_block("latest")
    error = caught.value
    assert error.expected == expected and error.found == _genesis_of(b) and error.url == IN_PROCESS_URL
    message = str(error)
    assert expected[:16] in message and error.found[:16] in message
    assert "--node" in message and "--base-port" in message and "\n" not in message
    assert all(path == "/healthz" for _, path in transport.seen)  # no signed request reached it
    assert _height(b) == height_before


def test_chain_id_pin_and_contradictions(chains: tuple[LocalChain, LocalChain]) -> None:
    a, _ = chains
    with a.client(expected_chain_id="another-city") as client, pytest.raises(WrongNetwork, match="chain id"):
        client.status()
    with a.client(expected_chain_id=a.chain_id) as client:
        assert client.status().chain_id == a.chain_id
    with pytest.raises(PilotchainError, match="contradicts"):
        Client(IN_PROCESS_URL, network=a.consortium.directory, expected_genesis="ab" * 32)


def test_unusable_pins_are_refused(tmp_path: Path, chains: tuple[LocalChain, LocalChain]) -> None:
    a, _ = chains
    with pytest.raises(NetworkFileError, match="network init"):
        load_network(tmp_path / "nothing-here")
    with pytest.raises(NetworkFileError, match="not a genesis hash"):
        pin_of("not-hex")
    document = json.loads((a.consortium.directory / "genesis.json").read_text())
    document["hash"] = "00" * 32
    (tmp_path / "genesis.json").write_text(json.dumps(document))
    with pytest.raises(NetworkFileError, match="does not match"):
        load_genesis_pin(tmp_path / "genesis.json")


def test_the_environment_pins_a_client_without_arguments(
    chains: tuple[LocalChain, LocalChain], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = chains
    monkeypatch.setenv("PILOTCHAIN_NETWORK", str(a.consortium.directory))
    monkeypatch.delenv("PILOTCHAIN_NODE", raising=False)
    with Client() as client:
        assert client.pin is not None and client.pin.genesis_hash == _genesis_of(a)
        assert client.base_url == load_network(a.consortium.directory).gateway_urls[0]


def test_the_async_client_refuses_another_chain(chains: tuple[LocalChain, LocalChain]) -> None:
    a, _ = chains
    expected = _genesis_of(a)

    async def main() -> None:
        async with async_local_chain(orgs=2) as other:
            async with other.client(expected_genesis=expected) as client:
                with pytest.raises(WrongNetwork):
                    await client.invoke(other.identity(), "kv", "put", {"key": "stray", "value": 1})
                events = client.subscribe(["block"], limit=1)
                with pytest.raises(WrongNetwork):
                    await events.__anext__()
            async with AsyncClient(IN_PROCESS_URL, transport=other.transport(), network=other.consortium.directory) as ok:
                assert (await ok.status()).genesis_hash != expected
                assert (await ok.invoke(other.identity(), "kv", "put", {"key": "mine", "value": 1})).ok

    asyncio.run(main())


def _height(chain: LocalChain) -> int:
    with chain.client() as client:
        return client.status().height


# ---------------------------------------------------------------------- the CLI


def test_the_cli_refuses_a_node_of_another_network(tmp_path: Path) -> None:
    with local_chain(tmp_path / "a", orgs=2) as a, local_chain(tmp_path / "b", orgs=2) as b:
        url_b = b.serve_http("127.0.0.1", 0)
        height_b = _height(b)
        runner = CliRunner()
        app = _cli()
        net_a = str(a.consortium.directory)
        identity = str(b.consortium.directory / "orgs" / "bank" / "client.id")
        refusals = [
            ["status", "--node", url_b, "--network", net_a],
            ["status", "--node", url_b, "--expect-genesis", _genesis_of(a)],
            ["status", "--node", url_b, "--genesis", str(a.consortium.directory / "genesis.json")],
            ["block", "get", "latest", "--node", url_b, "--network", net_a],
            ["tx", "submit", "kv", "put", '{"key": "stray", "value": 1}', "-i", identity, "--node", url_b,
             "--network", net_a, "--wait"],
        ]
        for args in refusals:
            result = runner.invoke(app, args)
            assert result.exit_code == EXIT_WRONG_NETWORK, (args, result.output)
            line = result.output.strip()
            assert "\n" not in line and "serves another network" in line and _genesis_of(a)[:16] in line
        with_env = runner.invoke(app, ["status", "--node", url_b], env={"PILOTCHAIN_NETWORK": net_a})
        assert with_env.exit_code == EXIT_WRONG_NETWORK
        assert _height(b) == height_b  # nothing was submitted to b

        # the right network passes; the human status prints words, not Python values
        ok = runner.invoke(app, ["status", "--node", url_b, "--network", str(b.consortium.directory)])
        assert ok.exit_code == 0, ok.output
        assert _genesis_of(b)[:16] in ok.output
        for repr_word in ("None", "True", "False", "{", "}"):
            assert repr_word not in ok.output, ok.output
        unusable = runner.invoke(app, ["status", "--node", url_b, "--network", str(tmp_path / "nowhere")])
        assert unusable.exit_code == EXIT_USAGE and "network init" in unusable.output

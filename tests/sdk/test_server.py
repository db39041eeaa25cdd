"""A real uvicorn server on a free port, driven by the sync SDK (live events) and the CLI."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pilotchain.cli.client_cmd import (
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    block_app,
    status,
    tx_app,
)
from pilotchain.gateway import serve
from pilotchain.sdk import ChainEvent, Client, TransportError
from pilotchain.testing import local_chain
from tests.gateway.helpers import wait_until

JOIN_S_MAX = 10.0


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(tx_app, name="tx")
    app.add_typer(block_app, name="block")
    app.command(name="status")(status)
    return app


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_real_server_sdk_live_events_and_cli(tmp_path: Path) -> None:
    with local_chain(tmp_path, suite="intl", orgs=2) as chain:
        url = chain.serve_http("127.0.0.1", 0)
        identity_file = chain.consortium.directory / "orgs" / "bank" / "client.id"
        reader = chain.consortium.reader()
        with Client(url, timeout=5, identity=reader) as client, Client(url, timeout=5, identity=reader) as listener:
            assert client.status().chain_id == chain.chain_id

            # live Server-Sent Events over a real socket
            received: list[ChainEvent] = []
            errors: list[BaseException] = []

            def listen() -> None:
                try:
                    received.extend(listener.subscribe(["block", "tx"], limit=2))
                except BaseException as exc:  # surfaced below
                    errors.append(exc)

            thread = threading.Thread(target=listen, name="sse-listener")
            thread.start()
            try:
                chain.call(
                    wait_until(lambda: chain.node.subscriber_count == 1, "the SSE subscriber")
                )
                result = client.invoke(
                    chain.identity("bank"), "kv", "put", {"key": "live", "value": 7}
                )
                assert result.ok and result.verified
            finally:
                thread.join(JOIN_S_MAX)
            assert not thread.is_alive() and not errors, errors
            assert [(e.kind, e.height) for e in received] == [("block", 1), ("tx", 1)]
            assert received[1].data["tx_id"] == result.tx_id
            chain.call(
                wait_until(
                    lambda: chain.node.subscriber_count == 0, "the finished stream to unsubscribe"
                )
            )

            # a client that walks away mid-stream is unsubscribed
            first: list[ChainEvent] = []

            def listen_once() -> None:
                for event in listener.subscribe(["block"]):
                    first.append(event)
                    break

            thread = threading.Thread(target=listen_once, name="sse-leaver")
            thread.start()
            try:
                chain.call(
                    wait_until(lambda: chain.node.subscriber_count == 1, "the second subscriber")
                )
                client.invoke(chain.identity("bank"), "kv", "put", {"key": "live", "value": 8})
            finally:
                thread.join(JOIN_S_MAX)
            assert [e.height for e in first] == [2]
            chain.call(
                wait_until(
                    lambda: chain.node.subscriber_count == 0, "the server to notice the disconnect"
                )
            )

            # the address is taken: a clear OSError, nothing left running
            port = int(url.rsplit(":", 1)[1])
            with pytest.raises(OSError, match="cannot listen"):
                chain.call(serve(chain.app, "127.0.0.1", port))

        runner = CliRunner(env={"PILOTCHAIN_IDENTITY": str(identity_file)})  # reads are signed
        app = _cli()
        shown = runner.invoke(app, ["status", "--node", url, "--json"])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["height"] == 2

        human = runner.invoke(app, ["status"], env={"PILOTCHAIN_NODE": url})
        assert human.exit_code == 0 and chain.chain_id in human.output

        submitted = runner.invoke(
            app,
            [
                "tx",
                "submit",
                "kv",
                "put",
                '{"key": "cli", "value": {"$bytes": "AAE="}}',
                "--identity",
                str(identity_file),
                "--node",
                url,
                "--wait",
                "--json",
            ],
        )
        assert submitted.exit_code == 0, submitted.output
        document = json.loads(submitted.output)
        assert (
            document["state"] == "committed" and document["status"] == "OK" and document["verified"]
        )

        fetched = runner.invoke(app, ["tx", "get", document["tx_id"], "--node", url, "--json"])
        assert fetched.exit_code == 0 and json.loads(fetched.output)["height"] == document["height"]
        human_tx = runner.invoke(app, ["tx", "get", document["tx_id"], "--node", url])
        assert human_tx.exit_code == 0 and "committed" in human_tx.output

        no_wait = runner.invoke(
            app,
            [
                "tx",
                "submit",
                "kv",
                "put",
                '{"key": "later", "value": 1}',
                "-i",
                str(identity_file),
                "--node",
                url,
            ],
        )
        assert no_wait.exit_code == 0 and "pilotchain tx get" in no_wait.output

        block = runner.invoke(app, ["block", "get", "latest", "--node", url, "--json"])
        assert block.exit_code == 0 and json.loads(block.output)["verified"] is True
        human_block = runner.invoke(app, ["block", "get", str(document["height"]), "--node", url])
        assert human_block.exit_code == 0 and "kv.put" in human_block.output

        # refusals, not found, usage and unreachable exit codes, one line each
        refused = runner.invoke(
            app,
            [
                "tx",
                "submit",
                "kv",
                "put",
                '{"key": "cli", "value": 2}',
                "-i",
                str(chain.consortium.directory / "orgs" / "bigdata-bureau" / "client.id"),
                "--node",
                url,
                "--wait",
            ],
        )
        assert refused.exit_code == EXIT_REFUSED and "PERMISSION_DENIED" in refused.output
        unknown = runner.invoke(app, ["tx", "get", "ab" * 32, "--node", url])
        assert unknown.exit_code == EXIT_REFUSED and "no such transaction" in unknown.output
        missing_block = runner.invoke(app, ["block", "get", "999", "--node", url])
        assert missing_block.exit_code == EXIT_REFUSED
        bad_args = runner.invoke(
            app, ["tx", "submit", "kv", "put", "{oops", "-i", str(identity_file), "--node", url]
        )
        assert bad_args.exit_code == EXIT_USAGE
        no_identity = runner.invoke(
            app, ["tx", "submit", "kv", "put", "{}", "--node", url], env={"PILOTCHAIN_IDENTITY": ""}
        )
        assert no_identity.exit_code == EXIT_USAGE
        bad_identity = runner.invoke(
            app, ["tx", "submit", "kv", "put", "{}", "-i", str(tmp_path / "nope.id"), "--node", url]
        )
        assert bad_identity.exit_code == EXIT_USAGE and "does not exist" in bad_identity.output
        assert runner.invoke(app, ["block", "get", "tip", "--node", url]).exit_code == EXIT_USAGE
        assert runner.invoke(app, ["tx", "get", "xyz", "--node", url]).exit_code == EXIT_USAGE

    dead = f"http://127.0.0.1:{_unused_port()}"
    unreachable = runner.invoke(app, ["status", "--node", dead])
    assert unreachable.exit_code == EXIT_UNREACHABLE
    line = unreachable.output.strip()
    assert (
        "\n" not in line and f"cannot reach {dead}" in line and "pilotchain network status" in line
    )
    # the server is gone after the with block
    with Client(url, timeout=2) as late, pytest.raises(TransportError):
        late.status()

"""Issue 14's story with real processes (four validators, a vault per organisation), both suites:
A registers a payload; B is refused before a PERMIT; a PERMIT commits; B fetches, decrypts, the
commitment matches; both sides' receipts are anchored with proofs; the PERMIT is withdrawn and
B's next fetch is refused; A purges while B's vault is down, B returns and deletes its copy and
confirms; the audit export of the whole story verifies offline and fails after one changed byte;
no payload byte is in any block; a non-member, a revoked identity and a replay get nothing."""

from __future__ import annotations

import base64
import json
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from pilotchain.apps.exchange.client import VaultClient, VaultError
from pilotchain.apps.exchange.network import _process
from pilotchain.apps.exchange.records import CONTRACT
from pilotchain.apps.exchange.server import PID_FILE
from pilotchain.cli.main import app
from pilotchain.codec import encode
from pilotchain.identity.files import load_ca
from pilotchain.ledger import merkle
from pilotchain.network.consortium import init_network, parse_orgs
from pilotchain.network.processes import (
    EPHEMERAL_PORT_MIN,
    free_port_block,
    nodes_of,
    stop_node,
    stop_pid_file,
    wait_until,
)
from pilotchain.network.services import start_process
from pilotchain.sdk import Client, Identity, SignedRequests

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MARKER = b"CT-CHEST patient 42: nodule 8mm, follow-up marker c1d2"
VALIDATORS = 4


def _vault_url(net: Path, org: str) -> str:
    return str(json.loads((net / "vaults" / org / "vault.json").read_text())["public_url"])


def _refused(call: Any, code: str) -> VaultError:
    with pytest.raises(VaultError) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


def _logs(net: Path) -> str:
    out = []
    for log in sorted([*net.glob("nodes/*/node.log"), *net.glob("vaults/*/vault.log")]):
        out.append(f"--- {log}\n" + log.read_text(errors="replace")[-3000:])
    return "\n".join(out)


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_the_whole_story_with_real_processes(tmp_path: Path, suite: str) -> None:
    net = tmp_path / "net"
    base = free_port_block(2 * VALIDATORS + 3, start=random.randrange(21_000, 31_000), stop=EPHEMERAL_PORT_MIN)
    manifest = init_network(net, suite_name=suite, orgs=parse_orgs("3"), validators=VALIDATORS, base_port=base,
                            now_ms=int(time.time() * 1000))
    a, b, c = [o["org"] for o in manifest["organizations"]]
    runner = CliRunner()
    identity = {org: Identity.load(net / "orgs" / org / "client.id") for org in (a, b, c)}
    data = MARKER + bytes(random.Random(7).randbytes(1_500_000))
    try:
        started = runner.invoke(app, ["network", "up", "--dir", str(net), "--timeout", "120"])
        assert started.exit_code == 0, started.output + _logs(net)
        chain = {org: Client(network=net, identity=identity[org]) for org in (a, b, c)}
        vault_a = VaultClient(_vault_url(net, a), identity[a])
        vault_b = VaultClient(_vault_url(net, b), identity[b])

        registered = vault_a.put("ct-001", data, media_type="application/dicom", classification="important",
                                 retention_until_ms=int(time.time() * 1000) + 10**9, subjects=["pt:42"])
        record = chain[b].query(CONTRACT, "payload", {"payload_id": "ct-001"})
        assert record["commitment"].hex() == registered["commitment"] and record["owner"] == a

        _refused(lambda: vault_b.fetch("ct-001", "TREAT"), "NO_PERMIT")
        chain[a].invoke(identity[a], CONTRACT, "decide", {"payload_id": "ct-001", "org": b, "purpose": "TREAT",
                                                          "until_ms": int(time.time() * 1000) + 3_600_000})
        fetched = vault_b.fetch("ct-001", "TREAT")
        assert fetched["commitment"] == registered["commitment"] and vault_b.read("ct-001") == data

        # both vaults anchor their receipts in the background; each proof reaches a root on chain
        def anchored(vault: VaultClient, kinds: set[str]) -> bool:
            rows = vault.receipts("ct-001")
            return kinds <= {r["kind"] for r in rows if r["anchored"]}

        assert wait_until(lambda: anchored(vault_a, {"delivered", "received"}) and
                          anchored(vault_b, {"delivered", "received"}), timeout_s=60), _logs(net)
        chain_suite = vault_a.identity.suite
        for holder, vault in ((a, vault_a), (b, vault_b)):
            for row in vault.receipts("ct-001"):
                proof = row["proof"]
                assert merkle.verify_inclusion(chain_suite.hash, bytes.fromhex(proof["root"]),
                                               base64.b64decode(row["signed"]), proof["index"], proof["count"],
                                               [bytes.fromhex(p) for p in proof["path"]])
                on_chain = chain[a].query(CONTRACT, "anchored", {"root": bytes.fromhex(proof["root"])})
                assert holder in on_chain["by"]

        # a replayed delivery request, a non-member and B's members at A's vault get nothing
        with httpx.Client(base_url=_vault_url(net, a), auth=SignedRequests(identity[b]), timeout=30) as as_b:
            request = encode(["ct-001", a, "TREAT", "0f" * 16])
            first = as_b.post("/v1/deliveries", content=request)
            assert first.status_code == 200, first.text
            replay = as_b.post("/v1/deliveries", content=request)
            assert replay.status_code == 409 and replay.json()["code"] == "REPLAYED"
            assert as_b.get("/v1/payloads/ct-001").status_code == 403
        assert httpx.get(_vault_url(net, a) + "/v1/payloads/ct-001", timeout=10).status_code == 401

        chain[a].invoke(identity[a], CONTRACT, "withdraw", {"payload_id": "ct-001", "org": b, "reason": "consent withdrawn"})
        assert "consent withdrawn" in _refused(lambda: vault_b.fetch("ct-001", "TREAT"), "WITHDRAWN").message

        # A purges while B's vault is down; B deletes its copy when it returns, and confirms
        home_b = net / "vaults" / b
        assert stop_pid_file(home_b / PID_FILE) == "stopped"
        purged = vault_a.purge("ct-001", "the patient asked for deletion (PIPL art. 47)")
        assert purged["state"] == "purged"
        start_process(_process(home_b))
        assert wait_until(lambda: chain[a].query(CONTRACT, "purge_confirmation",
                                                 {"payload_id": "ct-001", "org": b}) is not None,
                          timeout_s=60), _logs(net)
        assert vault_b.get("ct-001")["state"] == "purged"
        _refused(lambda: vault_b.read("ct-001"), "PURGED")
        assert chain[c].query(CONTRACT, "payload", {"payload_id": "ct-001"})["purged"]["reason"].startswith("the patient")

        # the audit export of the whole story verifies offline, and not after one changed byte
        out = tmp_path / "ct-001.audit"
        exported = runner.invoke(app, ["audit", "export", "--payload", "ct-001", "--out", str(out),
                                       "--vault", _vault_url(net, a), "-i", str(net / "orgs" / a / "client.id")])
        assert exported.exit_code == 0, exported.output + _logs(net)
        verified = runner.invoke(app, ["audit", "verify", str(out), "--genesis", str(net / "genesis.json"), "--json"])
        assert verified.exit_code == 0, verified.output
        report = json.loads(verified.stdout)
        methods = [t["method"] for t in report["transactions"]]
        assert methods[0] == "register" and {"decide", "withdraw", "purge", "confirm_purge"} <= set(methods)
        assert {"delivered", "received"} <= {r["kind"] for r in report["receipts"]}
        raw = bytearray(out.read_bytes())
        for position in (len(raw) // 3, len(raw) // 2, len(raw) - 5):
            changed = bytearray(raw)
            changed[position] ^= 0x01
            tampered = tmp_path / f"tampered-{position}.audit"
            tampered.write_bytes(bytes(changed))
            refused = runner.invoke(app, ["audit", "verify", str(tampered), "--genesis", str(net / "genesis.json")])
            assert refused.exit_code == 1 and "does NOT verify" in refused.output, refused.output

        # a revoked identity gets nothing: B's vault signs as B's client, revoked now
        ca = load_ca(net / "orgs" / b / "ca")
        revocation = ca.revoke(identity[b].certificate.serial, "laptop lost", now_ms=int(time.time() * 1000) - 1000)
        admin_b = Identity.load(net / "orgs" / b / "admin.id")
        with Client(network=net, identity=admin_b) as as_admin_b:
            as_admin_b.invoke(admin_b, "gov", "propose", {"kind": "revoke", "payload": {"revocation": encode(revocation)}})
        vault_a.put("ct-002", b"second study", media_type="text/plain", classification="general",
                    retention_until_ms=int(time.time() * 1000) + 10**9)
        chain[a].invoke(identity[a], CONTRACT, "decide", {"payload_id": "ct-002", "org": b, "purpose": "TREAT",
                                                          "until_ms": int(time.time() * 1000) + 3_600_000})
        outcomes: list[str] = []
        assert wait_until(lambda: _fetch_refused(vault_b, outcomes), timeout_s=60), \
            f"a revoked identity still fetched: {outcomes[-5:]}" + _logs(net)

        # and no payload byte is in any block
        head = chain[c].status().height
        blocks = b"".join(t.raw for h in range(1, head + 1) for t in chain[c].get_block(h).transactions)
        assert MARKER not in blocks and data[100_000:100_064] not in blocks
    finally:
        runner.invoke(app, ["network", "down", "--dir", str(net), "--grace", "10"])
        for node in nodes_of(net):
            stop_node(node, kill=True, grace_s=5)


def _fetch_refused(vault_b: VaultClient, outcomes: list[str]) -> bool:
    """True once B's vault, signing with the revoked identity, is refused (by its own node or by
    A's vault) with the revocation as the reason."""
    try:
        vault_b.fetch("ct-002", "TREAT")
    except VaultError as exc:
        # refused by A's vault (401), or by B's own vault, which cannot read the chain with a
        # revoked identity (503, saying why) — either way nothing is delivered, and the reason says so
        outcomes.append(f"{exc.code}: {exc.message[:300]}")
        return "revoked" in exc.message.lower()
    outcomes.append("delivered")
    return False

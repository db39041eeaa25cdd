"""A network made with --tls: every gateway serves HTTPS with a certificate from the network's TLS
CA, clients that trust the CA (through network.json) work, others cannot talk to it at all."""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from typer.testing import CliRunner

from pilotchain.cli.main import app
from pilotchain.network.consortium import init_network, load_manifest, parse_orgs
from pilotchain.network.processes import (
    nodes_of,
    probe_status,
    reader_identity,
    start_node,
    stop_node,
    tls_verify,
    wait_until,
)
from pilotchain.sdk import Client, Identity, TransportError

from .live import free_port_block, logs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_a_tls_network_serves_https_and_only_clients_that_trust_its_ca_reach_it(tmp_path: Path) -> None:
    net = tmp_path / "net"
    init_network(net, validators=4, orgs=parse_orgs("4"), base_port=free_port_block(8),
                 now_ms=int(time.time() * 1000), tls=True)
    manifest = load_manifest(net)
    assert manifest["tls_ca"] == "tls-ca.pem" and (net / "tls-ca.key").stat().st_mode & 0o777 == 0o600
    nodes = nodes_of(net)
    assert all(node.gateway_url.startswith("https://") for node in nodes)
    ca = x509.load_pem_x509_certificate((net / "tls-ca.pem").read_bytes())
    served = x509.load_pem_x509_certificate((nodes[0].home / "tls.crt").read_bytes())
    served.verify_directly_issued_by(ca)
    assert "127.0.0.1" in str(served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    reader, verify = reader_identity(net), tls_verify(net)
    assert reader is not None and isinstance(verify, ssl.SSLContext)
    try:
        for node in nodes:
            start_node(node)
        assert wait_until(lambda: all((probe_status(n.gateway_url, identity=reader, verify=verify) or {})
                                      .get("height", 0) >= 1 for n in nodes), timeout_s=90), logs(nodes)

        # a client pinned to the network trusts its CA (network.json names it) and works end to end
        hospital = Identity.load(net / "orgs" / "hospital" / "client.id")
        with Client(network=net) as client:
            assert client.base_url.startswith("https://")
            assert client.invoke(hospital, "kv", "put", {"key": "beds", "value": 120}).ok
            assert client.query("kv", "get", {"key": "beds"}) == 120

        # a client that does not trust the CA cannot even connect, and plain HTTP gets nowhere
        url = nodes[1].gateway_url
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/healthz", timeout=5.0)
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=5.0)
        with Client(url, identity=hospital) as untrusting, pytest.raises(TransportError):
            untrusting.status()
        assert httpx.get(f"{url}/healthz", timeout=5.0, verify=verify).json()["ok"] is True

        # the tools read the network over TLS too
        status = CliRunner().invoke(app, ["network", "status", "--dir", str(net), "--json"])
        assert status.exit_code == 0, status.output
        assert all(row["state"] == "up" and row["height"] >= 1 for row in json.loads(status.stdout))
    finally:
        for node in nodes:
            stop_node(node, kill=True, grace_s=10)

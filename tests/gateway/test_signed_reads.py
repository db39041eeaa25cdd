"""No anonymous reads: every gateway request but the probes is signed by a consortium member
(HTTP Message Signatures, RFC 9421). A non-member, a revoked member, a replayed, stale or tampered
request reads nothing."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver
from http_message_signatures.algorithms import ED25519

from pilotchain.codec import encode
from pilotchain.gateway import create_app
from pilotchain.identity.authority import CertificateAuthority
from pilotchain.identity.files import IdentityBundle, load_ca
from pilotchain.node.local import LocalNode
from pilotchain.sdk import Identity, SignedRequests, build_transaction
from pilotchain.sdk._signing import SIGNATURE_LABEL, SIGNATURE_TAG
from pilotchain.testing import Consortium, create_consortium
from tests.gateway.helpers import BASE_URL, run

#: every read endpoint the gateway serves (all must refuse an unsigned request)
READS = [
    ("GET", "/v1/status"), ("GET", "/v1/blocks/latest"), ("GET", "/v1/blocks/0"), ("GET", "/v1/blocks/0/raw"),
    ("GET", "/v1/txs/" + "00" * 32), ("GET", "/v1/state/kv?key_text=v/k"), ("POST", "/v1/query/kv/get"),
    ("GET", "/v1/events"), ("POST", "/v1/txs"), ("POST", "/v1/txs/batch"), ("GET", "/openapi.json"),
]


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    document = response.json()
    assert document["code"] == code, document
    return document


async def _serve(consortium: Consortium, data_dir: Path) -> tuple[LocalNode, Any]:
    node = LocalNode.open(data_dir, consortium.genesis, name=consortium.validator)
    return node, create_app(node)


def _client(app: Any, *, auth: httpx.Auth | None = None, remote: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(remote, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, auth=auth)


def _outsider(consortium: Consortium) -> Identity:
    """A well-formed identity from a CA the consortium never admitted (same org id as a member)."""
    member = consortium.reader()
    suite = member.suite
    now_ms = int(time.time() * 1000)
    ca = CertificateAuthority.create(suite, suite.generate_private_key(), org_id=member.org,
                                     display_name="impostor", now_ms=now_ms - 1000, valid_ms=10**10)
    key = suite.generate_private_key()
    certificate = ca.issue("mallory", ("client",), key.public_key().to_der(), now_ms=now_ms - 1000, valid_ms=10**9)
    return Identity(IdentityBundle(suite, certificate, key))


def test_nothing_but_the_probes_answers_without_a_signature(consortium: Consortium, tmp_path: Path) -> None:
    async def main() -> None:
        node, app = await _serve(consortium, tmp_path / "d")
        try:
            async with _client(app) as anonymous:
                for method, path in READS:
                    response = await anonymous.request(method, path, content=b"{}" if method == "POST" else None)
                    document = _error(response, 401, "UNAUTHENTICATED")
                    assert "consortium members only" in document["message"]
                    assert response.headers["www-authenticate"].startswith("Signature")
                health = (await anonymous.get("/healthz")).json()
                assert health["ok"] is True and health["chain_id"] == consortium.genesis.chain_id
                assert set(health) == {"ok", "reason", "chain_id", "genesis_hash"}  # nothing of the contents
                assert (await anonymous.get("/readyz")).status_code in (200, 503)
                assert (await anonymous.get("/metrics")).status_code == 200  # a local scraper
            async with _client(app, remote="10.1.2.3") as remote:
                _error(await remote.get("/metrics"), 401, "UNAUTHENTICATED")
            async with _client(app, auth=SignedRequests(consortium.reader()), remote="10.1.2.3") as member:
                assert (await member.get("/metrics")).status_code == 200
                assert (await member.get("/v1/status")).json()["chain_id"] == consortium.genesis.chain_id
                assert (await member.get("/docs")).status_code == 404  # no pages that load a CDN
                assert (await member.get("/openapi.json")).json()["info"]["title"] == "pilotchain gateway"
        finally:
            await node.close()

    run(main())


@pytest.mark.parametrize("suite_fixture", ["consortium", "gm_consortium"])
def test_a_member_reads_and_a_non_member_reads_nothing(suite_fixture: str, request: pytest.FixtureRequest,
                                                       tmp_path: Path) -> None:
    consortium: Consortium = request.getfixturevalue(suite_fixture)

    async def main() -> None:
        node, app = await _serve(consortium, tmp_path / "d")
        try:
            async with _client(app, auth=SignedRequests(consortium.reader())) as member:
                assert (await member.get("/v1/blocks/0")).status_code == 200
                query = await member.post("/v1/query/kv/get", json={"args": {"key": "a"}})
                assert query.status_code == 200 and query.json() == {"result": None}
            async with _client(app, auth=SignedRequests(_outsider(consortium))) as outsider:
                for method, path in READS:
                    response = await outsider.request(method, path, content=b"{}" if method == "POST" else None)
                    document = _error(response, 401, "UNAUTHENTICATED")
                    assert "not a current consortium member" in document["message"]
        finally:
            await node.close()

    run(main())


def test_a_replayed_stale_or_tampered_request_reads_nothing(consortium: Consortium, tmp_path: Path) -> None:
    reader = consortium.reader()
    signer = SignedRequests(reader)

    async def main() -> None:
        node, app = await _serve(consortium, tmp_path / "d")
        try:
            async with _client(app) as raw:
                signed = signer.sign(httpx.Request("GET", f"{BASE_URL}/v1/status"))
                first = await raw.get("/v1/status", headers=dict(signed.headers))
                assert first.status_code == 200
                again = await raw.get("/v1/status", headers=dict(signed.headers))
                assert "already used" in _error(again, 401, "UNAUTHENTICATED")["message"]

                old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)
                stale = signer.sign(httpx.Request("GET", f"{BASE_URL}/v1/status"), created=old)
                _error(await raw.get("/v1/status", headers=dict(stale.headers)), 401, "UNAUTHENTICATED")

                elsewhere = signer.sign(httpx.Request("GET", f"{BASE_URL}/v1/status"))
                _error(await raw.get("/v1/blocks/0", headers=dict(elsewhere.headers)), 401, "UNAUTHENTICATED")

                body = b'{"args": {"key": "a"}}'
                post = signer.sign(httpx.Request("POST", f"{BASE_URL}/v1/query/kv/get", content=body,
                                                 headers={"content-type": "application/json"}))
                tampered = await raw.post("/v1/query/kv/get", content=b'{"args": {"key": "b"}}',
                                          headers=dict(post.headers))
                _error(tampered, 401, "UNAUTHENTICATED")
                honest = await raw.post("/v1/query/kv/get", content=body, headers=dict(post.headers))
                assert honest.status_code == 200
        finally:
            await node.close()

    run(main())


def test_a_revoked_member_reads_nothing(tmp_path: Path) -> None:
    consortium = create_consortium(tmp_path / "net", orgs=2)
    orgs = list(consortium.clients)
    victim = consortium.clients[orgs[0]]
    admin = consortium.admins[orgs[0]]

    async def main() -> None:
        node, app = await _serve(consortium, tmp_path / "d")
        try:
            async with _client(app, auth=SignedRequests(victim)) as client:
                assert (await client.get("/v1/status")).status_code == 200
            ca = load_ca(consortium.directory / "orgs" / orgs[0] / "ca")
            revocation = ca.revoke(victim.certificate.serial, "laptop lost", now_ms=int(time.time() * 1000) - 1000)
            tx = build_transaction(admin, consortium.genesis.chain_id, "gov", "propose",
                                   {"kind": "revoke", "payload": {"revocation": encode(revocation)}})
            await node.submit_tx(tx.raw)
            assert node.produce_block() is not None
            async with _client(app, auth=SignedRequests(victim)) as client:
                document = _error(await client.get("/v1/status"), 401, "UNAUTHENTICATED")
                assert "revoked" in document["message"]
            async with _client(app, auth=SignedRequests(consortium.clients[orgs[1]])) as other:
                assert (await other.get("/v1/status")).status_code == 200
        finally:
            await node.close()

    run(main())


def test_the_signature_is_standard_rfc_9421_ed25519(consortium: Consortium) -> None:
    """An independent check: the http-message-signatures package's own Ed25519 algorithm (on
    cryptography's Ed25519 key, not pilotchain's suite) verifies what the SDK signs."""
    reader = consortium.reader()
    request = SignedRequests(reader).sign(httpx.Request("POST", "https://node.example/v1/query/kv/get",
                                                        content=b'{"args": null}'))
    public_key = Ed25519PublicKey.from_public_bytes(reader.bundle.private_key.public_key().to_der()[-32:])

    class Key(HTTPSignatureKeyResolver):
        def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
            assert key_id == reader.certificate_id.hex()
            return public_key

    class View:
        method = request.method
        url = str(request.url)
        headers = request.headers

    results = HTTPMessageVerifier(signature_algorithm=ED25519, key_resolver=Key()).verify(
        View(), expect_label=SIGNATURE_LABEL, expect_tag=SIGNATURE_TAG, body=request.content)
    assert results and results[0].parameters["alg"] == "ed25519"
    assert '"content-digest"' in results[0].covered_components

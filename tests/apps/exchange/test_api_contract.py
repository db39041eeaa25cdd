"""The vault's OpenAPI is the vault's API: schemathesis generates requests from a vault's own
``/openapi.json`` and checks every answer against it (status codes, content types, bodies, 405
with ``Allow`` for undeclared methods, schema-valid requests accepted and schema-violating ones
refused, no server errors).

Every request is signed by a member of the vault's organisation as the vault client signs it
(``SignedRequests``; an upload's signature covers its ``Content-Digest``) and goes to the app in
process (no sockets), as in the exchange's other tests: a governed development chain with
``dataex`` deployed, two organisations' vaults. Examples are bounded and derandomized: a failure
replays.

Where the schema cannot carry the rule, a check is held differently:

* *schema-valid requests accepted* — not for a purge reason the schema's pattern admits but
  ``str.isprintable()`` does not (what the store holds reasons to; no JSON-schema pattern can say
  it); not on the upload (the dataex contract decides what no
  schema can: the classification is one the consortium allows, the retention ends in the future,
  the id is not taken) nor on the vault-to-vault bodies (a canonical msgpack record whose
  contents the release rule decides); 410 counts as an acceptance (a purged payload's answer);
* *no server error* — the audit export of the test chain answers 502 ``UNPROVEN``, because a
  development node certifies no block; that answer, and only it, is held as what it is.

Operations that extensions mount on the vault (the catalogue's ``/v1/catalogue/...``, tag
``catalogue``) are the extension's contract and not tested here (docs/exchange.md).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from pilotchain.sdk import SignedRequests
from tests.apps.exchange.helpers import Exchange, endpoint, exchange

#: Generated requests per operation and phase: enough to find what the first runs found, small
#: enough for `make test`; a deeper run sets PILOTCHAIN_API_CONTRACT_EXAMPLES (the same seed)
EXAMPLES_MAX = int(os.environ.get("PILOTCHAIN_API_CONTRACT_EXAMPLES", "40"))
_BEYOND_THE_SCHEMA = frozenset({"/v1/payloads/{payload_id}:PUT", "/v1/deliveries:POST", "/v1/acknowledgements:POST"})
_AUDIT_EXPORT = "/v1/audit/export"
#: what a schema-valid request may be answered: schemathesis's default, and 410 Gone
_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "410", "429", "5xx"]


# vault-to-vault bodies are canonical msgpack records: generated as bytes, sent as they are
schemathesis.serializer.alias("application/msgpack", "application/octet-stream")


class _Unread(httpx.BaseTransport):
    """The in-process transport with the body left to the client to read, as from a socket
    (schemathesis asks for the response's elapsed time, which httpx sets once it read it)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answered = self.inner.handle_request(request)
        return httpx.Response(answered.status_code, headers=answered.headers, stream=httpx.ByteStream(answered.content),
                              request=request)


class _Vault:
    """One organisation's vault app (beside the other's, on a governed chain) and a client of a
    member of that organisation."""

    def __init__(self, world: Exchange) -> None:
        self.world = world
        self.org = next(iter(world.vaults))
        self.app = world.apps[self.org]
        transport = world.transport(endpoint(self.org))
        if transport is None:  # pragma: no cover - helpers.exchange serves every vault
            raise RuntimeError(f"no in-process vault at {endpoint(self.org)}")
        self.signer = SignedRequests(world.chain.identity(self.org))
        self.client = httpx.Client(base_url=endpoint(self.org), transport=_Unread(transport), auth=self.signer)

    def send(self, case: Any) -> httpx.Response:
        sent = case.as_transport_kwargs(base_url=endpoint(self.org))
        options: dict[str, Any] = {"headers": sent.get("headers"), "params": sent.get("params")}
        if "json" in sent:
            options["json"] = sent["json"]
        elif sent.get("data") is not None:
            data = sent["data"]
            options["content"] = data.encode() if isinstance(data, str) else data
        request = self.client.build_request(sent["method"], sent["url"], **options)
        if case.operation.method.upper() == "PUT" and case.operation.path == "/v1/payloads/{payload_id}":
            # an upload streams: its signature covers the Content-Digest (VaultClient.put does this)
            self.signer.sign_streamed(request, hashlib.sha256(request.read()).digest())
            return self.client.send(request, auth=None)
        return self.client.send(request)

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        response = self.client.request(method, path, **options)
        response.read()
        return response


@pytest.fixture(scope="module")
def contract_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Vault]:
    with exchange(tmp_path_factory.mktemp("vault-api-contract"), orgs=2) as world:
        vault = _Vault(world)
        try:
            yield vault
        finally:
            vault.client.close()


@pytest.fixture(scope="module")
def vault_schema(contract_vault: _Vault) -> Any:
    # the document a signed GET /openapi.json returns (test_the_vault_serves_the_tested_openapi checks that)
    config = SchemathesisConfig.from_dict({"checks": {"positive_data_acceptance": {"expected-statuses": _ACCEPTED}}})
    return schemathesis.openapi.from_dict(contract_vault.app.openapi(), config=config)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy schema renames the test through `node._nodeid`, which pytest 9's
    # items no longer have (AttributeError): give it one
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("vault_schema").exclude(tag="catalogue")


def _unprintable_reason(case: Any) -> bool:
    """A purge reason the schema's pattern lets through but str.isprintable() does not (format,
    separator, private-use or unassigned characters)."""
    body = case.body if case.operation.path.endswith("/purge") else None
    return isinstance(body, dict) and isinstance(body.get("reason"), str) and not body["reason"].isprintable()


@schema.parametrize()
@settings(max_examples=EXAMPLES_MAX, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_vault_answers_as_its_openapi_says(case: Any, contract_vault: _Vault) -> None:
    response = contract_vault.send(case)
    excluded = []
    if f"{case.operation.path}:{case.operation.method.upper()}" in _BEYOND_THE_SCHEMA or _unprintable_reason(case):
        excluded.append(positive_data_acceptance)
    if case.operation.path == _AUDIT_EXPORT and response.status_code >= 500:
        # a development node certifies no block: the export is refused as unprovable, nothing else
        assert response.status_code == 502 and response.json()["code"] == "UNPROVEN", response.text
        assert "certif" in response.json()["message"], response.text
        excluded.append(not_a_server_error)
    case.validate_response(response, excluded_checks=excluded)


def test_the_vault_serves_the_tested_openapi(contract_vault: _Vault) -> None:
    """Clients generate from GET /openapi.json: it is the document tested above, without
    FastAPI's 422 (the vault answers invalid requests 400), every operation listing the
    signed-request refusal (401) and the JSON error body."""
    response = contract_vault.request("GET", "/openapi.json")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document == contract_vault.app.openapi()
    assert "components" not in document or "HTTPValidationError" not in document["components"].get("schemas", {})
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            assert "200" in responses or "201" in responses, (method, path)
            if path != "/healthz":
                assert responses["401"]["content"]["application/json"]["schema"]["required"] == ["code", "message"]
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"], metrics


def test_undeclared_methods_are_answered_405_with_allow(contract_vault: _Vault) -> None:
    """Allow names every method the path serves (Starlette's named only the first route it
    tried: PUT for a payload's path, which GET serves too), the body is the JSON error."""
    for path, allowed in [("/v1/payloads/p-1", "GET, PUT"), ("/v1/payloads", "GET"),
                          ("/v1/payloads/p-1/content", "GET"), ("/v1/payloads/p-1/fetch", "POST"),
                          ("/v1/deliveries", "POST"), ("/metrics", "GET")]:
        served = allowed.split(", ")
        for method in ("TRACE", "PUT", "DELETE", "PATCH", "POST", "GET"):
            if method in served:
                continue
            response = contract_vault.request(method, path)
            assert response.status_code == 405, (method, path, response.text)
            assert response.headers["allow"] == allowed, (method, path)
            assert response.json()["code"] == "METHOD_NOT_ALLOWED", (method, path)


def test_parameters_are_what_their_patterns_say(contract_vault: _Vault) -> None:
    """ASCII digits for times, whole-string ids; a bad query is 400 with the JSON body, not 422."""
    for path in ("/v1/payloads/-x", "/v1/payloads?limit=0", "/v1/payloads?limit=1001", "/v1/payloads?after=%0A",
                 "/v1/receipts", "/v1/receipts?payload_id=a%0A", "/v1/requests?payload_id=%D9%A1x/"):
        response = contract_vault.request("GET", path)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["code"] in ("BAD_REQUEST", "BAD_ID"), path
    for retention in ("\u0661\u0662", " 12", "1_000", "+5", "99999999999999999999"):
        body = b"x"
        request = contract_vault.client.build_request(
            "PUT", "/v1/payloads/p-times", content=body,
            headers=[(b"content-type", b"text/plain"), (b"pilotchain-retention-until", retention.encode())])
        contract_vault.signer.sign_streamed(request, hashlib.sha256(body).digest())
        response = contract_vault.client.send(request, auth=None)
        response.read()
        assert response.status_code == 400, (retention, response.text)
        assert "Retention" in response.json()["message"], retention
    refused = contract_vault.request("POST", "/v1/audit/export", json={"since_ms": "yesterday"})
    assert refused.status_code == 400 and refused.json()["code"] == "BAD_REQUEST", refused.text

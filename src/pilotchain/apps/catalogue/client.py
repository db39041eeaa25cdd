"""The catalogue's SDK: every step a department and the Big-Data Bureau take, from Python.

``CatalogueClient(chain, identity, vault_url=...)``: ``chain`` is a :class:`pilotchain.sdk.Client`
(transactions are signed by ``identity`` and waited for), ``vault_url`` the identity's own
organisation's vault (for datasets, calls, receipts and usage evidence). Refusals raise
:class:`CatalogueRefused` with a ``code``: the contract's (``PERMISSION_DENIED``,
``BAD_ARGUMENTS``, ``EXECUTION_FAILED``) or the vault's (``FIELD_NOT_AGREED``, ``EXPIRED``, ...).

    bureau:      admit, withdraw_entry, approve / reject (when a policy names the bureau), revoke,
                 pilotchain.apps.catalogue.usage.collect_usage (statistics from every vault)
    department:  publish_duty, retire_duty, publish_entry, withdraw_entry, publish_dataset (vault),
                 request, approve, reject, revoke, call (vault), calls / receipts (vault)
    anyone:      entry, entry_history, duty, duty_history, dataset, dataset_history, get_request,
                 agreement, entries, duties, departments, requests, agreements, evaluate_policy
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from pilotchain.apps.catalogue.records import CONTRACT
from pilotchain.errors import CoreError
from pilotchain.sdk import Client, Identity, PilotchainError, SignedRequests

__all__ = ["CatalogueClient", "CatalogueRefused"]

TIMEOUT_S = 120.0
_DAY_MS = 86_400_000


class CatalogueRefused(CoreError):
    """The chain or a vault refused; ``code`` says why (UNREACHABLE when nothing answered)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class CatalogueClient:
    def __init__(self, chain: Client, identity: Identity, *, vault_url: str | None = None,
                 vault_transport: httpx.BaseTransport | None = None, vault_verify: Any = True,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.chain = chain
        self.identity = identity
        self.vault_url = vault_url
        self._vault: httpx.Client | None = None
        if vault_url is not None:
            self._vault = httpx.Client(base_url=vault_url.rstrip("/"), auth=SignedRequests(identity),
                                       transport=vault_transport, timeout=timeout_s, verify=vault_verify)

    def close(self) -> None:
        if self._vault is not None:
            self._vault.close()

    def __enter__(self) -> CatalogueClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ chain

    def _invoke(self, method: str, args: dict[str, Any]) -> Any:
        try:
            result = self.chain.invoke(self.identity, CONTRACT, method, args, check=False)
        except PilotchainError as exc:
            raise CatalogueRefused("UNREACHABLE", f"cannot send {CONTRACT}.{method}: {exc}") from exc
        if result.receipt is None or result.receipt.status != "OK":
            code = result.receipt.status if result.receipt is not None else (result.code or "NOT_COMMITTED")
            why = result.receipt.message if result.receipt is not None else (result.message or result.state)
            raise CatalogueRefused(code, why)
        return result.result

    def query(self, method: str, args: dict[str, Any] | None = None) -> Any:
        try:
            return self.chain.query(CONTRACT, method, args or {})
        except PilotchainError as exc:
            raise CatalogueRefused(getattr(exc, "code", None) or "QUERY_FAILED", str(exc)) from exc

    def admit(self, org: str, name: str) -> dict[str, Any]:
        """(Big-Data Bureau admin) admit ``org`` to the directory as a department."""
        self._invoke("admit", {"org": org, "name": name})
        result: dict[str, Any] = self.query("department", {"org": org})
        return result

    def publish_duty(self, duty_id: str, title: str, basis: str) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("publish_duty", {"duty_id": duty_id, "title": title, "basis": basis})
        return result

    def retire_duty(self, duty_id: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("retire_duty", {"duty_id": duty_id, "reason": reason})
        return result

    def publish_entry(self, entry_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """A new version of a catalogue entry: title, duty_id, fields, key_field, sharing,
        update_frequency, and optionally description, approver, classification, policy."""
        result: dict[str, Any] = self._invoke("publish_entry", {"entry_id": entry_id, "spec": dict(spec)})
        return result

    def withdraw_entry(self, entry_id: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("withdraw_entry", {"entry_id": entry_id, "reason": reason})
        return result

    def request(self, entry_id: str, *, duty_id: str, fields: Sequence[str], purpose: str,
                from_ms: int | None = None, until_ms: int | None = None, days: int = 90,
                request_id: str | None = None) -> dict[str, Any]:
        """File a request; the entry's policy decides at once: ``status`` agreed (the agreement
        is ``agreement(request['id'])``), denied, or pending (``awaiting``: provider / bureau)."""
        start = from_ms if from_ms is not None else int(time.time() * 1000)
        result: dict[str, Any] = self._invoke("request", {
            "request_id": request_id or secrets.token_hex(16), "entry_id": entry_id, "duty_id": duty_id,
            "fields": list(fields), "purpose": purpose, "from_ms": start,
            "until_ms": until_ms if until_ms is not None else start + days * _DAY_MS})
        return result

    def approve(self, request_id: str, note: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("approve", {"request_id": request_id, "note": note})
        return result

    def reject(self, request_id: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("reject", {"request_id": request_id, "reason": reason})
        return result

    def revoke(self, agreement_id: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("revoke", {"agreement_id": agreement_id, "reason": reason})
        return result

    def config(self) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.query("config")
        return result

    def entry(self, entry_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.query("entry", {"entry_id": entry_id})
        return result

    def entry_history(self, entry_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.query("entry_history", {"entry_id": entry_id})
        return result

    def duty(self, duty_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.query("duty", {"duty_id": duty_id})
        return result

    def duty_history(self, duty_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.query("duty_history", {"duty_id": duty_id})
        return result

    def dataset(self, entry_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.query("dataset", {"entry_id": entry_id})
        return result

    def dataset_history(self, entry_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.query("dataset_history", {"entry_id": entry_id})
        return result

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.query("get_request", {"request_id": request_id})
        return result

    def agreement(self, agreement_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.query("agreement", {"agreement_id": agreement_id})
        return result

    def _all(self, method: str, **filters: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while offset >= 0:
            page = self.query(method, {"offset": offset, "limit": 200, **filters})
            items.extend(page["items"])
            offset = int(page["next"])
        return items

    def entries(self) -> list[dict[str, Any]]:
        return self._all("entries_list")

    def duties(self) -> list[dict[str, Any]]:
        return self._all("duties_list")

    def departments(self) -> list[dict[str, Any]]:
        return self._all("departments_list")

    def requests(self, *, org: str = "", status: str = "") -> list[dict[str, Any]]:
        return self._all("requests_list", org=org, status=status)

    def agreements(self, *, org: str = "") -> list[dict[str, Any]]:
        return self._all("agreements_list", org=org)

    def evaluate_policy(self, policy: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
        """The contract's decision of ``policy`` on ``facts`` (a read-only query)."""
        result: dict[str, Any] = self.query("evaluate_policy", {"policy": dict(policy), "facts": dict(facts)})
        return result

    # ------------------------------------------------------------------ own vault

    def _vault_call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._vault is None:
            raise CatalogueRefused("NO_VAULT", "this client has no vault_url: pass your organisation's vault URL")
        try:
            response = self._vault.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CatalogueRefused("UNREACHABLE", f"cannot reach the vault at {self.vault_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                document = response.json()
                code, message = str(document.get("code", response.status_code)), str(document.get("message", ""))
            except ValueError:
                code, message = str(response.status_code), response.text[:300]
            raise CatalogueRefused(code, message)
        return response

    def publish_dataset(self, entry_id: str, records: Sequence[Mapping[str, Any]], *,
                        retention_days: int = 5 * 365) -> dict[str, Any]:
        """Store a new version of the entry's data in your vault; its commitment goes on chain."""
        result: dict[str, Any] = self._vault_call(
            "PUT", f"/v1/catalogue/datasets/{entry_id}",
            json={"records": [dict(r) for r in records], "retention_days": retention_days}).json()
        return result

    def call(self, agreement_id: str, *, fields: Sequence[str] = (), where: Mapping[str, Sequence[Any]] | None = None,
             offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """Have your vault call the provider under ``agreement_id``; ``records`` comes back with
        every value verified against the commitment on chain (``verified``)."""
        result: dict[str, Any] = self._vault_call("POST", "/v1/catalogue/calls", json={
            "agreement_id": agreement_id, "fields": list(fields),
            "where": {k: list(v) for k, v in (where or {}).items()}, "offset": offset, "limit": limit}).json()
        return result

    def calls(self, day: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._vault_call("GET", "/v1/catalogue/calls", params={"day": day}).json()["calls"]
        return result

    def receipts(self, day: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._vault_call("GET", "/v1/catalogue/receipts",
                                                        params={"day": day}).json()["receipts"]
        return result

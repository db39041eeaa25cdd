"""A client for an organisation's vault (synchronous and asynchronous), for applications and the CLI.

Every request is signed with the caller's consortium identity (RFC 9421, as for gateways).
Uploads stream from a file or an iterator without being held in memory: the body's SHA-256 is
computed first (a second pass over a file; an iterator is spooled to a temporary file), and the
signature covers it as ``Content-Digest``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from pilotchain.errors import CoreError
from pilotchain.sdk import Identity, SignedRequests

__all__ = ["AsyncVaultClient", "VaultClient", "VaultError"]

READ_BYTES = 1024 * 1024
TIMEOUT_S = 120.0


class VaultError(CoreError):
    """The vault refused (``code`` names why: NO_PERMIT, WITHDRAWN, PURGED, REPLAYED, ...) or
    could not be reached (``code`` UNREACHABLE)."""

    def __init__(self, code: str, message: str, status: int = 0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def _check(response: httpx.Response) -> Any:
    if response.status_code < 400:
        return response.json()
    try:
        document = response.json()
        code, message = str(document.get("code", response.status_code)), str(document.get("message", ""))
    except ValueError:
        code, message = str(response.status_code), response.text[:300]
    raise VaultError(code, message, response.status_code)


def _file_digest(path: Path, progress: Callable[[int], None] | None = None) -> tuple[bytes, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(READ_BYTES):
            digest.update(block)
            size += len(block)
    return digest.digest(), size


def _file_pieces(path: Path, progress: Callable[[int], None] | None) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(READ_BYTES):
            if progress is not None:
                progress(len(block))
            yield block


def _spool(data: bytes | Iterable[bytes] | BinaryIO, directory: Path | None = None) -> Path:
    """Write ``data`` to a private temporary file (bounded memory) and return its path."""
    fd, name = tempfile.mkstemp(prefix="pilotchain-upload-", dir=directory)
    with os.fdopen(fd, "wb") as out:
        if isinstance(data, bytes | bytearray):
            out.write(data)
        elif hasattr(data, "read"):
            while block := data.read(READ_BYTES):
                out.write(block)
        else:
            for block in data:
                out.write(block)
    return Path(name)


def _upload_headers(media_type: str, classification: str, retention_until_ms: int, policy: str,
                    subjects: Iterable[str]) -> dict[str, str]:
    headers = {"content-type": media_type, "pilotchain-classification": classification,
               "pilotchain-retention-until": str(retention_until_ms)}
    if policy:
        headers["pilotchain-policy"] = policy
    subject_list = [s for s in subjects if s]
    if subject_list:
        headers["pilotchain-subjects"] = ",".join(subject_list)
    return headers


class VaultClient:
    """``VaultClient(url, identity)``: one organisation's member talking to its vault."""

    def __init__(self, base_url: str, identity: Identity, *, transport: httpx.BaseTransport | None = None,
                 timeout: float = TIMEOUT_S, verify: Any = True) -> None:
        self.identity = identity
        self._auth = SignedRequests(identity)
        self._http = httpx.Client(base_url=base_url.rstrip("/"), auth=self._auth, transport=transport,
                                  timeout=timeout, verify=verify)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VaultClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return _check(self._http.request(method, path, **kwargs))
        except httpx.HTTPError as exc:
            raise VaultError("UNREACHABLE", f"cannot reach the vault at {self._http.base_url}: {exc}") from exc

    def put(self, payload_id: str, data: bytes | Path | Iterable[bytes] | BinaryIO, *, media_type: str,
            classification: str, retention_until_ms: int, policy: str = "", subjects: Iterable[str] = (),
            progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Store ``data`` in the vault and register its commitment; returns the registration
        (commitment, size, tx id). ``progress(n)`` is called as bytes go out."""
        spooled: Path | None = None
        if isinstance(data, Path):
            path = data
        else:
            spooled = path = _spool(data)
        try:
            digest, _ = _file_digest(path)
            request = self._http.build_request(
                "PUT", f"/v1/payloads/{payload_id}", content=_file_pieces(path, progress),
                headers=_upload_headers(media_type, classification, retention_until_ms, policy, subjects))
            self._auth.sign_streamed(request, digest)
            try:
                response = self._http.send(request, auth=None)
            except httpx.HTTPError as exc:
                raise VaultError("UNREACHABLE", f"cannot reach the vault: {exc}") from exc
            result: dict[str, Any] = _check(response)
            return result
        finally:
            if spooled is not None:
                spooled.unlink(missing_ok=True)

    def get(self, payload_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/payloads/{payload_id}")
        return result

    def payloads(self, after: str | None = None, limit: int = 100) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        result: dict[str, Any] = self._call("GET", "/v1/payloads", params=params)
        return result

    def content(self, payload_id: str) -> Iterator[bytes]:
        """The payload's bytes, streamed."""
        try:
            with self._http.stream("GET", f"/v1/payloads/{payload_id}/content") as response:
                if response.status_code >= 400:
                    response.read()
                    _check(response)
                yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise VaultError("UNREACHABLE", f"cannot reach the vault: {exc}") from exc

    def read(self, payload_id: str) -> bytes:
        return b"".join(self.content(payload_id))

    def fetch(self, payload_id: str, purpose: str, *, owner_org: str | None = None) -> dict[str, Any]:
        """Have the vault fetch a copy from the payload's owner (needs a current PERMIT)."""
        body: dict[str, Any] = {"purpose": purpose}
        if owner_org is not None:
            body["owner_org"] = owner_org
        result: dict[str, Any] = self._call("POST", f"/v1/payloads/{payload_id}/fetch", json=body)
        return result

    def purge(self, payload_id: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v1/payloads/{payload_id}/purge", json={"reason": reason})
        return result

    def receipts(self, payload_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v1/receipts", params={"payload_id": payload_id})["receipts"]
        return result

    def audit_export(self, **selection: Any) -> bytes:
        """An offline-verifiable audit file (payload_id=, org=, subject=, since_ms=, until_ms=)."""
        try:
            response = self._http.post("/v1/audit/export", json=selection, timeout=max(self._http.timeout.read or 0, 600))
        except httpx.HTTPError as exc:
            raise VaultError("UNREACHABLE", f"cannot reach the vault: {exc}") from exc
        if response.status_code >= 400:
            _check(response)
        return response.content

    def requests(self, payload_id: str | None = None) -> list[dict[str, Any]]:
        params = {"payload_id": payload_id} if payload_id is not None else {}
        result: list[dict[str, Any]] = self._call("GET", "/v1/requests", params=params)["requests"]
        return result


class AsyncVaultClient:
    """The asynchronous twin of :class:`VaultClient` (same methods, awaitable)."""

    def __init__(self, base_url: str, identity: Identity, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = TIMEOUT_S, verify: Any = True) -> None:
        self.identity = identity
        self._auth = SignedRequests(identity)
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), auth=self._auth, transport=transport,
                                       timeout=timeout, verify=verify)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncVaultClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return _check(await self._http.request(method, path, **kwargs))
        except httpx.HTTPError as exc:
            raise VaultError("UNREACHABLE", f"cannot reach the vault at {self._http.base_url}: {exc}") from exc

    async def put(self, payload_id: str, data: bytes | Path | Iterable[bytes], *, media_type: str, classification: str,
                  retention_until_ms: int, policy: str = "", subjects: Iterable[str] = ()) -> dict[str, Any]:
        spooled: Path | None = None
        if isinstance(data, Path):
            path = data
        else:
            spooled = path = _spool(data)
        try:
            digest, _ = _file_digest(path)

            async def pieces() -> AsyncIterator[bytes]:
                for block in _file_pieces(path, None):
                    yield block

            request = self._http.build_request(
                "PUT", f"/v1/payloads/{payload_id}", content=pieces(),
                headers=_upload_headers(media_type, classification, retention_until_ms, policy, subjects))
            self._auth.sign_streamed(request, digest)
            try:
                response = await self._http.send(request, auth=None)
            except httpx.HTTPError as exc:
                raise VaultError("UNREACHABLE", f"cannot reach the vault: {exc}") from exc
            result: dict[str, Any] = _check(response)
            return result
        finally:
            if spooled is not None:
                spooled.unlink(missing_ok=True)

    async def get(self, payload_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/v1/payloads/{payload_id}")
        return result

    async def read(self, payload_id: str) -> bytes:
        response = await self._http.get(f"/v1/payloads/{payload_id}/content")
        if response.status_code >= 400:
            _check(response)
        return response.content

    async def fetch(self, payload_id: str, purpose: str, *, owner_org: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"purpose": purpose}
        if owner_org is not None:
            body["owner_org"] = owner_org
        result: dict[str, Any] = await self._call("POST", f"/v1/payloads/{payload_id}/fetch", json=body)
        return result

    async def purge(self, payload_id: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/v1/payloads/{payload_id}/purge", json={"reason": reason})
        return result

    async def receipts(self, payload_id: str) -> list[dict[str, Any]]:
        document = await self._call("GET", "/v1/receipts", params={"payload_id": payload_id})
        result: list[dict[str, Any]] = document["receipts"]
        return result

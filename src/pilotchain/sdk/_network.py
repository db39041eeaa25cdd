"""Pinning a client to one chain: the genesis hash (and chain id) a gateway must serve.

Two networks on one machine differ in their genesis hash even when they share a chain id and,
one after the other, the same ports. A client pinned with a :class:`NetworkPin` compares the
gateway's ``/v1/status`` ``genesis_hash`` (and ``chain_id``) with the pin once, before its first
request, and raises :class:`~pilotchain.sdk.WrongNetwork` instead of talking to another chain.

Where a pin comes from:

- :func:`load_network` — a network folder written by ``pilotchain network init``
  (``network.json``: chain id, genesis hash, every node's gateway URL);
- :func:`load_genesis_pin` — a ``genesis.json`` (the hash is recomputed from its canonical bytes);
- :func:`pin_of` — a genesis hash given as hex (and/or a chain id).

Reading these files is all this module does: no server code, so the SDK stays light.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotchain.codec import CodecError, decode
from pilotchain.crypto import UnsupportedSuite, get_suite
from pilotchain.errors import CoreError
from pilotchain.ledger.genesis import Genesis, genesis_hash
from pilotchain.sdk._errors import NetworkFileError

__all__ = ["NETWORK_ENV", "NetworkPin", "folder_identity", "load_network", "load_genesis_pin", "pin_of"]

#: A network folder for clients that are given no other pin (``pilotchain`` CLI and SDK).
NETWORK_ENV = "PILOTCHAIN_NETWORK"

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class NetworkPin:
    """What a gateway must serve: ``genesis_hash`` (hex; None: any) and ``chain_id`` (None: any).

    ``source`` names where the pin came from (for messages); ``gateway_urls`` are the network's
    gateways when it came from a network folder (the first is a client's default node)."""

    genesis_hash: str | None
    chain_id: str | None = None
    source: str = "the expected genesis"
    gateway_urls: tuple[str, ...] = ()
    #: the CA that certifies the gateways' TLS certificates (a network made with ``--tls``)
    tls_ca: str | None = None


def _hex_hash(text: str, where: str) -> str:
    value = text.strip().lower()
    if len(value) < 32 or len(value) % 2 or not set(value) <= _HEX:
        raise NetworkFileError(
            f"{where}: {text!r} is not a genesis hash (hex, as `pilotchain status --json` or "
            "network.json's genesis_hash show it)"
        )
    return value


def pin_of(genesis_hash: str | None = None, chain_id: str | None = None) -> NetworkPin:
    """A pin from a genesis hash (hex) and/or a chain id."""
    if genesis_hash is None and chain_id is None:
        raise NetworkFileError("a pin needs a genesis hash or a chain id")
    digest = _hex_hash(genesis_hash, "expected genesis") if genesis_hash is not None else None
    source = f"genesis {digest[:16]}…" if digest else f"chain {chain_id!r}"
    return NetworkPin(genesis_hash=digest, chain_id=chain_id, source=source)


def _read_json(path: Path, what: str, hint: str) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise NetworkFileError(f"cannot read {what} {path} ({exc.strerror or exc}); {hint}") from exc
    except ValueError as exc:
        raise NetworkFileError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise NetworkFileError(f"{path} is not a {what}")
    return document


def load_network(directory: str | os.PathLike[str]) -> NetworkPin:
    """The pin of the network in ``directory`` (its ``network.json``), with its gateway URLs."""
    root = Path(directory)
    path = root / "network.json" if root.is_dir() or not root.name.endswith(".json") else root
    document = _read_json(path, "network file", "is it a folder made by `pilotchain network init`?")
    try:
        digest = _hex_hash(str(document["genesis_hash"]), str(path))
        chain_id = str(document["chain_id"])
        urls = tuple(str(node["gateway_url"]).rstrip("/") for node in document["nodes"])
    except (KeyError, TypeError) as exc:
        raise NetworkFileError(f"{path} is not a pilotchain network file (missing {exc})") from exc
    ca = document.get("tls_ca")
    tls_ca = str(path.parent / str(ca)) if ca else None
    return NetworkPin(genesis_hash=digest, chain_id=chain_id, source=str(path), gateway_urls=urls, tls_ca=tls_ca)


def load_genesis_pin(path: str | os.PathLike[str]) -> NetworkPin:
    """The pin of a ``genesis.json``: its hash recomputed from the canonical bytes (a file whose
    stated hash does not match its contents is refused)."""
    file_path = Path(path)
    document = _read_json(file_path, "genesis file", "pass the network's genesis.json")
    try:
        genesis = decode(base64.b64decode(document["canonical_base64"], validate=True), Genesis)
        digest = genesis_hash(get_suite(genesis.suite), genesis).hex()
    except (KeyError, TypeError, ValueError, CodecError, UnsupportedSuite, CoreError) as exc:
        raise NetworkFileError(f"{file_path} is not a pilotchain genesis file: {exc}") from exc
    if document.get("hash") not in (None, digest):
        raise NetworkFileError(f"{file_path}: the stated hash does not match its contents (edited or corrupted?)")
    return NetworkPin(genesis_hash=digest, chain_id=genesis.chain_id, source=str(file_path))


def folder_identity(directory: str | os.PathLike[str]) -> Path | None:
    """The identity file that signs requests for the network in ``directory`` when none is named:
    the first organisation's client identity that ``pilotchain network init`` left there (a
    ceremony's manifest names no private file: then None)."""
    folder = Path(directory)
    if folder.name == "network.json":
        folder = folder.parent
    try:
        manifest = json.loads((folder / "network.json").read_text())
    except (OSError, ValueError):
        return None
    for organization in manifest.get("organizations", []) if isinstance(manifest, dict) else []:
        relative = str(organization.get("client_identity") or "") if isinstance(organization, dict) else ""
        if relative and (folder / relative).is_file():
            return folder / relative
    return None

"""A node's configuration files: ``node.json`` and the genesis file it names.

Reading them is the node's own business (the ``network`` tooling writes them), so the node does
not depend on the tooling that creates a consortium.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import msgspec

from pilotchain.codec import decode
from pilotchain.crypto import SUITE_NAMES, get_suite
from pilotchain.errors import CoreError
from pilotchain.ledger.genesis import Genesis, GenesisError, genesis_hash

__all__ = ["NodeConfigError", "NodeConfig", "load_genesis", "load_node_config"]


class NodeConfigError(CoreError):
    """A node or genesis file is missing, unreadable or inconsistent; the message says which and
    what to do."""


class NodeConfig(msgspec.Struct, forbid_unknown_fields=True):
    """node.json: everything a node needs to start (paths relative to the node's home)."""

    name: str
    org: str
    chain_id: str
    suite: str
    identity_file: str
    genesis_file: str
    data_dir: str
    #: where the node listens for peers, and the address peers dial
    p2p_listen: str
    p2p_advertise: str
    #: peer name -> "host:port"
    peers: dict[str, str]
    gateway_listen: str
    gateway_url: str
    log_level: str = "info"
    #: a file (relative to the home, mode 0600) whose first line is the passphrase of an
    #: encrypted ``identity_file``; empty: the PILOTCHAIN_KEY_PASSPHRASE environment variable
    passphrase_file: str = ""
    #: the gateway's TLS certificate and key (PEM, relative to the home); empty: plain HTTP
    tls_cert_file: str = ""
    tls_key_file: str = ""
    #: the mempool's bounds: a node under a memory limit (a container's) keeps its mempool well
    #: inside it; beyond them the gateway answers 429 MEMPOOL_FULL (docs/operations.md)
    mempool_txs_max: int = 50_000
    mempool_bytes_max: int = 256 * 1024 * 1024


def load_genesis(path: str | os.PathLike[str]) -> Genesis:
    file_path = Path(path)
    try:
        document = json.loads(file_path.read_text())
        genesis = decode(base64.b64decode(document["canonical_base64"], validate=True), Genesis)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NodeConfigError(f"{file_path} is not a pilotchain genesis file: {exc}") from exc
    if genesis.suite not in SUITE_NAMES:  # get_suite would raise UnsupportedSuite (found by fuzzing)
        raise NodeConfigError(f"{file_path} names crypto suite {genesis.suite!r:.40}; this build knows "
                              f"{', '.join(SUITE_NAMES)}")
    if genesis_hash(get_suite(genesis.suite), genesis).hex() != document.get("hash"):
        raise NodeConfigError(f"{file_path}: the genesis hash does not match its contents (edited or corrupted?)")
    try:
        genesis.check()
    except GenesisError as exc:
        raise NodeConfigError(f"{file_path} cannot start a chain: {exc}") from exc
    return genesis


def load_node_config(home: str | os.PathLike[str]) -> NodeConfig:
    path = Path(home) / "node.json"
    try:
        return msgspec.json.decode(path.read_bytes(), type=NodeConfig)
    except OSError as exc:
        raise NodeConfigError(f"cannot read {path}: {exc.strerror or exc}; is --home a node folder made by `pilotchain network init`?") from exc
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise NodeConfigError(f"{path} is not a valid node configuration: {exc}") from exc

"""The genesis document (``ledger/genesis.py``, ``node/config.py: load_genesis``): what a node,
an auditor or a joining organisation is handed before it trusts anything."""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fuzz.harness import accepted, consortium, round_trips
from pilotchain.codec import CodecError, decode, encode
from pilotchain.consensus.certificate import ValidatorSetInfo
from pilotchain.consensus.replica import ConsensusConfig
from pilotchain.crypto import get_suite
from pilotchain.ledger.auth import MembershipAuthenticator
from pilotchain.ledger.commit import consensus_validator_set
from pilotchain.ledger.genesis import Genesis, GenesisError, genesis_hash
from pilotchain.node.config import NodeConfigError, load_genesis

CONTRACT = """
decode(bytes, Genesis) accepts canonical documents only (else CodecError) and an accepted one
re-encodes to its bytes; Genesis.check() passes or raises GenesisError with what to fix, and a
document it passes can start a chain: its suite loads, its organisations' CA certificates form a
membership, its validators form a consensus validator set, and its timeouts make a consensus
configuration — none of these raises. (A validator key that does not load is not checked: that
validator's votes never verify, the chain still starts; `network ceremony` checks plans with a
placeholder key.) load_genesis reads any file or
raises NodeConfigError. Byte 0: bit 0 = the rest is a genesis file's text, else canonical bytes.
"""

MAX_LEN = 16 * 1024
_scratch = Path(tempfile.mkdtemp(prefix="pilotchain-fuzz-genesis-"))


def _starts_a_chain(genesis: Genesis) -> None:
    """What a node builds from a checked genesis before its first block (none may raise)."""
    suite = get_suite(genesis.suite)
    MembershipAuthenticator.from_genesis(genesis)
    ValidatorSetInfo(suite, consensus_validator_set(genesis.validators))
    params = genesis.params
    ConsensusConfig(chain_id=genesis.chain_id.encode(), timeout_propose_ms=params.timeout_propose_ms,
                    timeout_prevote_ms=params.timeout_vote_ms, timeout_precommit_ms=params.timeout_vote_ms)


def one_input(data: bytes) -> None:
    if not data:
        return
    raw = data[1:]
    if data[0] & 1:
        path = _scratch / "genesis.json"
        path.write_bytes(raw)
        genesis = accepted((NodeConfigError,), load_genesis, path)
        if genesis is not None:
            _starts_a_chain(genesis)
        return
    genesis = accepted((CodecError,), decode, raw, Genesis)
    if genesis is None:
        return
    round_trips(genesis, raw, Genesis)
    if accepted((GenesisError,), genesis.check) is None and _checked(genesis):
        _starts_a_chain(genesis)


def _checked(genesis: Genesis) -> bool:
    try:
        genesis.check()
    except GenesisError:
        return False
    return True


def _file(genesis: Genesis) -> bytes:
    suite = get_suite(genesis.suite)
    document = {"canonical_base64": base64.b64encode(encode(genesis)).decode(),
                "hash": genesis_hash(suite, genesis).hex()}
    return json.dumps(document).encode()


def seeds() -> Iterator[bytes]:
    for suite_name in ("intl", "gm"):
        genesis = consortium(suite_name).genesis
        yield b"\x00" + encode(genesis)
        yield b"\x01" + _file(genesis)

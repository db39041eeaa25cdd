"""Evidence bundles (``ledger/evidence.py: verify_bundle``): what an auditor is handed and
verifies offline with only the network's genesis — certified headers, transactions with their
proofs, the validator history, anchored documents."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from fuzz.harness import accepted, expect
from pilotchain.codec import CodecError, decode
from pilotchain.crypto import get_suite
from pilotchain.ledger.evidence import EvidenceInvalid, verify_bundle
from pilotchain.ledger.genesis import Genesis, GenesisError, genesis_hash

CONTRACT = """
verify_bundle(bundle bytes, genesis) returns what the bundle proves or raises EvidenceInvalid
naming what failed — never another exception — and what it returns is about the genesis it was
given. Input: a 4-byte length, the canonical genesis (the auditor's trust anchor: inputs whose
genesis does not decode or check are skipped), then the bundle. (The codec's F1, a TypeError for a
map with a non-string key, is fixed.)
"""

MAX_LEN = 64 * 1024


@functools.lru_cache(maxsize=64)
def _genesis(raw: bytes) -> Genesis | None:
    """The trust anchor, when it is one (the auditor's own file: not what is fuzzed here)."""
    try:
        genesis = decode(raw, Genesis)
        genesis.check()
    except (CodecError, GenesisError):
        return None
    return genesis


def one_input(data: bytes) -> None:
    length = int.from_bytes(data[:4], "big")
    genesis = _genesis(data[4:4 + length])
    if genesis is None:
        return
    verified = accepted((EvidenceInvalid,), verify_bundle, data[4 + length:], genesis)
    if verified is not None:
        expect(verified.genesis_hash == genesis_hash(get_suite(genesis.suite), genesis)
               and verified.chain_id == genesis.chain_id, "verified evidence is about another chain")


def seeds() -> Iterator[bytes]:
    """A certified chain with a kv write and a governance change, bundled (built once, slowly)."""
    import sys
    import tempfile
    from pathlib import Path

    from pilotchain.codec import encode
    from pilotchain.ledger.evidence import make_bundle

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.ledger.evidence_helpers import CertifyingChain

    with tempfile.TemporaryDirectory(prefix="pilotchain-fuzz-evidence-") as directory:
        chain = CertifyingChain.create(Path(directory))
        try:
            put = chain.sign(chain.identity(chain.orgs[0]), "kv", "put", {"key": "beds", "value": 120})
            chain.run(put)
            headers = chain.certified_headers()
            bundle = make_bundle(genesis_hash(chain.suite, chain.genesis), headers,
                                 [chain.tx_evidence(bytes.fromhex(put.tx_id))])
            genesis = encode(chain.genesis)
            yield len(genesis).to_bytes(4, "big") + genesis + bundle
        finally:
            chain.close()

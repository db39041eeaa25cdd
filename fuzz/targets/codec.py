"""The canonical codec (``pilotchain.codec``): strict decoding of every replicated type."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fuzz.harness import accepted, expect, nesting_depth, round_trips
from pilotchain.codec import ANY_DEPTH_MAX, CodecError, check_nesting, decode, encode
from pilotchain.consensus.types import CommitCertificate, ConsensusWal, Proposal, ValidatorSet, Vote
from pilotchain.identity.records import Certificate, OrgCertificate, Revocation
from pilotchain.ledger.block import Block, BlockHeader, Receipt, TxProof
from pilotchain.ledger.commit import CommitRecord
from pilotchain.ledger.genesis import Genesis
from pilotchain.ledger.tx import Transaction, TxBody

CONTRACT = """
decode(bytes, T) for T in Any and the platform's records either returns a value or raises
CodecError with a message; an accepted value re-encodes to exactly the input bytes and decodes back
to itself; for Any, check_nesting agrees with the decoder (it accepted the bytes and its depth is
the value's depth, at most ANY_DEPTH_MAX). Finding F1 (fixed: a map with a key that is not a string
raised TypeError; it is CodecError now) is kept under fuzz/crashes/codec/ as a regression input.
"""

#: the first input byte picks the type (the rest is the encoding)
TYPES: tuple[Any, ...] = (
    Any, Transaction, TxBody, Block, BlockHeader, Receipt, TxProof, CommitRecord, Genesis,
    Certificate, OrgCertificate, Revocation, Vote, Proposal, CommitCertificate, ValidatorSet,
    ConsensusWal, list[bytes], dict[str, Any],
)




def one_input(data: bytes) -> None:
    if not data:
        return
    type_ = TYPES[data[0] % len(TYPES)]
    body = data[1:]
    value = accepted((CodecError,), decode, body, type_)
    if value is None:
        return
    round_trips(value, body, type_)
    if type_ is Any:
        depth = check_nesting(body, ANY_DEPTH_MAX)
        expect(depth == nesting_depth(value) <= ANY_DEPTH_MAX,
               f"check_nesting says depth {depth}, the decoded value nests {nesting_depth(value)}")


def seeds() -> Iterator[bytes]:
    from fuzz.harness import consortium
    from fuzz.targets import block, consensus, transaction

    values: list[Any] = [0, -1, 2**64 - 1, "text", b"\x00\x01", [1, [2, [3]]], {"a": [1, {"b": b""}]}, None, True]
    for value in values:
        yield bytes([TYPES.index(Any)]) + encode(value)
    genesis = consortium().genesis
    yield bytes([TYPES.index(Genesis)]) + encode(genesis)
    yield bytes([TYPES.index(Certificate)]) + consortium().members["org-a-client"].certificate
    for raw in transaction.seeds():
        yield bytes([TYPES.index(Transaction)]) + raw[1:]
    for raw in block.seeds():
        yield bytes([TYPES.index(Block)]) + raw[1:]
    for raw in consensus.seeds():
        yield bytes([TYPES.index(Proposal)]) + raw

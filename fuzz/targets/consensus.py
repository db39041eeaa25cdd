"""Consensus messages (``consensus/types.py: decode_message``) fed to a live replica, and commit
certificates (``consensus/certificate.py``)."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import msgspec

from fuzz.harness import NOW_MS, accepted, consortium, expect, round_trips
from pilotchain.codec import CodecError, encode
from pilotchain.consensus.certificate import (
    ConsensusError,
    ValidatorSetInfo,
    get_proposal_signing_bytes,
    get_vote_signing_bytes,
    verify_commit_certificate,
)
from pilotchain.consensus.replica import ConsensusConfig, Replica
from pilotchain.consensus.types import (
    BlockRequest,
    BlockResponse,
    ChainTip,
    CommitCertificate,
    CommitSignature,
    ConsensusBlock,
    ConsensusHeader,
    ConsensusMessage,
    Proposal,
    Vote,
    VoteType,
    decode_message,
)
from pilotchain.ledger.commit import consensus_validator_set

CONTRACT = """
decode_message accepts canonical consensus messages only (else CodecError with a message) and an
accepted one re-encodes to its bytes; a replica (validator 0 of 4) that receives any sequence of
decoded messages, from any peer, with validator 1 byzantine (the harness signs what claims to be
validator 1's with its key, so forged content reaches the checks after the signature), drops what
is invalid and never raises; verify_commit_certificate on any decoded certificate returns or raises
InvalidCertificate / ConsensusError with a message. Input: frames of (flags, sender, 2-byte
length, message bytes); flags bit 0 = sign as validator 1, bit 1 = tick instead, bits 2-7 = the
clock advance in 100 ms steps.
"""

MAX_LEN = 16 * 1024
BYZANTINE_INDEX = 1


class _Application:
    """Payloads are opaque bytes, named by their hash; every payload is valid; no updates."""

    def __init__(self, hash_fn: object) -> None:
        self._hash = hash_fn

    def compute_payload_hash(self, payload: bytes) -> bytes | None:
        return self._hash(payload)  # type: ignore[operator, no-any-return]

    def validate_payload(self, header: ConsensusHeader, payload: bytes) -> bool:
        return True

    def get_validator_set_update(self, height: int, payload: bytes) -> None:
        return None

    def load_commit(self, height: int) -> None:
        return None


@functools.cache
def _setup() -> tuple[ConsensusConfig, ChainTip, ValidatorSetInfo]:
    members = consortium("intl")
    validator_set = consensus_validator_set(members.genesis.validators)
    chain_id = members.genesis.chain_id.encode()
    tip = ChainTip(height=0, block_hash=members.suite.hash(b"genesis"), timestamp_ms=NOW_MS - 1000,
                   validator_set=validator_set)
    return ConsensusConfig(chain_id=chain_id), tip, ValidatorSetInfo(members.suite, validator_set)


def _replica() -> Replica:
    members = consortium("intl")
    config, tip, _ = _setup()
    replica = Replica(config=config, suite=members.suite, private_key=members.validator_keys[0],
                      application=_Application(members.suite.hash), chain_tip=tip)
    replica.start(NOW_MS)
    replica.take_effects()
    return replica


def _signed_by_byzantine(message: ConsensusMessage) -> ConsensusMessage:
    """``message`` with validator 1's signatures where it claims to be validator 1."""
    key = consortium("intl").validator_keys[BYZANTINE_INDEX]
    chain_id = _setup()[0].chain_id

    def vote(v: Vote) -> Vote:
        if v.validator_index != BYZANTINE_INDEX:
            return v
        return msgspec.structs.replace(v, signature=key.sign(
            get_vote_signing_bytes(chain_id, v.vote_type, v.height, v.round, v.block_hash)))

    if isinstance(message, Vote):
        return vote(message)
    if isinstance(message, Proposal) and message.proposer_index == BYZANTINE_INDEX:
        from pilotchain.consensus.certificate import compute_block_hash

        digest = compute_block_hash(consortium("intl").suite, message.block.header)
        signature = key.sign(get_proposal_signing_bytes(chain_id, message.height, message.round, digest,
                                                        message.valid_round))
        return msgspec.structs.replace(message, polka=tuple(vote(v) for v in message.polka), signature=signature)
    return message


def one_input(data: bytes) -> None:
    replica = _replica()
    now_ms = NOW_MS
    at = 0
    while at + 4 <= len(data):
        flags, sender = data[at], data[at + 1]
        length = int.from_bytes(data[at + 2:at + 4], "big")
        raw = data[at + 4:at + 4 + length]
        at += 4 + length
        now_ms += 100 * (flags >> 2)
        if flags & 2:
            replica.tick(now_ms)
            replica.take_effects()
            continue
        message = accepted((CodecError,), decode_message, raw)
        if message is None:
            continue
        round_trips(message, raw, ConsensusMessage)
        if flags & 1:
            message = _signed_by_byzantine(message)
        replica.receive(message, sender, now_ms)
        replica.take_effects()
        if isinstance(message, BlockResponse):
            for commit in message.commits[:2]:
                accepted((ConsensusError,), verify_commit_certificate, commit.certificate,
                         commit.certificate.block_hash, _setup()[2], consortium("intl").suite)
    expect(replica.height >= 1, "the replica lost its height")


def _frame(message: ConsensusMessage, flags: int = 1, sender: int = 1) -> bytes:
    raw = encode(message)
    return bytes([flags, sender]) + len(raw).to_bytes(2, "big") + raw


def seeds() -> Iterator[bytes]:
    members = consortium("intl")
    config, tip, info = _setup()
    payload = b"payload of block 1"
    header = ConsensusHeader(chain_id=config.chain_id, height=1, round=0, parent_hash=tip.block_hash,
                             proposer_index=1, timestamp_ms=NOW_MS, validator_set_hash=info.hash,
                             payload_hash=members.suite.hash(payload))
    proposal = Proposal(height=1, round=0, block=ConsensusBlock(header, payload), valid_round=-1, polka=(),
                        proposer_index=1, signature=b"\x00" * 64)
    from pilotchain.consensus.certificate import compute_block_hash

    digest = compute_block_hash(members.suite, header)
    prevote = Vote(VoteType.PREVOTE, 1, 0, digest, 1, b"\x00" * 64)
    precommit = Vote(VoteType.PRECOMMIT, 1, 0, digest, 1, b"\x00" * 64)
    certificate = CommitCertificate(config.chain_id, 1, 0, digest, (CommitSignature(1, b"\x00" * 64),))
    yield _frame(proposal) + _frame(prevote) + _frame(precommit) + bytes([4 * 20 | 2, 0, 0, 0])
    yield _frame(BlockRequest(height=1), flags=0, sender=7)
    yield _frame(BlockResponse(commits=(), responder_height=5), flags=0, sender=3)
    from pilotchain.consensus.types import CommittedBlock

    yield _frame(BlockResponse(commits=(CommittedBlock(ConsensusBlock(header, payload), certificate),),
                               responder_height=2), flags=0, sender=2)
    yield _frame(Vote(VoteType.PREVOTE, 2, 0, b"", 1, b""), flags=1) + _frame(prevote, flags=4 * 63 | 1)

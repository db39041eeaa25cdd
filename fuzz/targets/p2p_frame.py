"""P2P frames (``p2p/framing.py``) as a link's read loop meets them, and the payloads an
authenticated peer sends inside them (consensus messages, transaction gossip)."""

from __future__ import annotations

from collections.abc import Iterator

from fuzz.harness import accepted, consortium, expect, round_trips
from pilotchain.codec import CodecError, decode, encode
from pilotchain.consensus.types import ConsensusMessage, decode_message
from pilotchain.ledger.tx import TxRejected, decode_transaction
from pilotchain.p2p.errors import FrameRejected
from pilotchain.p2p.framing import (
    FRAME_OVERHEAD_BYTES,
    LENGTH_PREFIX_BYTES,
    FrameOpener,
    FrameSealer,
    MessageKind,
)

CONTRACT = """
A link's receiving half, fed any byte stream, reads a 4-byte length (FrameRejected when out of
bounds, before buffering the body) and opens each frame or raises FrameRejected with a message;
what a sealer with the same keys sealed opens to the same kind and payload, in order. Inside
frames from an authenticated peer, a CONSENSUS payload decodes (and re-encodes to its bytes) or
raises CodecError, and a MEMPOOL payload is a list of transactions that decodes or raises
CodecError, each transaction then decoding or raising TxRejected. Byte 0: bit 0 = the stream is
sealed by the peer's own sealer (chunks of 2-byte length: kind byte + payload), else raw wire bytes.
"""

MAX_LEN = 64 * 1024
FRAME_BYTES_MAX = 32 * 1024
GOSSIP_BATCH_TXS_MAX = 2_000  # node/daemon.py's bound on one gossip batch
_KEY = bytes(range(32))
_IV = bytes(range(12))


def _pair() -> tuple[FrameSealer, FrameOpener]:
    suite = consortium("intl").suite
    return (FrameSealer(suite, _KEY, _IV, FRAME_BYTES_MAX), FrameOpener(suite, _KEY, _IV, FRAME_BYTES_MAX))


def _dispatch(kind: int, payload: bytes) -> None:
    """What node/daemon.py does with a frame's payload."""
    if kind == MessageKind.CONSENSUS:
        message = accepted((CodecError,), decode_message, payload)
        if message is not None:
            round_trips(message, payload, ConsensusMessage)
    elif kind == MessageKind.MEMPOOL:
        raws = accepted((CodecError,), decode, payload, list[bytes])
        if raws is not None and len(raws) <= GOSSIP_BATCH_TXS_MAX:
            for raw in raws:
                accepted((TxRejected,), decode_transaction, consortium("intl").suite, raw)


def _read_stream(opener: FrameOpener, stream: bytes) -> list[tuple[int, bytes]]:
    """The read loop: frames until the stream ends or a frame is refused (the link drops)."""
    opened = []
    at = 0
    while at + LENGTH_PREFIX_BYTES <= len(stream):
        header = stream[at:at + LENGTH_PREFIX_BYTES]
        try:
            length = opener.parse_length(header)
        except FrameRejected as exc:
            expect(bool(str(exc)), "FrameRejected without a message")
            break
        expect(FRAME_OVERHEAD_BYTES <= length <= FRAME_BYTES_MAX, f"a {length}-byte frame passed the bound")
        sealed = stream[at + LENGTH_PREFIX_BYTES:at + LENGTH_PREFIX_BYTES + length]
        if len(sealed) < length:
            break  # the peer closed mid-frame
        at += LENGTH_PREFIX_BYTES + length
        frame = accepted((FrameRejected,), opener.open, header, sealed)
        if frame is None:
            break
        opened.append(frame)
    return opened


def one_input(data: bytes) -> None:
    if not data:
        return
    sealer, opener = _pair()
    if not data[0] & 1:
        for kind, payload in _read_stream(opener, data[1:]):
            _dispatch(kind, payload)
        return
    sent: list[tuple[int, bytes]] = []
    stream = b""
    at = 1
    while at + 3 <= len(data):
        length = int.from_bytes(data[at:at + 2], "big")
        kind, payload = data[at + 2], data[at + 3:at + 3 + length]
        at += 3 + length
        if len(payload) > FRAME_BYTES_MAX - FRAME_OVERHEAD_BYTES:
            continue  # the sender checks its bound
        stream += sealer.seal(kind, payload)
        sent.append((kind, payload))
    opened = _read_stream(opener, stream)
    expect(opened == sent, "frames sealed in order did not open to the same kinds and payloads")
    for kind, payload in opened:
        _dispatch(kind, payload)


def seeds() -> Iterator[bytes]:
    from fuzz.targets import consensus, transaction

    def chunk(kind: int, payload: bytes) -> bytes:
        return len(payload).to_bytes(2, "big") + bytes([kind]) + payload

    txs = [raw[1:] for raw in transaction.seeds() if raw[0] == 0]
    messages = [seed[4:4 + int.from_bytes(seed[2:4], "big")] for seed in consensus.seeds()]
    yield b"\x01" + b"".join(chunk(MessageKind.CONSENSUS, m) for m in messages) + chunk(MessageKind.MEMPOOL, encode(txs))
    yield b"\x01" + chunk(MessageKind.CONTROL, b"") + chunk(200, b"application")
    sealer, _ = _pair()
    yield b"\x00" + sealer.seal(MessageKind.CONSENSUS, messages[0]) + sealer.seal(MessageKind.MEMPOOL, encode(txs))

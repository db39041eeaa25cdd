"""The data exchange's vault-to-vault inputs (``apps/exchange/``): delivery requests and signed
receipts a provider's vault receives, and delivery packages a consumer's vault receives."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import msgspec

from fuzz.harness import NOW_MS, accepted, consortium, round_trips
from pilotchain.apps.exchange.delivery import (
    FrameReader,
    frame,
    open_payload,
    read_header,
    seal_frames,
    verify_receipt,
)
from pilotchain.apps.exchange.records import (
    RECEIPT_DOMAIN,
    DeliveryHeader,
    DeliveryRequest,
    ExchangeError,
    Receipt,
    ReceiptKind,
    SignedRecord,
    check_request_id,
)
from pilotchain.codec import CodecError, decode, encode
from pilotchain.crypto.sealing import (
    SealPrivateKey,
    load_seal_private_key,
    load_seal_public_key,
    seal,
)

CONTRACT = """
A provider's vault decodes any delivery request body or raises CodecError (an accepted one
re-encodes to its bytes; its request id is checked or ExchangeError), and checks any signed receipt
(verify_receipt) or raises ExchangeError. A consumer's vault reads any delivery package — header
frame, the provider's signed receipt, the data key sealed to it, the chunk frames — and gets
the plaintext or ExchangeError with a code and a message, never another exception, whatever an
authenticated but malicious provider puts in the header's size, chunk size, nonce prefix and data
key. Byte 0 picks the mode; in mode 3 the harness is that provider: it signs the receipt and seals
a data key of a fuzzed length, the header's other fields and the frames come from the input.
"""

MAX_LEN = 16 * 1024
REQUEST_ID = "0123456789abcdef0123456789abcdef"


@functools.cache
def _keys() -> tuple[SealPrivateKey, bytes]:
    """Our vault's seal key (org-a's client key) and the provider's signed receipt for REQUEST_ID."""
    members = consortium("intl")
    suite = members.suite
    ours = members.members["org-a-client"]
    provider = members.members["org-b-client"]
    receipt = Receipt(kind=ReceiptKind.DELIVERED, request_id=REQUEST_ID, payload_id="report-1", commitment=bytes(32),
                      provider_org="org-b", consumer_org="org-a", purpose="PUBHLTH", proof_height=3,
                      proof_block_hash=bytes(32), at_ms=NOW_MS, answers=b"", note="")
    body = encode(receipt)
    message = b"pilotchain/exchange/" + RECEIPT_DOMAIN.encode() + b"\x00" + body
    signed = encode(SignedRecord(domain=RECEIPT_DOMAIN, body=body, certificate=provider.certificate,
                                 signature=provider.key.sign(message)))
    return load_seal_private_key(suite, ours.key), signed


def _consume(data: bytes) -> None:
    """What Vault._consume does with a package before the chain checks, and after them."""
    suite = consortium("intl").suite
    reader = FrameReader([data[i:i + 512] for i in range(0, len(data), 512)])
    header = accepted((ExchangeError,), read_header, suite, reader)
    if header is None:
        return
    chunks = accepted((ExchangeError,), open_payload, suite, _keys()[0], header[0], REQUEST_ID, reader)
    if chunks is not None:
        accepted((ExchangeError,), list, chunks)


def _malicious_provider(data: bytes) -> bytes:
    """A package whose header the input shapes, with a valid receipt and a sealed data key."""
    seal_key, signed = _keys()
    key_bytes, raw = data[0] % 48, data[1:]
    header_length = int.from_bytes(raw[:2], "big")
    header = accepted((CodecError,), decode, raw[2:2 + header_length], DeliveryHeader)
    if header is None:
        return b""
    suite = consortium("intl").suite
    public = load_seal_public_key(suite, consortium("intl").members["org-a-client"].key.public_key())
    data_key = bytes(range(key_bytes))
    sealed_key = seal(public, data_key, associated_data=REQUEST_ID.encode(), ephemeral_private=bytes(range(32)),
                      nonce=bytes(12))
    header = msgspec.structs.replace(header, receipt=signed, sealed_key=sealed_key)
    del seal_key
    return frame(encode(header)) + raw[2 + header_length:]


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    mode, raw = data[0] % 4, data[1:]
    suite = consortium("intl").suite
    if mode == 0:
        request = accepted((CodecError,), decode, raw, DeliveryRequest)
        if request is not None:
            round_trips(request, raw, DeliveryRequest)
            accepted((ExchangeError,), check_request_id, request.request_id)
    elif mode == 1:
        # (the certificate is only the signer's claim: whether it is a member's is the caller's
        # check against the chain, so a verified receipt may name any organisation)
        accepted((ExchangeError,), verify_receipt, suite, raw)
    elif mode == 2:
        _consume(raw)
    else:
        package = _malicious_provider(raw)
        if package:
            _consume(package)


def seeds() -> Iterator[bytes]:
    suite = consortium("intl").suite
    _, signed = _keys()
    request = DeliveryRequest(payload_id="report-1", owner_org="org-b", purpose="PUBHLTH", request_id=REQUEST_ID)
    yield b"\x00" + encode(request)
    yield b"\x01" + signed
    data_key = bytes(range(suite.aead_key_size))
    public = load_seal_public_key(suite, consortium("intl").members["org-a-client"].key.public_key())
    sealed_key = seal(public, data_key, associated_data=REQUEST_ID.encode(), ephemeral_private=bytes(range(32)),
                      nonce=bytes(12))
    nonce_prefix = bytes(7)
    header = DeliveryHeader(request_id=REQUEST_ID, payload_id="report-1", owner_org="org-b", consumer_org="org-a",
                            media_type="text/plain", classification="internal", retention_until_ms=NOW_MS * 2,
                            size=10, salt=bytes(16), commitment=bytes(32), sealed_key=sealed_key,
                            nonce_prefix=nonce_prefix, chunk_bytes=4, receipt=signed)
    frames = b"".join(seal_frames(suite, data_key, nonce_prefix, REQUEST_ID, [b"bed ", b"occu", b"92"]))
    yield b"\x02" + frame(encode(header)) + frames
    header_bytes = encode(header)
    yield b"\x03" + bytes([suite.aead_key_size]) + len(header_bytes).to_bytes(2, "big") + header_bytes + frames

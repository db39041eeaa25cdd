"""Key agreement (checked against an independent pure-Python SM2 curve), HKDF vectors, framing."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotchain.crypto import CryptoError, get_suite
from pilotchain.crypto.kex import hkdf_expand, hkdf_extract, key_exchange_for
from pilotchain.p2p import FrameOpener, FrameRejected, FrameSealer, reconnect_delay_ms
from pilotchain.p2p.framing import FRAME_OVERHEAD_BYTES, MessageKind, encode_length, parse_length

from .helpers import SUITE_PARAMS, suite_available

# -- an independent SM2-curve implementation (GB/T 32918.5 parameters), for cross-checking ------
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
G = (
    0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
)


def _add(p1, p2):  # type: ignore[no-untyped-def]
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    if p1[0] == p2[0] and (p1[1] + p2[1]) % P == 0:
        return None
    if p1 == p2:
        slope = (3 * p1[0] * p1[0] + A) * pow(2 * p1[1], -1, P) % P
    else:
        slope = (p2[1] - p1[1]) * pow(p2[0] - p1[0], -1, P) % P
    x = (slope * slope - p1[0] - p2[0]) % P
    return x, (slope * (p1[0] - x) - p1[1]) % P


def _mul(k, point):  # type: ignore[no-untyped-def]
    result = None
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


gm_only = pytest.mark.skipif(not suite_available("gm"), reason="gm suite unavailable")


@gm_only
def test_sm2_ecdh_matches_an_independent_implementation() -> None:
    exchange = key_exchange_for(get_suite("gm"))
    rng = random.Random(7)
    for _ in range(3):
        a_private, a_public = exchange.keypair(rng.randbytes(64))
        b_private, b_public = exchange.keypair(rng.randbytes(64))
        a, b = int.from_bytes(a_private, "big"), int.from_bytes(b_private, "big")
        assert a_public == b"\x04" + b"".join(c.to_bytes(32, "big") for c in _mul(a, G))
        shared = exchange.shared_secret(a_private, b_public)
        assert shared == exchange.shared_secret(b_private, a_public)
        assert shared == _mul(a * b, G)[0].to_bytes(32, "big")


@gm_only
def test_sm2_ecdh_refuses_bad_points() -> None:
    exchange = key_exchange_for(get_suite("gm"))
    private, public = exchange.keypair(bytes(range(64)))
    off_curve = public[:-1] + bytes([public[-1] ^ 1])
    for bad in [off_curve, b"\x00", public[:33], b"\x02" + public[1:33] + bytes(32), bytes(65)]:
        with pytest.raises(CryptoError):
            exchange.shared_secret(private, bad)


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_key_exchange_agrees(suite_name: str) -> None:
    exchange = key_exchange_for(get_suite(suite_name))
    rng = random.Random(1)
    a = exchange.keypair(rng.randbytes(exchange.private_key_bytes))
    b = exchange.keypair(rng.randbytes(exchange.private_key_bytes))
    assert len(a[1]) == exchange.public_key_bytes
    assert exchange.shared_secret(a[0], b[1]) == exchange.shared_secret(b[0], a[1])


def test_hkdf_sha256_rfc5869_case_1() -> None:
    suite = get_suite("intl")
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    prk = hkdf_extract(suite, salt, ikm)
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    okm = hkdf_expand(suite, prk, info, 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


# -- framing --------------------------------------------------------------------------------------


def channel(suite_name: str, frame_bytes_max: int = 4096) -> tuple[FrameSealer, FrameOpener]:
    suite = get_suite(suite_name)
    key, iv = b"k" * suite.aead_key_size, b"i" * 12
    return FrameSealer(suite, key, iv, frame_bytes_max), FrameOpener(suite, key, iv, frame_bytes_max)


def split(frame: bytes) -> tuple[bytes, bytes]:
    return frame[:4], frame[4:]


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_frames_round_trip_in_order(suite_name: str) -> None:
    sealer, opener = channel(suite_name)
    messages = [(MessageKind.CONSENSUS, b"vote"), (MessageKind.SYNC, b""), (200, b"x" * (4096 - FRAME_OVERHEAD_BYTES))]
    frames = [sealer.seal(kind, payload) for kind, payload in messages]
    assert [opener.open(*split(frame)) for frame in frames] == messages
    assert sealer.frames_sealed == opener.frames_opened == 3


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_tampered_replayed_reordered_frames_are_rejected(suite_name: str) -> None:
    for attack in ["flip", "replay", "reorder", "truncate", "length"]:
        sealer, opener = channel(suite_name)
        first, second = sealer.seal(1, b"first"), sealer.seal(1, b"second")
        opener.open(*split(first))
        if attack == "flip":
            bad = bytearray(second)
            bad[10] ^= 0x40
            header, body = split(bytes(bad))
        elif attack == "replay":
            header, body = split(first)
        elif attack == "reorder":
            header, body = split(sealer.seal(1, b"third"))
        elif attack == "truncate":
            header, body = second[:4], second[4:-1]
        else:  # the length is authenticated: a valid frame under another header does not open
            header, body = encode_length(len(second) - 4 + 1), second[4:] + b"\x00"
        with pytest.raises(FrameRejected):
            opener.open(header, body)


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_the_two_directions_do_not_mix(suite_name: str) -> None:
    suite = get_suite(suite_name)
    a = FrameSealer(suite, b"a" * suite.aead_key_size, b"1" * 12, 1024)
    b_opener = FrameOpener(suite, b"b" * suite.aead_key_size, b"2" * 12, 1024)
    with pytest.raises(FrameRejected):
        b_opener.open(*split(a.seal(1, b"hello")))


def test_length_bounds_are_checked_from_the_header() -> None:
    assert parse_length(encode_length(100), 17, 100) == 100
    with pytest.raises(FrameRejected, match="limit"):
        parse_length(encode_length(101), 17, 100)
    with pytest.raises(FrameRejected, match="minimum"):
        parse_length(encode_length(3), 17, 100)
    _, opener = channel("intl", frame_bytes_max=1000)
    with pytest.raises(FrameRejected):
        opener.parse_length(b"\xff\xff\xff\xff")


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=0, max_size=300), st.integers(min_value=0, max_value=299))
def test_any_single_byte_change_is_rejected(payload: bytes, position: int) -> None:
    sealer, opener = channel("intl")
    frame = bytearray(sealer.seal(5, payload))
    position = 4 + position % (len(frame) - 4)
    frame[position] ^= 0x01
    with pytest.raises(FrameRejected):
        opener.open(*split(bytes(frame)))


def test_reconnect_delay_grows_is_capped_and_jittered() -> None:
    delays = [reconnect_delay_ms(attempt, 100, 5_000, 1.0) for attempt in range(1, 12)]
    assert delays[:4] == [100, 200, 400, 800]
    assert max(delays) == 5_000 and delays[-1] == 5_000
    assert reconnect_delay_ms(1, 100, 5_000, 0.0) == 50
    assert reconnect_delay_ms(10_000, 100, 5_000, 0.5) == 3_750

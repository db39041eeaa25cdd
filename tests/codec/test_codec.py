"""The canonical encoding: round trips, canonical bytes, strict refusal of everything else."""

from __future__ import annotations

import importlib
import pkgutil
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pilotchain
from pilotchain.codec import CodecError, Record, decode, encode


class Sample(Record):
    height: int
    name: str
    payload: bytes
    tags: tuple[str, ...]
    attrs: dict[str, int]
    parent: bytes | None = None


samples = st.builds(
    Sample,
    height=st.integers(min_value=-(2**63), max_value=2**64 - 1),
    name=st.text(max_size=40),
    payload=st.binary(max_size=200),
    tags=st.lists(st.text(max_size=10), max_size=5).map(tuple),
    attrs=st.dictionaries(st.text(max_size=10), st.integers(min_value=-(2**31), max_value=2**31), max_size=6),
    parent=st.none() | st.binary(min_size=32, max_size=32),
)


@given(samples)
def test_encode_decode_encode_is_identity(value: Sample) -> None:
    data = encode(value)
    decoded = decode(data, Sample)
    assert decoded == value
    assert encode(decoded) == data


@given(st.dictionaries(st.text(max_size=8), st.integers(-(2**63), 2**64 - 1), max_size=8), st.randoms())
def test_equal_maps_encode_to_the_same_bytes_whatever_their_insertion_order(mapping: dict[str, int], rnd: Any) -> None:
    items = list(mapping.items())
    rnd.shuffle(items)
    shuffled = dict(items)
    base = Sample(height=1, name="a", payload=b"", tags=(), attrs=mapping)
    other = Sample(height=1, name="a", payload=b"", tags=(), attrs=shuffled)
    assert encode(base) == encode(other)


def test_non_minimal_integer_is_refused() -> None:
    good = encode(Sample(height=5, name="", payload=b"", tags=(), attrs={}))
    # 0x05 (positive fixint) re-encoded as uint64 (0xcf + 8 bytes): same value, not canonical
    bad = good.replace(b"\x05", b"\xcf" + (5).to_bytes(8, "big"), 1)
    assert bad != good
    with pytest.raises(CodecError, match="non-canonical"):
        decode(bad, Sample)


def test_unsorted_map_keys_are_refused() -> None:
    raw = msgspec.msgpack.encode([1, "n", b"", [], {"b": 1, "a": 2}, None])
    with pytest.raises(CodecError, match="non-canonical"):
        decode(raw, Sample)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        msgspec.msgpack.encode([1, "n"]),  # missing fields
        msgspec.msgpack.encode([1, "n", b"", [], {}, None, "extra"]),  # unknown trailing field
        msgspec.msgpack.encode(["1", "n", b"", [], {}, None]),  # wrong type
        msgspec.msgpack.encode([1.5, "n", b"", [], {}, None]),  # float where an int belongs
        msgspec.msgpack.encode([1, "n", b"", [], {}, None]) + b"\x00",  # trailing bytes
    ],
)
def test_malformed_input_raises_codec_error(raw: bytes) -> None:
    with pytest.raises(CodecError):
        decode(raw, Sample)


def test_out_of_range_integer_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        encode(Sample(height=2**64, name="", payload=b"", tags=(), attrs={}))


def test_size_bound() -> None:
    data = encode(Sample(height=1, name="x", payload=b"y" * 100, tags=(), attrs={}))
    with pytest.raises(CodecError, match="limit"):
        decode(data, Sample, max_bytes=10)


def _all_records() -> list[type[Record]]:
    for module in pkgutil.walk_packages(pilotchain.__path__, "pilotchain."):
        if module.name.startswith(("pilotchain.cli", "pilotchain.bench")):
            continue
        importlib.import_module(module.name)
    found: list[type[Record]] = []
    pending: list[type[Record]] = [Record]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


def _mentions_float(annotation: Any) -> bool:
    if annotation is float:
        return True
    return any(_mentions_float(arg) for arg in typing.get_args(annotation))


def test_no_replicated_record_has_a_float_field() -> None:
    records = [r for r in _all_records() if r.__module__.startswith("pilotchain.")]
    assert len(records) >= 5, "the walk found too few records to be meaningful"
    offenders = []
    for record in records:
        hints = typing.get_type_hints(record)
        offenders += [f"{record.__module__}.{record.__name__}.{name}" for name, t in hints.items() if _mentions_float(t)]
    assert offenders == []

"""check_nesting: the depth of a MessagePack value, without recursion, the same on every node."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotchain.codec import ANY_DEPTH_MAX, CodecError, check_nesting, decode, encode, nests_within

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=40),
                    st.binary(max_size=300))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=5)),
                      max_leaves=40)


def _depth(value: Any) -> int:
    """The reference: containers on the path to the deepest item (an empty container counts)."""
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    return 0


def _nested(depth: int) -> bytes:
    return b"\x91" * depth + b"\x01"  # [[[...1...]]]: a fixarray of one item, depth times


@settings(max_examples=300, deadline=None)
@given(values)
def test_depth_agrees_with_the_recursive_definition(value: Any) -> None:
    data = encode(value)
    depth = _depth(value)
    assert check_nesting(data, 64) == depth
    if depth > 0:
        with pytest.raises(CodecError, match="nest deeper"):
            check_nesting(data, depth - 1) if not _only_empty_at_bottom(value, depth) else _raise()


def _only_empty_at_bottom(value: Any, depth: int) -> bool:
    """True when every container at the deepest level is empty (allowed at depth_max)."""
    def deepest_non_empty(v: Any) -> int:
        items = v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) else None
        if items is None or not items:
            return 0
        return 1 + max(deepest_non_empty(item) for item in items)
    return deepest_non_empty(value) < depth


def _raise() -> None:
    raise CodecError("values nest deeper (an empty container at the bound holds nothing deeper)")


def test_any_depth_is_refused_without_recursion() -> None:
    for depth in (ANY_DEPTH_MAX + 1, 5_000, 200_000):
        with pytest.raises(CodecError, match="nest deeper"):
            check_nesting(_nested(depth), ANY_DEPTH_MAX)
        with pytest.raises(CodecError, match="nest deeper"):
            decode(_nested(depth), Any)  # type: ignore[arg-type]
    assert decode(_nested(ANY_DEPTH_MAX), Any) is not None  # type: ignore[arg-type]


def test_the_answer_does_not_depend_on_the_callers_stack() -> None:
    """The same bytes decode (or not) at any stack depth: the bound is far below the limit."""
    data = _nested(ANY_DEPTH_MAX)
    limit = sys.getrecursionlimit()

    def at_depth(frames: int) -> object:
        if frames:
            return at_depth(frames - 1)
        return decode(data, Any)  # type: ignore[arg-type]

    shallow = decode(data, Any)  # type: ignore[arg-type]
    assert at_depth(limit - 200) == shallow


@pytest.mark.parametrize("data", [b"", b"\x92\x01", b"\xc1", b"\xd9\x05ab", b"\xdc\x00", b"\x01\x02"])
def test_malformed_or_truncated_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(CodecError):
        check_nesting(data, 64)


@settings(max_examples=300, deadline=None)
@given(values, st.integers(0, 8))
def test_the_quick_bound_never_admits_a_deeper_value(value: Any, depth_max: int) -> None:
    """nests_within is the fast path decode takes: when it says yes, the walk agrees."""
    data = encode(value)
    if nests_within(data, depth_max):
        assert check_nesting(data, depth_max) <= depth_max + 1  # (an empty container at the bound is allowed)
        assert _depth(value) <= depth_max + 1


def test_the_quick_bound_counts_every_possible_container_start() -> None:
    assert nests_within(_nested(3), 3) and not nests_within(_nested(4), 3)
    assert not nests_within(b"\xdc\x00\x01" * 2 + b"\x01", 1)  # array 16 leads count too
    # a string full of bytes that look like containers makes the quick bound give up (and decode
    # then walks): it never guesses
    data = encode("\u00e9" * 70)  # UTF-8 0xC3 0xA9 (no lead byte); the str 8 header's length, 140, is 0x8C (one)
    assert nests_within(data, 1) and not nests_within(data, 0)
    tricky = encode(bytes(range(0x80, 0xA0)) * 3)
    assert not nests_within(tricky, ANY_DEPTH_MAX) and decode(tricky, Any) == bytes(range(0x80, 0xA0)) * 3  # type: ignore[arg-type]


def test_a_map_with_a_key_the_canonical_encoder_cannot_order_is_a_codec_error() -> None:
    """{1: 2} and {1: 2, "a": 3} decode in msgspec, then the canonical re-encoding raises
    TypeError: that is CodecError, like every other refusal (found by the codec fuzz target, F1)."""
    for data in (b"\x81\x01\x02", b"\x82\x01\x02\xa1a\x03"):
        with pytest.raises(CodecError):
            decode(data, Any)  # type: ignore[arg-type]

"""The fast float/depth check on transaction arguments agrees with the plain recursive rule."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pilotchain.codec import CodecError
from pilotchain.ledger.tx import _refuse_floats, decode_args, encode


def reference(value: Any, depth: int = 0) -> None:
    """The rule as first written: every item (leaves too) at depth > 32 is refused, floats anywhere."""
    if depth > 32:
        raise CodecError("arguments nest deeper than 32 levels")
    if isinstance(value, float):
        raise CodecError("floats are not allowed")
    if isinstance(value, (list, tuple)):
        for item in value:
            reference(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            reference(key, depth + 1)
            reference(item, depth + 1)


def nested(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


def verdict(check: Any, value: Any) -> str:
    try:
        check(value)
    except CodecError as exc:
        return "deep" if "deeper" in str(exc) else "float"
    return "ok"


LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3), st.binary(max_size=3),
                   st.floats(allow_nan=False))
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=2), inner, max_size=3)),
                      max_leaves=10)


@settings(max_examples=400, deadline=None)
@given(VALUES, st.integers(0, 35))
def test_fast_check_matches_the_reference(value: Any, levels: int) -> None:
    wrapped = nested(value, levels)
    assert (verdict(_refuse_floats, wrapped) == "ok") == (verdict(reference, wrapped) == "ok")


def test_depth_boundary_is_exact_for_leaves_and_containers() -> None:
    for levels in range(28, 36):
        for leaf in (1, "s", b"b", None, True, [], {}, [1], {"k": 1}, 1.5):
            wrapped = nested(leaf, levels)
            assert (verdict(_refuse_floats, wrapped) == "ok") == (verdict(reference, wrapped) == "ok"), (levels, leaf)
    assert verdict(_refuse_floats, nested(1, 32)) == "ok"
    assert verdict(_refuse_floats, nested(1, 33)) == "deep"
    assert verdict(_refuse_floats, nested([], 32)) == "ok"


def test_decoded_arguments_with_a_float_are_refused() -> None:
    import msgspec

    data = msgspec.msgpack.encode({"amount": 1.5})
    assert verdict(decode_args, data) == "float"
    assert decode_args(encode({"amount": 150})) == {"amount": 150}

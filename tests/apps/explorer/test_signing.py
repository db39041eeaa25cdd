"""Validator health from commit certificates: the last block each validator proposed and the last
certificate it signed, its lag behind the head and the word for it."""

from __future__ import annotations

import pytest

from pilotchain.apps.explorer.signing import SIGNING_LAG_MAX, BlockSigners, validator_signing
from pilotchain.ledger.genesis import ValidatorInfo


def _validator(name: str) -> ValidatorInfo:
    return ValidatorInfo(name=name, org=f"org-{name}", public_key=b"k" + name.encode(), power=1)


VALIDATORS = [_validator(name) for name in ("a", "b", "c", "d")]


def _window(head: int, signers_of: dict[int, set[str]]) -> list[BlockSigners]:
    """Blocks 1..head proposed in turn by a, b, c, d, signed as ``signers_of`` says (else by all)."""
    names = [v.name for v in VALIDATORS]
    return [BlockSigners(h, names[h % 4], frozenset(signers_of.get(h, set(names)))) for h in range(1, head + 1)]


def test_a_validator_that_stopped_signing_falls_behind_then_silent_while_the_others_sign() -> None:
    head = 20
    last_of_d = head - SIGNING_LAG_MAX - 1
    signers = {h: {"a", "b", "c"} for h in range(last_of_d + 1, head + 1)}
    signers |= {h: {"a", "b"} for h in range(head - SIGNING_LAG_MAX + 1, head + 1)}  # c misses the newest two
    by_name = {v.name: v for v in validator_signing(VALIDATORS, _window(head, signers), head)}
    assert by_name["a"].health == "signing" and by_name["a"].lag == 0 and by_name["a"].last_signed == head
    assert by_name["a"].last_proposed == 20 and by_name["b"].last_proposed == 17
    assert by_name["c"].health == "signing" and by_name["c"].lag == SIGNING_LAG_MAX  # a missed vote is not a fault
    assert by_name["d"].health == "behind" and by_name["d"].last_signed == last_of_d
    assert by_name["d"].lag == SIGNING_LAG_MAX + 1
    nobody_d = {h: {"a", "b", "c"} for h in range(1, head + 1)}
    silent = {v.name: v for v in validator_signing(VALIDATORS, _window(head, nobody_d), head)}["d"]
    assert (silent.health, silent.lag, silent.last_signed) == ("silent", None, None)


def test_without_any_certificate_nothing_is_claimed_and_a_block_above_the_head_is_refused() -> None:
    uncertified = [BlockSigners(h, "a", None) for h in range(1, 5)]
    rows = validator_signing(VALIDATORS, uncertified, 4)
    assert {row.health for row in rows} == {"unknown"} and rows[0].last_proposed == 4
    assert validator_signing([_validator("new")], _window(4, {}), 4)[0].health == "silent"  # not in any certificate
    with pytest.raises(ValueError, match="above the head"):
        validator_signing(VALIDATORS, _window(5, {}), 4)

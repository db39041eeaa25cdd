"""The multi-host run's checker finds each violation it is there to find (a checker that cannot
fail would pass every run)."""

from __future__ import annotations

import copy
from collections.abc import Callable

from tests.jepsen.history import NodeChain, Op, check

OWNER = "bank"


def _good() -> tuple[list[Op], list[NodeChain]]:
    ops = [
        Op(0, "write", "w0-1", 1, "a", 0.0, 1.0, "ok", tx_id="t1", height=1),
        Op(0, "read", "w0-1", 1, "b", 1.0, 1.5, "ok", height=2, asked_height=1, read_value=[OWNER, 1]),
        Op(1, "write", "w1-1", 1, "b", 0.0, 9.0, "unknown", tx_id="t2"),
        Op(1, "read", "w1-9", 9, "c", 1.0, 1.5, "behind", asked_height=5),
    ]
    chains = [NodeChain(name, ["h1", "h2"], [["t1"], []], "root") for name in ("a", "b", "c", "d")]
    return ops, chains


def test_a_correct_history_passes() -> None:
    ops, chains = _good()
    assert check(ops, chains, OWNER) == []


def test_each_violation_is_found() -> None:
    cases: dict[str, Callable[[list[Op], list[NodeChain]], object]] = {
        "fork": lambda ops, chains: chains[2].hashes.__setitem__(1, "other"),
        "state roots differ": lambda ops, chains: setattr(chains[3], "state_root_at_common", "x"),
        "acknowledged write": lambda ops, chains: chains[1].tx_ids.__setitem__(0, []),  # lost on one node
        "committed at [1, 2]": lambda ops, chains: chains[0].tx_ids.__setitem__(1, ["t1"]),  # twice
        "unknown write w1-1 committed 2 times": lambda ops, chains: [c.tx_ids.__setitem__(1, ["t2", "t2"])
                                                                     for c in chains],
        "nobody in the run submitted": lambda ops, chains: [c.tx_ids.__setitem__(1, ["t9"]) for c in chains],
        "stale read": lambda ops, chains: setattr(ops[1], "height", 0),
        "returned": lambda ops, chains: setattr(ops[1], "read_value", [OWNER, 0]),
    }
    for words, break_it in cases.items():
        ops, chains = copy.deepcopy(_good())
        break_it(ops, chains)
        problems = check(ops, chains, OWNER)
        assert any(words in problem for problem in problems), (words, problems)

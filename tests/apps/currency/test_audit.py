"""The supply audit and the regulator's analytics.

* The auditor replays the certified movement history to any height: issued - redeemed equals the
  buckets at every height; at the head the replay equals the contract's aggregates, its chained
  history head and every wallet, vault, device, hold, escrow and envelope in state. A history with
  a gap, a changed amount or a bucket below zero is refused.
* The history goes to Parquet, and the AML rules (velocity, structuring, large value) and operator
  flows run as SQL in DuckDB: on a generated history of 60,000 payments with planted patterns they
  find exactly the planted wallets (and agree with a plain computation over the same rows).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from pilotchain.apps.currency.analytics import Analytics, export_history, write_parquet
from pilotchain.apps.currency.audit import (
    AuditError,
    Movement,
    SupplyReplay,
    audit_chain,
    replay_blocks,
)
from pilotchain.apps.currency.client import HolderKey
from pilotchain.apps.currency.offline import OfflineDevice
from pilotchain.crypto import get_suite
from tests.apps.currency.helpers import BANK_A, BANK_B, CNY, currency_chain

pytestmark = pytest.mark.timeout(300)
DAY_MS = 86_400_000


def test_the_auditor_replays_the_history_to_any_height_and_matches_the_state_at_the_head(tmp_path: Path) -> None:
    with currency_chain(config={"large_value": 5_000 * CNY}) as world:
        world.issue(BANK_A, 100_000 * CNY)
        world.issue(BANK_B, 50_000 * CNY)
        gov = world.open(BANK_A, "gov", kind="corporate", tier=0, balance=10_000 * CNY)
        world.open(BANK_A, "alice", tier=2, balance=9_000 * CNY)
        world.open(BANK_B, "shop", kind="merchant", tier=0)
        bank_a, bank_b = world.operator(BANK_A), world.operator(BANK_B)
        now = int(time.time() * 1000)
        bank_a.envelope_campaign(gov, "gov", "c1", face=50 * CNY, count=2, merchants=["shop"], from_ms=now - 1,
                                 until_ms=now + DAY_MS)
        bank_a.envelope_grant("c1", "alice")
        middle = world.chain.client().status().height
        world.pay("alice", "shop", 80 * CNY)
        world.pay("alice", "shop", 6_000 * CNY)
        bank_a.escrow_open(world.keys["alice"], "alice", "shop", unit_price=10 * CNY, units=5, until_ms=now + DAY_MS)
        bank_a.hold(world.keys["alice"], "alice", "shop", 70 * CNY, until_ms=now + DAY_MS)
        card = HolderKey.generate(world.suite)
        bank_a.offline_fund(world.keys["alice"], "alice", "card", card.public_key, 200 * CNY)
        bank_b.settle("shop", [OfflineDevice("card", card, world.chain.chain_id).voucher("shop", 20 * CNY)])
        world.passed("redeem", {"operator": BANK_B, "amount": 1_000 * CNY})
        client = world.chain.client()
        report = audit_chain(client)
        assert report["checked_against_state"] and report["balanced"] and report["buckets_checked"] >= 10
        assert report["issued"] == 150_000 * CNY and report["redeemed"] == 1_000 * CNY
        assert (report["envelopes"], report["held"], report["offline"]) == (50 * CNY, 120 * CNY, 180 * CNY)
        # at an earlier height: the supply as it was then
        then = audit_chain(client, height=middle)
        assert then["redeemed"] == 0 and then["envelopes"] == 100 * CNY and then["held"] == 0
        assert then["balanced"] and not then["checked_against_state"]

        # the history refuses tampering
        blocks = [client.get_block(h) for h in range(1, client.status().height + 1)]
        replay = replay_blocks(get_suite(world.suite), blocks)
        assert replay.head == world.supply()["history"]["head"]
        moves = [m for m in _moves(blocks)]
        changed = [dataclasses.replace(m, amount=m.amount + 1) if m.n == 5 else m for m in moves]
        assert _replayed(world.suite, changed).head != replay.head  # a changed amount changes the head
        with pytest.raises(AuditError, match="gap"):
            _replayed(world.suite, [m for m in moves if m.n != 3])
        with pytest.raises(AuditError, match="below zero"):
            _replayed(world.suite, [dataclasses.replace(m, amount=10**12) if m.kind == "pay" else m for m in moves])

        # the same history as Parquet: every movement, and the large payment found by SQL
        exported = export_history(client, tmp_path / "history")
        assert exported["moves"] == replay.count and exported["wallets"] == 3
        with Analytics(tmp_path / "history") as analytics:
            assert analytics.sql("SELECT sum(amount) AS s FROM moves WHERE kind = 'issue'") == [{"s": 150_000 * CNY}]
            large = analytics.rule("large_value", large_value=5_000 * CNY)
            assert [(r["payer"], r["payee"], r["amount"]) for r in large] == [("alice", "shop", 6_000 * CNY)]
            # the envelope-funded payment is one payment of 80 (50 from the envelope, 30 own)
            assert {r["amount"] for r in analytics.sql("SELECT amount FROM payments")} == {80 * CNY, 6_000 * CNY}


def _moves(blocks: list) -> list[Movement]:  # type: ignore[type-arg]
    from pilotchain.apps.currency.audit import movements

    return [m for block in blocks for m in movements(block)]


def _replayed(suite: str, moves: list[Movement]) -> SupplyReplay:
    replay = SupplyReplay(get_suite(suite))
    for move in moves:
        replay.apply(move)
    return replay


def _generated_history(seed: int, wallets: int, payments: int) -> tuple[list[Movement], list[dict[str, object]],
                                                                        dict[str, set[str]]]:
    """A history of ``payments`` ordinary payments over 5 days, plus planted patterns."""
    rng = random.Random(seed)
    start = 1_800_000_000_000
    names = [f"w{i:05d}" for i in range(wallets)]
    opened = [{"wallet": w, "operator": "bank-a" if i % 3 else "bank-b", "kind": "personal", "tier": 2}
              for i, w in enumerate(names)]
    rows: list[tuple[int, str, str, int, str]] = []
    for index in range(payments):  # ordinary: small, spread thin (never 50 a day, never near 50,000)
        payer, payee = rng.sample(names, 2)
        rows.append((start + rng.randrange(5 * DAY_MS), payer, payee, rng.randrange(1, 3_000 * CNY), f"p{index}"))
    planted = {"velocity": {"w00007", "w00042", "w00099"}, "structuring": {"w00013", "w00077"},
               "large_value": {"w00123"}}
    for wallet in planted["velocity"]:
        day = start + 2 * DAY_MS
        rows += [(day + k * 60_000, wallet, "w00001", 10 * CNY, f"v{wallet}-{k}") for k in range(60)]
    for wallet in planted["structuring"]:
        rows += [(start + 3 * DAY_MS + k * 3_600_000, wallet, "w00002", (49_000 - 1_000 * k) * CNY, f"s{wallet}-{k}")
                 for k in range(3)]
    rows.append((start + 4 * DAY_MS, "w00123", "w00003", 60_000 * CNY, "large-1"))
    rows.sort()
    moves = [Movement(n, "pay", f"wallet:{payer}", f"wallet:{payee}", amount, ref, n, at, f"tx{n}")
             for n, (at, payer, payee, amount, ref) in enumerate(rows, start=1)]
    return moves, opened, planted


def test_aml_rules_as_sql_over_a_generated_history(tmp_path: Path) -> None:
    moves, opened, planted = _generated_history(seed=18, wallets=2_000, payments=60_000)
    started = time.perf_counter()
    write_parquet(moves, opened, tmp_path / "h")
    exported_s = time.perf_counter() - started
    thresholds = {"large_value": 50_000 * CNY, "velocity_per_day": 50, "structuring_margin_bp": 1_000,
                  "structuring_count": 3}
    with Analytics(tmp_path / "h") as analytics:
        assert analytics.sql("SELECT count(*) AS n FROM moves") == [{"n": len(moves)}]
        found = {name: {r["wallet" if name != "large_value" else "payer"] for r in analytics.rule(name, **thresholds)}
                 for name in ("velocity", "structuring", "large_value")}
        assert found == planted, found
        flows = analytics.rule("operator_flows", **thresholds)
        assert sum(r["payments"] for r in flows) == len(moves)
        assert {(r["from_operator"], r["to_operator"]) for r in flows} == {(a, b) for a in ("bank-a", "bank-b")
                                                                          for b in ("bank-a", "bank-b")}
    # the same rule as a plain computation over the same rows agrees with the SQL
    per_day = Counter((m.source.split(":")[1], _shanghai_day(m.time_ms)) for m in moves)
    assert {wallet for (wallet, _), count in per_day.items() if count > 50} == planted["velocity"]
    assert exported_s < 60


def _shanghai_day(ms: int) -> int:
    return (ms + 8 * 3_600_000) // DAY_MS

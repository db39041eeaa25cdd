"""S4 in process: the whole story (issue, split, discount, refused double financing, recall trace,
settlement, the regulator's lineage and terms), double financing racing in one block, value
conservation under any sequence of operations, and no price on chain."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotchain.apps.supply.client import SupplyError
from pilotchain.apps.supply.story import PRICE_MARKERS, run_story
from pilotchain.sdk import TxBuilder
from tests.apps.supply.helpers import receivables_chain, register_document, supply_world

pytestmark = pytest.mark.timeout(300)


def _chain_text(world) -> str:  # type: ignore[no-untyped-def]
    """Every transaction, receipt and event of every block, as JSON (what a member reads)."""
    client = world.chain.client()
    head = client.status().height
    parts = []
    for height in range(1, head + 1):
        block = client.get_block(height)
        for tx in block.transactions:
            parts.append(json.dumps(tx.args, default=str))
        parts.append(repr(block))
    return "\n".join(parts)


def test_the_story_of_s4(tmp_path: Path) -> None:
    with supply_world(tmp_path) as (world, parties):
        result = run_story(parties)
        assert "already financed by " + parties["bank_a"].org in result.double_financing
        # conservation at every step: issued - settled = outstanding
        assert result.supply_after_issue["outstanding"] == 100_000_000
        assert result.supply_after_settle == {**result.supply_after_settle, "issued": 100_000_000,
                                              "settled": 100_000_000, "outstanding": 0, "financed": 0}
        car = parties["carmaker"].supply
        lineage = car.lineage(result.receivable)
        assert [r["id"] for r in lineage] == [result.receivable, *result.pieces]
        assert [r["status"] for r in lineage] == ["split", "settled", "settled"]
        assert sum(r["amount"] for r in lineage[1:]) == lineage[0]["amount"]
        financed = lineage[2]
        assert financed["financing"]["bank"] == parties["bank_a"].org and financed["holder"] == parties["bank_a"].org
        assert financed["settlement"]["paid_to"] == parties["bank_a"].org
        # nothing moves after settlement
        for attempt in (lambda: parties["tier1"].supply.split(result.pieces[0], [
                            {"id": "late-1", "holder": parties["tier2"].org, "amount": 1},
                            {"id": "late-2", "holder": parties["tier1"].org, "amount": 69_999_999}]),
                        lambda: parties["tier1"].supply.transfer(result.pieces[0], parties["tier2"].org),
                        lambda: parties["bank_b"].supply.finance(result.pieces[0]),
                        lambda: car.settle(result.receivable, "again")):
            with pytest.raises(SupplyError):
                attempt()
        # the recall: exactly the vehicles with discs made from the defective batch's steel
        assert result.recall.vins == result.expected_vins
        assert len(result.recall.sources) == 1 and result.recall.sources[0].endswith(f"S{result.suffix}A")
        # the regulator fetched the terms through the data exchange; they were never on chain
        assert parties["regulator"].vault.read(f"terms-{result.suffix}") == result.documents["terms"]
        text = _chain_text(world)
        assert result.receivable in text  # the blocks are readable here...
        for marker in PRICE_MARKERS:  # ...and hold no price, rate or purchase price
            assert marker not in text
        # the purchase price and the unit price, as whole numbers (a block's nanosecond time such as
        # 1765102500000123 holds "2500000" as a substring and is not a price)
        numbers = set(re.findall(r"[0-9]+", text))
        assert "29715000" not in numbers and "2500000" not in numbers


def _setup_offered(chain, roles, prefix: str) -> str:  # type: ignore[no-untyped-def]
    """A receivable of 1,000,000.00 issued by the car maker, 300,000.00 of it passed to tier-2 and
    offered to both banks; the offered piece's id."""
    client = chain.client()
    for org, payload in ((roles["tier1"], f"{prefix}-inv"), (roles["tier1"], f"{prefix}-dn"),
                         (roles["tier2"], f"{prefix}-terms")):
        register_document(chain, org, payload)

    def act(role: str, method: str, args: dict) -> None:  # type: ignore[type-arg]
        result = client.invoke(chain.identity(roles[role]), "receivables", method, args, check=False)
        assert result.ok, result.receipt

    act("carmaker", "issue", {"receivable_id": prefix, "creditor": roles["tier1"], "amount": 100_000_000,
                              "maturity_ms": int(time.time() * 1000) + 10**9, "invoice": f"{prefix}-inv",
                              "delivery_note": f"{prefix}-dn", "batches": ["https://id.gs1.org/01/06905678200025/10/D1"]})
    act("tier1", "split", {"receivable_id": prefix, "pieces": [
        {"id": f"{prefix}.1", "holder": roles["tier1"], "amount": 70_000_000},
        {"id": f"{prefix}.2", "holder": roles["tier2"], "amount": 30_000_000}]})
    for bank in ("bank_a", "bank_b"):
        act("tier2", "offer", {"receivable_id": f"{prefix}.2", "bank": roles[bank], "terms": f"{prefix}-terms"})
    return f"{prefix}.2"


@pytest.mark.parametrize("first", ["bank_a", "bank_b"])
def test_two_banks_financing_the_same_receivable_in_one_block_one_wins(first: str) -> None:
    with receivables_chain() as (chain, roles):
        piece = _setup_offered(chain, roles, f"RACE-{first}")
        chain.call(chain.node.stop())  # from now on a block is made only when the test says so
        client = chain.client()
        order = [first, "bank_b" if first == "bank_a" else "bank_a"]
        txs = [TxBuilder(chain.identity(roles[bank]), chain.chain_id).build(
                   "receivables", "finance", {"receivable_id": piece, "registration_no": f"ZD-{bank}"})
               for bank in order]
        ids = client.submit_many(txs)
        assert all(isinstance(i, str) for i in ids), ids  # both admitted: neither is invalid on its own
        height = chain.produce_block()
        results = [client.wait(str(i)) for i in ids]
        assert {r.height for r in results} == {height}  # the same block
        winner, loser = results
        assert winner.ok and winner.signer_org == roles[first]
        assert not loser.ok and loser.receipt is not None and loser.receipt.status == "EXECUTION_FAILED"
        assert f"already financed by {roles[first]}" in loser.receipt.message
        record = client.query("receivables", "receivable", {"receivable_id": piece})
        assert record["financing"]["bank"] == roles[first] and record["holder"] == roles[first]
        assert client.query("receivables", "supply")["financed"] == 30_000_000


def test_the_whole_receivable_or_a_financed_piece_cannot_be_financed_or_split(tmp_path: Path) -> None:
    with receivables_chain() as (chain, roles):
        piece = _setup_offered(chain, roles, "PART")
        client = chain.client()

        def call(role: str, method: str, args: dict) -> object:  # type: ignore[type-arg]
            return client.invoke(chain.identity(roles[role]), "receivables", method, args, check=False)

        assert call("bank_a", "finance", {"receivable_id": piece}).ok
        refused = [
            call("bank_b", "finance", {"receivable_id": "PART"}),  # the original: split, closed
            call("bank_b", "finance", {"receivable_id": piece}),  # the piece: financed already
            call("bank_a", "split", {"receivable_id": piece, "pieces": [
                {"id": "PART.2.1", "holder": roles["bank_a"], "amount": 10_000_000},
                {"id": "PART.2.2", "holder": roles["bank_b"], "amount": 20_000_000}]}),  # financed: no pieces
            call("tier2", "offer", {"receivable_id": piece, "bank": roles["bank_b"], "terms": "PART-terms"}),
            call("bank_b", "finance", {"receivable_id": "PART.1"}),  # not offered to bank B by its holder
        ]
        assert [r.ok for r in refused] == [False] * 5  # type: ignore[attr-defined]
        assert "split" in refused[0].receipt.message  # type: ignore[attr-defined]
        assert "already financed" in refused[1].receipt.message  # type: ignore[attr-defined]
        assert refused[4].receipt.status == "PERMISSION_DENIED"  # type: ignore[attr-defined]
        # a split must add up: value is conserved or nothing happens
        bad = call("tier1", "split", {"receivable_id": "PART.1", "pieces": [
            {"id": "PART.1.1", "holder": roles["tier2"], "amount": 30_000_000},
            {"id": "PART.1.2", "holder": roles["tier1"], "amount": 30_000_000}]})
        assert not bad.ok and "value is conserved" in bad.receipt.message  # type: ignore[attr-defined]


# --------------------------------------------------------------------- conservation, by hypothesis

_op = st.tuples(st.sampled_from(["split", "transfer", "offer", "finance", "settle"]), st.integers(0, 15),
                st.integers(1, 99), st.sampled_from(["tier1", "tier2", "bank_a", "bank_b"]))


@pytest.fixture(scope="module")
def shared_chain():  # type: ignore[no-untyped-def]
    with receivables_chain() as opened:
        yield opened


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(amount=st.integers(2, 10**9), ops=st.lists(_op, min_size=1, max_size=8))
def test_value_is_conserved_whatever_the_holders_do(shared_chain, amount: int, ops: list) -> None:  # type: ignore[no-untyped-def,type-arg]
    chain, roles = shared_chain
    client = chain.client()
    root = f"H{next(_counter)}"
    register_document(chain, roles["tier1"], f"{root}-inv")
    register_document(chain, roles["tier1"], f"{root}-dn")
    issued = client.invoke(chain.identity(roles["carmaker"]), "receivables", "issue", {
        "receivable_id": root, "creditor": roles["tier1"], "amount": amount,
        "maturity_ms": int(time.time() * 1000) + 10**9, "invoice": f"{root}-inv", "delivery_note": f"{root}-dn",
        "batches": ["https://id.gs1.org/01/06905678200025/10/D1"]}, check=False)
    assert issued.ok, issued.receipt
    before = client.query("receivables", "supply")
    for n, (op, pick, share, role) in enumerate(ops):
        tree = client.query("receivables", "lineage", {"receivable_id": root})
        leaves = [r for r in tree if r["status"] != "split"]
        target = leaves[pick % len(leaves)]
        holder = next(r for r, org in roles.items() if org == target["holder"])
        if op == "split" and target["amount"] >= 2:
            cut = max(1, target["amount"] * share // 100)
            args = {"receivable_id": target["id"], "pieces": [
                {"id": f"{target['id']}.{n}a", "holder": roles[role], "amount": cut},
                {"id": f"{target['id']}.{n}b", "holder": target["holder"], "amount": target["amount"] - cut}]}
            who = holder
        elif op == "transfer":
            args, who = {"receivable_id": target["id"], "to": roles[role]}, holder
        elif op == "offer":
            register_document(chain, target["holder"], f"{target['id']}-t{n}")
            args, who = {"receivable_id": target["id"], "bank": roles[role], "terms": f"{target['id']}-t{n}"}, holder
        elif op == "finance":
            args, who = {"receivable_id": target["id"]}, role
        else:
            args, who, op = {"receivable_id": root, "payment_ref": f"P{n}"}, "carmaker", "settle"
        client.invoke(chain.identity(roles[who]), "receivables", op, args, check=False)  # refusals change nothing
        tree = client.query("receivables", "lineage", {"receivable_id": root})
        leaves = [r for r in tree if r["status"] != "split"]
        assert sum(r["amount"] for r in leaves) == amount  # the pieces add up to the receivable, always
        now = client.query("receivables", "supply")
        settled = sum(r["amount"] for r in leaves if r["status"] == "settled")
        financed = sum(r["amount"] for r in leaves if r["status"] == "financed")
        assert now["issued"] - before["issued"] == 0 and now["outstanding"] == now["issued"] - now["settled"]
        assert now["settled"] - before["settled"] == settled
        assert now["financed"] - before["financed"] == financed
        assert all(r["financing"] is None or r["status"] in ("financed", "settled") for r in tree)
        assert sum(1 for r in tree if r["financing"] is not None and r["status"] == "split") == 0


_counter = itertools.count()

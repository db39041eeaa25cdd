"""The supply audit: replay the certified movement history and check it against the contract.

Every movement of value is one ``move`` event of the ``currency`` contract — ``{n, kind, from, to,
amount, ref}`` between buckets (``cb`` outside the supply; ``vault:``, ``wallet:``, ``env:``,
``pool:``, ``held:``, ``offline:``) — and the contract chains them: ``head = H(previous head hex |
"n|kind|from|to|amount|ref")`` with the chain's hash, kept in state with the count.

:class:`SupplyReplay` (pure) applies movements in order and refuses a gap in ``n``, a non-positive
amount, an unknown bucket or a bucket going below zero; it recomputes the chained head. At any
height H the replay gives issued − redeemed and every bucket kind, and the supply identity

    issued − redeemed = vaults + wallets + envelopes + held + offline

holds by construction of a sound history; :func:`audit_chain` reads the blocks (proofs checked by
the SDK) up to H, and at the head also compares the replay with the contract's own aggregates,
its history head and — for the buckets named — every wallet, vault, device, hold and escrow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pilotchain.crypto import Suite, get_suite
from pilotchain.errors import CoreError
from pilotchain.ledger.tx import decode_args
from pilotchain.sdk import BlockInfo, Client

__all__ = ["AuditError", "KIND_OF", "Movement", "SupplyReplay", "audit_chain", "movements"]

#: bucket prefix -> the aggregate it belongs to
KIND_OF = {"vault": "vaults", "wallet": "wallets", "env": "envelopes", "pool": "envelopes", "held": "held",
           "offline": "offline"}
AGGREGATES = ("vaults", "wallets", "envelopes", "held", "offline")
#: how often the head comparison is repeated while currency transactions keep committing
STATE_ATTEMPTS_MAX = 10


class AuditError(CoreError):
    """The history or the state does not add up (the message says where)."""


@dataclass(frozen=True, slots=True)
class Movement:
    n: int
    kind: str
    source: str
    target: str
    amount: int
    ref: str
    height: int
    time_ms: int
    tx_id: str

    @property
    def text(self) -> str:
        return f"{self.n}|{self.kind}|{self.source}|{self.target}|{self.amount}|{self.ref}"


def _aggregate(bucket: str) -> str:
    if bucket == "cb":
        return "cb"
    prefix = bucket.split(":", 1)[0]
    if prefix not in KIND_OF or ":" not in bucket:
        raise AuditError(f"unknown bucket {bucket!r}")
    return KIND_OF[prefix]


@dataclass
class SupplyReplay:
    suite: Suite
    count: int = 0
    head: str = ""
    height: int = 0
    buckets: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("issued", "redeemed", *AGGREGATES), 0))

    def apply(self, move: Movement) -> None:
        if move.n != self.count + 1:
            raise AuditError(f"movement {move.n} follows {self.count}: the history has a gap or a repeat")
        if move.amount <= 0:
            raise AuditError(f"movement {move.n} moves {move.amount}")
        source, target = _aggregate(move.source), _aggregate(move.target)
        for bucket, kind, delta in ((move.source, source, -move.amount), (move.target, target, move.amount)):
            if kind == "cb":
                self.totals["issued" if delta < 0 else "redeemed"] += abs(delta)
                continue
            value = self.buckets.get(bucket, 0) + delta
            if value < 0:
                raise AuditError(f"movement {move.n} ({move.kind}, block {move.height}) takes {bucket} below zero")
            self.buckets[bucket] = value
            self.totals[kind] += delta
        self.head = self.suite.hash(f"{self.head}|{move.text}".encode()).hex()
        self.count = move.n
        self.height = move.height

    @property
    def outstanding(self) -> int:
        return self.totals["issued"] - self.totals["redeemed"]

    @property
    def balanced(self) -> bool:
        return self.outstanding == sum(self.totals[name] for name in AGGREGATES)

    def report(self) -> dict[str, Any]:
        return {**self.totals, "outstanding": self.outstanding, "balanced": self.balanced, "height": self.height,
                "history": {"count": self.count, "head": self.head}}


def movements(block: BlockInfo, contract: str = "currency") -> Iterator[Movement]:
    """The contract's movements committed in ``block``, in order (failed transactions have none)."""
    for tx, receipt in zip(block.transactions, block.receipts, strict=True):
        if receipt.status != "OK":
            continue
        for event in receipt.events:
            if event.contract != contract or event.name != "move":
                continue
            data = decode_args(event.data)
            yield Movement(int(data["n"]), str(data["kind"]), str(data["from"]), str(data["to"]), int(data["amount"]),
                           str(data["ref"]), block.height, block.header.timestamp_ms, tx.tx_id)


def replay_blocks(suite: Suite, blocks: Iterable[BlockInfo], contract: str = "currency",
                  on_move: Callable[[Movement], None] | None = None) -> SupplyReplay:
    replay = SupplyReplay(suite)
    for block in blocks:
        for move in movements(block, contract):
            replay.apply(move)
            if on_move is not None:
                on_move(move)
    return replay


def _expected(client: Client, contract: str, bucket: str) -> int | None:
    """What the contract's state holds for one bucket now (None: not a bucket it reports)."""
    prefix, _, name = bucket.partition(":")
    if prefix == "vault":
        return int(client.query(contract, "operator", {"org": name})["vault"])
    if prefix == "wallet":
        return int(client.query(contract, "wallet", {"wallet_id": name})["balance"])
    if prefix == "env":
        wallet, _, campaign = name.partition(":")
        return int(client.query(contract, "wallet", {"wallet_id": wallet})["envelopes"].get(campaign, 0))
    if prefix == "pool":
        return int(client.query(contract, "campaign", {"campaign_id": name})["pool"])
    if prefix == "offline":
        return int(client.query(contract, "device", {"device_id": name})["balance"])
    if prefix == "held":
        hold = client.query(contract, "held", {"hold_id": name})
        if hold is not None:
            return int(hold["amount"]) if hold["status"] == "held" else 0
        escrow = client.query(contract, "escrow", {"escrow_id": name})
        undelivered = int(escrow["units"]) - int(escrow["delivered"]) - int(escrow["refunded"])
        return undelivered * int(escrow["unit_price"])
    return None


def _compare(client: Client, contract: str, replay: SupplyReplay, check_buckets: bool) -> str | None:
    """Why the contract's state disagrees with the replay, or None."""
    state = client.query(contract, "supply_audit")
    for name in ("issued", "redeemed", *AGGREGATES):
        if state[name] != replay.totals[name]:
            return f"the contract's {name} is {state[name]}; the history gives {replay.totals[name]}"
    if (state["history"]["count"], state["history"]["head"]) != (replay.count, replay.head):
        return "the contract's history head does not match the chained movements"
    if check_buckets:
        for bucket, value in sorted(replay.buckets.items()):
            expected = _expected(client, contract, bucket)
            if expected is not None and expected != value:
                return f"{bucket} holds {expected} in state; the history gives {value}"
    return None


def audit_chain(client: Client, *, contract: str = "currency", height: int | None = None,
                check_buckets: bool = True, on_move: Callable[[Movement], None] | None = None) -> dict[str, Any]:
    """Replay blocks 1..``height`` (default: the head) and report the supply at that height.
    At the head: the replay must equal the contract's aggregates and history head, and (when
    ``check_buckets``) every bucket must equal what the contract's state holds for it."""
    status = client.status()
    head = status.height
    target = head if height is None else height
    if not 0 <= target <= head:
        raise AuditError(f"height {target} is not committed (the head is {head})")
    suite = get_suite(status.suite)
    replay = replay_blocks(suite, (client.get_block(h) for h in range(1, target + 1)), contract, on_move)
    report = replay.report()
    report["height"] = target
    report["checked_against_state"] = False
    if not replay.balanced:
        raise AuditError(f"at height {target} issued - redeemed = {replay.outstanding} but the buckets hold "
                         f"{sum(replay.totals[name] for name in AGGREGATES)}")
    if height is None or height == head:
        # compare with the state; movements committed meanwhile are replayed too and the
        # comparison repeated (blocks of other contracts change nothing here)
        for _ in range(STATE_ATTEMPTS_MAX):
            mismatch = _compare(client, contract, replay, check_buckets)
            later = client.status().height
            extra = [m for h in range(target + 1, later + 1) for m in movements(client.get_block(h), contract)]
            target = later
            if not extra:
                if mismatch is not None:
                    raise AuditError(mismatch)
                break
            for move in extra:
                replay.apply(move)
                if on_move is not None:
                    on_move(move)
        else:
            raise AuditError("the currency kept moving during the audit; audit a past height")
        report = replay.report()
        report["height"] = target
        report["checked_against_state"] = True
        report["buckets_checked"] = len(replay.buckets) if check_buckets else 0
    return report

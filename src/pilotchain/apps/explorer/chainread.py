"""What the explorer reads beyond blocks and transactions, through the SDK as its organisation:
a governance proposal's own transactions (proposed, approved, withdrawn) and payload, the change it
made (code before and after, parameters before and after, the validator set before and after),
the membership log, the contracts and their sources.

The node keeps no index of these, so they come from governance's state and from the blocks a
proposal names: its transactions are found in the blocks from the one it was proposed in to the
one that closed it, at most :data:`SCAN_BLOCKS_MAX` of them (beyond that the page says it did
not look further). Sources and membership entries are read from ``gov`` state with proofs, which
the SDK checks against the head header.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilotchain.apps.explorer.certify import validators_at
from pilotchain.apps.explorer.messages import t
from pilotchain.codec import CodecError, decode
from pilotchain.contracts.governance import ValidatorSchedule
from pilotchain.contracts.membership import MembershipChange, MembershipHead
from pilotchain.contracts.sandbox import SandboxLimits
from pilotchain.identity.records import CaRotation, OrgCertificate, Revocation, decode_record
from pilotchain.ledger.genesis import Genesis, ValidatorInfo
from pilotchain.ledger.tx import decode_args
from pilotchain.sdk import Client

__all__ = [
    "SCAN_BLOCKS_MAX",
    "Change",
    "ProposalStep",
    "contract_names",
    "MembershipView",
    "membership_log",
    "membership_view",
    "proposal_change",
    "proposal_steps",
]

#: blocks read to find one proposal's transactions (a proposal open longer is followed that far)
SCAN_BLOCKS_MAX = 512
#: membership changes shown (the newest)
MEMBERSHIP_SHOWN_MAX = 200
#: proposals gov.list returns at most (the contracts list and the diffs look no further back)
PROPOSALS_READ_MAX = 256


@dataclass(frozen=True, slots=True)
class ProposalStep:
    """One transaction of a proposal's life: "proposed", "approved", "withdrawn" (by ``org``)."""

    action: str
    org: str
    height: int
    tx_id: str
    executed: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """What a proposal changes, as the page shows it (the fields that apply to its kind)."""

    kind: str
    payload: dict[str, Any] | None
    #: deploy/upgrade: the source before (None for a first deployment) and after
    code_before: str | None = None
    code_after: str | None = None
    version_before: str | None = None
    #: set_params: (name, before, after)
    params: tuple[tuple[str, int | None, int], ...] = ()
    #: validator changes: the sets before and after, and the height the change takes effect
    validators_before: tuple[ValidatorInfo, ...] = ()
    validators_after: tuple[ValidatorInfo, ...] = ()
    effective_height: int | None = None
    #: what could not be read, in the reader's language (the page says so)
    missing: str = ""


def proposal_steps(client: Client, proposal: dict[str, Any], head: int) -> tuple[list[ProposalStep], bool]:
    """The transactions that proposed, approved or withdrew ``proposal``, oldest first, and whether
    every block it could be in was read (False: it is open longer than :data:`SCAN_BLOCKS_MAX`)."""
    first = int(proposal.get("created_height") or 0)
    closed = int(proposal.get("closed_height") or 0)
    last = closed if closed >= first > 0 else head
    if first < 1:
        return [], False
    complete = last - first + 1 <= SCAN_BLOCKS_MAX
    steps: list[ProposalStep] = []
    for height in range(first, min(last, first + SCAN_BLOCKS_MAX - 1) + 1):
        block = client.get_block(height)
        for tx, receipt in zip(block.transactions, block.receipts, strict=False):
            if tx.redacted or tx.contract != "gov" or receipt.status != "OK":
                continue
            result = _result(receipt.result)
            step = _step_of(tx.method, tx.args, result, proposal["id"])
            if step is not None:  # the transaction that met the policy applied the change: "executed"
                steps.append(ProposalStep(step, tx.signer_org or "", height, tx.tx_id,
                                          executed=result.get("status") == "executed"))
    return steps, complete


def _result(raw: bytes) -> dict[str, Any]:
    try:
        value = decode_args(raw) if raw else None
    except CodecError:
        return {}
    return value if isinstance(value, dict) else {}


def _step_of(method: str, args: Any, result: dict[str, Any], proposal_id: int) -> str | None:
    if method == "propose" and result.get("id") == proposal_id:
        return "proposed"
    if method in ("approve", "withdraw") and isinstance(args, dict) and args.get("id") == proposal_id:
        return "approved" if method == "approve" else "withdrawn"
    return None


def _payload(client: Client, proposal: dict[str, Any]) -> dict[str, Any] | None:
    """The payload the proposal was filed with (from its propose transaction's arguments)."""
    height = int(proposal.get("created_height") or 0)
    if height < 1:
        return None
    block = client.get_block(height)
    for tx, receipt in zip(block.transactions, block.receipts, strict=False):
        if (not tx.redacted and tx.contract == "gov" and tx.method == "propose" and receipt.status == "OK"
                and _result(receipt.result).get("id") == proposal["id"] and isinstance(tx.args, dict)):
            payload = tx.args.get("payload")
            return payload if isinstance(payload, dict) else None
    return None


def proposal_change(client: Client, genesis: Genesis, proposal: dict[str, Any],
                    proposals: Sequence[dict[str, Any]]) -> Change:
    """What ``proposal`` changes; ``proposals`` are the others governance lists (for the state before)."""
    kind = str(proposal.get("kind", ""))
    payload = _payload(client, proposal)
    change = Change(kind=kind, payload=payload)
    if payload is None:
        return dataclasses.replace(change, missing=t("gov.missing.propose_tx", height=proposal.get("created_height")))
    if kind == "deploy_contract":
        return _deploy_change(client, change, proposal, proposals)
    if kind == "set_params":
        return _params_change(client, genesis, change, proposal, proposals)
    if kind in ("add_validator", "remove_validator"):
        return _validator_change(client, genesis, change, proposal)
    return change


def _earlier(proposals: Sequence[dict[str, Any]], proposal: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The executed proposals of ``kind`` closed before ``proposal`` was (or, if open, before now)."""
    closed = int(proposal.get("closed_height") or 0) or 2**62
    return sorted((p for p in proposals if p.get("kind") == kind and p.get("status") == "executed"
                   and p["id"] != proposal["id"] and 0 < int(p.get("closed_height") or 0) <= closed),
                  key=lambda p: (int(p["closed_height"]), int(p["id"])))


def _deploy_change(client: Client, change: Change, proposal: dict[str, Any],
                   proposals: Sequence[dict[str, Any]]) -> Change:
    payload = change.payload or {}
    name = payload.get("name")
    previous = [p for p in _earlier(proposals, proposal, "deploy_contract") if p.get("target", {}).get("name") == name]
    code_after = payload.get("code") if isinstance(payload.get("code"), str) else None
    if not previous:
        return dataclasses.replace(change, code_after=code_after)
    before = _payload(client, previous[-1]) or {}
    code_before = before.get("code") if isinstance(before.get("code"), str) else None
    return dataclasses.replace(change, code_before=code_before, code_after=code_after,
                               version_before=str(before.get("version", "")) or None,
                               missing="" if code_before is not None else t("gov.missing.old_source", id=previous[-1]["id"]))


def _params_change(client: Client, genesis: Genesis, change: Change, proposal: dict[str, Any],
                   proposals: Sequence[dict[str, Any]]) -> Change:
    limits = SandboxLimits()
    values: dict[str, int] = {
        "block_txs_max": genesis.params.block_txs_max, "block_bytes_max": genesis.params.block_bytes_max,
        "timeout_propose_ms": genesis.params.timeout_propose_ms, "timeout_vote_ms": genesis.params.timeout_vote_ms,
        "contract_steps_max": limits.steps_max, "contract_allocation_bytes_max": limits.allocation_bytes_max,
    }  # fmt: skip
    for earlier in _earlier(proposals, proposal, "set_params"):
        earlier_params = (_payload(client, earlier) or {}).get("params")
        if isinstance(earlier_params, dict):
            values.update({k: v for k, v in earlier_params.items() if isinstance(v, int)})
    wanted = (change.payload or {}).get("params")
    rows = tuple((str(k), values.get(str(k)), int(v)) for k, v in sorted(wanted.items())) if isinstance(wanted, dict) else ()
    return dataclasses.replace(change, params=rows)


def _validator_change(client: Client, genesis: Genesis, change: Change, proposal: dict[str, Any]) -> Change:
    """The validator schedule the proposal made (``gov`` state ``v/<height>``, read with proofs,
    newest first until the proposal's own block) and the sets before and after it."""
    index = client.read_state("gov", b"v/index").value
    created = int(proposal.get("created_height") or 0)
    for effective in reversed(decode(index, tuple[int, ...]) if index is not None else ()):
        if effective <= created:
            break
        raw = client.read_state("gov", b"v/" + effective.to_bytes(8, "big")).value
        if raw is None or decode(raw, ValidatorSchedule).proposal_id != proposal["id"]:
            continue
        history = client.query("gov", "validators").get("history", [])
        return dataclasses.replace(change, effective_height=effective,
                                   validators_before=tuple(validators_at(genesis, history, effective - 1)),
                                   validators_after=decode(raw, ValidatorSchedule).validators)
    if proposal.get("status") == "executed":
        return dataclasses.replace(change, missing=t("gov.missing.schedule"))
    return change


def membership_log(client: Client) -> tuple[list[MembershipChange], bool]:
    """The newest membership changes governance recorded, newest first (read from ``gov`` state
    with proofs), and whether older ones were left unread."""
    head_value = client.read_state("gov", b"m/head").value
    if head_value is None:
        return [], False
    head = decode(head_value, MembershipHead)
    changes = []
    oldest = max(head.count - MEMBERSHIP_SHOWN_MAX, 0)
    for seq in range(head.count - 1, oldest - 1, -1):
        raw = client.read_state("gov", b"m/" + seq.to_bytes(8, "big")).value
        if raw is not None:
            changes.append(decode(raw, MembershipChange))
    return changes, oldest > 0


def contract_names(proposals: Sequence[dict[str, Any]]) -> list[str]:
    """The contracts governance deployed (among the proposals it lists), by name."""
    return sorted({str(p["target"]["name"]) for p in proposals
                   if p.get("kind") == "deploy_contract" and p.get("status") == "executed" and p.get("target", {}).get("name")})


@dataclass(frozen=True, slots=True)
class MembershipView:
    """Each organisation's current CA, the changes read (newest first), the revocations."""

    cas: dict[str, OrgCertificate]
    changes: list[MembershipChange]
    revoked: dict[tuple[str, int], Revocation]
    #: older changes than those read exist (the CAs of organisations they touched may be older too)
    partial: bool


def membership_view(client: Client, genesis: Genesis) -> MembershipView:
    """Genesis's organisations replayed through the membership changes governance recorded."""
    changes, partial = membership_log(client)
    cas = {ca.org_id: ca for ca in (decode_record(raw, OrgCertificate) for raw in genesis.organizations)}
    revoked: dict[tuple[str, int], Revocation] = {}
    for change in reversed(changes):
        if change.kind == "add_org":
            ca = decode_record(change.record, OrgCertificate)
            cas[ca.org_id] = ca
        elif change.kind == "rotate_ca":
            cas[change.org_id] = decode_record(change.record, CaRotation).new_ca
        elif change.kind == "remove_org":
            cas.pop(change.org_id, None)
        elif change.kind == "revoke":
            revocation = decode_record(change.record, Revocation)
            revoked[(revocation.org_id, revocation.serial)] = revocation
    return MembershipView(cas, changes, revoked, partial)

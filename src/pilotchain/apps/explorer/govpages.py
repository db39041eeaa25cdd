"""The explorer's governance, contract and organisation pages: read results in, HTML out. Pure (no
I/O; the time for expiry warnings is handed in). Shares the frame and escaping of
:mod:`pilotchain.apps.explorer.pages`."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from pilotchain.apps.explorer.chainread import Change, ProposalStep
from pilotchain.apps.explorer.pages import _block_link, _facts, _table, _text, _time, page
from pilotchain.contracts.membership import MembershipChange
from pilotchain.identity.records import Certificate, OrgCertificate, Revocation, decode_record
from pilotchain.ledger.genesis import ValidatorInfo
from pilotchain.sdk import StateValue

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "render_contract",
    "render_contracts",
    "render_orgs",
    "render_proposal",
]

#: a certificate that expires sooner than this is flagged
EXPIRY_WARNING_DAYS = 30
DAY_MS = 24 * 3600 * 1000
#: lines of a code diff shown (a longer diff is cut, saying so)
DIFF_LINES_MAX = 2_000


def _diff(before: str, after: str, before_name: str, after_name: str) -> str:
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), before_name, after_name, lineterm=""))
    if not lines:
        return '<p class="diff-none">The code is the same.</p>'
    cut = len(lines) > DIFF_LINES_MAX
    out = []
    for line in lines[:DIFF_LINES_MAX]:
        css = "hunk" if line.startswith("@@") else "add" if line.startswith("+") else "del" if line.startswith("-") else "ctx"
        out.append(f'<span class="{css}">{_text(line)}</span>')
    more = f"<p>… {len(lines) - DIFF_LINES_MAX} more lines of the diff not shown.</p>" if cut else ""
    return '<pre class="diff" data-diff>' + "\n".join(out) + "</pre>" + more


def _validators_table(validators: Sequence[ValidatorInfo], other: Sequence[ValidatorInfo], css: str) -> str:
    names = {v.name for v in other}
    rows = [(_text(v.name) + ("" if v.name in names else f' <span class="{css}">({"new" if css == "add" else "leaves"})</span>'),
             _text(v.org), str(v.power), f"<code>{_text(v.public_key.hex()[-16:])}</code>") for v in validators]
    return _table(["Validator", "Organisation", "Power", "Key (end)"], rows, "validators")


def _permissions_table(permissions: dict[str, Any]) -> str:
    rows = [(_text(method), _text(", ".join(rule.get("roles", [])) or "any"), _text(", ".join(rule.get("orgs", [])) or "any"))
            for method, rule in sorted(permissions.items())]
    return _table(["Method", "Roles", "Organisations"], rows, "permissions")


def _change_section(change: Change, proposal: dict[str, Any]) -> str:
    parts = ["<h2>The change</h2>"]
    if change.missing:
        parts.append(f'<p class="error">Not shown in full: {_text(change.missing)}.</p>')
    if change.kind == "deploy_contract" and change.code_after is not None:
        name = _text((change.payload or {}).get("name", ""))
        version = _text((change.payload or {}).get("version", ""))
        if change.code_before is None and not change.missing:
            parts.append(f"<p>A first deployment of <b>{name}</b> (version {version}): all of its code is new.</p>")
        parts.append(_diff(change.code_before or "", change.code_after,
                           f"{name} {change.version_before or '(none)'}", f"{name} {version}"))
        permissions = (change.payload or {}).get("permissions") or {}
        if permissions:
            parts.append("<h3>Permissions</h3>" + _permissions_table(permissions))
    elif change.kind == "set_params":
        params = [(_text(name), "—" if before is None else str(before), str(after),
                   '<span class="add">changed</span>' if before != after else "same")
                  for name, before, after in change.params]
        parts.append(_table(["Parameter", "Before", "After", ""], params, "params"))
    elif change.kind in ("add_validator", "remove_validator") and change.validators_after:
        parts.append(f"<p>Takes effect at height {_block_link(change.effective_height)} "
                     f"({len(change.validators_before)} validators before, {len(change.validators_after)} after).</p>")
        parts.append("<h3>Before</h3>" + _validators_table(change.validators_before, change.validators_after, "del"))
        parts.append("<h3>After</h3>" + _validators_table(change.validators_after, change.validators_before, "add"))
    else:
        target = proposal.get("target") or {}
        parts.append("<p>" + _text(proposal.get("summary", "")) + (
            " (" + ", ".join(f"{_text(k)} {_text(v)}" for k, v in sorted(target.items())) + ")" if target else "") + "</p>")
    return "".join(parts)


def render_proposal(org: str, chain_id: str, proposal: dict[str, Any], steps: Sequence[ProposalStep], complete: bool,
                    change: Change) -> str:
    """One proposal from proposal to enactment: the votes, each transaction in order, the change."""
    approvals = list(proposal.get("approvals", ()))
    facts = _facts([
        ("Kind", _text(proposal.get("kind", ""))),
        ("Status", f'<span class="status" data-field="status">{_text(proposal.get("status", ""))}</span>'),
        ("Summary", _text(proposal.get("summary", ""))),
        ("Proposer", _text(proposal.get("proposer", ""))),
        ("Policy", _text(proposal.get("policy", ""))),
        ("Approvals", f"{len(approvals)} of {_text(proposal.get('needed', '?'))} needed: {_text(', '.join(approvals)) or '—'}"),
        ("Expires", _time(int(proposal.get("expires_at_ms") or 0))),
    ])  # fmt: skip
    rows = []
    for step in steps:
        what = {"proposed": "proposed", "approved": "approved", "withdrawn": "withdrew"}[step.action]
        done = ' — <b class="enacted">enacted: the change applied in this transaction</b>' if step.executed else ""
        rows.append((_block_link(step.height), f"<b>{_text(step.org)}</b> {what}{done}",
                     f'<a href="/tx/{_text(step.tx_id)}"><code>{_text(step.tx_id[:16])}</code></a>'))
    if change.effective_height is not None:
        rows.append((_block_link(change.effective_height), "the new validator set takes effect", ""))
    timeline = _table(["Block", "What happened", "Transaction"], rows, "timeline") if rows else "<p>No transactions found.</p>"
    if not complete:
        timeline += "<p class=\"proof none\">Only its first blocks were read: it stayed open longer.</p>"
    body = facts + "<h2>From proposal to enactment</h2>" + timeline + _change_section(change, proposal)
    return page(f"Proposal {proposal.get('id')}", org, chain_id, body)


def render_contracts(org: str, chain_id: str, contracts: Sequence[dict[str, Any]]) -> str:
    rows = [(f'<a href="/contracts/{_text(c["name"])}">{_text(c["name"])}</a>', _text(c.get("version", "")),
             "frozen" if c.get("frozen") else "active", _block_link(c.get("activated_height")),
             f"<code>{_text(str(c.get('code_hash', ''))[:16])}</code>") for c in contracts]
    body = (_table(["Contract", "Version", "State", "Active since", "Code hash"], rows, "contracts") if rows
            else "<p>No contracts deployed through governance yet.</p>")
    return page("Contracts", org, chain_id, body + "<p>Besides these, the built-in <b>kv</b> and <b>gov</b>.</p>")


def render_contract(org: str, chain_id: str, contract: dict[str, Any], source: StateValue | None,
                    deployments: Sequence[dict[str, Any]]) -> str:
    """One contract: version, code hash, versions with their proposals, permissions, the source proven."""
    facts = _facts([
        ("Version", _text(contract.get("version", ""))),
        ("Code hash", f"<code>{_text(contract.get('code_hash', ''))}</code>"),
        ("State", "frozen: " + _text(contract.get("frozen_reason", "")) if contract.get("frozen") else "active"),
        ("Active since", _block_link(contract.get("activated_height"))),
        ("Versions", _text(", ".join(contract.get("versions", [])))),
    ])  # fmt: skip
    history = [(_text(d.get("target", {}).get("version", "")), f'<a href="/governance/{_text(d["id"])}">proposal {_text(d["id"])}</a>',
                _block_link(d.get("closed_height"))) for d in deployments]
    permissions = contract.get("permissions") or {}
    if source is None or source.value is None:
        code = '<p class="error">The source is not in governance state.</p>'
    else:
        proven = (f'<p class="proof ok" data-proof="ok">✓ Proven: the source was read from governance state with a proof '
                  f"checked by the SDK against block {source.header.height}'s state root.</p>") if source.verified else ""
        code = proven + f'<pre class="source" data-source>{_text(source.value.decode("utf-8", errors="replace"))}</pre>'
    body = (facts + "<h2>Versions</h2>" + (_table(["Version", "Deployed by", "In block"], history) if history else "<p>—</p>")
            + "<h2>Permissions</h2>" + (_permissions_table(permissions) if permissions
                                         else "<p>Every member may call every method and read the contract.</p>")
            + "<h2>Source</h2>" + code)
    return page(f"Contract {contract.get('name', '')}", org, chain_id, body)


def _expiry(not_after_ms: int, now_ms: int) -> str:
    if not_after_ms <= now_ms:
        return '<span class="failed" data-expiry="expired">expired</span>'
    if not_after_ms - now_ms < EXPIRY_WARNING_DAYS * DAY_MS:
        return f'<span class="warn" data-expiry="soon">expires in {(not_after_ms - now_ms) // DAY_MS} days</span>'
    return '<span data-expiry="valid">valid</span>'


def render_orgs(org: str, chain_id: str, members: Sequence[str], cas: dict[str, OrgCertificate],
                changes: Sequence[MembershipChange], identities: Sequence[Certificate],
                revoked: dict[tuple[str, int], Revocation], now_ms: int, partial: bool) -> str:
    """Member organisations with their CA certificates, the membership changes governance made, the
    revocations, and this organisation's own identities with their roles, validity and status."""
    ca_rows = [(f'<b>{_text(org_id)}</b>', _text(ca.display_name), str(ca.serial), _time(ca.not_before_ms),
                _time(ca.not_after_ms), _expiry(ca.not_after_ms, now_ms)) for org_id, ca in sorted(cas.items()) if org_id in members]
    identity_rows = []
    for cert in identities:
        revocation = revoked.get((cert.org_id, cert.serial))
        status = (f'<span class="failed" data-revoked>revoked: {_text(revocation.reason)}</span>' if revocation is not None
                  else _expiry(cert.not_after_ms, now_ms))
        identity_rows.append((_text(cert.subject), str(cert.serial), _text(", ".join(cert.roles)), _time(cert.not_before_ms),
                              _time(cert.not_after_ms), status))
    change_rows = []
    revocation_rows = []
    for change in changes:
        what = {"add_org": "organisation added", "remove_org": "organisation removed", "rotate_ca": "CA key rotated",
                "revoke": "identity revoked"}.get(change.kind, change.kind)
        change_rows.append((_block_link(change.height), _text(change.org_id), _text(what),
                            f'<a href="/governance/{change.proposal_id}">proposal {change.proposal_id}</a>'))
        if change.kind == "revoke":
            revocation = decode_record(change.record, Revocation)
            revocation_rows.append((_text(revocation.org_id), str(revocation.serial), _text(revocation.reason),
                                    _time(revocation.revoked_at_ms), _block_link(change.height)))
    body = ("<h2>Member organisations</h2>" + _table(["Organisation", "Name", "CA serial", "Valid from", "Valid until", "Status"],
                                                       ca_rows, "orgs")
            + f"<h2>Identities of {_text(org)}</h2>"
            + (_table(["Subject", "Serial", "Roles", "Valid from", "Valid until", "Status"], identity_rows, "identities")
               if identity_rows else "<p>No identity files of this organisation were found beside the explorer.</p>")
            + "<h2>Revocations</h2>" + (_table(["Organisation", "Serial", "Reason", "From", "In block"], revocation_rows, "revocations")
                                        if revocation_rows else "<p>None.</p>")
            + "<h2>Membership changes</h2>" + (_table(["Block", "Organisation", "Change", "By"], change_rows) if change_rows
                                               else "<p>None since genesis.</p>")
            + ("<p>Only the newest changes are shown.</p>" if partial else "")
            + f"<p class=\"proof none\">Expiry warnings flag what expires within {EXPIRY_WARNING_DAYS} days. The membership "
            "log and the revocations were read from governance state with proofs checked by the SDK.</p>")
    return page("Organisations", org, chain_id, body)

"""The explorer's governance, contract and organisation pages: read results in, HTML out. Pure (no
I/O; the time for expiry warnings is handed in). Shares the frame and escaping of
:mod:`pilotchain.apps.explorer.pages`."""

from __future__ import annotations

import difflib
import urllib.parse
from collections.abc import Sequence
from typing import Any

from pilotchain.apps.explorer.chainread import Change, ProposalStep
from pilotchain.apps.explorer.indexpages import identities_table
from pilotchain.apps.explorer.messages import t
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
#: the membership change kinds the table names
_KINDS = ("orgs.kind.add_org", "orgs.kind.remove_org", "orgs.kind.rotate_ca", "orgs.kind.revoke")


def _diff(before: str, after: str, before_name: str, after_name: str) -> str:
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), before_name, after_name, lineterm=""))
    if not lines:
        return f'<p class="diff-none">{_text(t("gov.same_code"))}</p>'
    cut = len(lines) > DIFF_LINES_MAX
    out = []
    for line in lines[:DIFF_LINES_MAX]:
        css = "hunk" if line.startswith("@@") else "add" if line.startswith("+") else "del" if line.startswith("-") else "ctx"
        out.append(f'<span class="{css}">{_text(line)}</span>')
    more = f"<p>{_text(t('gov.diff_cut', count=len(lines) - DIFF_LINES_MAX))}</p>" if cut else ""
    return '<pre class="diff" data-diff>' + "\n".join(out) + "</pre>" + more


def _validators_table(validators: Sequence[ValidatorInfo], other: Sequence[ValidatorInfo], css: str) -> str:
    names = {v.name for v in other}
    mark = _text(t("gov.new") if css == "add" else t("gov.leaves"))
    rows = [(_text(v.name) + ("" if v.name in names else f' <span class="{css}">({mark})</span>'),
             _text(v.org), str(v.power), f"<code>{_text(v.public_key.hex()[-16:])}</code>") for v in validators]
    return _table([t("overview.validator"), t("overview.organisation"), t("overview.power"), t("gov.key_end")], rows, "validators")


def _permissions_table(permissions: dict[str, Any]) -> str:
    anyone = t("gov.any")
    rows = [(_text(method), _text(", ".join(rule.get("roles", [])) or anyone), _text(", ".join(rule.get("orgs", [])) or anyone))
            for method, rule in sorted(permissions.items())]
    return _table([t("col.method"), t("gov.roles"), t("nav.orgs")], rows, "permissions")


def _change_section(change: Change, proposal: dict[str, Any]) -> str:
    parts = [f"<h2>{_text(t('gov.change'))}</h2>"]
    if change.missing:
        parts.append(f'<p class="error">{_text(t("gov.missing", what=change.missing))}</p>')
    if change.kind == "deploy_contract" and change.code_after is not None:
        name = _text((change.payload or {}).get("name", ""))
        version = _text((change.payload or {}).get("version", ""))
        if change.code_before is None and not change.missing:
            parts.append(f"<p>{t('gov.first_deploy', name=name, version=version)}</p>")
        parts.append(_diff(change.code_before or "", change.code_after,
                           f"{name} {change.version_before or '(none)'}", f"{name} {version}"))
        permissions = (change.payload or {}).get("permissions") or {}
        if permissions:
            parts.append(f"<h3>{_text(t('gov.permissions'))}</h3>" + _permissions_table(permissions))
    elif change.kind == "set_params":
        params = [(_text(name), "—" if before is None else str(before), str(after),
                   f'<span class="add">{_text(t("gov.changed"))}</span>' if before != after else _text(t("gov.same")))
                  for name, before, after in change.params]
        parts.append(_table([t("gov.parameter"), t("gov.before"), t("gov.after"), ""], params, "params"))
    elif change.kind in ("add_validator", "remove_validator") and change.validators_after:
        effective = t("gov.effective", height="\x00", before=len(change.validators_before), after=len(change.validators_after))
        parts.append(f"<p>{_text(effective).replace(chr(0), _block_link(change.effective_height))}</p>")
        parts.append(f"<h3>{_text(t('gov.before'))}</h3>" + _validators_table(change.validators_before, change.validators_after, "del"))
        parts.append(f"<h3>{_text(t('gov.after'))}</h3>" + _validators_table(change.validators_after, change.validators_before, "add"))
    else:
        target = proposal.get("target") or {}
        parts.append("<p>" + _text(proposal.get("summary", "")) + (
            " (" + ", ".join(f"{_text(k)} {_text(v)}" for k, v in sorted(target.items())) + ")" if target else "") + "</p>")
    return "".join(parts)


def render_proposal(org: str, chain_id: str, proposal: dict[str, Any], steps: Sequence[ProposalStep], complete: bool,
                    change: Change) -> str:
    """One proposal from proposal to enactment: the votes, each transaction in order, the change."""
    approvals = list(proposal.get("approvals", ()))
    approved = t("gov.approvals_by", count=len(approvals), needed=proposal.get("needed", "?"), orgs=", ".join(approvals) or "—")
    facts = _facts([
        (t("gov.kind"), _text(proposal.get("kind", ""))),
        (t("gov.status"), f'<span class="status" data-field="status">{_text(proposal.get("status", ""))}</span>'),
        (t("gov.summary"), _text(proposal.get("summary", ""))),
        (t("gov.proposer"), _text(proposal.get("proposer", ""))),
        (t("gov.policy"), _text(proposal.get("policy", ""))),
        (t("gov.approvals"), _text(approved)),
        (t("gov.expires"), _time(int(proposal.get("expires_at_ms") or 0))),
    ])  # fmt: skip
    rows = []
    for step in steps:
        done = f' — <b class="enacted">{_text(t("gov.enacted"))}</b>' if step.executed else ""
        rows.append((_block_link(step.height), t(f"gov.step.{step.action}", org=_text(step.org)) + done,
                     f'<a href="/tx/{_text(step.tx_id)}"><code>{_text(step.tx_id[:16])}</code></a>'))
    if change.effective_height is not None:
        rows.append((_block_link(change.effective_height), _text(t("gov.takes_effect")), ""))
    timeline = (_table([t("col.block"), t("gov.what_happened"), t("col.transaction")], rows, "timeline") if rows
                else f"<p>{_text(t('gov.no_steps'))}</p>")
    if not complete:
        timeline += f'<p class="proof none">{_text(t("gov.scan_cut"))}</p>'
    body = facts + f"<h2>{_text(t('gov.journey'))}</h2>" + timeline + _change_section(change, proposal)
    return page(t("gov.proposal", id=proposal.get("id")), org, chain_id, body)


def render_contracts(org: str, chain_id: str, contracts: Sequence[dict[str, Any]]) -> str:
    rows = [(f'<a href="/contracts/{_text(c["name"])}">{_text(c["name"])}</a>', _text(c.get("version", "")),
             _text(t("contracts.frozen") if c.get("frozen") else t("contracts.active")), _block_link(c.get("activated_height")),
             f"<code>{_text(str(c.get('code_hash', ''))[:16])}</code>") for c in contracts]
    headers = [t("col.contract"), t("contracts.version"), t("contracts.state"), t("contracts.active_since"), t("contracts.code_hash")]
    body = _table(headers, rows, "contracts") if rows else f"<p>{_text(t('contracts.none'))}</p>"
    return page(t("contracts.title"), org, chain_id, body + f"<p>{t('contracts.builtin')}</p>")


def render_contract(org: str, chain_id: str, contract: dict[str, Any], source: StateValue | None,
                    deployments: Sequence[dict[str, Any]], indexed: bool = False) -> str:
    """One contract: version, code hash, versions with their proposals, permissions, the source proven."""
    state = (t("contracts.frozen_because", reason=contract.get("frozen_reason", "")) if contract.get("frozen")
             else t("contracts.active"))
    facts = _facts([
        (t("contracts.version"), _text(contract.get("version", ""))),
        (t("contracts.code_hash"), f"<code>{_text(contract.get('code_hash', ''))}</code>"),
        (t("contracts.state"), _text(state)),
        (t("contracts.active_since"), _block_link(contract.get("activated_height"))),
        (t("contract.versions"), _text(", ".join(contract.get("versions", [])))),
    ])  # fmt: skip
    history = [(_text(d.get("target", {}).get("version", "")),
                f'<a href="/governance/{_text(d["id"])}">{_text(t("orgs.by_proposal", id=d["id"]))}</a>',
                _block_link(d.get("closed_height"))) for d in deployments]
    permissions = contract.get("permissions") or {}
    if source is None or source.value is None:
        code = f'<p class="error">{_text(t("contract.no_source"))}</p>'
    else:
        proven = (f'<p class="proof ok" data-proof="ok">{_text(t("contract.source_proven", height=source.header.height))}</p>'
                  if source.verified else "")
        code = proven + f'<pre class="source" data-source>{_text(source.value.decode("utf-8", errors="replace"))}</pre>'
    versions = _table([t("contracts.version"), t("contract.deployed_by"), t("contract.in_block")], history) if history else "<p>—</p>"
    name = str(contract.get("name", ""))
    quoted = _text(urllib.parse.quote(name))
    listing = (f'<p><a href="/txs?contract={quoted}">{_text(t("index.transactions"))}</a></p>' if indexed else "")
    listing += f'<p><a href="/state?contract={quoted}">{_text(t("state.read_of", name=name))}</a></p>'
    body = (facts + listing + f"<h2>{_text(t('contract.versions'))}</h2>" + versions
            + f"<h2>{_text(t('gov.permissions'))}</h2>"
            + (_permissions_table(permissions) if permissions else f"<p>{_text(t('contract.open'))}</p>")
            + f"<h2>{_text(t('contract.source'))}</h2>" + code)
    return page(t("contract.title", name=contract.get("name", "")), org, chain_id, body)


def _expiry(not_after_ms: int, now_ms: int) -> str:
    if not_after_ms <= now_ms:
        return f'<span class="failed" data-expiry="expired">{_text(t("orgs.expired"))}</span>'
    if not_after_ms - now_ms < EXPIRY_WARNING_DAYS * DAY_MS:
        days = (not_after_ms - now_ms) // DAY_MS
        return f'<span class="warn" data-expiry="soon">{_text(t("orgs.expires_in", days=days))}</span>'
    return f'<span data-expiry="valid">{_text(t("orgs.valid"))}</span>'


def render_orgs(org: str, chain_id: str, members: Sequence[str], cas: dict[str, OrgCertificate],
                changes: Sequence[MembershipChange], identities: Sequence[Certificate],
                revoked: dict[tuple[str, int], Revocation], now_ms: int, partial: bool,
                seen: Sequence[dict[str, Any]] | None = None) -> str:
    """Member organisations with their CA certificates, the membership changes governance made, the
    revocations, this organisation's own identities with their roles, validity and status, and (with
    the index) every identity seen signing."""
    ca_rows = [(f'<b>{_text(org_id)}</b>', _text(ca.display_name), str(ca.serial), _time(ca.not_before_ms),
                _time(ca.not_after_ms), _expiry(ca.not_after_ms, now_ms)) for org_id, ca in sorted(cas.items()) if org_id in members]
    identity_rows = []
    for cert in identities:
        revocation = revoked.get((cert.org_id, cert.serial))
        status = (f'<span class="failed" data-revoked>{_text(t("orgs.revoked", reason=revocation.reason))}</span>'
                  if revocation is not None
                  else _expiry(cert.not_after_ms, now_ms))
        identity_rows.append((_text(cert.subject), str(cert.serial), _text(", ".join(cert.roles)), _time(cert.not_before_ms),
                              _time(cert.not_after_ms), status))
    change_rows = []
    revocation_rows = []
    for change in changes:
        what = t(f"orgs.kind.{change.kind}") if f"orgs.kind.{change.kind}" in _KINDS else change.kind
        change_rows.append((_block_link(change.height), _text(change.org_id), _text(what),
                            f'<a href="/governance/{change.proposal_id}">{_text(t("orgs.by_proposal", id=change.proposal_id))}</a>'))
        if change.kind == "revoke":
            revocation = decode_record(change.record, Revocation)
            revocation_rows.append((_text(revocation.org_id), str(revocation.serial), _text(revocation.reason),
                                    _time(revocation.revoked_at_ms), _block_link(change.height)))
    valid = [t("orgs.valid_from"), t("orgs.valid_until"), t("col.status")]
    body = (f"<h2>{_text(t('orgs.members'))}</h2>"
            + _table([t("col.organisation"), t("orgs.name"), t("orgs.ca_serial"), *valid], ca_rows, "orgs")
            + f"<h2>{_text(t('orgs.identities', org=org))}</h2>"
            + (_table([t("orgs.subject"), t("orgs.serial"), t("gov.roles"), *valid], identity_rows, "identities")
               if identity_rows else f"<p>{_text(t('orgs.no_identities'))}</p>")
            + (f"<h2>{_text(t('index.seen'))}</h2>" + identities_table(seen) if seen is not None else "")
            + f"<h2>{_text(t('orgs.revocations'))}</h2>"
            + (_table([t("col.organisation"), t("orgs.serial"), t("orgs.reason"), t("orgs.from"), t("contract.in_block")],
                      revocation_rows, "revocations") if revocation_rows else f"<p>{_text(t('orgs.none'))}</p>")
            + f"<h2>{_text(t('orgs.changes'))}</h2>"
            + (_table([t("col.block"), t("col.organisation"), t("orgs.change"), t("orgs.by")], change_rows) if change_rows
               else f"<p>{_text(t('orgs.no_changes'))}</p>")
            + (f"<p>{_text(t('orgs.partial'))}</p>" if partial else "")
            + f'<p class="proof none">{_text(t("orgs.note", days=EXPIRY_WARNING_DAYS))}</p>')
    return page(t("orgs.title"), org, chain_id, body)

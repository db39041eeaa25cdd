"""The explorer's pages: SDK results in, HTML out. Pure (no I/O, no clock): the server fetches,
these functions render. Every value that came from the chain goes through :func:`_text` (HTML
escaping), so a contract name, an argument or an event cannot inject markup into the console."""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from pilotchain.apps.explorer.certify import CertificateCheck
from pilotchain.ledger.tx import RejectCode
from pilotchain.sdk import BlockInfo, NodeInfo, TxResult

__all__ = [
    "BLOCKS_PER_PAGE",
    "certificate_in_words",
    "failure_in_words",
    "render_block",
    "render_blocks",
    "render_error",
    "render_governance",
    "render_overview",
    "render_tx",
]

#: blocks on one page of the blocks list (each is one verified read of the node)
BLOCKS_PER_PAGE = 20
#: characters of a transaction's arguments or an event's data shown before "…"
VALUE_CHARS_MAX = 400

_WHY = {
    RejectCode.MALFORMED: "the transaction's bytes do not decode as a transaction",
    RejectCode.NON_CANONICAL: "the transaction is not in the canonical encoding",
    RejectCode.TOO_LARGE: "the transaction is larger than the chain allows",
    RejectCode.WRONG_CHAIN: "the transaction was signed for another chain",
    RejectCode.BAD_NAME: "the contract or method name is not a valid name",
    RejectCode.EXPIRED: "the transaction expired before it was included",
    RejectCode.EXPIRY_TOO_FAR: "the transaction's expiry is further away than the chain allows",
    RejectCode.BAD_SIGNATURE: "the signature does not verify",
    RejectCode.UNKNOWN_SIGNER: "the signer is not a member of the consortium",
    RejectCode.SIGNER_REJECTED: "the signer's certificate is revoked, expired or not valid for this",
    RejectCode.DUPLICATE: "the same transaction was already submitted",
    RejectCode.MEMPOOL_FULL: "the node's mempool was full",
    RejectCode.UNKNOWN_CONTRACT: "no active contract has that name",
    RejectCode.UNKNOWN_METHOD: "the contract has no such method",
    RejectCode.BAD_ARGUMENTS: "the contract refused the arguments",
    RejectCode.PERMISSION_DENIED: "the signer's organisation or role may not call this method",
    RejectCode.EXECUTION_FAILED: "the contract refused the call",
    RejectCode.OUT_OF_STEPS: "the call ran out of its execution steps (a loop too long for one transaction)",
    RejectCode.BLOCK_FULL: "the block had no room left for it",
}


def failure_in_words(status: str | None, message: str | None) -> str:
    """Why a transaction failed, for a person: the code's meaning, then the contract's own words."""
    try:
        meaning = _WHY[RejectCode(status or "")]
    except ValueError:
        meaning = f"it failed with status {status}"
    detail = (message or "").strip()
    return f"{meaning[0].upper()}{meaning[1:]}" + (f": {detail}" if detail else ".")


def certificate_in_words(check: CertificateCheck) -> str:
    """What the block's commit certificate proves, for a person."""
    if check.state == "verified":
        names = ", ".join(f"{name} ({org})" for name, org in check.signers)
        return f"✓ verified: {len(check.signers)} of {check.validator_count} validators signed — {names}"
    if check.state == "absent":
        return "none served (a development node certifies nothing): the header is trusted from the node"
    return f"✗ does not verify: {check.reason}"


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _time(timestamp_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000, tz=datetime.UTC)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<time data-ms="{int(timestamp_ms)}">{shown}</time>'


def _short(hex_text: str, keep: int = 12) -> str:
    return hex_text if len(hex_text) <= keep else f"{hex_text[:keep]}…"


def _value(value: Any) -> str:
    try:
        shown = json.dumps(value, ensure_ascii=False, sort_keys=True, default=_json_default)
    except (TypeError, ValueError):
        shown = repr(value)
    return shown if len(shown) <= VALUE_CHARS_MAX else f"{shown[:VALUE_CHARS_MAX]}…"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{_text(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _facts(pairs: Iterable[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{_text(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _proven(verified: bool, what: str) -> str:
    if verified:
        return (f'<p class="proof ok" data-proof="ok">✓ Proven: {_text(what)} checked by the SDK against '
                "the block header before this page was drawn.</p>")
    return f'<p class="proof none" data-proof="none">Not proven: {_text(what)} was not checked.</p>'


def _certified(check: CertificateCheck | None) -> str:
    """A line on the header's commit certificate (nothing when there is none to show)."""
    if check is None or check.state == "absent":
        return ""
    if check.state == "verified":
        return ('<p class="proof ok" data-proof="certificate">✓ Certified: the header is signed by '
                f"{len(check.signers)} of {check.validator_count} validators in force at its height "
                "(checked by the explorer's server).</p>")
    return f'<p class="proof failed" data-proof="certificate">✗ {_text(certificate_in_words(check))}</p>'


def _browser_check(url: str, what: str) -> str:
    """A placeholder the page's script fills: the browser's own check of ``what`` (static/verify.js)."""
    return (f'<section class="browser-check" data-verify="{_text(url)}" data-state="pending">'
            f'<p class="verdict">Checking {_text(what)} in your browser…</p>'
            "<noscript><p>Your browser runs no JavaScript: only the server's checks above apply.</p></noscript>"
            "<ol class=\"steps\"></ol></section>")


def page(title: str, org: str, chain_id: str, body: str) -> str:
    """The frame every page shares: the organisation it reads as, navigation, search."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_text(title)} · pilotchain explorer</title><link rel="stylesheet" href="/static/explorer.css"></head>
<body><header><a class="brand" href="/">pilotchain explorer</a>
<span class="who">chain <b>{_text(chain_id)}</b> as <b data-org>{_text(org)}</b></span>
<nav><a href="/">Overview</a><a href="/blocks">Blocks</a><a href="/governance">Governance</a><a href="/contracts">Contracts</a><a href="/orgs">Organisations</a></nav>
<form action="/search" method="get" role="search"><input name="q" placeholder="tx id or block height" aria-label="search">
<button>Search</button></form></header>
<main><h1>{_text(title)}</h1>
{body}</main>
<footer>Shows what <b>{_text(org)}</b> may read: transactions of contracts it may not read are redacted by its node.</footer>
<script src="/static/verify.js"></script><script src="/static/explorer.js"></script></body></html>
"""


def _live_section() -> str:
    """The live charts the page's script draws from ``/api/live`` (static/explorer.js)."""
    def chart(name: str, title: str, unit: str) -> str:
        return (f'<figure class="chart"><figcaption>{_text(title)}: <b data-latest="{name}">—</b> {_text(unit)}</figcaption>'
                f'<svg data-chart="{name}" viewBox="0 0 300 80" preserveAspectRatio="none" role="img" '
                f'aria-label="{_text(title)}"></svg></figure>')

    return ('<section class="live" data-live="/api/live"><h2>Live</h2>'
            '<p class="live-state" data-field="live" data-state="connecting">Connecting…</p>'
            + chart("tx_per_s", "Committed transactions per second", "tx/s")
            + chart("latency_ms", "Commit latency (block time to committed here)", "ms")
            + "</section>")


def render_overview(org: str, info: NodeInfo, validators: Sequence[dict[str, Any]], head: BlockInfo | None,
                    check: CertificateCheck | None = None, *, live: bool = False) -> str:
    """Height, last block time, validators, peers, mempool; the head block proven when given."""
    connected = sum(1 for up in info.peers.values() if up)
    facts = _facts([
        ("Height", f'<span data-field="height">{info.height}</span>'),
        ("Last block", _time(info.last_block_time_ms) if info.last_block_time_ms else "none yet"),
        ("Last block hash", f'<a href="/blocks/{info.height}"><code>{_text(_short(info.last_block_hash, 16))}</code></a>'),
        ("Node", f"{_text(info.node)} ({_text(info.org)})"),
        ("Suite", _text(info.suite)),
        ("Mempool", f'<span data-field="mempool">{info.mempool_size}</span> transactions waiting'),
        ("Peers", f'<span data-field="peers">{connected} of {len(info.peers)}</span> connected'),
        ("Syncing", "yes" if info.syncing else "no"),
    ])  # fmt: skip
    validator_rows = [
        (_text(v.get("name", "")), _text(v.get("org", "")), _text(v.get("power", "")),
         "yes" if v.get("name") == info.node else "")
        for v in validators
    ]  # fmt: skip
    peer_rows = [(_text(name), "connected" if up else "not connected") for name, up in sorted(info.peers.items())]
    proof = _proven(head.verified, f"the head block {head.height}'s body") + _certified(check) if head is not None else ""
    body = (
        f'<section id="overview" data-refresh="/api/status">{facts}</section>{proof}'
        + (_live_section() if live else "") +
        f"<h2>Validators</h2>{_table(['Validator', 'Organisation', 'Power', 'This node'], validator_rows)}"
        f"<h2>Peers</h2>{_table(['Peer', 'Link'], peer_rows) if peer_rows else '<p>No peers (a single node).</p>'}"
    )
    return page("Overview", org, info.chain_id, body)


def render_blocks(org: str, chain_id: str, blocks: Sequence[BlockInfo], height: int) -> str:
    """A page of blocks, newest first, with a link to the older ones."""
    rows = [
        (f'<a href="/blocks/{b.height}">{b.height}</a>', _time(b.header.timestamp_ms),
         str(b.header.tx_count), _text(b.header.proposer), f"<code>{_text(_short(b.hash))}</code>",
         "✓" if b.verified else "")
        for b in blocks
    ]  # fmt: skip
    older = blocks[-1].height - 1 if blocks else 0
    more = f'<p><a rel="next" href="/blocks?before={older + 1}">Older blocks</a></p>' if older >= 1 else ""
    body = (f"<p>Height {height}.</p>" + _table(["Height", "Time", "Transactions", "Proposer", "Hash", "Proven"], rows)
            + more + _proven(all(b.verified for b in blocks), "each block's body"))
    return page("Blocks", org, chain_id, body)


def render_block(org: str, chain_id: str, block: BlockInfo, check: CertificateCheck) -> str:
    """One block: header, roots, proposer, who certified it, its transactions and receipts."""
    header = block.header
    signed = certificate_in_words(check)
    facts = _facts([
        ("Height", str(block.height)),
        ("Hash", f"<code>{_text(block.hash)}</code>"),
        ("Parent", f'<a href="/blocks/{block.height - 1}"><code>{_text(header.parent_hash.hex())}</code></a>'
         if block.height > 1 else f"<code>{_text(header.parent_hash.hex())}</code>"),
        ("Time", _time(header.timestamp_ms)),
        ("Proposer", _text(header.proposer)),
        ("Commit certificate", f'<span data-field="certificate" data-state="{check.state}">{_text(signed)}</span>'),
        ("Transaction root", f"<code>{_text(header.tx_root.hex())}</code>"),
        ("Receipt root", f"<code>{_text(header.receipt_root.hex())}</code>"),
        ("State root", f"<code>{_text(header.state_root.hex())}</code>"),
        ("Validator set hash", f"<code>{_text(header.validator_set_hash.hex())}</code>"),
    ])  # fmt: skip
    rows = []
    for index, (tx, receipt) in enumerate(zip(block.transactions, block.receipts, strict=False)):
        status = "OK" if receipt.status == "OK" else f'<span class="failed">{_text(receipt.status)}</span>'
        if tx.redacted:
            rows.append((str(index), f"<code>{_text(_short(tx.tx_id, 16))}</code>", _text(tx.contract),
                         f'<span class="redacted" title="{_text(tx.redacted_reason)}">redacted</span>',
                         '<span class="redacted">redacted</span>', status))
            continue
        rows.append((str(index), f'<a href="/tx/{_text(tx.tx_id)}"><code>{_text(_short(tx.tx_id, 16))}</code></a>',
                     _text(tx.contract), _text(tx.method), _text(tx.signer_org or ""), status))
    transactions = (_table(["#", "Transaction", "Contract", "Method", "Signer organisation", "Status"], rows, "txs")
                    if rows else "<p>No transactions.</p>")
    certified = _certified(check)
    body = (facts + _proven(block.verified, "this block's transactions and receipts (against its tx and receipt roots)")
            + certified + _browser_check(f"/api/proof/block/{block.height}", "this block's certificate and roots")
            + f"<h2>Transactions</h2>{transactions}")
    return page(f"Block {block.height}", org, chain_id, body)


def render_tx(org: str, chain_id: str, result: TxResult, check: CertificateCheck | None = None) -> str:
    """One transaction: its state, receipt, events and, for a failure, the reason in words."""
    receipt = result.receipt
    pairs = [("Id", f"<code>{_text(result.tx_id)}</code>"), ("State", _text(result.state))]
    if result.height is not None:
        pairs.append(("Block", f'<a href="/blocks/{result.height}">{result.height}</a> (position {result.index})'))
    pairs += [("Contract", _text(result.contract or "")), ("Method", _text(result.method or "")),
              ("Signer organisation", _text(result.signer_org or ""))]
    failed = ""
    if receipt is not None:
        pairs += [("Status", _text(receipt.status)), ("Steps used", str(receipt.steps_used))]
        if receipt.status != "OK":
            failed = f'<p class="why failed"><b>Why it failed:</b> {_text(failure_in_words(receipt.status, receipt.message))}</p>'
        elif receipt.result:
            pairs.append(("Result", f"<code>{_text(_value(result.result))}</code>"))
    elif result.code:
        failed = f'<p class="why failed"><b>Why it failed:</b> {_text(failure_in_words(result.code, result.message))}</p>'
    events = [(_text(e.contract), _text(e.name), f"<code>{_text(_value(e.data))}</code>") for e in result.events]
    body = (_facts(pairs) + failed
            + (_proven(result.verified, "this transaction and its receipt (inclusion proof)") + _certified(check)
               + _browser_check(f"/api/proof/tx/{result.tx_id}", "the inclusion proof and the block's certificate")
               if result.height else "")
            + "<h2>Events</h2>" + (_table(["Contract", "Event", "Data"], events) if events else "<p>No events.</p>"))
    return page("Transaction", org, chain_id, body)


def render_governance(org: str, chain_id: str, proposals: Sequence[dict[str, Any]], members: Sequence[str]) -> str:
    """Proposals newest first: kind, status, what they target, and each organisation's vote."""
    sections = []
    for proposal in proposals:
        approvals = set(proposal.get("approvals", ()))
        eligible = list(proposal.get("eligible", ())) or list(members)
        votes = [(_text(member), "approved" if member in approvals else "not yet" if proposal.get("status") == "open" else "did not approve")
                 for member in eligible]  # fmt: skip
        target = ", ".join(f"{_text(k)} {_text(v)}" for k, v in sorted(proposal.get("target", {}).items()))
        facts = _facts([
            ("Kind", _text(proposal.get("kind", ""))),
            ("Status", f'<span class="status">{_text(proposal.get("status", ""))}</span>'),
            ("Summary", _text(proposal.get("summary", ""))),
            ("Target", target or "—"),
            ("Proposer", _text(proposal.get("proposer", ""))),
            ("Approvals", f"{len(approvals)} of {_text(proposal.get('needed', '?'))} needed ({_text(proposal.get('policy', ''))})"),
            ("Proposed in block", _block_link(proposal.get("created_height"))),
            ("Closed in block", _block_link(proposal.get("closed_height"))),
        ])  # fmt: skip
        sections.append(f'<section class="proposal" id="p{_text(proposal.get("id"))}"><h2><a href="/governance/{_text(proposal.get("id"))}">'
                        f'Proposal {_text(proposal.get("id"))}</a></h2>'
                        f"{facts}{_table(['Organisation', 'Vote'], votes)}</section>")
    body = "".join(sections) if sections else "<p>No proposals yet.</p>"
    note = "<p class=\"proof none\">Read from the node's head state by a query (a query carries no proof).</p>"
    return page("Governance", org, chain_id, body + note)


def _block_link(height: Any) -> str:
    if not isinstance(height, int) or height < 1:
        return "—"
    return f'<a href="/blocks/{height}">{height}</a>'


def render_error(org: str, chain_id: str, title: str, message: str) -> str:
    return page(title, org, chain_id, f'<p class="error">{_text(message)}</p>')

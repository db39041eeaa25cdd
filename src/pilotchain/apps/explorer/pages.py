"""The explorer's pages: SDK results in, HTML out. Pure (no I/O, no clock): the server fetches,
these functions render, every label through :mod:`~pilotchain.apps.explorer.messages` in the
request's language. Every value that came from the chain goes through :func:`_text` (HTML
escaping), so a contract name, an argument or an event cannot inject markup into the console."""

from __future__ import annotations

import contextvars
import datetime
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from pilotchain.apps.explorer.certify import CertificateCheck
from pilotchain.apps.explorer.messages import LANGUAGES, current_language, script_messages, t
from pilotchain.apps.explorer.signing import WINDOW_BLOCKS, ValidatorSigning
from pilotchain.codec import encode
from pilotchain.ledger.tx import RejectCode
from pilotchain.sdk import BlockInfo, NodeInfo, StateValue, TxResult

__all__ = [
    "BLOCKS_PER_PAGE",
    "certificate_in_words",
    "failure_in_words",
    "render_block",
    "render_blocks",
    "render_error",
    "render_governance",
    "render_overview",
    "render_state",
    "render_tx",
    "state_key",
    "use_app_links",
]

#: blocks on one page of the blocks list (each is one verified read of the node)
BLOCKS_PER_PAGE = 20
#: characters of a transaction's arguments or an event's data shown before "…"
VALUE_CHARS_MAX = 400
#: the applications' pages the header links in this request: (href, message key), set by the server
_APP_LINKS: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar("app_links", default=())


def use_app_links(links: Sequence[tuple[str, str]]) -> None:
    """Link these applications' pages, ``(href, message key)``, from the header of this request's page."""
    _APP_LINKS.set(tuple(links))

def failure_in_words(status: str | None, message: str | None) -> str:
    """Why a transaction failed, for a person: the code's meaning, then the contract's own words."""
    try:
        meaning = t(f"why.{RejectCode(status or '').value}")
    except ValueError:
        meaning = t("why.status", status=status)
    detail = (message or "").strip()
    return f"{meaning[0].upper()}{meaning[1:]}" + (f": {detail}" if detail else ".")


def certificate_in_words(check: CertificateCheck) -> str:
    """What the block's commit certificate proves, for a person."""
    if check.state == "verified":
        names = ", ".join(f"{name} ({org})" for name, org in check.signers)
        return t("cert.verified", signed=len(check.signers), count=check.validator_count, names=names)
    if check.state == "absent":
        return t("cert.absent")
    return t("cert.invalid", reason=check.reason)


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
        return f'<p class="proof ok" data-proof="ok">{_text(t("proof.proven", what=what))}</p>'
    return f'<p class="proof none" data-proof="none">{_text(t("proof.not_proven", what=what))}</p>'


def _certified(check: CertificateCheck | None) -> str:
    """A line on the header's commit certificate (nothing when there is none to show)."""
    if check is None or check.state == "absent":
        return ""
    if check.state == "verified":
        certified = t("proof.certified", signed=len(check.signers), count=check.validator_count)
        return f'<p class="proof ok" data-proof="certificate">{_text(certified)}</p>'
    return f'<p class="proof failed" data-proof="certificate">✗ {_text(certificate_in_words(check))}</p>'


def _browser_check(url: str, what: str) -> str:
    """A placeholder the page's script fills: the browser's own check of ``what`` (static/verify.js)."""
    return (f'<section class="browser-check" data-verify="{_text(url)}" data-state="pending">'
            f'<p class="verdict">{_text(t("browser.checking", what=what))}</p>'
            f"<noscript><p>{_text(t('browser.noscript'))}</p></noscript>"
            "<ol class=\"steps\"></ol></section>")


def page(title: str, org: str, chain_id: str, body: str) -> str:
    """The frame every page shares: the organisation it reads as, navigation, search, the language
    switch (``/lang/CODE`` keeps the choice in a cookie), the scripts' messages."""
    language = current_language()
    switch = "".join(
        f'<a href="/lang/{code}" hreflang="{code}" lang="{code}"' + (' aria-current="true"' if code == language else "")
        + f">{_text(name)}</a>" for code, name in LANGUAGES.items())
    nav = "".join(f'<a href="{href}">{_text(t(key))}</a>' for href, key in (
        ("/", "nav.overview"), ("/blocks", "nav.blocks"), ("/governance", "nav.governance"),
        ("/contracts", "nav.contracts"), ("/orgs", "nav.orgs"), ("/state", "nav.state"),
        *_APP_LINKS.get()))
    return f"""<!doctype html>
<html lang="{language}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_text(title)} · {_text(t("brand"))}</title><link rel="stylesheet" href="/static/explorer.css"></head>
<body><header><a class="brand" href="/">{_text(t("brand"))}</a>
<span class="who">{t("frame.who", chain=_text(chain_id), org=_text(org))}</span>
<nav>{nav}</nav>
<form action="/search" method="get" role="search"><input name="q" placeholder="{_text(t("frame.search_all"))}" aria-label="{_text(t("frame.search"))}">
<button>{_text(t("frame.search"))}</button></form>
<span class="languages" aria-label="{_text(t("frame.language"))}" data-languages>{switch}</span></header>
<main><h1>{_text(title)}</h1>
{body}</main>
<footer>{t("frame.footer", org=_text(org))}</footer>
<script type="application/json" id="messages">{script_messages()}</script>
<script src="/static/verify.js"></script><script src="/static/explorer.js"></script></body></html>
"""


def _marked(key: str, field: str, markup: str, **values: Any) -> str:
    """Message ``key`` escaped, with ``markup`` (built by the caller from escaped parts) as ``field``."""
    return _text(t(key, **{field: "\x00"}, **values)).replace("\x00", markup)


def _live_section() -> str:
    """The live charts the page's script draws from ``/api/live`` (static/explorer.js)."""
    def chart(name: str, title: str, unit: str) -> str:
        return (f'<figure class="chart"><figcaption>{_text(title)}: <b data-latest="{name}">—</b> {_text(unit)}</figcaption>'
                f'<svg data-chart="{name}" viewBox="0 0 300 80" preserveAspectRatio="none" role="img" '
                f'aria-label="{_text(title)}"></svg></figure>')

    return (f'<section class="live" data-live="/api/live"><h2>{_text(t("live.title"))}</h2>'
            f'<p class="live-state" data-field="live" data-state="connecting">{_text(t("live.connecting"))}</p>'
            + chart("tx_per_s", t("live.tx_per_s"), "tx/s")
            + chart("latency_ms", t("live.latency"), "ms")
            + "</section>")


def _validators_section(validators: Sequence[dict[str, Any]] | Sequence[ValidatorSigning], node: str) -> str:
    """The validators in force; with what their certificates say (:mod:`.signing`) when it was read."""
    headers = [t("overview.validator"), t("overview.organisation"), t("overview.power"), t("overview.this_node")]
    this = _text(t("yes"))
    if not all(isinstance(v, ValidatorSigning) for v in validators):
        return _table(headers, [
            (_text(v.get("name", "")), _text(v.get("org", "")), _text(v.get("power", "")), this if v.get("name") == node else "")
            for v in validators if isinstance(v, dict)])
    rows = [
        (_text(v.name), _text(v.org), str(v.power), this if v.name == node else "",
         _block_link(v.last_proposed), _block_link(v.last_signed),
         _text(t("overview.lag_value", count=v.lag)) if v.lag is not None else "—",
         f'<span class="health {v.health}" data-health="{v.health}">{_text(t(f"health.{v.health}"))}</span>')
        for v in validators if isinstance(v, ValidatorSigning)
    ]  # fmt: skip
    headers += [t("overview.last_proposed"), t("overview.last_signed"), t("overview.lag"), t("overview.health")]
    return _table(headers, rows, "validators") + f'<p class="proof none">{_text(t("overview.health_note", count=WINDOW_BLOCKS))}</p>'


def render_overview(org: str, info: NodeInfo, validators: Sequence[dict[str, Any]] | Sequence[ValidatorSigning],
                    head: BlockInfo | None,
                    check: CertificateCheck | None = None, *, live: bool = False) -> str:
    """Height, last block time, validators, peers, mempool; the head block proven when given."""
    connected = sum(1 for up in info.peers.values() if up)
    facts = _facts([
        (t("overview.height"), f'<span data-field="height">{info.height}</span>'),
        (t("overview.last_block"), _time(info.last_block_time_ms) if info.last_block_time_ms else _text(t("overview.none_yet"))),
        (t("overview.last_hash"), f'<a href="/blocks/{info.height}"><code>{_text(_short(info.last_block_hash, 16))}</code></a>'),
        (t("overview.node"), f"{_text(info.node)} ({_text(info.org)})"),
        (t("overview.suite"), _text(info.suite)),
        (t("overview.mempool"), _marked("overview.mempool_value", "count", f'<span data-field="mempool">{info.mempool_size}</span>')),
        (t("overview.peers"), _marked("overview.peers_value", "connected", f'<span data-field="peers">{connected}</span>',
                                      total=len(info.peers))),
        (t("overview.syncing"), _text(t("yes") if info.syncing else t("no"))),
    ])  # fmt: skip
    peer_rows = [(_text(name), _text(t("overview.connected") if up else t("overview.not_connected")))
                 for name, up in sorted(info.peers.items())]
    proof = _proven(head.verified, t("overview.head_body", height=head.height)) + _certified(check) if head is not None else ""
    peers = _table([t("overview.peer"), t("overview.link")], peer_rows) if peer_rows else f"<p>{_text(t('overview.no_peers'))}</p>"
    body = (
        f'<section id="overview" data-refresh="/api/status">{facts}</section>{proof}'
        + (_live_section() if live else "")
        + f"<h2>{_text(t('overview.validators'))}</h2>{_validators_section(validators, info.node)}"
        + f"<h2>{_text(t('overview.peers'))}</h2>{peers}"
    )
    return page(t("overview.title"), org, info.chain_id, body)


def render_blocks(org: str, chain_id: str, blocks: Sequence[BlockInfo], height: int) -> str:
    """A page of blocks, newest first, with a link to the older ones."""
    rows = [
        (f'<a href="/blocks/{b.height}">{b.height}</a>', _time(b.header.timestamp_ms),
         str(b.header.tx_count), _text(b.header.proposer), f"<code>{_text(_short(b.hash))}</code>",
         "✓" if b.verified else "")
        for b in blocks
    ]  # fmt: skip
    older = blocks[-1].height - 1 if blocks else 0
    more = f'<p><a rel="next" href="/blocks?before={older + 1}">{_text(t("blocks.older"))}</a></p>' if older >= 1 else ""
    headers = [t("col.height"), t("col.time"), t("col.transactions"), t("col.proposer"), t("col.hash"), t("col.proven")]
    body = (f"<p>{_text(t('blocks.height_is', height=height))}</p>" + _table(headers, rows)
            + more + _proven(all(b.verified for b in blocks), t("blocks.each_body")))
    return page(t("blocks.title"), org, chain_id, body)


def render_block(org: str, chain_id: str, block: BlockInfo, check: CertificateCheck) -> str:
    """One block: header, roots, proposer, who certified it, its transactions and receipts."""
    header = block.header
    signed = certificate_in_words(check)
    facts = _facts([
        (t("col.height"), str(block.height)),
        (t("block.hash"), f"<code>{_text(block.hash)}</code>"),
        (t("block.parent"), f'<a href="/blocks/{block.height - 1}"><code>{_text(header.parent_hash.hex())}</code></a>'
         if block.height > 1 else f"<code>{_text(header.parent_hash.hex())}</code>"),
        (t("block.time"), _time(header.timestamp_ms)),
        (t("block.proposer"), _text(header.proposer)),
        (t("block.certificate"), f'<span data-field="certificate" data-state="{check.state}">{_text(signed)}</span>'),
        (t("block.tx_root"), f"<code>{_text(header.tx_root.hex())}</code>"),
        (t("block.receipt_root"), f"<code>{_text(header.receipt_root.hex())}</code>"),
        (t("block.state_root"), f"<code>{_text(header.state_root.hex())}</code>"),
        (t("block.validator_set_hash"), f"<code>{_text(header.validator_set_hash.hex())}</code>"),
    ])  # fmt: skip
    rows = []
    redacted = _text(t("block.redacted"))
    for index, (tx, receipt) in enumerate(zip(block.transactions, block.receipts, strict=False)):
        status = "OK" if receipt.status == "OK" else f'<span class="failed">{_text(receipt.status)}</span>'
        if tx.redacted:
            rows.append((str(index), f"<code>{_text(_short(tx.tx_id, 16))}</code>", _text(tx.contract),
                         f'<span class="redacted" title="{_text(tx.redacted_reason)}">{redacted}</span>',
                         f'<span class="redacted">{redacted}</span>', status))
            continue
        rows.append((str(index), f'<a href="/tx/{_text(tx.tx_id)}"><code>{_text(_short(tx.tx_id, 16))}</code></a>',
                     _text(tx.contract), _text(tx.method), _text(tx.signer_org or ""), status))
    headers = ["#", t("col.transaction"), t("col.contract"), t("col.method"), t("col.signer_org"), t("col.status")]
    transactions = _table(headers, rows, "txs") if rows else f"<p>{_text(t('block.no_transactions'))}</p>"
    body = (facts + _proven(block.verified, t("block.body")) + _certified(check)
            + _browser_check(f"/api/proof/block/{block.height}", t("block.browser_what"))
            + f"<h2>{_text(t('col.transactions'))}</h2>{transactions}")
    return page(t("block.title", height=block.height), org, chain_id, body)


def _why(status: str | None, message: str | None) -> str:
    return f'<p class="why failed"><b>{_text(t("tx.why"))}</b> {_text(failure_in_words(status, message))}</p>'


def render_tx(org: str, chain_id: str, result: TxResult, check: CertificateCheck | None = None) -> str:
    """One transaction: its state, receipt, events and, for a failure, the reason in words."""
    receipt = result.receipt
    pairs = [(t("tx.id"), f"<code>{_text(result.tx_id)}</code>"), (t("tx.state"), _text(result.state))]
    if result.height is not None:
        link = f'<a href="/blocks/{result.height}">{result.height}</a>'
        pairs.append((t("tx.block"), _marked("tx.position", "height", link, index=result.index)))
    pairs += [(t("col.contract"), _text(result.contract or "")), (t("col.method"), _text(result.method or "")),
              (t("col.signer_org"), _text(result.signer_org or ""))]
    failed = ""
    if receipt is not None:
        pairs += [(t("col.status"), _text(receipt.status)), (t("tx.steps"), str(receipt.steps_used))]
        if receipt.status != "OK":
            failed = _why(receipt.status, receipt.message)
        elif receipt.result:
            pairs.append((t("tx.result"), f"<code>{_text(_value(result.result))}</code>"))
    elif result.code:
        failed = _why(result.code, result.message)
    events = [(_text(e.contract), _text(e.name), f"<code>{_text(_value(e.data))}</code>") for e in result.events]
    body = (_facts(pairs) + failed
            + (_proven(result.verified, t("tx.proof_what")) + _certified(check)
               + _browser_check(f"/api/proof/tx/{result.tx_id}", t("tx.browser_what"))
               if result.height else "")
            + f"<h2>{_text(t('tx.events'))}</h2>"
            + (_table([t("col.contract"), t("col.event"), t("col.data")], events) if events
               else f"<p>{_text(t('tx.no_events'))}</p>"))
    return page(t("tx.title"), org, chain_id, body)


def render_governance(org: str, chain_id: str, proposals: Sequence[dict[str, Any]], members: Sequence[str]) -> str:
    """Proposals newest first: kind, status, what they target, and each organisation's vote."""
    sections = []
    for proposal in proposals:
        approvals = set(proposal.get("approvals", ()))
        eligible = list(proposal.get("eligible", ())) or list(members)
        votes = [(_text(member), _text(t("gov.approved") if member in approvals
                                       else t("gov.not_yet") if proposal.get("status") == "open" else t("gov.did_not_approve")))
                 for member in eligible]  # fmt: skip
        target = ", ".join(f"{_text(k)} {_text(v)}" for k, v in sorted(proposal.get("target", {}).items()))
        approved = t("gov.approvals_value", count=len(approvals), needed=proposal.get("needed", "?"),
                     policy=proposal.get("policy", ""))
        facts = _facts([
            (t("gov.kind"), _text(proposal.get("kind", ""))),
            (t("gov.status"), f'<span class="status">{_text(proposal.get("status", ""))}</span>'),
            (t("gov.summary"), _text(proposal.get("summary", ""))),
            (t("gov.target"), target or "—"),
            (t("gov.proposer"), _text(proposal.get("proposer", ""))),
            (t("gov.approvals"), _text(approved)),
            (t("gov.proposed_in"), _block_link(proposal.get("created_height"))),
            (t("gov.closed_in"), _block_link(proposal.get("closed_height"))),
        ])  # fmt: skip
        number = _text(proposal.get("id"))
        sections.append(f'<section class="proposal" id="p{number}"><h2><a href="/governance/{number}">'
                        f"{_text(t('gov.proposal', id=proposal.get('id')))}</a></h2>"
                        f"{facts}{_table([t('col.organisation'), t('col.vote')], votes)}</section>")
    body = "".join(sections) if sections else f"<p>{_text(t('gov.none'))}</p>"
    note = f'<p class="proof none">{_text(t("gov.query_note"))}</p>'
    return page(t("gov.title"), org, chain_id, body + note)


def state_key(text: str, map_name: str = "") -> bytes:
    """The state key a reader means: ``0x``-prefixed hex as bytes, other text as UTF-8; inside a
    contract's ``Map(map_name)``, the map's own layout (``m/NAME\\0`` + the key's canonical encoding).
    ValueError for hex that is not."""
    raw: bytes | str = bytes.fromhex(text[2:]) if text.startswith("0x") else text
    if not map_name:
        return raw if isinstance(raw, bytes) else raw.encode()
    return b"m/" + map_name.encode() + b"\x00" + encode(raw)


def render_state(org: str, chain_id: str, contract: str, key_text: str, map_name: str, state: StateValue | None,
                 check: CertificateCheck | None) -> str:
    """A form to read one state key, and what it holds, proven under a certified header's state root."""
    form = (f'<form class="state-form" action="/state" method="get">'
            f'<label>{_text(t("col.contract"))} <input name="contract" value="{_text(contract)}" required></label> '
            f'<label>{_text(t("state.map"))} <input name="map" value="{_text(map_name)}"></label> '
            f'<label>{_text(t("state.key"))} <input name="key" value="{_text(key_text)}" required></label> '
            f'<button>{_text(t("state.read"))}</button></form><p class="proof none">{_text(t("state.help"))}</p>')
    if state is None:
        return page(t("state.title"), org, chain_id, form)
    if state.value is None:
        shown = f'<i data-field="value">{_text(t("state.absent"))}</i>'
    else:
        decoded = state.decoded
        shown = (f'<code data-field="value">{_text(_value(decoded))}</code>' if decoded is not None
                 else f'<code data-field="value">0x{_text(state.value.hex())}</code>')
    facts = _facts([
        (t("col.contract"), _text(contract)),
        (t("state.key"), f"<code>0x{_text(state.key.hex())}</code>"),
        (t("state.value"), shown),
        (t("tx.block"), _block_link(state.header.height)),
        (t("block.state_root"), f"<code>{_text(state.header.state_root.hex())}</code>"),
    ])  # fmt: skip
    what = t("state.what")
    body = (form + facts + _proven(state.verified, what) + _certified(check)
            + _browser_check(f"/api/proof/state?contract={_text(contract)}&key={_text(state.key.hex())}", what))
    return page(t("state.title"), org, chain_id, body)


def _block_link(height: Any) -> str:
    if not isinstance(height, int) or height < 1:
        return "—"
    return f'<a href="/blocks/{height}">{height}</a>'


def render_error(org: str, chain_id: str, title: str, message: str) -> str:
    return page(title, org, chain_id, f'<p class="error">{_text(message)}</p>')

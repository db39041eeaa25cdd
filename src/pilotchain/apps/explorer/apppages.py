"""The applications' pages: what an installed application's contract tells this organisation,
read through the SDK with the contract's own queries (which its ``@read`` permission may refuse:
the page then says so, a 403). Pure like :mod:`.pages`: the server reads, these render.

An application has a page when its contract is deployed and not frozen on this chain
(:data:`APPS`); the header links only those, and a page of one that is not deployed says so.

- ``currency`` — the supply dashboard: ``currency.supply_audit`` (issued, redeemed, outstanding, each
  kind of bucket, whether ``issued - redeemed`` equals their sum, the movement history's head).
- ``dataex`` — the access log of this organisation's payloads: the decisions (permit, withdraw),
  purges, complaints and anchored receipt batches in the newest data-exchange transactions the
  explorer's index lists, each event read from its proven transaction. The contract has no query that
  lists decisions, so without the index the page says it cannot list them.
- ``health`` — the break-glass review queue: ``health.review_queue`` (emergency accesses not yet
  reviewed).
- ``credentials`` — an issuer's anchored credential batches (``credentials.batch_at`` and ``batch``,
  the newest :data:`BATCHES_SHOWN_MAX`) and its status lists (``credentials.status_list``) with how
  many entries are revoked or suspended; the issuers seen registering are listed from the index.
- ``receivables`` — the receivables this organisation holds (``receivables.holdings_of``) and a
  receivable's lineage (``receivables.lineage``: the tree its splits made) drawn as an inline SVG graph.
- ``catalogue`` — the government data catalogue's entries (``catalogue.entries_list``) and their usage:
  per entry, how many of the newest :data:`USAGE_REQUESTS_MAX` requests (``catalogue.requests_list``)
  were agreed, are pending or were refused.
- ``greencert`` — the certificate lots this organisation holds (``greencert.holdings``) and a lot's
  trace back to its device (``greencert.trace``: lots, batch, meter readings, device) as a graph.
"""

from __future__ import annotations

import collections
import datetime
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilotchain.apps.credentials.statuslist import (
    STATUS_INVALID,
    STATUS_SUSPENDED,
    STATUS_VALID,
    status_at,
)
from pilotchain.apps.explorer.messages import t
from pilotchain.apps.explorer.pages import page, render_error

__all__ = ["ACCESS_EVENTS", "APPS", "BUCKETS", "LogEntry", "lineage_svg", "render_access_log", "render_not_deployed",
           "GraphNode", "graph_svg", "render_catalogue", "usage_by_entry", "render_credentials", "render_greencert", "render_receivables", "trace_svg", "render_review_queue", "render_supply"]

#: contract -> its page, the header's link and the page's title (message keys), in the header's order
APPS = {"currency": ("/apps/currency", "app.currency.nav", "app.currency.title"),
        "dataex": ("/apps/dataex", "app.dataex.nav", "app.dataex.title"),
        "health": ("/apps/health", "app.health.nav", "app.health.title"),
        "credentials": ("/apps/credentials", "app.credentials.nav", "app.credentials.title"),
        "receivables": ("/apps/receivables", "app.receivables.nav", "app.receivables.title"),
        "greencert": ("/apps/greencert", "app.greencert.nav", "app.greencert.title"),
        "catalogue": ("/apps/catalogue", "app.catalogue.nav", "app.catalogue.title")}
#: the currency's kinds of bucket, in the contract's invariant's order
BUCKETS = ("vaults", "wallets", "envelopes", "held", "offline")
#: catalogue requests the usage statistics count (the newest)
USAGE_REQUESTS_MAX = 400
#: catalogue entries listed (the first, in publication order)
ENTRIES_SHOWN_MAX = 200
#: a catalogue request's status -> the usage column it counts in
USAGE_COLUMNS = {"agreed": "agreed", "pending": "pending", "rejected": "refused", "denied": "refused"}
#: credential batches shown for one issuer (the newest)
BATCHES_SHOWN_MAX = 20
#: a status list entry's value -> its message key (other values are shown as numbers)
STATUS_KEYS = {STATUS_VALID: "app.credentials.status.valid", STATUS_INVALID: "app.credentials.status.revoked",
               STATUS_SUSPENDED: "app.credentials.status.suspended"}
#: the data-exchange events an access log shows
ACCESS_EVENTS = ("registered", "permitted", "withdrawn", "purged", "purge_confirmed", "complained", "anchored")


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cny(fen: Any) -> str:
    """An amount in fen for people: 123456 -> "1,234.56 CNY"."""
    if not isinstance(fen, int):
        return "—"
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d} CNY"


def _moment(ms: Any) -> str:
    if not isinstance(ms, int):
        return "—"
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], css: str) -> str:
    head = "".join(f"<th>{_text(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _bar(share: float) -> str:
    """A bucket's share of the outstanding supply, as an inline SVG bar."""
    width = max(0.0, min(share, 1.0)) * 100
    return (f'<svg class="bar" viewBox="0 0 100 8" width="120" height="10" role="img" aria-label="{width:.0f}%">'
            f'<rect width="100" height="8" fill="#e4e7eb"/><rect width="{width:.2f}" height="8" fill="#2f6f3e"/></svg>')


def render_not_deployed(org: str, chain_id: str, contract: str) -> str:
    return render_error(org, chain_id, t(APPS[contract][2]), t("app.not_deployed", contract=contract))


def render_supply(org: str, chain_id: str, audit: dict[str, Any]) -> str:
    """The currency's supply: what the central bank issued and redeemed, where the outstanding money
    is, and whether the books balance."""
    outstanding = audit.get("outstanding")
    held = sum(int(audit.get(bucket) or 0) for bucket in BUCKETS)
    balanced = audit.get("balanced") is True
    verdict = (f'<p class="proof ok" data-balanced="yes">{_text(t("app.currency.balanced", amount=_cny(outstanding)))}</p>'
               if balanced else
               f'<p class="proof failed" data-balanced="no">✗ {_text(t("app.currency.unbalanced", outstanding=_cny(outstanding), held=_cny(held)))}</p>')  # noqa: E501
    chained = audit.get("history")
    history: dict[str, Any] = chained if isinstance(chained, dict) else {}
    facts = [(t("app.currency.issued"), _cny(audit.get("issued"))), (t("app.currency.redeemed"), _cny(audit.get("redeemed"))),
             (t("app.currency.outstanding"), f'<b data-field="outstanding">{_text(_cny(outstanding))}</b>'),
             (t("app.currency.movements"), _text(history.get("count", "—"))),
             (t("app.currency.history_head"), f"<code>{_text(history.get('head', '—'))}</code>"),
             (t("app.currency.height"), _text(audit.get("height", "—")))]
    dl = '<dl class="facts">' + "".join(f"<dt>{_text(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    total = held or 1
    rows = [(_text(t(f"app.currency.bucket.{bucket}")), f'<span data-bucket="{bucket}">{_text(_cny(audit.get(bucket)))}</span>',
             _bar(int(audit.get(bucket) or 0) / total)) for bucket in BUCKETS]
    buckets = _table([t("app.currency.bucket"), t("app.currency.amount"), t("app.currency.share")], rows, "buckets")
    note = f'<p class="proof none">{_text(t("app.currency.note"))}</p>'
    return page(t("app.currency.title"), org, chain_id, verdict + dl + f"<h2>{_text(t('app.currency.buckets'))}</h2>"
                + buckets + note)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One data-exchange event about this organisation's payloads (or a decision naming it)."""

    height: int
    tx_id: str
    name: str
    data: dict[str, Any]


def render_access_log(org: str, chain_id: str, entries: Sequence[LogEntry] | None, read: int, indexed_height: int) -> str:
    """The decisions and receipts about this organisation's payloads, newest first; ``entries`` is
    None without the index; ``read`` is how many data-exchange transactions were looked at."""
    if entries is None:
        return page(t("app.dataex.title"), org, chain_id, f'<p class="error">{_text(t("app.dataex.no_index"))}</p>')
    rows = []
    for entry in entries:
        data = entry.data
        who = data.get("org") or data.get("owner") or ""
        detail = " ".join(str(data[k]) for k in ("purpose", "reason", "rule", "classification") if data.get(k))
        if entry.name == "permitted":
            detail = f"{detail} · {t('app.dataex.until', moment=_moment(data.get('until_ms')))}"
        if entry.name == "anchored":
            detail = t("app.dataex.anchored", count=data.get("count", "?"), root=str(data.get("root", ""))[:16])
        rows.append((f'<a href="/blocks/{entry.height}">{entry.height}</a>',
                     f'<a href="/tx/{_text(entry.tx_id)}"><code>{_text(entry.tx_id[:12])}…</code></a>',
                     f'<span data-event="{_text(entry.name)}">{_text(t(f"app.dataex.event.{entry.name}"))}</span>',
                     f"<code>{_text(data.get('id', '—'))}</code>", _text(who), _text(detail)))
    headers = [t("col.height"), t("col.transaction"), t("app.dataex.what"), t("app.dataex.payload"),
               t("col.organisation"), t("app.dataex.detail")]
    table = _table(headers, rows, "access-log") if rows else f"<p>{_text(t('app.dataex.none'))}</p>"
    note = f'<p class="proof none">{_text(t("app.dataex.note", count=read, height=indexed_height))}</p>'
    return page(t("app.dataex.title"), org, chain_id, table + note)


def render_review_queue(org: str, chain_id: str, queue: Sequence[dict[str, Any]]) -> str:
    """Break-glass accesses waiting for review, oldest first (the contract's queue order)."""
    rows = [(f"<code>{_text(r.get('request_id', ''))}</code>", f"<code>{_text(r.get('payload_id', ''))}</code>",
             _text(r.get("org", "")), _text(r.get("requester", "")), _text(r.get("purpose", "")), _text(r.get("reason", "")),
             _text(_moment(r.get("ms"))),
             _text(t("app.health.ended", moment=_moment(r.get("stopped_ms"))) if r.get("stopped_ms") else t("app.health.running")))
            for r in queue if isinstance(r, dict)]  # fmt: skip
    headers = [t("app.health.request"), t("app.dataex.payload"), t("col.organisation"), t("app.health.requester"),
               t("app.health.purpose"), t("app.health.reason"), t("app.health.when"), t("app.health.state")]
    body = _table(headers, rows, "review-queue") if rows else f"<p>{_text(t('app.health.none'))}</p>"
    return page(t("app.health.title"), org, chain_id, f"<p>{_text(t('app.health.intro'))}</p>" + body)


#: the lineage graph's box for one receivable, and the gaps between boxes (SVG user units)
NODE_W, NODE_H, GAP_X, GAP_Y = 168, 48, 24, 40


def _money(amount: Any, currency: Any) -> str:
    if not isinstance(amount, int):
        return "—"
    return f"{amount // 100:,}.{amount % 100:02d} {currency or ''}".strip()


@dataclass(frozen=True, slots=True)
class GraphNode:
    """One box of a graph: ``row`` from the top, ``parents`` the keys of the boxes it comes from."""

    key: str
    row: int
    title: str
    detail: str
    parents: tuple[str, ...] = ()
    href: str = ""
    fill: str = "#ffffff"
    selected: bool = False


def graph_svg(nodes: Sequence[GraphNode], css: str, label: str) -> str:
    """Boxes in rows (each row centred, in the order given), a line from each parent's box to its
    child's, as an inline SVG (no script); a box with ``href`` is a link."""
    rows: dict[int, list[GraphNode]] = {}
    for node in nodes:
        rows.setdefault(node.row, []).append(node)
    widest = max((len(row) for row in rows.values()), default=1)
    width = widest * (NODE_W + GAP_X) + GAP_X
    height = (max(rows, default=0) + 1) * (NODE_H + GAP_Y) + GAP_Y
    where: dict[str, tuple[float, float]] = {}
    for number, row in rows.items():
        offset = (width - len(row) * (NODE_W + GAP_X) + GAP_X) / 2
        for column, node in enumerate(row):
            where[node.key] = (offset + column * (NODE_W + GAP_X), GAP_Y + number * (NODE_H + GAP_Y))
    edges = [f'<line x1="{where[p][0] + NODE_W / 2:.0f}" y1="{where[p][1] + NODE_H:.0f}" x2="{where[n.key][0] + NODE_W / 2:.0f}" '
             f'y2="{where[n.key][1]:.0f}" stroke="#6b7280" stroke-width="1.5"/>'
             for n in nodes for p in n.parents if p in where]  # fmt: skip
    boxes = []
    for node in nodes:
        x, y = where[node.key]
        outline = ' stroke="#1d4ed8" stroke-width="3"' if node.selected else ' stroke="#9ca3af"'
        box = (f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{node.fill}"{outline}/>'
               f'<text x="{x + 8:.0f}" y="{y + 18:.0f}" font-size="13" font-weight="bold">{_text(node.title)}</text>'
               f'<text x="{x + 8:.0f}" y="{y + 36:.0f}" font-size="11">{_text(node.detail)}</text>')
        linked = f'<a href="{_text(node.href)}">{box}</a>' if node.href else box
        boxes.append(f'<g data-node="{_text(node.key)}">{linked}</g>')
    return (f'<svg class="{css}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{_text(label)}">{"".join(edges)}{"".join(boxes)}</svg>')


#: a box's colour by the status of what it shows
STATUS_FILLS = {"active": "#ecfdf5", "split": "#f3f4f6", "settled": "#eff6ff", "retired": "#eff6ff"}


def lineage_svg(records: Sequence[dict[str, Any]], selected: str) -> str:
    """The receivable tree as a graph: one box per record (id, amount, holder, status), a line from
    each record to the pieces it was split into; ``records`` root first in breadth-first order, as
    ``receivables.lineage`` returns them; ``selected`` is outlined."""
    depth: dict[str, int] = {}
    nodes = []
    for record in records:
        ident, parent, status = str(record.get("id")), record.get("parent"), str(record.get("status", ""))
        depth[ident] = depth[parent] + 1 if isinstance(parent, str) and parent in depth else 0
        nodes.append(GraphNode(ident, depth[ident], ident,
                               f"{_money(record.get('amount'), record.get('currency'))} · {record.get('holder', '')} · {status}",
                               (parent,) if isinstance(parent, str) else (), f"/apps/receivables?id={ident}",
                               STATUS_FILLS.get(status, "#fff7ed"), ident == selected))
    return graph_svg(nodes, "lineage", t("app.receivables.lineage"))


def trace_svg(trace: dict[str, Any], selected: str) -> str:
    """A green-certificate lot's line back to its device (``greencert.trace``): the device, the signed
    meter readings, the issued batch, then each lot down to ``selected``."""
    device, batch = trace.get("device") or {}, trace.get("batch") or {}
    readings = [r for r in trace.get("readings") or [] if isinstance(r, dict)]
    lots = [lot for lot in reversed(trace.get("lots") or []) if isinstance(lot, dict)]  # oldest first
    device_key, batch_key = f"device:{device.get('id', '')}", f"batch:{batch.get('id', '')}"
    nodes = [GraphNode(device_key, 0, str(device.get("id", "")),
                       f"{device.get('technology', '')} · {device.get('capacity_kw', '')} kW · {device.get('owner', '')}")]
    nodes += [GraphNode(f"reading:{r.get('id', '')}", 1, str(r.get("id", "")), f"{r.get('kwh', '')} kWh · {_moment(r.get('end_ms'))[:10]}",
                        (device_key,)) for r in readings]  # fmt: skip
    nodes.append(GraphNode(batch_key, 2, str(batch.get("id", "")), t("app.greencert.issued", count=batch.get("count", "?")),
                           tuple(f"reading:{r.get('id', '')}" for r in readings) or (device_key,)))
    parent = batch_key
    for row, lot in enumerate(lots, start=3):
        ident, status = str(lot.get("id", "")), str(lot.get("status", ""))
        nodes.append(GraphNode(f"lot:{ident}", row, ident, f"{lot.get('count', '')} · {lot.get('owner', '')} · {status}",
                               (parent,), f"/apps/greencert?lot={ident}", STATUS_FILLS.get(status, "#fff7ed"), ident == selected))
        parent = f"lot:{ident}"
    return graph_svg(nodes, "trace", t("app.greencert.trace"))


def render_greencert(org: str, chain_id: str, holdings: Sequence[dict[str, Any]], selected: str,
                     trace: dict[str, Any] | None) -> str:
    """The certificate lots ``org`` holds, and, for a selected lot, its trace back to the device."""
    headers = [t("app.greencert.lot"), t("app.greencert.count"), t("app.greencert.owner"), t("gov.status"),
               t("app.greencert.expires")]
    rows = [(f'<a href="/apps/greencert?lot={_text(lot.get("id", ""))}"><code>{_text(lot.get("id", ""))}</code></a>',
             _text(lot.get("count", "")), _text(lot.get("owner", "")), _text(lot.get("status", "")), _text(_moment(lot.get("expires_ms"))))
            for lot in holdings if isinstance(lot, dict)]  # fmt: skip
    form = (f'<form action="/apps/greencert" method="get"><label>{_text(t("app.greencert.lot"))} '
            f'<input name="lot" value="{_text(selected)}" size="40" required></label> <button>{_text(t("app.greencert.show"))}</button></form>')
    body = form + f"<h2>{_text(t('app.greencert.held', org=org))}</h2>" + (
        _table(headers, rows, "lots") if rows else f"<p>{_text(t('app.greencert.none'))}</p>")
    if trace is not None:
        body += (f"<h2>{_text(t('app.greencert.trace_of', lot=selected))}</h2>"
                 f'<figure class="graph">{trace_svg(trace, selected)}</figure>'
                 f'<p class="proof none">{_text(t("app.greencert.note"))}</p>')
    return page(t("app.greencert.title"), org, chain_id, body)


def _receivable_rows(records: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [(f'<a href="/apps/receivables?id={_text(r.get("id", ""))}"><code>{_text(r.get("id", ""))}</code></a>',
             _text(r.get("debtor", "")), _text(r.get("creditor", "")), _text(r.get("holder", "")),
             _text(_money(r.get("amount"), r.get("currency"))), _text(_moment(r.get("maturity_ms"))),
             _text(r.get("status", "")), _text((r.get("financing") or {}).get("bank", "") if isinstance(r.get("financing"), dict) else ""))
            for r in records if isinstance(r, dict)]  # fmt: skip


def render_receivables(org: str, chain_id: str, holdings: Sequence[dict[str, Any]], selected: str,
                       lineage: Sequence[dict[str, Any]] | None) -> str:
    """The receivables ``org`` holds, and, when one is selected, its lineage as a graph and a table."""
    headers = [t("app.receivables.id"), t("app.receivables.debtor"), t("app.receivables.creditor"),
               t("app.receivables.holder"), t("app.currency.amount"), t("app.receivables.maturity"),
               t("gov.status"), t("app.receivables.financed_by")]
    held = [r for r in holdings if isinstance(r, dict)]
    body = f"<h2>{_text(t('app.receivables.held', org=org))}</h2>" + (
        _table(headers, _receivable_rows(held), "holdings") if held else f"<p>{_text(t('app.receivables.none'))}</p>")
    form = (f'<form action="/apps/receivables" method="get"><label>{_text(t("app.receivables.id"))} '
            f'<input name="id" value="{_text(selected)}" required></label> <button>{_text(t("app.receivables.show"))}</button></form>')
    if lineage is not None:
        records = [r for r in lineage if isinstance(r, dict)]
        body += (f"<h2>{_text(t('app.receivables.lineage_of', id=selected))}</h2>"
                 f'<figure class="graph">{lineage_svg(records, selected)}</figure>'
                 + _table(headers, _receivable_rows(records), "lineage")
                 + f'<p class="proof none">{_text(t("app.receivables.note"))}</p>')
    return page(t("app.receivables.title"), org, chain_id, form + body)


def status_counts(record: dict[str, Any]) -> dict[int, int]:
    """How many entries of a status list hold each status (``lst`` as the contract stores it)."""
    lst, bits = record.get("lst"), record.get("bits")
    if not isinstance(lst, bytes) or bits not in (1, 2, 4, 8):
        return {}
    return dict(collections.Counter(status_at(lst, bits, i) for i in range(len(lst) * 8 // bits)))


def render_credentials(org: str, chain_id: str, iss: str, issuers_seen: Sequence[str] | None,
                       issuer: dict[str, Any] | None, batches: Sequence[dict[str, Any]],
                       lists: Sequence[dict[str, Any]]) -> str:
    """An issuer's batches and status lists (``issuer`` None: not registered, or none asked for)."""
    form = (f'<form action="/apps/credentials" method="get"><label>{_text(t("app.credentials.issuer"))} '
            f'<input name="iss" value="{_text(iss)}" size="40" required></label> '
            f'<button>{_text(t("app.credentials.show"))}</button></form>')
    if issuers_seen:
        links = "".join(f'<li><a href="/apps/credentials?iss={_text(quoted)}">{_text(quoted)}</a></li>' for quoted in issuers_seen)
        form += f"<h2>{_text(t('app.credentials.seen'))}</h2><ul class=\"issuers\">{links}</ul>"
    if issuer is None:
        return page(t("app.credentials.title"), org, chain_id,
                    form + (f'<p class="error">{_text(t("app.credentials.unknown", iss=iss))}</p>' if iss else ""))
    facts = '<dl class="facts">' + "".join(f"<dt>{_text(k)}</dt><dd>{v}</dd>" for k, v in (
        (t("app.credentials.issuer"), f"<code>{_text(issuer.get('iss', iss))}</code>"),
        (t("app.credentials.name"), _text(issuer.get("name", ""))),
        (t("col.organisation"), _text(issuer.get("org", ""))),
        (t("app.credentials.keys"), _text(", ".join(str(k) for k in issuer.get("kids", [])) or "—")),
        (t("app.credentials.batch_count"), _text(issuer.get("batches", 0))),
    )) + "</dl>"  # fmt: skip
    batch_rows = [(f"<code>{_text(b.get('batch_id', ''))}</code>", _text(b.get("kid", "")), _text(b.get("size", "")),
                   f"<code>{_text(_hex(b.get('root'))[:16])}…</code>", _text(b.get("org", "")),
                   f'<a href="/blocks/{_text(b.get("height", ""))}">{_text(b.get("height", ""))}</a>', _text(_moment(b.get("ms"))))
                  for b in batches]  # fmt: skip
    batch_headers = [t("app.credentials.batch"), t("app.credentials.key"), t("app.credentials.size"),
                     t("app.credentials.root"), t("col.organisation"), t("col.height"), t("col.time")]
    list_rows = []
    for record in lists:
        counts = status_counts(record)
        shown = ", ".join(f"{t(STATUS_KEYS[value]) if value in STATUS_KEYS else t('app.credentials.status.other', value=value)}"
                          f" {count}" for value, count in sorted(counts.items()))
        list_rows.append((f"<code>{_text(record.get('list_id', ''))}</code>", _text(record.get("size", "")),
                          _text(record.get("bits", "")), _text(record.get("version", "")),
                          f'<span data-list="{_text(record.get("list_id", ""))}" data-revoked="{counts.get(STATUS_INVALID, 0)}" '
                          f'data-suspended="{counts.get(STATUS_SUSPENDED, 0)}">{_text(shown)}</span>'))
    list_headers = [t("app.credentials.list"), t("app.credentials.size"), t("app.credentials.bits"),
                    t("app.credentials.version"), t("app.credentials.statuses")]
    body = (form + facts
            + f"<h2>{_text(t('app.credentials.batches', count=len(batches)))}</h2>"
            + (_table(batch_headers, batch_rows, "batches") if batch_rows else f"<p>{_text(t('app.credentials.no_batches'))}</p>")
            + f"<h2>{_text(t('app.credentials.lists'))}</h2>"
            + (_table(list_headers, list_rows, "status-lists") if list_rows else f"<p>{_text(t('app.credentials.no_lists'))}</p>")
            + f'<p class="proof none">{_text(t("app.credentials.note"))}</p>')
    return page(t("app.credentials.title"), org, chain_id, body)


def _hex(value: Any) -> str:
    return value.hex() if isinstance(value, bytes) else str(value or "")


def usage_by_entry(requests: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per catalogue entry: how many requests, and how many of them agreed, pending, refused."""
    usage: dict[str, dict[str, int]] = {}
    for request in requests:
        if not isinstance(request, dict):
            continue
        counts = usage.setdefault(str(request.get("entry_id", "")), {"requests": 0, "agreed": 0, "pending": 0, "refused": 0})
        counts["requests"] += 1
        column = USAGE_COLUMNS.get(str(request.get("status", "")))
        if column is not None:
            counts[column] += 1
    return usage


def render_catalogue(org: str, chain_id: str, entries: Sequence[dict[str, Any]], entries_total: int,
                     requests: Sequence[dict[str, Any]], requests_total: int) -> str:
    """The catalogue's entries with their usage (requests agreed, pending, refused), most requested first."""
    usage = usage_by_entry(requests)
    empty = {"requests": 0, "agreed": 0, "pending": 0, "refused": 0}
    listed = sorted((e for e in entries if isinstance(e, dict)),
                    key=lambda e: (-usage.get(str(e.get("id", "")), empty)["requests"], str(e.get("id", ""))))
    rows = []
    widest = max((u["requests"] for u in usage.values()), default=0) or 1
    for entry in listed:
        ident = str(entry.get("id", ""))
        counts = usage.get(ident, empty)
        rows.append((f"<code>{_text(ident)}</code>", _text(entry.get("title", "")), _text(entry.get("owner", "")),
                     _text(entry.get("sharing", "")), _text(entry.get("version", "")), _text(entry.get("status", "")),
                     f'<span data-usage="{_text(ident)}" data-requests="{counts["requests"]}" data-agreed="{counts["agreed"]}" '
                     f'data-pending="{counts["pending"]}" data-refused="{counts["refused"]}">'
                     f'{_text(t("app.catalogue.usage_value", **counts))}</span>', _bar(counts["requests"] / widest)))
    headers = [t("app.catalogue.entry"), t("app.catalogue.entry_title"), t("app.catalogue.provider"), t("app.catalogue.sharing"),
               t("app.catalogue.version"), t("gov.status"), t("app.catalogue.usage"), ""]
    body = (_table(headers, rows, "catalogue") if rows else f"<p>{_text(t('app.catalogue.none'))}</p>")
    note = t("app.catalogue.note", entries=len(listed), entries_total=entries_total, requests=len(requests),
             requests_total=requests_total)
    return page(t("app.catalogue.title"), org, chain_id, body + f'<p class="proof none">{_text(note)}</p>')

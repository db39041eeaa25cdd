"""Pages over the explorer's own index: transactions by contract or signer, events by name, the
identities seen signing. Pure: index rows in, HTML out (paged by the index's key cursors)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

from pilotchain.apps.explorer.index import Cursor
from pilotchain.apps.explorer.messages import t
from pilotchain.apps.explorer.pages import _block_link, _short, _table, _text, _time, page

__all__ = ["render_events", "render_identities", "render_txs"]


def _next(path: str, params: dict[str, str], rows: Sequence[dict[str, Any]], limit: int, seq: bool = False) -> str:
    if len(rows) < limit:
        return f'<p class="end">{_text(t("index.end"))}</p>'
    last = rows[-1]
    cursor = Cursor(last["height"], last["index"], last.get("seq", 0) if seq else 0)
    query = urllib.parse.urlencode({**params, "before": str(cursor)})
    return f'<p><a rel="next" href="{path}?{_text(query)}">{_text(t("index.older"))}</a></p>'


def _indexed(height: int, problem: str) -> str:
    note = f'<p class="proof none" data-indexed="{height}">{_text(t("index.note", height=height))}</p>'
    return note + (f'<p class="error">{_text(t("index.problem", problem=problem))}</p>' if problem else "")


def render_txs(org: str, chain_id: str, title: str, params: dict[str, str], rows: Sequence[dict[str, Any]], limit: int,
               indexed: int, problem: str) -> str:
    """A page of transactions, newest first, from the index."""
    redacted = f'<span class="redacted">{_text(t("block.redacted"))}</span>'
    table_rows = [
        (_block_link(r["height"]),
         redacted if r["redacted"] else f'<a href="/tx/{_text(r["tx_id"])}"><code>{_text(_short(r["tx_id"], 16))}</code></a>',
         f'<a href="/txs?contract={_text(urllib.parse.quote(r["contract"]))}">{_text(r["contract"])}</a>',
         redacted if r["redacted"] else _text(r["method"] or ""),
         "" if r["redacted"] else (f'<a href="/txs?signer={_text(r["signer_id"])}">{_text(r["signer_org"])}/{_text(r["signer_subject"])}</a>'
                                   if r["signer_id"] else ""),
         _text(r["status"]), _time(r["timestamp_ms"]))
        for r in rows
    ]  # fmt: skip
    headers = [t("col.block"), t("col.transaction"), t("col.contract"), t("col.method"), t("index.signer"), t("col.status"),
               t("col.time")]
    body = (_table(headers, table_rows, "indexed-txs") if rows else f"<p>{_text(t('index.none'))}</p>")
    return page(title, org, chain_id, body + _next("/txs", params, rows, limit) + _indexed(indexed, problem))


def render_events(org: str, chain_id: str, name: str, rows: Sequence[dict[str, Any]], limit: int, indexed: int,
                  problem: str) -> str:
    table_rows = [(_block_link(r["height"]), f'<a href="/tx/{_text(r["tx_id"])}"><code>{_text(_short(r["tx_id"], 16))}</code></a>',
                   _text(r["contract"]), _text(r["name"])) for r in rows]
    body = (_table([t("col.block"), t("col.transaction"), t("col.contract"), t("col.event")], table_rows, "indexed-events")
            if rows else f"<p>{_text(t('index.none'))}</p>")
    return page(t("index.events_title", name=name), org, chain_id,
                body + _next("/events", {"name": name}, rows, limit, seq=True) + _indexed(indexed, problem))


def identities_table(rows: Sequence[dict[str, Any]]) -> str:
    """The identities seen signing, each linked to its transactions."""
    table_rows = [(f'<a href="/txs?signer={_text(r["signer_id"])}">{_text(r["org"])}/{_text(r["subject"])}</a>',
                   str(r["serial"]), _text(r["roles"]), _time(r["not_after_ms"]), _block_link(r["first_height"]),
                   _block_link(r["last_height"]), str(r["tx_count"])) for r in rows]
    headers = [t("index.identity"), t("orgs.serial"), t("gov.roles"), t("orgs.valid_until"), t("index.first_seen"),
               t("index.last_seen"), t("col.transactions")]
    return _table(headers, table_rows, "seen-identities") if rows else f"<p>{_text(t('index.none'))}</p>"


def render_identities(org: str, chain_id: str, query: str, rows: Sequence[dict[str, Any]], indexed: int, problem: str) -> str:
    return page(t("index.identities_title", query=query), org, chain_id, identities_table(rows) + _indexed(indexed, problem))

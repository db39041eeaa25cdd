"""Usage statistics for the Big-Data Bureau, computed from the anchored receipts and checkable against them.

The bureau asks every department's vault for an evidence bundle of the catalogue receipts it
anchored in a range of days (``GET /v1/catalogue/usage``): signed receipts with their Merkle
paths to batch roots, whose anchoring transactions come with inclusion proofs, block headers,
commit certificates and the validator history (:mod:`pilotchain.sdk.evidence`). It checks each
bundle against the chain's genesis alone (:func:`pilotchain.ledger.evidence.verify_bundle`), then
each receipt's signature by the party it speaks for, and counts:

* a **call** when the provider's ``delivered`` and the consumer's ``received`` receipt match
  (:func:`~pilotchain.apps.catalogue.records.receipt_matches`) — its records and bytes too;
* a **rejection** for every provider's ``rejected`` receipt (a call outside its agreement);
* a **refusal** for every consumer's ``refused`` receipt (a delivery that did not verify);
* **unconfirmed** for a ``delivered`` receipt no matching ``received`` answers (yet).

per day (UTC, of the certified time the receipts name), provider department, service (the
catalogue entry) and consumer department. The bundles are the evidence: :func:`report_from_bundles`
on the saved bundles gives the same report anywhere, with no network (``pilotchain catalogue
usage verify``). Two vaults that both hide a call can hide it: the chain holds batch roots, not
the calls themselves.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from pilotchain.apps.catalogue.records import (
    RECEIPT_DOMAIN,
    CallReceipt,
    CatalogueError,
    ReceiptKind,
    day_of,
    receipt_matches,
)
from pilotchain.apps.exchange.records import ExchangeError, verify_signed
from pilotchain.codec import CodecError, decode
from pilotchain.crypto import get_suite
from pilotchain.ledger.evidence import EvidenceInvalid, verify_bundle
from pilotchain.ledger.genesis import Genesis
from pilotchain.sdk import Identity, SignedRequests

__all__ = ["UsageReport", "UsageRow", "collect_bundles", "report_from_bundles", "tally", "usage_chart_html"]

REPORT_FORMAT = "pilotchain-catalogue-usage/1"


@dataclass
class UsageRow:
    day: str
    provider: str
    service: str
    consumer: str
    calls: int = 0
    records: int = 0
    size_bytes: int = 0
    rejected: int = 0
    refused: int = 0
    unconfirmed: int = 0


@dataclass
class UsageReport:
    since: str
    until: str
    rows: list[UsageRow] = field(default_factory=list)
    #: receipts counted (distinct signed documents), per kind
    receipts: dict[str, int] = field(default_factory=dict)
    #: per organisation: its vault's bundle ("verified", "none") and receipts not anchored yet
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"format": REPORT_FORMAT, "since": self.since, "until": self.until,
                "rows": [asdict(row) for row in self.rows], "receipts": dict(sorted(self.receipts.items())),
                "sources": {org: self.sources[org] for org in sorted(self.sources)}}

    def totals_by(self, key: str) -> dict[str, dict[str, int]]:
        """Sums of calls, records, bytes and rejections per ``key`` (provider, consumer, service, day)."""
        totals: dict[str, dict[str, int]] = {}
        for row in self.rows:
            bucket = totals.setdefault(str(getattr(row, key)), {"calls": 0, "records": 0, "size_bytes": 0,
                                                                  "rejected": 0})
            for name in bucket:
                bucket[name] += int(getattr(row, name))
        return dict(sorted(totals.items()))


def collect_bundles(identity: Identity, vaults: Mapping[str, str], since: str, until: str, *,
                    transport: Callable[[str], httpx.BaseTransport | None] | None = None,
                    verify: Any = True, timeout_s: float = 300.0) -> dict[str, tuple[bytes | None, int]]:
    """Ask each vault (org -> URL) for its usage evidence of ``since``..``until`` (days,
    YYYY-MM-DD): org -> (bundle or None when it anchored none, receipts not anchored yet)."""
    out: dict[str, tuple[bytes | None, int]] = {}
    for org, url in sorted(vaults.items()):
        try:
            with httpx.Client(base_url=url.rstrip("/"), auth=SignedRequests(identity), timeout=timeout_s,
                              transport=transport(url) if transport else None, verify=verify) as http:
                response = http.get("/v1/catalogue/usage", params={"since": since, "until": until})
        except httpx.HTTPError as exc:
            raise CatalogueError("UNREACHABLE", f"cannot reach {org}'s vault at {url}: {exc}") from exc
        if response.status_code not in (200, 204):
            try:
                document = response.json()
                code, message = str(document.get("code")), str(document.get("message"))
            except ValueError:
                code, message = str(response.status_code), response.text[:200]
            raise CatalogueError(code, f"{org}'s vault refused the usage evidence: {message}")
        pending = int(response.headers.get("pilotchain-pending-receipts", "0"))
        out[org] = (response.content if response.status_code == 200 else None, pending)
    return out


def _receipts_of(org: str, bundle: bytes, genesis: Genesis) -> list[tuple[bytes, CallReceipt]]:
    evidence = verify_bundle(bundle, genesis)
    suite = get_suite(evidence.suite)
    anchors = {tx.tx_id: tx for tx in evidence.txs}
    found = []
    for index, attachment in enumerate(evidence.attachments):
        where = f"{org}: attachments[{index}]"
        anchor = anchors.get(attachment.tx_id)
        if anchor is None or (anchor.contract, anchor.method, anchor.status, anchor.signer_org) != \
                ("dataex", "anchor", "OK", org):
            raise EvidenceInvalid(where, f"not anchored by a dataex.anchor transaction of {org}")
        try:
            signed, certificate = verify_signed(suite, attachment.document, RECEIPT_DOMAIN)
            receipt = decode(signed.body, CallReceipt)
        except (ExchangeError, CodecError) as exc:
            raise EvidenceInvalid(where, f"not a signed call receipt: {exc}") from exc
        speaker = receipt.provider_org if receipt.kind in (ReceiptKind.DELIVERED, ReceiptKind.REJECTED) \
            else receipt.consumer_org
        if certificate.org_id != speaker:
            raise EvidenceInvalid(where, f"a {receipt.kind} receipt signed by {certificate.org_id}, not {speaker}")
        found.append((attachment.document, receipt))
    return found


def report_from_bundles(bundles: Mapping[str, tuple[bytes | None, int]], genesis: Genesis, since: str,
                        until: str) -> UsageReport:
    """The usage report of ``since``..``until`` from the vaults' bundles (org -> (bundle, pending)),
    every bundle verified against ``genesis`` (EvidenceInvalid says where and why otherwise)."""
    receipts: list[tuple[bytes, CallReceipt]] = []
    sources: dict[str, dict[str, Any]] = {}
    for org, (bundle, pending) in sorted(bundles.items()):
        sources[org] = {"bundle": "none" if bundle is None else "verified", "pending": pending}
        if bundle is not None:
            receipts.extend(_receipts_of(org, bundle, genesis))
    return tally(get_suite(genesis.suite).hash, receipts, since, until, sources)


def tally(hash_fn: Callable[[bytes], bytes], receipts: Iterable[tuple[bytes, CallReceipt]], since: str, until: str,
          sources: Mapping[str, dict[str, Any]] | None = None) -> UsageReport:
    """Count verified receipts (signed document, its receipt) of ``since``..``until`` per day,
    provider, service and consumer. The same document from two vaults counts once."""
    report = UsageReport(since=since, until=until, sources=dict(sources or {}))
    documents = {hash_fn(document): receipt for document, receipt in receipts}
    calls: dict[str, dict[str, list[tuple[bytes, CallReceipt]]]] = {}
    for digest, receipt in sorted(documents.items()):
        if not since <= day_of(receipt.at_ms) <= until:
            continue
        report.receipts[receipt.kind] = report.receipts.get(receipt.kind, 0) + 1
        calls.setdefault(receipt.call_id, {}).setdefault(receipt.kind, []).append((digest, receipt))
    rows: dict[tuple[str, str, str, str], UsageRow] = {}

    def row_of(receipt: CallReceipt) -> UsageRow:
        key = (day_of(receipt.at_ms), receipt.provider_org, receipt.entry_id or "-", receipt.consumer_org)
        return rows.setdefault(key, UsageRow(*key))

    for _, kinds in sorted(calls.items()):
        for _, rejected in kinds.get(ReceiptKind.REJECTED, []):
            row_of(rejected).rejected += 1
        for _, refused in kinds.get(ReceiptKind.REFUSED, []):
            row_of(refused).refused += 1
        for digest, delivered in kinds.get(ReceiptKind.DELIVERED, []):
            answer = next((r for _, r in kinds.get(ReceiptKind.RECEIVED, [])
                           if receipt_matches(delivered, r, digest)), None)
            row = row_of(delivered)
            if answer is None:
                if not kinds.get(ReceiptKind.REFUSED):
                    row.unconfirmed += 1
                continue
            row.calls += 1
            row.records += delivered.records
            row.size_bytes += delivered.size_bytes
    report.rows = [rows[key] for key in sorted(rows)]
    return report


# --------------------------------------------------------------------------- the chart


_PALETTE = ("#2f6db5", "#e0803a", "#3a9e5c", "#b5413a", "#7d5bb0", "#8c6d3f", "#c45d9e", "#6b7b8c")


def _bars(title: str, groups: list[str], series: list[str], values: dict[tuple[str, str], int], unit: str) -> str:
    """A stacked bar chart (one bar per group, one colour per series) as inline SVG."""
    width, height, left, bottom, top = 720, 300, 70, 70, 40
    plot_w, plot_h = width - left - 20, height - bottom - top
    totals = [sum(values.get((g, s), 0) for s in series) for g in groups]
    peak = max([*totals, 1])
    step = plot_w / max(len(groups), 1)
    bar = min(48.0, step * 0.7)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 24 * ((len(series) + 2) // 3)}"'
             f' role="img" aria-label="{html.escape(title)}">',
             f'<text x="{left}" y="22" font-size="15" font-weight="bold">{html.escape(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>']
    for tick in range(5):
        value = peak * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{value:,.0f}</text>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
    for index, group in enumerate(groups):
        x = left + step * index + (step - bar) / 2
        y = top + plot_h
        for colour, name in zip(_PALETTE * 8, series, strict=False):
            amount = values.get((group, name), 0)
            if amount:
                h = plot_h * amount / peak
                y -= h
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                             f'<title>{html.escape(group)} · {html.escape(name)}: {amount:,} {unit}</title></rect>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="middle">'
                     f'{html.escape(group)}</text>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" font-size="11" text-anchor="middle">'
                     f'{totals[index]:,}</text>')
    for index, (colour, name) in enumerate(zip(_PALETTE * 8, series, strict=False)):
        lx = left + (index % 3) * 220
        ly = height - 20 + 24 * (index // 3)
        parts.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{lx + 18}" y="{ly}" font-size="12">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def usage_chart_html(report: UsageReport) -> str:
    """One self-contained HTML page (inline SVG, no script): calls per day by service, records per
    department as provider and as consumer, and the table the figures come from."""
    days = sorted({row.day for row in report.rows})
    services = sorted({row.service for row in report.rows})
    calls = {(row.day, row.service): 0 for row in report.rows}
    for row in report.rows:
        calls[(row.day, row.service)] += row.calls
    departments = sorted({row.provider for row in report.rows} | {row.consumer for row in report.rows})
    records: dict[tuple[str, str], int] = {}
    for row in report.rows:
        records[(row.provider, "provided")] = records.get((row.provider, "provided"), 0) + row.records
        records[(row.consumer, "received")] = records.get((row.consumer, "received"), 0) + row.records
    head = ("day", "provider", "service", "consumer", "calls", "records", "bytes", "rejected", "refused", "unconfirmed")
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(value))}</td>" for value in (
            row.day, row.provider, row.service, row.consumer, f"{row.calls:,}", f"{row.records:,}",
            f"{row.size_bytes:,}", row.rejected, row.refused, row.unconfirmed)) + "</tr>" for row in report.rows)
    sources = ", ".join(f"{org}: {info['bundle']}, {info['pending']} pending" for org, info in report.sources.items())
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Directory usage {html.escape(report.since)} – {html.escape(report.until)}</title>"
        "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:nth-child(-n+4){text-align:left}"
        "</style></head><body>"
        f"<h1>Directory chain usage, {html.escape(report.since)} to {html.escape(report.until)}</h1>"
        "<p>Computed from the signed call receipts the departments' vaults anchored on chain; a call counts "
        "when the provider's and the consumer's receipts match. Check it: "
        "<code>pilotchain catalogue usage verify DIR --genesis genesis.json</code>.</p>"
        + _bars("Calls per day, by service", days, services, calls, "calls")
        + _bars("Records per department", departments, ["provided", "received"], records, "records")
        + "<h2>By day, provider, service and consumer</h2><table><tr>"
        + "".join(f"<th>{name}</th>" for name in head) + "</tr>" + table + "</table>"
        + f"<p>Sources: {html.escape(sources)}. Receipts: {html.escape(json.dumps(report.receipts))}.</p>"
        + "</body></html>\n")


def rows_of(document: Mapping[str, Any]) -> Iterable[UsageRow]:
    """The rows of a saved report (usage.json)."""
    return (UsageRow(**row) for row in document["rows"])

"""A self-contained HTML page with inline SVG charts of a network benchmark's timeline.

No dependency and no script: two panels over the run's seconds — throughput (sent and committed
transactions per second) and latency (p50 and p95 of the transactions committed in each second) —
with the load phases shaded and named. ``write_html(document, path)`` writes the page.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["render_html", "timeline_panels", "write_html"]

WIDTH = 960
PANEL_HEIGHT = 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 20, 28, 36
COLORS = {"sent": "#8a8a8a", "committed": "#1f77b4", "p50_ms": "#2ca02c", "p95_ms": "#d62728",
          "cpu_total": "#9467bd", "rss_mb_total": "#8c564b"}
PHASE_FILLS = ("#f2f2f2", "#e6eef7")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = float(10 ** (len(str(int(value))) - 1))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _panel(rows: Sequence[dict[str, Any]], series: Sequence[tuple[str, str]], title: str, unit: str,
           phases: Sequence[dict[str, Any]]) -> str:
    t_max = max((row["t"] for row in rows), default=1) or 1
    values = [row[key] for row in rows for key, _ in series if row.get(key) is not None]
    y_max = _nice_max(max(values, default=1.0))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = PANEL_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def x(t: float) -> float:
        return MARGIN_LEFT + plot_w * t / t_max

    def y(v: float) -> float:
        return MARGIN_TOP + plot_h * (1 - v / y_max)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{PANEL_HEIGHT}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{MARGIN_LEFT}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for index, phase in enumerate(phases):
        x0, x1 = x(phase["start_s"]), x(max(phase["end_s"], phase["start_s"] + 0.5))
        parts.append(f'<rect x="{x0:.1f}" y="{MARGIN_TOP}" width="{max(1.0, x1 - x0):.1f}" height="{plot_h}" '
                     f'fill="{PHASE_FILLS[index % 2]}"><title>{html.escape(phase["name"])}</title></rect>')
        parts.append(f'<text x="{x0 + 2:.1f}" y="{MARGIN_TOP + 10 + 11 * (index % 3)}" fill="#666" font-size="9">'
                     f'{html.escape(phase["name"])}</text>')
    for tick in range(5):
        value = y_max * tick / 4
        parts.append(f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="#ddd"/>')
        parts.append(f'<text x="{MARGIN_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:,.0f}</text>')
    step = max(1, int(t_max / 10))
    for t in range(0, int(t_max) + 1, step):
        parts.append(f'<text x="{x(t):.1f}" y="{PANEL_HEIGHT - 18}" text-anchor="middle">{t}</text>')
    parts.append(f'<text x="{WIDTH / 2}" y="{PANEL_HEIGHT - 4}" text-anchor="middle">seconds since start</text>')
    parts.append(f'<text x="14" y="{MARGIN_TOP + plot_h / 2}" transform="rotate(-90 14 {MARGIN_TOP + plot_h / 2})" '
                 f'text-anchor="middle">{html.escape(unit)}</text>')
    for number, (key, label) in enumerate(series):
        points = " ".join(f"{x(row['t']):.1f},{y(row[key]):.1f}" for row in rows if row.get(key) is not None)
        color = COLORS.get(key, "#000")
        if points:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{points}"/>')
        legend_x = WIDTH - MARGIN_RIGHT - 160 * (len(series) - number)
        parts.append(f'<rect x="{legend_x}" y="6" width="12" height="4" fill="{color}"/>'
                     f'<text x="{legend_x + 16}" y="12">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def timeline_panels(document: dict[str, Any]) -> list[str]:
    """The four SVG panels of a network benchmark's timeline (throughput, latency, node CPU and
    memory), each a self-contained ``<svg>`` element (the page below; ``pilotchain bench report``)."""
    rows = document.get("timeline", [])
    phases = document.get("phases", [])
    return [
        _panel(rows, [("sent", "sent tx/s"), ("committed", "committed tx/s")], "Throughput", "tx/s", phases),
        _panel(rows, [("p50_ms", "latency p50"), ("p95_ms", "latency p95")],
               "Latency of the transactions committed in each second (submit → commit event)", "ms", phases),
        _panel(rows, [("cpu_total", "CPU % (all nodes)")], "Node CPU (sum over nodes, 100 = one core)", "%", phases),
        _panel(rows, [("rss_mb_total", "RSS MiB (all nodes)")], "Node memory (sum of RSS)", "MiB", phases),
    ]


def render_html(document: dict[str, Any], title: str) -> str:
    summary = document.get("summary", {})
    latency = summary.get("latency_ms", {})
    facts = [
        ("mode", summary.get("mode")), ("committed tx/s", summary.get("committed_tps")),
        ("received tx/s", summary.get("received_tps")), ("success", summary.get("success_rate")),
        ("latency p50 / p95 / p99 ms", f"{latency.get('p50')} / {latency.get('p95')} / {latency.get('p99')}"),
        ("efficiency", summary.get("efficiency")),
    ]
    facts_html = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    panels = timeline_panels(document)
    return (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:20px}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}</style></head><body>"
        f"<h2>{html.escape(title)}</h2><table>{facts_html}</table>\n"
        + "\n".join(f"<div>{panel}</div>" for panel in panels)
        + "\n</body></html>\n"
    )


def write_html(document: dict[str, Any], path: Path, title: str) -> Path:
    path.write_text(render_html(document, title))
    return path

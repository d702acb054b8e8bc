"""HTML building blocks of the report: figures, tables and the page around the sections.

Everything here turns values into HTML text (escaped); what goes into which section is
decided by :mod:`lfadskit.report`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from lfadskit import plot
from lfadskit.plot.common import label_text

__all__ = [
    "figure_html",
    "format_value",
    "metrics_html",
    "page_html",
    "params_html",
    "ranked_table",
    "table_html",
    "try_figure",
]

# Metric key -> (meaning, better direction), in table order.
_METRICS = {
    "co_bps": ("co-smoothing, held-out neurons (bits/spike)", "higher"),
    "fp_bps": ("forward prediction (bits/spike)", "higher"),
    "vel_r2": ("velocity decoding R²", "higher"),
    "psth_r2": ("PSTH R²", "higher"),
    "rate_r2": ("R² of rates against ground truth", "higher"),
    "bps": ("all recon targets (bits/spike)", "higher"),
    "nll": ("Poisson NLL per element", "lower"),
}
_FIGURE_RUN = re.compile(r"((?:<figure>.*?</figure>)+)")

_CSS = """
body{margin:0;background:#f3f4f6;color:#111827;
 font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1160px;margin:0 auto;padding:24px 28px 48px}
header{background:#1e3a8a;color:#fff;padding:22px 28px}
header .inner{max-width:1160px;margin:0 auto}
header h1{margin:0 0 6px;font-size:22px;font-weight:600}
header p{margin:2px 0;color:#dbeafe}
header code{color:#fff}
nav{margin-top:12px}
nav a{color:#fff;margin-right:14px;font-size:13px;text-decoration:none;
 border-bottom:1px solid #93c5fd}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;
 padding:16px 22px;margin:18px 0}
h2{font-size:17px;margin:0 0 10px;color:#1e3a8a}
h3{font-size:14px;margin:14px 0 6px}
.figs{display:flex;flex-wrap:wrap;gap:6px 28px;align-items:flex-start}
figure{margin:10px 0 4px;min-width:0;max-width:100%}
figure img{max-width:100%;height:auto;display:block}
figcaption{color:#4b5563;font-size:12.5px;margin-top:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 12px;text-align:left}
th{background:#f9fafb;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.notes{background:#fffbeb;border-color:#fcd34d}
.notes li{margin:2px 0}
details summary{cursor:pointer;color:#1e3a8a;font-weight:600}
.muted{color:#6b7280}
"""


def figure_html(fig, caption: str) -> str:
    """A ``<figure>`` holding ``fig`` as an embedded base64 PNG, with its escaped caption."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    text = html.escape(caption)
    return (
        f'<figure><img alt="{text}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{text}</figcaption></figure>"
    )


def try_figure(notes: list[str], caption: str, func, *args, **kwargs) -> str:
    """A figure's HTML, or an empty string and a note when its inputs cannot be drawn."""
    try:
        return figure_html(func(*args, **kwargs), caption)
    except (ValueError, KeyError, IndexError) as err:
        notes.append(f"Could not draw '{caption}': {err}")
        return ""


def format_value(value: Any) -> str:
    """A table cell as text: 4 decimals (4 digits if tiny), "—" for missing or non-finite."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, (int, float, np.number)):
        value = float(value)
        if not np.isfinite(value):
            return "—"
        return f"{value:.4g}" if (value != 0 and abs(value) < 1e-3) else f"{value:.4f}"
    return html.escape(str(value))


def table_html(header: list[str], rows: list[list[Any]]) -> str:
    """An HTML table; numeric cells are right-aligned."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            numeric = isinstance(cell, (int, float, np.number)) and not isinstance(cell, bool)
            cls = ' class="num"' if numeric or cell is None else ""
            cells.append(f"<td{cls}>{format_value(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def metrics_html(metrics: Mapping[str, Any]) -> str:
    """The metrics table: one row per metric, one column per split, with its meaning."""
    splits = [s for s in ("train", "valid") if isinstance(metrics.get(s), Mapping)]
    keys = [k for k in _METRICS if any(k in metrics[s] for s in splits)]
    keys += sorted({k for s in splits for k in metrics[s]} - set(keys))
    rows = []
    for key in keys:
        meaning, better = _METRICS.get(key, ("", ""))
        arrow = {"higher": " (higher is better)", "lower": " (lower is better)"}.get(better, "")
        rows.append([key, *(metrics[s].get(key) for s in splits), meaning + arrow])
    return table_html(["metric", *splits, "meaning"], rows)


def params_html(params: Mapping[str, Any]) -> str:
    """The run's parameters as a collapsed table."""
    rows = [
        [k, json.dumps(v) if isinstance(v, (list, dict)) else str(v)] for k, v in params.items()
    ]
    return (
        f"<details><summary>Configuration ({len(rows)} parameters)</summary>"
        f"{table_html(['parameter', 'value'], rows)}</details>"
    )


def ranked_table(table, rows: np.ndarray, metric: str, columns: list[str], limit=10) -> str:
    """Rows sorted best first by ``metric`` (NaN last), at most ``limit`` of them."""
    values = table[metric][rows]
    lower = plot.is_lower_better(metric)
    key = np.where(np.isfinite(values), values if lower else -values, np.inf)
    order = rows[np.argsort(key, kind="stable")][:limit]
    cells = [
        [
            label_text(table[c][i]) if c in ("member", "rank", "config") else table[c][i]
            for c in columns
        ]
        for i in order
    ]
    return table_html(columns, cells)


def page_html(
    run_dir: Path,
    config: Mapping[str, Any],
    is_search: bool,
    sections: Mapping[str, str],
    notes: list[str],
    titles: Mapping[str, str],
) -> str:
    """The whole page: header, configuration, notes, then each non-empty section in order.

    ``sections`` maps a section id to its HTML and ``titles`` every section id to its title,
    in page order.
    """
    info = config.get("data") or {}
    kind = "search" if is_search else "fit"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"lfadskit report: {run_dir.resolve().name}"
    shown = [key for key in titles if sections.get(key)]
    nav = "".join(f'<a href="#{key}">{titles[key]}</a>' for key in shown)
    header = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Model <code>{html.escape(str(config.get('model', 'unknown')))}</code>, "
        f"{kind} run &middot; written {stamp}</p>",
    ]
    if info.get("summary"):
        header.append(f"<p>Data: {html.escape(str(info['summary']))}</p>")
    if info.get("source"):
        layout = f" ({html.escape(str(info['layout']))} layout)" if info.get("layout") else ""
        header.append(f"<p>Source: <code>{html.escape(str(info['source']))}</code>{layout}</p>")
    header.append(f"<nav>{nav}</nav>")
    body = []
    if config.get("params"):
        body.append(f"<section id='config'>{params_html(config['params'])}</section>")
    if notes:
        items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
        body.append(f"<section class='notes'><h2>Notes</h2><ul>{items}</ul></section>")
    for key in shown:
        # Consecutive figures flow side by side when they fit.
        content = _FIGURE_RUN.sub(r"<div class='figs'>\1</div>", sections[key])
        body.append(f"<section id='{key}'><h2>{titles[key]}</h2>{content}</section>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><div class='inner'>{''.join(header)}</div></header>"
        f"<main>{''.join(body)}</main></body></html>\n"
    )

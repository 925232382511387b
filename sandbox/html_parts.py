"""The small HTML parts report.html is built from: its inline style sheet, escaped cells, tables, figures.

Every value that reaches the page goes through :func:`cell` (or is escaped by the caller), so text
from a spec, a policy or a site (a title, a reason) can never become markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:70rem;color:#1d1d1f;
line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:2px solid #dfe3e8;padding-bottom:.2rem;
margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #dfe3e8;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f4f6f8}
code{font-size:.85rem;word-break:break-all}.ok{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.muted{color:#57606a}figure.plot{margin:1rem 0}figure.plot svg{width:100%;max-width:48rem;height:auto;display:block}
.state{display:inline-block;padding:.1rem .5rem;border-radius:.3rem;background:#eef;font-weight:600}
"""


def cell(value: Any) -> str:
    if value is None:
        return '<span class="muted">n/a</span>'
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return html.escape(", ".join(map(str, value)))
    return html.escape(str(value))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, raw: bool = False) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pairs(items: Mapping[str, Any]) -> str:
    return table(("item", "value"), [(k, v) for k, v in items.items()])


def figure(name: str, svg: str, caption: str) -> str:
    return f'<figure class="plot" id="plot-{name}" data-plot="{name}">{svg}<figcaption>{html.escape(caption)}</figcaption></figure>'

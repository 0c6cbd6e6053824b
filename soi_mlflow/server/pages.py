"""The soi pages' HTML: plain, script-free pages; every value from a run is escaped.

Texts, labels, member and run names come from users' data sets and runs: they are data,
never markup, so each one goes through ``html.escape`` (attributes too) on its way in.
Links between soi pages are relative (``datamap?run_id=...``), so the pages work under
``mlflow server --static-prefix`` as well.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

import pandas as pd

EXAMPLE_ROWS = 100  # examples listed on a run's page; the CSV has them all

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #d0d7de;padding:3px 8px}
th{background:#f6f8fa;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.t{max-width:520px;overflow-wrap:anywhere}.muted{color:#656d76}nav a{margin-right:14px}
"""


def link(route: str, **params: Any) -> str:
    """A relative link to another soi page, query values encoded, ready for an attribute."""
    clean = {k: v for k, v in params.items() if v is not None}
    return escape(f"{route}?{urlencode(clean)}" if clean else route, quote=True)


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "<td></td>"
    if isinstance(value, float):
        return f"<td class=n>{value:.3f}</td>"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<td class=n>{value}</td>"
    return f"<td class=t>{escape(str(value))}</td>"


def table_html(frame: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame as an HTML table, every header and value escaped."""
    heads = ([str(frame.index.name or "")] if index else []) + [str(c) for c in frame.columns]
    rows = []
    for key, row in frame.iterrows():
        cells = [f"<th>{escape(str(key))}</th>"] if index else []
        cells += [cell(v.item() if hasattr(v, "item") else v) for v in row.tolist()]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def mlflow_run_link(run: Any) -> str:
    """The run's page in the MLflow UI (model-training view), relative to ``/soi/``."""
    target = (
        f"../#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        "?workflowType=machine_learning"
    )
    return f'<a href="{escape(target, quote=True)}">open the run in MLflow</a>'


def run_page(
    run: Any, split: str, table: pd.DataFrame, siblings: list[Any], splits: list[str]
) -> str:
    """A run's SOI page: counts per member and subset, the most variable examples, links
    to the data map, the CSV and the transitions to the run's siblings."""
    run_id = run.info.run_id
    name = run.info.run_name or run_id
    counts = pd.crosstab(table["member"].astype(str), table["soi"].astype(str), margins=True)
    counts.index.name = "member"
    nav = " ".join(
        f'<a href="{link("run", run_id=run_id, split=s)}">{escape(s)}</a>'
        if s != split
        else f"<b>{escape(s)}</b>"
        for s in splits
    )
    shown = table.sort_values(["variability", "example_id"], ascending=[False, True])
    cols = [
        c
        for c in (
            "example_id",
            "member",
            "soi",
            "confidence",
            "variability",
            "correctness",
            "forgetting_events",
            "label_name",
            "planted",
            "text",
            "text_pair",
        )
        if c in shown
    ]
    sib_rows = "".join(
        f"<li>{escape(s.info.run_name or s.info.run_id)}: "
        f'<a href="{link("transitions", run_a=run_id, run_b=s.info.run_id, split=split)}">'
        "transitions from this run</a></li>"
        for s in siblings
    )
    body = (
        f"<p class=muted>run {escape(name)} ({escape(run_id)}), split {escape(split)}, "
        f"{table.attrs.get('epochs', '?')} epochs, {len(table)} examples. "
        f"{mlflow_run_link(run)}</p>"
        f"<nav>splits: {nav}</nav>"
        f'<nav><a href="{link("datamap", run_id=run_id, split=split)}">interactive data map</a>'
        f'<a href="{link("table.csv", run_id=run_id, split=split)}">SOI table (CSV)</a></nav>'
        "<h2>Examples per member and subset</h2>"
        f"{table_html(counts)}"
        f"<h2>The {min(EXAMPLE_ROWS, len(shown))} most variable examples</h2>"
        f"{table_html(shown[cols].head(EXAMPLE_ROWS), index=False)}"
    )
    if sib_rows:
        body += f"<h2>Other runs of the same study</h2><ul>{sib_rows}</ul>"
    return page(f"Subsets of interest: {name}", body)


def transitions_page(run_a: Any, run_b: Any, split: str, counts: pd.DataFrame) -> str:
    """The transition counts from run A to run B (rows: SOI in A), with coverage."""
    cov = counts.attrs.get("coverage", {})
    a = run_a.info.run_name or run_a.info.run_id
    b = run_b.info.run_name or run_b.info.run_id
    pair = {"run_a": run_a.info.run_id, "run_b": run_b.info.run_id, "split": split}
    frac = counts.astype(float).div(counts.sum(axis=1).replace(0, float("nan")), axis=0)
    body = (
        f"<p class=muted>split {escape(split)}; {cov.get('matched', 0)} examples in both runs, "
        f"{cov.get('only_a', 0)} only in A, {cov.get('only_b', 0)} only in B.</p>"
        f'<nav><a href="{link("run", run_id=run_a.info.run_id, split=split)}">A: '
        f"{escape(a)}</a>"
        f'<a href="{link("run", run_id=run_b.info.run_id, split=split)}">B: {escape(b)}</a>'
        f'<a href="{link("heatmap", **pair)}">'
        "interactive heatmap</a></nav>"
        "<h2>Counts (rows: SOI in A, columns: SOI in B)</h2>"
        f"{table_html(counts)}<h2>Row fractions</h2>{table_html(frac.fillna(0.0))}"
    )
    return page(f"SOI transitions: {a} to {b}", body)


def error_page(status: int, message: str) -> str:
    return page(f"soi-mlflow: {status}", f"<p>{escape(message)}</p>")

"""Interactive pages as single self-contained HTML strings: data maps and transitions.

Pure functions of the SOI tables (and the run's example table): no MLflow, no network, so
the same page is logged as an artifact (the MLflow viewer shows it in a sandboxed iframe
from a blob URL) and served by the soi server app.

Why no plotting library: a page is a few kB of our own SVG + JavaScript
(``html_assets/``) and the data, which keeps a 10,000-point map around 2 MB where an
inline plotly bundle alone adds ~3.5 MB per file, and it has nothing to go stale: plain
SVG and DOM calls render the same in any browser of the last decade.

Texts, labels and member names are data from users' data sets. They reach the page only
as JSON inside ``<script type="application/json">`` (with ``<``, ``>``, ``&`` and
U+2028/2029 escaped, so no text can close the element) and the scripts show them with
``textContent``, never as markup. A Content-Security-Policy allows only our own scripts
(by hash) and no network at all, so even a mistake here could not load or run anything
else.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from soi_mlflow.analysis.cartography import DEFAULT_THRESHOLDS, RegionThresholds, regions
from soi_mlflow.analysis.soi import UNASSIGNED

MAX_POINTS = 10_000
MAX_TEXT = 400
MAX_LISTED = 200
EXAMPLE_COLUMNS = ("text", "text_pair", "label", "label_name", "planted")
_SCRIPT_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: nothing in it can end the element
    or break a JavaScript parser (``<``, ``>``, ``&``, U+2028/2029 escaped), NaN -> null."""
    text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return "".join(_SCRIPT_ESCAPES.get(ch, ch) for ch in text)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


@cache
def _asset(name: str) -> str:
    return resources.files("soi_mlflow.analysis").joinpath("html_assets", name).read_text("utf-8")


def _page(title: str, data: dict[str, Any], script: str) -> str:
    """One HTML document: the CSS, the data as inert JSON, and our script, allowed by hash."""
    code = _asset("common.js") + "\n" + _asset(script)
    digest = base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii")
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{digest}'"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>{html.escape(title)}</title><style>{_asset('page.css')}</style></head>"
        f'<body><h1>{html.escape(title)}</h1><div id="soi-root"></div>'
        f'<script type="application/json" id="soi-data">{script_json(data)}</script>'
        f"<script>{code}</script></body></html>\n"
    )


def _codes(values: pd.Series, order: list[str] | None = None) -> tuple[list[str], list[int]]:
    """Category names and one code per row (-1 for missing), for compact columnar JSON."""
    strings = values.astype("string")
    names = order if order is not None else sorted(strings.dropna().unique().tolist())
    cat = pd.Categorical(strings, categories=names)
    return list(names), cat.codes.astype(int).tolist()


def _texts(values: pd.Series, limit: int) -> list[str | None]:
    def cut(v: Any) -> str | None:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return None
        s = str(v)
        return s if len(s) <= limit else s[:limit] + f"… [{len(s) - limit} more characters]"

    return [cut(v) for v in values]


def with_examples(table: pd.DataFrame, examples: pd.DataFrame | None) -> pd.DataFrame:
    """The SOI table with the example table's text, pair, label and planted-kind columns
    (matched by ``example_id``; columns the table already has are kept)."""
    if examples is None:
        return table
    extra = [c for c in EXAMPLE_COLUMNS if c in examples.columns and c not in table.columns]
    if not extra:
        return table
    right = examples[["example_id", *extra]].drop_duplicates("example_id")
    merged = table.merge(right, on="example_id", how="left")
    merged.attrs = dict(table.attrs)
    return merged


def _example_columns(frame: pd.DataFrame, max_text: int) -> dict[str, Any]:
    """Ids (as strings: int64 ids exceed JavaScript's exact integers), members, gold
    labels, texts and planted kinds, columnar."""
    cols: dict[str, Any] = {"id": frame["example_id"].astype("int64").astype(str).tolist()}
    cats: dict[str, list[str]] = {}
    cats["member"], cols["member"] = _codes(frame["member"])
    if "label_name" in frame.columns or "label" in frame.columns:
        label = frame["label_name"] if "label_name" in frame.columns else frame["label"]
        if "label_name" in frame.columns and "label" in frame.columns:
            label = label.astype("string") + " (" + frame["label"].astype("string") + ")"
        cats["label"], cols["label"] = _codes(label)
    if "planted" in frame.columns:
        cats["planted"], cols["planted"] = _codes(frame["planted"])
    for name in ("text", "text_pair"):
        if name in frame.columns:
            cols[name] = _texts(frame[name], max_text)
    return {"cols": cols, "cats": cats}


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    return frame.sample(max_rows, random_state=seed).sort_index()


def data_map_html(
    table: pd.DataFrame,
    *,
    title: str,
    examples: pd.DataFrame | None = None,
    thresholds: RegionThresholds = DEFAULT_THRESHOLDS,
    max_points: int = MAX_POINTS,
    max_text: int = MAX_TEXT,
    seed: int = 0,
) -> str:
    """An interactive data map: variability (x) against confidence (y), one SVG point per
    example, coloured by SOI or by cartography region, filterable by member and subset;
    hovering a point shows its id, member, gold label, text (and pair), SOI, region and
    planted kind. ``table`` is :func:`soi_table` output (``region`` is computed when
    missing); ``examples`` the run's example table. Above ``max_points`` examples a
    uniform random sample is drawn (``seed``) and the page says so; legend counts are
    always of every example."""
    full = with_examples(table, examples)
    if "region" not in full.columns:
        full = full.assign(region=regions(full, thresholds))
    shown = _sample(full, max_points, seed)
    soi_names = (
        [str(c) for c in full["soi"].cat.categories]
        if isinstance(full["soi"].dtype, pd.CategoricalDtype)
        else sorted(full["soi"].astype(str).unique())
    )
    region_names = [r or "unassigned" for r in ("easy_to_learn", "ambiguous", "hard_to_learn", "")]
    region_col = full["region"].astype(str).replace("", "unassigned")
    data = _example_columns(shown, max_text)
    cats, cols = data["cats"], data["cols"]
    cats["soi"], cols["soi"] = _codes(shown["soi"], soi_names)
    cats["region"], cols["region"] = _codes(region_col.loc[shown.index], region_names)
    for name, source in (("x", "variability"), ("y", "confidence"), ("correctness", "correctness")):
        cols[name] = np.round(shown[source].to_numpy(dtype=float), 4).tolist()
    if "forgetting_events" in shown.columns:
        cols["forgetting"] = shown["forgetting_events"].astype(int).tolist()
    counts = {
        "soi": full["soi"].astype(str).value_counts().to_dict(),
        "region": region_col.value_counts().to_dict(),
        "member": full["member"].astype(str).value_counts().to_dict(),
    }
    epochs = table.attrs.get("epochs")
    data |= {
        "kind": "data_map",
        "total": int(len(full)),
        "shown": int(len(shown)),
        "seed": seed,
        "epochs": int(epochs) if epochs else None,
        "counts": counts,
        "thresholds": thresholds.as_dict(),
        "max_text": max_text,
    }
    return _page(title, data, "datamap.js")


def transitions_html(
    table_a: pd.DataFrame,
    table_b: pd.DataFrame,
    *,
    title: str,
    label_a: str = "A",
    label_b: str = "B",
    examples: pd.DataFrame | None = None,
    subsets: list[str] | None = None,
    note: str = "",
    max_listed: int = MAX_LISTED,
    max_text: int = MAX_TEXT,
    seed: int = 0,
) -> str:
    """An interactive transition heatmap: examples matched by ``example_id`` between two
    SOI tables (rows: SOI in ``label_a``, columns: SOI in ``label_b``), as counts or
    row fractions; clicking a cell lists its examples (at most ``max_listed`` per cell,
    a random sample beyond that, said on the page). ``subsets`` fixes the row/column
    order (default: the SOI categories of ``table_a``); ``note`` says how seeds were
    aggregated or anything else the reader should know."""
    keep = ["example_id", "member", "soi"]
    merged = table_a[keep + [c for c in ("confidence",) if c in table_a.columns]].merge(
        table_b[["example_id", "soi"] + [c for c in ("confidence",) if c in table_b.columns]],
        on="example_id",
        suffixes=("_a", "_b"),
    )
    merged = with_examples(merged, examples)
    if subsets is None:
        soi = table_a["soi"]
        subsets = (
            [str(c) for c in soi.cat.categories]
            if isinstance(soi.dtype, pd.CategoricalDtype)
            else sorted(set(soi.astype(str)) | set(table_b["soi"].astype(str)))
        )
    extra = sorted(
        (set(merged["soi_a"].astype(str)) | set(merged["soi_b"].astype(str))) - set(subsets)
    )
    subsets = [*subsets, *extra]
    present = set(merged["soi_a"].astype(str)) | set(merged["soi_b"].astype(str))
    subsets = [s for s in subsets if s != UNASSIGNED or s in present]
    a_codes = pd.Categorical(merged["soi_a"].astype(str), categories=subsets).codes
    b_codes = pd.Categorical(merged["soi_b"].astype(str), categories=subsets).codes
    k = len(subsets)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (a_codes, b_codes), 1)
    merged = merged.assign(_cell=a_codes * k + b_codes)
    listed = pd.concat(
        [_sample(part, max_listed, seed) for _, part in merged.groupby("_cell", sort=True)]
        if len(merged)
        else [merged]
    )
    data = _example_columns(listed, max_text)
    data["cols"]["cell"] = listed["_cell"].astype(int).tolist()
    for side in ("a", "b"):
        if f"confidence_{side}" in listed.columns:
            data["cols"][f"confidence_{side}"] = np.round(
                listed[f"confidence_{side}"].to_numpy(dtype=float), 4
            ).tolist()
    data |= {
        "kind": "transitions",
        "subsets": subsets,
        "label_a": label_a,
        "label_b": label_b,
        "counts": counts.tolist(),
        "matched": int(len(merged)),
        "only_a": int(len(table_a) - len(merged)),
        "only_b": int(len(table_b) - len(merged)),
        "max_listed": max_listed,
        "note": note,
        "seed": seed,
    }
    return _page(title, data, "transitions.js")

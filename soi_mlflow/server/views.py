"""The soi routes: read-only GET pages on the tracking server's own Flask app.

Routes (under ``/soi``, after any ``--static-prefix``), run ids as query parameters so an
authorization layer can find them (``soi_mlflow.server.auth``):

- ``run?run_id=R&split=S``: the run's SOI page
- ``datamap?run_id=R&split=S``: the interactive data map
- ``table.csv?run_id=R&split=S``: the per-example SOI table
- ``transitions?run_a=A&run_b=B&split=S``: transition counts from A to B
- ``heatmap?run_a=A&run_b=B&split=S``: the interactive transition heatmap

Every response carries a Content-Security-Policy: pages without scripts allow none; the
data map and the heatmap are served as sandboxed documents (``sandbox allow-scripts``, an
opaque origin with no network), so even a script that slipped in could not act on the
tracking server with the viewer's credentials.
"""

from __future__ import annotations

import io
import threading

import pandas as pd
from flask import Blueprint, Response, request

from soi_mlflow.analysis.html import data_map_html, transitions_html
from soi_mlflow.errors import SoiInputError
from soi_mlflow.server import pages
from soi_mlflow.server.compute import MissingData, RunData
from soi_mlflow.tracking.health import check_run_id
from soi_mlflow.tracking.names import check_split_name, in_split_order, is_split_name

ROUTES = ("run", "datamap", "table.csv", "transitions", "heatmap")
RUN_PARAMS = ("run_id", "run_a", "run_b")  # every query parameter that names a run
CSP_PAGE = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
CSP_SCRIPTED = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

blueprint = Blueprint("soi_mlflow", __name__)
_data: RunData | None = None
_data_lock = threading.Lock()


def run_data() -> RunData:
    """One ``RunData`` per server worker, made on first use (the stores exist by then)."""
    global _data
    with _data_lock:
        if _data is None:
            _data = RunData()
        return _data


def _respond(
    body: str | bytes, status: int = 200, mimetype: str = "text/html", csp: str = CSP_PAGE
) -> Response:
    resp = Response(body, status=status, mimetype=mimetype)
    resp.headers["Content-Security-Policy"] = csp
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "private, max-age=60"
    return resp


@blueprint.errorhandler(SoiInputError)
def _bad_input(error: SoiInputError) -> Response:
    status = 404 if isinstance(error, MissingData) else 400
    return _respond(pages.error_page(status, str(error)), status)


def _run(param: str) -> str:
    """The run id a query parameter names, by the one run-id rule (``check_run_id``)."""
    return check_run_id(request.args.get(param), param)


def _split() -> str:
    """The request's split (default ``train``), by the one split-name rule: any name a
    trace folder can have, not only the built-in trainer's four."""
    return check_split_name(request.args.get("split") or "train")


def _splits_of(data: RunData, run_id: str) -> list[str]:
    listed = {a.path.rsplit("/", 1)[-1] for a in data.client.list_artifacts(run_id, "traces")}
    return in_split_order(s for s in listed if is_split_name(s))


@blueprint.get("/run")
def run_page() -> Response:
    data, split = run_data(), _split()
    run_id = _run("run_id")
    run = data.run(run_id)
    table = data.joined(run_id, split)
    html = pages.run_page(run, split, table, data.siblings(run_id), _splits_of(data, run_id))
    return _respond(html)


@blueprint.get("/table.csv")
def table_csv() -> Response:
    data, split = run_data(), _split()
    run_id = _run("run_id")
    data.run(run_id)
    table = data.joined(run_id, split).copy()
    for col in table.columns:
        if table[col].dtype == object or isinstance(table[col].dtype, pd.CategoricalDtype):
            table[col] = table[col].astype("string").map(_defuse_formula, na_action="ignore")
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    resp = _respond(buffer.getvalue(), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="soi-{run_id}-{split}.csv"'
    return resp


def _defuse_formula(text: str) -> str:
    """Spreadsheets run cells that start like a formula: such a text gets a leading quote."""
    return f"'{text}" if text.startswith(_FORMULA_START) else text


@blueprint.get("/datamap")
def datamap() -> Response:
    data, split = run_data(), _split()
    run_id = _run("run_id")
    run = data.run(run_id)
    table = data.soi_table(run_id, split)
    title = f"Data map: {run.info.run_name or run_id} ({split})"
    html = data.results.get_or_make(
        ("datamap", run_id, split),
        lambda: data_map_html(table, title=title, examples=data.examples(run_id, split)),
        keep=data.finished(run_id),
    )
    return _respond(html, csp=CSP_SCRIPTED)


@blueprint.get("/transitions")
def transitions() -> Response:
    data, split = run_data(), _split()
    run_a, run_b = _run("run_a"), _run("run_b")
    ra, rb = data.run(run_a), data.run(run_b)
    counts = data.transitions(run_a, run_b, split)
    return _respond(pages.transitions_page(ra, rb, split, counts))


@blueprint.get("/heatmap")
def heatmap() -> Response:
    """The interactive transition heatmap (clicking a cell lists its examples)."""
    data, split = run_data(), _split()
    run_a, run_b = _run("run_a"), _run("run_b")
    ra, rb = data.run(run_a), data.run(run_b)
    title = f"SOI transitions: {ra.info.run_name or run_a} to {rb.info.run_name or run_b}"
    html = data.results.get_or_make(
        ("heatmap", run_a, run_b, split),
        lambda: transitions_html(
            data.soi_table(run_a, split),
            data.soi_table(run_b, split),
            title=title,
            label_a=ra.info.run_name or run_a,
            label_b=rb.info.run_name or run_b,
            examples=data.examples(run_b, split),
        ),
        keep=data.finished(run_a, run_b),
    )
    return _respond(html, csp=CSP_SCRIPTED)

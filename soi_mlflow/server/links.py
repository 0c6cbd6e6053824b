"""Links to the soi pages, for run descriptions (no server code imported).

The links are relative (``soi/run?run_id=...``): the run description is shown by the
MLflow UI at the server's root (``http://host/#/experiments/...``, or under its
``--static-prefix``), so they open the soi page of the same server, whatever its address.
"""

from __future__ import annotations

from urllib.parse import urlencode

APP_NAME = "soi"


def page_path(route: str, **params: str) -> str:
    """``soi/<route>?<params>``, relative to the UI's root."""
    return f"soi/{route}?{urlencode(params)}"


def soi_pages_note(run_id: str, split: str = "train") -> str:
    """The Markdown line a run's description carries to reach its soi pages."""
    run = page_path("run", run_id=run_id, split=split)
    datamap = page_path("datamap", run_id=run_id, split=split)
    return (
        f"On a tracking server started with `mlflow server --app-name {APP_NAME}` "
        f"(or `soi-auth`): [SOI page]({run}), [interactive data map]({datamap})."
    )

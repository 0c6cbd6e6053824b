"""Where a person looks: MLflow UI links that open the model-training view on the right
run, the experiment kind tag that makes it the default, and run descriptions.

MLflow 3.17's UI opens an experiment in its GenAI view unless told otherwise. It reads the
experiment tag ``mlflow.experimentKind`` (``custom_model_development`` is shown as
"Machine learning") and the URL query ``workflowType=machine_learning``; links carry the
query because a user's own browser setting can still override the tag.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"
WORKFLOW_QUERY = "workflowType=machine_learning"
LOCAL_UI = "http://127.0.0.1:5000"


def ui_base(tracking_uri: str) -> str | None:
    """The UI's address when the tracking store is a server, else None (``mlflow ui``)."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return None


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the model-training view."""
    return f"{base}/#/experiments/{quote(experiment_id)}/runs/{quote(run_id)}?{WORKFLOW_QUERY}"


def runs_table_url(base: str, experiment_id: str, search_filter: str | None = None) -> str:
    """The experiment's runs table in the model-training view, optionally filtered."""
    url = f"{base}/#/experiments/{quote(experiment_id)}/runs?{WORKFLOW_QUERY}"
    if search_filter:
        url += f"&searchFilter={quote(search_filter, safe='')}"
    return url


def ui_command(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """What to run and open to see a run: the runs table of its experiment and the run,
    both in the model-training view (``mlflow ui`` first for a local store)."""
    base = ui_base(tracking_uri)
    start = ""
    if base is None:
        base = LOCAL_UI
        start = f"mlflow ui --backend-store-uri {tracking_uri}, then open\n"
    return (
        f"{start}  runs table: {runs_table_url(base, experiment_id)}\n"
        f"  this run:   {run_url(base, experiment_id, run_id)}"
    )


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def md_escape(text: Any) -> str:
    """A value from data (a member or run name) as literal Markdown text: no markup, no
    HTML, no links."""
    out = _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))
    return out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def set_description_section(client: Any, run_id: str, heading: str | None, body: str) -> None:
    """Put ``body`` into the run's description (the Markdown MLflow shows on the run
    page) under ``#### heading``, replacing an earlier section of that heading; with
    ``heading=None`` it is the opening text. Sections written by other steps stay."""
    from mlflow.entities import RunTag

    current = client.get_run(run_id).data.tags.get(DESCRIPTION_TAG, "")
    intro, sections = _split_sections(current)
    if heading is None:
        intro = body.strip()
    else:
        sections[heading] = body.strip()
    parts = [intro] if intro else []
    parts += [f"#### {h}\n\n{b}" for h, b in sections.items()]
    client.log_batch(run_id, tags=[RunTag(DESCRIPTION_TAG, "\n\n".join(parts))])


def _split_sections(text: str) -> tuple[str, dict[str, str]]:
    chunks = re.split(r"^#### (.+)$", text, flags=re.M)
    intro = chunks[0].strip()
    sections = {chunks[k].strip(): chunks[k + 1].strip() for k in range(1, len(chunks) - 1, 2)}
    return intro, sections


# -- links to the soi pages of a server started with `mlflow server --app-name soi`: relative
# (`soi/run?run_id=...`), as the run description is shown at the server's root, so they
# open the page of the same server whatever its address (no server code imported here)
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

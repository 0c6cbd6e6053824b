"""A study read back from MLflow: its parent run, its finished children, and what a
re-analysis gives back. Every study's ``reanalysis.py`` builds on these; the registry of
re-analyses by study kind is ``studies/reanalyze.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.health import get_run
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.tracking.search import search_all

if TYPE_CHECKING:
    from soi_mlflow.analysis.duck.engine import Engine


@dataclass
class Reanalysis:
    """What a re-analysis logged: the study kind and the tables to show, by title."""

    study: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # inputs rebuilt, not shown


@dataclass(frozen=True)
class ReanalysisOptions:
    """How a re-analysis reads traces, for the studies that analyse their children's
    traces again (``compare``); the others rebuild their tables from metrics and tags."""

    splits: tuple[str, ...] = ("train",)
    taxonomy: str = "default"
    aggregate: str = "majority"
    engine: Engine | None = None


def children(handle: RunHandle) -> list[Any]:
    """The finished child runs of a parent (``mlflow.parentRunId``), oldest first."""
    runs = search_all(
        handle.client,
        [handle.experiment_id],
        "attributes.status = 'FINISHED'",
        {tags.PARENT_RUN_ID: handle.run_id},
    )
    return sorted(runs, key=lambda r: r.info.start_time)


def handle_of(parent_run_id: str, tracking_uri: str | None) -> tuple[RunHandle, Any]:
    """A handle on an existing parent run (never ended by this process) and the run."""
    cache = cache_for(tracking_uri)
    run = get_run(cache.client, parent_run_id, cache.tracking_uri, "--parent-run-id")
    handle = RunHandle(
        cache.client, parent_run_id, run.info.experiment_id, cache.tracking_uri, created=False
    )
    return handle, run

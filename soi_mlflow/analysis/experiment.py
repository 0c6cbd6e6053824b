"""Every traced run of an experiment analysed (``soi-mlflow analyze --experiment NAME``).

The runs go through the shared executor (``common/executor.py``): one after another in
this process by default, as Ray tasks with ``executor="ray"``, a ``[k/n]`` line as each
finishes. The work per run is a module-level function of plain values
(:func:`analyse_one`), so Ray can ship it; each run's DuckDB connection has its own
``--memory-limit``, so runs analysed side by side on one node each take that much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd

from soi_mlflow.analysis.duck.engine import Engine
from soi_mlflow.analysis.runs import cache_for, find_runs
from soi_mlflow.analysis.soi import TOO_FEW, Taxonomy
from soi_mlflow.common.executor import ExecutorSettings, executor_for
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.names import check_split_name


@dataclass(frozen=True)
class TracedRun:
    run_id: str
    run_name: str


def runs_with_traces(
    experiment: str, splits: Sequence[str] = ("train",), tracking_uri: str | None = None
) -> list[TracedRun]:
    """The runs of ``experiment`` with traces of every split of ``splits``, oldest first."""
    wanted = [f"traces/{check_split_name(s)}" for s in splits]
    runs = find_runs(experiment, tracking_uri=tracking_uri)
    if runs.empty:
        return []
    client = cache_for(tracking_uri).client
    out = []
    for row in runs.sort_values("start_time").itertuples():
        traced = {a.path for a in client.list_artifacts(row.run_id, "traces") if a.is_dir}
        if all(w in traced for w in wanted):
            out.append(TracedRun(row.run_id, str(row.run_name)))
    return out


def analyse_one(
    run: TracedRun,
    splits: Sequence[str],
    taxonomy: str | Taxonomy,
    tracking_uri: str | None,
    engine: Engine,
) -> list[dict[str, Any]]:
    """``report.analyze_run`` of one run; per split a summary row."""
    from soi_mlflow.analysis.report import analyze_run  # deferred: matplotlib

    tables = analyze_run(run.run_id, splits, taxonomy, tracking_uri, engine=engine)
    return [
        {
            "run_name": run.run_name,
            "run_id": run.run_id,
            "split": split,
            "examples": len(table),
            "coverage": float((table["soi"].astype(str) != TOO_FEW).mean()),
            "engine": table.attrs.get("engine", "memory"),
        }
        for split, table in tables.items()
    ]


def analyze_experiment(
    experiment: str,
    splits: Sequence[str] = ("train",),
    taxonomy: str | Taxonomy = "default",
    tracking_uri: str | None = None,
    engine: Engine | None = None,
    executor: ExecutorSettings | None = None,
) -> pd.DataFrame:
    """Analyse (``report.analyze_run``: SOI, data maps, coverage, logged to each run) every
    run of ``experiment`` with traces of ``splits``, through ``executor`` (default: in this
    process); one summary row per run and split."""
    runs = runs_with_traces(experiment, splits, tracking_uri)
    if not runs:
        raise SoiInputError(
            f"experiment {experiment!r}: no run has traces of split(s) {', '.join(splits)}"
        )
    work = partial(
        analyse_one,
        splits=list(splits),
        taxonomy=taxonomy,
        tracking_uri=tracking_uri,
        engine=engine or Engine(),
    )
    with executor_for(executor or ExecutorSettings()) as pool:
        rows = pool.map(work, runs, lambda run: f"analysing run {run.run_name} ({run.run_id})")
    return pd.DataFrame([row for per_run in rows for row in per_run])

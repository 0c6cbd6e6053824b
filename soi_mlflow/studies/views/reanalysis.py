"""Redo the three-views study's analysis from its children: the nested transfer study,
the affinity runs and the nested learning-curve studies (each re-analysed too)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from soi_mlflow.analysis.transfer import transfer_deltas
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.learning_curve import reanalysis as curve_reanalysis
from soi_mlflow.studies.readback import Reanalysis, ReanalysisOptions, children, handle_of
from soi_mlflow.studies.transfer.reanalysis import relog_transfer, study_scores
from soi_mlflow.studies.views.analysis import (
    affinity_values,
    log_views,
    views_agreement,
    with_significant_pairs,
)
from soi_mlflow.studies.views.settings import ViewsSettings
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.run import RunHandle


def _cost(run: Any, view: str, seeds: int, runs: int) -> dict:
    metrics = run.data.metrics
    seconds = metrics.get("compute/wall_seconds")
    if seconds is None:
        seconds = ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000
    return {
        "view": view,
        "seeds": seeds,
        "example_passes": metrics.get("compute/example_passes", float("nan")),
        "seconds": seconds,
        "runs": runs,
    }


def reanalyze(handle: RunHandle, run: Any, options: ReanalysisOptions | None = None) -> Reanalysis:
    """Rebuild every view's per-seed values from the children (the nested transfer and
    learning-curve studies re-analysed in turn), compare the views again and log it all
    to the views parent."""
    # deferred: scipy
    from soi_mlflow.analysis.agreement import transfer_gains  # scipy, when it runs

    values: list[dict] = []
    compute: list[dict] = []
    affinity_runs = []
    for child in children(handle):
        kind = child.data.tags.get(tags.STUDY)
        if kind == "transfer":
            scores, transfer_run = study_scores(child.info.run_id, handle.tracking_uri)
            relog_transfer(transfer_run, scores, handle.tracking_uri)
            deltas = transfer_deltas(scores)
            values += [
                {"view": "transfer", "seed": r.seed, "source": r.source, "target": r.target}
                | {"value": r.delta}
                for r in deltas.itertuples()
            ]
            seeds = int(scores["seed"].nunique())
            compute.append(_cost(child, "transfer", seeds, int(scores["run_id"].nunique())))
        elif kind == "learning_curve":
            sub, sub_run = handle_of(child.info.run_id, handle.tracking_uri)
            points = curve_reanalysis.reanalyze(sub, sub_run).data["points"]
            target = curve_reanalysis.target_of(sub_run)
            gains = transfer_gains(points)
            per_seed = gains.groupby(["seed", "curve"], as_index=False)["value"].mean()
            values += [
                {"view": "curves", "seed": r.seed, "source": r.curve, "target": target}
                | {"value": r.value}
                for r in per_seed.itertuples()
            ]
            compute.append(_cost(child, "curves", int(points["seed"].nunique()), len(points)))
        elif child.data.params.get("affinity_every") not in (None, "None", ""):
            affinity_runs.append(child)
            values += affinity_values(handle, child)
    if not values:
        raise SoiInputError(f"run {handle.run_id}: the views study has no finished view to analyse")
    if affinity_runs:
        cost = _cost(affinity_runs[0], "affinity", len(affinity_runs), len(affinity_runs))
        cost["seconds"] = sum(
            ((r.info.end_time or r.info.start_time) - r.info.start_time) / 1000
            for r in affinity_runs
        )
        compute.append(cost)
    frame = pd.DataFrame(values)
    compute_table = (
        pd.DataFrame(compute)
        .groupby("view", as_index=False, sort=False)
        .agg(
            seeds=("seeds", "max"),
            example_passes=("example_passes", "sum"),
            seconds=("seconds", "sum"),
            runs=("runs", "sum"),
        )
    )
    params = run.data.params
    sizes = tuple(int(v) for v in params.get("sizes", "").split(",") if v)
    settings = ViewsSettings(budget=int(params.get("budget") or 0), sizes=sizes or (50, 150, 450))
    result = views_agreement(frame, settings)
    with_significant_pairs(compute_table, result["significance"])
    log_views(handle, frame, result, compute_table, settings)
    return Reanalysis(
        "views",
        {
            "each view's transfers, with intervals over seeds": result["significance"],
            "rank agreement between the views (Spearman)": result["agreement"],
        },
    )

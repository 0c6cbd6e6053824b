"""Redo a learning-curve study's analysis from its children: the points rebuilt from
each child's tags, example table and test accuracy, the settings from the parent's params
and tags, then the study's own analysis (``analysis.py``) logged to the parent again."""

from __future__ import annotations

from typing import Any

import pandas as pd

from soi_mlflow.analysis.runs import load_examples
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.learning_curve.analysis import analyse_points, log_curves
from soi_mlflow.studies.learning_curve.settings import CurveSettings
from soi_mlflow.studies.readback import Reanalysis, ReanalysisOptions, children
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.run import RunHandle

FIT_COLUMNS = ["curve", "aux_size", "form", "c", "a", "b", "aic", "problem"]  # shown


def curve_points(handle: RunHandle, target: str) -> pd.DataFrame:
    """The points table of a learning-curve study, rebuilt from its children: one row per
    child with its curve, seed, target size, auxiliary sizes (counted in its example
    table) and its target's test accuracy."""
    rows = []
    for child in children(handle):
        own, metrics = child.data.tags, child.data.metrics
        if tags.CURVE not in own or f"test/{target}/acc" not in metrics:
            continue
        n, curve = int(own[tags.TARGET_SIZE]), own[tags.CURVE]
        per_member: list[int] = []
        if curve != "alone":
            logged = {a.path for a in handle.client.list_artifacts(child.info.run_id, "examples")}
            if "examples/train.parquet" in logged:
                counts = load_examples(child.info.run_id, "train", handle.tracking_uri)
                counts = counts["member"].astype(str).value_counts()
                per_member = [int(counts.get(a, 0)) for a in curve.split("+")]
            else:  # no example table: the cap the study gave each auxiliary member
                per_member = [int(own.get(tags.AUX_SIZE) or 0)] * len(curve.split("+"))
        epochs = int(child.data.params.get("epochs", 1))
        end = child.info.end_time or child.info.start_time
        rows.append(
            {
                "seed": int(own.get(tags.SEED, 0)),
                "n": n,
                "curve": curve,
                "aux_size": min(per_member) if per_member else 0,
                "n_aux": sum(per_member),
                "score": float(metrics[f"test/{target}/acc"]),
                "run_id": child.info.run_id,
                "example_passes": (n + sum(per_member)) * epochs,
                "seconds": (end - child.info.start_time) / 1000,
            }
        )
    if not rows:
        raise SoiInputError(
            f"run {handle.run_id}: no finished learning-curve child run with a "
            f"test/{target}/acc metric"
        )
    return pd.DataFrame(rows).sort_values(["seed", "curve", "aux_size", "n"], ignore_index=True)


def curve_settings(run: Any, points: pd.DataFrame) -> CurveSettings:
    """The study's settings, read back from the parent's params and tags."""
    params, parent_tags = run.data.params, run.data.tags
    target = params.get("target") or parent_tags[tags.TARGET]
    members = [m for m in params.get("members", "").split(",") if m]
    aux = [m for m in members if m != target] or parent_tags.get(tags.AUX, "").split(",")
    curves = set(points["curve"])
    pairs, whole = all(a in curves for a in aux), "+".join(aux) in curves
    sets = "pairwise+all" if pairs and whole and len(aux) > 1 else "pairwise" if pairs else "all"
    method, _, level = params.get("interval", "t, 0.95").partition(",")

    def sizes(text: str | None) -> tuple[int, ...]:
        return tuple(int(v) for v in (text or "").split(",") if v)

    return CurveSettings(
        target,
        tuple(aux),
        sizes(params.get("sizes")) or tuple(sorted(set(points["n"]))),
        sizes(params.get("aux_sizes")),
        int(params.get("seeds") or points["seed"].nunique()),
        sets=sets,
        interval=method.strip() or "t",
        level=float(level or 0.95),
    )


def target_of(run: Any) -> str | None:
    """The target member of a learning-curve parent (its param, else its tag)."""
    return run.data.params.get("target") or run.data.tags.get(tags.TARGET)


def reanalyze(handle: RunHandle, run: Any, options: ReanalysisOptions | None = None) -> Reanalysis:
    """Rebuild a learning-curve study's points from its children and redo its analysis
    (``options``: unused, the points come from metrics and tags)."""
    target = target_of(run)
    if not target:
        raise SoiInputError(f"run {handle.run_id}: a learning-curve parent without its target")
    points = curve_points(handle, target)
    settings = curve_settings(run, points)
    tables = analyse_points(points, settings)
    problems = log_curves(handle, points, tables, settings)
    shown = {
        "fits": tables["learning_curve_fits"]
        .reindex(columns=FIT_COLUMNS)
        .dropna(axis=1, how="all"),
        "what the auxiliary data is worth (median over sizes)": tables[
            "learning_curve_worth_over_sizes"
        ],
        "contextual fit": tables["learning_curve_contextual"],
    }
    if "learning_curve_interaction_over_sizes" in tables:
        shown["interaction: all together minus the sum of the pairs"] = tables[
            "learning_curve_interaction_over_sizes"
        ]
    return Reanalysis("learning_curve", shown, problems, {"points": points})

"""Redo a study's analysis from its child runs (``soi-mlflow analyze --parent-run-id``).

The parent's ``soi.study`` tag names the study kind; each kind's analysis is rebuilt from
what its children hold (tags, metrics, artifacts) and logged back to the parent, whatever
the parent's status (a parent that ended FAILED included). What the data do not
determine is reported as "not identified", as the study itself reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.run import RunHandle

KINDS = ("compare", "two_stage", "transfer", "learning_curve", "views", "noise_benchmark")
STUDY_TAG = "soi.study"
FIT_COLUMNS = ["curve", "aux_size", "form", "c", "a", "b", "aic", "problem"]  # shown


@dataclass
class Reanalysis:
    """What a re-analysis logged: the study kind and the tables to show, by title."""

    study: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    data: dict[str, pd.DataFrame] = field(default_factory=dict)  # inputs rebuilt, not shown


def study_kind(run: Any) -> str:
    """The study kind of a parent run, from its ``soi.study`` tag; refused clearly when the
    tag is missing or names no known study."""
    kind = run.data.tags.get(STUDY_TAG)
    if kind is None:
        raise SoiInputError(
            f"run {run.info.run_id} has no {STUDY_TAG} tag: it is not the parent run of a "
            f"study (kinds: {', '.join(KINDS)})"
        )
    if kind not in KINDS:
        raise SoiInputError(
            f"run {run.info.run_id}: unknown study kind {kind!r} in its {STUDY_TAG} tag "
            f"(re-analysable kinds: {', '.join(KINDS)}); is it a child run? give its parent"
        )
    return kind


def children(handle: RunHandle) -> list[Any]:
    """The finished child runs of a parent, oldest first."""
    from soi_mlflow.tracking.search import search_all

    runs = search_all(
        handle.client,
        [handle.experiment_id],
        "attributes.status = 'FINISHED'",
        {"mlflow.parentRunId": handle.run_id},
    )
    return sorted(runs, key=lambda r: r.info.start_time)


def handle_of(parent_run_id: str, tracking_uri: str | None) -> tuple[RunHandle, Any]:
    from soi_mlflow.analysis.runs import cache_for
    from soi_mlflow.tracking.health import get_run

    cache = cache_for(tracking_uri)
    run = get_run(cache.client, parent_run_id, cache.tracking_uri, "--parent-run-id")
    handle = RunHandle(
        cache.client, parent_run_id, run.info.experiment_id, cache.tracking_uri, created=False
    )
    return handle, run


def reanalyze(parent_run_id: str, tracking_uri: str | None = None) -> Reanalysis:
    """Redo the analysis of the study whose parent is ``parent_run_id`` (every kind but
    ``compare``, which the command does itself with its own options)."""
    handle, run = handle_of(parent_run_id, tracking_uri)
    kind = study_kind(run)
    if kind == "learning_curve":
        return reanalyze_curve(handle, run)
    if kind == "two_stage":
        return _two_stage(handle, run)
    if kind == "transfer":
        from soi_mlflow.studies.transfer import reanalyze_transfer

        mean, _, _ = reanalyze_transfer(parent_run_id, tracking_uri)
        return Reanalysis(kind, {"transfer matrix (rows: sources, columns: targets)": mean})
    if kind == "views":
        from soi_mlflow.studies.views_reanalysis import reanalyze_views

        return reanalyze_views(handle, run)
    if kind == "noise_benchmark":
        raise SoiInputError(
            f"run {parent_run_id}: a noise_benchmark study cannot be re-analysed from its "
            "children: confident learning needs the out-of-sample probabilities of its "
            "cross-validation models, which are not logged; run soi-mlflow noise-benchmark "
            "again"
        )
    raise SoiInputError(f"run {parent_run_id}: the {kind} study is re-analysed by the command")


# -- learning curves ------------------------------------------------------------------


def curve_points(handle: RunHandle, target: str) -> pd.DataFrame:
    """The points table of a learning-curve study, rebuilt from its children: one row per
    child with its curve, seed, target size, auxiliary sizes (counted in its example
    table) and its target's test accuracy."""
    from soi_mlflow.analysis.runs import load_examples

    rows = []
    for child in children(handle):
        tags, metrics = child.data.tags, child.data.metrics
        if "soi.curve" not in tags or f"test/{target}/acc" not in metrics:
            continue
        n, curve = int(tags["soi.target_size"]), tags["soi.curve"]
        per_member: list[int] = []
        if curve != "alone":
            logged = {a.path for a in handle.client.list_artifacts(child.info.run_id, "examples")}
            if "examples/train.parquet" in logged:
                counts = load_examples(child.info.run_id, "train", handle.tracking_uri)
                counts = counts["member"].astype(str).value_counts()
                per_member = [int(counts.get(a, 0)) for a in curve.split("+")]
            else:  # no example table: the cap the study gave each auxiliary member
                per_member = [int(tags.get("soi.aux_size") or 0)] * len(curve.split("+"))
        epochs = int(child.data.params.get("epochs", 1))
        end = child.info.end_time or child.info.start_time
        rows.append(
            {
                "seed": int(tags.get("soi.seed", 0)),
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


def curve_settings(run: Any, points: pd.DataFrame):
    """The study's settings, read back from the parent's params and tags."""
    from soi_mlflow.studies.learning_curve import CurveSettings

    params, tags = run.data.params, run.data.tags
    target = params.get("target") or tags["soi.target"]
    members = [m for m in params.get("members", "").split(",") if m]
    aux = [m for m in members if m != target] or tags.get("soi.aux", "").split(",")
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


def reanalyze_curve(handle: RunHandle, run: Any) -> Reanalysis:
    """Rebuild a learning-curve study's points from its children and redo its analysis."""
    from soi_mlflow.studies.curve_analysis import analyse_points, log_curves

    target = run.data.params.get("target") or run.data.tags.get("soi.target")
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


# -- two-stage ------------------------------------------------------------------------


def _two_stage(handle: RunHandle, run: Any) -> Reanalysis:
    from soi_mlflow.studies.two_stage import log_two_stage

    runs: dict[str, str] = {}
    stage2: Any = None
    for child in children(handle):
        tags = child.data.tags
        if tags.get("soi.stage") == "1":
            runs["stage 1"] = child.info.run_id
        elif tags.get("soi.control") == "true":
            runs["control"] = child.info.run_id
        elif tags.get("soi.stage") == "2":
            runs["stage 2"], stage2 = child.info.run_id, child
    if stage2 is not None:
        runs.setdefault("stage 1", stage2.data.tags.get("soi.stage1_run_id", ""))
    missing = [k for k in ("stage 1", "stage 2", "control") if not runs.get(k)]
    if missing:
        raise SoiInputError(
            f"run {handle.run_id}: the two_stage study has no finished {' or '.join(missing)} "
            "run to analyse"
        )
    params = run.data.params
    members = [m for m in params.get("members", "").split(",") if m]
    ood = [m for m in params.get("ood", "").split(",") if m]
    chosen = stage2.data.params.get("train_examples", "?")
    title = (
        f"Accuracy after stage 1, stage 2 ({params.get('selection', '?')}, {chosen} examples, "
        f"{params.get('stage2_epochs', '?')} epochs) and a random control of the same size"
    )
    order = {k: runs[k] for k in ("stage 1", "stage 2", "control")}
    wide = log_two_stage(handle, order, members, ood, title)
    return Reanalysis("two_stage", {"accuracy (test = ID, ood = OOD)": wide})

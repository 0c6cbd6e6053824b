"""Side effects of training with a source (docs/design.md, "Why transfer happens"): how the
target's confusion matrix and predicted-label distribution change, read from the
per-example predictions of the target's test split at the last epoch.

Cores (frames in, frames out, no MLflow):

- :func:`named_predictions`: one run's trace rows of a target, class indices turned into
  the class names of the trace's metadata (so runs whose heads order or extend the classes
  differently compare by name);
- :func:`confusion_deltas`: per seed, source and target, the confusion matrix alone, with
  the source and their difference, as counts and row-normalised rates (rows: gold class,
  read as "of the examples of class g, the share predicted p"), over the examples both
  runs predicted;
- :func:`prediction_shift`: per class, the share of predictions alone, with the source,
  and the shift (with minus alone): the classes the source pushes predictions toward;
- :func:`summarize_side_effects`: mean over seeds of each cell with its interval
  (``analysis/intervals.py``, Student t over seeds by default).

Its figure, a grid of the mean deltas, is drawn in ``analysis/side_effects_figures.py``.

Wrapper: :func:`log_side_effects` reads each run's test trace (``analysis/runs.py``) for
the ``seed, source, target, run_id`` rows of a study (``source`` None for the target
alone), logs the tables and the figure into the study's parent and returns the estimates
it could not make, as :mod:`~soi_mlflow.analysis.identified` reports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from soi_mlflow.analysis import identified
from soi_mlflow.analysis import shift_factors as sf
from soi_mlflow.analysis.runs import last_epoch_predictions
from soi_mlflow.analysis.side_effects_figures import side_effects_figure
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.artifacts import log_figures, log_table

CONFUSION = "side_effects_confusion"
SUMMARY = "side_effects_summary"
SHIFT = "side_effects_prediction_shift"
FIGURE = "side_effects"
SPLIT = "test"
KEYS = ["seed", "source", "target"]
CONFUSION_COLUMNS = [
    *KEYS,
    "gold",
    "pred",
    "count_alone",
    "count_with",
    "count_delta",
    "rate_alone",
    "rate_with",
    "rate_delta",
    "examples",
    "problem",
]
SHIFT_COLUMNS = [*KEYS, "pred", "share_alone", "share_with", "shift", "examples", "problem"]


def named_predictions(trace: pd.DataFrame, target: str, label_names: Mapping) -> pd.DataFrame:
    """``example_id, gold, pred`` of ``target``'s rows of one run's trace (``member``,
    ``task``, integer ``gold``/``pred``), the classes named by ``label_names[task]``; an
    index without a name keeps its number as its name."""
    rows = trace[trace["member"].astype(str) == target]
    out = pd.DataFrame({"example_id": rows["example_id"].to_numpy()})
    tasks = rows["task"].astype(str).to_numpy()
    for column in ("gold", "pred"):
        index = rows[column].to_numpy(dtype=np.int64)
        values = index.astype(str).astype(object)  # an index without a name keeps its number
        for task in np.unique(tasks):
            names = np.asarray([str(n) for n in label_names.get(task) or []], dtype=object)
            here = (tasks == task) & (index >= 0) & (index < len(names))
            values[here] = names[index[here]]
        out[column] = values
    return out


def _classes(frame: pd.DataFrame, given: Sequence[str] | None) -> list[str]:
    """The target's classes: ``given`` first (in order), then any other name seen, sorted."""
    seen = set(frame["gold"].dropna()) | set(frame["pred"].dropna())
    first = list(given or [])
    return first + sorted(seen - set(first))


def _cells(parts: Mapping, missing: pd.DataFrame | None) -> pd.DataFrame:
    """Every (seed, source, target) with a source, from the predictions (``parts``, as
    :func:`_split` gives them) and the missing runs, with the reason a cell cannot be
    estimated (None where it can)."""
    why: dict = {}
    if missing is not None:
        for seed, source, target, problem in missing[[*KEYS, "problem"]].itertuples(index=False):
            why.setdefault((seed, None if pd.isna(source) else source, target), problem)
    keys = list(dict.fromkeys([*parts, *why]))
    rows = []
    for seed, source, target in keys:
        if source is None:
            continue
        reason = why.get((seed, source, target)) or why.get((seed, None, target))
        if reason is None and (seed, None, target) not in parts:
            reason = f"no predictions of {target} trained alone (seed {seed})"
        if reason is None and (seed, source, target) not in parts:
            reason = f"no predictions of {target} trained with {source} (seed {seed})"
        problem = identified.not_identified(reason) if reason else None
        rows.append({"seed": seed, "source": source, "target": target, "problem": problem})
    return pd.DataFrame(rows, columns=[*KEYS, "problem"])


def _split(predictions: pd.DataFrame):
    """Predictions as ``{(seed, source, target): frame}`` (``source`` None: alone)."""
    frame = predictions.assign(source=predictions["source"].astype(object))
    frame["source"] = frame["source"].where(frame["source"].notna(), None)
    return {
        (seed, None if pd.isna(source) else source, target): part
        for (seed, source, target), part in frame.groupby(KEYS, dropna=False, sort=False)
    }


def _matched(alone: pd.DataFrame, with_: pd.DataFrame):
    """The rows of both runs on the examples both predicted (all rows without ids)."""
    if "example_id" not in alone.columns or "example_id" not in with_.columns:
        return alone, with_
    both = set(alone["example_id"]) & set(with_["example_id"])
    return alone[alone["example_id"].isin(both)], with_[with_["example_id"].isin(both)]


def _confusion(frame: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """Counts, rows gold and columns pred, over ``classes``."""
    counts = pd.crosstab(frame["gold"], frame["pred"]).reindex(
        index=classes, columns=classes, fill_value=0
    )
    return counts.to_numpy(dtype=float)


def _rates(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), np.nan)


def confusion_deltas(
    predictions: pd.DataFrame,
    missing: pd.DataFrame | None = None,
    classes: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Long form, one row per (seed, source, target, gold, pred): ``count_alone,
    count_with, count_delta`` and the row-normalised ``rate_alone, rate_with, rate_delta``
    (NaN for a gold class without examples), ``examples`` matched, ``problem``.

    ``predictions``: ``seed, source, target, gold, pred`` (class names; ``source`` None
    for the target alone), ``example_id`` optional (then only examples both runs
    predicted count). ``missing``: ``seed, source, target, problem`` of runs that could
    not be read. ``classes``: the order of a target's classes (else: sorted names)."""
    _check(predictions, [*KEYS, "gold", "pred"], "predictions")
    parts, rows = _split(predictions), []
    for seed, source, target, problem in _cells(parts, missing).itertuples(index=False):
        if problem:
            rows.append(dict(zip(KEYS, (seed, source, target), strict=True)) | {"problem": problem})
            continue
        alone, with_ = _matched(parts[(seed, None, target)], parts[(seed, source, target)])
        order = (classes or {}).get(target)
        names = _classes(predictions[predictions["target"] == target], order)
        a, w = _confusion(alone, names), _confusion(with_, names)
        ra, rw = _rates(a), _rates(w)
        for g, gold in enumerate(names):
            for p, pred in enumerate(names):
                rows.append(
                    {
                        "seed": seed,
                        "source": source,
                        "target": target,
                        "gold": gold,
                        "pred": pred,
                        "count_alone": a[g, p],
                        "count_with": w[g, p],
                        "count_delta": w[g, p] - a[g, p],
                        "rate_alone": ra[g, p],
                        "rate_with": rw[g, p],
                        "rate_delta": rw[g, p] - ra[g, p],
                        "examples": len(alone),
                        "problem": None,
                    }
                )
    return pd.DataFrame(rows, columns=CONFUSION_COLUMNS)


def prediction_shift(confusion: pd.DataFrame) -> pd.DataFrame:
    """Per (seed, source, target) and predicted class: ``share_alone``, ``share_with``
    (the share of the target's predictions that are this class) and ``shift`` = with -
    alone, from :func:`confusion_deltas`' counts (a problem row stays a problem row)."""
    rows = []
    for (seed, source, target), part in confusion.groupby(KEYS, sort=False, dropna=False):
        problem = part["problem"].iloc[0]
        if identified.is_reported(problem):
            rows.append({"seed": seed, "source": source, "target": target, "problem": problem})
            continue
        per_pred = part.groupby("pred", sort=False)[["count_alone", "count_with"]].sum()
        total_a, total_w = per_pred["count_alone"].sum(), per_pred["count_with"].sum()
        for pred, row in per_pred.iterrows():
            share_a = row["count_alone"] / total_a if total_a else np.nan
            share_w = row["count_with"] / total_w if total_w else np.nan
            rows.append(
                {
                    "seed": seed,
                    "source": source,
                    "target": target,
                    "pred": pred,
                    "share_alone": share_a,
                    "share_with": share_w,
                    "shift": share_w - share_a,
                    "examples": part["examples"].iloc[0],
                    "problem": None,
                }
            )
    return pd.DataFrame(rows, columns=SHIFT_COLUMNS)


def _summary(frame: pd.DataFrame, by: list[str], value: str, extra: list[str], method, level):
    from soi_mlflow.analysis.intervals import summarize  # deferred: scipy

    frame = frame.copy()
    for column in by:  # one group per problem cell: its class columns are None
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "")
    out = summarize(frame, by, value, method, level)
    means = frame.groupby(by, sort=True, dropna=False)[extra].mean().reset_index(drop=True)
    out = pd.concat([out, means], axis=1)
    out = identified.with_problems(out, frame, by, value)
    # a class without test examples has no rate: NaN, not a problem of the study
    out["problem"] = out["problem"].where(out["gold" if "gold" in by else "pred"] == "", None)
    out["method"] = f"{method}, {level:.0%} over seeds"
    return out


def summarize_side_effects(
    confusion: pd.DataFrame, method: str = "t", level: float = 0.95
) -> pd.DataFrame:
    """Per (source, target, gold, pred): the mean ``rate_delta`` over seeds with its
    interval (``mean, low, high, seeds, significant``), the mean ``rate_alone``,
    ``rate_with`` and ``count_delta``, ``method`` and ``problem``."""
    by = ["source", "target", "gold", "pred"]
    extra = ["rate_alone", "rate_with", "count_delta"]
    return _summary(confusion, by, "rate_delta", extra, method, level)


def summarize_shift(shift: pd.DataFrame, method: str = "t", level: float = 0.95) -> pd.DataFrame:
    """Per (source, target, pred): the mean ``shift`` over seeds with its interval, the
    mean ``share_alone`` and ``share_with``, ``method`` and ``problem``."""
    by = ["source", "target", "pred"]
    return _summary(shift, by, "shift", ["share_alone", "share_with"], method, level)


def _check(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    lacking = [c for c in columns if c not in frame.columns]
    if lacking:
        raise SoiInputError(f"{name}: expected columns {columns}, lacking {lacking}")


def _read(run_id: Any, tracking_uri: str | None, cache: dict) -> pd.DataFrame | str:
    """A run's last-epoch test predictions, or why they cannot be read (read once)."""
    if not isinstance(run_id, str) or not run_id:
        return "no run"
    if run_id not in cache:
        try:
            cache[run_id] = last_epoch_predictions(run_id, SPLIT, tracking_uri)
        except SoiInputError as exc:
            cache[run_id] = str(exc)
    return cache[run_id]


def study_predictions(runs: pd.DataFrame, tracking_uri: str | None = None):
    """(predictions, missing, classes) for :func:`confusion_deltas` from a study's
    ``seed, source, target, run_id`` rows: each run's test trace at its last epoch."""
    _check(runs, [*KEYS, "run_id"], "runs")
    cache: dict = {}
    found, missing, classes = [], [], {}
    for seed, source, target, run_id in runs[[*KEYS, "run_id"]].itertuples(index=False):
        source = None if pd.isna(source) else source
        key = {"seed": seed, "source": source, "target": target}
        trace = _read(run_id, tracking_uri, cache)
        if isinstance(trace, str):
            missing.append(key | {"problem": f"test predictions of run {run_id}: {trace}"})
            continue
        rows = named_predictions(trace, target, trace.attrs.get("label_names", {}))
        if rows.empty:
            why = f"run {run_id} has no test predictions of {target}"
            missing.append(key | {"problem": why})
            continue
        if source is None:
            task = trace.loc[trace["member"] == target, "task"].iloc[0]
            classes.setdefault(target, trace.attrs.get("label_names", {}).get(task))
        found.append(rows.assign(**key))
    columns = [*KEYS, "example_id", "gold", "pred"]
    predictions = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=columns)
    return predictions, pd.DataFrame(missing, columns=[*KEYS, "problem"]), classes


def log_side_effects(
    client: Any,
    parent_run_id: str,
    runs: pd.DataFrame,
    tracking_uri: str | None = None,
    what: str = "",
    method: str = "t",
    factors: pd.DataFrame | None = None,
    shares: pd.DataFrame | None = None,
) -> dict[str, str]:
    """Side effects of a study's sources on its targets, logged to ``parent_run_id``:
    tables ``side_effects_confusion`` (per seed), ``side_effects_summary`` and
    ``side_effects_prediction_shift`` (mean and interval over seeds), and the figure
    ``side_effects`` when any cell was measured; given the study's pair ``factors``
    (``pair_factors``) and its members' class ``shares`` (``class_shares``), the table
    ``side_effects_shift_factors`` (``analysis/shift_factors.py``: what explains the shift
    toward the class each source holds more of than its target). Returns the estimates
    it could not make (``{where: reason}``) for :func:`identified.report`."""
    predictions, missing, classes = study_predictions(runs, tracking_uri)
    confusion = confusion_deltas(predictions, missing, classes)
    summary = summarize_side_effects(confusion, method)
    per_seed = prediction_shift(confusion)
    shift = summarize_shift(per_seed, method)
    log_table(client, parent_run_id, confusion, CONFUSION)
    log_table(client, parent_run_id, summary, SUMMARY)
    log_table(client, parent_run_id, shift, SHIFT)
    problems: dict[str, str] = {}
    if factors is not None and shares is not None and not factors.empty:
        table = sf.shift_factor_table(per_seed, shares, factors)
        log_table(client, parent_run_id, table, sf.SHIFT_FACTORS)
        problems = sf.shift_factor_problems(table)
    if summary["problem"].isna().any():
        seeds = int(summary["seeds"].max())
        title = (
            f"Side effects on each target's confusion matrix{what}: rate with − rate alone "
            f"(rows gold, columns predicted; mean of {seeds} seed(s), test split, last epoch)"
        )
        order = list(dict.fromkeys(runs["target"]))
        figure = side_effects_figure(summary, title, order)
        log_figures(client, parent_run_id, {FIGURE: figure})
    return identified.table_problems({SUMMARY: summary}) | problems

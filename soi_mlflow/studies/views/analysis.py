"""The three views' comparison: each view's significance per ordered pair, the rank
agreement of every two views, and the table, metrics and figure logged to the views
parent (by the study, ``study.py``, after training and by its re-analysis,
``reanalysis.py``, from the children); and an affinity run's view, read from its metrics.

``values`` holds one row per view, seed and ordered pair (view, seed, source, target,
value); ``compute`` one row per view (seeds, example_passes, seconds, runs)."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from soi_mlflow.analysis import identified
from soi_mlflow.analysis.identified import not_identified, with_problems
from soi_mlflow.studies.views.settings import VIEWS, ViewsSettings
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.artifacts import log_figures, log_table
from soi_mlflow.tracking.run import RunHandle

NO_RHO = "fewer than 3 pairs have a value in both views, or one view ranks them all equal"


def views_agreement(values: pd.DataFrame, settings: ViewsSettings) -> dict[str, pd.DataFrame]:
    """Significance per view and pair, and the rank agreement of every two views."""
    # scipy, imported when the views are compared
    from soi_mlflow.analysis.agreement import rank_agreement  # deferred: scipy
    from soi_mlflow.analysis.intervals import summarize  # deferred: scipy

    by = ["view", "source", "target"]
    significance = with_problems(
        summarize(values, by, "value", settings.interval, settings.level), values, by, "value"
    )
    rows = []
    present = [v for v in VIEWS if v in set(values["view"])]
    for a, b in combinations(present, 2):
        rho, low, high = rank_agreement(
            values[values["view"] == a],
            values[values["view"] == b],
            ["source", "target"],
            level=settings.level,
        )
        rows.append(
            {
                "first": a,
                "second": b,
                "spearman": rho,
                "low": low,
                "high": high,
                "pairs": int(values[values["view"] == a].groupby(["source", "target"]).ngroups),
                "seeds_first": int(values.loc[values["view"] == a, "seed"].nunique()),
                "seeds_second": int(values.loc[values["view"] == b, "seed"].nunique()),
                "problem": None if pd.notna(rho) else not_identified(NO_RHO),
            }
        )
    return {"significance": significance, "agreement": pd.DataFrame(rows)}


def with_significant_pairs(compute: pd.DataFrame, significance: pd.DataFrame) -> pd.DataFrame:
    """``compute`` with each view's number of pairs whose interval excludes 0 (its power)."""
    found = significance.groupby("view")["significant"].sum()
    compute["significant_pairs"] = [int(found.get(v, 0)) for v in compute["view"]]
    return compute


def log_views(parent: RunHandle, values, result, compute, settings: ViewsSettings) -> None:
    """Every view's compute and power, the agreement, the tables and the figure, logged to
    the views parent, with what is not identified."""
    metrics = {}
    for row in compute.itertuples():
        metrics[f"compute/{row.view}/example_passes"] = float(row.example_passes)
        metrics[f"compute/{row.view}/seconds"] = float(row.seconds)
        metrics[f"compute/{row.view}/seeds"] = float(row.seeds)
        metrics[f"power/{row.view}/significant_pairs"] = float(row.significant_pairs)
    if settings.budget:
        metrics["compute/budget"] = float(settings.budget)
    metrics["compute/example_passes"] = float(compute["example_passes"].sum())
    metrics["compute/train_seconds"] = float(compute["seconds"].sum())
    for row in result["agreement"].itertuples():
        metrics[f"agreement/{row.first}_vs_{row.second}/spearman"] = float(row.spearman)
    parent.log_metrics(metrics, step=0)
    log_table(parent.client, parent.run_id, values, "views_values")
    log_table(parent.client, parent.run_id, result["significance"], "views_significance")
    log_table(parent.client, parent.run_id, result["agreement"], "views_agreement")
    log_table(parent.client, parent.run_id, compute, "views_compute")
    problems = identified.table_problems(
        {f"views_{k}": result[k] for k in ("significance", "agreement")}, keys=3
    )
    fig = _figure(result, settings, identified.title_note(problems))
    log_figures(parent.client, parent.run_id, {"views_agreement": fig})
    identified.report(parent.client, parent.run_id, problems)


def _figure(result, settings: ViewsSettings, note: str = ""):
    # deferred: matplotlib
    from soi_mlflow.analysis.figures import subplots  # matplotlib, when the figure is drawn

    sig, agree = result["significance"], result["agreement"]
    fig, axes = subplots(1, len(VIEWS) + 1, figsize=(4 * (len(VIEWS) + 1), 4))
    for ax, view in zip(axes, VIEWS, strict=False):
        part = sig[sig["view"] == view]
        labels = [f"{s} -> {t}" for s, t in zip(part["source"], part["target"], strict=True)]
        err = np.vstack([part["mean"] - part["low"], part["high"] - part["mean"]])
        colors = ["tab:red" if s else "tab:gray" for s in part["significant"]]
        ax.errorbar(
            part["mean"],
            range(len(part)),
            xerr=np.clip(np.nan_to_num(err), 0, None),
            fmt="none",
            ecolor="gray",
            capsize=3,
        )
        ax.scatter(part["mean"], range(len(part)), c=colors, zorder=3)
        ax.axvline(0, color="grey", lw=0.6)
        ax.set_yticks(range(len(part)), labels, fontsize=7)
        seeds = int(part["seeds"].max()) if len(part) else 0
        ax.set_title(f"{view}, {seeds} seeds (red: interval excludes 0)", fontsize=8)
    ax = axes[-1]
    labels = [f"{a} vs {b}" for a, b in zip(agree["first"], agree["second"], strict=True)]
    err = np.vstack([agree["spearman"] - agree["low"], agree["high"] - agree["spearman"]])
    ax.errorbar(
        agree["spearman"],
        range(len(agree)),
        xerr=np.clip(np.nan_to_num(err), 0, None),
        fmt="o",
        capsize=3,
    )
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_xlim(-1.05, 1.05)
    ax.set_yticks(range(len(agree)), labels, fontsize=7)
    ax.set_title("rank agreement (Spearman, bootstrap)", fontsize=8)
    budget = f"at {settings.budget:,} example-passes each" if settings.budget else "same seeds"
    fig.suptitle(
        f"Three views of transfer, {budget}, {settings.level:.0%} intervals over seeds{note}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def affinity_values(handle: RunHandle, run: Any) -> list[dict]:
    """The affinity view of one affinity run (a seed): the mean over epochs of each
    ``affinity/<i>_to_<j>`` metric, one row per ordered pair."""
    members = [m for m in run.data.params.get("members", "").split(",") if m]
    out = []
    for key in (f"affinity/{i}_to_{j}" for i in members for j in members if i != j):
        history = handle.client.get_metric_history(run.info.run_id, key)
        i, j = key.removeprefix("affinity/").split("_to_")
        value = float(np.mean([m.value for m in history])) if history else float("nan")
        out.append(
            {
                "view": "affinity",
                "seed": int(run.data.tags.get(tags.SEED, 0)),
                "source": i,
                "target": j,
                "value": value,
            }
        )
    return out

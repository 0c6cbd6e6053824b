"""The analysis of a learning-curve study's points (``study.py`` trains them):
the fits, the worth of each auxiliary set with intervals over seeds, the interaction and
the contextual form, as tables; their figures; and what the points do not determine,
reported as "not identified" (``analysis/identified.py``) in the tables' ``problem``
column, the figure titles and the parent run's description. Shared by the study and by
``soi-mlflow analyze --parent-run-id`` (``reanalysis.py``), which rebuilds the points
from the child runs. The fits and intervals need scipy, the figures matplotlib: both are
imported where they are used, so the study's settings load without them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from soi_mlflow.analysis import identified
from soi_mlflow.analysis.identified import ESTIMATION_ERRORS, not_identified
from soi_mlflow.studies.learning_curve.settings import CurveSettings
from soi_mlflow.tracking.artifacts import log_figures, log_table
from soi_mlflow.tracking.run import RunHandle

ALONE = "alone"
# the tables whose problems the description lists (the per-size tables say the same in
# more rows)
SUMMARY_TABLES = (
    "learning_curve_fits",
    "learning_curve_contextual",
    "learning_curve_worth_over_sizes",
    "learning_curve_interaction_over_sizes",
)


def analyse_points(points: pd.DataFrame, settings: CurveSettings) -> dict[str, pd.DataFrame]:
    """Fits, worth with intervals, the interaction and the contextual form, as tables."""
    from soi_mlflow.analysis.worth import transfer_summary  # deferred: scipy

    fits = _fits(points)
    summary = transfer_summary(points, list(settings.aux), settings.interval, settings.level)
    tables = {
        "learning_curve_points": points,
        "learning_curve_fits": fits,
        "learning_curve_contextual": _contextual(points, settings),
        "learning_curve_worth": summary["worth"],
        "learning_curve_worth_by_seed": summary["worth_by_seed"],
        "learning_curve_worth_over_sizes": summary["worth_over_sizes"],
    }
    if "interaction" in summary:
        tables["learning_curve_interaction"] = summary["interaction"]
        tables["learning_curve_interaction_over_sizes"] = summary["interaction_over_sizes"]
        tables["learning_curve_interaction_by_seed"] = summary["interaction_by_seed"]
    return tables


def _fits(points: pd.DataFrame) -> pd.DataFrame:
    """The better of power law and exponential per curve and auxiliary size (all seeds)."""
    from soi_mlflow.analysis.curves import best_fit  # deferred: scipy

    rows = []
    for (curve, cap), part in points.groupby(["curve", "aux_size"], sort=True):
        means = part.groupby("n")["score"].mean()
        try:
            fit = best_fit(means.index.to_numpy(float), means.to_numpy(float))
        except ESTIMATION_ERRORS as err:
            rows.append(
                {"curve": curve, "aux_size": cap, "form": None, "problem": not_identified(err)}
            )
            continue
        row = {"curve": curve, "aux_size": cap, "form": fit.form, "aic": fit.aic, "rss": fit.rss}
        for name in fit.names:
            low, high = fit.interval(name)
            row |= {name: fit.params[name], f"{name}_stderr": fit.stderr[name]}
            row |= {f"{name}_low": low, f"{name}_high": high}
        rows.append(row | {"problem": None})
    return pd.DataFrame(rows)


def _contextual(points: pd.DataFrame, settings: CurveSettings) -> pd.DataFrame:
    """The contextual form per auxiliary set (with the alone points), or why not."""
    # deferred: scipy
    from soi_mlflow.analysis.curves import (
        contextual_design_problem,
        contextual_ratio,
        fit_contextual,
    )

    rows = []
    alone = points[points["curve"] == ALONE]
    for group in settings.aux_sets():
        name = "+".join(group)
        part = pd.concat([alone, points[points["curve"] == name]])
        problem = contextual_design_problem(part["n"], part["n_aux"])
        row: dict = {"curve": name, "problem": problem and not_identified(problem)}
        if problem is None:
            try:
                fit = fit_contextual(part["n"], part["n_aux"], part["score"])
            except ESTIMATION_ERRORS as err:  # no convergence, a singular covariance
                row["problem"] = not_identified(err)
            else:
                for p in fit.names:
                    low, high = fit.interval(p, settings.level)
                    row |= {p: fit.params[p], f"{p}_stderr": fit.stderr[p]}
                    row |= {f"{p}_low": low, f"{p}_high": high}
                ratio, stderr = contextual_ratio(fit)
                row |= {"worth_per_aux_example": ratio, "worth_per_aux_example_stderr": stderr}
        rows.append(row)
    return pd.DataFrame(rows)


def curve_problems(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """What the study's summary tables report as not identified, by where."""
    return identified.table_problems({k: tables[k] for k in SUMMARY_TABLES if k in tables})


def log_curves(parent: RunHandle, points, tables, settings: CurveSettings) -> dict[str, str]:
    """Log every table and both figures to ``parent``; report what is not identified
    (figure titles, the description's "Not identified" section); returns that."""
    problems = curve_problems(tables)
    for name, frame in tables.items():
        log_table(parent.client, parent.run_id, frame, name)
    note = identified.title_note(problems)
    figs = {"learning_curve": _curve_figure(points, tables["learning_curve_fits"], settings, note)}
    figs["learning_curve_worth"] = _worth_figure(tables, settings, note)
    log_figures(parent.client, parent.run_id, figs)
    identified.report(parent.client, parent.run_id, problems)
    return problems


def _curve_figure(
    points: pd.DataFrame, fits: pd.DataFrame, settings: CurveSettings, note: str = ""
):
    from soi_mlflow.analysis.curves import exponential, power_law  # deferred: scipy
    from soi_mlflow.analysis.figures import colormap, subplots  # deferred: matplotlib

    fig, ax = subplots(figsize=(7.5, 4.8))
    grid = np.geomspace(points["n"].min(), points["n"].max(), 100)
    colors = colormap("tab10")
    for k, ((curve, cap), part) in enumerate(points.groupby(["curve", "aux_size"], sort=True)):
        label = curve if curve == ALONE else f"+ {curve}" + (f" ({cap} each)" if cap else "")
        stats = part.groupby("n")["score"].agg(["mean", "std"]).fillna(0.0)
        ax.errorbar(
            stats.index,
            stats["mean"],
            yerr=stats["std"],
            fmt="o",
            ms=4,
            color=colors(k % 10),
            capsize=3,
            label=label,
        )
        row = fits[(fits["curve"] == curve) & (fits["aux_size"] == cap)]
        if len(row) and row.iloc[0]["form"]:
            r = row.iloc[0]
            func = power_law if r["form"] == "power_law" else exponential
            ax.plot(grid, func(grid, r["c"], r["a"], r["b"]), color=colors(k % 10), lw=1)
    ax.set_xscale("log")
    sizes = sorted(points["n"].unique())  # the trained sizes, not 6x10^1-style log labels
    ax.set_xticks(sizes, [f"{int(n):,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel(f"{settings.target} training examples (n)")
    ax.set_ylabel(f"{settings.target} test accuracy")
    ax.set_title(
        f"Learning curves of {settings.target} (mean ± std over {settings.seeds} seed(s); "
        f"lines: fits){note}",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _worth_figure(tables: dict[str, pd.DataFrame], settings: CurveSettings, note: str = ""):
    """Each set's worth (median over sizes) with its interval; the interaction too."""
    from soi_mlflow.analysis.figures import subplots  # deferred: matplotlib

    worth = tables["learning_curve_worth_over_sizes"]
    labels = [
        f"{c}" + (f" ({a} each)" if a else "")
        for c, a in zip(worth["curve"], worth["aux_size"], strict=True)
    ]
    means, lows, highs = (worth[c].to_numpy(float) for c in ("mean", "low", "high"))
    if "learning_curve_interaction_over_sizes" in tables:
        inter = tables["learning_curve_interaction_over_sizes"]
        labels += ["interaction" + (f" ({a} each)" if a else "") for a in inter["aux_size"]]
        means = np.concatenate([means, inter["mean"].to_numpy(float)])
        lows = np.concatenate([lows, inter["low"].to_numpy(float)])
        highs = np.concatenate([highs, inter["high"].to_numpy(float)])
    err = np.vstack([means - lows, highs - means])
    err = np.clip(np.where(np.isfinite(err), err, 0.0), 0, None)
    fig, ax = subplots(figsize=(7.5, 0.45 * len(labels) + 1.8))
    ax.errorbar(means, range(len(labels)), xerr=err, fmt="o", capsize=3)
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel(f"worth in {settings.target} examples (median over sizes)")
    ax.set_title(
        f"Auxiliary data's worth, {settings.level:.0%} intervals over {settings.seeds} seed(s) "
        f"({settings.interval}){note}",
        fontsize=9,
    )
    fig.tight_layout()
    return fig

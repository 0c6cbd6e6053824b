"""The multi-task learning-curve study: the target alone and with auxiliary members, at
several target sizes and seeds, as child runs of one parent; then the fits."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from soi_mlflow.console import step
from soi_mlflow.data.loaders import load_member
from soi_mlflow.data.mixture import Mixture
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.training import TrainConfig, train, validate_config


@dataclass
class CurveResult:
    parent_run_id: str
    points: pd.DataFrame
    fits: pd.DataFrame
    worth: pd.DataFrame
    ui_command: str


@dataclass
class CurveSettings:
    """The learning-curve study's own options (the training options are TrainConfig's)."""

    target: str
    """the member whose learning curve is measured"""
    aux: tuple[str, ...]
    """auxiliary members trained with the target in the second curve"""
    sizes: tuple[int, ...] = (50, 100, 200, 400, 800)
    """target training-set sizes (at least 3)"""
    seeds: int = 1
    """seeds per size and curve"""
    approx: bool = False
    """warm-start each size from the previous one (about one run per curve)"""


def validate_curve(
    base: TrainConfig, target: str, aux: list[str], sizes: list[int], seeds: int
) -> int:
    """Check everything before training; returns the target's training-set size."""
    if not aux:
        raise SoiInputError("--aux: at least one auxiliary member is needed")
    if target in aux:
        raise SoiInputError(f"the target {target!r} cannot also be auxiliary")
    spec = replace(base.mixture, members=(target, *aux))
    validate_config(replace(base, mixture=spec))
    if len(sizes) < 3:
        raise SoiInputError(f"--sizes: at least 3 sizes are needed for a curve fit, got {sizes}")
    bad = [n for n in sizes if n <= 0]
    if bad:
        raise SoiInputError(f"--sizes: sizes must be positive, got {bad}")
    available = len(load_member(spec.suite, target, "train", data_dir=spec.data_dir))
    too_big = [n for n in sizes if n > available]
    if too_big:
        raise SoiInputError(
            f"--sizes: {too_big} larger than the {available} training examples of {target!r}"
        )
    if seeds < 1:
        raise SoiInputError(f"seeds must be a positive integer, got {seeds!r}")
    return available


def run_learning_curve(
    base: TrainConfig,
    target: str,
    aux: list[str],
    sizes: list[int],
    seeds: int = 1,
    approx: bool = False,
) -> CurveResult:
    """Train the sweep and fit it. ``approx``: instead of training every size from scratch,
    the smallest size trains ``base.epochs`` epochs and each larger size continues from the
    previous size's weights for one epoch on the nested larger subset (the subsets of one
    data seed are nested), so a curve costs about one training run."""
    from soi_mlflow.analysis.curves import (
        best_fit,
        fit_contextual,
        worth_from_contextual,
        worth_from_curve,
    )
    from soi_mlflow.analysis.runs import cache_for

    validate_curve(base, target, aux, sizes, seeds)
    spec = replace(base.mixture, members=(target, *aux))
    n_aux = sum(Mixture(replace(spec, members=tuple(aux), ood=())).member_sizes().values())
    rows = []
    with study_parent(
        replace(base, mixture=spec),
        "learning_curve",
        f"learning-curve-{target}",
        {"sizes": ",".join(map(str, sizes)), "seeds": seeds, "target": target},
        target=target,
        aux=aux,
        seeds=seeds,
        approx=approx,
    ) as parent:
        plan = [
            (s, curve, n) for s in range(seeds) for curve in ("alone", "aux") for n in sorted(sizes)
        ]
        previous: dict[tuple[int, str], str] = {}
        for k, (s, curve, n) in enumerate(plan, 1):
            members = (target,) if curve == "alone" else (target, *aux)
            warm = approx and (s, curve) in previous
            note = " (warm start)" if warm else ""
            step(k, len(plan), f"{target} at {n} examples, {curve}, seed {base.seed + s}{note}")
            config = replace(
                base,
                mixture=replace(spec, members=members, member_max_examples=((target, n),)),
                seed=base.seed + s,
                parent_run_id=parent.run_id,
                run_name=None,
                epochs=1 if warm else base.epochs,
                init_from=previous[(s, curve)] if warm else None,
                log_checkpoint=approx,
                tags={
                    **base.tags,
                    "soi.study": parent.run_id,
                    "soi.curve": curve,
                    "soi.target_size": str(n),
                    "soi.approx": str(approx).lower(),
                },
            )
            start = time.perf_counter()
            result = train(config)
            seconds = time.perf_counter() - start
            if approx:
                previous[(s, curve)] = str(cache_for(parent.tracking_uri).checkpoint(result.run_id))
            metrics = parent.client.get_run(result.run_id).data.metrics
            aux_size = n_aux if curve == "aux" else 0
            rows.append(
                {
                    "seed": base.seed + s,
                    "n": n,
                    "curve": curve,
                    "n_aux": aux_size,
                    "score": metrics[f"test/{target}/acc"],
                    "run_id": result.run_id,
                    "example_passes": (n + aux_size) * config.epochs,
                    "seconds": seconds,
                }
            )
        points = pd.DataFrame(rows)
        fits, worth = _fit(
            points, best_fit, fit_contextual, worth_from_contextual, worth_from_curve
        )
        _log(parent, points, fits, worth, target, seeds)
    return CurveResult(parent.run_id, points, fits, worth, parent.ui_command())


def _fit(points, best_fit, fit_contextual, worth_from_contextual, worth_from_curve):
    fits, curves = [], {}
    for curve, part in points.groupby("curve"):
        fit = best_fit(part["n"], part["score"])
        curves[curve] = fit
        fits.append(
            {
                "curve": curve,
                "form": fit.form,
                "aic": fit.aic,
                "rss": fit.rss,
                **{k: v for k, v in fit.params.items()},
                **{f"{k}_stderr": v for k, v in fit.stderr.items()},
            }
        )
    ctx = fit_contextual(points["n"], points["n_aux"], points["score"])
    fits.append(
        {
            "curve": "contextual",
            "form": "contextual",
            "aic": ctx.aic,
            "rss": ctx.rss,
            **ctx.params,
            **{f"{k}_stderr": v for k, v in ctx.stderr.items()},
        }
    )
    worth = []
    aux_points = points[points["curve"] == "aux"].groupby("n")
    for n, part in aux_points:
        observed = float(part["score"].mean())
        worth.append(
            {
                "n": n,
                "aux_examples": float(part["n_aux"].mean()),
                "score_with_aux": observed,
                "score_alone_fit": float(curves["alone"].predict(n)),
                "worth_from_alone_curve": worth_from_curve(curves["alone"], n, observed),
                "worth_from_contextual": worth_from_contextual(ctx, float(part["n_aux"].mean())),
            }
        )
    return pd.DataFrame(fits), pd.DataFrame(worth)


def _log(parent: RunHandle, points, fits, worth, target: str, seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from soi_mlflow.analysis.curves import exponential, power_law
    from soi_mlflow.analysis.report import log_figures, log_table

    for name, frame in (
        ("learning_curve_points", points),
        ("learning_curve_fits", fits),
        ("learning_curve_worth", worth),
    ):
        log_table(parent.client, parent.run_id, frame, name)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    grid = np.geomspace(points["n"].min(), points["n"].max(), 100)
    for (curve, part), color in zip(
        points.groupby("curve"), ("tab:blue", "tab:orange"), strict=False
    ):
        stats = part.groupby("n")["score"].agg(["mean", "std"]).fillna(0.0)
        ax.errorbar(
            stats.index,
            stats["mean"],
            yerr=stats["std"],
            fmt="o",
            color=color,
            capsize=3,
            label=f"{target} {curve} (mean ± std, {seeds} seed(s))",
        )
        row = fits[fits["curve"] == curve].iloc[0]
        func = power_law if row["form"] == "power_law" else exponential
        ax.plot(
            grid,
            func(grid, row["c"], row["a"], row["b"]),
            color=color,
            lw=1,
            label=f"{curve}: {row['form']} fit",
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"{target} training examples (n)")
    ax.set_ylabel(f"{target} test accuracy")
    ax.set_title(f"Learning curves of {target}, alone and with auxiliary data")
    ax.legend(fontsize=7)
    fig.tight_layout()
    log_figures(parent.client, parent.run_id, {"learning_curve": fig})

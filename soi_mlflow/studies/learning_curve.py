"""The multi-task learning-curve study: the target alone and with auxiliary data, at
several target sizes (and, with ``aux_sizes``, several auxiliary sizes) and seeds, as
child runs of one parent; then the fits, the worth of each auxiliary set in target
examples with intervals over seeds, and the pairwise/contextual interaction.

With two or more auxiliary members the study trains, besides the target alone, the
target with each auxiliary member (pairwise) and with all of them (contextual).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from soi_mlflow.console import step
from soi_mlflow.data.loaders import load_member
from soi_mlflow.errors import SoiInputError
from soi_mlflow.seeds import check_seed
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.training import TrainConfig, train, validate_config

ALONE = "alone"
SETS = ("pairwise+all", "pairwise", "all")


@dataclass
class CurveSettings:
    """What a learning-curve study measures (the training settings are a TrainConfig)."""

    target: str = field(metadata={"help": "the member whose curve is measured"})
    aux: tuple[str, ...] = field(metadata={"help": "auxiliary members (comma-separated)"})
    sizes: tuple[int, ...] = field(
        default=(50, 100, 200, 400, 800), metadata={"help": "target training sizes"}
    )
    aux_sizes: tuple[int, ...] = field(
        default=(),
        metadata={
            "help": "training examples per auxiliary member, at least 2 sizes (identifies "
            "the contextual fit); empty: all of their examples"
        },
    )
    seeds: int = field(default=1, metadata={"help": "training seeds (each a full replicate)"})
    approx: bool = field(
        default=False,
        metadata={"help": "warm-start each size from the previous one (about one run per curve)"},
    )
    sets: str = field(
        default="pairwise+all",
        metadata={
            "help": "with 2+ auxiliary members, the sets trained with the target: "
            "pairwise (each one), all (all together) or pairwise+all (both, and the "
            "interaction)"
        },
    )
    interval: str = field(
        default="t", metadata={"help": "interval over seeds: t (Student) or bootstrap"}
    )
    level: float = field(default=0.95, metadata={"help": "confidence level of the intervals"})

    def aux_sets(self) -> list[tuple[str, ...]]:
        """The auxiliary sets trained with the target, by ``sets``."""
        every = tuple(self.aux)
        if len(every) < 2 or self.sets == "all":
            return [every]
        pairs = [(a,) for a in every]
        return pairs if self.sets == "pairwise" else [*pairs, every]


@dataclass
class CurveResult:
    parent_run_id: str
    points: pd.DataFrame
    fits: pd.DataFrame
    worth: pd.DataFrame  # per set, auxiliary size and target size, with intervals
    tables: dict[str, pd.DataFrame]  # every table logged, by name
    compute: dict[str, float]
    ui_command: str


def validate_curve(base: TrainConfig, settings: CurveSettings) -> dict[str, int]:
    """Check everything before training; returns each member's training-set size."""
    from soi_mlflow.analysis.intervals import METHODS

    target, aux = settings.target, list(settings.aux)
    if not aux:
        raise SoiInputError("--aux: at least one auxiliary member is needed")
    if target in aux:
        raise SoiInputError(f"the target {target!r} cannot also be auxiliary")
    if len(set(aux)) != len(aux):
        raise SoiInputError(f"--aux: members repeated in {aux}")
    spec = replace(base.mixture, members=(target, *aux))
    validate_config(replace(base, mixture=spec))
    sizes = list(settings.sizes)
    if len(set(sizes)) < 3:
        raise SoiInputError(f"--sizes: at least 3 sizes are needed for a curve fit, got {sizes}")
    bad = [n for n in (*sizes, *settings.aux_sizes) if n <= 0]
    if bad:
        raise SoiInputError(f"--sizes/--aux-sizes: sizes must be positive, got {bad}")
    if settings.sets not in SETS:
        raise SoiInputError(f"sets: expected one of {', '.join(SETS)}, got {settings.sets!r}")
    if settings.seeds < 1:
        raise SoiInputError(f"seeds must be a positive integer, got {settings.seeds!r}")
    check_seed(base.seed, "seed", settings.seeds)
    if settings.interval not in METHODS:
        raise SoiInputError(
            f"interval: expected one of {', '.join(METHODS)}, got {settings.interval!r}"
        )
    if not 0 < settings.level < 1:
        raise SoiInputError(f"level: expected a value in (0, 1), got {settings.level!r}")
    available = {
        m: len(
            load_member(
                spec.suite, m, "train", data_dir=spec.data_dir, max_examples=spec.max_examples
            )
        )
        for m in (target, *aux)
    }
    too_big = [n for n in sizes if n > available[target]]
    if too_big:
        raise SoiInputError(
            f"--sizes: {too_big} larger than the {available[target]} training examples "
            f"of {target!r}"
        )
    smallest = min(available[a] for a in aux)
    too_big = [n for n in settings.aux_sizes if n > smallest]
    if too_big:
        raise SoiInputError(
            f"--aux-sizes: {too_big} larger than the {smallest} training examples of the "
            "smallest auxiliary member"
        )
    return available


def run_learning_curve(
    base: TrainConfig,
    target: str,
    aux: list[str],
    sizes: list[int],
    seeds: int = 1,
    approx: bool = False,
    aux_sizes: list[int] | tuple[int, ...] = (),
) -> CurveResult:
    """``learning_curve`` with the settings as arguments (kept for existing callers)."""
    settings = CurveSettings(
        target, tuple(aux), tuple(sizes), tuple(aux_sizes), seeds, approx=approx
    )
    return learning_curve(base, settings)


def _plan(settings: CurveSettings) -> list[tuple[int, str, tuple[str, ...], int | None, int]]:
    """(seed offset, curve name, auxiliary set, auxiliary size or None, target size)."""
    caps: list[int | None] = sorted(settings.aux_sizes) or [None]
    plan = []
    for s in range(settings.seeds):
        plan += [(s, ALONE, (), None, n) for n in sorted(settings.sizes)]
        for group in settings.aux_sets():
            for cap in caps:
                plan += [(s, "+".join(group), group, cap, n) for n in sorted(settings.sizes)]
    return plan


def learning_curve(base: TrainConfig, settings: CurveSettings) -> CurveResult:
    """Train the sweep and analyse it. ``settings.approx``: instead of training every
    size from scratch, the smallest size trains ``base.epochs`` epochs and each larger
    size continues from the previous size's weights for one epoch on the nested larger
    subset (the subsets of one data seed are nested), so a curve costs about one run."""
    from soi_mlflow.analysis.runs import cache_for

    available = validate_curve(base, settings)
    target, aux = settings.target, list(settings.aux)
    spec = replace(base.mixture, members=(target, *aux), ood=())
    rows = []
    study_start = time.perf_counter()
    with study_parent(
        replace(base, mixture=spec),
        "learning_curve",
        f"learning-curve-{target}",
        {
            "sizes": ",".join(map(str, settings.sizes)),
            "aux_sizes": ",".join(map(str, settings.aux_sizes)),
            "seeds": settings.seeds,
            "target": target,
            "interval": f"{settings.interval}, {settings.level}",
        },
        target=target,
        aux=aux,
        seeds=settings.seeds,
        approx=settings.approx,
    ) as parent:
        plan = _plan(settings)
        if len(set(settings.aux_sizes)) < 2:
            print(
                "note: the auxiliary data comes at one size, so the contextual fit will be "
                "reported as not identified (give --aux-sizes with 2+ sizes to fit it)",
                flush=True,
            )
        previous: dict[tuple[int, str, int | None], str] = {}
        for k, (s, curve, group, cap, n) in enumerate(plan, 1):
            chain = (s, curve, cap)
            warm = settings.approx and chain in previous
            aux_note = "" if curve == ALONE else f" + {curve}" + (f" at {cap} each" if cap else "")
            step(
                k,
                len(plan),
                f"{target} at {n} examples{aux_note}, seed {base.seed + s}"
                + (" (warm start)" if warm else ""),
            )
            caps = tuple((a, cap) for a in group if cap is not None)
            config = replace(
                base,
                mixture=replace(
                    spec, members=(target, *group), member_max_examples=((target, n), *caps)
                ),
                seed=base.seed + s,
                parent_run_id=parent.run_id,
                run_name=None,
                epochs=1 if warm else base.epochs,
                init_from=previous[chain] if warm else None,
                log_checkpoint=settings.approx,
                tags={
                    **base.tags,
                    "soi.study": parent.run_id,
                    "soi.curve": curve,
                    "soi.target_size": str(n),
                    "soi.aux_size": str(cap or ""),
                    "soi.approx": str(settings.approx).lower(),
                },
            )
            start = time.perf_counter()
            result = train(config)
            seconds = time.perf_counter() - start
            if settings.approx:
                previous[chain] = str(cache_for(parent.tracking_uri).checkpoint(result.run_id))
            metrics = parent.client.get_run(result.run_id).data.metrics
            per_member = [min(cap, available[a]) if cap else available[a] for a in group]
            rows.append(
                {
                    "seed": base.seed + s,
                    "n": n,
                    "curve": curve,
                    "aux_size": min(per_member) if per_member else 0,
                    "n_aux": sum(per_member),
                    "score": metrics[f"test/{target}/acc"],
                    "run_id": result.run_id,
                    "example_passes": (n + sum(per_member)) * config.epochs,
                    "seconds": seconds,
                }
            )
        points = pd.DataFrame(rows)
        tables = analyse_points(points, settings)
        compute = {
            "compute/example_passes": float(points["example_passes"].sum()),
            "compute/train_seconds": float(points["seconds"].sum()),
            "compute/wall_seconds": time.perf_counter() - study_start,
            "compute/runs": float(len(points)),
        }
        parent.log_metrics(compute, step=0)
        _log(parent, points, tables, settings)
    return CurveResult(
        parent.run_id,
        points,
        tables["learning_curve_fits"],
        tables["learning_curve_worth"],
        tables,
        compute,
        parent.ui_command(),
    )


def analyse_points(points: pd.DataFrame, settings: CurveSettings) -> dict[str, pd.DataFrame]:
    """Fits, worth with intervals, the interaction and the contextual form, as tables."""
    from soi_mlflow.analysis.worth import transfer_summary

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
    from soi_mlflow.analysis.curves import best_fit

    rows = []
    for (curve, cap), part in points.groupby(["curve", "aux_size"], sort=True):
        means = part.groupby("n")["score"].mean()
        try:
            fit = best_fit(means.index.to_numpy(float), means.to_numpy(float))
        except SoiInputError as err:
            rows.append({"curve": curve, "aux_size": cap, "form": None, "problem": str(err)})
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
        row: dict = {"curve": name, "problem": problem}
        if problem is None:
            try:
                fit = fit_contextual(part["n"], part["n_aux"], part["score"])
            except (SoiInputError, RuntimeError) as err:
                row["problem"] = str(err)
            else:
                for p in fit.names:
                    low, high = fit.interval(p, settings.level)
                    row |= {p: fit.params[p], f"{p}_stderr": fit.stderr[p]}
                    row |= {f"{p}_low": low, f"{p}_high": high}
                ratio, stderr = contextual_ratio(fit)
                row |= {"worth_per_aux_example": ratio, "worth_per_aux_example_stderr": stderr}
        rows.append(row)
    return pd.DataFrame(rows)


def _log(parent: RunHandle, points, tables, settings: CurveSettings) -> None:
    from soi_mlflow.analysis.report import log_figures, log_table

    for name, frame in tables.items():
        log_table(parent.client, parent.run_id, frame, name)
    figs = {"learning_curve": _curve_figure(points, tables["learning_curve_fits"], settings)}
    figs["learning_curve_worth"] = _worth_figure(tables, settings)
    log_figures(parent.client, parent.run_id, figs)


def _curve_figure(points: pd.DataFrame, fits: pd.DataFrame, settings: CurveSettings):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from soi_mlflow.analysis.curves import exponential, power_law

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    grid = np.geomspace(points["n"].min(), points["n"].max(), 100)
    colors = plt.get_cmap("tab10")
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
    ax.set_xlabel(f"{settings.target} training examples (n)")
    ax.set_ylabel(f"{settings.target} test accuracy")
    ax.set_title(
        f"Learning curves of {settings.target} (mean ± std over {settings.seeds} seed(s); "
        "lines: fits)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _worth_figure(tables: dict[str, pd.DataFrame], settings: CurveSettings):
    """Each set's worth (median over sizes) with its interval; the interaction too."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(labels) + 1.8))
    ax.errorbar(means, range(len(labels)), xerr=err, fmt="o", capsize=3)
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel(f"worth in {settings.target} examples (median over sizes)")
    ax.set_title(
        f"Auxiliary data's worth, {settings.level:.0%} intervals over {settings.seeds} seed(s) "
        f"({settings.interval})",
        fontsize=9,
    )
    fig.tight_layout()
    return fig

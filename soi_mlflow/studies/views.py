"""Three views of transfer on the same members and seeds, and how well they agree.

For members m_1..m_k and each seed:
- the transfer matrix (joint): T[i -> j] = score(j | trained with i) - score(j alone);
- task affinity: one run of all members with lookahead affinity, Z[i -> j] (mean over
  epochs);
- learning curves: for each target j, j alone and j with each other member i at several
  sizes of j; L[i -> j] = the mean over sizes of j's test-accuracy gain with i's data.
  (The worth of i's data in j examples is in each curve study's own tables; it is left
  out here because it is undefined where j alone stays at chance over the sizes, which
  the built-in pair tasks do at small sizes.)

Each view's value of every ordered pair gets an interval over seeds (and is called
significant when it excludes 0); the views' rank agreement over the pairs is Spearman's
rho of their seed means with a bootstrap interval over seeds. Every view's compute
(training example-passes, seconds) is logged as metrics on the study's parent run, with
a table and a figure of the agreement.

Compute budget. The views cost very different amounts per seed (one affinity run trains
every member once; the transfer matrix trains every member alone and every pair; the
curves train every target at every size with every other member's data). With
``budget`` (training example-passes per view) each view runs as many seeds as that
budget pays for, computed before training from the data sizes, so the views' power and
agreement are compared at the same compute instead of at the same number of seeds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from itertools import combinations

import pandas as pd

from soi_mlflow.common.seeds import check_seed
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.training import TrainConfig, train

VIEWS = ("transfer", "affinity", "curves")
NO_RHO = "fewer than 3 pairs have a value in both views, or one view ranks them all equal"


@dataclass
class ViewsSettings:
    """What the three-views study measures (the training settings are a TrainConfig)."""

    seeds: int = field(
        default=3, metadata={"help": "training seeds of every view (without --budget)"}
    )
    budget: int = field(
        default=0,
        metadata={
            "help": "training example-passes per view: each view runs as many seeds as "
            "this pays for (at least 2); 0 = every view runs --seeds seeds"
        },
    )
    sizes: tuple[int, ...] = field(
        default=(50, 150, 450), metadata={"help": "target sizes of the learning curves"}
    )
    affinity_interval: int = field(
        default=10, metadata={"help": "measure lookahead affinity every K steps"}
    )
    interval: str = field(
        default="t", metadata={"help": "interval over seeds: t (Student) or bootstrap"}
    )
    level: float = field(default=0.95, metadata={"help": "confidence level of the intervals"})


@dataclass
class ViewsResult:
    parent_run_id: str
    values: pd.DataFrame  # per seed: view, source, target, value
    significance: pd.DataFrame  # per view and pair: mean, low, high, significant
    agreement: pd.DataFrame  # per pair of views: spearman, low, high
    compute: pd.DataFrame  # per view: seeds, example_passes, seconds, runs
    ui_command: str


def validate_views(base: TrainConfig, settings: ViewsSettings) -> dict[str, int]:
    """Check everything before training; returns the seeds each view will run."""
    from soi_mlflow.studies.learning_curve import validate_curve

    members = list(base.mixture.members)
    if len(members) < 3:
        raise SoiInputError(
            "the three-views study needs at least 3 members (rank agreement over their pairs)"
        )
    if settings.seeds < 2:
        raise SoiInputError(f"seeds: intervals over seeds need at least 2, got {settings.seeds!r}")
    check_seed(base.seed, "seed", settings.seeds)
    if settings.budget < 0:
        raise SoiInputError(
            f"budget: expected example-passes >= 0 (0: no budget), got {settings.budget!r}"
        )
    if settings.affinity_interval <= 0:
        raise SoiInputError(
            f"affinity-interval must be a positive integer, got {settings.affinity_interval!r}"
        )
    sizes: dict[str, int] = {}
    for target in members:
        sizes = validate_curve(base, _curve_settings(members, target, settings, 1))
    return view_seeds(per_seed_passes(members, sizes, settings.sizes, base.epochs), settings)


def per_seed_passes(
    members: list[str], sizes: dict[str, int], curve_sizes, epochs: int
) -> dict[str, int]:
    """Training example-passes of one seed of each view, from the members' training sizes:
    the transfer matrix trains every member alone and every pair, affinity one run of all
    members, the curves every target alone and with each other member at every size."""
    total = sum(sizes[m] for m in members)
    curves = sum(
        sum(curve_sizes) + sum(n + sizes[a] for a in members if a != t for n in curve_sizes)
        for t in members
    )
    return {
        "transfer": (total + (len(members) - 1) * total) * epochs,
        "affinity": total * epochs,
        "curves": curves * epochs,
    }


def view_seeds(cost: dict[str, int], settings: ViewsSettings) -> dict[str, int]:
    """Seeds per view: ``settings.seeds`` each, or with a budget as many as it pays for."""
    if not settings.budget:
        return {view: settings.seeds for view in VIEWS}
    seeds = {view: settings.budget // cost[view] for view in VIEWS}
    short = [view for view in VIEWS if seeds[view] < 2]
    if short:
        costs = ", ".join(f"{v} {cost[v]:,}" for v in VIEWS)
        raise SoiInputError(
            f"budget: {settings.budget:,} example-passes pays for fewer than 2 seeds of "
            f"{' and '.join(short)} (per seed: {costs}); give at least "
            f"{2 * max(cost.values()):,}, or fewer examples or smaller --sizes"
        )
    return seeds


def _curve_settings(members, target: str, settings: ViewsSettings, seeds: int):
    from soi_mlflow.studies.learning_curve import CurveSettings

    return CurveSettings(
        target,
        tuple(m for m in members if m != target),
        settings.sizes,
        seeds=seeds,
        sets="pairwise",
        interval=settings.interval,
        level=settings.level,
    )


def run_views(
    base: TrainConfig,
    settings: ViewsSettings,
    around_view: Callable[[str], AbstractContextManager] | None = None,
) -> ViewsResult:
    """Run the three views on ``base.mixture.members`` and compare them.

    ``around_view(view)``, when given, is entered around each view's training, once per
    view (an experiment script holds a shared machine lock per view with it)."""
    from soi_mlflow.analysis.agreement import transfer_gains
    from soi_mlflow.data.mixture import Mixture
    from soi_mlflow.studies.learning_curve import learning_curve
    from soi_mlflow.studies.transfer import run_transfer

    base = replace(base, mixture=replace(base.mixture, ood=()))
    seeds = validate_views(base, settings)
    guard = around_view or (lambda view: contextlib.nullcontext())
    members = list(base.mixture.members)
    sizes = Mixture(base.mixture).member_sizes()
    values, compute = [], []
    with study_parent(
        base,
        "views",
        f"views-{'+'.join(members)}",
        {
            "seeds": ",".join(f"{v}={seeds[v]}" for v in VIEWS),
            "budget": settings.budget,
            "sizes": ",".join(map(str, settings.sizes)),
        },
        members=members,
        seeds=max(seeds.values()),
    ) as parent:
        child = replace(
            base, parent_run_id=parent.run_id, tags={**base.tags, "soi.views": parent.run_id}
        )
        # 1. the transfer matrix (its own parent under this one)
        with guard("transfer"):
            start = time.perf_counter()
            transfer = run_transfer(replace(child, run_name=None), "joint", seeds["transfer"])
            seconds = time.perf_counter() - start
        from soi_mlflow.analysis.transfer import transfer_deltas

        deltas = transfer_deltas(transfer.scores)
        values += [
            {
                "view": "transfer",
                "seed": r.seed,
                "source": r.source,
                "target": r.target,
                "value": r.delta,
            }
            for r in deltas.itertuples()
        ]
        passes = seeds["transfer"] * per_seed_passes(members, sizes, (), base.epochs)["transfer"]
        compute.append(
            {
                "view": "transfer",
                "seeds": seeds["transfer"],
                "example_passes": passes,
                "seconds": seconds,
                "runs": transfer.trained,
            }
        )
        # 2. affinity: one run of all members per seed
        passes, seconds = 0, 0.0
        with guard("affinity"):
            for s in range(seeds["affinity"]):
                config = replace(
                    child,
                    seed=base.seed + s,
                    affinity_every=settings.affinity_interval,
                    run_name=None,
                )
                start = time.perf_counter()
                result = train(config)
                seconds += time.perf_counter() - start
                passes += per_seed_passes(members, sizes, (), base.epochs)["affinity"]
                matrix = result.affinity.mean_matrix()
                values += [
                    {
                        "view": "affinity",
                        "seed": base.seed + s,
                        "source": i,
                        "target": j,
                        "value": float(matrix.loc[i, j]),
                    }
                    for i in members
                    for j in members
                    if i != j
                ]
        compute.append(
            {
                "view": "affinity",
                "seeds": seeds["affinity"],
                "example_passes": passes,
                "seconds": seconds,
                "runs": seeds["affinity"],
            }
        )
        # 3. learning curves: each member as target, each other member as auxiliary
        passes, runs, seconds = 0, 0, 0.0
        with guard("curves"):
            for target in members:
                start = time.perf_counter()
                curve = learning_curve(
                    replace(child, run_name=f"views-curve-{target}"),
                    _curve_settings(members, target, settings, seeds["curves"]),
                )
                seconds += time.perf_counter() - start
                passes += int(curve.points["example_passes"].sum())
                runs += len(curve.points)
                gains = transfer_gains(curve.points)
                per_seed = gains.groupby(["seed", "curve"], as_index=False)["value"].mean()
                values += [
                    {
                        "view": "curves",
                        "seed": r.seed,
                        "source": r.curve,
                        "target": target,
                        "value": r.value,
                    }
                    for r in per_seed.itertuples()
                ]
        compute.append(
            {
                "view": "curves",
                "seeds": seeds["curves"],
                "example_passes": passes,
                "seconds": seconds,
                "runs": runs,
            }
        )
        frame = pd.DataFrame(values)
        result = compare_views(frame, settings)
        compute_table = pd.DataFrame(compute)
        found = result["significance"].groupby("view")["significant"].sum()
        compute_table["significant_pairs"] = [int(found.get(v, 0)) for v in compute_table["view"]]
        log_views(parent, frame, result, compute_table, settings)
    return ViewsResult(
        parent.run_id,
        frame,
        result["significance"],
        result["agreement"],
        compute_table,
        parent.ui_command(),
    )


def compare_views(values: pd.DataFrame, settings: ViewsSettings) -> dict[str, pd.DataFrame]:
    """Significance per view and pair, and the rank agreement of every two views."""
    from soi_mlflow.analysis.agreement import rank_agreement
    from soi_mlflow.analysis.identified import not_identified, with_problems
    from soi_mlflow.analysis.intervals import summarize

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


def log_views(parent: RunHandle, values, result, compute, settings: ViewsSettings) -> None:
    from soi_mlflow.analysis import identified
    from soi_mlflow.tracking.artifacts import log_figures, log_table

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
    import numpy as np

    from soi_mlflow.analysis.figures import subplots

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

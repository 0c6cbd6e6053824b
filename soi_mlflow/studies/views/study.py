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
from dataclasses import dataclass, replace

import pandas as pd

from soi_mlflow.analysis.transfer import transfer_deltas
from soi_mlflow.data.mixture import Mixture
from soi_mlflow.studies import learning_curve, transfer
from soi_mlflow.studies.fanout import Child, Fanout, check_study, executor_settings
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.studies.result import StudyResult, deprecated
from soi_mlflow.studies.views.analysis import (
    affinity_values,
    log_views,
    views_agreement,
    with_significant_pairs,
)
from soi_mlflow.studies.views.settings import (
    VIEWS,
    ViewsSettings,
    curve_settings,
    per_seed_passes,
    validate_views,
)
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.tracking.search import search_all
from soi_mlflow.training import TrainConfig


@dataclass
class ViewsResult(StudyResult):
    """Each view's values, their significance, the views' agreement and their compute."""

    values: pd.DataFrame  # per seed: view, source, target, value
    significance: pd.DataFrame  # per view and pair: mean, low, high, significant
    agreement: pd.DataFrame  # per pair of views: spearman, low, high
    compute: pd.DataFrame  # per view: seeds, example_passes, seconds, runs


@deprecated("soi_mlflow.studies.views.run_views", "soi_mlflow.studies.views.run")
def run_views(
    base: TrainConfig,
    settings: ViewsSettings,
    around_view: Callable[[str], AbstractContextManager] | None = None,
) -> ViewsResult:
    return run(base, settings, around_view=around_view)


def run(
    base: TrainConfig,
    settings: ViewsSettings,
    *,
    around_view: Callable[[str], AbstractContextManager] | None = None,
) -> ViewsResult:
    """Run the three views on ``base.mixture.members`` and compare them.

    ``around_view(view)``, when given, is entered around each view's training, once per
    view (an experiment script holds a shared machine lock per view with it)."""
    base = replace(base, mixture=replace(base.mixture, ood=()))
    seeds = validate_views(base, settings)
    check_study(base, settings)
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
        resume=settings.resume,
        members=members,
        seeds=max(seeds.values()),
    ) as parent:
        child = replace(base, parent_run_id=parent.run_id)
        plan = _Plan(
            child,
            members,
            seeds,
            settings,
            per_seed_passes(members, sizes, (), base.epochs),
            parent,
        )
        runs = []
        for view in VIEWS:
            with guard(view):
                run = _RUNNERS[view](plan)
            runs.append(run)
            values += [{"view": view, **row} for row in run.values]
            compute.append(
                {
                    "view": view,
                    "seeds": seeds[view],
                    "example_passes": run.example_passes,
                    "seconds": run.seconds,
                    "runs": run.runs,
                }
            )
        frame = pd.DataFrame(values)
        result = views_agreement(frame, settings)
        compute_table = with_significant_pairs(pd.DataFrame(compute), result["significance"])
        log_views(parent, frame, result, compute_table, settings)
    return ViewsResult(
        frame,
        result["significance"],
        result["agreement"],
        compute_table,
        parent_run_id=parent.run_id,
        ui_command=parent.ui_command(),
        trained=sum(r.trained for r in runs),
        reused=sum(r.reused for r in runs),
    )


@dataclass(frozen=True)
class _Plan:
    """What every view's training needs: the child config (``base`` under the views
    parent), the members, each view's seeds and one seed's example-passes of each view."""

    child: TrainConfig
    members: list[str]
    seeds: dict[str, int]
    settings: ViewsSettings
    passes: dict[str, int]
    parent: RunHandle  # the views parent

    def resumed(self, study: str, match: dict[str, str] | None = None) -> str | None:
        """With ``--resume``: the earlier sub-study (of kind ``study``, with the tags
        ``match``) under the views parent, resumed in turn; None starts a new one."""
        if not self.settings.resume:
            return None
        wanted = {tags.PARENT_RUN_ID: self.parent.run_id, tags.STUDY: study, **(match or {})}
        runs = search_all(self.parent.client, [self.parent.experiment_id], None, wanted)
        return next((r.info.run_id for r in runs), None)


@dataclass
class _ViewRun:
    """One view's per-seed values (seed, source, target, value) and what it cost."""

    values: list[dict]
    example_passes: int
    seconds: float
    runs: int
    trained: int = 0
    reused: int = 0


def _value(seed, source, target, value) -> dict:
    return {"seed": seed, "source": source, "target": target, "value": value}


def _transfer_view(plan: _Plan) -> _ViewRun:
    """The transfer matrix (joint), its own parent under the views parent."""
    seeds = plan.seeds["transfer"]
    start = time.perf_counter()
    settings = transfer.TransferSettings(
        seeds=seeds, resume=plan.resumed("transfer"), **executor_settings(plan.settings)
    )
    result = transfer.run(replace(plan.child, run_name=None), settings)
    seconds = time.perf_counter() - start
    deltas = transfer_deltas(result.scores)
    values = [_value(r.seed, r.source, r.target, r.delta) for r in deltas.itertuples()]
    passes = seeds * plan.passes["transfer"]
    runs = result.trained + result.reused
    return _ViewRun(values, passes, seconds, runs, result.trained, result.reused)


def _affinity_view(plan: _Plan) -> _ViewRun:
    """Task affinity: one run of all members per seed, the mean matrix over epochs (of
    the run's ``affinity/<i>_to_<j>`` metrics, as the re-analysis reads them)."""
    seeds = plan.seeds["affinity"]
    with Fanout(plan.parent, plan.settings) as fan:
        children = []
        for s in range(seeds):
            seed = plan.child.seed + s
            config = replace(
                plan.child,
                seed=seed,
                affinity_every=plan.settings.affinity_interval,
                run_name=None,
            )
            children.append(Child(fan.nested(config, {}), f"affinity seed {seed}"))
        done = fan.run(children)
    values = []
    for d in done:
        run = plan.parent.client.get_run(d.run_id)
        values += [
            {k: v for k, v in row.items() if k != "view"}
            for row in affinity_values(plan.parent, run)
        ]
    seconds = sum(d.seconds for d in done)
    passes = seeds * plan.passes["affinity"]
    return _ViewRun(values, passes, seconds, seeds, fan.trained, fan.reused)


def _curves_view(plan: _Plan) -> _ViewRun:
    """Learning curves: each member as target, each other member as auxiliary; a pair's
    value is the mean over sizes of the target's gain with the auxiliary's data."""
    # deferred: scipy
    from soi_mlflow.analysis.agreement import transfer_gains  # scipy, when it runs

    values, passes, runs, seconds, trained, reused = [], 0, 0, 0.0, 0, 0
    for target in plan.members:
        start = time.perf_counter()
        settings = curve_settings(plan.members, target, plan.settings, plan.seeds["curves"])
        settings = replace(settings, resume=plan.resumed("learning_curve", {tags.TARGET: target}))
        curve = learning_curve.run(replace(plan.child, run_name=f"views-curve-{target}"), settings)
        trained, reused = trained + curve.trained, reused + curve.reused
        seconds += time.perf_counter() - start
        passes += int(curve.points["example_passes"].sum())
        runs += len(curve.points)
        gains = transfer_gains(curve.points)
        per_seed = gains.groupby(["seed", "curve"], as_index=False)["value"].mean()
        values += [_value(r.seed, r.curve, target, r.value) for r in per_seed.itertuples()]
    return _ViewRun(values, passes, seconds, runs, trained, reused)


_RUNNERS: dict[str, Callable[[_Plan], _ViewRun]] = {
    "transfer": _transfer_view,
    "affinity": _affinity_view,
    "curves": _curves_view,
}

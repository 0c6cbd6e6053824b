"""The multi-task learning-curve study: the target alone and with auxiliary data, at
several target sizes (and, with ``aux_sizes``, several auxiliary sizes) and seeds, as
child runs of one parent; then the fits, the worth of each auxiliary set in target
examples with intervals over seeds, and the pairwise/contextual interaction.

With two or more auxiliary members the study trains, besides the target alone, the
target with each auxiliary member (pairwise) and with all of them (contextual).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import pandas as pd

from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.studies.fanout import Child, Done, Fanout, check_study
from soi_mlflow.studies.learning_curve.analysis import ALONE, analyse_points, log_curves
from soi_mlflow.studies.learning_curve.settings import CurveSettings, validate_curve
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.studies.result import StudyResult, deprecated
from soi_mlflow.tracking import tags
from soi_mlflow.training import TrainConfig


@dataclass
class CurveResult(StudyResult):
    """The points (one per child run), the fits, the worth and every table logged."""

    points: pd.DataFrame
    fits: pd.DataFrame
    worth: pd.DataFrame  # per set, auxiliary size and target size, with intervals
    tables: dict[str, pd.DataFrame]  # every table logged, by name
    compute: dict[str, float]


@deprecated(
    "soi_mlflow.studies.learning_curve.run_learning_curve",
    "soi_mlflow.studies.learning_curve.run",
)
def run_learning_curve(
    base: TrainConfig,
    target: str,
    aux: list[str],
    sizes: list[int],
    seeds: int = 1,
    approx: bool = False,
    aux_sizes: list[int] | tuple[int, ...] = (),
) -> CurveResult:
    settings = CurveSettings(
        target, tuple(aux), tuple(sizes), tuple(aux_sizes), seeds, approx=approx
    )
    return run(base, settings)


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


def _waves(plan: list, approx: bool) -> list[list[int]]:
    """The plan's indices in waves: all at once, or with ``approx`` one size of every
    chain (seed, curve, auxiliary size) per wave, each waiting for the size before it."""
    if not approx:
        return [list(range(len(plan)))]
    position: dict[tuple, int] = {}
    waves: list[list[int]] = []
    for i, (s, curve, _, cap, _) in enumerate(plan):
        k = position[s, curve, cap] = position.get((s, curve, cap), -1) + 1
        waves += [[] for _ in range(k + 1 - len(waves))]
        waves[k].append(i)
    return waves


def _curve_child(fan: Fanout, base: TrainConfig, spec, settings: CurveSettings, point, previous):
    """One point of the sweep as a child: the target at ``n`` examples with ``group`` (at
    ``cap`` each), warm-started from the chain's previous size with ``settings.approx``."""
    s, curve, group, cap, n = point
    chain = (s, curve, cap)
    warm = settings.approx and chain in previous
    aux_note = "" if curve == ALONE else f" + {curve}" + (f" at {cap} each" if cap else "")
    what = f"{settings.target} at {n} examples{aux_note}, seed {base.seed + s}"
    caps = tuple((a, cap) for a in group if cap is not None)
    config = replace(
        base,
        mixture=replace(
            spec,
            members=(settings.target, *group),
            member_max_examples=((settings.target, n), *caps),
        ),
        seed=base.seed + s,
        run_name=None,
        epochs=1 if warm else base.epochs,
        init_from=previous[chain] if warm else None,
        log_checkpoint=settings.approx,
    )
    own = {
        tags.CURVE: curve,
        tags.TARGET_SIZE: str(n),
        tags.AUX_SIZE: str(cap or ""),
        tags.APPROX: str(settings.approx).lower(),
    }
    what += " (warm start)" if warm else ""
    return Child(fan.nested(config, own), what, checkpoint=settings.approx)


@deprecated(
    "soi_mlflow.studies.learning_curve.learning_curve", "soi_mlflow.studies.learning_curve.run"
)
def learning_curve(base: TrainConfig, settings: CurveSettings) -> CurveResult:
    return run(base, settings)


def run(base: TrainConfig, settings: CurveSettings) -> CurveResult:
    """Train the sweep and analyse it. ``settings.approx``: instead of training every
    size from scratch, the smallest size trains ``base.epochs`` epochs and each larger
    size continues from the previous size's weights for one epoch on the nested larger
    subset (the subsets of one data seed are nested), so a curve costs about one run."""
    available = validate_curve(base, settings)
    check_study(base, settings)
    target, aux = settings.target, list(settings.aux)
    spec = replace(base.mixture, members=(target, *aux), ood=())
    rows = []
    study_start = time.perf_counter()
    with (
        study_parent(
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
            resume=settings.resume,
        ) as parent,
        Fanout(parent, settings) as fan,
    ):
        plan = _plan(settings)
        fan.total = len(plan)
        if len(set(settings.aux_sizes)) < 2:
            print(
                "note: the auxiliary data comes at one size, so the contextual fit will be "
                "reported as not identified (give --aux-sizes with 2+ sizes to fit it)",
                flush=True,
            )
        cache = cache_for(parent.tracking_uri)
        previous: dict[tuple[int, str, int | None], str] = {}
        done: dict[int, Done] = {}
        epochs: dict[int, int] = {}
        for wave in _waves(plan, settings.approx):
            children = [_curve_child(fan, base, spec, settings, plan[i], previous) for i in wave]
            for i, c, d in zip(wave, children, fan.run(children), strict=True):
                done[i], epochs[i] = d, c.config.epochs
                if settings.approx:  # the chain's next size starts from these weights
                    previous[plan[i][0], plan[i][1], plan[i][3]] = str(cache.checkpoint(d.run_id))
        for i, (s, curve, group, cap, n) in enumerate(plan):
            d = done[i]
            metrics = parent.client.get_run(d.run_id).data.metrics
            per_member = [min(cap, available[a]) if cap else available[a] for a in group]
            rows.append(
                {
                    "seed": base.seed + s,
                    "n": n,
                    "curve": curve,
                    "aux_size": min(per_member) if per_member else 0,
                    "n_aux": sum(per_member),
                    "score": metrics[f"test/{target}/acc"],
                    "run_id": d.run_id,
                    "example_passes": (n + sum(per_member)) * epochs[i],
                    "seconds": d.seconds,
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
        log_curves(parent, points, tables, settings)
    return CurveResult(
        points,
        tables["learning_curve_fits"],
        tables["learning_curve_worth"],
        tables,
        compute,
        **fan.result_fields(),
    )

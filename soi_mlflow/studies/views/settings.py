"""What the three-views study measures (:class:`ViewsSettings`), the check of it before
anything trains, and what each view costs per seed (with ``budget``: how many seeds each
view runs); the study (``study.py``), its analysis and its re-analysis read it."""

from __future__ import annotations

from dataclasses import dataclass, field

from soi_mlflow.common.seeds import check_seed
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.fanout import StudySettings, executor_settings
from soi_mlflow.studies.learning_curve.settings import CurveSettings, validate_curve
from soi_mlflow.training import TrainConfig

VIEWS = ("transfer", "affinity", "curves")


@dataclass
class ViewsSettings(StudySettings):
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


def validate_views(base: TrainConfig, settings: ViewsSettings) -> dict[str, int]:
    """Check everything before training; returns the seeds each view will run."""
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
        sizes = validate_curve(base, curve_settings(members, target, settings, 1))
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


def curve_settings(members, target: str, settings: ViewsSettings, seeds: int) -> CurveSettings:
    """The learning-curve study of the curves view for ``target``: every other member as
    auxiliary data, one at a time."""
    return CurveSettings(
        target,
        tuple(m for m in members if m != target),
        settings.sizes,
        seeds=seeds,
        sets="pairwise",
        interval=settings.interval,
        level=settings.level,
        **executor_settings(settings),
    )

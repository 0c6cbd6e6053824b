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

import pandas as pd

from soi_mlflow.common.seeds import check_seed
from soi_mlflow.data.loaders import load_member
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.curve_analysis import ALONE, analyse_points, log_curves
from soi_mlflow.studies.fanout import Child, Done, Fanout, StudySettings, check_study
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.studies.result import StudyResult, deprecated
from soi_mlflow.training import TrainConfig, validate_config

SETS = ("pairwise+all", "pairwise", "all")


@dataclass
class CurveSettings(StudySettings):
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
class CurveResult(StudyResult):
    """The points (one per child run), the fits, the worth and every table logged."""

    points: pd.DataFrame
    fits: pd.DataFrame
    worth: pd.DataFrame  # per set, auxiliary size and target size, with intervals
    tables: dict[str, pd.DataFrame]  # every table logged, by name
    compute: dict[str, float]


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
    tags = {
        "soi.study": fan.parent.run_id,
        "soi.curve": curve,
        "soi.target_size": str(n),
        "soi.aux_size": str(cap or ""),
        "soi.approx": str(settings.approx).lower(),
    }
    what += " (warm start)" if warm else ""
    return Child(fan.nested(config, tags), what, checkpoint=settings.approx)


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
    from soi_mlflow.analysis.runs import cache_for

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
        parent_run_id=parent.run_id,
        ui_command=parent.ui_command(),
        trained=fan.trained,
        reused=fan.reused,
    )

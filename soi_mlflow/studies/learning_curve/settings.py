"""What a learning-curve study measures (:class:`CurveSettings`) and the check of it
before anything trains; the study (``study.py``), its analysis (``analysis.py``) and its
re-analysis (``reanalysis.py``) all read it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from soi_mlflow.common.seeds import check_seed
from soi_mlflow.data.loaders import load_member
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.fanout import StudySettings
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


def validate_curve(base: TrainConfig, settings: CurveSettings) -> dict[str, int]:
    """Check everything before training; returns each member's training-set size."""
    # deferred: scipy
    from soi_mlflow.analysis.intervals import METHODS  # scipy: imported when checked

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

"""The label-noise detection benchmark (docs/noise.md): train on a built-in noise setting
over several seeds and score each detector against the planted truth.

Per seed *s*, the built-in suite is generated with seed *s* (other words, other examples,
other flips) and a model is trained with seed *s*; its training trace gives the trace
detectors (``analysis/noise.py``). With ``cl_folds = k >= 2`` the same data is also split
into k folds and k more models are trained, each without one fold, to get out-of-sample
probabilities for confident learning (and their plain 1 - p(label), ``oos_confidence``).
Everything is logged under one parent run: a table per seed, a summary with the spread
over seeds (standard deviation with ddof=1), a breakdown of what each detector's top-k
holds, and a figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from soi_mlflow.analysis import identified
from soi_mlflow.analysis.noise import detector_scores, score_detectors
from soi_mlflow.analysis.runs import load_examples, load_traces
from soi_mlflow.common import process_state
from soi_mlflow.common.seeds import check_seed
from soi_mlflow.data.builtin import BuiltinOptions, builtin_suite
from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.fanout import Child, Fanout, StudySettings, check_study
from soi_mlflow.studies.noise_benchmark.analysis import (
    flag_sets,
    summarize,
    top_k_breakdown,
    with_unscored,
)
from soi_mlflow.studies.noise_benchmark.folds import cross_validated
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.studies.result import StudyResult, deprecated
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.artifacts import log_figures, log_table
from soi_mlflow.training import TrainConfig, validate_config

HARDEST = "boundary+asymmetric+duplicates"


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class NoiseBenchmarkSettings(StudySettings):
    """What the noise benchmark trains on and how (defaults: the hardest built-in noise)."""

    members: tuple[str, ...] = field(
        default=("sentiment",), metadata=_help("built-in members trained together")
    )
    axis: str = field(default="task", metadata=_help("the members' axis: task, source or lang"))
    noise: str = field(
        default=HARDEST,
        metadata=_help("noise mechanisms, '+'-joined: uniform, boundary, asymmetric, duplicates"),
    )
    mislabeled_rate: float = field(
        default=0.15, metadata=_help("share of mislabeled examples (domains keep their own)")
    )
    ambiguous_rate: float = field(default=0.04, metadata=_help("share of ambiguous examples"))
    boundary_share: float = field(
        default=0.2, metadata=_help("share of clean near-boundary examples (noise 'boundary')")
    )
    train_size: int = field(default=600, metadata=_help("training examples per member"))
    eval_size: int = field(default=100, metadata=_help("validation and test examples per member"))
    seeds: int = field(default=3, metadata=_help("number of seeds (data and training)"))
    first_seed: int = field(default=0, metadata=_help("the first seed"))
    epochs: int = field(default=8, metadata=_help("training epochs"))
    cl_folds: int = field(
        default=3,
        metadata=_help("cross-validation folds for confident learning (k more trainings); 0: off"),
    )
    model: str = field(default="tiny", metadata=_help("encoder: tiny, a model name or a folder"))
    batch_size: int = field(default=16, metadata=_help("batch size"))
    lr: float | None = field(default=None, metadata=_help("learning rate (default per model)"))
    experiment: str | None = field(default=None, metadata=_help("MLflow experiment name"))
    tracking_uri: str | None = field(default=None, metadata=_help("MLflow tracking URI"))
    run_name: str | None = field(default=None, metadata=_help("name of the parent run"))
    progress: bool = field(default=False, metadata=_help("show training progress bars"))

    def train_config(self) -> TrainConfig:
        """The children's training options from these settings (the command's way; from
        Python, any TrainConfig serves: its mixture and seed are set per seed)."""
        return _config(self, self.first_seed)


@dataclass
class NoiseBenchmarkResult(StudyResult):
    """Every detector's scores per seed, their summary over seeds, and the top-k breakdown."""

    per_seed: pd.DataFrame  # seed, detector, auroc, ap, p_at_k, base_rate
    summary: pd.DataFrame  # per detector: mean and std of each metric over seeds
    breakdown: pd.DataFrame  # per seed and detector: what the top k holds


def _options(settings: NoiseBenchmarkSettings, seed: int) -> BuiltinOptions:
    sizes = {"train": settings.train_size, "validation": settings.eval_size}
    return BuiltinOptions(
        seed=seed,
        sizes=sizes | {"test": settings.eval_size},
        ambiguous_rate=settings.ambiguous_rate,
        mislabeled_rate=settings.mislabeled_rate,
        noise=settings.noise,
        boundary_share=settings.boundary_share,
    )


def _config(settings: NoiseBenchmarkSettings, seed: int) -> TrainConfig:
    spec = MixtureSpec(builtin_suite(_options(settings, seed)), settings.axis, settings.members)
    return TrainConfig(
        spec,
        epochs=settings.epochs,
        seed=seed,
        model=settings.model,
        batch_size=settings.batch_size,
        lr=settings.lr,
        experiment=settings.experiment,
        tracking_uri=settings.tracking_uri,
        progress=settings.progress,
    )


def seed_config(base: TrainConfig, settings: NoiseBenchmarkSettings, seed: int) -> TrainConfig:
    """``base`` on the built-in noise suite of ``seed`` (data and training seed)."""
    spec = MixtureSpec(builtin_suite(_options(settings, seed)), settings.axis, settings.members)
    return replace(base, mixture=spec, seed=seed)


def validate_benchmark(settings: NoiseBenchmarkSettings) -> TrainConfig:
    """Refuse bad settings before any training; returns the first seed's config."""
    return validate(settings.train_config(), settings)


def validate(base: TrainConfig, settings: NoiseBenchmarkSettings) -> TrainConfig:
    """Refuse bad settings before any training; returns the first seed's config."""
    for name in ("seeds", "train_size", "eval_size"):
        if getattr(settings, name) < 1:
            raise SoiInputError(
                f"{name} must be a positive integer, got {getattr(settings, name)!r}"
            )
    if settings.cl_folds == 1 or settings.cl_folds < 0:
        raise SoiInputError(f"cl_folds must be 0 (off) or at least 2, got {settings.cl_folds!r}")
    check_seed(settings.first_seed, "first_seed", settings.seeds)
    config = seed_config(base, settings, settings.first_seed)
    validate_config(config)
    if settings.cl_folds:
        try:  # cleanlab's import adds an ignore-all warning filter, sklearn's KMP_* variables
            with process_state.kept():
                import cleanlab  # noqa: F401
        except ImportError as exc:
            raise SoiInputError(
                "cl_folds > 0 needs cleanlab: pip install 'soi-mlflow[noise]', or set cl_folds 0"
            ) from exc
    return config


@deprecated(
    "soi_mlflow.studies.noise_benchmark.run_noise_benchmark",
    "soi_mlflow.studies.noise_benchmark.run(settings.train_config(), settings)",
)
def run_noise_benchmark(settings: NoiseBenchmarkSettings) -> NoiseBenchmarkResult:
    return run(settings.train_config(), settings)


def run(config: TrainConfig, settings: NoiseBenchmarkSettings) -> NoiseBenchmarkResult:
    """Train ``settings.seeds`` models (plus ``cl_folds`` each), score every detector.
    ``config`` gives the training options; its mixture and seed are set per seed from
    ``settings`` (the built-in noise suite of that seed)."""

    base = validate(config, settings)
    check_study(base, settings)
    name = settings.run_name or f"noise-benchmark-{settings.noise}-{'+'.join(settings.members)}"
    params = {
        "noise": settings.noise,
        "mislabeled_rate": settings.mislabeled_rate,
        "ambiguous_rate": settings.ambiguous_rate,
        "boundary_share": settings.boundary_share,
        "train_size": settings.train_size,
        "seeds": settings.seeds,
        "cl_folds": settings.cl_folds,
    }
    rows, breakdowns = [], []
    with (
        study_parent(
            replace(base, run_name=name),
            "noise_benchmark",
            name,
            params,
            resume=settings.resume,
            members=list(settings.members),
            setting="study",
            noise=settings.noise,
        ) as parent,
        Fanout(parent, settings) as fan,
    ):
        fan.total = settings.seeds * (1 + settings.cl_folds)
        own = {tags.ROLE: "detect"}
        seeds = [settings.first_seed + k for k in range(settings.seeds)]
        configs = [seed_config(base, settings, seed) for seed in seeds]
        detect = fan.run(
            [
                Child(
                    fan.nested(replace(c, run_name=f"detect-seed{c.seed}"), own),
                    f"detect seed {c.seed}",
                )
                for c in configs
            ]
        )
        every = [
            detect_scores(c, d.run_id, parent.tracking_uri)
            for c, d in zip(configs, detect, strict=True)
        ]
        if settings.cl_folds:
            every = cross_validated(fan, configs, every, settings.cl_folds)
        for seed, scores in zip(seeds, every, strict=True):
            truth = (scores["planted"] == "mislabeled").to_numpy()
            detectors = [c for c in DETECTOR_COLUMNS if c in scores.columns]
            table = score_detectors(scores[detectors], truth)
            table = with_unscored(table, scores[detectors], truth).reset_index()
            table = table.merge(flag_sets(scores, truth), on="detector", how="left")
            rows.append(table.assign(seed=seed))
            breakdowns.append(top_k_breakdown(scores, detectors).assign(seed=seed))
        per_seed = pd.concat(rows, ignore_index=True)
        breakdown = pd.concat(breakdowns, ignore_index=True)
        summary = summarize(per_seed)
        _log(parent, per_seed, summary, breakdown, settings)
    return NoiseBenchmarkResult(
        per_seed,
        summary,
        breakdown,
        **fan.result_fields(),
    )


DETECTOR_COLUMNS = (
    "confidence",
    "aum",
    "forgetting",
    "soi_flag",
    "oos_confidence",
    "confident_learning",
)


def detect_scores(config: TrainConfig, run_id: str, tracking_uri: str) -> pd.DataFrame:
    """Every trace detector's score per example of the detection run ``run_id``, with the
    example table's ``label``, ``planted``, ``evidence`` and ``noise``."""

    trace = load_traces(run_id, "train", tracking_uri)
    examples = load_examples(run_id, "train", tracking_uri)
    suite = config.mixture.suite
    members = [suite.member(m) for m in config.mixture.members]
    binary = {m.task for m in members if len(m.label_names or ()) == 2}
    scores = detector_scores(trace, binary)
    keep = [c for c in ("example_id", "label", "planted", "evidence", "noise") if c in examples]
    scores = scores.merge(examples[keep], on="example_id", how="left", validate="1:1")
    if scores["planted"].isna().any():
        raise SoiInputError(f"run {run_id}: traced examples missing from its example table")
    return scores


def _log(parent, per_seed, summary, breakdown, settings: NoiseBenchmarkSettings) -> None:
    # deferred: matplotlib
    from soi_mlflow.analysis import figures  # matplotlib, when the figure is drawn

    client, run_id = parent.client, parent.run_id
    log_table(client, run_id, per_seed, "noise_benchmark_seeds")
    log_table(client, run_id, summary, "noise_benchmark_summary")
    log_table(client, run_id, breakdown, "noise_benchmark_top_k")
    client.log_text(run_id, summary.round(4).to_csv(), "tables/noise_benchmark_summary.csv")
    metrics = {
        f"noise/{det}/{col}": float(v)
        for det, row in summary.iterrows()
        for col, v in row.items()
        if col.endswith("_mean") and np.isfinite(v)
    }
    parent.log_metrics(metrics, step=0)
    problems = identified.table_problems({"noise_benchmark_summary": summary.reset_index()}, 1)
    title = (
        f"Noise detection on {'+'.join(settings.members)}, noise {settings.noise} "
        f"(rate {settings.mislabeled_rate})\nmean ± std (ddof=1) over {settings.seeds} seed(s)"
    )
    title += identified.title_note(problems)
    log_figures(client, run_id, {"noise_benchmark": figures.detector_scores(summary, title)})
    identified.report(client, run_id, problems)

"""The transfer study: every member alone and every pair (jointly, or one after the
other), as child runs of one parent; then the transfer matrix and its latent traits."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Literal

import pandas as pd

from soi_mlflow.common.console import step
from soi_mlflow.common.seeds import check_seed
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.studies.result import StudyResult, deprecated
from soi_mlflow.tracking.run import RunHandle, soi_tags
from soi_mlflow.tracking.search import search_all
from soi_mlflow.training import TrainConfig, train, validate_config
from soi_mlflow.training.key import TRAINING_KEY_TAG, training_key

MODES = ("joint", "sequential")


@dataclass
class TransferResult(StudyResult):
    """The transfer matrix (mean and std over seeds), its latent traits and the scores."""

    mean: pd.DataFrame
    std: pd.DataFrame
    traits: dict[str, pd.DataFrame]
    scores: pd.DataFrame | None = None  # seed, source, target, score, run_id


def validate(base: TrainConfig, settings: TransferSettings) -> None:
    """Refuse a bad study before anything is trained."""
    if len(base.mixture.members) < 2:
        raise SoiInputError("a transfer study needs at least two members")
    if settings.mode not in MODES:
        raise SoiInputError(f"mode: expected one of {', '.join(MODES)}, got {settings.mode!r}")
    if settings.seeds < 1:
        raise SoiInputError(f"seeds must be a positive integer, got {settings.seeds!r}")
    validate_config(base)
    check_seed(base.seed, "seed", settings.seeds)


@dataclass
class TransferSettings:
    """The transfer study's own options (the training options are TrainConfig's)."""

    mode: Literal["joint", "sequential"] = "joint"
    """joint: i and j trained together; sequential: fine-tuned on i, then on j"""
    seeds: int = 1
    """seeds per run"""
    reuse: bool = False
    """reuse matching finished runs of the experiment instead of training them again"""


class _Runner:
    """Finds a finished run with the same training key (with ``reuse``) or trains one."""

    def __init__(self, base: TrainConfig, parent: RunHandle, reuse: bool) -> None:
        self.base, self.parent, self.reuse = base, parent, reuse
        self.trained = self.reused = 0
        self.total = 0  # runs this study needs, for the progress lines
        self.example_passes = 0  # training example-passes of the runs trained here

    def find(self, config: TrainConfig, sequence: str | None, checkpoint: bool) -> str | None:
        """A finished run of the experiment whose full training settings equal
        ``config``'s (its ``soi.training_key``, see ``training/key.py``)."""
        spec = config.mixture
        tags = soi_tags(axis=spec.axis, members=list(spec.members), seed=config.seed, stage=1)
        tags[TRAINING_KEY_TAG] = training_key(config)
        for run in search_all(
            self.parent.client, [self.parent.experiment_id], "attributes.status = 'FINISHED'", tags
        ):
            if (
                run.data.tags.get("soi.sequence") != sequence
                or run.data.tags.get("soi.study") == "transfer"
            ):
                continue
            if checkpoint and not self.parent.client.list_artifacts(run.info.run_id, "checkpoint"):
                continue
            return run.info.run_id
        return None

    def run(
        self,
        members: tuple[str, ...],
        seed: int,
        sequence: str | None = None,
        init_from: str | None = None,
        checkpoint: bool = False,
    ) -> str:
        k = self.trained + self.reused + 1
        what = f"{sequence or '+'.join(members)} seed {seed}"
        tags = {**self.base.tags, "soi.study_run": self.parent.run_id}
        if sequence:
            tags["soi.sequence"] = sequence
        config = replace(
            self.base,
            mixture=replace(self.base.mixture, members=members),
            seed=seed,
            parent_run_id=self.parent.run_id,
            tags=tags,
            init_from=init_from,
            log_checkpoint=checkpoint,
            run_name=None,
        )
        if self.reuse:
            found = self.find(config, sequence, checkpoint)
            if found:
                self.reused += 1
                step(k, self.total, f"{what}: reusing run {found}")
                return found
        step(k, self.total, what)
        from soi_mlflow.data.mixture import Mixture

        self.trained += 1
        run_id = train(config).run_id
        self.example_passes += sum(Mixture(config.mixture).member_sizes().values()) * config.epochs
        return run_id


def _score(client, run_id: str, target: str) -> float:
    value = client.get_run(run_id).data.metrics.get(f"test/{target}/acc")
    if value is None:
        raise SoiInputError(f"run {run_id} has no metric test/{target}/acc")
    return float(value)


@deprecated("soi_mlflow.studies.transfer.run_transfer", "soi_mlflow.studies.transfer.run")
def run_transfer(
    base: TrainConfig, mode: str = "joint", seeds: int = 1, reuse: bool = False
) -> TransferResult:
    return run(base, TransferSettings(mode, seeds, reuse))  # type: ignore[arg-type]


def run(base: TrainConfig, settings: TransferSettings) -> TransferResult:
    """Build T for ``base.mixture.members`` (OOD members are ignored)."""
    from soi_mlflow.analysis.runs import cache_for

    validate(base, settings)
    mode, seeds, reuse = settings.mode, settings.seeds, settings.reuse
    members = list(base.mixture.members)
    base = replace(base, mixture=replace(base.mixture, ood=()))
    rows = []
    with study_parent(
        base,
        "transfer",
        f"transfer-{mode}-{'+'.join(members)}",
        {"mode": mode, "seeds": seeds, "reuse": reuse},
        members=members,
        mode=mode,
        seeds=seeds,
    ) as parent:
        runner = _Runner(base, parent, reuse)
        pairs = len(members) * (len(members) - 1) // (2 if mode == "joint" else 1)
        runner.total = seeds * (len(members) + pairs)
        for s in range(seeds):
            seed = base.seed + s
            alone = {m: runner.run((m,), seed, checkpoint=mode == "sequential") for m in members}
            rows += [
                {
                    "seed": seed,
                    "source": None,
                    "target": m,
                    "score": _score(parent.client, r, m),
                    "run_id": r,
                }
                for m, r in alone.items()
            ]
            if mode == "joint":
                for i, j in itertools.combinations(members, 2):
                    run_id = runner.run((i, j), seed)
                    for src, tgt in ((i, j), (j, i)):
                        rows.append(
                            {
                                "seed": seed,
                                "source": src,
                                "target": tgt,
                                "score": _score(parent.client, run_id, tgt),
                                "run_id": run_id,
                            }
                        )
            else:
                cache = cache_for(parent.tracking_uri)
                for i, j in itertools.permutations(members, 2):
                    ckpt = cache.checkpoint(alone[i])
                    run_id = runner.run((j,), seed, sequence=f"{i}>{j}", init_from=str(ckpt))
                    rows.append(
                        {
                            "seed": seed,
                            "source": i,
                            "target": j,
                            "score": _score(parent.client, run_id, j),
                            "run_id": run_id,
                        }
                    )
        scores = pd.DataFrame(rows)
        mean, std, traits = log_transfer(parent, scores, members, mode, seeds)
        parent.log_metrics(
            {
                "compute/example_passes": float(runner.example_passes),
                "compute/runs": float(runner.trained),
            },
            step=0,
        )
    return TransferResult(
        mean,
        std,
        traits,
        scores,
        parent_run_id=parent.run_id,
        ui_command=parent.ui_command(),
        trained=runner.trained,
        reused=runner.reused,
    )


def log_transfer(
    parent: RunHandle, scores: pd.DataFrame, members: list[str], mode: str, seeds: int
):
    """The matrix, its latent traits, their figures and the scores, logged to ``parent``."""
    from soi_mlflow.analysis import identified
    from soi_mlflow.analysis.transfer import (
        biplot,
        heatmap,
        latent_traits,
        transfer_intervals,
        transfer_matrix,
    )
    from soi_mlflow.tracking.artifacts import log_figures, log_table
    from soi_mlflow.tracking.run import metric_safe

    mean, std = transfer_matrix(scores, members)
    intervals = transfer_intervals(scores)
    log_table(parent.client, parent.run_id, intervals, "transfer_intervals")
    problems = identified.table_problems({"transfer_intervals": intervals})
    try:
        traits = latent_traits(mean)
    except SoiInputError as exc:  # missing cells: keep the matrix, say why there is no PCA
        reason = identified.not_identified(exc)
        problems["latent traits (PCA)"] = reason
        parent.client.set_tag(parent.run_id, "soi.latent_traits", reason[:5000])
        traits = {"explained": pd.DataFrame({"component": [None], "problem": [reason]})}
    log_table(parent.client, parent.run_id, scores, "transfer_scores")
    log_table(parent.client, parent.run_id, mean, "transfer_mean")
    parent.log_metrics(
        {
            f"transfer/{metric_safe(src)}/{metric_safe(tgt)}": float(v)
            for (src, tgt), v in mean.stack().items()
            if pd.notna(v)
        },
        step=0,
    )
    log_table(parent.client, parent.run_id, std, "transfer_std")
    for name, frame in traits.items():
        log_table(parent.client, parent.run_id, frame, f"transfer_{name}")
    what = f"{mode}, test accuracy, mean ± std over {seeds} seed(s)"
    note = identified.title_note(problems)
    figs = {"transfer_matrix": heatmap(mean, std, f"Transfer T[source, target] ({what}){note}")}
    if "source_scores" in traits:
        figs["transfer_biplot"] = biplot(traits, f"Latent traits of the transfer matrix ({mode})")
    log_figures(parent.client, parent.run_id, figs)
    identified.report(parent.client, parent.run_id, problems)
    return mean, std, traits if "source_scores" in traits else {}


def study_scores(parent_run_id: str, tracking_uri: str | None = None):
    """(scores, parent run) of a transfer study: the runs of its scores table (reused runs
    count too) with their current metrics, or its children's when the study stopped
    before logging that table."""
    from soi_mlflow.analysis.runs import cache_for
    from soi_mlflow.tracking.health import get_run

    cache = cache_for(tracking_uri)
    run = get_run(cache.client, parent_run_id, cache.tracking_uri, "parent run id")
    if run.data.tags.get("soi.study") != "transfer":
        raise SoiInputError(f"run {parent_run_id} is not the parent run of a transfer study")
    logged = {a.path for a in cache.client.list_artifacts(parent_run_id, "tables")}
    if "tables/transfer_scores.parquet" not in logged:
        return _scores_from_children(cache.client, run), run
    scores = pd.read_parquet(cache.file(parent_run_id, "tables/transfer_scores.parquet"))
    scores["score"] = [
        cache.client.get_run(r).data.metrics.get(f"test/{t}/acc", float("nan"))
        for r, t in zip(scores["run_id"], scores["target"], strict=True)
    ]
    return scores, run


def reanalyze_transfer(parent_run_id: str, tracking_uri: str | None = None):
    """Rebuild a transfer study's matrix from its runs (``study_scores``) and log it to
    the parent again; returns (mean, std, traits)."""
    from soi_mlflow.analysis.runs import cache_for

    cache = cache_for(tracking_uri)
    scores, run = study_scores(parent_run_id, tracking_uri)
    members = run.data.tags["soi.members"].split(",")
    order = [m for m in run.data.params.get("members", "").split(",") if m in members] or members
    parent = RunHandle(
        cache.client, parent_run_id, run.info.experiment_id, cache.tracking_uri, created=False
    )
    mode = run.data.tags.get("soi.mode", "joint")
    seeds = int(run.data.tags.get("soi.seeds", "1"))
    return log_transfer(parent, scores, order, mode, seeds)


def _scores_from_children(client, parent) -> pd.DataFrame:
    """The scores table of a transfer study, from its finished child runs (alone: one
    member; joint: a pair, both ways; sequential: ``soi.sequence`` SOURCE>TARGET)."""
    rows = []
    filters = f"tags.mlflow.parentRunId = '{parent.info.run_id}' and attributes.status = 'FINISHED'"
    for run in search_all(client, [parent.info.experiment_id], filters):
        tags = run.data.tags
        members, seed = tags.get("soi.members", "").split(","), int(tags.get("soi.seed", 0))
        sequence = tags.get("soi.sequence")
        if sequence:
            pairs = [tuple(sequence.split(">", 1))]
        elif len(members) == 1:
            pairs = [(None, members[0])]
        else:
            pairs = list(itertools.permutations(members, 2))
        for source, target in pairs:
            score = run.data.metrics.get(f"test/{target}/acc")
            rows.append(
                {
                    "seed": seed,
                    "source": source,
                    "target": target,
                    "score": float("nan") if score is None else float(score),
                    "run_id": run.info.run_id,
                }
            )
    if not rows:
        raise SoiInputError(f"run {parent.info.run_id}: a transfer study without finished runs")
    return pd.DataFrame(rows)

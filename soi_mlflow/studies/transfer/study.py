"""The transfer study: every member alone and every pair (jointly, or one after the
other), as child runs of one parent; then the transfer matrix and its latent traits. With
``targets``, only the runs the cells into those members need (a column of T each)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Literal

import pandas as pd

from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.common.seeds import check_seed
from soi_mlflow.data.mixture import Mixture
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.fanout import Child, Fanout, StudySettings, check_study
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.studies.result import StudyResult, deprecated
from soi_mlflow.studies.transfer.analysis import log_transfer
from soi_mlflow.tracking import tags
from soi_mlflow.training import TrainConfig, validate_config

MODES = ("joint", "sequential")
ALL_TARGETS = "all"  # the ``targets`` param of a study of the whole matrix


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
    members = base.mixture.members
    if isinstance(settings.targets, str):
        raise SoiInputError(
            f"targets: expected a sequence of member names, got the string {settings.targets!r} "
            f"(write ({settings.targets!r},))"
        )
    for target in settings.targets:
        if target not in members:
            raise SoiInputError(
                f"targets: {target!r} is not a member of the study (members: {', '.join(members)})"
            )
    if len(set(settings.targets)) < len(settings.targets):
        raise SoiInputError(f"targets: a member is named twice ({', '.join(settings.targets)})")
    validate_config(base)
    check_seed(base.seed, "seed", settings.seeds)


@dataclass
class TransferSettings(StudySettings):
    """The transfer study's own options (the training options are TrainConfig's)."""

    mode: Literal["joint", "sequential"] = "joint"
    """joint: i and j trained together; sequential: fine-tuned on i, then on j"""
    seeds: int = 1
    """seeds per run"""
    reuse: bool = False
    """reuse matching finished runs of the experiment instead of training them again"""
    targets: tuple[str, ...] = ()
    """train only the cells into these members, comma-separated (every member is still a
    source); none: the whole matrix. One target of n members takes n runs a seed in joint
    mode (the matrix: n(n+1)/2), 2n-1 in sequential mode (the matrix: n*n)"""


def _child(
    base: TrainConfig,
    fan: Fanout,
    members: tuple[str, ...],
    seed: int,
    sequence: str | None = None,
    init_from: str | None = None,
    checkpoint: bool = False,
) -> Child:
    """One run of the matrix: ``members`` together (or, with ``sequence`` SOURCE>TARGET,
    the target fine-tuned from the source's checkpoint ``init_from``)."""
    own = {tags.SEQUENCE: sequence} if sequence else {}
    config = replace(
        base,
        mixture=replace(base.mixture, members=members),
        seed=seed,
        init_from=init_from,
        log_checkpoint=checkpoint,
        run_name=None,
    )
    return Child(
        fan.nested(config, own),
        f"{sequence or '+'.join(members)} seed {seed}",
        checkpoint=checkpoint,
        match_tags={tags.SEQUENCE: sequence},
    )


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
    """Build T for ``base.mixture.members`` (OOD members are ignored), or only its
    columns of ``settings.targets``."""
    validate(base, settings)
    check_study(base, settings)
    mode, seeds, reuse = settings.mode, settings.seeds, settings.reuse
    members = list(base.mixture.members)
    targets = [m for m in members if m in settings.targets] or members  # in member order
    base = replace(base, mixture=replace(base.mixture, ood=()))
    name = f"transfer-{mode}-{'+'.join(members)}"
    if settings.targets:
        name += f"-into-{'+'.join(targets)}"
    with (
        study_parent(
            base,
            "transfer",
            name,
            {
                "mode": mode,
                "seeds": seeds,
                "reuse": reuse,
                "targets": ",".join(targets) if settings.targets else ALL_TARGETS,
            },
            resume=settings.resume,
            absent={"targets": ALL_TARGETS},  # a parent logged before targets existed
            members=members,
            mode=mode,
            seeds=seeds,
        ) as parent,
        Fanout(parent, settings, reuse_experiment=reuse) as fan,
    ):
        sequential = mode == "sequential"
        cells = _cells(members, targets, sequential)
        # sequential: every source's checkpoint comes from its run alone
        singles = members if sequential else targets
        fan.total = seeds * (len(singles) + len(cells))
        seed_list = [base.seed + s for s in range(seeds)]
        alone = [(seed, m) for seed in seed_list for m in singles]
        wave = [
            _child(base, fan, (m,), seed, checkpoint=sequential and _feeds(m, targets))
            for seed, m in alone
        ]
        if not sequential:
            joint = [(seed, p) for seed in seed_list for p in cells]
            wave += [_child(base, fan, p, seed) for seed, p in joint]
        done = fan.run(wave)
        runs = {(seed, (m,)): d for (seed, m), d in zip(alone, done[: len(alone)], strict=True)}
        children = list(zip(wave, done, strict=True))
        # every run alone: a target's baseline, or (sequential) a source's own-run factors
        rows = [_row(parent.client, seed, None, m, runs[(seed, (m,))].run_id) for seed, m in alone]
        if sequential:
            cache = cache_for(parent.tracking_uri)
            order = [(seed, p) for seed in seed_list for p in cells]
            wave = [
                _child(
                    base,
                    fan,
                    (j,),
                    seed,
                    sequence=f"{i}>{j}",
                    init_from=str(cache.checkpoint(runs[(seed, (i,))].run_id)),
                )
                for seed, (i, j) in order
            ]
            done = fan.run(wave)
            children += list(zip(wave, done, strict=True))
            for (seed, (i, j)), d in zip(order, done, strict=True):
                rows.append(_row(parent.client, seed, i, j, d.run_id))
        else:
            for (seed, (i, j)), d in zip(joint, done[len(alone) :], strict=True):
                for src, tgt in ((i, j), (j, i)):
                    if tgt in targets:
                        rows.append(_row(parent.client, seed, src, tgt, d.run_id))
        passes = sum(
            sum(Mixture(c.config.mixture).member_sizes().values()) * c.config.epochs
            for c, d in children
            if not d.reused
        )
        scores = pd.DataFrame(rows)
        mean, std, traits = log_transfer(
            parent, scores, members, mode, seeds, base, targets=targets if settings.targets else ()
        )
        parent.log_metrics(
            {"compute/example_passes": float(passes), "compute/runs": float(fan.trained)},
            step=0,
        )
    return TransferResult(
        mean,
        std,
        traits,
        scores,
        **fan.result_fields(),
    )


def _cells(members: list[str], targets: list[str], sequential: bool) -> list[tuple[str, str]]:
    """The runs with a source: sequential, (source, target) for every target; joint,
    each pair once that holds a target (one run gives both of its directions)."""
    if sequential:
        return [(i, j) for i, j in itertools.permutations(members, 2) if j in targets]
    return [p for p in itertools.combinations(members, 2) if set(p) & set(targets)]


def _feeds(member: str, targets: list[str]) -> bool:
    """Whether ``member`` is the source of a target other than itself."""
    return any(t != member for t in targets)


def _row(client, seed: int, source: str | None, target: str, run_id: str) -> dict:
    """One cell's score: the target's test accuracy in ``run_id``."""
    score = _score(client, run_id, target)
    return {"seed": seed, "source": source, "target": target, "score": score, "run_id": run_id}

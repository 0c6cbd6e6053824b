"""Two-stage fine-tuning (docs/design.md): per seed, stage 1 (and, with several members,
each member alone), then for every selection a stage 2 that continues from that seed's
stage-1 checkpoint on the selected examples, beside a random control of the same size and
budget; all children of one parent, trained through the study executor."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from soi_mlflow.analysis.runs import cache_for, soi_table
from soi_mlflow.analysis.soi import get_taxonomy
from soi_mlflow.errors import SoiInputError
from soi_mlflow.model.mlflow_model import check_model_uri, model_run_id
from soi_mlflow.studies.fanout import Child, Fanout, check_study
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.studies.result import StudyResult, deprecated
from soi_mlflow.studies.two_stage.analysis import NOT_IDENTIFIED_TABLE, log_two_stage
from soi_mlflow.studies.two_stage.selections import Selection, control_ids, select_per_seed
from soi_mlflow.studies.two_stage.settings import TwoStageSettings, seed_list
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.artifacts import log_table
from soi_mlflow.tracking.health import check_tracking, get_run
from soi_mlflow.tracking.run import resolve_tracking_uri
from soi_mlflow.training import TrainConfig, validate_config


@dataclass
class TwoStageResult(StudyResult):
    """The first seed's stage 1, the first stage 2 trained (the first seed and selection
    that selected examples) with its control and size, the accuracy table (mean over
    seeds), every child (``runs``: seed, role, selection, member, run_id, size), the
    paired intervals, stage 2's SOI migration and the (selection, seed) pairs dropped as
    not identified because the selection was empty there (``not_identified``)."""

    stage1_run_id: str
    stage2_run_id: str
    control_run_id: str
    selected: int
    table: pd.DataFrame
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    intervals: pd.DataFrame = field(default_factory=pd.DataFrame)
    migration: pd.DataFrame = field(default_factory=pd.DataFrame)
    intervals_text: dict[str, pd.DataFrame] = field(default_factory=dict)
    """the intervals as short text per selection, for a terminal under 100 columns"""
    not_identified: pd.DataFrame = field(default_factory=pd.DataFrame)


def _model_run(base: TrainConfig, stage1_run_id: str | None, stage1_model: str) -> str:
    """The run a stage-1 model was logged from, checked before any work."""
    if stage1_run_id is not None:
        raise SoiInputError("give stage1-run-id or stage1-model, not both")
    check_model_uri(stage1_model)
    return model_run_id(stage1_model, resolve_tracking_uri(base.tracking_uri))


def check_stage1(base: TrainConfig, run_id: str) -> None:
    """An existing stage-1 run must exist, be FINISHED and hold a ``checkpoint/``: checked
    before the study's parent run is opened."""
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(base.tracking_uri)
    check_tracking(uri)
    client = MlflowClient(uri)
    run = get_run(client, run_id, uri, "stage-1 run id")
    if run.info.status != "FINISHED":
        raise SoiInputError(f"stage-1 run {run_id} is {run.info.status}; pick a FINISHED run")
    if not client.list_artifacts(run_id, "checkpoint"):
        raise SoiInputError(
            f"stage-1 run {run_id} has no checkpoint/ artifact: train it with "
            "--log-checkpoint true, or leave --stage1-run-id out to train stage 1 here"
        )


@deprecated("soi_mlflow.studies.two_stage.run_two_stage", "soi_mlflow.studies.two_stage.run")
def run_two_stage(
    base: TrainConfig,
    selection: Selection,
    stage2_epochs: int,
    stage1_run_id: str | None = None,
    stage1_model: str | None = None,
) -> TwoStageResult:
    selection.validate()  # as given: the settings hold one selection
    settings = TwoStageSettings.of(
        selection, stage2_epochs, stage1_run_id=stage1_run_id, stage1_model=stage1_model
    )
    return run(base, settings)


def _stage1_children(
    base: TrainConfig, fan: Fanout, seeds: list[int], singles: bool
) -> tuple[list[Child], list[dict[str, Any]]]:
    """Per seed: stage 1 on the whole mixture (with its checkpoint) and, with ``singles``,
    each member alone; with the rows of the study's runs table they fill."""
    wave, rows = [], []
    for seed in seeds:
        config = replace(base, seed=seed, log_checkpoint=True, stage=1, run_name=None)
        wave.append(Child(fan.nested(config, {}), f"stage 1 seed {seed}", checkpoint=True))
        rows.append({"seed": seed, "role": "stage 1", "selection": "", "member": ""})
        for m in base.mixture.members if singles else ():
            alone = replace(
                base,
                mixture=replace(base.mixture, members=(m,)),
                seed=seed,
                stage=1,
                register_as=None,
                run_name=None,
            )
            wave.append(Child(fan.nested(alone, {}), f"{m} alone (stage 1) seed {seed}"))
            rows.append({"seed": seed, "role": "single", "selection": "", "member": m})
    return wave, rows


def _stage2_child(
    base: TrainConfig,
    fan: Fanout,
    seed: int,
    ids: np.ndarray,
    init_from: str,
    stage1_run_id: str,
    selection: str | None,
) -> Child:
    """Stage 2 of one seed on ``ids`` (``selection`` None: the random control)."""
    spec = base.mixture
    label = "control" if selection is None else "stage2"
    config = replace(
        base,
        mixture=replace(spec, train_ids=frozenset(int(i) for i in ids)),
        seed=seed,
        init_from=init_from,
        register_as=None,  # a study registers its stage-1 model only
        stage=2,
        run_name=f"{label}-{selection or len(ids)}-{'+'.join(spec.members)}-seed{seed}",
    )
    own = {
        tags.STAGE1_RUN_ID: stage1_run_id,
        tags.SELECTION: selection or f"random:{len(ids)}",
        tags.CONTROL: str(selection is None).lower(),
    }
    what = (
        f"control on {len(ids)} random examples seed {seed}"
        if selection is None
        else f"stage 2 on {len(ids)} examples ({selection}) seed {seed}"
    )
    match = {tags.CONTROL: own[tags.CONTROL], tags.SELECTION: own[tags.SELECTION]}
    return Child(fan.nested(config, own), what, match_tags=match)


def _say_dropped(dropped: pd.DataFrame) -> None:
    """One terminal line per (selection, seed) dropped as not identified."""
    for r in dropped.itertuples(index=False):
        print(
            f"not identified: the stage-2 selection {r.selection} matches no training example "
            f"of stage-1 run {r.stage1_run_id} (seed {r.seed}); no stage 2 or control for it "
            "in that seed",
            flush=True,
        )


def run(base: TrainConfig, settings: TwoStageSettings) -> TwoStageResult:
    """Per seed, stage 1 (or an existing stage-1 run, or a model logged by one), then each
    selection's stage 2 and the random controls; a selection empty in a seed is dropped
    there as not identified (an error only when every selection is empty in every seed).
    ``settings.stage1_model`` is a model URI (``models:/NAME/VERSION``,
    ``runs:/RUN_ID/model``): stage 2 starts from its weights, and its run's traces give
    the SOI table."""
    selections = settings.check()
    stage1_run_id, stage1_model = settings.stage1_run_id, settings.stage1_model
    validate_config(base)
    check_study(base, settings)
    seeds = seed_list(base.seed, settings)
    if stage1_model is not None:
        stage1_run_id = _model_run(base, stage1_run_id, stage1_model)
    elif stage1_run_id is not None:
        check_stage1(base, stage1_run_id)
    spec = base.mixture
    singles = settings.single_baselines and len(spec.members) > 1 and stage1_run_id is None
    taxonomy = selections[0].taxonomy
    names = [s.describe() for s in selections]
    with (
        study_parent(
            base,
            "two_stage",
            f"two-stage-{'+'.join(spec.members)}",
            {
                "stage2_epochs": settings.stage2_epochs,
                "selection": "; ".join(names),
                "taxonomy": get_taxonomy(taxonomy).name,
                "seeds": settings.seeds,
                "single_baselines": singles,
            },
            resume=settings.resume,
            members=list(spec.members),
            ood=list(spec.ood) or None,
            selection="; ".join(names),
            seeds=settings.seeds,
        ) as parent,
        Fanout(parent, settings) as fan,
    ):
        if stage1_run_id is None:
            wave, rows = _stage1_children(base, fan, seeds, singles)
            fan.total = len(wave) + len(seeds) * 2 * len(selections)  # at most: equal sizes
            done = fan.run(wave)
            rows = [{**r, "run_id": d.run_id} for r, d in zip(rows, done, strict=True)]
        else:
            rows = [{"seed": seeds[0], "role": "stage 1", "selection": "", "member": ""}]
            rows[0]["run_id"] = stage1_run_id
        stage1 = {r["seed"]: r["run_id"] for r in rows if r["role"] == "stage 1"}
        cache = cache_for(parent.tracking_uri)
        tables = {
            seed: soi_table(stage1[seed], taxonomy=taxonomy, tracking_uri=parent.tracking_uri)
            for seed in seeds
        }
        per_seed, dropped = select_per_seed(selections, tables, stage1)
        _say_dropped(dropped)
        if len(dropped):  # before stage 2: a re-analysis of a study that stops reads it
            log_table(parent.client, parent.run_id, dropped, NOT_IDENTIFIED_TABLE)
        wave, planned = [], []
        base2 = replace(base, epochs=settings.stage2_epochs)
        for seed in seeds:
            s1, chosen = stage1[seed], per_seed[seed]
            init_from = stage1_model or str(cache.checkpoint(s1))
            for name, ids in chosen.items():
                wave.append(_stage2_child(base2, fan, seed, ids, init_from, s1, name))
                planned.append(
                    {"seed": seed, "role": "stage 2", "selection": name, "size": len(ids)}
                )
            for size in sorted({len(ids) for ids in chosen.values()}):
                ids = control_ids(tables[seed]["example_id"].to_numpy(), seed, size)
                wave.append(_stage2_child(base2, fan, seed, ids, init_from, s1, None))
                planned.append(
                    {"seed": seed, "role": "control", "selection": f"random:{size}", "size": size}
                )
        fan.total = fan.done + len(wave)
        done = fan.run(wave)
        rows += [
            {**r, "member": "", "run_id": d.run_id} for r, d in zip(planned, done, strict=True)
        ]
        runs = pd.DataFrame(rows)
        runs["size"] = runs["size"].astype("Int64")  # none on stage 1 and the members alone
        title = (
            f"Accuracy after stage 1, stage 2 ({'; '.join(names)}, {settings.stage2_epochs} "
            f"epochs) and random controls of the same sizes, mean over {len(seeds)} seed(s)"
        )
        logged = log_two_stage(
            parent, runs, list(spec.members), list(spec.ood), title, taxonomy, tables, dropped
        )
    first = runs[runs["role"] == "stage 2"].iloc[0]
    control = runs[
        (runs["role"] == "control")
        & (runs["seed"] == first["seed"])
        & (runs["size"] == first["size"])
    ]
    return TwoStageResult(
        str(runs[runs["role"] == "stage 1"]["run_id"].iloc[0]),
        str(first["run_id"]),
        str(control["run_id"].iloc[0]),
        int(first["size"]),
        logged.table,
        runs=runs,
        intervals=logged.intervals,
        migration=logged.migration,
        intervals_text=logged.terminal,
        not_identified=dropped,
        **fan.result_fields(),
    )

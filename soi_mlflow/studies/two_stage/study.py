"""Two-stage fine-tuning (docs/design.md): stage 2 continues from the stage-1 checkpoint on an
SOI-selected subset; a control spends the same budget on a random subset of that size."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from soi_mlflow.analysis.cartography import REGIONS, forgetting_rank, regions
from soi_mlflow.analysis.runs import cache_for, soi_table
from soi_mlflow.analysis.soi import Taxonomy, get_taxonomy
from soi_mlflow.errors import SoiInputError
from soi_mlflow.model.mlflow_model import check_model_uri, model_run_id
from soi_mlflow.studies.fanout import Child, Fanout, StudySettings, check_study
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.studies.result import StudyResult, deprecated
from soi_mlflow.studies.two_stage.analysis import log_two_stage
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.health import check_tracking, get_run
from soi_mlflow.tracking.run import resolve_tracking_uri
from soi_mlflow.training import TrainConfig, validate_config

METRICS = ("confidence", "variability", "correctness", "forgetting_events")
TIE_STREAM = 0x71E5  # the random stream that breaks ties in a top/bottom selection
CONTROL_STREAM = 0x2517  # the random stream of the control's subset


@dataclass(frozen=True)
class Selection:
    """Which stage-1 training examples stage 2 trains on: subsets of a registered SOI
    taxonomy, a region, or the top (or bottom) fraction by a cartography metric."""

    subsets: tuple[str, ...] = ()
    region: str | None = None
    metric: str | None = None
    fraction: float | None = None
    highest: bool = True
    taxonomy: str | Taxonomy = "default"

    def validate(self) -> None:
        kinds = sum([bool(self.subsets), self.region is not None, self.metric is not None])
        if kinds != 1:
            raise SoiInputError(
                "give exactly one stage-2 selection: subsets, a region, or a top fraction"
            )
        tax = get_taxonomy(self.taxonomy)
        if self.subsets:
            tax.resolve(list(self.subsets))
        if self.region is not None and self.region not in REGIONS:
            raise SoiInputError(f"unknown region {self.region!r}; regions: {', '.join(REGIONS)}")
        if self.metric is not None:
            if self.metric not in METRICS:
                raise SoiInputError(
                    f"unknown metric {self.metric!r}; metrics: {', '.join(METRICS)}"
                )
            if self.fraction is None or not 0 < self.fraction <= 1:
                raise SoiInputError(f"the top fraction must be in (0, 1], got {self.fraction!r}")

    def describe(self) -> str:
        if self.subsets:
            name = get_taxonomy(self.taxonomy).name
            return "subsets:" + ",".join(self.subsets) + ("" if name == "default" else f"@{name}")
        if self.region is not None:
            return f"region:{self.region}"
        return f"{'top' if self.highest else 'bottom'}:{self.metric}:{self.fraction}"

    def select(self, table: pd.DataFrame, seed: int = 0) -> np.ndarray:
        """The selected example ids of a stage-1 SOI table (computed with this
        selection's taxonomy). A top/bottom fraction ranks the examples that have the
        metric (too few observed epochs: NaN, not ranked) and breaks ties by a random
        draw seeded by ``seed``, so tied examples of every member are equally likely."""
        if self.subsets:
            names = get_taxonomy(self.taxonomy).resolve(list(self.subsets))
            keep = table["soi"].astype(str).isin(names)
            return table.loc[keep, "example_id"].to_numpy()
        if self.region is not None:
            return table.loc[regions(table).astype(str) == self.region, "example_id"].to_numpy()
        ranked = table.sort_values("example_id")  # the draw must not depend on row order
        values = (
            forgetting_rank(ranked)
            if self.metric == "forgetting_events"
            else ranked[self.metric].to_numpy(dtype=float)
        )
        has = ~np.isnan(values)
        ids, values = ranked["example_id"].to_numpy()[has], values[has]
        k = max(1, int(round(self.fraction * len(ids)))) if len(ids) else 0
        ties = np.random.default_rng([seed, TIE_STREAM]).random(len(ids))
        order = np.lexsort((ties, -values if self.highest else values))
        return ids[order[:k]]


def parse_top(value: str) -> tuple[str, float]:
    """``METRIC:FRACTION`` (``variability:0.3``)."""
    metric, _, fraction = value.partition(":")
    try:
        return metric, float(fraction)
    except ValueError:
        raise SoiInputError(
            f"expected METRIC:FRACTION such as variability:0.3, got {value!r}"
        ) from None


DEFAULT_SUBSETS = ("forgettable", "never_learned")
"""Stage 2's selection when none is given (with the default taxonomy), docs/design.md 2.6."""


@dataclass
class TwoStageSettings(StudySettings):
    """Two-stage fine-tuning's own options: at most one stage-2 selection (none: the
    subsets forgettable,never_learned of the default taxonomy), stage 2's length, and
    optionally an existing stage-1 run (the training options are TrainConfig's)."""

    stage2_subsets: tuple[str, ...] = ()
    """SOI names or groups to train stage 2 on (default, when no other selection is given:
    forgettable,never_learned)"""
    stage2_region: str | None = None
    """a cartography region: easy_to_learn, ambiguous or hard_to_learn"""
    stage2_top: str | None = None
    """METRIC:FRACTION, the highest fraction by a cartography metric, e.g. variability:0.3"""
    stage2_bottom: str | None = None
    """METRIC:FRACTION, the lowest fraction by a cartography metric"""
    stage2_epochs: int = 2
    """stage-2 epochs"""
    stage1_run_id: str | None = None
    """use this finished run (with a checkpoint) as stage 1 instead of training one"""
    stage1_model: str | None = None
    """start stage 2 from this logged or registered model (models:/NAME/VERSION, runs:/ID/model)"""
    taxonomy: str = "default"
    """a registered SOI taxonomy: stage 1's SOI and the names in --stage2-subsets"""

    @classmethod
    def of(cls, selection: Selection, stage2_epochs: int = 2, **options: Any) -> TwoStageSettings:
        """The settings of ``selection`` (its taxonomy may be a Taxonomy object, from
        Python) with stage 2's length and ``options`` (stage1_run_id, stage1_model)."""
        top = f"{selection.metric}:{selection.fraction!r}" if selection.metric else None
        return cls(
            stage2_subsets=tuple(selection.subsets),
            stage2_region=selection.region,
            stage2_top=top if selection.highest else None,
            stage2_bottom=None if selection.highest else top,
            stage2_epochs=stage2_epochs,
            taxonomy=selection.taxonomy,  # type: ignore[arg-type]
            **options,
        )

    def selection(self) -> Selection:
        """The stage-2 selection these settings give; none given (and the default
        taxonomy): :data:`DEFAULT_SUBSETS`. Two given stay two (refused by ``validate``;
        a top and a bottom fraction, here)."""
        if self.stage2_top and self.stage2_bottom:
            raise SoiInputError(
                "stage2_top, stage2_bottom: give exactly one stage-2 selection, not both"
            )
        top = self.stage2_top or self.stage2_bottom
        metric, fraction = parse_top(top) if top else (None, None)
        subsets = tuple(self.stage2_subsets)
        if not (subsets or top) and self.stage2_region is None and self.taxonomy == "default":
            subsets = DEFAULT_SUBSETS
        return Selection(
            subsets=subsets,
            region=self.stage2_region,
            metric=metric,
            fraction=fraction,
            highest=not self.stage2_bottom,
            taxonomy=self.taxonomy,
        )


@dataclass
class TwoStageResult(StudyResult):
    """The three runs, the number of selected examples and the accuracy table."""

    stage1_run_id: str
    stage2_run_id: str
    control_run_id: str
    selected: int
    table: pd.DataFrame


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


def run(base: TrainConfig, settings: TwoStageSettings) -> TwoStageResult:
    """Stage 1 (or an existing stage-1 run, or a model logged by one), then stage 2 and its
    random control. ``settings.stage1_model`` is a model URI (``models:/NAME/VERSION``,
    ``runs:/RUN_ID/model``): stage 2 starts from its weights, and its run's traces give
    the SOI table."""
    selection, stage2_epochs = settings.selection(), settings.stage2_epochs
    stage1_run_id, stage1_model = settings.stage1_run_id, settings.stage1_model
    validate_config(base)
    check_study(base, settings)
    selection.validate()
    if stage2_epochs <= 0:
        raise SoiInputError(f"stage-2 epochs must be a positive integer, got {stage2_epochs!r}")
    if stage1_model is not None:
        stage1_run_id = _model_run(base, stage1_run_id, stage1_model)
    elif stage1_run_id is not None:
        check_stage1(base, stage1_run_id)
    spec = base.mixture
    with (
        study_parent(
            base,
            "two_stage",
            f"two-stage-{'+'.join(spec.members)}",
            {
                "stage2_epochs": stage2_epochs,
                "selection": selection.describe(),
                "taxonomy": get_taxonomy(selection.taxonomy).name,
            },
            resume=settings.resume,
            members=list(spec.members),
            ood=list(spec.ood) or None,
            selection=selection.describe(),
        ) as parent,
        Fanout(parent, settings) as fan,
    ):
        if stage1_run_id is None:
            fan.total = 3
            config = replace(base, log_checkpoint=True, stage=1, run_name=None)
            child = Child(fan.nested(config, {}), "stage 1", checkpoint=True)
            stage1_run_id = fan.run([child])[0].run_id
        init_from = stage1_model or str(cache_for(parent.tracking_uri).checkpoint(stage1_run_id))
        table = soi_table(
            stage1_run_id, taxonomy=selection.taxonomy, tracking_uri=parent.tracking_uri
        )
        chosen = selection.select(table, base.seed)
        if len(chosen) == 0:
            raise SoiInputError(
                f"the stage-2 selection {selection.describe()} matches no training example of "
                f"stage-1 run {stage1_run_id}; no stage-2 training was started"
            )
        rng = np.random.default_rng([base.seed, CONTROL_STREAM])
        control_ids = rng.choice(table["example_id"].to_numpy(), size=len(chosen), replace=False)
        children = []
        for label, ids in (("stage2", chosen), ("control", control_ids)):
            config = replace(
                base,
                mixture=replace(spec, train_ids=frozenset(int(i) for i in ids)),
                epochs=stage2_epochs,
                init_from=init_from,
                register_as=None,  # a study registers its stage-1 model only
                stage=2,
                run_name=f"{label}-{'+'.join(spec.members)}-seed{base.seed}",
            )
            own = {
                tags.STAGE1_RUN_ID: stage1_run_id,
                tags.SELECTION: selection.describe() if label == "stage2" else f"random:{len(ids)}",
                tags.CONTROL: str(label == "control").lower(),
            }
            children.append(
                Child(
                    fan.nested(config, own),
                    f"stage 2 on {len(ids)} examples ({selection.describe()})"
                    if label == "stage2"
                    else f"control on {len(ids)} random examples",
                    match_tags={tags.CONTROL: own[tags.CONTROL]},
                )
            )
        stage2, control = fan.run(children)
        results = {"stage2": stage2.run_id, "control": control.run_id}
        runs = {
            "stage 1": stage1_run_id,
            "stage 2": results["stage2"],
            "control": results["control"],
        }
        title = (
            f"Accuracy after stage 1, stage 2 ({selection.describe()}, {len(chosen)} examples, "
            f"{stage2_epochs} epochs) and a random control of the same size"
        )
        wide = log_two_stage(parent, runs, list(spec.members), list(spec.ood), title)
    return TwoStageResult(
        stage1_run_id,
        results["stage2"],
        results["control"],
        len(chosen),
        wide,
        **fan.result_fields(),
    )

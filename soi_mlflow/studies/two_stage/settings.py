"""The options of a two-stage study (:class:`TwoStageSettings`): its seeds, its stage-2
selections (``--stage2 SPEC``, repeatable, or the older single-selection flags), stage 2's
length, an existing stage 1, and whether several members also train alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from soi_mlflow.common.seeds import check_seed
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.fanout import StudySettings
from soi_mlflow.studies.two_stage.selections import (
    DEFAULT_SUBSETS,
    SPEC_FORMS,
    Selection,
    parse_spec,
    parse_top,
)

SINGLE_FLAGS = ("--stage2-subsets", "--stage2-region", "--stage2-top", "--stage2-bottom")


@dataclass
class TwoStageSettings(StudySettings):
    """Two-stage fine-tuning's own options: the seeds, the stage-2 selections (none: the
    subsets forgettable,never_learned of the default taxonomy), stage 2's length, and
    optionally an existing stage-1 run (the training options are TrainConfig's)."""

    stage2: tuple[str, ...] = field(default=(), metadata={"repeat": True})
    """a stage-2 selection, repeatable (each gets its own stage-2 run per seed): subsets:a,b
    (or a,b), region:NAME, top:METRIC:FRAC or bottom:METRIC:FRAC"""
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
    seeds: int = 1
    """seeds: per seed, stage 1, each selection's stage 2 and their random controls"""
    single_baselines: bool = True
    """with several members, also train each member alone per seed (the multi-setting gain)"""
    stage1_run_id: str | None = None
    """use this finished run (with a checkpoint) as stage 1 instead of training one"""
    stage1_model: str | None = None
    """start stage 2 from this logged or registered model (models:/NAME/VERSION, runs:/ID/model)"""
    taxonomy: str = "default"
    """a registered SOI taxonomy: stage 1's SOI and the subset names of a selection"""

    @classmethod
    def of(cls, selection: Selection, stage2_epochs: int = 2, **options: Any) -> TwoStageSettings:
        """The settings of ``selection`` (its taxonomy may be a Taxonomy object, from
        Python) with stage 2's length and ``options`` (seeds, stage1_run_id, ...)."""
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

    def _single_given(self) -> list[str]:
        given = (self.stage2_subsets, self.stage2_region, self.stage2_top, self.stage2_bottom)
        return [flag for flag, v in zip(SINGLE_FLAGS, given, strict=True) if v]

    def selection(self) -> Selection:
        """The selection of the single-selection flags; none given (and the default
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

    def selections(self) -> list[Selection]:
        """Every stage-2 selection, checked: one per ``--stage2`` SPEC (duplicates
        refused), else the one of the single-selection flags; both kinds are refused."""
        if not self.stage2:
            out = self.selection()
            out.validate()
            return [out]
        if self._single_given():
            raise SoiInputError(
                f"stage2: give --stage2 SPEC (repeatable) or {', '.join(self._single_given())}, "
                "not both"
            )
        if isinstance(self.stage2, str):
            raise SoiInputError(f"stage2: expected a list of SPECs ({SPEC_FORMS})")
        out = [parse_spec(s, self.taxonomy) for s in self.stage2]
        names = [s.describe() for s in out]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise SoiInputError(f"stage2: the selection {', '.join(twice)} is given twice")
        return out

    def check(self) -> list[Selection]:
        """Refuse bad settings before anything trains; returns the selections."""
        selections = self.selections()
        if not isinstance(self.stage2_epochs, int) or self.stage2_epochs <= 0:
            raise SoiInputError(
                f"stage-2 epochs must be a positive integer, got {self.stage2_epochs!r}"
            )
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise SoiInputError(f"seeds must be a positive integer, got {self.seeds!r}")
        if self.seeds > 1 and (self.stage1_run_id or self.stage1_model):
            raise SoiInputError(
                "seeds: an existing stage 1 (--stage1-run-id, --stage1-model) is one seed's; "
                "give --seeds 1 with it, or leave it out to train stage 1 per seed"
            )
        return selections


def seed_list(base_seed: int, settings: TwoStageSettings) -> list[int]:
    """The study's seeds: ``base_seed``, ``base_seed + 1``, ..."""
    check_seed(base_seed, "seed", settings.seeds)
    return [base_seed + s for s in range(settings.seeds)]

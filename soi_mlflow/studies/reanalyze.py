"""Redo a study's analysis from its child runs (``soi-mlflow analyze --parent-run-id``).

The parent's ``soi.study`` tag names the study kind; :data:`REANALYSES` maps each kind to
its study's re-analysis (``studies/<study>/reanalysis.py``), which rebuilds the analysis
from what the children hold (tags, metrics, artifacts) and logs it back to the parent,
whatever the parent's status (a parent that ended FAILED included). What the data do not
determine is reported as "not identified", as the study itself reports it. Adding a study
adds its folder and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.learning_curve import reanalysis as learning_curve
from soi_mlflow.studies.noise_benchmark import reanalysis as noise_benchmark
from soi_mlflow.studies.readback import Reanalysis, ReanalysisOptions, handle_of
from soi_mlflow.studies.recommend import reanalysis as recommend
from soi_mlflow.studies.single_vs_multi import reanalysis as single_vs_multi
from soi_mlflow.studies.transfer import reanalysis as transfer
from soi_mlflow.studies.two_stage import reanalysis as two_stage
from soi_mlflow.studies.views import reanalysis as views
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.run import RunHandle

__all__ = ["KINDS", "REANALYSES", "Reanalysis", "ReanalysisOptions", "reanalyze", "study_kind"]

REANALYSES: dict[str, Callable[[RunHandle, Any, ReanalysisOptions], Reanalysis]] = {
    "compare": single_vs_multi.reanalyze,
    "two_stage": two_stage.reanalyze,
    "transfer": transfer.reanalyze,
    "learning_curve": learning_curve.reanalyze,
    "views": views.reanalyze,
    "noise_benchmark": noise_benchmark.reanalyze,  # refused, saying why
    "recommend": recommend.reanalyze,  # the verdict of recommend --verify
}
"""the re-analysis of each study kind (the parent's ``soi.study`` tag)"""
KINDS = tuple(REANALYSES)


def study_kind(run: Any) -> str:
    """The study kind of a parent run, from its ``soi.study`` tag; refused clearly when the
    tag is missing or names no known study (a child run is told its parent)."""
    kind = run.data.tags.get(tags.STUDY)
    parent = run.data.tags.get(tags.PARENT_RUN_ID)
    if kind in KINDS:
        return kind
    if parent is not None and kind in (None, parent):
        # a child run: no soi.study tag, or (logged before the tag had one meaning) its
        # parent's run id in it
        raise SoiInputError(
            f"run {run.info.run_id} is a child run of run {parent}, not the parent run of a "
            f"study; give its parent: --parent-run-id {parent}"
        )
    if kind is None:
        raise SoiInputError(
            f"run {run.info.run_id} has no {tags.STUDY} tag: it is not the parent run of a "
            f"study (kinds: {', '.join(KINDS)})"
        )
    raise SoiInputError(
        f"run {run.info.run_id}: unknown study kind {kind!r} in its {tags.STUDY} tag "
        f"(re-analysable kinds: {', '.join(KINDS)}); is it a child run? give its parent"
    )


def reanalyze(
    parent_run_id: str,
    tracking_uri: str | None = None,
    options: ReanalysisOptions | None = None,
) -> Reanalysis:
    """Redo the analysis of the study whose parent is ``parent_run_id``, by its kind;
    ``options`` say how traces are read where a study analyses them again (``compare``)."""
    handle, run = handle_of(parent_run_id, tracking_uri)
    return REANALYSES[study_kind(run)](handle, run, options or ReanalysisOptions())

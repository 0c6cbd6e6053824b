"""Redo a two-stage study's analysis from its children: the accuracy table, headline
metrics and figure of stage 1, stage 2 and the control (``analysis.py``)."""

from __future__ import annotations

from typing import Any

from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.readback import Reanalysis, ReanalysisOptions, children
from soi_mlflow.studies.two_stage.analysis import log_two_stage
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.run import RunHandle


def reanalyze(handle: RunHandle, run: Any, options: ReanalysisOptions | None = None) -> Reanalysis:
    """Find stage 1, stage 2 and the control among the children (stage 1 by stage 2's
    ``soi.stage1_run_id`` when it was an existing run) and log their accuracy again."""
    runs: dict[str, str] = {}
    stage2: Any = None
    for child in children(handle):
        own = child.data.tags
        if own.get(tags.STAGE) == "1":
            runs["stage 1"] = child.info.run_id
        elif own.get(tags.CONTROL) == "true":
            runs["control"] = child.info.run_id
        elif own.get(tags.STAGE) == "2":
            runs["stage 2"], stage2 = child.info.run_id, child
    if stage2 is not None:
        runs.setdefault("stage 1", stage2.data.tags.get(tags.STAGE1_RUN_ID, ""))
    missing = [k for k in ("stage 1", "stage 2", "control") if not runs.get(k)]
    if missing:
        raise SoiInputError(
            f"run {handle.run_id}: the two_stage study has no finished {' or '.join(missing)} "
            "run to analyse"
        )
    params = run.data.params
    members = [m for m in params.get("members", "").split(",") if m]
    ood = [m for m in params.get("ood", "").split(",") if m]
    chosen = stage2.data.params.get("train_examples", "?")
    title = (
        f"Accuracy after stage 1, stage 2 ({params.get('selection', '?')}, {chosen} examples, "
        f"{params.get('stage2_epochs', '?')} epochs) and a random control of the same size"
    )
    order = {k: runs[k] for k in ("stage 1", "stage 2", "control")}
    wide = log_two_stage(handle, order, members, ood, title)
    return Reanalysis("two_stage", {"accuracy (test = ID, ood = OOD)": wide})

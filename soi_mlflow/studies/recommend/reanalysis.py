"""Redo a recommend study's verdict from its finished children (``analyze
--parent-run-id``): each child's arm (``soi.arm``), seed and target score, then
``log_verdict`` on the parent again. The ranked table is not recomputed: it is what was
recommended before the training."""

from __future__ import annotations

from typing import Any

import pandas as pd

from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.readback import Reanalysis, ReanalysisOptions, children
from soi_mlflow.studies.recommend.study import VERDICT, log_verdict
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.run import RunHandle


def reanalyze(handle: RunHandle, run: Any, options: ReanalysisOptions | None = None) -> Reanalysis:
    """The verdict of the recommend study whose parent is ``run``, from its children."""
    target = run.data.tags.get(tags.TARGET)
    rows = []
    for child in children(handle):
        own = child.data.tags
        if tags.ARM not in own:
            continue
        score = child.data.metrics.get(f"test/{target}/acc")
        rows.append(
            {
                "seed": int(own.get(tags.SEED, 0)),
                "arm": own[tags.ARM],
                "members": own.get(tags.MEMBERS, ""),
                "score": float("nan") if score is None else float(score),
                "run_id": child.info.run_id,
            }
        )
    if not rows:
        raise SoiInputError(f"run {handle.run_id}: a recommend study without finished runs")
    verdict = log_verdict(handle, pd.DataFrame(rows))
    return Reanalysis("recommend", {f"{VERDICT} (target {target})": verdict})

"""The noise benchmark's entry in the re-analysis registry: it cannot be re-analysed from
its children, and says why."""

from __future__ import annotations

from typing import Any

from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.readback import Reanalysis, ReanalysisOptions
from soi_mlflow.tracking.run import RunHandle


def reanalyze(handle: RunHandle, run: Any, options: ReanalysisOptions | None = None) -> Reanalysis:
    """Refused: confident learning needs the cross-validation models' out-of-sample
    probabilities, which are not logged."""
    raise SoiInputError(
        f"run {handle.run_id}: a noise_benchmark study cannot be re-analysed from its "
        "children: confident learning needs the out-of-sample probabilities of its "
        "cross-validation models, which are not logged; run soi-mlflow noise-benchmark "
        "again"
    )

"""The parent run of a study: opened first, marked FAILED if anything inside fails."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from soi_mlflow.tracking.run import RunHandle, soi_tags
from soi_mlflow.training import TrainConfig, run_params


@contextmanager
def study_parent(
    base: TrainConfig, study: str, name: str, params: Mapping[str, Any], **tags: Any
) -> Iterator[RunHandle]:
    """Open the parent run of ``study`` (or attach to ``mlflow run``'s) with the
    ``soi.study``/``soi.axis`` tags, ``tags`` and ``base``'s params plus ``params``;
    end it FINISHED, or FAILED when the block raises. With ``base.parent_run_id`` (a
    study run inside another study) it is a child run of that parent. Every study's
    wall time is logged as the metric ``compute/wall_seconds``, so studies compare by cost
    in the MLflow UI (studies that count example-passes log ``compute/example_passes``)."""
    parent = RunHandle.open(
        base.tracking_uri,
        base.experiment,
        base.run_name or name,
        soi_tags(study=study, axis=base.mixture.axis, **tags),
        base.parent_run_id,
    )
    start = time.perf_counter()
    try:
        parent.log_params(run_params(base) | dict(params))
        yield parent
    except BaseException:
        parent.finish("FAILED")
        raise
    parent.log_metrics({"compute/wall_seconds": time.perf_counter() - start}, step=0)
    parent.finish("FINISHED")

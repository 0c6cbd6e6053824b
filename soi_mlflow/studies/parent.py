"""The parent run of a study: opened first, marked FAILED if anything inside fails."""

from __future__ import annotations

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
    study run inside another study) it is a child run of that parent."""
    parent = RunHandle.open(
        base.tracking_uri,
        base.experiment,
        base.run_name or name,
        soi_tags(study=study, axis=base.mixture.axis, **tags),
        base.parent_run_id,
    )
    try:
        parent.log_params(run_params(base) | dict(params))
        yield parent
    except BaseException:
        parent.finish("FAILED")
        raise
    parent.finish("FINISHED")

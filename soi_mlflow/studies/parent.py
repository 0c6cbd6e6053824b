"""The parent run of a study: opened first, marked FAILED if anything inside fails."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from soi_mlflow.tracking.run import RunHandle


@contextmanager
def study_parent(
    tracking_uri: str | None, experiment: str | None, run_name: str, tags: Mapping[str, str]
) -> Iterator[RunHandle]:
    """Open the parent run (or attach to ``mlflow run``'s); end it FINISHED or FAILED."""
    parent = RunHandle.open(tracking_uri, experiment, run_name, tags)
    try:
        yield parent
    except BaseException:
        parent.finish("FAILED")
        raise
    parent.finish("FINISHED")

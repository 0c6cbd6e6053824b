"""The ``mlflow.run_context_provider`` entry point: soi tags on runs that MLflow's fluent
API starts in a process that records soi-mlflow traces.

soi-mlflow tags the runs it opens itself; this covers runs that other code opens with
``mlflow.start_run`` around a soi-mlflow trace recorder (a user's own loop, as in
``with mlflow.start_run(), TraceRecorder(...)``, or ``transformers``' MLflow callback): they
get the package version and the trace schema when they are created, so a reader can tell
which soi-mlflow wrote their traces and filter on it. A process counts as recording once it
has imported the recorder. MLflow loads every registered provider whenever it resolves run
tags, so this module imports nothing heavy.
"""

from __future__ import annotations

import sys

from mlflow.tracking.context.abstract_context import RunContextProvider

from soi_mlflow import __version__
from soi_mlflow.tracking.tags import TRACE_SCHEMA, VERSION
from soi_mlflow.tracking.trace_format import SCHEMA_VERSION

RECORDER_MODULE = "soi_mlflow.tracking.recorder"


class SoiRunContext(RunContextProvider):
    """Tags ``soi.version`` and ``soi.trace_schema`` in a process that records traces."""

    def in_context(self) -> bool:
        return RECORDER_MODULE in sys.modules

    def tags(self) -> dict[str, str]:
        return {VERSION: __version__, TRACE_SCHEMA: str(SCHEMA_VERSION)}

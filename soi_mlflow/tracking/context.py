"""The ``mlflow.run_context_provider`` entry point: soi tags on runs started with
``mlflow.start_run`` while a soi-mlflow trace is recorded in the process.

soi-mlflow's own runs are tagged when it opens them; this covers runs that someone else's
code opens through MLflow's fluent API (a user's loop, ``transformers``' MLflow callback)
around a soi-mlflow trace recorder: they get the package version and the trace schema, so
a reader can tell which soi-mlflow wrote their traces. MLflow loads every registered
provider whenever it resolves run tags, so this module imports nothing heavy.
"""

from __future__ import annotations

from mlflow.tracking.context.abstract_context import RunContextProvider

_recording = False


def mark_recording() -> None:
    """Called by the trace recorder when it is built: from now on, fluent runs get tags."""
    global _recording
    _recording = True


class SoiRunContext(RunContextProvider):
    """Tags ``soi.version`` and ``soi.trace_schema`` while a soi trace is recorded."""

    def in_context(self) -> bool:
        return _recording

    def tags(self) -> dict[str, str]:
        from soi_mlflow import __version__
        from soi_mlflow.tracking.trace_format import SCHEMA_VERSION

        return {"soi.version": __version__, "soi.trace_schema": str(SCHEMA_VERSION)}

"""soi-mlflow: Subsets of Interest for multi-setting fine-tuning, as an MLflow workflow.

The package is imported lazily: ``import soi_mlflow`` costs nothing heavy, so the
command line and the analysis stay fast. Sub-packages follow docs/design.md, "Layers".
``soi_mlflow.TraceRecorder`` (``tracking/recorder.py``) records per-example traces from
any training code and, when training ends well, analyses the run: this module registers
that step (``tracking/after_close.py``), since the tracking layer cannot import the
analysis. Python runs this module before any module of the package, so the step is there
whichever path a recorder is imported by.
"""

from typing import Any

from soi_mlflow.tracking import after_close as _after_close

__version__ = "0.1.0"
__all__ = ["TraceRecorder", "__version__"]


def _analyse_after_close(recorder: Any, status: str) -> None:
    # deferred (not heavy): pandas and pyarrow; `import soi_mlflow` loads no third-party module
    from soi_mlflow.analysis.after_training import after_close

    after_close(recorder, status)


_after_close.register(_analyse_after_close)


def __getattr__(name: str) -> Any:
    if name == "TraceRecorder":
        # deferred (not heavy): pandas and pyarrow; `import soi_mlflow` loads no third-party module
        from soi_mlflow.tracking.recorder import TraceRecorder

        return TraceRecorder
    raise AttributeError(f"module 'soi_mlflow' has no attribute {name!r}")

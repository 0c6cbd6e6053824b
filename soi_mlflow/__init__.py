"""soi-mlflow: Subsets of Interest for multi-setting fine-tuning, as an MLflow workflow.

The package is imported lazily: ``import soi_mlflow`` costs nothing heavy, so the
command line and the analysis stay fast. Sub-packages follow docs/design.md, "Layers".
``soi_mlflow.TraceRecorder`` records per-example traces from any training code.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["TraceRecorder", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "TraceRecorder":
        from soi_mlflow.analysis.after_training import TraceRecorder

        return TraceRecorder
    raise AttributeError(f"module 'soi_mlflow' has no attribute {name!r}")

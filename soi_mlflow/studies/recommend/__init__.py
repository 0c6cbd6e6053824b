"""The recommend study: ``evidence.py`` (the transfer studies it learns from, read back
from MLflow), ``study.py`` (the ranked candidates and, with ``verify``, the trainings that
check them) and ``reanalysis.py`` (the verdict again, for ``analyze --parent-run-id``)."""

from soi_mlflow.studies.recommend.study import (
    RecommendResult,
    RecommendSettings,
    order_verdict,
    run,
)

__all__ = ["RecommendResult", "RecommendSettings", "order_verdict", "run"]

"""The multi-task learning-curve study: ``settings.py`` (what it measures, checked before
training), ``study.py`` (the sweep of child runs), ``analysis.py`` (fits, worth,
interaction, figures) and ``reanalysis.py`` (the same analysis from the children, for
``analyze --parent-run-id``). The names callers use are imported from here."""

from soi_mlflow.studies.learning_curve.analysis import ALONE, analyse_points, log_curves
from soi_mlflow.studies.learning_curve.settings import SETS, CurveSettings, validate_curve
from soi_mlflow.studies.learning_curve.study import (
    CurveResult,
    learning_curve,
    run,
    run_learning_curve,
)

__all__ = [
    "ALONE",
    "SETS",
    "CurveResult",
    "CurveSettings",
    "analyse_points",
    "learning_curve",
    "log_curves",
    "run",
    "run_learning_curve",
    "validate_curve",
]

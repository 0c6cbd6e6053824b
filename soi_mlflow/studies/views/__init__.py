"""The three-views study: ``settings.py`` (what it measures, each view's cost and seeds),
``study.py`` (the transfer matrix, the affinity runs and the learning curves on the same
members, under one parent), ``analysis.py`` (significance per view, the views' rank
agreement) and ``reanalysis.py`` (the same from the children, for ``analyze
--parent-run-id``). The names callers use are imported from here."""

from soi_mlflow.studies.views.analysis import NO_RHO, log_views, views_agreement
from soi_mlflow.studies.views.settings import (
    VIEWS,
    ViewsSettings,
    per_seed_passes,
    validate_views,
    view_seeds,
)
from soi_mlflow.studies.views.study import ViewsResult, run, run_views

__all__ = [
    "NO_RHO",
    "VIEWS",
    "ViewsResult",
    "ViewsSettings",
    "log_views",
    "per_seed_passes",
    "run",
    "run_views",
    "validate_views",
    "view_seeds",
    "views_agreement",
]

"""Two-stage fine-tuning: ``selections.py`` (what stage 2 trains on, ``--stage2 SPEC``),
``settings.py`` (the study's options), ``study.py`` (per seed stage 1, each selection's
stage 2 and the random controls as child runs), ``contrasts.py`` (paired differences and
their intervals, pure), ``migration.py`` (stage 2's SOI migration, pure), ``analysis.py``
and ``figure.py`` (all of it logged to the parent) and ``reanalysis.py`` (the same from the
children, for ``analyze --parent-run-id``). The names callers use are imported from here."""

from soi_mlflow.studies.two_stage.analysis import (
    TwoStageAnalysis,
    accuracy_rows,
    log_two_stage,
    two_stage_headline,
)
from soi_mlflow.studies.two_stage.selections import (
    CONTROL_STREAM,
    DEFAULT_SUBSETS,
    METRICS,
    TIE_STREAM,
    Selection,
    control_ids,
    parse_spec,
    parse_top,
    select_per_seed,
)
from soi_mlflow.studies.two_stage.settings import TwoStageSettings
from soi_mlflow.studies.two_stage.study import (
    TwoStageResult,
    check_stage1,
    run,
    run_two_stage,
)

__all__ = [
    "CONTROL_STREAM",
    "DEFAULT_SUBSETS",
    "METRICS",
    "TIE_STREAM",
    "Selection",
    "TwoStageAnalysis",
    "TwoStageResult",
    "TwoStageSettings",
    "accuracy_rows",
    "check_stage1",
    "control_ids",
    "log_two_stage",
    "parse_spec",
    "parse_top",
    "run",
    "run_two_stage",
    "select_per_seed",
    "two_stage_headline",
]

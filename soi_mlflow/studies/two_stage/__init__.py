"""Two-stage fine-tuning: ``study.py`` (the selection, stage 1, stage 2 and its random
control as child runs), ``analysis.py`` (their accuracy, logged to the parent) and
``reanalysis.py`` (the same from the children, for ``analyze --parent-run-id``). The names
callers use are imported from here."""

from soi_mlflow.studies.two_stage.analysis import accuracy_rows, log_two_stage, two_stage_headline
from soi_mlflow.studies.two_stage.study import (
    CONTROL_STREAM,
    DEFAULT_SUBSETS,
    METRICS,
    TIE_STREAM,
    Selection,
    TwoStageResult,
    TwoStageSettings,
    check_stage1,
    parse_top,
    run,
    run_two_stage,
)

__all__ = [
    "CONTROL_STREAM",
    "DEFAULT_SUBSETS",
    "METRICS",
    "TIE_STREAM",
    "Selection",
    "TwoStageResult",
    "TwoStageSettings",
    "accuracy_rows",
    "check_stage1",
    "log_two_stage",
    "parse_top",
    "run",
    "run_two_stage",
    "two_stage_headline",
]

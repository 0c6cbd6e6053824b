"""The transfer study: ``study.py`` (every member alone and every pair, jointly or one
after the other, as child runs), ``analysis.py`` (the matrix and its latent traits, logged
to the parent) and ``reanalysis.py`` (the same from its runs, for ``analyze
--parent-run-id``). The names callers use are imported from here."""

from soi_mlflow.studies.transfer.analysis import log_transfer
from soi_mlflow.studies.transfer.reanalysis import reanalyze_transfer, study_scores
from soi_mlflow.studies.transfer.study import (
    MODES,
    TransferResult,
    TransferSettings,
    run,
    run_transfer,
    validate,
)

__all__ = [
    "MODES",
    "TransferResult",
    "TransferSettings",
    "log_transfer",
    "reanalyze_transfer",
    "run",
    "run_transfer",
    "study_scores",
    "validate",
]

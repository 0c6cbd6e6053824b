"""The label-noise detection benchmark: ``study.py`` (a detection run per seed, and with
``cl_folds`` the cross-validation runs of ``folds.py`` whose held-out probabilities
``heldout.py`` computes), ``analysis.py`` (each detector's scores against the planted
truth, the summary over seeds) and ``reanalysis.py`` (why it cannot be re-analysed from
its children). The names callers use are imported from here."""

from soi_mlflow.studies.noise_benchmark.analysis import (
    FLAG_SETS,
    METRICS,
    flag_sets,
    summarize,
    summary_rows,
    top_k_breakdown,
    with_unscored,
)
from soi_mlflow.studies.noise_benchmark.study import (
    HARDEST,
    NoiseBenchmarkResult,
    NoiseBenchmarkSettings,
    detect_scores,
    run,
    run_noise_benchmark,
    validate,
    validate_benchmark,
)

__all__ = [
    "FLAG_SETS",
    "HARDEST",
    "METRICS",
    "NoiseBenchmarkResult",
    "NoiseBenchmarkSettings",
    "detect_scores",
    "flag_sets",
    "run",
    "run_noise_benchmark",
    "summarize",
    "summary_rows",
    "top_k_breakdown",
    "validate",
    "validate_benchmark",
    "with_unscored",
]

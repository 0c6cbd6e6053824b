"""The old names of the single-vs-multi study (:mod:`soi_mlflow.studies.single_vs_multi`),
kept for existing callers; ``run_compare`` warns that it is deprecated."""

from __future__ import annotations

from soi_mlflow.studies.result import deprecated
from soi_mlflow.studies.single_vs_multi import (
    SingleVsMultiResult,
    SingleVsMultiSettings,
    run,
    summary_rows,
    validate,
)
from soi_mlflow.training import TrainConfig

CompareSettings = SingleVsMultiSettings
CompareResult = SingleVsMultiResult
__all__ = ["CompareResult", "CompareSettings", "run_compare", "summary_rows", "validate_compare"]


def validate_compare(base: TrainConfig, seeds: int) -> None:
    validate(base, SingleVsMultiSettings(seeds=seeds))


@deprecated("soi_mlflow.studies.compare.run_compare", "soi_mlflow.studies.single_vs_multi.run")
def run_compare(
    base: TrainConfig, seeds: int = 1, analyze_splits: tuple[str, ...] = ("train",)
) -> SingleVsMultiResult:
    return run(base, SingleVsMultiSettings(seeds, tuple(analyze_splits)))

"""The studies' old entry points: one test each that it still reaches the study (its
arguments arrive: a bad one is refused by the study's own check, before any training)
and warns with the name to use. Everything else in the repository calls
``<study>.run(config, settings)``."""

from __future__ import annotations

import pytest
from tracehelp import small_config

from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies import compare, learning_curve, noise_benchmark, transfer, two_stage, views
from soi_mlflow.studies.learning_curve import CurveSettings
from soi_mlflow.studies.noise_benchmark import NoiseBenchmarkSettings
from soi_mlflow.studies.two_stage import Selection
from soi_mlflow.studies.views import ViewsSettings

TASKS = ("sentiment", "paraphrase", "entailment")


def _old(name: str, new: str):
    return pytest.warns(DeprecationWarning, match=rf"studies\.{name} is deprecated; use .*{new}")


def test_run_compare(module_store) -> None:
    base = small_config(module_store, ("books", "movies"))
    with (
        _old("compare.run_compare", r"single_vs_multi\.run"),
        pytest.raises(SoiInputError, match="seeds must be a positive integer, got 0"),
    ):
        compare.run_compare(base, seeds=0)


def test_run_transfer(module_store) -> None:
    base = small_config(module_store, ("books", "movies"))
    with (
        _old("transfer.run_transfer", r"transfer\.run"),
        pytest.raises(SoiInputError, match="mode: expected one of .* got 'both'"),
    ):
        transfer.run_transfer(base, "both")


def test_run_two_stage(module_store) -> None:
    base = small_config(module_store, ("books",))
    with (
        _old("two_stage.run_two_stage", r"two_stage\.run"),
        pytest.raises(SoiInputError, match="stage-2 epochs must be a positive integer"),
    ):
        two_stage.run_two_stage(base, Selection(subsets=("forgettable",)), 0)


def test_run_views(module_store) -> None:
    base = small_config(module_store, TASKS, axis="task")
    with (
        _old("views.run_views", r"views\.run"),
        pytest.raises(SoiInputError, match="need at least 2, got 1"),
    ):
        views.run_views(base, ViewsSettings(seeds=1))


def test_run_noise_benchmark(module_store) -> None:
    settings = NoiseBenchmarkSettings(cl_folds=1, tracking_uri=module_store)
    with (
        _old("noise_benchmark.run_noise_benchmark", r"noise_benchmark\.run"),
        pytest.raises(SoiInputError, match="cl_folds must be 0 .* got 1"),
    ):
        noise_benchmark.run_noise_benchmark(settings)


def test_run_learning_curve(module_store) -> None:
    base = small_config(module_store, ("entailment",), axis="task")
    with (
        _old("learning_curve.run_learning_curve", r"learning_curve\.run"),
        pytest.raises(SoiInputError, match="at least 3 sizes"),
    ):
        learning_curve.run_learning_curve(base, "entailment", ["sentiment"], [10, 20])


def test_learning_curve(module_store) -> None:
    base = small_config(module_store, ("entailment",), axis="task")
    settings = CurveSettings("entailment", (), sizes=(4, 8, 12))
    with (
        _old("learning_curve.learning_curve", r"learning_curve\.run"),
        pytest.raises(SoiInputError, match="at least one auxiliary member"),
    ):
        learning_curve.learning_curve(base, settings)

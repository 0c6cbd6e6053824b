"""``soi-mlflow recommend``: auxiliary members for a target, ranked from transfer studies
already in MLflow, and with ``--verify K`` the trainings that check the ranking."""

from __future__ import annotations

import textwrap
from typing import Any

from soi_mlflow.common import console

ALIASES = (("--from", "--parents"),)  # ``from`` is a Python keyword: the field is ``parents``


def recommend(settings: Any) -> None:
    from soi_mlflow.studies import recommend as study  # deferred: datasets

    result = study.run(settings, show=lambda advice: _advice(settings, advice))
    if result.verdict is not None:
        verdict = result.verdict.set_index("quantity")
        console.print_frame(
            verdict.drop(columns="verdict"),
            f"--verify {settings.verify}: test accuracy of {settings.target}, paired by seed",
        )
        print(f"verdict: the predicted order {verdict['verdict'].iloc[0]}")
        console.print_links([("parent run id", result.parent_run_id)], result.ui_command)


def _advice(settings: Any, result: Any) -> None:
    """The notes, the ranked candidates and the predictor's errors."""
    for note in result.notes:
        print(textwrap.fill(f"note: {note}", 99, subsequent_indent="  "))
    table = result.table.set_index("rank")
    console.print_frame(
        table,
        f"auxiliary members for {settings.target}, by gain in test accuracy (measured first; "
        "predicted cells marked)",
        caption="measured: mean over seeds, t interval; predicted: leave-one-out residuals",
    )
    if result.errors is not None:
        errors = result.errors[["scheme", "model", "mae", "rmse", "rho", "n", "verdict"]]
        console.print_frame(errors.set_index("scheme"), "the predictor against the baselines")

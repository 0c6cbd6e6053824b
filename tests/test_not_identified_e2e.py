"""Studies trained for real (tiny encoder, one epoch, few examples) into a real SQLite store
end FINISHED with what their data cannot determine reported as "not identified", and
``analyze --parent-run-id`` redoes each kind's own analysis, a FAILED parent's too."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow import MlflowClient
from tracehelp import small_config

from soi_mlflow.cli import main

pytestmark = pytest.mark.e2e


def _analyze(parent: str, store: str, capsys) -> str:
    assert main(["analyze", "--parent-run-id", parent, "--tracking-uri", store]) == 0
    return capsys.readouterr().out


def test_learning_curve_with_one_seed_and_one_aux_size_ends_finished(store, capsys) -> None:
    from soi_mlflow.studies import learning_curve
    from soi_mlflow.studies.learning_curve import CurveSettings

    base = small_config(store, ("books",), max_examples=40, eval_max_examples=20, epochs=1)
    settings = CurveSettings("books", ("movies", "electronics"), sizes=(10, 20, 40), seeds=1)
    result = learning_curve.run(base, settings)
    client = MlflowClient(store)
    run = client.get_run(result.parent_run_id)
    assert run.info.status == "FINISHED"
    # one auxiliary size: the contextual fit is never identified, and says so everywhere
    ctx = result.tables["learning_curve_contextual"]
    assert ctx["problem"].str.startswith("not identified: ").all()
    note = run.data.tags["mlflow.note.content"]
    assert "#### Not identified" in note and "learning\\_curve\\_contextual" in note
    assert "the auxiliary data must come at 2 or more sizes" in note
    assert int(run.data.tags["soi.not_identified"]) >= 1
    for name in ("learning_curve_worth_over_sizes", "learning_curve_interaction_over_sizes"):
        assert "problem" in result.tables[name].columns
    capsys.readouterr()

    # a parent that ended FAILED is re-analysed as the learning-curve study it is
    client.set_terminated(result.parent_run_id, "FAILED")
    out = _analyze(result.parent_run_id, store, capsys)
    assert "re-analysing the learning_curve study" in out and "(FAILED)" in out
    assert "contextual fit" in out and "fits" in out and "single vs multi" not in out
    again = client.get_run(result.parent_run_id).data.tags
    assert again["soi.not_identified"] == run.data.tags["soi.not_identified"]


def test_transfer_parent_without_its_tables_is_rebuilt_from_its_children(store, capsys) -> None:
    from soi_mlflow.studies import transfer

    base = small_config(store, ("books", "movies"), max_examples=30, eval_max_examples=20)
    result = transfer.run(base, transfer.TransferSettings())
    client = MlflowClient(store)
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"
    # as if the study had stopped before its analysis: no tables, parent FAILED
    artifacts = Path(urlparse(client.get_run(result.parent_run_id).info.artifact_uri).path)
    shutil.rmtree(artifacts / "tables")
    client.set_terminated(result.parent_run_id, "FAILED")
    out = _analyze(result.parent_run_id, store, capsys)
    assert "re-analysing the transfer study" in out and "transfer matrix" in out
    tables = {a.path for a in client.list_artifacts(result.parent_run_id, "tables")}
    assert "tables/transfer_mean.parquet" in tables
    metrics = client.get_run(result.parent_run_id).data.metrics
    assert metrics["transfer/books/movies"] == pytest.approx(result.mean.loc["books", "movies"])


def test_two_stage_is_re_analysed_from_its_stages(store, capsys) -> None:
    from soi_mlflow.studies import two_stage

    base = small_config(store, ("books",), max_examples=30, eval_max_examples=20)
    result = two_stage.run(
        base, two_stage.TwoStageSettings(stage2_top="variability:0.5", stage2_epochs=1)
    )
    client = MlflowClient(store)
    run = client.get_run(result.parent_run_id)
    assert run.info.status == "FINISHED" and run.data.tags["soi.not_identified"] == "0"
    out = _analyze(result.parent_run_id, store, capsys)
    assert "re-analysing the two_stage study" in out and "stage 2" in out and "control" in out
    metrics = client.get_run(result.parent_run_id).data.metrics
    assert metrics["summary/stage_2/test_acc"] == pytest.approx(
        client.get_run(result.stage2_run_id).data.metrics["test/books/acc"]
    )

"""The one rule of each kind in tracking/: metric-name segments, run ids (also as folder
names), errors in one line. Checked against MLflow itself where MLflow has the rule."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from soi_mlflow.errors import SoiInputError, first_line
from soi_mlflow.tracking.health import check_run_id
from soi_mlflow.tracking.local import run_folder, run_folder_name
from soi_mlflow.tracking.run import log_metric_batch, metric_safe
from soi_mlflow.tracking.run_open import open_run


def create_run(client: MlflowClient, experiment: str) -> str:
    """A new run of ``client``'s store in ``experiment``, opened the one way runs open."""
    return open_run(client.tracking_uri, adopt="new", experiment=experiment).run_id


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("books", "books"),
        ("en-US_v1.2", "en-US_v1.2"),  # letters, digits, _ . - are kept
        ("a b", "a_b"),  # MLflow allows spaces and ':' in metric names; they name files too
        ("x:y", "x_y"),
        ("x/y", "x_y"),  # '/' would split the segment
        ("café", "caf_"),  # ASCII only
        ("", "_"),
        (".", "_"),  # MLflow refuses '.' and '..' as parts of a metric name
        ("..", "__"),
        ("...a", "...a"),
    ],
)
def test_metric_safe_keeps_and_escapes(name, safe) -> None:
    assert metric_safe(name) == safe


def test_what_metric_safe_keeps_is_a_valid_metric_name(store) -> None:
    client = MlflowClient(store)
    run_id = create_run(client, "rules")
    names = [f"soi/train/{metric_safe(n)}/acc" for n in ("a b:c/d", ".", "..", "é-1.x_y", "")]
    log_metric_batch(client, run_id, dict.fromkeys(names, 1.0), step=0)
    assert set(client.get_run(run_id).data.metrics) == set(names)


def test_the_run_id_rule_is_mlflows_and_names_a_folder(store) -> None:
    run_id = create_run(MlflowClient(store), "rules")
    assert check_run_id(f" {run_id}\n") == run_id  # typed ids are stripped
    assert run_folder(run_id).name == run_id
    for bad in ("", ".", "..", "a/b", "../x", "-a", "é", "a b", "a\n", "a" * 257):
        with pytest.raises(SoiInputError):
            run_folder_name(bad)
    with pytest.raises(SoiInputError):
        run_folder(" a")  # a folder's id is never stripped
    longest = run_folder_name("a" * 256)  # MLflow's longest id fits a file system's 255
    assert len(longest) <= 128 and longest != run_folder_name("a" * 255)


def test_first_line() -> None:
    assert first_line(ValueError("bad\nmore")) == "ValueError: bad"
    assert first_line(KeyError()) == "KeyError"
    assert len(first_line(RuntimeError("x" * 500), 50)) == 50
    wrapped = RuntimeError("a task failed\nTraceback ...")
    wrapped.cause = KeyError("seed")  # as a Ray task's error carries the job's own
    assert first_line(wrapped) == "KeyError: 'seed'"


def test_the_recorder_writes_into_mlflow_runs_run(store, monkeypatch) -> None:
    """Under ``mlflow run`` (``MLFLOW_RUN_ID``, ``MLFLOW_TRACKING_URI``) the recorder opens
    no second run, and leaves the run to MLflow to end; another store gets a new run."""
    from soi_mlflow.tracking.recorder import TraceRecorder

    run_id = create_run(MlflowClient(store), "rules")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    with TraceRecorder() as rec:
        assert rec.run_id == run_id
    assert MlflowClient(store).get_run(run_id).info.status == "RUNNING"
    other = store.replace(".db", "-other.db")
    with TraceRecorder(tracking_uri=other) as rec:
        assert rec.run_id != run_id
    assert MlflowClient(other).get_run(rec.run_id).info.status == "FINISHED"

"""One way to open a run (``tracking/run_open.open_run``), one way to end it
(``RunHandle.end`` -> ``run_end.end_run``: every end but FINISHED says why in
``soi.end_reason``), one rule for the tracking URI (``tracking/store.py``: the flag, then
``$MLFLOW_TRACKING_URI``, then ``sqlite:///mlflow.db``) and one client per store, against
real SQLite stores."""

from __future__ import annotations

import ast
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from tracehelp import log_synthetic_run

import soi_mlflow
from soi_mlflow.analysis import compare_runs
from soi_mlflow.analysis.soi import Taxonomy
from soi_mlflow.tracking.health import END_REASON_TAG
from soi_mlflow.tracking.recorder import TraceRecorder
from soi_mlflow.tracking.run_open import open_run
from soi_mlflow.tracking.store import DEFAULT_TRACKING_URI, resolve_tracking_uri

PACKAGE = Path(soi_mlflow.__file__).parent


@pytest.fixture(scope="module")
def stores(module_store):
    """Two SQLite stores for the module: the main one and another (a store costs ~3 s)."""
    return module_store, module_store.replace(".db", "-other.db")


# -- the tracking URI ---------------------------------------------------------------------
def test_the_uri_rule_is_the_flag_then_the_variable_then_sqlite(monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-env.db")
    assert resolve_tracking_uri(None) == "sqlite:///from-env.db"
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_runs_open_in_the_flags_store_then_the_variables_then_the_default(
    stores, tmp_path, monkeypatch
) -> None:
    store, other = stores
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    flagged = open_run(other, adopt="new", experiment="rule")
    assert flagged.tracking_uri == other
    assert MlflowClient(other).get_run(flagged.run_id).info.run_id == flagged.run_id
    from_env = open_run(None, adopt="new", experiment="rule")
    assert from_env.tracking_uri == store
    assert MlflowClient(store).get_run(from_env.run_id).info.run_id == from_env.run_id
    # neither: ./mlflow.db of the working directory (a folder of its own here)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    default = open_run(None, adopt="new", experiment="rule")
    assert default.tracking_uri == "sqlite:///mlflow.db"
    assert (elsewhere / "mlflow.db").is_file()
    for run in (flagged, from_env, default):
        run.end()


def test_the_recorder_follows_the_same_rule(stores) -> None:
    """The recorder once defaulted to ``mlflow.get_tracking_uri()``; a user's
    ``mlflow.set_tracking_uri`` still reaches it (MLflow sets ``MLFLOW_TRACKING_URI``)."""
    store, other = stores
    mlflow.set_tracking_uri(store)
    with TraceRecorder(label_names=["a", "b"]) as rec:
        rec.add("train", np.arange(4), np.zeros((4, 2), np.float32), np.zeros(4, int))
        rec.end_epoch()
    assert rec.tracking_uri == store
    assert MlflowClient(store).get_run(rec.run_id).info.status == "FINISHED"
    with TraceRecorder(tracking_uri=other) as flagged:
        pass
    assert MlflowClient(other).get_run(flagged.run_id).info.status == "FINISHED"


# -- opening ------------------------------------------------------------------------------
def test_one_open_path_picks_new_adopted_child_and_resumed_runs(stores, monkeypatch) -> None:
    store, other = stores
    client = MlflowClient(store)
    new = open_run(store, experiment="ctx", run_name="fresh", tags={"soi.x": "1"})
    run = client.get_run(new.run_id)
    assert new.created and run.info.run_name == "fresh" and run.data.tags["soi.x"] == "1"
    assert client.get_experiment(run.info.experiment_id).name == "ctx"
    child = open_run(store, parent_run_id=new.run_id, run_name="kid")
    assert client.get_run(child.run_id).data.tags["mlflow.parentRunId"] == new.run_id
    assert child.experiment_id == new.experiment_id
    # under `mlflow run`: its run, tagged, and left to MLflow to end
    monkeypatch.setenv("MLFLOW_RUN_ID", new.run_id)
    adopted = open_run(store, tags={"soi.y": "2"})
    assert (adopted.run_id, adopted.created) == (new.run_id, False)
    assert client.get_run(new.run_id).data.tags["soi.y"] == "2"
    adopted.end()
    assert client.get_run(new.run_id).info.status == "RUNNING"
    assert open_run(store, adopt="new", experiment="ctx").run_id != new.run_id
    monkeypatch.delenv("MLFLOW_RUN_ID")
    # as MLflow's integrations pick: its active run, only in its own store
    mlflow.set_tracking_uri(store)
    with mlflow.start_run() as active:
        picked = open_run(None, adopt="integration")
        assert (picked.run_id, picked.created) == (active.info.run_id, False)
        elsewhere = open_run(other, adopt="integration")
        assert elsewhere.run_id != active.info.run_id and elsewhere.created
    # resumed: RUNNING again, and ended by whoever reopened it
    child.end(RuntimeError("boom"))
    again = open_run(store, run_id=child.run_id, resume=True)
    assert again.created and client.get_run(child.run_id).info.status == "RUNNING"
    again.end()
    assert client.get_run(child.run_id).info.status == "FINISHED"
    for run in (new, elsewhere):
        run.end()


def test_runs_are_opened_and_ended_only_through_the_run_context() -> None:
    """MLflow's own ways of starting and ending runs appear in one module each."""
    allowed = {
        "create_run": {"tracking/run_open.py"},
        "start_run": {"tracking/run_open.py"},
        "update_run": {"tracking/run_open.py"},
        "set_terminated": {"tracking/spool.py"},
        "put_end": {"tracking/run_end.py"},
        "mlflow.end_run": {"tracking/run.py"},
    }
    found: dict[str, set[str]] = {name: set() for name in allowed}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name = node.func.attr
            owner = node.func.value
            if name == "end_run" and isinstance(owner, ast.Name) and owner.id == "mlflow":
                name = "mlflow.end_run"
            if name in found:
                found[name].add(rel)
    assert found == allowed


# -- ending -------------------------------------------------------------------------------
def test_every_end_but_finished_says_why(module_store) -> None:
    store = module_store
    client = MlflowClient(store)
    ends = {
        "ok": (None, None),
        "failed": (ValueError("bad value\nmore"), None),
        "ctrl-c": (KeyboardInterrupt(), None),
        "no-exception": (None, "FAILED"),
    }
    runs = {}
    for name, (exc, status) in ends.items():
        runs[name] = run = open_run(store, adopt="new", experiment="ends", run_name=name)
        assert run.end(exc, status=status).pending == 0
    got = {n: client.get_run(r.run_id) for n, r in runs.items()}
    assert {n: r.info.status for n, r in got.items()} == {
        "ok": "FINISHED",
        "failed": "FAILED",
        "ctrl-c": "KILLED",
        "no-exception": "FAILED",
    }
    reasons = {n: r.data.tags.get(END_REASON_TAG) for n, r in got.items()}
    assert reasons["ok"] is None
    assert reasons["failed"] == "ValueError: bad value"
    assert reasons["ctrl-c"].startswith("KeyboardInterrupt")
    assert reasons["no-exception"].startswith("FAILED")


def test_a_failing_two_run_comparison_leaves_its_run_failed_with_the_reason(
    module_store,
) -> None:
    """The comparison run is created, then its metrics are refused: a subset name of 240
    characters makes metric keys longer than MLflow's 250."""
    store = module_store
    correct = {i: [i % 2 == 0, True, i % 3 == 0] for i in range(12)}
    run_a = log_synthetic_run(store, correct, run_name="a")
    run_b = log_synthetic_run(store, correct, run_name="b")
    taxonomy = Taxonomy("long", (("s" * 240, "n_observed >= 0"),))
    client = MlflowClient(store)
    with pytest.raises(MlflowException):
        compare_runs(run_a, run_b, taxonomy=taxonomy, tracking_uri=store)
    experiment = client.get_run(run_b).info.experiment_id
    made = [
        r for r in client.search_runs([experiment]) if r.data.tags.get("soi.compare.run_a") == run_a
    ]
    assert len(made) == 1
    assert made[0].info.status == "FAILED"
    assert made[0].data.tags[END_REASON_TAG].startswith("MlflowException")


# -- one client ---------------------------------------------------------------------------
@pytest.mark.e2e
def test_one_training_builds_one_client_of_its_store(store, monkeypatch) -> None:
    """Counted, not mocked: every ``MlflowClient`` soi-mlflow's own code builds during one
    ``train()`` (model logged, run analysed). It was six before the run context was handed
    down; MLflow's own ``list_artifacts`` still builds clients inside MLflow, not counted."""
    from tracehelp import small_config

    from soi_mlflow.training import train

    built: list[str] = []
    original = MlflowClient.__init__

    def counting(self, *args, **kwargs) -> None:
        import inspect

        caller = inspect.stack(context=0)[1].filename
        if Path(caller).is_relative_to(PACKAGE):
            built.append(caller)
        original(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "__init__", counting)
    config = small_config(store, ("books", "movies"), log_model=True, analyze=True)
    result = train(config)
    assert MlflowClient(store).get_run(result.run_id).info.status == "FINISHED"
    assert result.analysis is not None and result.analysis.analysed
    assert len(built) == 1, built

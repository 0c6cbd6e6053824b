"""soi-mlflow leaves the process as it found it: every public entry point, called twice in
one process with the store named only by ``MLFLOW_TRACKING_URI`` (as ``mlflow run`` and
every team with a tracking server do) and the working directory elsewhere, leaves the
environment, MLflow's globals, logging, warning filters, torch's settings, the random
generators, matplotlib's backend and the signal handlers as they were, and writes every
run into that store (the fixture fails on a ``mlflow.db`` in the working directory).

Defaults are on (``log_model`` included): the bug this guards against (issue 18: logging
a model unset ``MLFLOW_TRACKING_URI``, so a study's second child looked in ``./mlflow.db``)
only shows with them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch  # noqa: F401  (imported before the snapshots)
import matplotlib
import mlflow
import numpy as np
import pytest
import transformers  # noqa: F401  (imported before the snapshots, as a user's script has)
from mlflow import MlflowClient
from processstate import differences, snapshot
from tracehelp import small_config

pytestmark = pytest.mark.e2e
MEMBERS = ("books", "movies")


@pytest.fixture(scope="module", autouse=True)
def _interactive_backend():
    """A backend other than Agg, as in a notebook: switching it is a change to catch."""
    old = matplotlib.get_backend()
    matplotlib.use("svg")
    yield
    matplotlib.use(old)


@pytest.fixture
def env_store(module_store, monkeypatch) -> str:
    """The module's store, named only by the environment variable. Opened once before any
    snapshot: MLflow adds a handler to the ``alembic`` logger when it creates a store's
    tables, which any first use of a new store does, soi-mlflow's or not."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", module_store)
    MlflowClient(module_store).search_experiments()
    return module_store


def _config(**settings: Any):
    """Small, but with the defaults a user has: the MLflow Model is logged."""
    members = settings.pop("members", MEMBERS)
    return small_config(
        None,
        members,
        max_examples=24,
        eval_max_examples=16,
        **{"epochs": 1, "log_model": True, **settings},
    )


def _twice(call: Callable[[], Any]) -> list[Any]:
    """Call twice; after each call the process's state is as before it."""
    results = []
    for attempt in (1, 2):
        before = snapshot()
        results.append(call())
        changed = differences(before, snapshot())
        assert not changed, f"call {attempt} changed the process:\n" + "\n".join(changed)
    return results


def _runs_in(uri: str, run_ids: list[str]) -> None:
    client = MlflowClient(uri)
    for run_id in run_ids:
        assert client.get_run(run_id).info.status == "FINISHED", run_id


def test_train(env_store) -> None:
    from soi_mlflow.training import train

    results = _twice(lambda: train(_config(members=("books",))))
    _runs_in(env_store, [r.run_id for r in results])
    assert all(r.tracking_uri == env_store for r in results)


def test_compare(env_store) -> None:
    from soi_mlflow.studies.single_vs_multi import SingleVsMultiSettings, run

    results = _twice(lambda: run(_config(), SingleVsMultiSettings(seeds=1)))
    _runs_in(env_store, [r.parent_run_id for r in results] + [*results[1].multi])


def test_two_stage(env_store) -> None:
    from soi_mlflow.studies.two_stage import TwoStageSettings, run

    settings = TwoStageSettings(stage2_top="variability:0.5", stage2_epochs=1)
    results = _twice(lambda: run(_config(members=("books",)), settings))
    _runs_in(env_store, [r.stage2_run_id for r in results])


def test_transfer(env_store) -> None:
    from soi_mlflow.studies.transfer import TransferSettings, run

    results = _twice(lambda: run(_config(), TransferSettings()))
    _runs_in(env_store, [r.parent_run_id for r in results])


def test_learning_curve(env_store) -> None:
    from soi_mlflow.studies.learning_curve import CurveSettings, run

    settings = CurveSettings(target="books", aux=("movies",), sizes=(8, 16, 24), seeds=1)
    results = _twice(lambda: run(_config(), settings))
    _runs_in(env_store, [r.parent_run_id for r in results])


def test_noise_benchmark(env_store) -> None:
    from soi_mlflow.studies.noise_benchmark import NoiseBenchmarkSettings, run

    settings = NoiseBenchmarkSettings(
        members=("sentiment",), train_size=48, eval_size=16, seeds=1, epochs=2, cl_folds=2
    )
    results = _twice(lambda: run(settings.train_config(), settings))
    _runs_in(env_store, [r.parent_run_id for r in results])


def _recorded_run(epochs: int = 3) -> str:
    """A user's plain loop feeding the recorder; it opens and ends its own run."""
    from soi_mlflow import TraceRecorder

    rng = np.random.default_rng(7)  # the user's own generator: the global ones stay put
    ids = np.arange(40, dtype=np.int64)
    gold = ids % 2
    with TraceRecorder(label_names=["neg", "pos"], experiment="recorded") as rec:
        for _ in range(epochs):
            rec.add("train", ids, rng.normal(size=(40, 2)).astype(np.float32), gold)
            rec.end_epoch()
    return rec.run_id


def test_trace_recorder(env_store) -> None:
    _runs_in(env_store, _twice(_recorded_run))


def test_analyze_run_and_compare_runs(env_store) -> None:
    from soi_mlflow.analysis import compare_runs
    from soi_mlflow.analysis.report import analyze_run

    first, second = _recorded_run(), _recorded_run()
    tables = _twice(lambda: analyze_run(first, ["train"]))
    assert len(tables[0]["train"]) == 40
    compared = _twice(lambda: compare_runs(first, second, "train"))
    _runs_in(env_store, [c.run_id for c in compared])


def test_loading_the_mlflow_model(env_store) -> None:
    import pandas as pd

    from soi_mlflow.training import train

    run_id = train(_config(members=("books",))).run_id
    frame = pd.DataFrame({"text": ["a fine book", "a dull book"]})
    out = _twice(lambda: mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(frame))
    assert len(out[0]) == 2 and out[0].equals(out[1])


# -- the adapters: a user's own training with and without soi-mlflow's callback --------
# A user's training itself seeds and draws from the global generators, so the state after
# it is compared with the state after the same training without the callback.


def _user_fit(callback: Any | None) -> None:
    from test_lightning_adapter import _fit

    _fit(callback, epochs=2)


def _same_as_without(fit: Callable[[Any | None], Any], make_callback: Callable[[], Any]) -> None:
    fit(None)
    without = snapshot()
    for attempt in (1, 2):
        fit(make_callback())
        changed = differences(without, snapshot())
        assert not changed, f"call {attempt} changed the process:\n" + "\n".join(changed)


def test_lightning_trace_callback(env_store) -> None:
    from soi_mlflow.lightning import TraceCallback

    def callback() -> TraceCallback:
        return TraceCallback(ids="uid", labels="target", logits="scores", label_names=["a", "b"])

    _same_as_without(_user_fit, callback)


def _hf_fit(callback: Any | None, data: Any, folder: Any) -> None:
    from test_transformers_trace import arguments, tiny_model
    from transformers import DataCollatorWithPadding, Trainer

    from soi_mlflow.transformers import TracingTrainer

    splits, tok = data
    names = splits["train"].features["label"].names
    kind = TracingTrainer if callback is not None else Trainer
    trainer = kind(
        model=tiny_model(names),
        args=arguments(folder, "none", epochs=1),
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        data_collator=DataCollatorWithPadding(tok),
        callbacks=[callback] if callback else [],
    )
    trainer.train()


def test_transformers_trace_callback_and_tracing_trainer(env_store, tmp_path) -> None:
    from test_transformers_trace import data as data_fixture

    from soi_mlflow.transformers import TraceCallback

    data = data_fixture.__wrapped__()
    _same_as_without(lambda cb: _hf_fit(cb, data, tmp_path), TraceCallback)


IMPORT_CHECK = """
import importlib, pkgutil, sys
sys.path.insert(0, {tests!r})
# the libraries soi-mlflow builds on, imported first: their own import-time effects are
# theirs; what importing soi_mlflow's modules adds on top is the package's
import datasets, lightning.pytorch, matplotlib, mlflow, pandas, pyarrow, torch, transformers
import transformers.trainer  # accelerate's import re-adds a warning filter of its own
from processstate import differences, snapshot
import soi_mlflow
before = snapshot()
names = [m.name for m in pkgutil.walk_packages(soi_mlflow.__path__, "soi_mlflow.")]
for name in names:
    # the server app imports MLflow's server; a __main__ module runs its command
    if not name.startswith("soi_mlflow.server") and not name.endswith("__main__"):
        importlib.import_module(name)
changed = differences(before, snapshot())
print(len(names), "modules;", "changed:" if changed else "nothing changed", *changed, sep="\\n")
sys.exit(1 if changed else 0)
"""


def test_importing_every_module_changes_nothing(tmp_path) -> None:
    """The command line quiets libraries for its own process; importing must not."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = IMPORT_CHECK.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "MPLBACKEND": "svg"}  # not Agg: switching it is a change to catch
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "nothing changed" in out.stdout

"""Studies on a local Ray cluster (one for the module, ``num_cpus=2``), against a real
SQLite store: the same children and traces as the local executor, a failing child that
fails its parent after the others finished, and a study stopped by SIGTERM mid-way that
``--resume`` completes by training only what had not finished."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from tracehelp import load_trace, scratch_store, small_config

from soi_mlflow.common.executor import ItemsFailed
from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.studies import transfer
from soi_mlflow.studies.transfer import TransferSettings

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.e2e
RAY = {"executor": "ray"}


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module; the process's SIGTERM handler put back."""
    handler = signal.getsignal(signal.SIGTERM)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    signal.signal(signal.SIGTERM, handler)
    yield
    ray.shutdown()
    signal.signal(signal.SIGTERM, handler)


@pytest.fixture(scope="module")
def uri(tmp_path_factory, cluster):
    with scratch_store(tmp_path_factory, "ray-store") as store:
        yield store


def _base(uri: str, experiment: str, max_examples: int = 30, epochs: int = 1):
    config = small_config(uri, ("books", "movies"), max_examples=max_examples, eval_max_examples=20)
    return replace(config, epochs=epochs, experiment=experiment)


def _children(uri: str, parent: str) -> dict[tuple[str, str], object]:
    client = MlflowClient(uri)
    experiment = client.get_run(parent).info.experiment_id
    runs = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")
    return {(r.data.tags["soi.members"], r.data.tags["soi.seed"]): r for r in runs}


def _all_children(uri: str, parent: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")


def test_transfer_on_ray_gives_the_local_studys_children_and_traces(uri) -> None:
    local = transfer.run(_base(uri, "local"), TransferSettings())
    on_ray = transfer.run(_base(uri, "ray"), TransferSettings(**RAY))
    client = MlflowClient(uri)
    for result in (local, on_ray):
        assert client.get_run(result.parent_run_id).info.status == "FINISHED"
        assert (result.trained, result.reused) == (3, 0)
    mine, theirs = _children(uri, local.parent_run_id), _children(uri, on_ray.parent_run_id)
    assert set(mine) == set(theirs) == {("books", "0"), ("movies", "0"), ("books,movies", "0")}
    for key, run in mine.items():
        other = theirs[key]
        assert run.info.status == other.info.status == "FINISHED"
        for split in ("train", "test"):
            path = f"traces/{split}/epoch=000.parquet"
            a, _ = load_trace(uri, run.info.run_id, path)
            b, _ = load_trace(uri, other.info.run_id, path)
            pd.testing.assert_frame_equal(a, b)  # the same seeds: the same trace, bit for bit
    pd.testing.assert_frame_equal(local.mean, on_ray.mean)


def _clashing_suite(folder: Path) -> Path:
    """Two members of one task whose label names disagree: each trains alone, together
    they fail (in the training, after every check a study makes first)."""
    words = {0: "dull awful boring", 1: "great lovely superb"}
    lines = ["name: clash", "members:"]
    for member, labels in (("xa", "[neg, pos]"), ("xb", "[bad, good]")):
        for split, n in (("train", 24), ("validation", 8), ("test", 8)):
            rows = ["text,label"] + [f"{member} {words[i % 2]} {i},{i % 2}" for i in range(n)]
            path = folder / member / f"{split}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        files = ", ".join(f"{s}: {member}/{s}.csv" for s in ("train", "validation", "test"))
        lines += [f"  {member}:", "    axis: source", "    task: sentiment"]
        lines += [f"    label_names: {labels}", f"    files: {{{files}}}"]
    suite = folder / "suite.yaml"
    suite.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return suite


def test_a_failing_child_fails_the_parent_after_the_others_finish(uri, tmp_path) -> None:
    spec = MixtureSpec(str(_clashing_suite(tmp_path)), "source", ("xa", "xb"))
    base = replace(_base(uri, "failing"), mixture=spec)
    with pytest.raises(ItemsFailed) as caught:
        transfer.run(base, TransferSettings(**RAY))
    assert caught.value.failures[0][0] == "xa+xb seed 0"
    assert "disagree on label names" in caught.value.failures[0][1]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("failing").experiment_id
    parent = client.search_runs([experiment], "tags.`soi.study` = 'transfer'")[0]
    assert parent.info.status == "FAILED"
    reason = parent.data.tags["soi.end_reason"]
    assert "xa+xb seed 0" in reason and "disagree on label names" in reason
    alone = _children(uri, parent.info.run_id)
    assert {k: r.info.status for k, r in alone.items()} == {
        ("xa", "0"): "FINISHED",
        ("xb", "0"): "FINISHED",
    }


def _stop_after_first_child(uri: str, experiment: str) -> threading.Thread:
    """SIGTERM this process once a child of the study in ``experiment`` has FINISHED."""

    def watch() -> None:
        client = MlflowClient(uri)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = client.get_experiment_by_name(experiment)
            if found is not None:
                done = client.search_runs(
                    [found.experiment_id],
                    "attributes.status = 'FINISHED' and tags.`soi.study_run` != ''",
                )
                if done:
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_study_stopped_mid_way_resumes_training_only_the_unfinished(uri) -> None:
    base = _base(uri, "stopped", max_examples=300, epochs=3)  # a child takes a few seconds
    watcher = _stop_after_first_child(uri, "stopped")
    with pytest.raises(SystemExit):  # SIGTERM: RunTerminated
        transfer.run(base, TransferSettings(**RAY))
    watcher.join(timeout=5)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("stopped").experiment_id
    parent = client.search_runs([experiment], "tags.`soi.study` = 'transfer'")[0]
    assert parent.info.status == "KILLED", parent.data.tags.get("soi.end_reason")
    statuses = sorted(r.info.status for r in _all_children(uri, parent.info.run_id))
    finished = statuses.count("FINISHED")
    assert 1 <= finished < 3, statuses
    assert statuses == ["FINISHED"] * finished + ["KILLED"] * (len(statuses) - finished)
    again = transfer.run(base, TransferSettings(**RAY, resume=parent.info.run_id))
    assert again.parent_run_id == parent.info.run_id
    assert (again.trained, again.reused) == (3 - finished, finished)
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    now = _all_children(uri, parent.info.run_id)
    assert sorted({r.data.tags["soi.members"] for r in now if r.info.status == "FINISHED"}) == [
        "books",
        "books,movies",
        "movies",
    ]
    assert sum(r.info.status == "FINISHED" for r in now) == 3  # none trained twice


def test_analyze_experiment_on_ray_gives_the_local_tables(uri) -> None:
    """``analyze --experiment`` through Ray tasks: each run analysed (its SOI table logged
    back) with the same summary as one after another in this process."""
    from tracehelp import log_synthetic_run

    from soi_mlflow.analysis.experiment import analyze_experiment
    from soi_mlflow.common.executor import ExecutorSettings

    sequences = {1: [0, 1, 1], 2: [1, 1, 1], 3: [0, 0, 0], 4: [1, 0, 1]}
    runs = [log_synthetic_run(uri, sequences, run_name=f"synthetic-{k}") for k in range(3)]
    local = analyze_experiment("synthetic", tracking_uri=uri)
    on_ray = analyze_experiment("synthetic", tracking_uri=uri, executor=ExecutorSettings(**RAY))
    pd.testing.assert_frame_equal(local, on_ray)
    assert sorted(on_ray["run_id"]) == sorted(runs)
    client = MlflowClient(uri)
    for run in runs:
        soi = client.get_run(run).data.metrics
        assert soi["soi/train/coverage"] == 1.0

"""Studies on a local Ray cluster (one for the module, ``num_cpus=2``), against a real
SQLite store: the same children and traces as the local executor, a failing child that
fails its parent after the others finished, and a study stopped by SIGTERM mid-way that
``--resume`` completes by training only what had not finished."""

from __future__ import annotations

import os
import re
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from faulthelp import HeldChildren, wait_for
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
def cluster(tmp_path_factory):
    """One local Ray cluster for the module; the process's SIGTERM handler put back. Its
    workers get the tests' cache (conftest's ``_isolated_cache``, set only per test, after
    this), not the user's ``~/.cache/soi_mlflow``, and tests/ on their ``PYTHONPATH``."""
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOI_MLFLOW_CACHE", str(tmp_path_factory.getbasetemp() / "soi-cache"))
        tests = str(Path(__file__).parent)  # faulthelp's HeldChildren, unpickled in workers
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.getenv("PYTHONPATH")])))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    signal.signal(signal.SIGTERM, handler)
    yield
    ray.shutdown()
    signal.signal(signal.SIGTERM, handler)


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread, as in a Ray task of one CPU (Ray sets its worker's
    OMP_NUM_THREADS to the task's CPUs), then put back. torch's CPU kernels split a sum (a
    matmul's, a gradient's) over their threads, so on another number of threads the same
    training adds in another order and its weights differ in the last bits (up to ~1e-7
    after one epoch here): the local executor, on torch's default of every core, is
    bit-identical to Ray only on as many threads as --cpus-per-run."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_a_ray_task_of_one_cpu_runs_torch_on_one_thread(cluster) -> None:
    threads = ray.remote(lambda: __import__("torch").get_num_threads()).options(num_cpus=1)
    assert ray.get(threads.remote()) == 1  # what one_thread() gives the local executor


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
    with one_thread():
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


def _held(gates: Path) -> set[str]:
    return {p.name.removeprefix("held-") for p in gates.glob("held-*")}


def _let_one_child_go(gates: Path, first: list[str], failed: list[str]) -> threading.Thread:
    """Every child of the study is held before its first epoch (faulthelp.HeldChildren);
    this lets the first one held go on, and names it in ``first``. Anything unexpected
    lets every child go (the study then ends on its own) and is recorded in ``failed``."""

    def release() -> None:
        try:
            first.append(next(iter(wait_for(lambda: _held(gates), 120, "a child held"))))
        except AssertionError as exc:
            failed.append(str(exc))
            (gates / "hold").unlink()
            return
        (gates / f"go-{first[0]}").touch()

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


def _sigterm_at_the_first_result(gates: Path, first: list[str], failed: list[str]):
    """executor_ray's progress ``step``, wrapped: when the driver has the first finished
    child's result (its run FINISHED in MLflow, what the stop reads: it ends only RUNNING
    children) and the other two are held before epoch 0 (each RUNNING, and held until the
    test removes the gate: a state they cannot leave), SIGTERM is raised in the driver's
    own thread, at this line. Nothing is left to race."""
    from soi_mlflow.common import executor_ray

    real, calls = executor_ray.step, []

    def step(*args, **kwargs) -> None:
        real(*args, **kwargs)
        calls.append(args)
        if len(calls) != 1:
            return
        try:
            wait_for(lambda: len(_held(gates) - set(first)) == 2, 120, "two children held")
        except AssertionError as exc:
            failed.append(str(exc))
            (gates / "hold").unlink()
            return
        signal.raise_signal(signal.SIGTERM)

    return step


def test_a_study_stopped_mid_way_resumes_training_only_the_unfinished(
    uri, tmp_path, monkeypatch
) -> None:
    """Stopped (SIGTERM) with one child FINISHED and two RUNNING: the parent and the two
    end KILLED; ``--resume`` trains those two only, reusing the finished one."""
    from soi_mlflow.common import executor_ray
    from soi_mlflow.studies import fanout

    base = _base(uri, "stopped")
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "hold").touch()
    failed: list[str] = []
    first: list[str] = []
    with monkeypatch.context() as patch:
        patch.setattr(fanout, "train_child", HeldChildren(gates))
        patch.setattr(executor_ray, "step", _sigterm_at_the_first_result(gates, first, failed))
        releaser = _let_one_child_go(gates, first, failed)
        with pytest.raises(SystemExit):  # SIGTERM: RunTerminated
            transfer.run(base, TransferSettings(**RAY))
        releaser.join(timeout=30)
    assert not failed, failed
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("stopped").experiment_id
    parent = client.search_runs([experiment], "tags.`soi.study` = 'transfer'")[0]
    assert parent.info.status == "KILLED", parent.data.tags.get("soi.end_reason")
    statuses = sorted(r.info.status for r in _all_children(uri, parent.info.run_id))
    assert statuses == ["FINISHED", "KILLED", "KILLED"]
    (gates / "hold").unlink()
    again = transfer.run(base, TransferSettings(**RAY, resume=parent.info.run_id))
    assert again.parent_run_id == parent.info.run_id
    assert (again.trained, again.reused) == (2, 1)
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


# Every other study, local against Ray: the same tree of runs under one FINISHED parent,
# each training with the same trace. A run is identified across the two studies by its
# soi.* tags (soi.training_key among them: a digest of everything that decides what it
# trains, the starting weights' content included), a run id tag as "<run>" (each study
# has its own run ids), under the identity of the run it is nested in.

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
VARYING = {"soi.heartbeat"}  # a time: differs between any two runs


def _identity(run) -> tuple:
    tags = run.data.tags
    return tuple(
        sorted(
            (k, "<run>" if RUN_ID.match(v) else v)
            for k, v in tags.items()
            if k.startswith("soi.") and k not in VARYING
        )
    )


def _tree(uri: str, parent: str) -> dict[tuple, object]:
    """Every run nested (at any depth) under ``parent``, by the identities of its
    ancestors below ``parent`` and its own; fails on any run of the experiment outside
    the tree, and on two runs of one identity under one parent."""
    client = MlflowClient(uri)
    experiment = client.get_run(parent).info.experiment_id
    runs = client.search_runs([experiment], max_results=5000)
    below: dict[str, list] = {}
    for run in runs:
        below.setdefault(run.data.tags.get("mlflow.parentRunId", ""), []).append(run)
    tree: dict[tuple, object] = {}

    def walk(run_id: str, path: tuple) -> None:
        for run in below.get(run_id, []):
            key = (*path, _identity(run))
            assert key not in tree, f"two runs {key} under {run_id}"
            tree[key] = run
            walk(run.info.run_id, key)

    walk(parent, ())
    assert len(tree) == len(runs) - 1, "runs of the study's experiment outside its tree"
    return tree


def _traces(uri: str, run_id: str) -> dict[str, pd.DataFrame]:
    """Every trace file of a run (``traces/<split>/...parquet``) by its path."""
    from mlflow.artifacts import download_artifacts

    from soi_mlflow.tracking.trace_format import read_trace

    if not MlflowClient(uri).list_artifacts(run_id, "traces"):
        return {}
    with tempfile.TemporaryDirectory(prefix="soi-test-") as folder:
        local = Path(
            download_artifacts(
                run_id=run_id, artifact_path="traces", tracking_uri=uri, dst_path=folder
            )
        )
        return {
            p.relative_to(local).as_posix(): read_trace(p) for p in sorted(local.rglob("*.parquet"))
        }


def _same_study(uri: str, local, on_ray) -> int:
    """Both parents FINISHED, the same runs under each, every one FINISHED, every
    training's traces identical; returns the number of trainings."""
    client = MlflowClient(uri)
    for result in (local, on_ray):
        assert client.get_run(result.parent_run_id).info.status == "FINISHED"
        assert result.reused == 0
    mine, theirs = _tree(uri, local.parent_run_id), _tree(uri, on_ray.parent_run_id)
    assert set(mine) == set(theirs)
    trainings = 0
    for key, run in mine.items():
        other = theirs[key]
        assert run.info.status == other.info.status == "FINISHED", key
        a, b = _traces(uri, run.info.run_id), _traces(uri, other.info.run_id)
        assert sorted(a) == sorted(b), key
        if "soi.training_key" in dict(key[-1]):
            trainings += 1
            assert any(p.startswith("train/") for p in a), f"no training trace: {key}"
        for path, table in a.items():
            pd.testing.assert_frame_equal(table, b[path], obj=f"{path} of {dict(key[-1])}")
    assert trainings == local.trained == on_ray.trained
    return trainings


def _tiny(uri: str, experiment: str, members: tuple[str, ...], axis: str = "source"):
    """The smallest training a study takes: 12 examples a member, 8 to evaluate, 1 epoch."""
    config = small_config(uri, members, axis=axis, max_examples=12, eval_max_examples=8)
    return replace(config, epochs=1, experiment=experiment)


def _compare(uri: str, experiment: str, executor: dict):
    from soi_mlflow.studies import single_vs_multi

    base = _tiny(uri, experiment, ("books", "movies"))
    result = single_vs_multi.run(base, single_vs_multi.SingleVsMultiSettings(**executor))
    return result, result.summary


def _two_stage(uri: str, experiment: str, executor: dict):
    from soi_mlflow.studies import two_stage

    settings = two_stage.TwoStageSettings(stage2_top="confidence:0.5", stage2_epochs=1, **executor)
    result = two_stage.run(_tiny(uri, experiment, ("books",)), settings)
    return result, result.table


def _learning_curve(uri: str, experiment: str, executor: dict):
    """With ``approx``: each size warm-starts from the one before, a wave after another."""
    from soi_mlflow.studies import learning_curve

    base = _tiny(uri, experiment, ("entailment",), axis="task")
    settings = learning_curve.CurveSettings(
        "entailment", ("sentiment",), sizes=(4, 8, 12), approx=True, **executor
    )
    result = learning_curve.run(base, settings)
    return result, result.points.drop(columns=["run_id", "seconds"])


def _views(uri: str, experiment: str, executor: dict):
    """The views study on the defaults of ``soi-mlflow views`` (and of its MLproject entry
    point, which gives it no members or axis: tests/test_entry_points_e2e.py leaves it
    to this file): no axis, no members, so the built-in suite's task axis and its three
    members; only how much is trained is smaller (the smallest views study: 2 seeds, 3
    sizes, 12 examples a member, 1 epoch, affinity every step, the tiny config's batch
    size and no MLflow Model). It is 68 trainings: a transfer and three learning-curve
    studies under it, and the affinity runs."""
    from soi_mlflow.cli.main import COMMANDS
    from soi_mlflow.cli.options import parse
    from soi_mlflow.studies import views

    sizes = ["--seeds", "2", "--sizes", "4,8,12", "--affinity-interval", "1"]
    (config, settings), _ = parse(COMMANDS["views"], sizes)
    assert (config.mixture.axis, config.mixture.members) == (
        "task",
        ("sentiment", "paraphrase", "entailment"),
    )
    mixture = replace(config.mixture, max_examples=12, eval_max_examples=8)
    base = replace(_tiny(uri, experiment, ("sentiment",), axis="task"), mixture=mixture)
    result = views.run(base, replace(settings, **executor))
    assert MlflowClient(uri).get_run(result.parent_run_id).data.tags["soi.members"] == (
        "entailment,paraphrase,sentiment"
    )
    return result, result.values


def _noise_benchmark(uri: str, experiment: str, executor: dict):
    """With 2 cross-validation folds: their held-out probabilities computed in the worker."""
    from soi_mlflow.studies import noise_benchmark

    settings = noise_benchmark.NoiseBenchmarkSettings(
        train_size=24, eval_size=8, seeds=1, cl_folds=2, **executor
    )
    result = noise_benchmark.run(_tiny(uri, experiment, ("sentiment",), axis="task"), settings)
    return result, result.per_seed


STUDIES = {  # each study and the trainings it makes
    "compare": (_compare, 3),  # each member alone, both together
    "two_stage": (_two_stage, 3),  # stage 1, stage 2, its control
    "learning_curve": (_learning_curve, 6),  # 3 sizes alone and with the auxiliary member
    "noise_benchmark": (_noise_benchmark, 3),  # the detection run and 2 folds
}


@pytest.mark.parametrize("study", list(STUDIES))
def test_every_study_on_ray_gives_the_local_studys_runs_and_traces(uri, study) -> None:
    run, trainings = STUDIES[study]
    with one_thread():
        local, mine = run(uri, f"{study}-local", {})
    on_ray, theirs = run(uri, f"{study}-ray", RAY)
    assert _same_study(uri, local, on_ray) == trainings
    pd.testing.assert_frame_equal(mine, theirs)  # the study's own analysis, the same


def test_the_views_study_on_ray_runs_its_defaults_and_re_analyses_the_same(uri) -> None:
    """``views`` on its defaults, once, on Ray: 68 trainings (transfer 2 x 6, affinity 2,
    curves 2 x 3 x 9), every one FINISHED with its training trace, under a FINISHED
    parent; and its analysis redone from the runs it logged (``analyze
    --parent-run-id``) equal to the study's own. It is not trained twice as the studies
    above are: its trainings are a transfer study's, learning-curve studies' and the
    affinity runs, and that a transfer or a learning-curve training comes out of Ray as it
    comes out locally is what ``test_transfer_on_ray_...`` and ``[learning_curve]``
    above show (its local twin cost ~30 s of the suite, issue #24)."""
    from soi_mlflow.studies.reanalyze import reanalyze

    on_ray, _ = _views(uri, "views-ray", RAY)
    client = MlflowClient(uri)
    assert client.get_run(on_ray.parent_run_id).info.status == "FINISHED"
    assert (on_ray.trained, on_ray.reused) == (68, 0)
    tree = _tree(uri, on_ray.parent_run_id)
    assert {run.info.status for run in tree.values()} == {"FINISHED"}
    trainings = [run for key, run in tree.items() if "soi.training_key" in dict(key[-1])]
    assert len(trainings) == 68
    for run in trainings:
        assert client.list_artifacts(run.info.run_id, "traces/train"), run.info.run_name
    again = reanalyze(on_ray.parent_run_id, uri)
    table = again.tables["each view's transfers, with intervals over seeds"]
    pd.testing.assert_frame_equal(
        table.reset_index(drop=True), on_ray.significance.reset_index(drop=True)
    )

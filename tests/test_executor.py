"""The local executor, the executor settings and the study options they come with, checked
without training: results in order, every item run before failures are raised, stores a
remote Ray cluster cannot reach refused before anything starts, --resume parsed."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import pytest
from mlflow import MlflowClient
from tracehelp import small_config

from soi_mlflow.common.executor import (
    ExecutorSettings,
    ItemsFailed,
    LocalExecutor,
    is_remote,
    make_executor,
)
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies import transfer
from soi_mlflow.studies.transfer import TransferSettings


def test_local_map_keeps_order_prints_progress_and_runs_every_item_before_failing(capsys) -> None:
    seen: list[float] = []

    def root(x: float) -> float:
        seen.append(x)
        return math.sqrt(x)

    ex = make_executor(ExecutorSettings())
    assert isinstance(ex, LocalExecutor)
    assert ex.map(root, [9.0, 4.0, 1.0], lambda x: f"root of {x:g}") == [3.0, 2.0, 1.0]
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in out] == [
        "[1/3] root of 9",
        "[2/3] root of 4",
        "[3/3] root of 1",
    ]
    seen.clear()
    with pytest.raises(ItemsFailed) as caught:
        ex.map(root, [4.0, -1.0, 16.0], lambda x: f"root of {x:g}", steps=(2, 5))
    assert seen == [4.0, -1.0, 16.0]  # the item after the failure ran too
    assert caught.value.failures == [("root of -1", "ValueError: math domain error")]
    assert str(caught.value) == "1 of 3 jobs failed: root of -1: ValueError: math domain error"
    out = capsys.readouterr().out
    assert "[4/5] root of -1: FAILED (ValueError: math domain error)" in out
    assert "[5/5] root of 16" in out


def test_ctrl_c_stops_the_local_map_at_once() -> None:
    seen: list[int] = []

    def job(x: int) -> int:
        seen.append(x)
        if x == 1:
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        LocalExecutor().map(job, [0, 1, 2])
    assert seen == [0, 1]


def test_bad_executor_settings_are_refused() -> None:
    for settings, pattern in (
        (ExecutorSettings(executor="spark"), "expected one of local, ray"),  # type: ignore
        (ExecutorSettings(cpus_per_run=0), "cpus-per-run must be > 0"),
        (ExecutorSettings(gpus_per_run=-1, executor="ray"), "gpus-per-run must be >= 0"),
        (ExecutorSettings(ray_address="10.0.0.2:6379"), "add --executor ray"),
    ):
        with pytest.raises(SoiInputError, match=pattern):
            make_executor(settings)


def test_which_ray_addresses_are_remote() -> None:
    def remote(address: str | None) -> bool:
        return is_remote(ExecutorSettings(executor="ray", ray_address=address))

    assert not remote(None) and not remote("local") and not remote("127.0.0.1:6379")
    assert not remote("ray://localhost:10001")
    assert remote("10.0.0.2:6379") and remote("ray://head.cluster:10001") and remote("auto")
    assert not is_remote(ExecutorSettings(ray_address="10.0.0.2:6379"))  # local executor


def test_a_remote_cluster_with_a_local_store_is_refused_before_anything_starts(store) -> None:
    base = small_config(store, ("books", "movies"))
    for uri in (store, "file:///tmp/mlruns", "/tmp/mlruns"):
        settings = TransferSettings(executor="ray", ray_address="10.0.0.2:6379")
        with pytest.raises(SoiInputError) as caught:
            transfer.run(replace(base, tracking_uri=uri), settings)
        message = str(caught.value)
        assert "is on this machine only" in message and "10.0.0.2:6379" in message
        assert "http(s) MLflow tracking server" in message and "PostgreSQL" in message
        assert "artifact store every node reaches" in message
    client = MlflowClient(store)
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_resume_of_a_study_is_its_parent_run_id_not_a_training_runs(store) -> None:
    from soi_mlflow.cli.main import COMMANDS
    from soi_mlflow.cli.options import parse

    config, settings = parse(
        COMMANDS["transfer"], ["--members", "books,movies", "--resume", "abc"]
    )[0]
    assert settings.resume == "abc" and config.resume is None
    (train_config,) = parse(COMMANDS["train"], ["--resume", "abc"])[0]
    assert train_config.resume == "abc"
    base = small_config(store, ("books", "movies"), resume="abc")
    with pytest.raises(SoiInputError, match="resumes from its parent run id"):
        transfer.run(base, TransferSettings())
    with pytest.raises(SoiInputError, match="resume"):
        transfer.run(small_config(store, ("books", "movies")), TransferSettings(resume="nope"))


def test_the_learning_curve_studys_waves_warn_nothing() -> None:
    """Its waves are the study's own: no deprecation warning from every run (the old
    entry points' own warnings: tests/test_deprecated_studies.py)."""
    from soi_mlflow.studies import learning_curve as curve
    from soi_mlflow.studies.learning_curve.study import _plan, _waves

    settings = curve.CurveSettings("entailment", ("sentiment",), sizes=(4, 8, 12), approx=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _waves(_plan(settings), True) == [[0, 3], [1, 4], [2, 5]]


def test_a_child_left_running_says_why_it_was_ended() -> None:
    """A resumed study ends the children a dead driver left RUNNING KILLED, saying so,
    not as if someone pressed Ctrl-C; Ctrl-C itself still says Ctrl-C."""
    from soi_mlflow.studies.fanout import KilledBefore
    from soi_mlflow.tracking.health import end_reason, end_status

    assert end_status(KilledBefore()) == "KILLED"
    assert end_reason(KilledBefore()).startswith("left running by a study driver that stopped")
    assert end_reason(KeyboardInterrupt()) == "KeyboardInterrupt (Ctrl-C)"

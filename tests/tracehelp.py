"""Helpers for tests that read runs back (the analysis package has the real readers)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts

from soi_mlflow.common.process_state import kept
from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.tracking.trace_format import read_metadata, read_trace
from soi_mlflow.training import TrainConfig


def trace_files(uri: str, run_id: str, split: str) -> list[str]:
    client = MlflowClient(uri)
    return sorted(a.path for a in client.list_artifacts(run_id, f"traces/{split}"))


# The helpers below download into, or write through, a temporary folder they remove
# before returning (the store keeps its own copy): a test run leaves nothing in /tmp.


def load_trace(uri: str, run_id: str, path: str) -> tuple[pd.DataFrame, dict]:
    with tempfile.TemporaryDirectory(prefix="soi-test-") as folder:
        local = download_artifacts(
            run_id=run_id, artifact_path=path, tracking_uri=uri, dst_path=folder
        )
        return read_trace(local), read_metadata(local)


def load_examples(uri: str, run_id: str, split: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory(prefix="soi-test-") as folder:
        local = download_artifacts(
            run_id=run_id,
            artifact_path=f"examples/{split}.parquet",
            tracking_uri=uri,
            dst_path=folder,
        )
        return pd.read_parquet(Path(local))


@contextmanager
def scratch_store(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[str]:
    """A module-wide SQLite store in its own folder, outside the working directory
    (``conftest.separate_store``)."""
    from conftest import separate_store

    with pytest.MonkeyPatch.context() as mp:
        yield from separate_store(tmp_path_factory.mktemp(name), mp)


@contextmanager
def probes_study(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    suite_yaml: str,
    members: tuple[str, ...],
    **settings,
) -> Iterator[Callable[[str], pd.DataFrame]]:
    """A joint transfer study of ``members`` on the built-in suite that ``suite_yaml``
    describes, at the setting of the transfer probes' known answers (100 training and 200
    test examples a member, 10 epochs, lr 0.003; docs/studies.md), in a module-wide store;
    ``settings`` go to ``TransferSettings``. Yields a reader of the parent's tables by name."""
    from soi_mlflow.analysis.runs import cache_for
    from soi_mlflow.studies import transfer
    from soi_mlflow.studies.transfer import TransferSettings

    with scratch_store(tmp_path_factory, name) as uri:
        suite = tmp_path_factory.mktemp("suite") / f"{name}.yaml"
        suite.write_text(suite_yaml, encoding="utf-8")
        config = small_config(uri, members, max_examples=100, eval_max_examples=200)
        config = replace(
            config,
            epochs=10,
            lr=0.003,
            experiment=name,
            mixture=replace(config.mixture, suite=str(suite)),
        )
        result = transfer.run(config, TransferSettings(**settings))
        cache = cache_for(uri)

        def table(table_name: str) -> pd.DataFrame:
            path = cache.file(result.parent_run_id, f"tables/{table_name}.parquet")
            return pd.read_parquet(path)

        yield table


def small_config(
    uri: str,
    members: tuple[str, ...] = ("books",),
    ood: tuple[str, ...] = (),
    axis: str = "source",
    max_examples: int = 60,
    eval_max_examples: int = 50,
    **settings,
) -> TrainConfig:
    """A built-in-suite training config small enough for a test (2 epochs, batch 16).

    No MLflow Model is logged unless asked (``log_model=True``): it costs 0.3-0.4 s a run
    here, 1 s for the first in a process; tests/test_mlflow_model.py covers it. Nor is the
    run analysed when training ends unless asked (``analyze=True``): ~0.5 s per traced
    split; tests/test_after_training.py covers it."""
    spec = MixtureSpec(
        "builtin",
        axis,
        tuple(members),
        ood=tuple(ood),
        max_examples=max_examples,
        eval_max_examples=eval_max_examples,
    )
    return TrainConfig(
        spec,
        tracking_uri=uri,
        **{
            "epochs": 2,
            "batch_size": 16,
            "progress": False,
            "log_model": False,
            "analyze": False,
            **settings,
        },
    )


def cli_env(uri: str) -> dict[str, str]:
    """The environment of a user with the venv activated and ``uri`` as tracking store."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
    env["MLFLOW_TRACKING_URI"] = uri
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_cli(args: list[str], uri: str, cwd: Path, timeout: int = 600) -> str:
    """Run ``soi-mlflow ARGS`` in a child process; fail with its stderr; return stdout."""
    out = subprocess.run(
        [sys.executable, "-m", "soi_mlflow.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(uri),
        cwd=cwd,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    if not uri.endswith(f"{cwd}/mlflow.db"):
        stray = Path(cwd) / "mlflow.db"
        assert not stray.exists(), f"a stray {stray}: the command used MLflow's default store"
    return out.stdout


def run_cli_here(args: list[str], uri: str, cwd: Path) -> str:
    """``soi-mlflow ARGS`` in this process, as :func:`run_cli` runs it in a child (the
    store named only by ``MLFLOW_TRACKING_URI``, ``cwd`` the working directory); return
    stdout. For tests whose claim is the command's work, not its process: a child pays
    ~10 s of CPU importing torch, Lightning and MLflow first. The process is put back
    as found (environment, logging, warning filters, random states: ``kept``). The
    command's own process is tested by the entry points (tests/test_entry_points_e2e.py),
    the killed runs and the faults (tests/test_faults_e2e.py)."""
    from soi_mlflow.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with kept(), contextlib.chdir(cwd):
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ.pop("MLFLOW_RUN_ID", None)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
    assert code == 0, err.getvalue()[-3000:]
    if not uri.endswith(f"{cwd}/mlflow.db"):
        stray = Path(cwd) / "mlflow.db"
        assert not stray.exists(), f"a stray {stray}: the command used MLflow's default store"
    return out.getvalue()


def log_synthetic_run(
    uri: str,
    correct: dict[int, list[bool | None]],
    member_of: dict[int, str] | None = None,
    run_name: str = "synthetic",
    split: str = "train",
    extra_examples: dict[int, str] | None = None,
) -> str:
    """A real MLflow run holding schema-v1 traces written from known correctness sequences.

    ``correct[id][e]`` is the example's correctness at epoch e; ``None`` leaves the example
    out of that epoch (not visited). p_gold is 0.8 when correct, 0.2 when wrong. Also logs
    ``examples/<split>.parquet``, with ``extra_examples`` (id -> member) never traced.
    Returns the run id."""
    import mlflow

    from soi_mlflow.tracking.trace_format import build_table, write_trace

    member_of = member_of or {}
    names = sorted(set(member_of.values()) | {"m"})
    epochs = max(len(seq) for seq in correct.values())
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("synthetic") or client.get_experiment(
        client.create_experiment("synthetic")
    )
    run = client.create_run(experiment.experiment_id, run_name=run_name)
    with tempfile.TemporaryDirectory(prefix="soi-synthetic-") as scratch:
        folder = Path(scratch)
        for e in range(epochs):
            ids = [i for i, seq in correct.items() if e < len(seq) and seq[e] is not None]
            hit = np.array([bool(correct[i][e]) for i in ids], dtype=bool)
            rows = {
                "example_id": np.array(ids, dtype=np.int64),
                "epoch": e,
                "step": np.full(len(ids), e, dtype=np.int64),
                "member_idx": np.array([names.index(member_of.get(i, "m")) for i in ids]),
                "task_idx": np.zeros(len(ids), dtype=np.int32),
                "gold": np.zeros(len(ids), dtype=np.int32),
                "pred": np.where(hit, 0, 1).astype(np.int32),
                "p_gold": np.where(hit, 0.8, 0.2).astype(np.float32),
                "loss": np.ones(len(ids), dtype=np.float32),
            }
            path = folder / f"epoch={e:03d}.parquet"
            write_trace(
                path,
                build_table(rows, names, ["t"]),
                {"epoch": e, "split": split, "capture": "train_pass", "run_id": run.info.run_id},
            )
            client.log_artifact(run.info.run_id, str(path), f"traces/{split}")
        members = {i: member_of.get(i, "m") for i in correct} | dict(extra_examples or {})
        table = pd.DataFrame(
            {"example_id": list(members), "member": list(members.values()), "label": 0}
        )
        table.to_parquet(folder / f"{split}.parquet", index=False)
        client.log_artifact(run.info.run_id, str(folder / f"{split}.parquet"), "examples")
    client.set_terminated(run.info.run_id)
    mlflow.set_tracking_uri(uri)
    return run.info.run_id

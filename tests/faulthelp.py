"""Helpers of the fault-injection suite: a training child process to kill, traces read
straight from a run, and the comparison of a disturbed run with an undisturbed one."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from soi_mlflow.tracking.trace_format import read_metadata, read_trace

TESTS = Path(__file__).parent

# the fault-injection suite's tally; conftest.py prints it at the end of the session
SUMMARY = {"faults": 0, "recovered": 0, "rows": 0, "lost": 0}

CHILD = """
import sys
sys.path.insert(0, {tests!r})
from faulthelp import add_gates
from tracehelp import small_config
from soi_mlflow.training import train
add_gates({gates!r})
r = train(small_config({uri!r}, **{settings!r}))
print("RUN", r.run_id, flush=True)
import gc; gc.freeze()  # exit as the soi-mlflow script does (bench/cli_exit.py): 2-5 s less
"""


def start_training(
    uri: str, cwd: Path, env: dict[str, str], gates: Path | None = None, **settings
) -> subprocess.Popen:
    """``train(small_config(uri, **settings))`` in a child process (killable). With
    ``gates``, epoch ``k`` waits to start while the file ``gates/epoch-k`` exists."""
    gate_dir = str(gates) if gates is not None else None
    code = CHILD.format(tests=str(TESTS), uri=uri, settings=settings, gates=gate_dir)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def add_gates(folder: str | None) -> None:
    """In the training child: before epoch ``k`` starts, if ``folder/epoch-k`` exists,
    write ``folder/epoch-k.reached`` and wait until the test removes the gate; likewise
    before batch ``b`` of epoch ``k`` with ``folder/epoch-k-batch-b`` (a fault in the middle
    of an epoch). The test injects its faults at these points; nothing else changes (the
    epoch's seed is set after the wait, by the trainer's own EpochSeed)."""
    if folder is None:
        return
    from soi_mlflow.callbacks.resume import EpochSeed

    original = EpochSeed.on_train_epoch_start

    def wait(gate: Path) -> None:
        if gate.exists():
            gate.with_name(gate.name + ".reached").touch()
            while gate.exists():
                time.sleep(0.02)

    def gated(self, trainer, pl_module) -> None:
        wait(Path(folder) / f"epoch-{trainer.current_epoch}")
        original(self, trainer, pl_module)

    def gated_batch(self, trainer, pl_module, batch, batch_idx) -> None:
        wait(Path(folder) / f"epoch-{trainer.current_epoch}-batch-{batch_idx}")

    EpochSeed.on_train_epoch_start = gated
    EpochSeed.on_train_batch_start = gated_batch


def close_gate(folder: Path, epoch: int, batch: int | None = None) -> Path:
    """The gate before epoch ``epoch`` (before its batch ``batch`` if given)."""
    folder.mkdir(parents=True, exist_ok=True)
    gate = folder / (f"epoch-{epoch}" if batch is None else f"epoch-{epoch}-batch-{batch}")
    gate.touch()
    return gate


def at_gate(gate: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Wait until the child waits at ``gate``."""
    reached = gate.with_name(gate.name + ".reached")
    wait_for(reached.exists, timeout, f"the child at {gate.name}", proc)


def wait_for(condition: Callable[[], object], timeout: float, what: str, proc=None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read()[-3000:] if proc.stdout else ""
            raise AssertionError(f"{what}: the child ended first:\n{out}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def held(folder: Path, epoch: int) -> Iterator[None]:
    """In this process, while the block runs: each training that starts epoch ``epoch``
    while ``folder/hold`` exists writes ``folder/held-<token>`` (a token of its own) and
    waits until the test writes ``folder/go-<token>`` (this one goes on) or removes the
    hold (all go on). Then EpochSeed is put back."""
    from soi_mlflow.callbacks.resume import EpochSeed

    original = EpochSeed.on_train_epoch_start
    hold = folder / "hold"

    def gated(self, trainer, pl_module) -> None:
        if trainer.current_epoch == epoch and hold.exists():
            token = uuid.uuid4().hex
            go = folder / f"go-{token}"
            (folder / f"held-{token}").touch()
            while hold.exists() and not go.exists():
                time.sleep(0.02)
        original(self, trainer, pl_module)

    EpochSeed.on_train_epoch_start = gated
    try:
        yield
    finally:
        EpochSeed.on_train_epoch_start = original


class HeldChildren:
    """A study's ``train_child`` for an executor whose workers are other processes (Ray):
    each child trains ``held`` at ``epoch`` (above), so a test decides which children of
    a study finish before it stops the study. Picklable by reference: the workers need
    this folder (tests/) on their ``PYTHONPATH``."""

    def __init__(self, folder: Path, epoch: int = 0) -> None:
        self.folder, self.epoch = str(folder), epoch

    def __call__(self, child):
        from soi_mlflow.studies import fanout

        if fanout.train_child is self:
            raise RuntimeError("HeldChildren runs in a worker process, not in the driver")
        with held(Path(self.folder), self.epoch):
            return fanout.train_child(child)


def run_traces(uri: str, run_id: str, split: str, dst: Path) -> list[tuple[pd.DataFrame, dict]]:
    """Every trace file of ``split`` in the run, in epoch order, with its metadata."""
    client = MlflowClient(uri)
    files = sorted(a.path for a in client.list_artifacts(run_id, f"traces/{split}"))
    out = []
    for path in files:
        local = client.download_artifacts(run_id, path, str(dst))
        out.append((read_trace(local), read_metadata(local)))
    return out


def assert_same_traces(
    uri: str,
    run_a: str,
    run_b: str,
    splits,
    epochs: int,
    dst: Path,
    exact_until: int,
    uri_b: str | None = None,
) -> int:
    """Every epoch's trace exactly once in both runs (``run_b`` in ``uri_b`` if given) with
    the same examples, steps and gold labels and the same metadata (except the run id);
    epochs before ``exact_until`` equal value for value. Returns the rows compared."""
    rows = 0
    for split in splits:
        a = run_traces(uri, run_a, split, dst / "a" / split)
        b = run_traces(uri_b or uri, run_b, split, dst / "b" / split)
        SUMMARY["lost"] += rows_lost(a, b)
        assert [m["epoch"] for _, m in a] == list(range(epochs)), (split, run_a)
        assert [m["epoch"] for _, m in b] == list(range(epochs)), (split, run_b)
        for (ta, ma), (tb, mb) in zip(a, b, strict=True):
            assert not ta["example_id"].duplicated().any()
            where = f"split {split}, epoch {ma['epoch']}"
            same = ta if ma["epoch"] < exact_until else ta[["example_id", "step", "gold"]]
            other = tb if ma["epoch"] < exact_until else tb[["example_id", "step", "gold"]]
            try:
                pd.testing.assert_frame_equal(same, other, check_exact=True)
            except AssertionError as exc:
                raise AssertionError(f"{where}: {exc}") from None
            ma, mb = dict(ma), dict(mb)
            assert ma.pop("run_id") == run_a and mb.pop("run_id") == run_b
            assert ma == mb
            rows += len(ta)
    return rows


def rows_lost(a: list[tuple[pd.DataFrame, dict]], b: list[tuple[pd.DataFrame, dict]]) -> int:
    """Rows of ``a``'s epochs whose example is missing from ``b``'s same epoch."""
    found = {}
    for table, meta in b:
        found.setdefault(meta["epoch"], set()).update(table["example_id"].tolist())
    return sum(
        int((~table["example_id"].isin(found.get(meta["epoch"], set()))).sum()) for table, meta in a
    )


def metric_history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    hist = MlflowClient(uri).get_metric_history(run_id, key)
    return sorted({(m.step, m.value) for m in hist})


def same_analysis(uri: str, run_a: str, run_b: str, uri_b: str | None = None) -> None:
    """``soi_table`` of the train split equal for both runs (``run_b`` in ``uri_b``)."""
    from soi_mlflow.analysis.runs import soi_table

    ta = soi_table(run_a, "train", tracking_uri=uri)
    tb = soi_table(run_b, "train", tracking_uri=uri_b or uri)
    pd.testing.assert_frame_equal(ta.reset_index(drop=True), tb.reset_index(drop=True))
    assert np.array_equal(ta["soi"].astype(str), tb["soi"].astype(str))

"""The framework-free TraceRecorder in a plain loop, against a real SQLite MLflow store."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from tracehelp import load_trace, trace_files

import soi_mlflow
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.recorder import TraceRecorder

IDS = np.arange(100, 120, dtype=np.int64)


def _logits(seed: int, n: int = len(IDS), classes: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, classes)).astype(np.float32)


def _labels(n: int = len(IDS)) -> np.ndarray:
    return np.arange(n) % 3


def test_three_calls_in_a_plain_loop_give_one_file_per_split_and_epoch(module_store) -> None:
    mlflow.set_tracking_uri(module_store)
    with mlflow.start_run() as run, soi_mlflow.TraceRecorder(label_names=["a", "b", "c"]) as rec:
        for epoch in range(2):
            logits = _logits(epoch)
            for start in range(0, len(IDS), 8):  # batches, as tensors
                rows = slice(start, start + 8)
                rec.add(
                    "train",
                    torch.as_tensor(IDS[rows]),
                    torch.as_tensor(logits[rows]),
                    torch.as_tensor(_labels()[rows]),
                )
            rec.add("validation", IDS[:5], _logits(9, 5), ["a", "b", "c", "a", "b"])  # names
            metrics = rec.end_epoch()
            assert set(metrics) >= {"train/loss", "train/default/acc", "val/default/acc"}
    assert trace_files(module_store, run.info.run_id, "train") == [
        "traces/train/epoch=000.parquet",
        "traces/train/epoch=001.parquet",
    ]
    assert len(trace_files(module_store, run.info.run_id, "validation")) == 2
    trace, meta = load_trace(module_store, run.info.run_id, "traces/train/epoch=001.parquet")
    assert trace["example_id"].tolist() == IDS.tolist()  # each example once, sorted
    expected = torch.as_tensor(_logits(1)).softmax(-1).numpy()[np.arange(20), _labels()]
    np.testing.assert_allclose(trace["p_gold"], expected, rtol=2.5e-4)
    # loss is -log of the stored p_gold (12 mantissa bits): 1.3e-4 absolute near p = 1
    np.testing.assert_allclose(trace["loss"], -np.log(expected), rtol=2.5e-4, atol=1.3e-4)
    assert trace["pred"].tolist() == _logits(1).argmax(1).tolist()
    logits = _logits(1)
    others = np.where(np.eye(3, dtype=bool)[_labels()], -np.inf, logits).max(1)
    np.testing.assert_allclose(
        trace["margin"], logits[np.arange(20), _labels()] - others, rtol=2.0**-8, atol=1e-5
    )
    assert meta["capture"] == "train_pass" and meta["label_names"] == {"default": ["a", "b", "c"]}
    tags = MlflowClient(module_store).get_run(run.info.run_id).data.tags
    assert tags["soi.trace_schema"] == "3" and tags["soi.recorder"] == "recorder"
    history = MlflowClient(module_store).get_metric_history(run.info.run_id, "val/default/acc")
    assert [m.step for m in history] == [0, 1]


def test_the_last_visit_of_an_example_counts(module_store) -> None:
    rec = TraceRecorder(tracking_uri=module_store, label_names=["x", "y"])
    rec.add("train", [1, 2], np.array([[5.0, 0.0], [5.0, 0.0]]), [0, 0])
    rec.add("train", [1], np.array([[0.0, 5.0]]), [0])  # example 1 seen again, now wrong
    rec.end_epoch()
    rec.close()
    trace, _ = load_trace(module_store, rec.run_id, "traces/train/epoch=000.parquet")
    assert trace["example_id"].tolist() == [1, 2]
    assert trace["pred"].tolist() == [1, 0] and trace["step"].tolist() == [2, 1]
    run = MlflowClient(module_store).get_run(rec.run_id)
    assert run.info.status == "FINISHED"  # the recorder started this run, so it ends it


def test_padded_multi_head_logits_and_members(module_store) -> None:
    """Rows of a 2-class task in 3-column logits: the padding column is ignored."""
    names = {"sentiment": ["neg", "pos"], "nli": ["e", "n", "c"]}
    rec = TraceRecorder(tracking_uri=module_store, label_names=names)
    logits = np.array([[0.0, 1.0, 9.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    rec.add(
        "train", [7, 8], logits, ["pos", "c"], task=["sentiment", "nli"], member=["books", "snli"]
    )
    rec.end_epoch()
    rec.close()
    trace, meta = load_trace(module_store, rec.run_id, "traces/train/epoch=000.parquet")
    p = np.exp(1) / (1 + np.exp(1))
    np.testing.assert_allclose(trace["p_gold"].iloc[0], p, rtol=2.5e-4)  # not 9.0's column
    assert trace["pred"].tolist() == [1, 2]
    assert trace["member"].astype(str).tolist() == ["books", "snli"]
    assert trace["task"].astype(str).tolist() == ["sentiment", "nli"]
    assert meta["label_names"] == names


def test_member_names_per_row_keep_their_order_when_a_new_one_comes(module_store) -> None:
    """A string column of member names: names seen before are looked up in one go, a
    batch with a new name declares it after the known ones; a task name not declared is
    still refused."""
    rec = TraceRecorder(tracking_uri=module_store, label_names=["a", "b", "c"])
    batches = [["kitchen", "dvd"], ["dvd", "kitchen"], ["books", "dvd"], ["kitchen", "books"]]
    for i, members in enumerate(batches):
        rec.add("train", [2 * i, 2 * i + 1], _logits(i, 2), [0, 1], member=members)
    with pytest.raises(SoiInputError, match="one value per row"):  # not names: a clear error
        rec.add("train", [9, 10], _logits(9, 2), [0, 1], member=[["dvd"], ["dvd"]])
    with pytest.raises(SoiInputError, match="task 'nli' is not one of"):
        rec.add("train", [9, 10], _logits(9, 2), [0, 1], member=["dvd", "dvd"], task=["nli"] * 2)
    rec.end_epoch()
    rec.close()
    trace, _ = load_trace(module_store, rec.run_id, "traces/train/epoch=000.parquet")
    got = dict(zip(trace["example_id"], trace["member"].astype(str), strict=True))
    assert [got[i] for i in range(8)] == [m for members in batches for m in members]
    # the file's member dictionary is in the order the names came, not sorted
    assert list(trace["member"].cat.categories) == ["kitchen", "dvd", "books"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.add("train", None, np.zeros((2, 2)), [0, 1]), "example_ids is missing"),
        (lambda r: r.add("train", [1, 2, 3], np.zeros((2, 2)), [0, 1]), "shape"),
        (lambda r: r.add("train", [1, 2], np.zeros((2, 2)), [0, 2]), "outside the 2 classes"),
        (lambda r: r.add("tr/ain", [1, 2], np.zeros((2, 2)), [0, 1]), "split name 'tr/ain'"),
        (lambda r: r.add("train", [1, 2], np.zeros((2, 2)), [0]), "one value per id"),
        (lambda r: r.add("train", [1.5, 2.0], np.zeros((2, 2)), [0, 1]), "1-D integers"),
        (lambda r: r.add("train", [1, 2], np.zeros((2, 2)), ["neg", "maybe"]), "'maybe'"),
        (lambda r: r.add("train", [1, 2], None, [0, 1]), "exactly one of logits or probs"),
    ],
)
def test_bad_input_is_refused_at_the_first_batch(module_store, call, message) -> None:
    rec = TraceRecorder(tracking_uri=module_store, label_names=["neg", "pos"])
    with pytest.raises(SoiInputError, match=message):
        call(rec)
    rec.close()
    assert MlflowClient(module_store).list_artifacts(rec.run_id) == []  # nothing half-written


def test_probabilities_instead_of_logits(module_store) -> None:
    rec = TraceRecorder(tracking_uri=module_store)
    rec.add("eval", [3, 4], probs=np.array([[0.2, 0.8], [0.6, 0.4]]), labels=[1, 1])
    rec.end_epoch(epoch=4)
    rec.close()
    trace, meta = load_trace(module_store, rec.run_id, "traces/eval/epoch=004.parquet")
    np.testing.assert_allclose(trace["p_gold"], [0.8, 0.4], rtol=2.5e-4)
    np.testing.assert_allclose(trace["margin"], np.log([4.0, 0.4 / 0.6]), rtol=2.0**-8)
    assert meta["capture"] == "eval_pass" and meta["label_names"] == {"default": ["0", "1"]}


def test_a_run_killed_mid_epoch_keeps_its_finished_epochs(module_store, tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import signal, numpy as np
        from soi_mlflow import TraceRecorder
        rec = TraceRecorder(tracking_uri={module_store!r}, label_names=["a", "b"])
        print(rec.run_id, flush=True)
        ids = np.arange(50)
        for epoch in range(3):
            rec.add("train", ids[:25], np.zeros((25, 2)), ids[:25] % 2)
            if epoch == 2:  # at a fixed line, half of epoch 2 added: nothing to race
                signal.raise_signal(signal.SIGKILL)  # mid-epoch, no clean-up at all
            rec.add("train", ids[25:], np.ones((25, 2)), ids[25:] % 2)
            rec.end_epoch()
            rec.flush()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    run_id = proc.stdout.split()[0]
    assert trace_files(module_store, run_id, "train") == [
        "traces/train/epoch=000.parquet",
        "traces/train/epoch=001.parquet",
    ]
    for epoch in (0, 1):
        trace, _ = load_trace(module_store, run_id, f"traces/train/epoch={epoch:03d}.parquet")
        assert trace["example_id"].tolist() == list(range(50))


def test_example_tables_are_logged(module_store) -> None:
    import pandas as pd

    rec = TraceRecorder(tracking_uri=module_store)
    rec.log_examples("train", pd.DataFrame({"example_id": [1, 2], "text": ["a", "b"]}))
    with pytest.raises(SoiInputError, match="'example_id' column"):
        rec.log_examples("train", pd.DataFrame({"id": [1]}))
    with pytest.raises(SoiInputError, match="example_id values repeat"):
        rec.log_examples("validation", pd.DataFrame({"example_id": [3, 3]}))
    rec.close()
    paths = [a.path for a in MlflowClient(module_store).list_artifacts(rec.run_id, "examples")]
    assert paths == ["examples/train.parquet"]


def test_one_recorder_class_whose_close_runs_the_registered_steps(module_store) -> None:
    """``soi_mlflow.TraceRecorder`` is the tracking layer's class, not a subclass: the
    analysis reaches it as a step the package registers, whatever path imported it."""
    from soi_mlflow.tracking import after_close

    assert soi_mlflow.TraceRecorder is TraceRecorder
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "from soi_mlflow.tracking.recorder import TraceRecorder\n"
            "from soi_mlflow.tracking import after_close\n"
            "print([s.__name__ for s in after_close.steps()])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fresh.stdout.strip() == "['_analyse_after_close']", fresh.stderr
    seen = []

    def step(recorder, status):
        seen.append((recorder.run_id, status))

    after_close.register(step)
    try:
        quiet = TraceRecorder(tracking_uri=module_store, analyze=False)
        quiet.close()
        failed = TraceRecorder(tracking_uri=module_store)
        failed.close(exception=RuntimeError("boom"))
    finally:
        after_close.unregister(step)
    assert seen == [(failed.run_id, "FAILED")] and failed.analysis is None


def test_chunks_of_the_buffer_and_a_reused_batch_tensor_give_the_same_trace(
    module_store, monkeypatch
) -> None:
    """Statistics computed per chunk of the device buffer (here 48 rows: chunks of two
    20-row batches) equal those of one chunk, and a caller who writes the next batch into
    the same tensor loses nothing (the buffer holds a copy)."""
    from soi_mlflow.tracking import epoch_buffer

    g = torch.Generator().manual_seed(3)
    logits, labels = torch.randn(200, 3, generator=g), torch.randint(0, 3, (200,), generator=g)

    def traced() -> object:
        reused = torch.empty(20, 3)  # one tensor, overwritten for every batch
        names = ["a", "b", "c"]
        with TraceRecorder(tracking_uri=module_store, label_names=names, analyze=False) as rec:
            for start in range(0, 200, 20):
                reused.copy_(logits[start : start + 20])
                rec.add(
                    "train", torch.arange(start, start + 20), reused, labels[start : start + 20]
                )
            rec.end_epoch()
        trace, _ = load_trace(module_store, rec.run_id, "traces/train/epoch=000.parquet")
        return trace

    whole = traced()
    monkeypatch.setattr(epoch_buffer, "MAX_ROWS", 48)
    chunked = traced()
    pd.testing.assert_frame_equal(whole, chunked)
    expected = logits.softmax(-1)[torch.arange(200), labels].numpy()
    np.testing.assert_allclose(whole["p_gold"], expected, rtol=2.5e-4)
    assert whole["step"].tolist() == [1 + i // 20 for i in range(200)]

"""The trace callback: a per-example trace of every split, every epoch, into MLflow.

- ``train_pass`` (default): the training step's own logits (no extra forward pass);
  ``eval_pass``: an extra pass over the training set in eval mode after each epoch.
- Validation, test and OOD sets are traced in eval mode every epoch.
- Each (split, epoch) is one Parquet file (``trace_format``), written and logged as soon
  as the epoch ends, so a crash keeps every finished epoch. Writing and uploading run on
  one background thread, in order, so training does not wait on the tracking store; the
  queue is drained at the end of training and on any exception, and an upload error
  stops training at the next epoch end.
- Under DDP the ranks' rows are gathered to rank 0, duplicates from the distributed
  sampler's padding are dropped (each example once per epoch), and only rank 0, which
  owns the run, writes to MLflow.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from soi_mlflow.model.module import TRACE_KEYS
from soi_mlflow.tracking.context import mark_recording
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.tracking.trace_format import build_table, write_trace

METRIC_PREFIX = {"train": "train", "validation": "val", "test": "test", "ood": "ood"}


def trace_artifact_path(split: str) -> str:
    return f"traces/{split}"


def trace_file_name(epoch: int) -> str:
    return f"epoch={epoch:03d}.parquet"


class TraceCallback(pl.Callback):
    """Collects trace rows during an epoch and logs one file per split at its end."""

    def __init__(
        self,
        open_run: Callable[[], RunHandle],
        members: list[str],
        tasks: dict[str, tuple[str, ...]],
        eval_keys: list[tuple[str, str]],
        capture: str,
        axis: str,
    ) -> None:
        self.open_run = open_run
        self.members = members
        self.tasks = tasks
        self.eval_keys = eval_keys
        self.capture = capture
        self.axis = axis
        self.run: RunHandle | None = None
        self.last_metrics: dict[str, float] = {}
        self._train: list[tuple[dict[str, torch.Tensor], int]] = []
        self._eval: dict[int, list[tuple[dict[str, torch.Tensor], int]]] = defaultdict(list)
        self._workdir: Path | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._metrics: dict[str, float] = {}
        # seconds spent by the callback: in its hooks (training thread) and on CPU in the
        # background writer; bench/trace_overhead.py reports them
        self.cost = {"hooks": 0.0, "background": 0.0}
        mark_recording()

    # -- lifecycle ------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.trace_train = self.capture == "train_pass"
        if trainer.is_global_zero and self.run is None:
            self.run = self.open_run()
            self._workdir = Path(tempfile.mkdtemp(prefix="soi-trace-"))
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="soi-trace")

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.flush(raise_errors=False)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.flush()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def flush(self, raise_errors: bool = True) -> None:
        """Wait for every queued write and upload; re-raise the first failure."""
        pending, self._pending = self._pending, []
        errors = [f.exception() for f in pending if f.exception() is not None]
        if errors and raise_errors:
            raise errors[0]

    def _submit(self, fn, *args) -> None:
        assert self._executor is not None
        done = [f for f in self._pending if f.done()]
        for f in done:
            if f.exception() is not None:
                raise f.exception()
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._executor.submit(fn, *args))

    # -- collecting -----------------------------------------------------------------
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train = []

    def on_train_batch_end(
        self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if (
            self.capture != "train_pass"
            or not isinstance(outputs, dict)
            or outputs.get("trace") is None
        ):
            return
        start = time.perf_counter()
        self._train.append((outputs["trace"], trainer.global_step))  # already detached
        self.cost["hooks"] += time.perf_counter() - start

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval = defaultdict(list)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if trainer.sanity_checking:
            return
        self._eval[dataloader_idx].append((outputs["trace"], trainer.global_step))

    # -- writing --------------------------------------------------------------------
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        start = time.perf_counter()
        by_split: dict[str, list[tuple[dict[str, torch.Tensor], int]]] = defaultdict(list)
        for idx, batches in sorted(self._eval.items()):
            by_split[self.eval_keys[idx][0]].extend(batches)
        metrics: dict[str, float] = {}
        for split in dict.fromkeys(key[0] for key in self.eval_keys):
            capture = "eval_pass"
            rows = _gather(trainer, _stack(by_split.get(split, [])))
            if rows is not None:
                metrics |= self._write(split, trainer.current_epoch, rows, capture)
        self._eval = defaultdict(list)
        self._metrics |= metrics  # logged with the training metrics, in one request
        self.cost["hooks"] += time.perf_counter() - start

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        start = time.perf_counter()
        if self.capture == "train_pass":
            rows = _gather(trainer, _stack(self._train))
            self._train = []
            if rows is not None:
                self._metrics |= self._write("train", trainer.current_epoch, rows, "train_pass")
        metrics, self._metrics = self._metrics, {}
        self._log(trainer, metrics)
        self.cost["hooks"] += time.perf_counter() - start

    def _write(
        self, split: str, epoch: int, rows: dict[str, np.ndarray], capture: str
    ) -> dict[str, float]:
        """Drop duplicates, queue the file for writing and logging; return the metrics."""
        _, first = np.unique(rows["example_id"], return_index=True)
        rows = {k: v[first] for k, v in rows.items()}
        rows["epoch"] = np.int32(epoch)
        self._submit(self._persist, split, epoch, rows, capture)
        return _split_metrics(split, rows, self.members)

    def _persist(self, split: str, epoch: int, rows: dict[str, np.ndarray], capture: str) -> None:
        assert self.run is not None and self._workdir is not None
        start = time.thread_time()
        table = build_table(rows, self.members, list(self.tasks))
        local = self._workdir / split / trace_file_name(epoch)
        write_trace(
            local,
            table,
            {
                "run_id": self.run.run_id,
                "split": split,
                "epoch": epoch,
                "capture": capture,
                "axis": self.axis,
                "label_names": {t: list(n) for t, n in self.tasks.items()},
            },
        )
        self.run.log_artifact(local, trace_artifact_path(split))
        local.unlink()
        self.cost["background"] += time.thread_time() - start

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        assert self.run is not None
        start = time.thread_time()
        self.run.log_metrics(metrics, step)
        self.cost["background"] += time.thread_time() - start

    def _log(self, trainer: pl.Trainer, metrics: dict[str, float]) -> None:
        if self.run is not None and metrics:
            self._submit(self._log_metrics, metrics, trainer.current_epoch)
            self.last_metrics |= metrics


def _stack(batches: list[tuple[dict[str, torch.Tensor], int]]) -> dict[str, np.ndarray]:
    """One array per column from (trace, global step) pairs of an epoch's batches."""
    if not batches:
        return {k: np.empty(0) for k in (*TRACE_KEYS, "step")}
    out = {k: torch.cat([b[k] for b, _ in batches]).cpu().numpy() for k in TRACE_KEYS}
    lengths = [len(b["example_id"]) for b, _ in batches]
    out["step"] = np.repeat(np.array([s for _, s in batches], dtype=np.int64), lengths)
    return out


def _gather(trainer: pl.Trainer, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """All ranks' rows on rank 0 (None elsewhere); rank 0's rows come first."""
    if trainer.world_size == 1:
        return rows if len(rows["example_id"]) else None
    import torch.distributed as dist

    gathered: list[Any] = [None] * trainer.world_size
    dist.all_gather_object(gathered, rows)
    if not trainer.is_global_zero:
        return None
    merged = {k: np.concatenate([g[k] for g in gathered]) for k in rows}
    return merged if len(merged["example_id"]) else None


def _split_metrics(split: str, rows: dict[str, np.ndarray], members: list[str]) -> dict[str, float]:
    prefix = METRIC_PREFIX[split]
    correct = rows["pred"] == rows["gold"]
    out: dict[str, float] = {}
    if split == "train":
        out["train/loss"] = float(rows["loss"].mean())
    for idx in np.unique(rows["member_idx"]):
        mask = rows["member_idx"] == idx
        name = members[int(idx)]
        out[f"{prefix}/{name}/acc"] = float(correct[mask].mean())
        out[f"{prefix}/{name}/loss"] = float(rows["loss"][mask].mean())
    return out

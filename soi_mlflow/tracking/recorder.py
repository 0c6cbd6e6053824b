"""The framework-free trace recorder: per-example traces from any training code.

Three calls in a plain loop, as AUM's calculator takes them::

    with mlflow.start_run(), TraceRecorder(label_names=["neg", "pos"]) as rec:
        for epoch in range(epochs):
            for batch in loader:
                logits = model(batch)                      # the step's own logits
                rec.add("train", batch["example_id"], logits, batch["labels"])
            rec.end_epoch()                                # one Parquet file per split

- ``add`` takes tensors on any device or numpy arrays; the statistics (gold probability,
  prediction, loss, margin) are computed where the logits are, without a host sync, and
  moved to the CPU once per epoch.
- ``end_epoch`` writes one schema-v1 file per (split, epoch) to ``traces/<split>/`` of the
  run, on one background thread, so training does not wait on the tracking store. An
  example seen several times in an epoch (over-sampling, a distributed sampler's padding)
  keeps its last visit; an example not seen has no row for that epoch.
- A crash keeps every finished epoch: each is uploaded as soon as it ends.
- Files and metrics go through the run's spool (``tracking/spool.py``): written to local
  disk first, then sent in order. If the tracking server goes away, training goes on and
  they wait there; the writer thread tries again every ``$SOI_MLFLOW_SPOOL_RETRY_S``
  seconds (default 15) and at every write, :meth:`close` once more, and what is still
  left then goes with ``soi-mlflow sync`` (``close`` says so on stderr).
- Under ``torch.distributed`` every rank calls ``add`` and ``end_epoch``; rows are gathered
  to rank 0, which alone owns the run and writes.
- Bad input (no ids, lengths that differ, labels outside the classes, a split name that
  cannot be a folder) raises :class:`SoiInputError` at the first batch, never an empty trace.
- The public ``soi_mlflow.TraceRecorder`` (``analysis/after_training.py``) is this class
  plus the run's analysis when :meth:`close` ends training well, as ``soi-mlflow analyze
  --run-id`` does; this layer only offers the hook (:meth:`_after_close`).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import HEARTBEAT_TAG, end_status
from soi_mlflow.tracking.run import RunHandle, metric_safe
from soi_mlflow.tracking.spool import (
    SendResult,
    Spool,
    SpoolWriter,
    report_incomplete,
    retry_interval,
)
from soi_mlflow.tracking.trace_format import CAPTURE_MODES, SCHEMA_VERSION, build_table, write_trace
from soi_mlflow.tracking.trace_rows import (
    COLUMNS,
    as_ids,
    dist_rank_world,
    is_tensor,
    last_visit,
    stack,
    statistics,
    to_numpy,
)

SPLIT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
METRIC_PREFIX = {"train": "train", "validation": "val", "test": "test", "ood": "ood"}
DEFAULT_TASK = "default"


def trace_artifact_path(split: str) -> str:
    return f"traces/{split}"


def trace_file_name(epoch: int) -> str:
    return f"epoch={epoch:03d}.parquet"


def check_split_name(split: Any) -> str:
    """A split name becomes a folder and a metric prefix: letters, digits, ``_ . -`` only."""
    if not isinstance(split, str) or not SPLIT_NAME.match(split) or split in (".", ".."):
        raise SoiInputError(
            f"split name {split!r}: expected 1-64 letters, digits, '_', '.' or '-' "
            "(it names the folder traces/<split>/ and the metrics of that split)"
        )
    return split


@dataclass
class _Names:
    """A growing table of names (members or tasks) and their indices. With ``escaped``,
    two names that :func:`~soi_mlflow.tracking.run.metric_safe` makes equal (``a b`` and
    ``a_b``) are refused: their metrics would overwrite each other. Member names are data
    (a user's ``member`` column): kept as they are in the trace files, escaped wherever
    they name a metric, a table or a figure."""

    names: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    escaped: dict[str, str] | None = None  # metric-safe form -> the name that has it

    def add(self, name: str) -> int:
        if name not in self.index:
            if self.escaped is not None:
                safe = metric_safe(name)
                other = self.escaped.setdefault(safe, name)
                if other != name:
                    raise SoiInputError(
                        f"member names {other!r} and {name!r} both become {safe!r} in metric "
                        "and file names (only letters, digits, '_', '.', '-' are kept); "
                        "rename one"
                    )
            self.index[name] = len(self.names)
            self.names.append(name)
        return self.index[name]


class TraceRecorder:
    """Records per-example traces of named splits into an MLflow run, one file per epoch.

    Args:
        run_id: the run to write into; default the active MLflow run, else
            ``MLFLOW_RUN_ID`` (both only in MLflow's current store), else a new run that
            :meth:`close` ends (:meth:`~soi_mlflow.tracking.run.RunHandle.traced`).
        tracking_uri: default MLflow's current tracking URI.
        label_names: class names of one task (a list) or of several (``{task: [...]}``);
            default ``"0".."C-1"`` of one task, from the logits' width.
        capture: how the ``train`` split is captured: ``train_pass`` (the training step's
            logits) or ``eval_pass`` (an extra pass in eval mode); other splits are
            ``eval_pass``.
        axis: optional ``soi.axis`` tag (task, source or lang).
        log_metrics: log ``<split>/<member>/acc`` and ``/loss`` (and ``train/loss``) per epoch.
        start_epoch: the number of the first epoch :meth:`end_epoch` writes without one.
        source: which integration records (a ``soi.recorder`` tag).
        members: member names declared up front (integer ``member`` values index them).
        tags: more tags for the run.
        experiment: the experiment of a run the recorder creates.
        margin: also record each row's margin (gold logit minus the largest other; what
            area-under-the-margin needs), ~1.8 bytes per example and epoch.
        resume: ``run_id`` is a run being resumed: if it ended (FAILED, KILLED) it is set
            RUNNING again and ended by :meth:`close`; tagged ``soi.resumed``.
    """

    def __init__(
        self,
        run_id: str | None = None,
        *,
        tracking_uri: str | None = None,
        label_names: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        capture: str = "train_pass",
        axis: str | None = None,
        log_metrics: bool = True,
        start_epoch: int = 0,
        source: str = "recorder",
        members: Sequence[str] | None = None,
        tags: Mapping[str, str] | None = None,
        experiment: str | None = None,
        margin: bool = True,
        resume: bool = False,
    ) -> None:
        if capture not in CAPTURE_MODES:
            raise SoiInputError(
                f"capture: expected one of {', '.join(CAPTURE_MODES)}, got {capture!r}"
            )
        self.capture = capture
        self.axis = axis
        self.log_metrics_enabled = log_metrics
        self.source = source
        self.extra_tags = dict(tags or {})
        self._experiment = experiment
        self._margin = margin
        self._tasks = _Names()
        self._classes: list[int | None] = []
        self._label_index: list[dict[str, int] | None] = []
        self._label_names: dict[str, list[str]] = {}
        self._explicit_labels = label_names is not None
        if isinstance(label_names, Mapping):
            for task, names in label_names.items():
                self._declare_task(str(task), [str(n) for n in names])
        elif label_names is not None:
            if isinstance(label_names, str):
                raise SoiInputError("label_names: expected a list of class names, got a string")
            self._declare_task(DEFAULT_TASK, [str(n) for n in label_names])
        self._members = _Names(escaped={})
        for name in members or ():
            self._members.add(str(name))
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._checked: set[str] = set()
        self._epoch = start_epoch
        self._batches = 0
        self.last_metrics: dict[str, float] = {}
        self._rank, self._world = dist_rank_world()
        self._run_id = run_id
        self._tracking_uri = tracking_uri
        self._client: Any = None
        self._started_run = False
        self._executor: SpoolWriter | None = None
        self._pending: list[Future] = []
        self._spool: Spool | None = None
        self.unsent = SendResult(0, 0)  # what the last round of sending left in the spool
        self._closed = False
        self._resume = resume
        if self._rank == 0:
            self._open_run()

    # -- the run ------------------------------------------------------------------
    @property
    def run_id(self) -> str | None:
        """The run written into (None on the non-zero ranks of a distributed job)."""
        return self._run_id

    @property
    def tracking_uri(self) -> str | None:
        return self._tracking_uri

    @property
    def epoch(self) -> int:
        """The epoch the next :meth:`end_epoch` writes, unless given one."""
        return self._epoch

    def _open_run(self) -> None:
        retry_s = retry_interval()  # a bad $SOI_MLFLOW_SPOOL_RETRY_S before any run opens
        run = RunHandle.traced(self._tracking_uri, self._run_id, self._experiment, self._resume)
        self._client, self._run_id, self._tracking_uri = run.client, run.run_id, run.tracking_uri
        self._started_run = run.created  # a run this recorder created or reopened: it ends it
        if self._resume:
            count = int(self._client.get_run(self._run_id).data.tags.get("soi.resumed") or 0)
            self.extra_tags["soi.resumed"] = str(count + 1)
        tags = {
            "soi.trace_schema": str(SCHEMA_VERSION),
            "soi.capture": self.capture,
            "soi.recorder": self.source,
        }
        if self.axis:
            tags["soi.axis"] = self.axis
        tags[HEARTBEAT_TAG] = str(int(time.time()))
        run.set_tags(tags | self.extra_tags)
        self._spool = Spool(self._run_id, self._tracking_uri)
        # one writer thread; it also sends again on a timer while entries wait
        self._executor = SpoolWriter(self._send, lambda: self.unsent.pending > 0, retry_s)
        self._submit(self._send)  # a resumed run may have entries waiting from before

    # -- declaring names ------------------------------------------------------------
    def _declare_task(self, task: str, names: list[str] | None) -> int:
        idx = self._tasks.add(task)
        if idx == len(self._classes):
            self._classes.append(len(names) if names is not None else None)
            self._label_index.append({n: i for i, n in enumerate(names)} if names else None)
            if names is not None:
                self._label_names[task] = names
        return idx

    def _task_indices(self, task: Any, n: int, check: bool) -> Any:
        if task is None:
            if len(self._tasks.names) > 1:
                raise SoiInputError(
                    f"task: label_names declares tasks {self._tasks.names}; say which task "
                    "each row belongs to (task=<name> or one name per row)"
                )
            return np.zeros(n, dtype=np.int32)
        return self._name_indices(
            task, n, "task", self._tasks, declare=not self._explicit_labels, check=check
        )

    def _name_indices(
        self,
        values: Any,
        n: int,
        what: str,
        table: _Names,
        declare: bool = True,
        check: bool = True,
    ) -> Any:
        """Row indices into ``table`` from one name, a name per row, or int indices (an
        integer tensor stays on its device, unchecked unless ``check``)."""
        if isinstance(values, str):
            if values not in table.index and not declare:
                raise SoiInputError(f"{what} {values!r} is not one of {table.names}")
            idx = self._declare_task(values, None) if what == "task" else table.add(values)
            return np.full(n, idx, dtype=np.int32)
        if is_tensor(values) and not values.dtype.is_floating_point and not check:
            return values.detach().long()  # checked on the split's first batch and at epoch end
        arr = to_numpy(values)
        if arr.shape != (n,):
            raise SoiInputError(f"{what}: expected one value per row ({n}), got shape {arr.shape}")
        if arr.dtype.kind in "iu":
            if n and (arr.min() < 0 or arr.max() >= len(table.names)):
                raise SoiInputError(
                    f"{what}: integer indices must lie in [0, {len(table.names)}) "
                    f"(the declared {what}s {table.names}), got {arr.min()}..{arr.max()}"
                )
            return arr.astype(np.int32)
        out = np.empty(n, dtype=np.int32)
        for i, value in enumerate(arr.tolist()):
            name = str(value)
            if name not in table.index and not declare:
                raise SoiInputError(f"{what} {name!r} is not one of {table.names}")
            out[i] = self._declare_task(name, None) if what == "task" else table.add(name)
        return out

    # -- collecting -----------------------------------------------------------------
    def add(
        self,
        split: str,
        example_ids: Any,
        logits: Any = None,
        labels: Any = None,
        *,
        probs: Any = None,
        member: Any = None,
        task: Any = None,
        step: int | None = None,
    ) -> None:
        """Record one batch of ``split``: ids, logits (or probabilities) and gold labels.

        ``logits`` may be wider than a row's task (padded multi-head logits): columns past
        that task's class count are ignored. ``member``/``task``: one name for the batch,
        a name per row, or integer indices into the declared names.
        """
        if self._closed:
            raise SoiInputError("this TraceRecorder is closed; create a new one")
        first = split not in self._checked
        if first:
            check_split_name(split)
        if example_ids is None:
            raise SoiInputError(f"split {split!r}: example_ids is missing (one int id per row)")
        if (logits is None) == (probs is None):
            raise SoiInputError(f"split {split!r}: give exactly one of logits or probs")
        if labels is None:
            raise SoiInputError(f"split {split!r}: labels are missing (gold class per row)")
        scores = logits if logits is not None else probs
        ids = as_ids(example_ids, split)
        n = int(ids.shape[0])
        if getattr(scores, "ndim", None) != 2 or int(scores.shape[0]) != n:
            raise SoiInputError(
                f"split {split!r}: {'logits' if logits is not None else 'probs'} must have shape "
                f"(n_examples, n_classes) with n_examples = {n} ids, got shape "
                f"{tuple(getattr(scores, 'shape', ()))}"
            )
        width = int(scores.shape[1])
        task_idx = self._task_indices(task, n, check=first)
        if not self._tasks.names:
            self._declare_task(DEFAULT_TASK, None)
        gold = self._gold(labels, task_idx, n, split)
        # a task without label names has as many classes as its first logits have columns
        self._classes = [c if c is not None else width for c in self._classes]
        classes = np.array(self._classes, dtype=np.int64)
        if first:
            self._check_first(split, gold, task_idx, classes, width)
        member_idx = (
            self._name_indices(member, n, "member", self._members, check=first)
            if member is not None
            else self._member_from_task(task_idx)
        )
        row = statistics(scores, gold, task_idx, classes, width, from_probs=logits is None)
        row["example_id"] = ids
        row["member_idx"] = member_idx
        row["task_idx"] = task_idx
        if split == "train":
            self._batches += 1
        row["step"] = int(step) if step is not None else self._batches
        self._rows.setdefault(split, []).append(row)

    def _member_from_task(self, task_idx: Any) -> Any:
        """Without a member, each row's member is its task."""
        mapping = np.array([self._members.add(t) for t in self._tasks.names], dtype=np.int32)
        if is_tensor(task_idx):
            import torch

            return torch.as_tensor(mapping, device=task_idx.device)[task_idx]
        return mapping[task_idx]

    def _gold(self, labels: Any, task_idx: np.ndarray, n: int, split: str) -> Any:
        """Gold class indices, on the labels' own device when they are a tensor."""
        if is_tensor(labels):
            if labels.shape != (n,):
                raise SoiInputError(
                    f"split {split!r}: labels must have one value per id ({n}), got shape "
                    f"{tuple(labels.shape)}"
                )
            return labels.long()
        arr = to_numpy(labels)
        if arr.shape != (n,):
            raise SoiInputError(
                f"split {split!r}: labels must have one value per id ({n}), got shape {arr.shape}"
            )
        if arr.dtype.kind in "iu":
            return arr.astype(np.int64)
        out = np.empty(n, dtype=np.int64)
        tasks = to_numpy(task_idx).tolist()
        for i, (value, t) in enumerate(zip(arr.tolist(), tasks, strict=True)):
            index = self._label_index[t]
            if index is None or str(value) not in index:
                known = list(index) if index else "none (pass label_names=...)"
                raise SoiInputError(
                    f"split {split!r}: label {value!r} of task {self._tasks.names[t]!r} is not "
                    f"one of its label names: {known}"
                )
            out[i] = index[str(value)]
        return out

    def _check_first(
        self, split: str, gold: Any, task_idx: np.ndarray, classes: np.ndarray, width: int
    ) -> None:
        """Full checks on a split's first batch (later batches are checked at epoch end)."""
        for t, count in enumerate(self._classes):
            if count is not None and count > width:
                raise SoiInputError(
                    f"split {split!r}: task {self._tasks.names[t]!r} has {count} label names "
                    f"but the logits have only {width} columns"
                )
        g, task_idx = to_numpy(gold), to_numpy(task_idx)
        bad = (g < 0) | (g >= classes[task_idx])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SoiInputError(
                f"split {split!r}: label {int(g[i])} (row {i}) lies outside the "
                f"{int(classes[task_idx[i]])} classes of task {self._tasks.names[task_idx[i]]!r}"
            )
        self._checked.add(split)

    # -- writing --------------------------------------------------------------------
    def end_epoch(self, epoch: int | None = None) -> dict[str, float]:
        """Write every split collected since the last call as epoch ``epoch``; return the
        epoch's metrics (on rank 0; empty elsewhere). Collective under torch.distributed."""
        self._raise_failed()
        epoch = self._epoch if epoch is None else int(epoch)
        collected, self._rows = self._rows, {}
        local = {split: stack(batches) for split, batches in collected.items()}
        merged = self._gather(local)
        metrics: dict[str, float] = {}
        if merged is not None:
            for split in sorted(merged):
                rows = last_visit(merged[split])
                if not len(rows["example_id"]):
                    continue
                self._check_rows(split, rows)
                rows["epoch"] = np.int32(epoch)
                capture = self.capture if split == "train" else "eval_pass"
                self._submit(self._persist, split, epoch, rows, capture)
                metrics |= self._split_metrics(split, rows)
            if metrics and self.log_metrics_enabled:
                self._submit(self._log_metrics, metrics, epoch)
            self.last_metrics |= metrics
        self._epoch = epoch + 1
        return metrics

    def _gather(
        self, local: dict[str, dict[str, np.ndarray]]
    ) -> dict[str, dict[str, np.ndarray]] | None:
        """Every rank's rows per split on rank 0 (None elsewhere), rank 0's rows first.
        Ranks may have met member and task names in different orders: their indices are
        mapped onto rank 0's name tables."""
        if self._world == 1:
            return local
        import torch.distributed as dist

        payload = {"members": self._members.names, "tasks": self._tasks.names, "rows": local}
        gathered: list[Any] = [None] * self._world
        dist.all_gather_object(gathered, payload)  # plain lists and numpy arrays only
        if dist.get_rank() != 0:
            return None
        for part in gathered:
            members = np.array([self._members.add(m) for m in part["members"]], dtype=np.int32)
            tasks = np.array([self._declare_task(t, None) for t in part["tasks"]], dtype=np.int32)
            for rows in part["rows"].values():
                if len(rows["member_idx"]):
                    rows["member_idx"] = members[rows["member_idx"]]
                    rows["task_idx"] = tasks[rows["task_idx"]]
        splits = sorted({s for part in gathered for s in part["rows"]})
        return {
            s: {
                k: np.concatenate([p["rows"][s][k] for p in gathered if s in p["rows"]])
                for k in (*COLUMNS, "step")
            }
            for s in splits
        }

    def _check_rows(self, split: str, rows: dict[str, np.ndarray]) -> None:
        for key, table in (("member_idx", self._members), ("task_idx", self._tasks)):
            values = rows[key]
            if values.min() < 0 or values.max() >= len(table.names):
                what = key.split("_")[0]
                raise SoiInputError(
                    f"split {split!r}: integer {what} indices must lie in "
                    f"[0, {len(table.names)}) (the declared {what}s {table.names}), got "
                    f"{values.min()}..{values.max()}"
                )
        classes = np.array(
            [c if c is not None else np.iinfo(np.int32).max for c in self._classes], np.int64
        )
        outside = (rows["gold"] < 0) | (rows["gold"] >= classes[rows["task_idx"]])
        if outside.any() or np.isnan(rows["p_gold"]).any():
            bad = rows["example_id"][outside | np.isnan(rows["p_gold"])][:5].tolist()
            raise SoiInputError(
                f"split {split!r}: labels outside the classes of their task or non-finite "
                f"logits for example ids {bad}"
            )

    def _split_metrics(self, split: str, rows: dict[str, np.ndarray]) -> dict[str, float]:
        prefix = METRIC_PREFIX.get(split, metric_safe(split))
        correct = rows["pred"] == rows["gold"]
        out: dict[str, float] = {}
        if split == "train":
            out["train/loss"] = float(rows["loss"].mean())
        for idx in np.unique(rows["member_idx"]):
            mask = rows["member_idx"] == idx
            name = metric_safe(self._members.names[int(idx)])
            out[f"{prefix}/{name}/acc"] = float(correct[mask].mean())
            out[f"{prefix}/{name}/loss"] = float(rows["loss"][mask].mean())
        return out

    def label_names(self) -> dict[str, list[str]]:
        """Class names per task, as written into each file's metadata."""
        out = {}
        for t, task in enumerate(self._tasks.names):
            count = self._classes[t]
            out[task] = self._label_names.get(task) or [str(i) for i in range(count or 0)]
        return out

    def _persist(self, split: str, epoch: int, rows: dict[str, np.ndarray], capture: str) -> None:
        assert self._spool is not None
        if not self._margin:
            rows = {k: v for k, v in rows.items() if k != "margin"}
        table = build_table(rows, list(self._members.names), list(self._tasks.names))
        meta = {
            "run_id": self._run_id,
            "split": split,
            "epoch": epoch,
            "capture": capture,
            "label_names": self.label_names(),
            "recorder": self.source,
        }
        if self.axis:
            meta["axis"] = self.axis
        name, folder = trace_file_name(epoch), trace_artifact_path(split)
        self._spool.put_artifact(name, folder, lambda p: write_trace(p, table, meta))
        self._send()

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        assert self._spool is not None
        self._spool.put_metrics(metrics, step)  # with the heartbeat: progress, not stale
        self._send()

    def _send(self) -> None:
        """Send what waits in the spool, in order; an outage leaves it there."""
        assert self._spool is not None
        self.unsent = self._spool.send(self._client)

    def log_examples(self, split: str, table: Any) -> None:
        """Log the example table of ``split`` (``examples/<split>.parquet``): a pandas
        DataFrame or a ``datasets.Dataset`` with an ``example_id`` column and, typically,
        ``label``, ``text`` (``text_pair``) and ``member``."""
        check_split_name(split)
        if self._rank != 0:
            return
        frame = table.to_pandas() if hasattr(table, "to_pandas") else table
        if "example_id" not in getattr(frame, "columns", ()):
            raise SoiInputError(
                f"example table of split {split!r}: expected an 'example_id' column, got "
                f"{list(getattr(frame, 'columns', []))}"
            )
        frame = frame.reset_index(drop=True)
        if frame["example_id"].duplicated().any():
            raise SoiInputError(f"example table of split {split!r}: example_id values repeat")
        self._submit(self._persist_examples, split, frame)

    def _persist_examples(self, split: str, frame: Any) -> None:
        assert self._spool is not None
        self._spool.put_artifact(
            f"{split}.parquet",
            "examples",
            lambda p: frame.to_parquet(p, compression="zstd", index=False),
        )
        self._send()

    # -- the background writer ------------------------------------------------------
    def _submit(self, fn: Any, *args: Any) -> None:
        assert self._executor is not None, "the recorder writes on rank 0 only"
        self._raise_failed()
        self._pending.append(self._executor.submit(fn, *args))

    def _raise_failed(self) -> None:
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        for f in done:
            if f.exception() is not None:
                raise f.exception()

    def flush(self) -> None:
        """Wait until every queued file and metric is in the run or, while the tracking
        server is away, in the spool; re-raise a failure to write them."""
        pending, self._pending = self._pending, []
        errors = [f.exception() for f in pending if f.exception() is not None]
        if errors:
            raise errors[0]

    def close(self, status: str | None = None, exception: BaseException | None = None) -> None:
        """Flush, stop the writer, send what waits in the spool, and end the run if this
        recorder started it: ``status`` (FINISHED, FAILED or KILLED), by default what
        ``exception`` calls for (``soi.end_reason`` tag: its type and message). Rows added
        since the last :meth:`end_epoch` are discarded: an unfinished epoch is not a trace.
        If the tracking server still does not answer, everything stays in the spool and
        stderr names the incomplete run and ``soi-mlflow sync``. Then
        :meth:`_after_close`."""
        if self._closed:
            return
        if status is None:
            status = end_status(exception)
        self._closed = True
        self._rows = {}
        try:
            self.flush()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            self._finish(status, exception)
        if self._spool is not None:  # rank 0, with a run
            self._after_close(status)

    def _after_close(self, status: str) -> None:
        """What a layer above does once the run is closed (the analysis); nothing here."""

    def _finish(self, status: str, exception: BaseException | None) -> None:
        """The last round of sending, with the run's end if this recorder started it."""
        from soi_mlflow.tracking.health import end_reason

        if self._spool is None:
            return
        if self._started_run:
            reason = end_reason(exception) if exception is not None else None
            self._spool.put_end(status, reason)
        self.unsent = self._spool.send(self._client)
        report_incomplete(self._run_id, self._tracking_uri, self.unsent)

    def __enter__(self) -> TraceRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        # the original exception matters more than a failed flush
        with contextlib.suppress(Exception):
            self.close(exception=exc if exc is not None else exc_type())

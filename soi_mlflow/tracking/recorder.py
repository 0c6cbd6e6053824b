"""The framework-free trace recorder: per-example traces from any training code, in three
calls in a plain loop, as AUM's calculator takes them (``add`` per batch, ``end_epoch``,
``close``; the class's example).

- ``add`` takes tensors on any device or numpy arrays and copies the batch's scores and
  labels into a preallocated buffer on their device (``epoch_buffer.py``): no host sync,
  a few microseconds a batch. The statistics (gold probability, prediction, loss, margin)
  are computed there per chunk of rows and copied to the host once per epoch.
- ``end_epoch`` writes one trace file per (split, epoch) to ``traces/<split>/`` of the
  run, on one background thread, so training does not wait on the tracking store. An
  example seen several times in an epoch (over-sampling, a distributed sampler's padding)
  keeps its last visit; an example not seen has no row for that epoch.
- A crash keeps every finished epoch: each is uploaded as soon as it ends, through the
  run's spool (``tracking/spool.py``): local disk first, then sent in order. If the server
  goes away, training goes on; the writer tries again every ``$SOI_MLFLOW_SPOOL_RETRY_S``
  s (default 15) and at every write, :meth:`close` once more, and what is left then goes
  with ``soi-mlflow sync`` (``close`` says so on stderr).
- Under ``torch.distributed`` every rank calls ``add`` and ``end_epoch``; rank 0 owns the
  run. Rows are gathered to rank 0, which writes ``epoch=NNN.parquet``, or in shard mode
  (``shards=``) each rank writes its own ``epoch=NNN/rank=R.parquet`` (``shards.py``).
- Bad input (no ids, lengths that differ, labels outside the classes, a bad split name)
  raises :class:`SoiInputError`, never an empty trace: at the first batch, or for labels
  still on a GPU at the end of the epoch (checking them earlier would wait on the device).
- ``soi_mlflow.TraceRecorder`` is this class. When :meth:`close` ends training well it
  analyses the run as ``soi-mlflow analyze --run-id`` does (``analyze=False``: not); the
  analysis lives a layer up (``analysis/after_training.py``), so this layer runs the steps
  the package registered in ``tracking/after_close.py``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking import after_close
from soi_mlflow.tracking.batch import add_batch
from soi_mlflow.tracking.epoch_buffer import SplitBuffer
from soi_mlflow.tracking.epoch_writer import epoch_rows, gather, put_trace, split_metrics
from soi_mlflow.tracking.example_table import example_frame
from soi_mlflow.tracking.health import HEARTBEAT_S, end_status
from soi_mlflow.tracking.label_space import LabelSpace
from soi_mlflow.tracking.names import check_split_name
from soi_mlflow.tracking.recorder_shards import ShardedEpochs
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.tracking.run_end import report_incomplete
from soi_mlflow.tracking.run_open import open_run
from soi_mlflow.tracking.spool import SendResult, Spool
from soi_mlflow.tracking.spool_writer import SpoolWriter, retry_interval
from soi_mlflow.tracking.tags import AXIS, CAPTURE, HEARTBEAT, RECORDER, RESUMED, TRACE_SCHEMA
from soi_mlflow.tracking.trace_format import CAPTURE_MODES, SCHEMA_VERSION
from soi_mlflow.tracking.trace_rows import dist_rank_world, stack


class TraceRecorder(ShardedEpochs):
    """Records per-example traces of named splits into an MLflow run, one file per epoch.

    Args:
        run_id: the run to write into; default the active MLflow run, else
            ``MLFLOW_RUN_ID`` (both only in MLflow's current store), else a new run that
            :meth:`close` ends (:func:`~soi_mlflow.tracking.run_open.open_run`). Or a
            run already open (a :class:`~soi_mlflow.tracking.run.RunHandle`, as the
            built-in trainer and the adapters hand theirs down): its client and spool are
            used, and its opener ends it.
        tracking_uri: default ``$MLFLOW_TRACKING_URI`` (``mlflow.set_tracking_uri`` sets
            it), else ``sqlite:///mlflow.db`` (``tracking.store.resolve_tracking_uri``).
        label_names: class names of one task (a list) or of several (``{task: [...]}``);
            default ``"0".."C-1"`` of one task, from the logits' width.
        capture: how the ``train`` split is captured: ``train_pass`` (the training step's
            logits) or ``eval_pass`` (an extra pass in eval mode; other splits' way).
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
        shards: under torch.distributed, each rank writes its own shard of every epoch
            (True), rank 0 gathers and writes (False), or shards once an epoch has more
            than :data:`~soi_mlflow.tracking.shards.SHARD_ROWS` rows on all ranks (None).
            Either way each example has one row per epoch and rank 0 logs the metrics.
        analyze: when :meth:`close` ends training well (FINISHED), analyse the run as
            ``soi-mlflow analyze --run-id`` does (SOI metrics, tables, the data map
            ``html/datamap_<split>.html``, the run's "Analysis" section), on the process
            that owns the run; the outcome is then in :attr:`analysis`. A failed analysis
            is one warning line on stderr: the run stays FINISHED.

    Raises:
        SoiInputError: a bad ``capture``, ``members`` or ``label_names`` here; bad rows
            at the first :meth:`add` (GPU labels: at :meth:`end_epoch`).

    Example::

        with mlflow.start_run(), TraceRecorder(label_names=["neg", "pos"]) as rec:
            for epoch in range(3):
                for batch in loader:
                    rec.add("train", batch["example_id"], model(batch), batch["labels"])
                rec.end_epoch()
        rec.analysis.analysed  # ["train"]
    """

    def __init__(
        self,
        run_id: str | RunHandle | None = None,
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
        shards: bool | None = None,
        analyze: bool = True,
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
        self._space = LabelSpace(label_names, members)
        self._rows: dict[str, SplitBuffer] = {}
        self._checked: set[str] = set()
        self._epoch = start_epoch
        self._batches = 0
        self.last_metrics: dict[str, float] = {}
        self.analyze = analyze
        self.analysis: Any = None  # the AnalysisOutcome once close() analysed the run
        self._rank, self._world = dist_rank_world()
        self._run: RunHandle | None = run_id if isinstance(run_id, RunHandle) else None
        self._run_id = run_id.run_id if isinstance(run_id, RunHandle) else run_id
        self._tracking_uri = run_id.tracking_uri if self._run is not None else tracking_uri
        self._client: Any = None
        self._started_run = False
        self._executor: SpoolWriter | None = None
        self._pending: list[Future] = []
        self._spool: Spool | None = None
        self.unsent = SendResult(0, 0)  # what the last round of sending left in the spool
        self._closed = False
        self._resume = resume
        self._beat = 0.0  # when the heartbeat tag was last put into the spool
        self.shards = shards
        self._sharded = False  # an epoch was sharded: so are the later ones
        self._joined = False  # every rank knows the run (the first sharded epoch)
        if self._rank == 0:
            self._open_run()

    # -- the run ------------------------------------------------------------------
    @property
    def run_id(self) -> str | None:
        """The run written into (None on the non-zero ranks of a distributed job until
        its first sharded epoch)."""
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
        run = self._run
        if run is None:  # a run handed down is its opener's to end; one opened here, ours
            run = self._run = open_run(
                self._tracking_uri,
                run_id=self._run_id,
                resume=self._resume,
                adopt="integration",
                experiment=self._experiment,
            )
            self._started_run = run.created  # a run this recorder created or reopened
        self._client, self._run_id, self._tracking_uri = run.client, run.run_id, run.tracking_uri
        if self._resume:
            count = int(self._client.get_run(self._run_id).data.tags.get(RESUMED) or 0)
            self.extra_tags[RESUMED] = str(count + 1)
        tags = {
            TRACE_SCHEMA: str(SCHEMA_VERSION),
            CAPTURE: self.capture,
            RECORDER: self.source,
        }
        if self.axis:
            tags[AXIS] = self.axis
        self._beat = time.time()
        tags[HEARTBEAT] = str(int(self._beat))
        run.set_tags(tags | self.extra_tags)
        self._spool = run.spool
        # one writer thread; it also sends again on a timer while entries wait
        self._executor = SpoolWriter(self._send, lambda: self.unsent.pending > 0, retry_s)
        self._submit(self._send)  # a resumed run may have entries waiting from before

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
        train = split == "train"
        buffer = self._rows.get(split) or self._rows.setdefault(split, SplitBuffer())
        at = int(step) if step is not None else self._batches + train
        args = (split, example_ids, logits, labels, probs, member, task, first)
        add_batch(buffer, at, self._space, *args)
        self._checked.add(split)
        self._batches += train

    # -- writing --------------------------------------------------------------------
    def end_epoch(self, epoch: int | None = None) -> dict[str, float]:
        """Write every split collected since the last call as epoch ``epoch``; return the
        epoch's metrics (on rank 0; empty elsewhere). Collective under torch.distributed."""
        self._raise_failed()
        epoch = self._epoch if epoch is None else int(epoch)
        collected = {split: buffer.take() for split, buffer in self._rows.items()}
        # each split's chunks go as soon as their columns are stacked: less held at once
        local = {
            split: stack(collected.pop(split)) for split in sorted(collected) if collected[split]
        }
        if self._shard_now(local):
            return self._end_sharded(local, epoch)
        merged = gather(local, self._world, self._space)
        metrics: dict[str, float] = {}
        if merged is not None:
            done = list(epoch_rows(merged, self._space, epoch))
            for split, rows in done:  # before the writer starts: it would hold the GIL
                metrics |= split_metrics(split, rows, self._space.members.names)
            for split, rows in done:
                capture = self.capture if split == "train" else "eval_pass"
                self._submit(self._persist, split, epoch, rows, capture)
            if metrics and self.log_metrics_enabled:
                self._submit(self._log_metrics, metrics, epoch)
            self._submit(self._send)  # the epoch's files and metrics in one round
            self.last_metrics |= metrics
        self._epoch = epoch + 1
        return metrics

    def label_names(self) -> dict[str, list[str]]:
        """Class names per task, as written into each file's metadata."""
        return self._space.label_names()

    def _persist(
        self,
        split: str,
        epoch: int,
        rows: dict[str, np.ndarray],
        capture: str,
        rank: int | None = None,
        names: tuple[list[str], list[str]] | None = None,
    ) -> None:
        assert self._spool is not None
        put_trace(
            self._spool,
            self._space,
            split,
            epoch,
            rows,
            run_id=self._run_id,
            capture=capture,
            source=self.source,
            axis=self.axis,
            margin=self._margin,
            rank=rank,
            names=names,
        )

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        assert self._spool is not None
        now = time.time()  # the heartbeat (progress, not stale) at most every HEARTBEAT_S
        beat = now - self._beat >= HEARTBEAT_S
        self._spool.put_metrics(metrics, step, heartbeat=beat)
        self._beat = now if beat else self._beat

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
        self._submit(self._persist_examples, split, example_frame(split, table))

    def _persist_examples(self, split: str, frame: Any) -> None:
        assert self._spool is not None
        self._spool.put_artifact(
            f"{split}.parquet",
            "examples",
            lambda p: frame.to_parquet(p, compression="zstd", index=False),
        )
        self.unsent = self._spool.send(self._client)  # a one-off, not an epoch's round

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
        stderr names the incomplete run and ``soi-mlflow sync``. Then, on the process that
        owns the run and with ``analyze``, the registered after-close steps (the analysis)."""
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
            self._finish_ranks(status, exception)
        if self.analyze and self._spool is not None and self._rank == 0:  # the run's owner
            for step in after_close.steps():
                step(self, status)

    def _finish(self, status: str, exception: BaseException | None) -> None:
        """The last round of sending, with the run's end if this recorder started it."""
        if self._spool is None:
            return
        if self._started_run and self._run is not None:  # the one way runs end
            self.unsent = self._run.end(exception, status=status)
            return
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

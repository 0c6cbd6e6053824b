"""Per-example traces from any LightningModule: a thin adapter over :class:`TraceRecorder`.

::

    trainer = pl.Trainer(logger=MLFlowLogger(tracking_uri="sqlite:///mlflow.db"),
                         callbacks=[TraceCallback(label_names=["neg", "pos"])])

By default the callback reads ``batch["example_id"]``, ``batch["labels"]`` (or
``batch["label"]``) and ``outputs["logits"]``, where ``outputs`` is what ``training_step`` /
``validation_step`` / ``test_step`` return. Say otherwise with key names, or with
``select(outputs, batch)`` returning a dict of :meth:`TraceRecorder.add`'s arguments.

- Training batches are the ``train`` split (``train_pass``: the step's own logits).
- Every validation dataloader is a split (``validation``, ``validation_1``, ... or the
  names in ``eval_splits``), and every test dataloader too (``test``, ... or ``test_splits``).
- The run: the one of the trainer's ``MLFlowLogger`` if it has one (one run, not two), else
  ``run_id``, else the active MLflow run, else a new run, ended when training ends.
- Under DDP every rank records; rank 0 writes what the recorder gathers, or each rank its
  own shard (``shards=``: past a size by default).
- Resuming: the callback's ``state_dict`` (in every Lightning checkpoint) holds the run id
  and the next epoch, and is saved only once every finished epoch is stored, so
  ``Trainer.fit(ckpt_path=...)`` continues in the same run: each epoch's trace once, metrics
  at their epoch's step. The run is opened at ``on_fit_start``, after Lightning restored it.
- Reproducible traces: add :class:`EpochSeed` ``(seed)`` (re-exported here from
  ``callbacks/resume.py``); each epoch's dropout and order then depend on (seed, epoch) only,
  so a run resumed from an end-of-epoch checkpoint, or a second run of the seed, gives a
  bit-identical trace, the built-in trainer's one for the same module and data.
- When ``fit`` ends well, rank 0 analyses the run (``analyze=False``: not), as
  ``soi-mlflow analyze --run-id`` does: SOI metrics, tables and the interactive data map
  ``html/datamap_<split>.html`` of every split traced in at least two epochs. A failed
  analysis is a warning line on stderr; training stays a success.
- Whatever ends training (an exception, Ctrl-C, SIGTERM), the writer thread and temporary
  folder are cleaned up and a run the callback opened ends FAILED or KILLED with the reason
  in the ``soi.end_reason`` tag; the exception is kept in :attr:`TraceCallback.exception`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning.pytorch as pl

from soi_mlflow.analysis.after_training import analyze_after_training
from soi_mlflow.callbacks.resume import EpochSeed
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.names import split_names
from soi_mlflow.tracking.recorder import TraceRecorder
from soi_mlflow.tracking.run import RunHandle

__all__ = ["EpochSeed", "TraceCallback"]

Selector = Callable[[Any, Any], Mapping[str, Any]]


class TraceCallback(pl.Callback):
    """Records a per-example trace of training and evaluation into an MLflow run.

    Takes the same arguments, in the same order, as
    :class:`soi_mlflow.transformers.TraceCallback` (``task``, ``select``,
    ``test_splits``, ``trace_train``, ``capture`` and ``tags`` are Lightning's only);
    all but ``label_names`` are keyword-only.

    Args:
        label_names: class names of one task (a list) or of several (``{task: names}``);
            default ``"0".."C-1"`` of one task, from the logits' width.
        members: member names, for a ``member`` key that holds integer indices.
        ids: the batch key (or attribute) holding each row's example id.
        labels: the batch key holding the gold labels (``"labels"`` also finds
            ``"label"``).
        logits: the key of the logits in what ``training_step`` / ``validation_step`` /
            ``test_step`` return.
        member: optional batch key with each row's member (a name, or an index into
            ``members``).
        task: optional batch key with each row's task (a name, or an index into the
            tasks of ``label_names``).
        select: ``(outputs, batch) -> {"example_ids", "logits" or "probs", "labels",
            "member", "task"}``; replaces the key look-ups.
        eval_splits: the split name of each validation dataloader (one name, or a name
            per dataloader); default ``validation``, ``validation_1``, ...
        test_splits: the same for test dataloaders; default ``test``, ``test_1``, ...
        trace_train: record training batches (``train_pass``); off when the ``train``
            split comes from an evaluation pass over the training set instead.
        capture: the ``soi.capture`` of the ``train`` split; default ``train_pass``
            when ``trace_train``, else ``eval_pass``.
        run_id: the run to write into (an id, or a
            :class:`~soi_mlflow.tracking.run.RunHandle` already open, which its opener
            ends), or a function returning one (called once, on rank 0); default the
            run of the trainer's ``MLFlowLogger``, else the active MLflow run, else a new
            run that ends when training ends.
        tracking_uri: the tracking store; default the ``MLFlowLogger``'s, else MLflow's
            current one.
        axis: optional ``soi.axis`` tag (``task``, ``source`` or ``lang``).
        tags: more tags for the run.
        log_metrics: log ``<split>/<member>/acc`` and ``/loss`` (and ``train/loss``) at
            every epoch's end.
        analyze: analyse the run when ``fit`` ends well (on rank 0), as ``soi-mlflow
            analyze --run-id`` does; the outcome is then in :attr:`analysis`.
        shards: under DDP, each rank writes its own trace shards (True), rank 0 gathers
            the rows (False), or shards past a size (None; see
            :class:`~soi_mlflow.tracking.recorder.TraceRecorder`).

    Raises:
        SoiInputError: a split name that cannot name a folder (here); a batch or step
            output without the ids, labels or logits, a dataloader beyond
            ``eval_splits`` / ``test_splits``, or rows the recorder refuses (during
            training, at the first such batch).

    Example::

        from lightning.pytorch import Trainer
        from lightning.pytorch.loggers import MLFlowLogger
        from soi_mlflow.lightning import TraceCallback

        trace = TraceCallback(["neg", "pos"], eval_splits=["validation", "ood"])
        trainer = Trainer(
            max_epochs=3,
            logger=MLFlowLogger(tracking_uri="sqlite:///mlflow.db"),
            callbacks=[trace],
        )
        trainer.fit(model, train_loader, [val_loader, ood_loader])
        trace.run_id_resolved  # the run holding traces/train/, traces/validation/, ...
    """

    def __init__(
        self,
        label_names: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        *,
        members: Sequence[str] | None = None,
        ids: str = "example_id",
        labels: str = "labels",
        logits: str = "logits",
        member: str | None = None,
        task: str | None = None,
        select: Selector | None = None,
        eval_splits: str | Sequence[str] | None = None,
        test_splits: str | Sequence[str] | None = None,
        trace_train: bool = True,
        capture: str | None = None,
        run_id: str | RunHandle | Callable[[], str | RunHandle] | None = None,
        tracking_uri: str | None = None,
        axis: str | None = None,
        tags: Mapping[str, str] | None = None,
        log_metrics: bool = True,
        analyze: bool = True,
        shards: bool | None = None,
    ) -> None:
        eval_splits, test_splits = split_names(eval_splits), split_names(test_splits)
        self.keys = {"ids": ids, "labels": labels, "logits": logits}
        self.member_key, self.task_key = member, task
        self.select = select
        self.label_names = label_names
        self.members = members
        self.eval_splits = eval_splits
        self.test_splits = test_splits
        self.trace_train = trace_train
        self.capture = capture or ("train_pass" if trace_train else "eval_pass")
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.axis = axis
        self.tags = dict(tags or {})
        self.log_metrics = log_metrics
        self.analyze = analyze
        self.shards = shards
        self.analysis: Any = None  # the AnalysisOutcome of the last fit, when analysed
        self.recorder: TraceRecorder | None = None
        self.last_metrics: dict[str, float] = {}
        self._resolved_run: str | None = None
        self._restored: dict[str, Any] | None = None
        self.exception: BaseException | None = None  # what ended training, if it failed

    @property
    def run_id_resolved(self) -> str | None:
        """The run written into, once training has set up (rank 0)."""
        return self._resolved_run

    # -- the run and the recorder ---------------------------------------------------
    def _resolve_run(self, trainer: pl.Trainer) -> tuple[str | RunHandle | None, str | None]:
        if self._resolved_run is not None:
            return self._resolved_run, self.tracking_uri
        if not trainer.is_global_zero:
            return None, self.tracking_uri
        from lightning.pytorch.loggers import MLFlowLogger

        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                self.tracking_uri = self.tracking_uri or getattr(logger, "_tracking_uri", None)
                return logger.run_id, self.tracking_uri
        run = self.run_id() if callable(self.run_id) else self.run_id
        return run, self.tracking_uri

    def _open(self, trainer: pl.Trainer) -> None:
        if self.recorder is not None:
            return
        run_id, uri = self._resolve_run(trainer)
        restored = self._restored or {}
        self.recorder = TraceRecorder(
            run_id,
            tracking_uri=uri,
            label_names=self.label_names,
            capture=self.capture,
            axis=self.axis,
            log_metrics=self.log_metrics,
            start_epoch=int(restored.get("epoch", trainer.current_epoch)),
            source="lightning",
            members=self.members,
            tags=self.tags,
            resume=bool(restored),
            shards=self.shards,
            analyze=False,  # teardown analyses, after fit only
        )
        self._resolved_run = self.recorder.run_id

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":  # fit opens at on_fit_start, once a checkpoint is restored
            self._open(trainer)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._open(trainer)

    def state_dict(self) -> dict[str, Any]:
        """The run and the next epoch, saved in Lightning checkpoints. Waits until every
        finished epoch is stored, so a checkpoint never claims an epoch the run lacks."""
        if self.recorder is None:
            return dict(self._restored or {})
        self.recorder.flush()
        return {
            "run_id": self._resolved_run,
            "tracking_uri": self.tracking_uri,
            "epoch": self.recorder.epoch,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("run_id"):
            self._restored = dict(state_dict)
            self._resolved_run = str(state_dict["run_id"])
            self.tracking_uri = self.tracking_uri or state_dict.get("tracking_uri")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        recorder = self.recorder  # None after on_exception: a failed fit is not analysed
        self._close(None)
        if (
            self.analyze
            and stage == "fit"
            and recorder is not None
            and recorder.run_id
            and trainer.is_global_zero
        ):
            uri = recorder.tracking_uri or self.tracking_uri
            self.analysis = analyze_after_training(recorder.run_id, str(uri))

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.exception = exception
        # the training error matters more than a failed last upload
        with contextlib.suppress(Exception):
            self._close(exception)

    def _close(self, exception: BaseException | None) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.close(exception=exception)

    # -- collecting -----------------------------------------------------------------
    def _add(self, split: str, outputs: Any, batch: Any, step: int) -> None:
        assert self.recorder is not None, "TraceCallback.setup was not called"
        if self.select is not None:
            found = dict(self.select(outputs, batch))
            example_ids = found.pop("example_ids", None)
            self.recorder.add(split, example_ids, step=step, **found)
            return
        logits = _lookup(outputs, self.keys["logits"])
        if logits is None:
            raise SoiInputError(
                f"split {split!r}: the step's outputs have no {self.keys['logits']!r}; return "
                f"{{'loss': loss, {self.keys['logits']!r}: logits}} from the step, or pass "
                "TraceCallback(logits=<key>) or select=<function of (outputs, batch)>"
            )
        ids = _lookup(batch, self.keys["ids"])
        if ids is None:
            raise SoiInputError(
                f"split {split!r}: the batch has no {self.keys['ids']!r}; keep the example ids "
                "in the batch (soi_mlflow.data.with_example_ids) or pass TraceCallback(ids=<key>)"
            )
        labels = _lookup(batch, self.keys["labels"])
        if labels is None and self.keys["labels"] == "labels":
            labels = _lookup(batch, "label")
        if labels is None:
            raise SoiInputError(
                f"split {split!r}: the batch has no {self.keys['labels']!r}; pass "
                "TraceCallback(labels=<key>)"
            )
        member = _lookup(batch, self.member_key) if self.member_key else None
        task = _lookup(batch, self.task_key) if self.task_key else None
        self.recorder.add(split, ids, logits, labels, member=member, task=task, step=step)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.trace_train:
            self._add("train", outputs, batch, trainer.global_step)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            split = _split_name(self.eval_splits, "validation", dataloader_idx)
            self._add(split, outputs, batch, trainer.global_step)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        split = _split_name(self.test_splits, "test", dataloader_idx)
        self._add(split, outputs, batch, trainer.global_step)

    # -- writing --------------------------------------------------------------------
    def _end_epoch(self, trainer: pl.Trainer) -> None:
        assert self.recorder is not None
        self.last_metrics |= self.recorder.end_epoch(trainer.current_epoch)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end_epoch(trainer)  # validation of this epoch has run by now

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn != "fit":
            self._end_epoch(trainer)  # trainer.validate(): no training epoch to end

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end_epoch(trainer)

    def flush(self) -> None:
        """Wait until every finished epoch is in the run."""
        if self.recorder is not None:
            self.recorder.flush()


def _lookup(container: Any, key: str) -> Any:
    """``container[key]`` for mappings (and ``ModelOutput``), else the attribute, else None."""
    if container is None:
        return None
    if isinstance(container, Mapping) or hasattr(container, "keys"):
        try:
            return container[key]
        except (KeyError, TypeError):
            return None
    return getattr(container, key, None)


def _split_name(names: list[str] | None, default: str, idx: int) -> str:
    if names is not None:
        if idx >= len(names):
            raise SoiInputError(
                f"dataloader {idx} has no split name: {default} split names are {names}"
            )
        return names[idx]
    return default if idx == 0 else f"{default}_{idx}"

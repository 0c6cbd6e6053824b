"""The ``transformers.Trainer`` callback that owns the recorders: one trace file per split
and epoch, written into the run ``MLflowCallback`` opened, the active run, or one it opens
(``soi_mlflow.transformers``, where :class:`TraceMixin` hands it each batch's logits)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from transformers import TrainerCallback

from soi_mlflow.analysis.after_training import analyze_after_training
from soi_mlflow.common.renamed import Default, take_renamed
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.names import split_names
from soi_mlflow.tracking.recorder import TraceRecorder
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.tracking.run_open import open_run
from soi_mlflow.tracking.trace_rows import dist_rank_world

SOURCE = "transformers"
_IDS, _LABELS, _LOGITS = Default("example_id"), Default("labels"), Default("logits")


class TraceCallback(TrainerCallback):
    """Traces of a Trainer's training batches and evaluation sets into an MLflow run.

    Takes the same arguments, in the same order, as
    :class:`soi_mlflow.lightning.TraceCallback` (which has a few more); all but
    ``label_names`` are keyword-only. A :class:`TracingTrainer` (or a Trainer with
    :class:`TraceMixin`) hands it the logits: pass one in ``callbacks`` to set these
    arguments, else the trainer adds ``TraceCallback()``.

    Args:
        label_names: class names of one task (a list) or of several (``{task: names}``);
            default the model config's ``id2label``.
        members: the member names a ``member`` column's indices stand for.
        ids: the batch column holding each row's example id (kept through
            ``remove_unused_columns``, taken out before the model's forward).
        labels: the batch column holding the gold labels.
        logits: the key of the logits in the model's output.
        member: optional batch column with each row's member index into ``members``
            (e.g. the source of a multi-source data set).
        eval_splits: the split name of the evaluation set that has no name of its own
            (a plain ``eval_dataset``, metric prefix ``eval``); default ``validation``.
            One name, as a string or a list of one: a dict ``eval_dataset`` names its
            sets by their keys (:func:`eval_split_name`).
        run_id: the run to write into; default the run transformers' ``MLflowCallback``
            opened, else the active run, else a new run (ended when training ends).
        tracking_uri: the tracking store; default MLflow's current one.
        axis: optional ``soi.axis`` tag (``task``, ``source`` or ``lang``).
        log_metrics: log ``<split>/<member>/acc`` and ``/loss`` (and ``train/loss``) at
            every epoch's end.
        analyze: analyse the run when ``train()`` ends well (on the main process), as
            ``soi-mlflow analyze --run-id`` does; the outcome is then in
            :attr:`analysis`.
        shards: per-rank trace shards under torch.distributed (as
            :class:`~soi_mlflow.tracking.recorder.TraceRecorder`'s).

    Renamed, the old names working for one release with a DeprecationWarning:
    ``eval_split`` is now ``eval_splits``; ``ids_key``, ``labels_key``, ``logits_key`` and
    ``member_key`` are ``ids``, ``labels``, ``logits`` and ``member``.

    Raises:
        SoiInputError: ``member`` without ``members``, more than one ``eval_splits`` or
            a split name that cannot name a folder (here); a batch without ids or
            labels, a model output without ``logits``, or a first training step that
            reached no trace (a plain ``Trainer``), during training.
        TypeError: an unknown keyword argument.

    Example::

        from soi_mlflow.transformers import TraceCallback, TracingTrainer

        trainer = TracingTrainer(
            model=model,
            args=TrainingArguments("out", num_train_epochs=3, eval_strategy="epoch"),
            train_dataset=train,                    # with an example_id column
            eval_dataset={"validation": val, "ood": ood},
            callbacks=[TraceCallback(["neg", "pos"], member="source", members=["a", "b"])],
        )
        trainer.train()                             # traces/train/, traces/validation/, ...
    """

    def __init__(
        self,
        label_names: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        *,
        members: Sequence[str] | None = None,
        ids: str = _IDS,
        labels: str = _LABELS,
        logits: str = _LOGITS,
        member: str | None = None,
        eval_splits: str | Sequence[str] | None = None,
        run_id: str | None = None,
        tracking_uri: str | None = None,
        axis: str | None = None,
        log_metrics: bool = True,
        analyze: bool = True,
        shards: bool | None = None,
        **renamed: Any,
    ) -> None:
        new = {
            "ids": ids,
            "labels": labels,
            "logits": logits,
            "member": member,
            "eval_splits": eval_splits,
        }
        old = {f"{k}_key": k for k in ("ids", "labels", "logits", "member")}
        keys = take_renamed("TraceCallback", renamed, new, old | {"eval_split": "eval_splits"})
        if keys["member"] is not None and not members:
            raise SoiInputError("member needs members=[...]: the names its indices stand for")
        named = split_names(keys["eval_splits"]) or ["validation"]
        if len(named) > 1:
            raise SoiInputError(
                f"eval_splits {named}: a Trainer has one evaluation set without a name of "
                "its own; name the others with eval_dataset={name: dataset, ...}"
            )
        self.eval_splits = named
        self.label_names = label_names
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.ids_key, self.labels_key = keys["ids"], keys["labels"]
        self.logits_key, self.member_key = keys["logits"], keys["member"]
        self.members = list(members) if members else None
        self.axis = axis
        self.log_metrics = log_metrics
        self.analyze = analyze
        self.shards = shards
        self.analysis: Any = None  # the AnalysisOutcome of the last training, when analysed
        self._train: TraceRecorder | None = None
        self._eval: TraceRecorder | None = None
        self._split: str | None = None  # the evaluation set being traced, if any
        self._training = False
        self._train_rows = 0
        self._unlabelled: set[str] = set()
        self._run: RunHandle | None = None  # the run, once opened; ended here if created
        self._checked_first_step = False
        self._model: Any = None

    # -- the run and its recorders -------------------------------------------------------
    def _resolve_run(self) -> RunHandle:
        """The given run, else the active run (the one MLflowCallback opened), else a new
        active run, which MLflowCallback then also logs into and this callback ends.

        With a ``tracking_uri`` other than MLflow's current one, the new run is opened in
        that store through a client (MLflow's global URI is never changed) and ended here;
        transformers' MLflowCallback, if on, keeps logging to its own store. Opened once
        (:func:`~soi_mlflow.tracking.run_open.open_run`) and handed to every recorder."""
        if self._run is None:
            self._run = open_run(
                self.tracking_uri,
                run_id=self.run_id,
                adopt="integration",
                start_active=True,
                prefix="trainer",
            )
            self.run_id = self._run.run_id
        return self._run

    def _recorder(self, model: Any = None) -> TraceRecorder:
        if self.label_names is None and model is not None:
            id2label = getattr(getattr(model, "config", None), "id2label", None)
            if id2label:
                self.label_names = [str(id2label[i]) for i in sorted(id2label)]
        return TraceRecorder(
            self._resolve_run() if dist_rank_world()[0] == 0 else None,  # rank 0's run
            tracking_uri=self.tracking_uri,
            label_names=self.label_names,
            axis=self.axis,
            log_metrics=self.log_metrics,
            source=SOURCE,
            members=self.members,
            shards=self.shards,
            analyze=False,  # the run is analysed once both recorders closed (_finish)
        )

    # -- Trainer events ---------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs) -> None:
        self._training = True
        self._model = model
        if self._train is None:
            self._train = self._recorder(model)

    def on_step_end(self, args, state, control, **kwargs) -> None:
        if self._checked_first_step:
            return
        self._checked_first_step = True
        if self._train_rows == 0:
            error = SoiInputError(
                "TraceCallback saw no training batch: train with TracingTrainer (or a Trainer "
                "subclass with soi_mlflow.transformers.TraceMixin) so that it gets the logits"
            )
            self.abort(error)
            raise error

    def on_epoch_end(self, args, state, control, **kwargs) -> None:
        if self._train is not None:
            self._train.end_epoch(_epoch(state))
            self._train_rows = 0

    def on_train_end(self, args, state, control, **kwargs) -> None:
        """Flush every trace; end the run if this callback started it."""
        self._finish("FINISHED")

    def abort(self, exception: BaseException | None = None) -> None:
        """Training stops on an error: keep the finished epochs, end a run we started as
        FAILED, with the reason in ``soi.end_reason`` (a Trainer calls no callback when
        its loop raises)."""
        with contextlib.suppress(Exception):  # the error being raised matters more
            self._finish("FAILED", exception)

    def _finish(self, status: str, exception: BaseException | None = None) -> None:
        self._training = False
        eval_rec, self._eval = self._eval, None
        train_rec, self._train = self._train, None
        run, self._run = self._run, None
        try:
            for rec in (eval_rec, train_rec):
                if rec is not None:
                    rec.close(status, exception)
        finally:
            if run is not None and run.created:  # the one way runs end
                run.end(exception, status=status)
        if self.analyze and status == "FINISHED" and train_rec is not None:
            self._analyze(train_rec)

    def _analyze(self, recorder: TraceRecorder) -> None:
        """The run's analysis, on the process that wrote its traces (rank 0)."""
        if dist_rank_world()[0] == 0 and recorder.run_id and recorder.tracking_uri:
            self.analysis = analyze_after_training(recorder.run_id, recorder.tracking_uri)

    # -- called by TraceMixin -----------------------------------------------------------
    def observe(self, training: bool, ids: Any, outputs: Any, labels: Any, member: Any) -> None:
        """One batch of the training step (``training``) or of the evaluation in progress."""
        if training:
            if self._train is None:  # training outside Trainer.train(): no epochs to end
                return
            rec, split = self._train, "train"
            self._train_rows += 1
        elif self._split is not None:
            if self._eval is None:
                self._eval = self._recorder(self._model)
            rec, split = self._eval, self._split
        else:
            return
        if labels is None:
            raise SoiInputError(
                f"split {split!r}: the batch has no {self.labels_key!r}; traces need gold labels"
            )
        rec.add(split, ids, _logits(outputs, self.logits_key), labels, member=member)

    def begin_eval(self, metric_key_prefix: str) -> None:
        self._split = eval_split_name(metric_key_prefix, self.eval_splits[0])

    def end_eval(self, state: Any) -> None:
        """Write the evaluation set's trace; outside training, wait until it is logged."""
        split, self._split = self._split, None
        if self._eval is None or split is None:
            return
        self._eval.end_epoch(_epoch(state))
        if not self._training:
            self._eval.close()
            self._eval = None

    def unlabelled(self) -> None:
        """An evaluation batch without labels: that set cannot be traced (said once)."""
        import warnings

        split = self._split
        if split is not None and split not in self._unlabelled:
            self._unlabelled.add(split)
            warnings.warn(
                f"soi-mlflow: evaluation set {split!r} has no labels; it is not traced",
                stacklevel=3,
            )


def eval_split_name(metric_key_prefix: str, eval_split: str = "validation") -> str:
    """The trace split a Trainer's metric prefix stands for: ``eval`` (a plain
    ``eval_dataset``) -> ``eval_split`` (default ``validation``); ``eval_<name>`` (a key of
    a dict ``eval_dataset``) -> ``<name>``; anything else (``test`` of
    ``trainer.predict``) as is.

    Example::

        eval_split_name("eval_ood")  # "ood"
    """
    if metric_key_prefix == "eval":
        return eval_split
    if metric_key_prefix.startswith("eval_"):
        return metric_key_prefix[len("eval_") :]
    return metric_key_prefix


def _epoch(state: Any) -> int:
    """The 0-based epoch a Trainer is in (or just finished): 1.0 -> 0, 1.5 -> 1."""
    value = getattr(state, "epoch", None) or 0.0
    return max(math.ceil(value - 1e-9) - 1, 0)


def _logits(outputs: Any, key: str) -> Any:
    if isinstance(outputs, Mapping) and key in outputs:
        return outputs[key]
    got = list(outputs.keys()) if isinstance(outputs, Mapping) else type(outputs).__name__
    raise SoiInputError(
        f"TraceCallback(logits={key!r}): the model's output has no {key!r}; it has {got}"
    )

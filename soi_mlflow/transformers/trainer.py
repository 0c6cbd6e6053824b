"""The ``transformers.Trainer`` side of tracing: :class:`TraceMixin` hands the logits
``compute_loss`` and ``prediction_step`` already computed, with the batch's example ids and
labels, to :class:`~soi_mlflow.transformers.callback.TraceCallback`; :class:`TracingTrainer`
is a ``Trainer`` with it mixed in."""

from __future__ import annotations

from typing import Any

from transformers import Trainer

from soi_mlflow.errors import SoiInputError
from soi_mlflow.transformers.callback import TraceCallback


class TraceMixin:
    """Mix into a ``transformers.Trainer`` subclass to hand its logits to TraceCallback.

    ``class MyTrainer(TraceMixin, Trainer)``; a :class:`TraceCallback` is added when
    ``callbacks`` has none. ``example_id`` (and ``member``) survive
    ``remove_unused_columns`` and are taken out of the batch before the model's forward.

    Args:
        *args: the Trainer's positional arguments.
        **kwargs: the Trainer's keyword arguments; a :class:`TraceCallback` in
            ``callbacks`` sets how tracing is done.

    Raises:
        SoiInputError: a batch without the callback's ``ids`` column (at the first
            ``compute_loss``), and what :class:`TraceCallback` raises.

    Example::

        class MyTrainer(TraceMixin, Seq2SeqTrainer):  # any Trainer subclass
            pass
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._soi_callback() is None:
            self.add_callback(TraceCallback())

    @property
    def trace_run_id(self) -> str | None:
        """The MLflow run the traces go to (known once training or evaluation began)."""
        cb = self._soi_callback()
        return cb.run_id if cb is not None else None

    def _soi_callback(self) -> TraceCallback | None:
        for cb in self.callback_handler.callbacks:
            if isinstance(cb, TraceCallback):
                return cb
        return None

    def _soi_keys(self) -> list[str]:
        cb = self._soi_callback()
        assert cb is not None
        return [cb.ids_key] + ([cb.member_key] if cb.member_key else [])

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """Trainer.train; on an error the finished epochs stay and a run the callback
        started is marked FAILED."""
        try:
            return super().train(*args, **kwargs)
        except BaseException as exc:
            cb = self._soi_callback()
            if cb is not None:
                cb.abort(exc)
            raise

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        for key in self._soi_keys():
            if key not in self._signature_columns:
                self._signature_columns.append(key)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        cb = self._soi_callback()
        assert cb is not None
        ids = inputs.get(cb.ids_key)
        member = inputs.get(cb.member_key) if cb.member_key else None
        labels = inputs.get(cb.labels_key)
        if ids is None:
            raise SoiInputError(
                f"the batch has no {cb.ids_key!r} column: give the data set stable ids "
                "(soi_mlflow.data.with_example_ids) or set TraceCallback(ids=...)"
            )
        drop = (cb.ids_key, cb.member_key)  # once per batch, not once per input key
        inputs = {k: v for k, v in inputs.items() if k not in drop}
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        cb.observe(model.training, ids, outputs, labels, member)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(
        self,
        model: Any,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> Any:
        has_labels = bool(self.label_names) and all(
            inputs.get(k) is not None for k in self.label_names
        )
        if not has_labels:  # compute_loss is not called: the ids must not reach forward
            cb = self._soi_callback()
            assert cb is not None
            cb.unlabelled()
            drop = self._soi_keys()
            inputs = {k: v for k, v in inputs.items() if k not in drop}
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    def evaluation_loop(
        self,
        dataloader: Any,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> Any:
        cb = self._soi_callback()
        assert cb is not None
        cb.begin_eval(metric_key_prefix)
        try:
            output = super().evaluation_loop(
                dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
            )
        except BaseException:
            cb._split = None
            raise
        cb.end_eval(self.state)
        return output


class TracingTrainer(TraceMixin, Trainer):
    """``transformers.Trainer`` with per-example traces (see :class:`TraceMixin`).

    Args:
        *args: ``transformers.Trainer``'s positional arguments.
        **kwargs: ``transformers.Trainer``'s keyword arguments; a :class:`TraceCallback`
            in ``callbacks`` sets how tracing is done, else ``TraceCallback()`` is added.

    Raises:
        SoiInputError: as :class:`TraceMixin` and :class:`TraceCallback`.

    Example::

        trainer = TracingTrainer(  # was: Trainer(...); the rest of the script stays
            model=model, args=args, train_dataset=train, eval_dataset=val
        )
        trainer.train()
        trainer.trace_run_id  # the run holding traces/train/ and traces/validation/
    """

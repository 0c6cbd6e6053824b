"""Per-example traces from a Hugging Face ``transformers.Trainer``, through TraceRecorder.

A Trainer's callbacks never see a batch's logits, so two small pieces work together:

- :class:`TraceMixin` (or the ready-made :class:`TracingTrainer`) hands the logits that
  ``compute_loss`` already computed, with the batch's ``example_id`` and labels, to the
  callback: in training (split ``train``, capture ``train_pass``) and in every evaluation
  (``evaluate``/``predict``; capture ``eval_pass``). It also keeps ``example_id`` through
  ``remove_unused_columns`` and takes it out of the batch before the model sees it.
- :class:`TraceCallback` owns the recorders and writes one trace file per split and epoch.
  With ``report_to=["mlflow"]`` it writes into the run transformers' ``MLflowCallback``
  opened (one run, not two); otherwise into the active run, or a run it starts and ends.

A user's script changes in one line::

    trainer = TracingTrainer(model=model, args=args, train_dataset=train, eval_dataset=val)

Evaluation sets are named by their metric prefix (:func:`eval_split_name`). An evaluation
set's trace of epoch *e* is its last evaluation during epoch *e*. To trace the training set
in eval mode too, pass it as one more evaluation set.

When ``train()`` ends well, the main process analyses the run (``analyze=False``: not), as
``soi-mlflow analyze --run-id`` does; a failed analysis is a warning line on stderr.
:class:`TraceCallback` takes ``lightning.TraceCallback``'s arguments: the same names, in
the same order, ``label_names`` the only positional one.
"""

from soi_mlflow.transformers.callback import TraceCallback, eval_split_name
from soi_mlflow.transformers.trainer import TraceMixin, TracingTrainer

__all__ = ["TraceCallback", "TraceMixin", "TracingTrainer", "eval_split_name"]

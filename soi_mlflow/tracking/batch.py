"""One batch given to the trace recorder, checked and put into its split's buffer: ids,
scores and labels of the right shapes, member and task indices (the statistics follow
where the logits are, per chunk of rows: ``epoch_buffer.py``)."""

from __future__ import annotations

from typing import Any

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.epoch_buffer import SplitBuffer
from soi_mlflow.tracking.label_space import LabelSpace
from soi_mlflow.tracking.names import check_split_name
from soi_mlflow.tracking.trace_rows import as_ids


def add_batch(
    buffer: SplitBuffer,
    step: int,
    space: LabelSpace,
    split: str,
    example_ids: Any,
    logits: Any,
    labels: Any,
    probs: Any,
    member: Any,
    task: Any,
    first: bool,
) -> None:
    """One batch of ``split`` into its ``buffer``, at training step ``step``; ``first``:
    the split's first batch, checked in full (later ones are checked at the epoch's end).
    Bad input raises :class:`SoiInputError`."""
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
    task_idx = space.task_indices(task, n, check=first)
    space.ensure_task()
    gold = space.gold(labels, task_idx, n, split)
    classes = space.class_counts(width)
    if first:
        space.check_first(split, gold, task_idx, classes, width)
    member_idx = space.member_indices(member, task_idx, n, check=first)
    buffer.add(ids, scores, gold, member_idx, task_idx, classes, logits is None, step)

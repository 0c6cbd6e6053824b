"""Batches that keep each example's identity, and the epoch sampler of a mixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from datasets import Dataset
from torch.utils.data import Sampler

from soi_mlflow.data.mixture import Mixture
from soi_mlflow.data.tokenize import MODEL_COLUMNS

ID_COLUMNS = ("example_id", "label", "member_idx", "task_idx")


def loader_view(ds: Dataset) -> Dataset:
    """``ds`` restricted to the columns a batch needs (token columns, ids, labels)."""
    return ds.with_format(
        columns=[c for c in (*MODEL_COLUMNS, *ID_COLUMNS) if c in ds.column_names]
    )


class Collator:
    """Pads token columns to the longest in the batch, on the tokenizer's padding side;
    carries ids, labels, members, tasks."""

    def __init__(self, pad_token_id: int, padding_side: str = "right") -> None:
        self.pad_token_id = pad_token_id
        self.left = padding_side == "left"

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        batch: dict[str, torch.Tensor] = {}
        for col in MODEL_COLUMNS:
            if col not in rows[0]:
                continue
            pad = self.pad_token_id if col == "input_ids" else 0
            out = torch.full((len(rows), longest), pad, dtype=torch.long)
            for i, r in enumerate(rows):
                n = len(r[col])
                where = slice(longest - n, longest) if self.left else slice(0, n)
                out[i, where] = torch.as_tensor(r[col], dtype=torch.long)
            batch[col] = out
        for col in ID_COLUMNS:
            batch[col] = torch.as_tensor([r[col] for r in rows], dtype=torch.long)
        return batch


class MixtureSampler(Sampler[int]):
    """Yields :meth:`Mixture.epoch_order` for the current epoch.

    The epoch comes from ``epoch_fn`` when given (the trainer's epoch: a distributed
    wrapper around this sampler does not pass ``set_epoch`` on), else from ``set_epoch``.
    """

    def __init__(
        self, mixture: Mixture, seed: int, epoch_fn: Callable[[], int] | None = None
    ) -> None:
        self.mixture = mixture
        self.seed = seed
        self.epoch = 0
        self.epoch_fn = epoch_fn

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch_fn() if self.epoch_fn is not None else self.epoch
        return iter(self.mixture.epoch_order(epoch, self.seed).tolist())

    def __len__(self) -> int:
        return len(self.mixture.train)

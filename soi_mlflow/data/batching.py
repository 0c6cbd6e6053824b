"""Batches that keep each example's identity, and the epoch sampler of a mixture."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    """Pads token columns to the longest in the batch; carries ids, labels, members, tasks."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        batch: dict[str, torch.Tensor] = {}
        for col in MODEL_COLUMNS:
            if col not in rows[0]:
                continue
            pad = self.pad_token_id if col == "input_ids" else 0
            out = torch.full((len(rows), longest), pad, dtype=torch.long)
            for i, r in enumerate(rows):
                out[i, : len(r[col])] = torch.as_tensor(r[col], dtype=torch.long)
            batch[col] = out
        for col in ID_COLUMNS:
            batch[col] = torch.as_tensor([r[col] for r in rows], dtype=torch.long)
        return batch


class MixtureSampler(Sampler[int]):
    """Yields :meth:`Mixture.epoch_order` for the current epoch (set with ``set_epoch``)."""

    def __init__(self, mixture: Mixture, seed: int) -> None:
        self.mixture = mixture
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(self.mixture.epoch_order(self.epoch, self.seed).tolist())

    def __len__(self) -> int:
        return len(self.mixture.train)

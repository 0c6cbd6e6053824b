"""Resume checkpoints for the built-in trainer: one file per run, replaced every K epochs.

- :class:`EpochCheckpoint` saves Lightning's full training state (weights, optimizer and
  scheduler, loop positions, every callback's ``state_dict``: the trace callback's run id
  and epoch) at the end of every ``every``-th epoch, after the epoch's trace is stored,
  as ``tracking/local.py``'s ``checkpoint/last.ckpt``: written to a temporary file and
  renamed, so a crash leaves the previous checkpoint whole.
- :class:`EpochSeed` reseeds torch, numpy, ``random`` and the training loaders' generators
  at the start of every epoch from (seed, epoch), so an epoch's dropout and order do not
  depend on what ran before it: a run resumed at epoch 3 draws exactly what the
  uninterrupted run drew (docs/reliability.md states the conditions).
- Checkpoints are read back only with ``torch.load(weights_only=True)`` (Lightning's
  ``fit(ckpt_path=..., weights_only=True)``).
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader


class EpochCheckpoint(pl.Callback):
    """Save ``path`` (or ``path()``, resolved at the first save) at the end of every
    ``every``-th training epoch and of the last."""

    def __init__(self, path: Path | Callable[[], Path], every: int = 1) -> None:
        self._path = path
        self.every = every

    @property
    def path(self) -> Path:
        return Path(self._path() if callable(self._path) else self._path)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        last = epoch + 1 >= (trainer.max_epochs or 0)
        if (epoch + 1) % self.every and not last:
            return
        if not trainer.is_global_zero:  # collective, but only rank 0 writes (and knows the run)
            trainer.save_checkpoint(Path(tempfile.gettempdir()) / "unused.ckpt", weights_only=False)
            return
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # the full state; collective
        os.replace(tmp, path)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: a function of (seed, epoch) only."""
    return (seed * 1_000_003 + epoch) % (2**32)


class EpochSeed(pl.Callback):
    """Seed every training epoch from (seed, epoch), so a resumed epoch draws exactly what
    the uninterrupted run drew in it (dropout, shuffling), and a hand-made Trainer draws
    what the built-in trainer does.

    At the start of each epoch it seeds torch (CPU and every GPU), numpy and ``random``,
    and reseeds the generator of each training loader's sampler (``shuffle=True,
    generator=g``). Each loader also gets a generator of its own for its iterator's base
    seed (its workers' seeds): the iterator draws one number when it is created, which
    Lightning does *before* this hook on the first epoch of a ``fit`` (0, or the epoch
    resumed at) and *after* it on the others; drawn from the global or the sampler's
    generator, that one number shifted a resumed epoch's dropout and order by one draw.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = epoch_seed(self.seed, trainer.current_epoch)
        torch.manual_seed(value)
        np.random.seed(value)
        random.seed(value)
        for loader in _loaders(trainer.train_dataloader):
            loader.generator = torch.Generator().manual_seed(value)
            for sampler in (loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
                generator = getattr(sampler, "generator", None)
                if isinstance(generator, torch.Generator):
                    generator.manual_seed(value)


def _loaders(found: Any) -> list[DataLoader]:
    """The DataLoaders in ``trainer.train_dataloader`` (one, a list, or a dict of them)."""
    if isinstance(found, DataLoader):
        return [found]
    if isinstance(found, dict):
        found = list(found.values())
    if isinstance(found, (list, tuple)):
        return [dl for item in found for dl in _loaders(item)]
    return []

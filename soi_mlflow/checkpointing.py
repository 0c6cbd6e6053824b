"""Resume checkpoints for the built-in trainer: one file per run, replaced every K epochs.

- :class:`EpochCheckpoint` saves Lightning's full training state (weights, optimizer and
  scheduler, loop positions, every callback's ``state_dict``: the trace callback's run id
  and epoch) at the end of every ``every``-th epoch, after the epoch's trace is stored,
  as ``tracking/local.py``'s ``checkpoint/last.ckpt``: written to a temporary file and
  renamed, so a crash leaves the previous checkpoint whole.
- :class:`EpochSeed` reseeds torch, numpy and ``random`` at the start of every epoch from
  (seed, epoch), so an epoch's dropout does not depend on what ran before it: a run
  resumed at epoch 3 draws exactly what the uninterrupted run drew.
- Checkpoints are read back only with ``torch.load(weights_only=True)`` (Lightning's
  ``fit(ckpt_path=..., weights_only=True)``).
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch


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


class EpochSeed(pl.Callback):
    """Seed every epoch from (seed, epoch), so resumed epochs draw what uninterrupted ones do."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = (self.seed * 1_000_003 + trainer.current_epoch) % (2**32)
        torch.manual_seed(value)
        np.random.seed(value)
        random.seed(value)

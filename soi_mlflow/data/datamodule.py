"""The LightningDataModule of a mixture: tokenised train and evaluation loaders.

Evaluation loaders are, in order, every (split, member) of ``Mixture.eval_sets`` and, in
``eval_pass`` capture, the training set itself (in eval mode, in a fixed order). The
trace callback maps a dataloader index back to its (split, member) with
:attr:`MixtureDataModule.eval_keys`.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from soi_mlflow.data.batching import Collator, MixtureSampler, loader_view
from soi_mlflow.data.mixture import Mixture
from soi_mlflow.data.tokenize import tokenize

TRAIN_EVAL_KEY = ("train", "*")


class MixtureDataModule(pl.LightningDataModule):
    def __init__(
        self,
        mixture: Mixture,
        tokenizer: Any,
        max_length: int,
        batch_size: int,
        seed: int,
        eval_batch_size: int | None = None,
        eval_train: bool = False,
    ) -> None:
        super().__init__()
        self.mixture = mixture
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 2 * batch_size
        self.seed = seed
        self.eval_train = eval_train
        self.collate = Collator(tokenizer.pad_token_id, tokenizer.padding_side)
        self._train = None
        self._eval: dict[tuple[str, str], Any] = {}

    @property
    def eval_keys(self) -> list[tuple[str, str]]:
        keys = self.mixture.eval_keys()
        return [*keys, TRAIN_EVAL_KEY] if self.eval_train else keys

    def setup(self, stage: str | None = None) -> None:
        if self._train is None:
            self._train = loader_view(tokenize(self.mixture.train, self.tokenizer, self.max_length))
            for key, ds in self.mixture.eval_sets().items():
                self._eval[key] = loader_view(tokenize(ds, self.tokenizer, self.max_length))
            if self.eval_train:
                self._eval[TRAIN_EVAL_KEY] = self._train

    def _epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        sampler = MixtureSampler(self.mixture, self.seed, epoch_fn=self._epoch)
        return DataLoader(
            self._train, batch_size=self.batch_size, sampler=sampler, collate_fn=self.collate
        )

    def val_dataloader(self) -> list[DataLoader]:
        return [
            DataLoader(
                self._eval[key],
                batch_size=self.eval_batch_size,
                shuffle=False,
                collate_fn=self.collate,
            )
            for key in self.eval_keys
        ]

"""Out-of-sample class probabilities: a trained model applied to training examples it
did not see (the held-out fold of a cross-validation), as confident learning needs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from soi_mlflow.data.mixture import Mixture
from soi_mlflow.data.tokenize import tokenize
from soi_mlflow.training import TrainConfig, build_model


def heldout_probabilities(
    config: TrainConfig, module: Any, heldout_ids: np.ndarray
) -> dict[int, np.ndarray]:
    """Softmax probabilities, by example id, of the training examples ``heldout_ids`` of
    ``config``'s mixture without its ``train_ids`` restriction, from ``module`` (trained
    on ``config``). The tokenizer is rebuilt exactly as training built it."""
    import torch
    from torch.utils.data import DataLoader

    from soi_mlflow.data.batching import Collator, loader_view  # deferred: torch

    _, tokenizer = build_model(config, Mixture(config.mixture))
    full = Mixture(replace(config.mixture, train_ids=None)).train
    rows = np.flatnonzero(np.isin(np.asarray(full["example_id"]), heldout_ids))
    data = loader_view(tokenize(full.select(rows), tokenizer, config.max_length))
    loader = DataLoader(
        data, batch_size=2 * config.batch_size, collate_fn=Collator(tokenizer.pad_token_id)
    )
    module.eval()
    out: dict[int, np.ndarray] = {}
    with torch.no_grad():
        for batch in loader:
            batch = {k: v.to(module.device) for k, v in batch.items()}
            hidden = module.encode(batch)
            for t, head in enumerate(module.heads):
                mask = batch["task_idx"] == t
                if bool(mask.any()):
                    probs = head(hidden[mask]).float().softmax(-1).cpu().numpy()
                    for eid, p in zip(batch["example_id"][mask].tolist(), probs, strict=True):
                        out[int(eid)] = p
    return out

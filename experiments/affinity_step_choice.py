"""What each lookahead step measures: Task Affinity Grouping's gradient step vs AdamW's.

One multi-task run of the built-in suite (default: 3 tasks; tiny encoder). At every K-th
step with a non-zero learning rate, the same batch is measured both ways (each
measurement restores the model, so both see the same training) and, for each pair of
members, the cosine between their two lookahead displacements of the shared encoder: the
plain gradient steps and the optimizer's steps.
The figures in docs/learning.md come from this script:

    .venv/bin/python experiments/affinity_step_choice.py [--epochs 3] [--every 20] [--members ...]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import warnings
from collections import defaultdict

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch

from soi_mlflow.callbacks.affinity import (
    AFFINITY_STEPS,
    _gradient_step,
    _learning_rates,
    _optimizer_slots,
    _optimizer_step,
    _restore_slots,
    lookahead_affinity,
)
from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.training import TrainConfig, train


def displacement(module, optimizer, rows, step: str) -> torch.Tensor:
    """The flattened change of the encoder that one lookahead step on ``rows`` makes."""
    params = [p for p in module.encoder.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in params]
    slots = _optimizer_slots(optimizer, params)
    grads = [None if p.grad is None else p.grad.detach().clone() for p in module.parameters()]
    rng = torch.random.get_rng_state()
    was_training = module.training
    module.eval()
    try:
        if step == "gradient":
            _gradient_step(module, rows, params, _learning_rates(optimizer, params))
        else:
            _optimizer_step(module, optimizer, rows, list(module.heads.parameters()))
        return torch.cat([(p.detach() - s).flatten() for p, s in zip(params, saved, strict=True)])
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
        _restore_slots(optimizer, params, slots)
        for p, g in zip(module.parameters(), grads, strict=True):
            p.grad = g
        torch.random.set_rng_state(rng)
        module.train(was_training)


class BothSteps(pl.Callback):
    """Measures Z both ways and the update cosines at the same steps of one run."""

    def __init__(self, members: list[str], every: int) -> None:
        self.members, self.every = members, every
        self.z: dict[str, dict] = {s: defaultdict(list) for s in AFFINITY_STEPS}
        self.cosines: dict[str, dict] = {s: defaultdict(list) for s in AFFINITY_STEPS}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        optimizer = trainer.optimizers[0]
        if trainer.global_step % self.every or not any(g["lr"] for g in optimizer.param_groups):
            return
        idx = list(range(len(self.members)))
        for step in AFFINITY_STEPS:
            for key, value in lookahead_affinity(pl_module, optimizer, batch, idx, step).items():
                self.z[step][key].append(value)
            moves = {}
            for m in idx:
                rows = {k: v[batch["member_idx"] == m] for k, v in batch.items()}
                if len(rows["label"]):
                    moves[m] = displacement(pl_module, optimizer, rows, step)
            for a, b in itertools.combinations(sorted(moves), 2):
                cos = torch.nn.functional.cosine_similarity(moves[a], moves[b], dim=0)
                self.cosines[step][(a, b)].append(float(cos))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--members", default="sentiment,paraphrase,entailment")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.chdir(tempfile.mkdtemp(prefix="soi-affinity-step-"))
    members = args.members.split(",")
    probe = BothSteps(members, args.every)
    config = TrainConfig(
        MixtureSpec("builtin", "task", tuple(members)),
        epochs=args.epochs,
        seed=args.seed,
        progress=False,
        tracking_uri="sqlite:///affinity.db",
    )
    original = pl.Trainer

    def trainer_with_probe(*a, **kw):  # the probe joins the run's own callbacks
        kw["callbacks"] = [*kw.get("callbacks", []), probe]
        return original(*a, **kw)

    pl.Trainer = trainer_with_probe
    try:
        train(config)
    finally:
        pl.Trainer = original
    n = len(next(iter(probe.z["gradient"].values())))
    print(
        f"{', '.join(members)} (2,000 examples each), {args.epochs} epochs, seed {args.seed}, "
        f"{n} measurements (every {args.every} steps, LR > 0)"
    )
    for step in AFFINITY_STEPS:
        matrix = pd.DataFrame(
            np.nan,
            index=pd.Index(members, name="step on"),
            columns=pd.Index(members, name="loss of"),
        )
        for (i, j), values in probe.z[step].items():
            matrix.iloc[i, j] = np.mean(values)
        print(f"\nZ[i -> j], {step} step, mean over the run:")
        print(matrix.map(lambda v: f"{v:+.5f}").to_string())
    print("\nmean cosine between two members' lookahead displacements of the encoder:")
    for a, b in itertools.combinations(range(len(members)), 2):
        row = ", ".join(
            f"{step} {np.mean(probe.cosines[step][(a, b)]):+.3f}" for step in AFFINITY_STEPS
        )
        print(f"  {members[a]} / {members[b]}: {row}")


if __name__ == "__main__":
    main()

"""Task affinity during training (docs/design.md; lookahead as in Task Affinity Grouping).

Every ``every`` steps, the training batch is split by member. For each member i, one
lookahead step on i's rows moves the shared encoder only, and for every member j
Z[i -> j] = 1 - L_j(theta') / L_j(theta) on j's rows; then the encoder weights, the
optimizer state, the gradients and the random state are restored exactly, so training
goes on as if nothing had been measured. Losses are taken in eval mode (no dropout), so a
measurement draws no random numbers.

The lookahead step (``step``):
- ``gradient`` (default, Task Affinity Grouping's definition): theta' = theta - lr * grad
  L_i(theta), with lr the optimizer's current learning rate of each parameter. It measures
  how task i's own gradient moves task j's loss.
- ``optimizer``: the run's optimizer step (AdamW with its momentum and scaling). Its
  carried momentum points every task's step in nearly the same direction, so it measures
  the optimizer's trajectory more than the tasks' gradients.
Steps where the learning rate is 0 (the first warm-up step) are skipped: every pair
would read exactly 0 there. Per-epoch means are logged as ``affinity/<i>_to_<j>``; at the
end, a heatmap and a figure of each pair over training.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.artifacts import log_figures, log_table
from soi_mlflow.tracking.spool import Spool

DEFAULT_EVERY = 20
AFFINITY_STEPS = ("gradient", "optimizer")


def check_step(step: str) -> None:
    if step not in AFFINITY_STEPS:
        raise SoiInputError(
            f"affinity step: expected one of {', '.join(AFFINITY_STEPS)}, got {step!r}"
        )


def _learning_rates(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> list[float]:
    """The optimizer's current learning rate of each of ``params`` (0 where not optimized)."""
    by_param = {id(p): float(g["lr"]) for g in optimizer.param_groups for p in g["params"]}
    return [by_param.get(id(p), 0.0) for p in params]


def _member_losses(
    module: Any, batch: dict[str, torch.Tensor], present: list[int]
) -> dict[int, float]:
    """Mean loss of each present member on its rows, from one forward pass."""
    losses, _ = module.per_example(module.encode(batch), batch, with_trace=False)
    members = batch["member_idx"]
    return {m: float(losses[members == m].mean()) for m in present}


def _optimizer_slots(
    optimizer: torch.optim.Optimizer, params: list[torch.Tensor]
) -> list[dict | None]:
    """Copies of the optimizer state of ``params`` (None where a param has no state yet)."""
    out = []
    for p in params:
        state = optimizer.state.get(p)
        out.append(
            None
            if not state
            else {k: v.clone() if torch.is_tensor(v) else v for k, v in state.items()}
        )
    return out


def _restore_slots(
    optimizer: torch.optim.Optimizer, params: list[torch.Tensor], saved: list[dict | None]
) -> None:
    for p, slot in zip(params, saved, strict=True):
        if slot is None:
            optimizer.state.pop(p, None)
            continue
        state = optimizer.state[p]
        for k, v in slot.items():
            if torch.is_tensor(v) and torch.is_tensor(state.get(k)):
                state[k].copy_(v)
            else:
                state[k] = v.clone() if torch.is_tensor(v) else v


def lookahead_affinity(
    module: Any,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    members: list[int],
    step: str = "gradient",
) -> dict[tuple[int, int], float]:
    """Z[(i, j)] for the members present in ``batch`` (by ``member_idx``), restoring the
    encoder, the optimizer state, the gradients, the mode and the RNG afterwards. Empty
    when fewer than two members are present or the encoder's learning rate is 0."""
    check_step(step)
    present = [m for m in members if bool((batch["member_idx"] == m).any())]
    encoder_params = [p for p in module.encoder.parameters() if p.requires_grad]
    rates = _learning_rates(optimizer, encoder_params)
    if len(present) < 2 or not any(rates):
        return {}
    head_params = list(module.heads.parameters())
    saved_weights = [p.detach().clone() for p in encoder_params]
    saved_slots = _optimizer_slots(optimizer, encoder_params) if step == "optimizer" else None
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in module.parameters()]
    saved_rng = torch.random.get_rng_state()
    was_training = module.training
    module.eval()
    out: dict[tuple[int, int], float] = {}
    try:
        with torch.no_grad():
            before = _member_losses(module, batch, present)
        for i in present:
            rows = {k: v[batch["member_idx"] == i] for k, v in batch.items()}
            if step == "gradient":
                _gradient_step(module, rows, encoder_params, rates)
            else:
                _optimizer_step(module, optimizer, rows, head_params)
            with torch.no_grad():
                after = _member_losses(module, batch, present)
                for j in present:
                    out[(i, j)] = 1.0 - after[j] / before[j]
                for p, w in zip(encoder_params, saved_weights, strict=True):
                    p.copy_(w)
            if saved_slots is not None:
                _restore_slots(optimizer, encoder_params, saved_slots)
    finally:
        with torch.no_grad():
            for p, w in zip(encoder_params, saved_weights, strict=True):
                p.copy_(w)
        if saved_slots is not None:
            _restore_slots(optimizer, encoder_params, saved_slots)
        for p, g in zip(module.parameters(), saved_grads, strict=True):
            p.grad = g
        torch.random.set_rng_state(saved_rng)
        module.train(was_training)
    return out


def _gradient_step(
    module: Any, rows: dict[str, torch.Tensor], params: list[torch.Tensor], rates: list[float]
) -> None:
    """theta <- theta - lr * grad of the rows' mean loss, on ``params`` only."""
    with torch.enable_grad():
        losses, _ = module.per_example(module.encode(rows), rows, with_trace=False)
        grads = torch.autograd.grad(losses.mean(), params, allow_unused=True)
    with torch.no_grad():
        for p, g, lr in zip(params, grads, rates, strict=True):
            if g is not None and lr:
                p.sub_(g, alpha=lr)


def _optimizer_step(
    module: Any,
    optimizer: torch.optim.Optimizer,
    rows: dict[str, torch.Tensor],
    head_params: list[torch.Tensor],
) -> None:
    """The optimizer's own step on the rows' mean loss, moving the encoder only."""
    optimizer.zero_grad(set_to_none=True)
    with torch.enable_grad():
        losses, _ = module.per_example(module.encode(rows), rows, with_trace=False)
        losses.mean().backward()
    for p in head_params:  # the step moves the shared encoder only
        p.grad = None
    optimizer.step()


class AffinityCallback(pl.Callback):
    """Measures the lookahead affinity every ``every`` steps; logs per-epoch means.

    ``skipped`` counts the due measurements left out because the learning rate was 0."""

    def __init__(
        self,
        members: list[str],
        every: int = DEFAULT_EVERY,
        run_of: Any = None,
        step: str = "gradient",
    ) -> None:
        if every <= 0:
            raise SoiInputError(f"affinity-every must be a positive integer, got {every!r}")
        check_step(step)
        self.members = members
        self.every = every
        self.step = step
        self.skipped = 0
        self.run_of = run_of  # a callable giving the MLflow RunHandle (rank 0), or None
        self.history: list[dict[str, float]] = []  # one mean matrix per epoch
        self.measurements = 0
        self.seconds = 0.0
        self._sums: dict[tuple[int, int], float] = defaultdict(float)
        self._counts: dict[tuple[int, int], int] = defaultdict(int)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size > 1:
            raise SoiInputError("--affinity-every works with one process; use --devices 1")

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sums.clear()
        self._counts.clear()

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        if trainer.global_step % self.every:
            return
        import time

        start = time.perf_counter()
        optimizer = trainer.optimizers[0]
        if not any(float(g["lr"]) for g in optimizer.param_groups):
            self.skipped += 1  # warm-up's first step: every pair would read exactly 0
            return
        values = lookahead_affinity(
            pl_module, optimizer, batch, list(range(len(self.members))), self.step
        )
        self.seconds += time.perf_counter() - start
        self.measurements += 1
        for key, value in values.items():
            self._sums[key] += value
            self._counts[key] += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        means = {
            f"affinity/{self.members[i]}_to_{self.members[j]}": self._sums[(i, j)] / n
            for (i, j), n in sorted(self._counts.items())
        }
        self.history.append(means)
        run = self.run_of() if self.run_of else None
        if run is not None and means:
            # through the run's spool, after the epoch's traces (the trace recorder sends it)
            spool = Spool(run.run_id, run.tracking_uri)
            spool.put_metrics(means, trainer.current_epoch, heartbeat=False)

    def on_fit_end(self, trainer, pl_module) -> None:
        run = self.run_of() if self.run_of else None
        if run is None or not any(self.history):
            return
        from soi_mlflow.analysis import figures  # deferred: matplotlib

        matrix = self.mean_matrix()
        figs = {
            "affinity_matrix": _heatmap(matrix, len(self.history), self.every, self.step),
            "affinity_over_training": _curves(self.history, self.step),
        }
        try:
            log_table(run.client, run.run_id, matrix, "affinity")
            log_figures(run.client, run.run_id, figs)
        except Exception:  # noqa: BLE001 - the tracking server is away: keep them in the spool
            spool = Spool(run.run_id, run.tracking_uri)
            spool.put_artifact("affinity.parquet", "tables", matrix.to_parquet)
            for name, fig in figs.items():
                spool.put_artifact(
                    f"{name}.png", "figures", lambda p, f=fig: f.savefig(p, format="png")
                )
            figures.close(figs)

    def mean_matrix(self) -> Any:
        """Mean over epochs of the per-epoch means (rows: i, columns: j)."""
        import pandas as pd

        names = self.members
        out = pd.DataFrame(
            np.nan, index=pd.Index(names, name="step on"), columns=pd.Index(names, name="loss of")
        )
        for i in names:
            for j in names:
                vals = [
                    h[f"affinity/{i}_to_{j}"] for h in self.history if f"affinity/{i}_to_{j}" in h
                ]
                if vals:
                    out.loc[i, j] = float(np.mean(vals))
        return out


def _heatmap(matrix: Any, epochs: int, every: int, step: str):
    from soi_mlflow.analysis.figures import subplots, text_color  # deferred: matplotlib

    values = matrix.to_numpy(dtype=float)
    bound = np.nanmax(np.abs(values)) or 1.0
    fig, ax = subplots(figsize=(1.5 * len(matrix) + 3, 1.2 * len(matrix) + 2))
    im = ax.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound)
    for a in range(values.shape[0]):
        for b in range(values.shape[1]):
            color = text_color(values[a, b], bound)
            ax.text(b, a, f"{values[a, b]:+.4f}", ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    ax.set_xlabel("member j (loss measured)")
    ax.set_ylabel("member i (lookahead step)")
    ax.set_title(
        f"Lookahead affinity Z[i -> j] ({step} step), mean over {epochs} epochs "
        f"(every {every} steps)",
        fontsize=9,
    )
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def _curves(history: list[dict[str, float]], step: str):
    from soi_mlflow.analysis.figures import subplots  # deferred: matplotlib

    fig, ax = subplots(figsize=(7, 4))
    keys = sorted({k for h in history for k in h})
    for key in keys:
        ax.plot(
            range(len(history)),
            [h.get(key, np.nan) for h in history],
            marker="o",
            label=key.removeprefix("affinity/").replace("_to_", " -> "),
        )
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel("Z (1 - loss after / loss before)")
    ax.set_title(f"Lookahead affinity per pair over training ({step} step)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

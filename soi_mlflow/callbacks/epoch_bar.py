"""Lightning's progress bar replaced by one bar over the epochs of the run.

On a terminal: a rich bar that fills over all epochs (``epoch 3/5 ━━━━━━━━━ 0:00:12
loss 0.412 val acc 0.830``; the loss is the epoch's mean training loss). Elsewhere (a
file, a CI log): one plain line per epoch, no colour codes and no redraws. Validation
accuracy is read from any callback exposing ``last_metrics`` (the trace callback does).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.callbacks import ProgressBar

from soi_mlflow.common.console import WIDTH, on_terminal


class EpochBar(ProgressBar):
    """One progress bar (or one line per epoch) for the whole run, on rank 0 only."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._progress: Any = None
        self._task: Any = None
        self._start = 0.0
        self._loss_sum: Any = 0.0  # this epoch's summed batch losses (a tensor: no sync)
        self._batches = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def _summary(self, trainer: Any) -> str:
        parts = []
        if self._batches:
            parts.append(f"loss {float(self._loss_sum) / self._batches:.3f}")
        for callback in trainer.callbacks:
            metrics = getattr(callback, "last_metrics", None)
            if isinstance(metrics, dict):
                acc = [v for k, v in metrics.items() if k.startswith("val/") and k.endswith("/acc")]
                if acc:
                    parts.append(f"val acc {sum(acc) / len(acc):.3f}")
                break
        return "  ".join(parts)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._start = time.perf_counter()
        if not (self._enabled and trainer.is_global_zero and on_terminal()):
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("  {task.description}"),
            BarColumn(bar_width=30),
            TimeElapsedColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=Console(file=sys.stdout, width=WIDTH),
        )
        self._progress.start()
        self._task = self._progress.add_task(
            self._label(trainer, 0), total=trainer.max_epochs, metrics=""
        )

    def _label(self, trainer: Any, epoch: int) -> str:
        return f"epoch {min(epoch + 1, trainer.max_epochs)}/{trainer.max_epochs}"

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._loss_sum, self._batches = 0.0, 0

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, *args: Any) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is not None:
            self._loss_sum = self._loss_sum + loss.detach()
            self._batches += 1
        if self._progress is None:
            return
        batches = max(1, int(trainer.num_training_batches))
        done = trainer.current_epoch + min(1.0, (trainer.fit_loop.batch_idx + 1) / batches)
        self._progress.update(self._task, completed=done)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        epoch = trainer.current_epoch
        summary = self._summary(trainer)
        if self._progress is not None:
            self._progress.update(
                self._task,
                completed=epoch + 1,
                description=self._label(trainer, epoch + 1),
                metrics=summary,
            )
            return
        seconds = time.perf_counter() - self._start
        print(f"  epoch {epoch + 1}/{trainer.max_epochs}  {summary}  ({seconds:.0f} s)", flush=True)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._stop()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

"""Cost of the trace callback: the same training with and without it, side by side.

Runs come in pairs, one with and one without the callback, the order alternating from
pair to pair, in one process after a warm-up run, so both see the same machine state;
prints the median over pairs of each pair's throughput ratio (with / without), the
median throughputs, the callback's own time, and the trace's bytes per example per
epoch. Targets (issue #27): wall overhead at most 2 % and own time at most 1 % with the
tiny encoder and train_pass; at most 5 bytes per example-epoch in the train trace and 6
in evaluation traces.

    .venv/bin/python bench/trace_overhead.py [--repeats 5] [--examples 1000] [--epochs 2]

``--repeats`` is the number of pairs (at least 5 for the figures in docs/training.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
from mlflow import MlflowClient
from own_time import install, take_parts

from soi_mlflow.data.builtin import BuiltinOptions
from soi_mlflow.data.datamodule import MixtureDataModule
from soi_mlflow.data.mixture import Mixture, MixtureSpec
from soi_mlflow.lightning import TraceCallback
from soi_mlflow.model.encoder import build_tiny
from soi_mlflow.model.module import MultiTaskClassifier
from soi_mlflow.tracking.run_open import open_run
from soi_mlflow.training import mixture_trace_callback

MEMBERS = ("books", "movies", "electronics")
BUILTIN_TRAIN = BuiltinOptions().sizes["train"]  # the built-in suite's examples a member
# per traced run: the callback's own time (hooks + background CPU) / training time
ATTRIBUTED: list[float] = []
# per traced run: ms per epoch on the training thread and of the writer thread's CPU
PER_EPOCH_MS: list[tuple[float, float]] = []


class TrainingClock(pl.Callback):
    """Wall time from the first to the last training epoch: every epoch's training,
    validation and trace writing, but not the one-off set-up (opening the run, example
    tables), which the benchmark reports apart."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def on_train_end(self, trainer, pl_module) -> None:
        for callback in trainer.callbacks:  # count the queued writes of the last epoch too
            if isinstance(callback, TraceCallback):
                callback.flush()
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start


def one_run(
    mixture: Mixture, epochs: int, traced: bool, uri: str, capture: str
) -> tuple[float, float, float, str | None]:
    """Throughput per wall second and per CPU second (all threads, so the background
    writer counts), set-up seconds, and the run id when traced."""
    pl.seed_everything(0, verbose=False)
    texts = list(mixture.train["text"])
    encoder, tokenizer = build_tiny(texts, max_length=64, seed=0)
    module = MultiTaskClassifier(encoder, [len(n) for n in mixture.tasks.values()])
    data = MixtureDataModule(
        mixture, tokenizer, 64, 32, seed=0, eval_train=traced and capture == "eval_pass"
    )
    clock = TrainingClock()
    callbacks: list[pl.Callback] = [clock]
    if traced:
        callbacks.append(
            mixture_trace_callback(
                mixture,
                [split for split, _ in data.eval_keys],
                trace_train=capture == "train_pass",
                run_id=lambda: open_run(uri, experiment="bench", run_name="traced"),
                tracking_uri=uri,
            )
        )
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    take_parts()  # count this run's recorder time only
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    total = time.perf_counter() - start
    run_id = callbacks[1].run_id_resolved if traced else None
    examples = len(mixture.train) * epochs
    if traced:
        calls, background = take_parts()
        ATTRIBUTED.append((calls + background) / clock.seconds)
        PER_EPOCH_MS.append((1000 * calls / epochs, 1000 * background / epochs))
    return examples / clock.seconds, examples / clock.cpu_seconds, total - clock.seconds, run_id


def trace_bytes(uri: str, run_id: str, split: str) -> int:
    client = MlflowClient(uri)
    return sum(a.file_size for a in client.list_artifacts(run_id, f"traces/{split}"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--examples", type=int, default=1000, help="training examples per member (longer epochs)"
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--capture", default="train_pass", choices=("train_pass", "eval_pass"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    install()
    folder = Path(tempfile.mkdtemp(prefix="soi-bench-"))
    uri = f"sqlite:///{folder}/mlflow.db"
    os.chdir(folder)
    suite = "builtin"
    if args.examples > BUILTIN_TRAIN:
        suite = str(folder / "suite.yaml")
        Path(suite).write_text(f"builtin: {{sizes: {{train: {args.examples}}}}}\n")
    mixture = Mixture(
        MixtureSpec(suite, "source", MEMBERS, max_examples=args.examples, eval_max_examples=200)
    )
    one_run(mixture, 1, traced=True, uri=uri, capture=args.capture)  # warm-up: caches, store
    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    setup: dict[bool, list[float]] = {True: [], False: []}
    run_id = None
    for r in range(args.repeats):  # one pair each, the order alternating
        for traced in (True, False) if r % 2 == 0 else (False, True):
            rate, cpu_rate, fixed, rid = one_run(mixture, args.epochs, traced, uri, args.capture)
            wall[traced].append(rate)
            cpu[traced].append(cpu_rate)
            setup[traced].append(fixed)
            run_id = rid or run_id
    for label, rates in (("wall", wall), ("CPU", cpu)):
        ratios = [a / b for a, b in zip(rates[True], rates[False], strict=True)]
        print(
            f"{label} throughput ratio with/without, median of {len(ratios)} pairs: "
            f"{statistics.median(ratios):.4f} (overhead "
            f"{100 * (1 - statistics.median(ratios)):+.2f} %); pairs: "
            f"{', '.join(f'{x:.3f}' for x in ratios)}"
        )
    n = len(mixture.train)
    train_bytes = trace_bytes(uri, run_id, "train") / (n * args.epochs)
    eval_rows = sum(len(ds) for ds in mixture.eval_sets().values())
    eval_bytes = sum(trace_bytes(uri, run_id, s) for s in ("validation", "test")) / (
        eval_rows * args.epochs
    )
    print(
        f"tiny encoder, {len(MEMBERS)} members, {n} training examples an epoch, {args.epochs} "
        f"epochs, {args.repeats} repeats each, capture={args.capture}"
    )
    for label, rates in (("per wall second", wall), ("per CPU second", cpu)):
        a, b = statistics.median(rates[True]), statistics.median(rates[False])
        print(
            f"examples {label}: without callback {b:7.1f}, with {a:7.1f}; ratio {a / b:.3f} "
            f"(overhead {100 * (1 - a / b):+.1f} %)"
        )
        print(
            f"  runs without: {', '.join(f'{x:.0f}' for x in rates[False])}; "
            f"with: {', '.join(f'{x:.0f}' for x in rates[True])}"
        )
    print(
        f"the callback's own time (hooks on the training thread + CPU of its writer thread): "
        f"{100 * statistics.median(ATTRIBUTED):.2f} % of training time (median; runs: "
        f"{', '.join(f'{100 * x:.2f}' for x in ATTRIBUTED)})"
    )
    calls_ms = statistics.median(c for c, _ in PER_EPOCH_MS)
    writer_ms = statistics.median(b for _, b in PER_EPOCH_MS)
    print(
        f"  per epoch (median): {calls_ms:.1f} ms on the training thread (add, end_epoch), "
        f"{writer_ms:.1f} ms of the writer thread's CPU; training "
        f"{1000 * len(mixture.train) / statistics.median(wall[True]):.0f} ms an epoch"
    )
    extra = statistics.median(setup[True]) - statistics.median(setup[False])
    print(
        f"one-off per run with the callback (open the run, example tables, inputs): {extra:.2f} s"
    )
    print(
        f"train trace: {train_bytes:.2f} bytes per example per epoch; "
        f"evaluation traces: {eval_bytes:.2f} bytes per example per epoch"
    )


if __name__ == "__main__":
    main()

"""What the analysis at the end of a training adds to it: train(), then the same analysis.

``train(analyze=True)`` runs :func:`analyze_after_training` once the run has ended, as a
separate last step; so each repeat trains with ``analyze=False`` (tiny encoder, built-in
suite, same seed) and then times that call on the run, in wall seconds and in the
process's CPU seconds (all threads; far less sensitive than wall time to other jobs on a
shared machine). Prints the medians side by side and their ratio, after a warm-up run
(imports, caches, the store). ``--evals`` sets the validation/test examples per member:
the held-out splits are analysed too.

    .venv/bin/python bench/analysis_after_training.py [--examples 1000] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from soi_mlflow.analysis.after_training import analyze_after_training
from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.training import TrainConfig, train

MEMBERS = ("books", "movies")


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def one_run(spec: MixtureSpec, epochs: int, uri: str) -> tuple[tuple[float, float], ...]:
    """(wall, CPU) seconds of ``train()`` without its analysis, of the analysis, and the
    analysed splits."""
    config = TrainConfig(
        spec,
        epochs=epochs,
        tracking_uri=uri,
        experiment="bench",
        progress=False,
        log_model=False,
        checkpoint_every=0,
        analyze=False,
    )
    w0, c0 = clocks()
    result = train(config)
    w1, c1 = clocks()
    outcome = analyze_after_training(result.run_id, uri, quiet=True)
    w2, c2 = clocks()
    return (w1 - w0, c1 - c0), (w2 - w1, c2 - c1), tuple(outcome.analysed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=1000, help="training examples in all")
    parser.add_argument("--evals", type=int, default=200, help="held-out examples per member")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    folder = Path(tempfile.mkdtemp(prefix="soi-bench-"))
    uri = f"sqlite:///{folder}/mlflow.db"
    os.chdir(folder)
    spec = MixtureSpec(
        "builtin",
        "source",
        MEMBERS,
        ood=(),
        max_examples=args.examples // len(MEMBERS),
        eval_max_examples=args.evals,
    )
    one_run(spec, 2, uri)  # warm-up
    runs = [one_run(spec, args.epochs, uri) for _ in range(args.repeats)]
    splits = runs[-1][2]
    print(
        f"tiny encoder, {'+'.join(MEMBERS)}: {args.examples} training examples, "
        f"{args.evals} held-out per member, {args.epochs} epochs, {args.repeats} repeats; "
        f"analysed: {', '.join(splits)}"
    )
    for k, label in ((0, "wall"), (1, "CPU")):
        training = statistics.median(r[0][k] for r in runs)
        analysis = statistics.median(r[1][k] for r in runs)
        print(
            f"{label} seconds: train() {training:6.2f}, its analysis {analysis:5.2f} "
            f"({analysis / max(len(splits), 1):.2f} per split); with / without "
            f"{(training + analysis) / training:.3f} (+{100 * analysis / training:.1f} %)"
        )
        print(f"  runs: {'; '.join(f'{r[0][k]:.2f} + {r[1][k]:.2f}' for r in runs)}")


if __name__ == "__main__":
    main()

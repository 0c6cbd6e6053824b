"""Cost of measuring lookahead task affinity: per measurement and as a share of training.

The same 3-task training with and without ``--affinity-every K`` (default K = 20),
alternating in one process after a warm-up run. Target: at most 10 % of training time
at the default K.

    .venv/bin/python bench/affinity_cost.py [--every 10] [--step optimizer] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

from soi_mlflow.callbacks.affinity import AFFINITY_STEPS, DEFAULT_EVERY
from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--every", type=int, default=DEFAULT_EVERY)
    parser.add_argument("--step", choices=AFFINITY_STEPS, default="gradient")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", type=int, default=1000, help="training examples per member")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.chdir(tempfile.mkdtemp(prefix="soi-bench-affinity-"))
    spec = MixtureSpec(
        "builtin",
        "task",
        ("sentiment", "paraphrase", "entailment"),
        max_examples=args.examples,
        eval_max_examples=100,
    )

    def run(every: int | None) -> tuple[float, object]:
        start = time.perf_counter()
        result = train(
            TrainConfig(
                spec,
                epochs=args.epochs,
                progress=False,
                affinity_every=every,
                affinity_step=args.step,
                tracking_uri="sqlite:///bench.db",
            )
        )
        return time.perf_counter() - start, result.affinity

    run(None)  # warm-up: token cache, store
    with_aff, without, per_measurement, share = [], [], [], []
    for r in range(args.repeats):
        for every in (args.every, None) if r % 2 == 0 else (None, args.every):
            seconds, aff = run(every)
            if every is None:
                without.append(seconds)
            else:
                with_aff.append(seconds)
                per_measurement.append(aff.seconds / aff.measurements)
                share.append(aff.seconds / seconds)
    a, b = statistics.median(with_aff), statistics.median(without)
    print(
        f"3 tasks x {args.examples} examples, {args.epochs} epochs, batch 32, tiny encoder, "
        f"every {args.every} steps, {args.step} step"
    )
    print(
        f"run time: without {b:.1f} s, with {a:.1f} s (median of {args.repeats}); ratio {a / b:.3f}"
    )
    print(
        f"cost per measurement: {1000 * statistics.median(per_measurement):.1f} ms "
        f"(3 lookahead steps, 4 forward passes)"
    )
    print(f"time inside the measurements: {100 * statistics.median(share):.1f} % of the run")


if __name__ == "__main__":
    main()

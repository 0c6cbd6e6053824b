"""A study's children fanned out: the local executor against Ray with 2 workers.

One transfer study (joint, 4 built-in source members: 4 runs alone and 6 pairs = 10
children) is run twice into a fresh SQLite store: ``--executor local`` (one child after
another in this process) and ``--executor ray`` on a local cluster of 2 CPUs (one CPU per
child, so 2 children at a time). Ray's start (``ray.init``) is timed apart and left out of
the Ray study's wall time; the workers' first imports (torch, Lightning) are in it.
Target: the Ray study at most 0.75x the local one.

    .venv/bin/python bench/study_fanout.py [--max-examples 400] [--epochs 3]
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from pathlib import Path

MEMBERS = ("books", "movies", "electronics", "restaurants")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-examples", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    import lightning.pytorch  # noqa: F401 - imported before timing, as a warm process has it
    import ray

    from soi_mlflow.data.mixture import MixtureSpec
    from soi_mlflow.studies import transfer
    from soi_mlflow.training import TrainConfig

    folder = Path(tempfile.mkdtemp(prefix="soi-fanout-"))
    base = TrainConfig(
        MixtureSpec("builtin", "source", MEMBERS, max_examples=args.max_examples,
                    eval_max_examples=100),
        epochs=args.epochs,
        batch_size=16,
        progress=False,
        log_model=False,
        analyze=False,
        tracking_uri=f"sqlite:///{folder}/mlflow.db",
    )  # fmt: skip
    seconds = {}
    start = time.perf_counter()
    local = transfer.run(base, transfer.TransferSettings())
    seconds["local"] = time.perf_counter() - start
    handler = signal.getsignal(signal.SIGTERM)
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    seconds["ray.init"] = time.perf_counter() - start
    signal.signal(signal.SIGTERM, handler)
    try:
        start = time.perf_counter()
        on_ray = transfer.run(base, transfer.TransferSettings(executor="ray"))
        seconds["ray"] = time.perf_counter() - start
    finally:
        ray.shutdown()
    assert local.trained == on_ray.trained == 10
    same = bool((local.mean.fillna(0) == on_ray.mean.fillna(0)).all().all())
    print()
    print(f"transfer study, {len(MEMBERS)} members joint: 10 children of "
          f"{args.max_examples} examples/member x {args.epochs} epochs")  # fmt: skip
    print(f"{'executor':<28}{'wall s':>10}{'vs local':>10}")
    print(f"{'local (in process)':<28}{seconds['local']:>10.1f}{1.0:>10.2f}")
    ratio = seconds["ray"] / seconds["local"]
    print(f"{'ray, 2 workers':<28}{seconds['ray']:>10.1f}{ratio:>10.2f}")
    print(f"{'(ray.init, left out)':<28}{seconds['ray.init']:>10.1f}")
    print(f"same transfer matrix: {same}; target <= 0.75x: {'met' if ratio <= 0.75 else 'MISSED'}")


if __name__ == "__main__":
    main()

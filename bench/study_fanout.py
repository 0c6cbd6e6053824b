"""A study's children fanned out: the local executor against Ray with 2 workers.

One transfer study (joint, 4 built-in source members: 4 runs alone and 6 pairs = 10
children) is run twice into a fresh SQLite store: ``--executor local`` (one child after
another in this process) and ``--executor ray`` on a local cluster of 2 CPUs (one CPU per
child, so 2 children at a time). Ray's start is timed apart and left out of the Ray
study's wall time: ``ray.init`` and each worker's first import of torch, Lightning and
soi-mlflow's trainer, which this process has already done before the local study is timed
(both are shown). Target: the Ray study at most 0.75x the local one.

    .venv/bin/python bench/study_fanout.py [--max-examples 400] [--epochs 3]
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from pathlib import Path

MEMBERS = ("books", "movies", "electronics", "restaurants")


def warm() -> None:
    """A worker's first imports, as the driver's process has them before timing."""
    import time as clock

    import lightning.pytorch  # noqa: F401

    import soi_mlflow.training.run  # noqa: F401

    clock.sleep(0.5)  # hold this worker, so the other warm-up lands on the other one


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-examples", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    import lightning.pytorch  # noqa: F401 - imported before timing, as a warm process has it
    import ray

    global warm
    warm = ray.remote(warm)

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
        ray.get([warm.options(num_cpus=1).remote() for _ in range(2)])  # one per worker
        seconds["imports"] = time.perf_counter() - start
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
    print(f"{'(workers first imports, out)':<28}{seconds['imports']:>10.1f}")
    print(f"same transfer matrix: {same}; target <= 0.75x: {'met' if ratio <= 0.75 else 'MISSED'}")


if __name__ == "__main__":
    main()

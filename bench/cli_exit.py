"""How long a ``soi-mlflow`` process takes to exit once its command is done, with the
console script's exit (``soi_mlflow.cli.main.script``: ``gc.freeze`` before the
interpreter's last collections) against a plain ``sys.exit(main())``, in alternating
pairs of one tiny ``train`` each (24 examples, 1 epoch) on a fresh SQLite store (on
/dev/shm when it exists). Prints, per variant, the median wall seconds from the last exit
handler to the process's end and the median CPU seconds of the whole process, and their
ratios.

    .venv/bin/python bench/cli_exit.py [--pairs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

# Each child prints the time of its last exit handler: registered first, so it runs last.
PRELUDE = (
    "import atexit, sys, time\n"
    "atexit.register(lambda: print('EXITING', time.time(), file=sys.stderr, flush=True))\n"
)
VARIANTS = {
    "plain sys.exit(main())": PRELUDE
    + "from soi_mlflow.cli.main import main\nsys.exit(main(sys.argv[1:]))\n",
    "soi-mlflow's script()": PRELUDE
    + "from soi_mlflow.cli.main import script\nsys.argv[0] = 'soi-mlflow'\nscript()\n",
}
ARGS = ["train", "--members", "books", "--ood", "", "--epochs", "1", "--max-examples", "24",
        "--eval-max-examples", "16", "--progress", "false", "--log-model", "false"]  # fmt: skip


def one_run(code: str, folder: str, k: int) -> tuple[float, float]:
    """(seconds from the last exit handler to the end, CPU seconds) of one child."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow-{k}.db"}
    env["OMP_NUM_THREADS"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-c", code, *ARGS],
        capture_output=True, text=True, env=env, cwd=folder, check=False,
    )  # fmt: skip
    ended = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"the child failed: {out.stderr[-2000:]}")
    exiting = float(out.stderr.split("EXITING")[-1].split()[0])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ended - exiting, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="alternating pairs of runs")
    args = parser.parse_args()
    root = "/dev/shm" if os.path.isdir("/dev/shm") else None
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="soi-cli-exit-", dir=root) as folder:
        k = 0
        for pair in range(args.pairs):
            order = list(VARIANTS) if pair % 2 == 0 else list(reversed(VARIANTS))
            for name in order:
                found[name].append(one_run(VARIANTS[name], folder, k))
                k += 1
            print(f"pair {pair + 1}/{args.pairs} done", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}; medians of {args.pairs} runs each")
    medians = {}
    for name, rows in found.items():
        exit_s = statistics.median(r[0] for r in rows)
        cpu_s = statistics.median(r[1] for r in rows)
        medians[name] = (exit_s, cpu_s)
        print(f"{name:24} exit {exit_s:6.2f} s   process CPU {cpu_s:6.2f} s")
    (plain_exit, plain_cpu), (fast_exit, fast_cpu) = medians.values()
    print(f"script() / plain: exit {fast_exit / plain_exit:.2f}x, CPU {fast_cpu / plain_cpu:.2f}x")


if __name__ == "__main__":
    main()

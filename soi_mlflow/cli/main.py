"""The ``soi-mlflow`` command: the ``COMMANDS`` table, ``--help`` and ``main``.

The commands live beside it by kind: ``runs`` (preview, train, sync), ``studies``
(several runs under one parent, the demo among them), ``analyze`` (runs already in
MLflow); ``show`` prints study tables and comparisons. Adding a command takes three
things:

1. a settings dataclass whose fields (type, default, docstring line or
   ``field(metadata={"help": ...})``) are its options, beside the code it configures;
2. a function in the ``cli`` module of its kind (``runs``, ``studies``, ``analyze``, or a
   new one) that takes one instance of each settings class, in order;
3. one line in ``COMMANDS`` here: name, summary, function, the settings classes, and two
   examples for its ``--help``; then ``make mlproject`` adds its entry point. A settings
   class whose module loads a heavy library (torch, Lightning, transformers, datasets) at
   import is named as a ``"module:Class"`` string instead, imported only when its command
   runs, so that ``soi-mlflow --help`` stays fast (``tests/test_layers.py`` checks that
   each string names such a module).

``TrainConfig`` brings every training and data option (``MixtureSpec`` is flattened
into it). From the same declaration come the flags (``--max-examples``), the keys of
``--config FILE.yaml``, ``--print-config``, the MLproject parameters (regenerate with
``make mlproject``; ``tests/test_cli_config.py`` checks them) and the ``config.yaml``
every training run logs. Print through ``soi_mlflow.common.console``: ``step(k, n, what)`` for
each unit of long work, ``print_table``/``print_frame`` for results (under 100 columns),
``print_links`` for run ids and the UI command.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence

from soi_mlflow.cli.analyze import AnalyzeSettings, analyze
from soi_mlflow.cli.options import Command, parse, resolved_yaml, version
from soi_mlflow.cli.recommend import ALIASES, recommend
from soi_mlflow.cli.runs import PreviewSettings, preview, sync, train
from soi_mlflow.cli.studies import (
    DemoSettings,
    compare,
    demo,
    learning_curve,
    noise_benchmark,
    transfer,
    two_stage,
    views,
)
from soi_mlflow.common import console
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.sync_settings import SyncSettings

# The settings below are named, not imported: their modules load datasets (through
# data/mixture.py, which TrainConfig and every study's settings build on) when imported.
TRAIN = "soi_mlflow.training:TrainConfig"
MIXTURE = "soi_mlflow.data.mixture:MixtureSpec"

# -- the registry ------------------------------------------------------------------------

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("preview", "show a mixture's data: sizes, labels, planted kinds", preview,
                (MIXTURE, PreviewSettings),
                ("soi-mlflow preview --axis task --max-examples 200",
                 "soi-mlflow preview --config my-mixture.yaml --examples 0")),
        Command("train", "train one model (one member or a mixture) with per-example traces",
                train, (TRAIN,),
                ("soi-mlflow train --members books,movies --ood restaurants --epochs 3",
                 "soi-mlflow train --config config.yaml   # repeat a run from its config.yaml")),
        Command("compare", "each member alone vs all together, analysed in MLflow", compare,
                (TRAIN, "soi_mlflow.studies.single_vs_multi:SingleVsMultiSettings"),
                ("soi-mlflow compare --axis task --members sentiment,paraphrase,entailment",
                 "soi-mlflow compare --members books,movies --seeds 3 --epochs 5")),
        Command("analyze", "SOI, data maps and comparisons of runs already in MLflow",
                analyze, (AnalyzeSettings,),
                ("soi-mlflow analyze --run-id RUN_ID --split train,ood",
                 "soi-mlflow analyze --parent-run-id PARENT_ID --aggregate pairs")),
        Command("demo", "the built-in source-axis comparison, end to end (about 2 minutes)",
                demo, (DemoSettings,),
                ("soi-mlflow demo",
                 "soi-mlflow demo --epochs 3 --seeds 1 --tracking-uri sqlite:///demo.db")),
        Command("two-stage", "stage 2 on SOI-selected examples, with a random control",
                two_stage, (TRAIN, "soi_mlflow.studies.two_stage:TwoStageSettings"),
                ("soi-mlflow two-stage --members books,movies --seeds 3 "
                 "--stage2 forgettable,never_learned --stage2 region:hard_to_learn",
                 "soi-mlflow two-stage --stage1-run-id RUN_ID --stage2-top variability:0.3")),
        Command("transfer", "transfer matrix between members, with its latent traits",
                transfer, (TRAIN, "soi_mlflow.studies.transfer:TransferSettings"),
                ("soi-mlflow transfer --axis task --members sentiment,paraphrase,entailment",
                 "soi-mlflow transfer --axis task --mode sequential --seeds 2 --reuse true")),
        Command("noise-benchmark", "score label-noise detectors against planted noise",
                noise_benchmark,
                ("soi_mlflow.studies.noise_benchmark:NoiseBenchmarkSettings",),
                ("soi-mlflow noise-benchmark --seeds 1 --cl-folds 0 --epochs 4",
                 "soi-mlflow noise-benchmark --noise uniform --mislabeled-rate 0.1 --seeds 3")),
        Command("learning-curve", "target alone vs with auxiliary members, by training size",
                learning_curve, (TRAIN, "soi_mlflow.studies.learning_curve:CurveSettings"),
                ("soi-mlflow learning-curve --axis task --target entailment --aux sentiment",
                 "soi-mlflow learning-curve --config curve.yaml --sizes 50,100,200 --approx true")),
        Command("views", "transfer matrix, affinity and learning curves compared on one set-up",
                views, (TRAIN, "soi_mlflow.studies.views:ViewsSettings"),
                ("soi-mlflow views   # the built-in suite's task axis: its three members",
                 "soi-mlflow views --axis task --members sentiment,paraphrase,entailment "
                 "--seeds 2 --sizes 50,150"),
                default_axis="task"),
        Command("recommend", "auxiliary members for a target, ranked from transfer studies",
                recommend, ("soi_mlflow.studies.recommend:RecommendSettings",),
                ("soi-mlflow recommend --target entailment --from PARENT_RUN_ID",
                 "soi-mlflow recommend --target books --from ID1,ID2 --verify 1 --seeds 3"),
                aliases=ALIASES),
        Command("sync", "send the spooled traces and metrics of runs a server outage left "
                "incomplete", sync, (SyncSettings,),
                ("soi-mlflow sync", "soi-mlflow sync --run-id RUN_ID --tracking-uri URI")),
    )
}  # fmt: skip
START_WITH = (
    ("soi-mlflow demo", "run the main job: a whole study on the built-in suite"),
    ("soi-mlflow preview", "look at a mixture's data before training on it"),
    ("soi-mlflow train --help", "the options of one training run"),
)


def overview() -> str:
    """``soi-mlflow --help``: every command in one line, and where to start."""
    width = max(len(name) for name in COMMANDS) + 2
    lines = [
        "usage: soi-mlflow [--version] COMMAND [--config FILE.yaml] [options]",
        "",
        "Subsets of Interest for multi-task, multi-source and multi-lingual fine-tuning,",
        "tracked in MLflow.",
        "",
        "Start with:",
        *(f"  {cmd:<26}{what}" for cmd, what in START_WITH),
        "",
        "Commands:",
        *(f"  {c.name:<{width}}{c.summary}" for c in COMMANDS.values()),
        "",
        "Every command takes --config FILE.yaml (any of its options; flags win), --print-config",
        "(the resolved options as YAML) and --verbose (the libraries' own messages too).",
        "soi-mlflow COMMAND --help lists its options and two examples.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help", "--version"):
        try:
            print(overview() if argv[:1] != ["--version"] else f"soi-mlflow {version()}")
        except BrokenPipeError:  # `soi-mlflow --help | head`: the reader has gone
            return _reader_gone()
        return 0
    if argv[0] == "--verbose":  # `soi-mlflow --verbose COMMAND ...`
        argv = [*argv[1:2], "--verbose", *argv[2:]]
    command = COMMANDS.get(argv[0])
    if command is None:
        print(
            f"soi-mlflow: error: unknown command {argv[0]!r}; commands are: "
            + ", ".join(COMMANDS)
            + " (soi-mlflow --help)",
            file=sys.stderr,
        )
        return 2
    try:
        console.quiet(verbose="--verbose" in argv)
        # deferred (not heavy): urllib and http, kept out of soi-mlflow --help
        from soi_mlflow.tracking.health import bound_http_retries

        bound_http_retries()  # this process only: the library leaves os.environ alone
        instances, namespace = parse(command, argv[1:])
        if namespace.print_config:
            print(resolved_yaml(instances), end="")
            return 0
        command.run(*instances)
        return 0
    except (SoiInputError, argparse.ArgumentError) as exc:
        print(f"soi-mlflow {command.name}: error: {exc}", file=sys.stderr)
        print(f"(soi-mlflow {command.name} --help lists the options)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soi-mlflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `soi-mlflow ... | head`: the reader has gone
        return _reader_gone()


def script() -> None:
    """The ``soi-mlflow`` process (its console script and ``python -m soi_mlflow.cli``):
    :func:`main`, then the process's exit without the interpreter's last full garbage
    collections. With torch, Lightning, transformers and MLflow loaded those walk about
    half a million objects several times: 2-5 s of CPU after the work is done, measured by
    ``bench/cli_exit.py``. ``gc.freeze`` leaves them out; exit handlers (MLflow's, logging's,
    temporary folders') still run, and objects still go as their last reference does. Only
    here, never in :func:`main`, which a Python caller's process keeps running."""
    try:
        code = main()
    finally:
        gc.freeze()
    raise SystemExit(code)


def _reader_gone() -> int:
    """Stdout's reader has gone: send what Python still flushes at exit nowhere, so no
    second BrokenPipeError is printed."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1


if __name__ == "__main__":
    script()

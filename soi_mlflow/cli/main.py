"""The ``soi-mlflow`` command.

Adding a command takes three things:

1. a settings dataclass whose fields (type, default, docstring line or
   ``field(metadata={"help": ...})``) are its options, beside the code it configures;
2. a function here that takes one instance of each settings class, in order;
3. one line in ``COMMANDS``: name, summary, function, the settings as "module:Class"
   strings (imported only when that command runs, so ``soi-mlflow --help`` stays fast),
   and two examples for its ``--help``; then ``make mlproject`` adds its entry point.

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
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from soi_mlflow.cli.options import Command, parse, resolved_yaml, version
from soi_mlflow.common import console
from soi_mlflow.errors import SoiInputError

TRAIN = "soi_mlflow.training:TrainConfig"
MIXTURE = "soi_mlflow.data.mixture:MixtureSpec"


@dataclass
class PreviewSettings:
    """What the preview shows."""

    examples: int = 2
    """examples shown per member"""


@dataclass
class AnalyzeSettings:
    """Which runs to analyse and how."""

    run_id: str | None = None
    """analyse one run"""
    parent_run_id: str | None = None
    """re-analyse a study from its parent run (any kind, by its soi.study tag)"""
    compare: tuple[str, ...] = ()
    """two runs, RUN_A,RUN_B: SOI transitions A -> B and both data maps (any traced runs)"""
    into: Literal["new", "b"] = "new"
    """where --compare logs: a new comparison run, or run B"""
    split: tuple[str, ...] = ("train",)
    """splits to analyse: train, validation, test, ood, or a run's own split names"""
    taxonomy: str = "default"
    """a registered SOI taxonomy"""
    aggregate: Literal["majority", "pairs"] = "majority"
    """how seeds combine in transitions"""
    tracking_uri: str | None = None
    """MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"""


@dataclass
class DemoSettings:
    """The demo: the source-axis comparison of the built-in suite with the tiny encoder."""

    epochs: int = 5
    """training epochs"""
    seeds: int = 2
    """seeds per setting"""
    experiment: str = "soi-demo"
    """MLflow experiment name"""
    tracking_uri: str | None = None
    """MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"""


# -- the commands ------------------------------------------------------------------------


def _for_cli(config: Any) -> Any:
    """Command-line conveniences on a TrainConfig: DDP when several devices are asked for."""
    if config.devices > 1 and config.strategy == "auto":
        return replace(config, strategy="ddp")
    return config


def _log_study_config(command: str, run_id: str, config: Any, settings: Any) -> None:
    """Log the study's resolved options to its parent run, as each training run does."""
    from mlflow import MlflowClient

    from soi_mlflow.tracking.run import resolve_tracking_uri
    from soi_mlflow.training.settings_io import CONFIG_ARTIFACT

    header = "The resolved options of this study. Repeat it with:\n"
    header += f"  soi-mlflow {command} --config config.yaml"
    text = resolved_yaml([config, settings], header)
    MlflowClient(resolve_tracking_uri(config.tracking_uri)).log_text(run_id, text, CONFIG_ARTIFACT)


def _sync(settings: Any) -> None:
    from soi_mlflow.tracking.sync import sync

    sync(settings)


def _preview(spec: Any, settings: PreviewSettings) -> None:
    from soi_mlflow.data.mixture import validate_mixture
    from soi_mlflow.data.preview import print_preview

    validate_mixture(spec)
    print_preview(spec, examples=settings.examples)


def _train(config: Any) -> None:
    from soi_mlflow.training import train, validate_config

    config = _for_cli(config)
    validate_config(config)
    result = train(config)
    if result.run_id is not None:
        console.print_accuracy(result.metrics, "accuracy after the last epoch")
        for line in result.analysis.lines() if result.analysis else ():
            print(line)
        console.print_links([("run id", result.run_id)], result.ui_command)


def _compare(config: Any, settings: Any) -> None:
    from soi_mlflow.studies.compare import run_compare, validate_compare

    config = _for_cli(config)
    validate_compare(config, settings.seeds)
    result = run_compare(config, seeds=settings.seeds)
    _log_study_config("compare", result.parent_run_id, config, settings)
    _print_comparison(result.summary)
    runs = [("parent run id", result.parent_run_id)]
    multi = "+".join(config.mixture.members)
    runs += [(f"multi {multi} seed {config.seed + s}", r) for s, r in enumerate(result.multi)]
    runs += [
        (f"single {m} seed {config.seed + s}", r)
        for m, ids in result.single.items()
        for s, r in enumerate(ids)
    ]
    console.print_links(runs, result.ui_command)


def _print_comparison(summary: Any) -> None:
    from soi_mlflow.studies.compare import summary_rows

    columns, rows = summary_rows(summary)
    console.print_table(
        rows,
        columns,
        "single vs multi: test accuracy (ID, OOD) and SOI fractions of the training set",
    )


def _analyze(settings: AnalyzeSettings) -> None:
    from soi_mlflow.analysis.report import analyze_run, compare
    from soi_mlflow.analysis.runs import cache_for
    from soi_mlflow.tracking.health import check_run_id, get_run

    if sum(map(bool, (settings.run_id, settings.parent_run_id, settings.compare))) != 1:
        raise SoiInputError(
            "give exactly one of --run-id, --parent-run-id or --compare (in a --config "
            "file: run_id, parent_run_id or compare)"
        )
    for flag, given in (
        ("--run-id", settings.run_id),
        ("--parent-run-id", settings.parent_run_id),
        *(("--compare", r) for r in settings.compare),
    ):
        if given is not None:
            check_run_id(given, flag)  # before any store is opened or line printed
    splits = list(settings.split) or ["train"]
    uri = settings.tracking_uri
    if settings.compare:
        _compare_two(settings, splits[0])
        return
    if settings.run_id:
        # an unknown run is named by its option, before any step line is printed
        cache = cache_for(uri)
        get_run(cache.client, settings.run_id, cache.tracking_uri, "--run-id")
        tables = {}
        for k, split in enumerate(splits, 1):
            console.step(k, len(splits), f"analysing the {split} split of run {settings.run_id}")
            tables |= analyze_run(settings.run_id, [split], settings.taxonomy, uri)
        from soi_mlflow.analysis.report import coverage_table

        for split, table in tables.items():
            fractions = (
                table.groupby("member", observed=True)["soi"].value_counts(normalize=True).unstack()
            )
            console.print_frame(fractions, f"{split}: SOI fractions of {len(table)} examples")
            console.print_frame(
                coverage_table(table),
                f"{split}: coverage (examples observed in at least "
                f"{table.attrs.get('min_observed', 2)} epochs)",
            )
        return
    cache = cache_for(uri)
    parent = get_run(cache.client, settings.parent_run_id, cache.tracking_uri, "--parent-run-id")
    from soi_mlflow.studies.reanalyze import reanalyze, study_kind

    study = study_kind(parent)  # every kind, by the parent's soi.study tag
    print(f"re-analysing the {study} study of run {settings.parent_run_id} ({parent.info.status})")
    if study != "compare":
        result = reanalyze(settings.parent_run_id, uri)
        for title, table in result.tables.items():
            _print_study_table(table, title)
        return
    from soi_mlflow.studies.children import comparison_of

    comparison = comparison_of(settings.parent_run_id, uri)
    run_ids = [*comparison.multi, *(r for runs in comparison.single.values() for r in runs)]
    for k, run_id in enumerate(run_ids, 1):
        console.step(k, len(run_ids), f"analysing run {run_id}")
        analyze_run(run_id, splits, settings.taxonomy, uri)
    print("comparing single and multi runs (transitions, figures)", flush=True)
    summary = compare(
        settings.parent_run_id, comparison, splits[0], settings.taxonomy, settings.aggregate, uri
    )
    _print_comparison(summary)


def _compare_two(settings: AnalyzeSettings, split: str) -> None:
    from soi_mlflow.analysis.two_runs import compare_runs

    if len(settings.compare) != 2:
        raise SoiInputError(f"--compare: expected two run ids RUN_A,RUN_B, got {settings.compare}")
    result = compare_runs(
        *settings.compare,
        split,
        into=settings.into,
        taxonomy=settings.taxonomy,
        tracking_uri=settings.tracking_uri,
    )
    console.print_frame(result.counts, f"SOI transitions ({result.coverage['matched']} matched)")
    print(f"logged to run {result.run_id}")


def _demo(settings: DemoSettings) -> None:
    from soi_mlflow.data.mixture import MixtureSpec
    from soi_mlflow.studies.compare import CompareSettings
    from soi_mlflow.training import TrainConfig

    config = TrainConfig(
        MixtureSpec("builtin", "source", ("books", "movies", "electronics"), ("restaurants",)),
        epochs=settings.epochs,
        experiment=settings.experiment,
        tracking_uri=settings.tracking_uri,
    )
    print(
        "demo: books, movies, electronics alone and together; "
        f"{settings.epochs} epochs, {settings.seeds} seed(s); restaurants held out (OOD)"
    )
    _compare(config, CompareSettings(seeds=settings.seeds))


def _two_stage(config: Any, settings: Any) -> None:
    from soi_mlflow.studies.two_stage import run_two_stage

    config = _for_cli(config)
    result = run_two_stage(
        config, settings.selection(), settings.stage2_epochs, settings.stage1_run_id,
        settings.stage1_model,
    )
    _log_study_config("two-stage", result.parent_run_id, config, settings)
    console.print_frame(
        result.table,
        f"accuracy (test = ID, ood = OOD); stage 2 trained on {result.selected} selected examples",
    )
    runs = [
        ("parent run id", result.parent_run_id),
        ("stage 1", result.stage1_run_id),
        ("stage 2", result.stage2_run_id),
        ("control", result.control_run_id),
    ]
    console.print_links(runs, result.ui_command)


def _transfer(config: Any, settings: Any) -> None:
    from soi_mlflow.studies.transfer import run_transfer

    config = _for_cli(config)
    result = run_transfer(config, settings.mode, settings.seeds, reuse=settings.reuse)
    _log_study_config("transfer", result.parent_run_id, config, settings)
    console.print_frame(
        result.mean,
        f"transfer matrix ({settings.mode}; rows: sources, columns: targets; mean over "
        f"{settings.seeds} seed(s))",
        caption=f"trained {result.trained} runs, reused {result.reused}",
    )
    console.print_links([("parent run id", result.parent_run_id)], result.ui_command)


def _learning_curve(config: Any, settings: Any) -> None:
    from soi_mlflow.studies.learning_curve import learning_curve

    config = _for_cli(config)
    result = learning_curve(config, settings)
    _log_study_config("learning-curve", result.parent_run_id, config, settings)
    fits = _on_screen(result.fits, ["curve", "aux_size", "form", "c", "a", "b", "aic"])
    console.print_frame(
        fits.set_index(fits.columns[0]), "fits (intervals: tables/learning_curve_fits)", digits=4
    )
    worth = _on_screen(result.worth)
    console.print_frame(
        worth.set_index(worth.columns[0]), "what the auxiliary data is worth, in target examples"
    )
    for name, title in (
        ("learning_curve_worth_over_sizes", "worth per auxiliary set: median over sizes, "
         "interval over seeds"),
        ("learning_curve_interaction_over_sizes", "interaction: all together minus the sum "
         "of the pairs"),
        ("learning_curve_contextual", "contextual fit"),
    ):
        table = result.tables.get(name)
        if table is not None and len(table):
            _print_study_table(table, title)
    passes = result.compute.get("compute/example_passes")
    seconds = result.compute.get("compute/wall_seconds")
    if passes is not None and seconds is not None:
        print(f"compute: {int(passes):,} training example-passes, {seconds:.0f} s")
    console.print_links([("parent run id", result.parent_run_id)], result.ui_command)


def _on_screen(table: Any, columns: list[str] | None = None) -> Any:
    """A study table as the terminal shows it: what is not identified was printed in full
    above the tables, so the ``problem`` column is left out here (blank cells mark those
    rows); the logged table keeps it. ``columns`` picks the ones that fit 100 columns."""
    shown = table.drop(columns=[c for c in ("problem",) if c in table.columns])
    if columns is not None:
        shown = shown[[c for c in columns if c in shown.columns]]
    return shown


def _print_study_table(table: Any, title: str) -> None:
    """One line for a table with nothing identified in it, else the table on screen."""
    if "problem" in table.columns and table["problem"].notna().all():
        print(f"{title}: not identified in any row (the reasons are above)")
    else:
        console.print_frame(_on_screen(table), title, digits=4)


def _views(config: Any, settings: Any) -> None:
    from soi_mlflow.studies.views import run_views

    config = _for_cli(config)
    result = run_views(config, settings)
    _log_study_config("views", result.parent_run_id, config, settings)
    console.print_frame(
        _on_screen(result.significance), "each view's transfers, with intervals over seeds",
        digits=3,
    )
    console.print_frame(
        _on_screen(result.agreement), "rank agreement between the views (Spearman)", digits=3
    )
    console.print_frame(result.compute, "compute per view", digits=4)
    console.print_links([("parent run id", result.parent_run_id)], result.ui_command)


def _noise_benchmark(settings: Any) -> None:
    from soi_mlflow.studies.noise_benchmark import run_noise_benchmark, summary_rows

    result = run_noise_benchmark(settings)
    summary = result.summary
    columns, rows = summary_rows(summary)
    console.print_table(
        rows,
        columns,
        f"label-noise detection over {settings.seeds} seed(s): mean ± std",
        caption=f"noise share {summary['base_rate'].iloc[0]:.3f}: the AP of a random order",
    )
    console.print_links([("parent run id", result.parent_run_id)], result.ui_command)


# -- the registry ------------------------------------------------------------------------

_HERE = __name__
COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("preview", "show a mixture's data: sizes, labels, planted kinds", _preview,
                (MIXTURE, f"{_HERE}:PreviewSettings"),
                ("soi-mlflow preview --axis task --max-examples 200",
                 "soi-mlflow preview --config my-mixture.yaml --examples 0")),
        Command("train", "train one model (one member or a mixture) with per-example traces",
                _train, (TRAIN,),
                ("soi-mlflow train --members books,movies --ood restaurants --epochs 3",
                 "soi-mlflow train --config config.yaml   # repeat a run from its config.yaml")),
        Command("compare", "each member alone vs all together, analysed in MLflow", _compare,
                (TRAIN, "soi_mlflow.studies.compare:CompareSettings"),
                ("soi-mlflow compare --axis task --members sentiment,paraphrase,entailment",
                 "soi-mlflow compare --members books,movies --seeds 3 --epochs 5")),
        Command("analyze", "SOI, data maps and comparisons of runs already in MLflow", _analyze,
                (f"{_HERE}:AnalyzeSettings",),
                ("soi-mlflow analyze --run-id RUN_ID --split train,ood",
                 "soi-mlflow analyze --parent-run-id PARENT_ID --aggregate pairs")),
        Command("demo", "the built-in source-axis comparison, end to end (about 2 minutes)",
                _demo, (f"{_HERE}:DemoSettings",),
                ("soi-mlflow demo",
                 "soi-mlflow demo --epochs 3 --seeds 1 --tracking-uri sqlite:///demo.db")),
        Command("two-stage", "stage 2 on SOI-selected examples, with a random control",
                _two_stage, (TRAIN, "soi_mlflow.studies.two_stage:TwoStageSettings"),
                ("soi-mlflow two-stage --members books,movies "
                 "--stage2-subsets forgettable,never_learned",
                 "soi-mlflow two-stage --stage1-run-id RUN_ID --stage2-top variability:0.3")),
        Command("transfer", "transfer matrix between members, with its latent traits",
                _transfer, (TRAIN, "soi_mlflow.studies.transfer:TransferSettings"),
                ("soi-mlflow transfer --axis task --members sentiment,paraphrase,entailment",
                 "soi-mlflow transfer --axis task --mode sequential --seeds 2 --reuse true")),
        Command("noise-benchmark", "score label-noise detectors against planted noise",
                _noise_benchmark, ("soi_mlflow.studies.noise_benchmark:NoiseBenchmarkSettings",),
                ("soi-mlflow noise-benchmark --seeds 1 --cl-folds 0 --epochs 4",
                 "soi-mlflow noise-benchmark --noise uniform --mislabeled-rate 0.1 --seeds 3")),
        Command("learning-curve", "target alone vs with auxiliary members, by training size",
                _learning_curve, (TRAIN, "soi_mlflow.studies.learning_curve:CurveSettings"),
                ("soi-mlflow learning-curve --axis task --target entailment --aux sentiment",
                 "soi-mlflow learning-curve --config curve.yaml --sizes 50,100,200 --approx true")),
        Command("views", "transfer matrix, affinity and learning curves compared on one set-up",
                _views, (TRAIN, "soi_mlflow.studies.views:ViewsSettings"),
                ("soi-mlflow views --axis task --members sentiment,paraphrase,entailment",
                 "soi-mlflow views --members sentiment,paraphrase,entailment --seeds 2 "
                 "--sizes 50,150")),
        Command("sync", "send the spooled traces and metrics of runs a server outage left "
                "incomplete", _sync, ("soi_mlflow.tracking.sync:SyncSettings",),
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
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(overview())
        return 0
    if argv[0] == "--version":
        print(f"soi-mlflow {version()}")
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
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

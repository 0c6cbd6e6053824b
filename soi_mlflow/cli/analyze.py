"""The ``analyze`` command: SOI, data maps and comparisons of runs already in MLflow."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from soi_mlflow.cli.show import print_comparison, print_study_table
from soi_mlflow.common import console
from soi_mlflow.common.executor import ExecutorSettings, check_executor
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.store import TRACKING_URI_HELP

if TYPE_CHECKING:
    from soi_mlflow.analysis.duck.engine import Engine


@dataclass
class AnalyzeSettings(ExecutorSettings):
    """Which runs to analyse and how (with --experiment, the runs go through --executor)."""

    run_id: str | None = None
    """analyse one run"""
    parent_run_id: str | None = None
    """re-analyse a study from its parent run (any kind, by its soi.study tag)"""
    experiment: str | None = None
    """analyse every run of this MLflow experiment that has traces (of each --split);
    default under `mlflow run`, when nothing else is given: the experiment of its run"""
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
    tracking_uri: str | None = field(default=None, metadata={"help": TRACKING_URI_HELP})
    engine: Literal["auto", "memory", "duckdb"] = "auto"
    """read traces in memory, or with DuckDB out of core; auto: DuckDB when a run's traces
    would take over half of --memory-limit in memory"""
    memory_limit: str | None = None
    """the analysing process's memory limit, such as 2GB or 512MiB, of which DuckDB's
    buffers get 40 % (default: a quarter of this machine's memory)"""
    spill_limit: str | None = None
    """the most DuckDB spills to its temporary folder, removed afterwards, such as 20GB
    (default: half the free disk there)"""


def analyze(settings: AnalyzeSettings) -> None:
    # deferred (not heavy): pandas and pyarrow, kept out of soi-mlflow --help
    from soi_mlflow.analysis.duck.engine import Engine

    # deferred (not heavy): urllib and http, kept out of soi-mlflow --help
    from soi_mlflow.tracking.health import check_run_id

    given = (settings.run_id, settings.parent_run_id, settings.compare, settings.experiment)
    if not any(given) and os.environ.get("MLFLOW_RUN_ID"):
        settings = replace(settings, experiment=_mlflow_run_experiment(settings))
    elif sum(map(bool, given)) != 1:
        raise SoiInputError(
            "give exactly one of --run-id, --parent-run-id, --compare or --experiment (in a "
            "--config file: run_id, parent_run_id, compare or experiment)"
        )
    engine = Engine.parse(settings.engine, settings.memory_limit, settings.spill_limit)
    check_executor(settings)
    for flag, given in (
        ("--run-id", settings.run_id),
        ("--parent-run-id", settings.parent_run_id),
        *(("--compare", r) for r in settings.compare),
    ):
        if given is not None:
            check_run_id(given, flag)  # before any store is opened or line printed
    splits = list(settings.split) or ["train"]
    if settings.compare:
        _compare_two(settings, splits[0])
    elif settings.run_id:
        _one_run(settings, splits, engine)
    elif settings.experiment:
        _experiment(settings, splits, engine)
    else:
        _study(settings, splits, engine)


def _mlflow_run_experiment(settings: AnalyzeSettings) -> str:
    """The name of the experiment of ``MLFLOW_RUN_ID``, the run ``mlflow run`` made for
    this analysis: what ``mlflow run . -e analyze`` analyses when given nothing else."""
    # deferred (not heavy): pandas and pyarrow, kept out of soi-mlflow --help
    from soi_mlflow.analysis.runs import cache_for

    # deferred (not heavy): urllib and http, kept out of soi-mlflow --help
    from soi_mlflow.tracking.health import get_run

    cache = cache_for(settings.tracking_uri)
    run = get_run(cache.client, os.environ["MLFLOW_RUN_ID"], cache.tracking_uri, "MLFLOW_RUN_ID")
    name = cache.client.get_experiment(run.info.experiment_id).name
    print(f"analysing every traced run of experiment {name} (the experiment of this mlflow run)")
    return name


def _one_run(settings: AnalyzeSettings, splits: list[str], engine: Engine) -> None:
    from soi_mlflow.analysis.report import analyze_run, coverage_table  # deferred: matplotlib

    # deferred (not heavy): pandas and pyarrow, kept out of soi-mlflow --help
    from soi_mlflow.analysis.runs import cache_for

    # deferred (not heavy): urllib and http, kept out of soi-mlflow --help
    from soi_mlflow.tracking.health import get_run

    uri = settings.tracking_uri
    # an unknown run is named by its option, before any step line is printed
    cache = cache_for(uri)
    get_run(cache.client, settings.run_id, cache.tracking_uri, "--run-id")
    tables = {}
    for k, split in enumerate(splits, 1):
        console.step(k, len(splits), f"analysing the {split} split of run {settings.run_id}")
        tables |= analyze_run(settings.run_id, [split], settings.taxonomy, uri, engine=engine)
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


def _study(settings: AnalyzeSettings, splits: list[str], engine: Engine) -> None:
    # deferred (not heavy): pandas and pyarrow, kept out of soi-mlflow --help
    from soi_mlflow.analysis.runs import cache_for

    # the studies import their trainings' libraries: only when a study is re-analysed
    # deferred: datasets, matplotlib
    from soi_mlflow.studies.reanalyze import ReanalysisOptions, reanalyze, study_kind

    # deferred (not heavy): urllib and http, kept out of soi-mlflow --help
    from soi_mlflow.tracking.health import get_run

    uri = settings.tracking_uri
    cache = cache_for(uri)
    parent = get_run(cache.client, settings.parent_run_id, cache.tracking_uri, "--parent-run-id")
    study = study_kind(parent)  # every kind, by the parent's soi.study tag
    print(f"re-analysing the {study} study of run {settings.parent_run_id} ({parent.info.status})")
    options = ReanalysisOptions(tuple(splits), settings.taxonomy, settings.aggregate, engine)
    result = reanalyze(settings.parent_run_id, uri, options)
    if result.study == "compare":  # the single-vs-multi summary, as the compare command shows it
        print_comparison(result.data["summary"])
    for title, table in result.tables.items():
        print_study_table(table, title)


def _experiment(settings: AnalyzeSettings, splits: list[str], engine: Engine) -> None:
    # deferred (not heavy): pandas and pyarrow, kept out of soi-mlflow --help
    from soi_mlflow.analysis.experiment import analyze_experiment

    # deferred (not heavy): urllib and http, kept out of soi-mlflow --help
    from soi_mlflow.tracking.health import check_experiment_name

    # deferred (not heavy): urllib and http, kept out of soi-mlflow --help
    from soi_mlflow.tracking.reach import check_store_reaches_workers

    name = check_experiment_name(settings.experiment)
    check_store_reaches_workers(settings, settings.tracking_uri)
    summary = analyze_experiment(
        name, splits, settings.taxonomy, settings.tracking_uri, engine, settings
    )
    title = f"experiment {name}: {summary['run_id'].nunique()} run(s) analysed"
    if summary["split"].nunique() == 1:  # one split: named in the title, the table fits
        title += f" (split {summary['split'].iloc[0]})"
        summary = summary.drop(columns="split")
    keys = ["run_name", "split"] if "split" in summary else ["run_name"]
    console.print_frame(summary.set_index(keys), title)


def _compare_two(settings: AnalyzeSettings, split: str) -> None:
    from soi_mlflow.analysis.two_runs import compare_runs  # deferred: matplotlib

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

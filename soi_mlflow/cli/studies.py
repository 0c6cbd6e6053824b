"""The study commands (several runs under one parent) and what they print: ``compare``,
``demo``, ``two-stage``, ``transfer``, ``learning-curve``, ``views`` and
``noise-benchmark``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from soi_mlflow.cli.options import resolved_yaml
from soi_mlflow.cli.runs import for_cli
from soi_mlflow.cli.show import on_screen, print_comparison, print_study_table
from soi_mlflow.common import console
from soi_mlflow.tracking.store import TRACKING_URI_HELP, client_for, resolve_tracking_uri
from soi_mlflow.training.settings_io import CONFIG_ARTIFACT


@dataclass
class DemoSettings:
    """The demo: the source-axis comparison of the built-in suite with the tiny encoder."""

    epochs: int = 5
    """training epochs"""
    seeds: int = 2
    """seeds per setting"""
    experiment: str = "soi-demo"
    """MLflow experiment name"""
    tracking_uri: str | None = field(default=None, metadata={"help": TRACKING_URI_HELP})


def log_study_config(command: str, run_id: str, config: Any, settings: Any) -> None:
    """Log the study's resolved options to its parent run, as each training run does."""
    header = "The resolved options of this study. Repeat it with:\n"
    header += f"  soi-mlflow {command} --config config.yaml"
    text = resolved_yaml([config, settings], header)
    client_for(resolve_tracking_uri(config.tracking_uri)).log_text(run_id, text, CONFIG_ARTIFACT)


def run_study(command: str, study: Any, config: Any, settings: Any) -> tuple[Any, Any]:
    """``study.run`` on the command line's config, its options logged to the parent run;
    returns (the config as run, the study's result)."""
    config = for_cli(config)
    result = study.run(config, settings)
    log_study_config(command, result.parent_run_id, config, settings)
    return config, result


def compare(config: Any, settings: Any) -> None:
    from soi_mlflow.studies import single_vs_multi  # deferred: datasets

    config, result = run_study("compare", single_vs_multi, config, settings)
    print_comparison(result.summary)
    runs = [("parent run id", result.parent_run_id)]
    multi = "+".join(config.mixture.members)
    runs += [(f"multi {multi} seed {config.seed + s}", r) for s, r in enumerate(result.multi)]
    runs += [
        (f"single {m} seed {config.seed + s}", r)
        for m, ids in result.single.items()
        for s, r in enumerate(ids)
    ]
    console.print_links(runs, result.ui_command)


def demo(settings: DemoSettings) -> None:
    from soi_mlflow.data.mixture import MixtureSpec  # deferred: datasets
    from soi_mlflow.studies.single_vs_multi import SingleVsMultiSettings  # deferred: datasets
    from soi_mlflow.training import TrainConfig  # deferred: datasets

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
    compare(config, SingleVsMultiSettings(seeds=settings.seeds))


def short(text: str, width: int = 48) -> str:
    """``text`` cut to ``width`` characters (a ``~`` marks the cut)."""
    return text if len(text) <= width else text[: width - 1] + "~"


def two_stage(config: Any, settings: Any) -> None:
    from soi_mlflow.studies import two_stage as study  # deferred: datasets
    from soi_mlflow.studies.two_stage.terminal import accuracy_view, sizes  # deferred: datasets

    config, result = run_study("two-stage", study, config, settings)
    runs = result.runs
    lines = [f"accuracy, mean over {runs['seed'].nunique()} seed(s) (test = ID)"]
    names = list(dict.fromkeys(runs.loc[runs["role"] == "stage 2", "selection"]))
    if len(names) == 1:
        many = " (per seed)" if runs["seed"].nunique() > 1 else ""
        lines.append(f"stage 2 trained on {sizes(runs, names[0])} selected examples{many}")
    table, legend = accuracy_view(result.table.T, runs)
    console.print_frame(table, "\n".join(short(line, 99) for line in [*lines, *legend]))
    for name, frame in result.intervals_text.items():
        console.print_frame(frame, f"{short(name)}: paired by seed, mean, 95 % Student t interval")
    links = [
        ("parent run id", result.parent_run_id),
        ("stage 1", result.stage1_run_id),
        ("stage 2" if len(names) == 1 else "first stage 2", result.stage2_run_id),
        ("control", result.control_run_id),
    ]
    console.print_links(links, result.ui_command)


def transfer(config: Any, settings: Any) -> None:
    from soi_mlflow.studies import transfer as study  # deferred: datasets

    config, result = run_study("transfer", study, config, settings)
    # a targeted study's own columns, in member order
    columns = [m for m in result.mean.columns if not settings.targets or m in settings.targets]
    console.print_frame(
        result.mean[columns],
        f"transfer matrix ({settings.mode}; rows: sources, columns: targets; mean over "
        f"{settings.seeds} seed(s))",
        caption=f"trained {result.trained} runs, reused {result.reused}",
    )
    console.print_links([("parent run id", result.parent_run_id)], result.ui_command)


def learning_curve(config: Any, settings: Any) -> None:
    from soi_mlflow.studies import learning_curve as study  # deferred: datasets

    config, result = run_study("learning-curve", study, config, settings)
    fits = on_screen(result.fits, ["curve", "aux_size", "form", "c", "a", "b", "aic"])
    console.print_frame(
        fits.set_index(fits.columns[0]), "fits (intervals: tables/learning_curve_fits)", digits=4
    )
    worth = on_screen(result.worth)
    console.print_frame(
        worth.set_index(worth.columns[0]), "what the auxiliary data is worth, in target examples"
    )
    for name, title in (
        (
            "learning_curve_worth_over_sizes",
            "worth per auxiliary set: median over sizes, interval over seeds",
        ),
        (
            "learning_curve_interaction_over_sizes",
            "interaction: all together minus the sum of the pairs",
        ),
        ("learning_curve_contextual", "contextual fit"),
    ):
        table = result.tables.get(name)
        if table is not None and len(table):
            print_study_table(table, title)
    passes = result.compute.get("compute/example_passes")
    seconds = result.compute.get("compute/wall_seconds")
    if passes is not None and seconds is not None:
        print(f"compute: {int(passes):,} training example-passes, {seconds:.0f} s")
    console.print_links([("parent run id", result.parent_run_id)], result.ui_command)


def views(config: Any, settings: Any) -> None:
    from soi_mlflow.studies import views as study  # deferred: datasets

    config, result = run_study("views", study, config, settings)
    console.print_frame(
        on_screen(result.significance),
        "each view's transfers, with intervals over seeds",
        digits=3,
    )
    console.print_frame(
        on_screen(result.agreement), "rank agreement between the views (Spearman)", digits=3
    )
    console.print_frame(result.compute, "compute per view", digits=4)
    console.print_links([("parent run id", result.parent_run_id)], result.ui_command)


def noise_benchmark(settings: Any) -> None:
    from soi_mlflow.studies import noise_benchmark as study  # deferred: datasets

    result = study.run(settings.train_config(), settings)
    summary = result.summary
    columns, rows = study.summary_rows(summary)
    console.print_table(
        rows,
        columns,
        f"label-noise detection over {settings.seeds} seed(s): mean ± std",
        caption=f"noise share {summary['base_rate'].iloc[0]:.3f}: the AP of a random order",
    )
    console.print_links([("parent run id", result.parent_run_id)], result.ui_command)

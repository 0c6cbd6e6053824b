"""The commands about one run or its data: ``preview``, ``train`` and ``sync``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from soi_mlflow.common import console


@dataclass
class PreviewSettings:
    """What the preview shows."""

    examples: int = 2
    """examples shown per member"""


def for_cli(config: Any) -> Any:
    """Command-line conveniences on a TrainConfig: DDP when several devices are asked for."""
    if config.devices > 1 and config.strategy == "auto":
        return replace(config, strategy="ddp")
    return config


def preview(spec: Any, settings: PreviewSettings) -> None:
    from soi_mlflow.data.mixture import validate_mixture  # deferred: datasets
    from soi_mlflow.data.preview import print_preview  # deferred: datasets
    from soi_mlflow.studies.profiles import print_profiles  # deferred: datasets

    validate_mixture(spec)
    print_preview(spec, examples=settings.examples)
    print_profiles(spec)


def train(config: Any) -> None:
    from soi_mlflow.training import train as train_run  # deferred: datasets
    from soi_mlflow.training import validate_config  # deferred: datasets

    config = for_cli(config)
    validate_config(config)
    result = train_run(config)
    if result.run_id is not None:
        console.print_accuracy(result.metrics, "accuracy after the last epoch")
        for line in result.analysis.lines() if result.analysis else ():
            print(line)
        console.print_links([("run id", result.run_id)], result.ui_command)


def sync(settings: Any) -> None:
    # deferred (not heavy): urllib and http, kept out of soi-mlflow --help
    from soi_mlflow.tracking.sync import sync as sync_spool

    sync_spool(settings)

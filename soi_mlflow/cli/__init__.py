"""The ``soi-mlflow`` command (``main``: its commands, ``options``: how their settings
become flags and YAML keys, ``mlproject``: the MLproject file written from them)."""

from soi_mlflow.cli.main import COMMANDS, main

__all__ = ["COMMANDS", "main"]

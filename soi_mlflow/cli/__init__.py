"""The ``soi-mlflow`` command (``main``: the table of its commands and ``main()``;
``runs``, ``studies``, ``analyze``: the commands by kind; ``show``: how they print;
``options``: how their settings become flags and YAML keys; ``mlproject``: the MLproject
file written from them)."""

from soi_mlflow.cli.main import COMMANDS, main

__all__ = ["COMMANDS", "main"]

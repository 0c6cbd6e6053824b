"""``python -m soi_mlflow.cli``: the ``soi-mlflow`` command."""

from soi_mlflow.cli.main import script

script()

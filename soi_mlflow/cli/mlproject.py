"""The MLproject file, written from the commands' settings dataclasses.

Every command gets an entry point of the same name (``-`` as ``_``; ``main`` is the
demo). Its parameters are the command's options that have a default, with that default
and their real type (``int``, ``float``, ``path``, ``string``). Options without a default
are declared without one, so MLflow asks for them; options whose default is "none" or
empty are left out (MLflow would log the empty value as the run's parameter) and can
still be given: ``mlflow run . -e train -P max_examples=200`` (MLflow appends undeclared
parameters as ``--max_examples 200``), ``-P config=run.yaml`` included.

Regenerate with ``python -m soi_mlflow.cli.mlproject > MLproject`` (``make mlproject``);
``tests/test_cli_config.py`` checks the file is current.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from soi_mlflow.cli import COMMANDS
from soi_mlflow.training.settings_io import nested_settings, option_fields, plain

HEADER = """\
# Written by `python -m soi_mlflow.cli.mlproject > MLproject` (make mlproject) from the
# commands' settings dataclasses; do not edit by hand. Options left out here (those whose
# default is none) can still be given: `mlflow run . -e train -P max_examples=200`.
name: soi-mlflow

python_env: python_env.yaml

"""


def _mlflow_type(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if all(a is int for a in args):
        return "int"
    if all(a in (float, int) for a in args):
        return "float"
    if Path in args and set(args) <= {str, Path}:
        return "path"
    return "string"


def _value(value: Any) -> str:
    value = plain(value)
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _parameters(cls: type) -> dict[str, dict[str, str]]:
    """The MLproject parameters of settings class ``cls`` (nested settings flattened)."""
    hints = typing.get_type_hints(cls)
    nested = nested_settings(cls)
    out: dict[str, dict[str, str]] = {}
    for f in option_fields(cls):
        if f.name in nested:
            out.update(_parameters(nested[f.name]))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            out[f.name] = {"type": _mlflow_type(hints[f.name])}
            continue
        if default is None or isinstance(default, dict) or _value(default) == "":
            continue  # "none" or empty: left to the command's own default
        out[f.name] = {"type": _mlflow_type(hints[f.name]), "default": _value(default)}
    return out


def entry_points() -> dict[str, dict[str, Any]]:
    """Entry point name -> {"parameters": ..., "command": ...} for every command."""
    points: dict[str, dict[str, Any]] = {}
    for command in COMMANDS.values():
        params: dict[str, dict[str, str]] = {}
        for cls in command.settings_classes():
            params.update(_parameters(cls))
        flags = " ".join(f"--{name} {{{name}}}" for name in params)
        points[command.name.replace("-", "_")] = {
            "parameters": params,
            "command": f"soi-mlflow {command.name} {flags}".strip(),
        }
    points = {"main": points["demo"], **points}
    return points


def render() -> str:
    """The MLproject file's text."""
    lines = [HEADER.rstrip("\n"), "", "entry_points:"]
    for name, point in entry_points().items():
        lines.append(f"  {name}:")
        lines.append("    parameters:" if point["parameters"] else "    parameters: {}")
        for param, spec in point["parameters"].items():
            fields = [f"type: {spec['type']}"]
            if "default" in spec:
                fields.append(f"default: {_quote(spec['default'])}")
            lines.append(f"      {param}: {{{', '.join(fields)}}}")
        lines.append(f"    command: {_quote(point['command'])}")
        lines.append("")
    return "\n".join(lines)


def _quote(text: str) -> str:
    """``text`` as a YAML double-quoted scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    print(render(), end="")

"""Settings dataclasses as plain data: the YAML that ``--print-config`` prints, that every
training run logs as ``config.yaml``, and that ``--config`` reads back.

A settings dataclass is the one declaration of a group of options: each field's name,
type, default and help (the docstring line under it, or ``field(metadata={"help": ...})``).
A field whose type is itself a settings dataclass (``TrainConfig.mixture``) is flattened
into its parent, so ``members`` sits next to ``epochs`` on the command line and in YAML.
``field(metadata={"cli": False})`` keeps a field out of both; ``metadata={"bare": V}``
lets its flag stand alone for V (``--affinity-every`` for 20). Light: imports only PyYAML.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

CONFIG_ARTIFACT = "config.yaml"


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are options (all but ``metadata={"cli": False}``)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


@cache
def nested_settings(cls: type) -> dict[str, type]:
    """Option fields of ``cls`` whose type is a dataclass: name -> that dataclass."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: hints[f.name]
        for f in option_fields(cls)
        if isinstance(hints[f.name], type) and dataclasses.is_dataclass(hints[f.name])
    }


def option_names(cls: type) -> Iterator[str]:
    """Every option name of ``cls``, nested settings flattened in place."""
    nested = nested_settings(cls)
    for f in option_fields(cls):
        if f.name in nested:
            yield from option_names(nested[f.name])
        else:
            yield f.name


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """An instance of ``cls`` from flat option ``values`` (nested settings built first);
    an option missing from ``values`` (another settings class of the command declares it)
    keeps its default."""
    nested = nested_settings(cls)
    kwargs = {
        f.name: build(nested[f.name], values) if f.name in nested else values[f.name]
        for f in option_fields(cls)
        if f.name in nested or f.name in values
    }
    return cls(**kwargs)


def plain(value: Any) -> Any:
    """``value`` as YAML-safe data: sequences and sets as lists, paths as strings, a suite
    object by its name."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return getattr(value, "name", str(value))


def flat_values(obj: Any) -> dict[str, Any]:
    """The option values of a settings instance, nested settings flattened, as plain data."""
    nested = nested_settings(type(obj))
    out: dict[str, Any] = {}
    for f in option_fields(type(obj)):
        value = getattr(obj, f.name)
        if f.name in nested:
            out.update(flat_values(value))
        else:
            out[f.name] = plain(value)
    return out


def to_yaml(values: Mapping[str, Any], header: str = "") -> str:
    """YAML that ``--config`` accepts back, keys in declaration order, ``header`` as
    comment lines on top."""
    import yaml

    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + yaml.safe_dump(dict(values), sort_keys=False, allow_unicode=True)


def run_config_yaml(config: Any) -> str:
    """The ``config.yaml`` a training run logs: its resolved settings, with the links to a
    study (parent run, study tags) cleared so that a repeat is a run of its own."""
    # deferred (not heavy): urllib and http, kept out of soi-mlflow --help
    from soi_mlflow.model.mlflow_model import is_model_uri

    values = flat_values(config)
    values["parent_run_id"] = None
    values["tags"] = {k: v for k, v in values.get("tags", {}).items() if not k.startswith("soi.")}
    lines = [
        "The resolved configuration of this run. Repeat it (a new run, same trace) with:",
        "  soi-mlflow train --config config.yaml",
    ]
    suite = getattr(getattr(config, "mixture", None), "suite", None)
    if suite is not None and not isinstance(suite, (str, Path)):
        lines.append(
            f"Its suite was built in Python (suite {values.get('suite')!r} with its own "
            "options): this file names the suite only, so a repeat uses that suite's defaults."
        )
    if values.get("init_from") and not is_model_uri(values["init_from"]):
        lines.append(
            "It started from a checkpoint folder (init_from) of the machine that ran it: "
            "download that run's checkpoint/ and point init_from at it."
        )
    return to_yaml(values, "\n".join(lines))

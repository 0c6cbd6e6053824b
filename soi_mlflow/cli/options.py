"""The machinery of the commands: a :class:`Command`'s parser, built with jsonargparse
from its settings dataclasses, and the settings instances parsed from ``argv``.

The dataclasses are the only declaration of the options (see ``training/settings_io.py``): each
field gives one flag (``--max-examples``; ``--max_examples`` works too), one key of a
``--config`` YAML file (``max_examples``) and one MLproject parameter. jsonargparse
checks every value against the field's type and refuses unknown keys, naming the key.

On top of jsonargparse, :func:`normalize_argv` keeps the flags researchers already type:
comma-separated lists (``--members books,movies``), repeatable options whose values hold
commas (``--stage2 a,b --stage2 region:ambiguous``), bare switches (``--approx`` for
``--approx true``, ``--no-progress`` for ``--progress false``), and ``--config`` read
first wherever it stands, so flags win.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from soi_mlflow import __version__
from soi_mlflow.training.settings_io import (
    build,
    flat_values,
    nested_settings,
    option_fields,
    option_names,
    to_yaml,
)


def _formatter() -> type:
    from jsonargparse import DefaultHelpFormatter

    class Formatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
        """jsonargparse's help (types, defaults) with the epilog's examples kept as written."""

    return Formatter


def add_settings(parser: Any, cls: type, replaced: frozenset[str] = frozenset()) -> list[str]:
    """Add the options of settings dataclass ``cls`` (nested settings first), but not
    those in ``replaced`` (a later settings class of the command declares them); returns
    their keys."""
    nested = nested_settings(cls)
    keys: list[str] = []
    for sub in nested.values():
        keys += add_settings(parser, sub, replaced)
    hidden = {f.name for f in dataclasses.fields(cls)} - {f.name for f in option_fields(cls)}
    skip = hidden | set(nested) | set(replaced)
    keys += parser.add_class_arguments(cls, None, skip=skip, as_group=True)
    by_dest = {a.dest: a for a in parser._actions}
    for f in option_fields(cls):
        if f.name in replaced:
            continue
        if "help" in f.metadata and f.name in by_dest:
            by_dest[f.name].help = f.metadata["help"]
        if "bare" in f.metadata and f.name in by_dest:  # the value of a flag given alone
            by_dest[f.name].bare_value = str(f.metadata["bare"])
        if f.metadata.get("repeat") and f.name in by_dest:  # each use adds one whole value
            by_dest[f.name].repeat = True
    return keys


def _dash_aliases(parser: Any) -> None:
    """Show each ``--snake_case`` flag as ``--kebab-case``; both spellings are accepted."""
    for action in parser._actions:
        shown = []
        for flag in action.option_strings:
            if flag.startswith("--") and "_" in flag:
                dashed = flag.replace("_", "-")
                parser._option_string_actions[dashed] = action
                shown.append(dashed)
            else:
                shown.append(flag)
        action.option_strings = shown
        if action.dest.endswith(".help"):  # jsonargparse's help of a class-typed option
            action.help = argparse.SUPPRESS


def build_parser(
    prog: str, description: str, settings: Sequence[type], epilog: str = ""
) -> tuple[Any, list[str]]:
    """The parser of one command from its settings dataclasses; also returns the keys."""
    from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=_formatter(),
        print_config=None,
        default_env=False,
        exit_on_error=False,
        allow_abbrev=False,  # `--seed` must not pass for `--seeds` (noise-benchmark has both)
    )
    parser.add_argument(
        "--config",
        action=ActionConfigFile,
        help="a YAML file of these options (as --print-config writes it); flags win over it",
    )
    parser.add_argument(
        "--print_config",
        action="store_true",
        help="print the resolved options as YAML that --config reads back, and stop",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show the libraries' own messages (Lightning banners, warnings)",
    )
    keys: list[str] = []
    for i, cls in enumerate(settings):
        # an option a later class declares again is that class's: a study's --resume (its
        # parent run id) replaces TrainConfig's (one training run's)
        later = frozenset(n for other in settings[i + 1 :] for n in option_names(other))
        keys += add_settings(parser, cls, later)
    _dash_aliases(parser)
    return parser, keys


def _is_sequence(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (list, tuple, set, frozenset):
        return True
    return any(_is_sequence(arg) for arg in typing.get_args(hint) if arg is not type(None))


def normalize_argv(parser: Any, argv: Sequence[str]) -> list[str]:
    """``argv`` in jsonargparse's terms: comma lists as YAML lists, a repeatable option's
    uses as one JSON list of whole values, ``--FLAG`` and ``--no-FLAG`` as
    ``--FLAG true|false``, and ``--config FILE`` moved first so that flags win over the
    file."""
    actions = parser._option_string_actions
    configs: list[str] = []
    out: list[str] = []
    repeated: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        flag, eq, inline = token.partition("=")
        action = actions.get(flag) if flag.startswith("--") else None
        if action is None and flag.startswith("--no-") and eq == "":
            positive = actions.get("--" + flag[len("--no-") :])
            if positive is not None and getattr(positive, "_typehint", None) is bool:
                out += [positive.option_strings[0], "false"]
                i += 1
                continue
        if action is None or action.nargs == 0:
            out.append(token)
            i += 1
            continue
        bare = "true" if getattr(action, "_typehint", None) is bool else None
        bare = getattr(action, "bare_value", bare)
        if bare and not eq and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out += [flag, bare]  # given alone: ``--approx`` means ``--approx true``
            i += 1
            continue
        if eq:
            value, i = inline, i + 1
        elif i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        else:
            out.append(token)
            break
        if action.dest == "config":
            configs += [flag, value]
            continue
        if getattr(action, "repeat", False) and not value.lstrip().startswith("["):
            repeated.setdefault(action.option_strings[0], []).append(value)
            continue
        hint = getattr(action, "_typehint", None)
        if hint is not None and _is_sequence(hint) and not value.lstrip().startswith(("[", "{")):
            value = "[" + value + "]" if value.strip() not in ("null", "None") else value
        out += [flag, value]
    for flag, values in repeated.items():
        out += [flag, json.dumps(values)]
    return configs + out


def values_of(namespace: Any, keys: Sequence[str]) -> dict[str, Any]:
    """The parsed values of ``keys`` (the settings' options, not the meta options)."""
    return {key: namespace[key] for key in keys}


# -- commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command: its summary line, function, settings classes and two examples."""

    name: str
    summary: str
    run: Callable[..., None]
    settings: tuple[type | str, ...]
    """the settings classes, in order; a ``"module:Class"`` string is imported only when
    the command runs (for settings whose module loads a heavy library)"""
    examples: tuple[str, str]
    default_axis: str | None = None
    """the built-in suite's axis when neither --axis nor --members is given (a command
    that needs more members than the suite's default mixture has)"""
    aliases: tuple[tuple[str, str], ...] = ()
    """(flag, the option's own flag) pairs: another spelling of an option (``--from``)"""

    def settings_classes(self) -> list[type]:
        return [_resolve(ref) if isinstance(ref, str) else ref for ref in self.settings]


def _resolve(ref: str) -> type:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def command_parser(command: Command) -> tuple[Any, list[str], list[type]]:
    """The jsonargparse parser of ``command``, its option keys and settings classes."""
    classes = command.settings_classes()
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in command.examples)
    parser, keys = build_parser(f"soi-mlflow {command.name}", command.summary, classes, epilog)
    return parser, keys, classes


def parse(command: Command, argv: Sequence[str]) -> tuple[list[Any], Any]:
    """The settings instances of ``command`` from ``argv`` (and its ``--config`` files),
    plus the parsed namespace (``print_config``, ``verbose``)."""
    parser, keys, classes = command_parser(command)
    argv = [_alias(token, command.aliases) for token in argv]
    namespace = parser.parse_args(normalize_argv(parser, argv))
    values = values_of(namespace, keys)
    if command.default_axis and _no_mixture_given(values):
        values["axis"] = command.default_axis
    instances = []
    for i, cls in enumerate(classes):  # an option a later class declares is that class's
        later = {n for other in classes[i + 1 :] for n in option_names(other)}
        instances.append(build(cls, {k: v for k, v in values.items() if k not in later}))
    return instances, namespace


def _alias(token: str, aliases: Sequence[tuple[str, str]]) -> str:
    """``token`` with an alias flag (``--from``, ``--from=X``) spelled as its option's."""
    for alias, flag in aliases:
        if token == alias or token.startswith(alias + "="):
            return flag + token[len(alias) :]
    return token


def _no_mixture_given(values: dict[str, Any]) -> bool:
    """Whether the options name the built-in suite and neither an axis nor members."""
    return values.get("suite") == "builtin" and not values.get("axis") and not values.get("members")


def resolved_yaml(instances: Sequence[Any], header: str = "") -> str:
    """The YAML of ``--print-config``: every option of the command, resolved."""
    values: dict[str, Any] = {}
    for i, instance in enumerate(instances):  # an option a later class declares is its
        later = {n for other in instances[i + 1 :] for n in option_names(type(other))}
        values.update({k: v for k, v in flat_values(instance).items() if k not in later})
    return to_yaml(values, header)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("soi-mlflow")
    except PackageNotFoundError:
        return __version__

"""Options renamed in a public signature: the old keyword still works, with a warning.

A default is a :class:`Default` (a ``str`` told apart from the same text passed on purpose),
so passing an option under both its old and its new name is refused rather than guessed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from soi_mlflow.errors import SoiInputError


class Default(str):
    """An option's default text: equal to ``str(self)``, but known not to be passed."""

    __slots__ = ()


def passed(value: Any) -> bool:
    """Whether an option was given by the caller (not left at ``None`` or a Default)."""
    return value is not None and not isinstance(value, Default)


def take_renamed(
    owner: str, old: Mapping[str, Any], new: dict[str, Any], renames: Mapping[str, str]
) -> dict[str, Any]:
    """``new`` (name -> value) with each deprecated keyword of ``old`` moved to its new name.

    Warns a DeprecationWarning for each old name used, pointing at the caller of
    ``owner``; an unknown keyword is a TypeError, as Python raises for any function.
    """
    values = dict(new)
    for name, value in old.items():
        if name not in renames:
            raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}")
        to = renames[name]
        if passed(new[to]):
            raise SoiInputError(
                f"{owner}: {name}= is the old name of {to}=; pass only {to}={new[to]!r}"
            )
        warnings.warn(
            f"{owner}({name}=...) is deprecated; use {to}=... (the same option)",
            DeprecationWarning,
            stacklevel=3,
        )
        values[to] = value
    return {k: str(v) if isinstance(v, Default) else v for k, v in values.items()}

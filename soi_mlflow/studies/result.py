"""What every study gives back, and the old study entry points kept for existing callers.

Every study module has one entry point of one shape, ``run(config, settings) -> Result``
(``config``: the children's training options, a :class:`~soi_mlflow.training.TrainConfig`;
``settings``: the study's own options), and every result is a :class:`StudyResult`: it
knows its parent run, the command that opens it in the MLflow UI, and how many children
were trained here and how many were reused (``--resume``, ``transfer --reuse``)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(kw_only=True)
class StudyResult:
    """The part every study's result shares."""

    parent_run_id: str
    """the study's parent run: its children are nested under it"""
    ui_command: str
    """the command that opens the parent run in the MLflow UI"""
    trained: int = 0
    """child runs trained by this call"""
    reused: int = 0
    """child runs found finished in MLflow and reused instead of trained again"""


def deprecated(old: str, new: str) -> Callable[[F], F]:
    """Mark ``old`` (a thin wrapper kept for existing callers) as replaced by ``new``."""

    def wrap(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            warnings.warn(
                f"{old} is deprecated; use {new} (the same study)",
                DeprecationWarning,
                stacklevel=2,
            )
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return wrap

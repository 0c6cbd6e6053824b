"""What every executor shares (``common/executor.py`` makes them): the settings, the
errors a ``map`` raises when items fail, and the text of its ``[k/n]`` lines.

Below both executors, so the Ray executor needs nothing from the module that makes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from soi_mlflow.errors import SoiInputError

T = TypeVar("T")
R = TypeVar("R")
EXECUTORS = ("local", "ray")


@dataclass(kw_only=True)
class ExecutorSettings:
    """Where independent jobs run (a study's child trainings, the runs ``analyze`` reads)."""

    executor: Literal["local", "ray"] = "local"
    """local: one after another in this process; ray: as Ray tasks (soi-mlflow[ray])"""
    ray_address: str | None = None
    """Ray cluster address (host:port, ray://host:port, auto); default: a local cluster"""
    gpus_per_run: float = 0.0
    """GPUs each job reserves with --executor ray (a fraction shares a GPU)"""
    cpus_per_run: float = 1.0
    """CPUs each job reserves with --executor ray"""


class ItemsFailed(RuntimeError):
    """Some items of a ``map`` failed (after every item ran): ``failures`` holds
    (item description, reason) of each."""

    def __init__(self, failures: list[tuple[str, str]], total: int) -> None:
        self.failures = failures
        first = "; ".join(f"{what}: {why}" for what, why in failures)
        super().__init__(f"{len(failures)} of {total} jobs failed: {first}")


class ItemsRefused(ItemsFailed, SoiInputError):
    """Every failed item of a ``map`` was refused for bad input (a SoiInputError), so the
    command line reports it as bad input (exit code 2, no traceback)."""


def failed(failures: list[tuple[str, str]], errors: list[BaseException], total: int):
    """The error for a map's failures: :class:`ItemsRefused` when each was bad input."""
    causes = [getattr(e, "cause", None) or e for e in errors]
    refused = causes and all(isinstance(c, SoiInputError) for c in causes)
    return (ItemsRefused if refused else ItemsFailed)(failures, total)


class Executor(Protocol):
    """What every executor offers."""

    kind: str

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        describe: Callable[[T], str] = str,
        steps: tuple[int, int] | None = None,
    ) -> list[R]: ...

    def close(self) -> None: ...


def progress(steps: tuple[int, int] | None, count: int) -> tuple[int, int]:
    """(number of the first line, total) of a map's ``[k/n]`` lines."""
    return steps if steps is not None else (0, count)


def finished_line(what: str, seconds: float | None, failure: str | None = None) -> str:
    """The ``[k/n]`` line's text once a job ended: done in how long, or why it failed."""
    if failure:
        return f"{what}: FAILED ({failure})"
    took = f"{seconds:.0f} s" if seconds and seconds >= 1 else f"{seconds or 0:.1f} s"
    return f"{what}: done ({took})"

"""One way to run many independent jobs: in this process one after another (``local``), or
as Ray tasks on a local or remote cluster (``ray``, the ``soi-mlflow[ray]`` extra).

``make_executor(settings).map(fn, items, describe)`` calls ``fn(item)`` for every item
and returns the results in item order. A ``[k/n] what`` line is printed as each item
finishes (``common.console.step``); every item runs even when some fail, and then
:class:`ItemsFailed` names each failed item and its reason. Ctrl-C or SIGTERM stops the
map at once (a Ray executor cancels its tasks). Jobs that need another's result are
handed over in waves: one ``map`` per wave.

The studies hand their child trainings to it; ``analyze --experiment`` its runs. The
local executor imports nothing new: Ray is imported only by ``executor="ray"``.
"""

from __future__ import annotations

import importlib.util
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from soi_mlflow.common.console import step
from soi_mlflow.common.executor_base import (  # the shared names, imported from here too
    EXECUTORS,
    Executor,
    ExecutorSettings,
    ItemsFailed,
    ItemsRefused,
    failed,
    finished_line,
    progress,
)
from soi_mlflow.common.executor_ray import RayExecutor
from soi_mlflow.errors import SoiInputError, first_line

T = TypeVar("T")
R = TypeVar("R")
__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorSettings",
    "ItemsFailed",
    "ItemsRefused",
    "LocalExecutor",
    "RayExecutor",
    "check_executor",
    "executor_for",
    "failed",
    "finished_line",
    "is_remote",
    "make_executor",
    "progress",
]


class LocalExecutor:
    """Every item in this process, one after another, in order. Its ``[k/n]`` line comes
    as an item starts, so what the job prints (a training's epochs) follows its heading;
    a failure gets a second line."""

    kind = "local"

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        describe: Callable[[T], str] = str,
        steps: tuple[int, int] | None = None,
    ) -> list[R]:
        done, total = progress(steps, len(items))
        results: list[Any] = []
        failures: list[tuple[str, str]] = []
        errors: list[BaseException] = []
        for k, item in enumerate(items, done + 1):
            what = describe(item)
            step(k, total, what)
            try:
                results.append(fn(item))
            except Exception as exc:  # noqa: BLE001 - reported with the others below
                failures.append((what, first_line(exc)))
                errors.append(exc)
                results.append(None)
                step(k, total, finished_line(what, None, first_line(exc)))
                traceback.print_exc()
        if failures:
            raise failed(failures, errors, len(items))
        return results

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_executor(settings: ExecutorSettings) -> None:
    """Refuse bad executor settings before any work (Ray missing included)."""
    if settings.executor not in EXECUTORS:
        raise SoiInputError(
            f"executor: expected one of {', '.join(EXECUTORS)}, got {settings.executor!r}"
        )
    if not settings.cpus_per_run > 0:
        raise SoiInputError(f"cpus-per-run must be > 0, got {settings.cpus_per_run!r}")
    if not settings.gpus_per_run >= 0:
        raise SoiInputError(f"gpus-per-run must be >= 0, got {settings.gpus_per_run!r}")
    if settings.executor == "local":
        if settings.ray_address or settings.gpus_per_run:
            given = "--ray-address" if settings.ray_address else "--gpus-per-run"
            raise SoiInputError(f"{given} is an option of --executor ray; add --executor ray")
        return
    if importlib.util.find_spec("ray") is None:
        raise SoiInputError(
            "executor ray needs Ray: pip install 'soi-mlflow[ray]', or use --executor local"
        )


def is_remote(settings: ExecutorSettings) -> bool:
    """Whether jobs may run on other machines: a Ray address other than a local one."""
    address = (settings.ray_address or "").strip()
    if settings.executor != "ray" or address in ("", "local"):
        return False
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host not in ("127.0.0.1", "localhost", "::1", "[::1]")


def make_executor(settings: ExecutorSettings) -> Executor:
    """The executor ``settings`` ask for (checked first); use it as a context manager, or
    call ``close()``, so a Ray cluster it started is shut down."""
    check_executor(settings)
    if settings.executor == "local":
        return LocalExecutor()
    return RayExecutor(settings)


@contextmanager
def executor_for(settings: ExecutorSettings) -> Iterator[Executor]:
    """``make_executor(settings)``, closed however the block ends."""
    executor = make_executor(settings)
    try:
        yield executor
    finally:
        executor.close()

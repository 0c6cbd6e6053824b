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

import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from soi_mlflow.common.console import step
from soi_mlflow.errors import SoiInputError, first_line

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
    import importlib.util

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
    from soi_mlflow.common.executor_ray import RayExecutor

    return RayExecutor(settings)


@contextmanager
def executor_for(settings: ExecutorSettings) -> Iterator[Executor]:
    """``make_executor(settings)``, closed however the block ends."""
    executor = make_executor(settings)
    try:
        yield executor
    finally:
        executor.close()

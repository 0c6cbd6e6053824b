"""The Ray executor: each item a Ray task with its own CPUs and GPUs (Ray sets the task's
``CUDA_VISIBLE_DEVICES``), results gathered as they finish.

Ray already initialised in this process is used as it is and left running; otherwise the
first ``map`` starts it (``ray_address``, or a local cluster without Ray's dashboard) and
``close`` shuts down what it started. Before a local cluster starts, the processes that
the local clusters of killed drivers left are ended (``common.ray_leftovers``). What
``ray.init`` changes in the process (its SIGTERM handler, logging, environment
variables) is put back, so SIGTERM still ends a study's runs KILLED. Ctrl-C or SIGTERM
during a ``map`` cancels every unfinished task (``ray.cancel(force=True)``). Tasks are
never retried: a retried training would log a second run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from soi_mlflow.common import process_state
from soi_mlflow.common.console import step
from soi_mlflow.common.executor_base import (
    ExecutorSettings,
    failed,
    finished_line,
    progress,
)
from soi_mlflow.common.ray_leftovers import end_leftovers
from soi_mlflow.errors import first_line

T = TypeVar("T")
R = TypeVar("R")


def _call(fn: Callable[[Any], Any], item: Any) -> tuple[Any, float]:
    """In the Ray worker: ``fn(item)`` and the seconds it took."""
    start = time.perf_counter()
    return fn(item), time.perf_counter() - start


class RayExecutor:
    """Items as Ray tasks of ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs each."""

    kind = "ray"

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings
        self.started = False  # whether this executor started Ray (and so shuts it down)
        self._saved: Any = None

    def _connect(self) -> Any:
        import ray

        if ray.is_initialized():
            return ray
        in_main = threading.current_thread() is threading.main_thread()
        sigterm = signal.getsignal(signal.SIGTERM) if in_main else None
        self._saved = process_state.kept()
        self._saved.__enter__()  # environment, logging, warnings: put back at close()
        address = self.settings.ray_address
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        start = time.perf_counter()
        if address and address != "local":
            ray.init(address=address, **options)
        else:
            _end_leftovers()
            ray.init(**options)
        self.started = True
        found = ray.cluster_resources()
        remote = address and address != "local"
        where = f"joined the Ray cluster at {address}" if remote else "started a local Ray cluster"
        print(
            f"{where}: {found.get('CPU', 0):g} CPUs, {found.get('GPU', 0):g} GPUs "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        if in_main and sigterm is not None:  # ray.init's own handler exits with code 15
            signal.signal(signal.SIGTERM, sigterm)
        return ray

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        describe: Callable[[T], str] = str,
        steps: tuple[int, int] | None = None,
    ) -> list[R]:
        if not items:
            return []
        ray = self._connect()
        task = ray.remote(_call).options(
            num_cpus=self.settings.cpus_per_run,
            num_gpus=self.settings.gpus_per_run,
            max_retries=0,
        )
        refs = [task.remote(fn, item) for item in items]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(items)
        failures: list[tuple[str, str]] = []
        k, total = progress(steps, len(items))
        pending = list(refs)
        stop: list[int] = []
        errors: list[BaseException] = []
        previous = _hold_sigterm(stop)
        try:
            while pending:
                if stop:  # SIGTERM: cancel, then let the caller's handler act on it
                    cancel(ray, pending)
                    _release_sigterm(previous, resend=True)
                    previous = None
                ready, pending = ray.wait(pending, num_returns=1, timeout=0.2)
                for ref in ready:
                    i = index[ref]
                    k += 1
                    what = describe(items[i])
                    try:
                        results[i], seconds = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - reported after the others
                        failures.append((what, first_line(exc)))
                        errors.append(exc)
                        step(k, total, finished_line(what, None, first_line(exc)))
                        continue
                    step(k, total, finished_line(what, seconds))
        except BaseException:  # Ctrl-C, SIGTERM: no task outlives the driver's decision
            cancel(ray, pending)
            raise
        finally:
            _release_sigterm(previous)
        if failures:
            raise failed(failures, errors, len(items))
        return results

    def close(self) -> None:
        """Shut Ray down if this executor started it; put back what ``ray.init`` changed."""
        if not self.started:
            return
        import ray

        self.started = False
        try:
            ray.shutdown()
        finally:
            saved, self._saved = self._saved, None
            if saved is not None:
                saved.__exit__(None, None, None)

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _end_leftovers() -> None:
    """Before a local cluster starts: end what the local clusters of dead drivers left
    (``common.ray_leftovers``), saying so."""
    ended = end_leftovers()
    if ended:
        sessions = ", ".join(sorted({Path(p.session).name for p in ended}))
        print(
            f"ended {len(ended)} process(es) that stopped Ray clusters left "
            f"({', '.join(p.title.split()[0] for p in ended)}; {sessions})",
            flush=True,
        )


def _hold_sigterm(stop: list[int]) -> Any:
    """While Ray waits, SIGTERM only sets ``stop``: Ray turns an exception raised inside
    its wait into a plain ``SystemExit(1)``, which would lose what the signal meant.
    Returns the handler to put back (None: not the main thread, nothing held)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN:
        return None
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    return previous


def _release_sigterm(previous: Any, resend: bool = False) -> None:
    """Put the caller's SIGTERM handler back; with ``resend``, SIGTERM this process again
    so that handler acts now, outside Ray's wait (the default one ends the process)."""
    if previous is None:
        return
    signal.signal(signal.SIGTERM, previous)
    if resend:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the handler runs at the next bytecode; this is not reached


def cancel(ray: Any, refs: list[Any]) -> None:
    """Cancel ``refs`` (their workers killed), and wait briefly until they are gone."""
    for ref in refs:
        with contextlib.suppress(Exception):  # already finished or gone
            ray.cancel(ref, force=True)
    if refs:
        with contextlib.suppress(Exception):  # the cancel stands either way
            ray.wait(refs, num_returns=len(refs), timeout=10)

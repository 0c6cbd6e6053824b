"""The trace recorder's own time, measured by the benchmarks alone.

:func:`install` wraps :class:`TraceRecorder`'s methods in timers for the rest of the
process, so the package itself keeps no benchmark bookkeeping: wall seconds of ``add``
and ``end_epoch`` on the caller's thread, and CPU seconds of the background writer's
work (one trace file, one round of metrics, one round of sending the epoch to the store).
:func:`take` returns the seconds counted since the last call (every recorder of the
process together) and starts counting anew; :func:`take_parts` the same in its two parts.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from soi_mlflow.tracking.recorder import TraceRecorder

# the recorder's methods on the caller's thread (wall clock) and the background writer's
# units of work (that thread's CPU clock)
CALLS = ("add", "end_epoch")
BACKGROUND = ("_persist", "_log_metrics", "_send")

_seconds = {"calls": 0.0, "background": 0.0}
_lock = threading.Lock()


def _timed(method: Callable[..., Any], key: str, clock: Callable[[], float]) -> Callable:
    @functools.wraps(method)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return method(*args, **kwargs)
        finally:
            spent = clock() - start
            with _lock:
                _seconds[key] += spent

    timed.__own_time__ = True  # type: ignore[attr-defined]
    return timed


def install() -> None:
    """Time every :class:`TraceRecorder` from now on (once per process)."""
    for names, key, clock in (
        (CALLS, "calls", time.perf_counter),
        (BACKGROUND, "background", time.thread_time),
    ):
        for name in names:
            method = getattr(TraceRecorder, name)  # fails loudly if the recorder changed
            if not getattr(method, "__own_time__", False):
                setattr(TraceRecorder, name, _timed(method, key, clock))


def take() -> float:
    """The recorders' own seconds (calls + background) since the last call; resets them."""
    calls, background = take_parts()
    return calls + background


def take_parts() -> tuple[float, float]:
    """:func:`take`, in its two parts: wall seconds on the caller's thread, CPU seconds of
    the background writer."""
    with _lock:
        parts = _seconds["calls"], _seconds["background"]
        _seconds.update(calls=0.0, background=0.0)
    return parts

"""The background writer thread of a trace recorder, with its retry timer.

:class:`SpoolWriter` runs the recorder's writes in order on one thread and, while entries
wait in the run's spool (:mod:`soi_mlflow.tracking.spool`), sends again every
:func:`retry_interval` seconds without a write, so a tracking server that comes back gets
them before the next epoch's end.
"""

from __future__ import annotations

import atexit
import math
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from soi_mlflow.errors import SoiInputError

# While entries wait, the writer thread sends again after this many seconds without a
# write. A try against a dead server costs one /health probe (probe_http; refused: ~1 ms;
# a hung server: PROBE_TIMEOUT_S, so at most 2 s of every 15 on the writer thread) and,
# against a server that answers but fails uploads, one manifest line (~240 an hour). A
# server that comes back gets the entries within 15 s, well inside the 30 min after
# which a run without a heartbeat counts as stale, and usually before the next epoch.
RETRY_S = 15.0
RETRY_ENV = "SOI_MLFLOW_SPOOL_RETRY_S"  # overrides RETRY_S
RETRY_BOUNDS_S = (0.1, 86400.0)  # no busy loop; at least one try a day


def retry_interval() -> float:
    """Seconds between the writer thread's sends while entries wait: ``$SOI_MLFLOW_SPOOL_
    RETRY_S`` if set, else :data:`RETRY_S`."""
    value = os.environ.get(RETRY_ENV, "").strip()
    if not value:
        return RETRY_S
    low, high = RETRY_BOUNDS_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not low <= seconds <= high:
        raise SoiInputError(
            f"{RETRY_ENV}={value!r}: expected a number of seconds from {low:g} to {high:g}"
        )
    return seconds


class SpoolWriter:
    """The background writer of a trace recorder: one thread that runs the writes given to
    :meth:`submit` in order and, while entries wait in the spool (``waiting()``), calls
    ``retry()`` after every ``interval`` seconds without a write, so a tracking server that
    comes back gets them without waiting for the next epoch's end or the close. The timer
    is the thread's own wait for work: no other thread, no polling while nothing waits.
    :meth:`shutdown` (the recorder's close, else the interpreter's exit) runs what was
    submitted and stops the thread."""

    def __init__(
        self,
        retry: Callable[[], Any],
        waiting: Callable[[], bool],
        interval: float | None = None,
        name: str = "soi-trace",
    ) -> None:
        self.interval = retry_interval() if interval is None else interval
        self.retries = 0  # timer sends so far
        self._retry, self._waiting = retry, waiting
        self._queue: queue.SimpleQueue[tuple[Future, Callable[..., Any], tuple] | None] = (
            queue.SimpleQueue()
        )
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        atexit.register(self.shutdown)  # an unclosed recorder's writes still go out

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue ``fn(*args)``; its future holds the result or the exception."""
        if self._stopping:
            raise RuntimeError("the spool writer is shut down")
        future: Future = Future()
        self._queue.put((future, fn, args))
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Run everything submitted, then stop the thread (and its timer)."""
        if not self._stopping:
            self._stopping = True
            self._queue.put(None)
            atexit.unregister(self.shutdown)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()

    def _loop(self) -> None:
        waiting = False
        while True:
            try:
                item = self._queue.get(timeout=self.interval if waiting else None)
            except queue.Empty:  # nothing written for `interval` s while entries wait
                waiting = self._timed_send()
                continue
            if item is None:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    future.set_exception(exc)
            waiting = self._still_waiting()

    def _timed_send(self) -> bool:
        """One timer send; whether entries still wait. A failure (a damaged spool) stops
        the timer until the next write, whose own send raises it to the caller."""
        self.retries += 1
        try:
            self._retry()
        except Exception:  # noqa: BLE001 - reported by the next write
            return False
        return self._still_waiting()

    def _still_waiting(self) -> bool:
        try:
            return bool(self._waiting())
        except Exception:  # noqa: BLE001
            return False

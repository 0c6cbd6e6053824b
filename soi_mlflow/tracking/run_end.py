"""Ending runs through their spool, and saying on stderr which runs stay incomplete.

:func:`end_run` is the one way runs end (training runs and study parents alike): the end
goes into the run's spool (:mod:`soi_mlflow.tracking.spool`) after anything still waiting
there and is sent from it. :func:`report_incomplete` tells the user, once per run, what
did not get through and how ``soi-mlflow sync`` sends it; :func:`end_follows` leaves that
report to the caller's :func:`end_run`.
"""

from __future__ import annotations

import sys
from typing import Any

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import end_reason, end_status, first_line
from soi_mlflow.tracking.spool import SendResult, Spool

_reported: set[str] = set()  # run ids this process already called incomplete
_ended_later: set[str] = set()  # run ids whose end a caller spools after the recorder closes


def end_run(
    client: Any,
    uri: str,
    run_id: str,
    exc: BaseException | None,
    terminate: bool = True,
    *,
    status: str | None = None,
) -> SendResult:
    """End ``run_id`` through its spool, after anything still waiting there: ``status``,
    by default the one ``exc`` calls for (:func:`~soi_mlflow.tracking.health.end_status`:
    FINISHED, FAILED, KILLED), the reason in the ``soi.end_reason`` tag
    (:func:`reason_for`), and, unless not ``terminate`` (a run of ``mlflow run`` is
    MLflow's to end), the run terminated. The one way runs end: training runs, study
    parents, the adapters' and the recorder's own runs and comparison runs alike (an open
    run: :meth:`~soi_mlflow.tracking.run.RunHandle.end`), so in an outage the end waits
    in the spool for ``soi-mlflow sync``. Never raises; says so on stderr when the run
    could not be completed."""
    status = status or end_status(exc)
    try:
        spool = Spool(run_id, uri)
        spool.put_end(status, reason_for(status, exc), terminate)
        result = spool.send(client)
    except Exception as error:  # noqa: BLE001 - the original error matters more
        return SendResult(0, 1, first_line(error))
    report_incomplete(run_id, uri, result, final=True)
    return result


def reason_for(status: str, exc: BaseException | None) -> str | None:
    """The ``soi.end_reason`` of an end: none for FINISHED; the exception's type and first
    line (``SIGTERM``, ``KeyboardInterrupt (Ctrl-C)``), else the status itself, for any
    other end, so every FAILED or KILLED run says why as far as it is known."""
    if exc is not None:
        return end_reason(exc)
    return None if status == "FINISHED" else f"{status} (no exception was given)"


def end_follows(run_id: str) -> None:
    """The caller ends ``run_id`` with :func:`end_run` after its trace recorder closes (the
    built-in trainer, which also spools the final checkpoint): the recorder's close then
    does not report the run incomplete, :func:`end_run` does, counting everything
    ``soi-mlflow sync`` would send."""
    _ended_later.add(run_id)


def report_incomplete(run_id: str, uri: str, result: SendResult, final: bool = False) -> None:
    """Say on stderr, once per run, that ``run_id`` is incomplete in the store, what waits
    in its spool (as many entries as ``soi-mlflow sync`` sends) and how to complete it.
    Unless ``final``, a run whose end follows (:func:`end_follows`) is left to that end."""
    if final:
        _ended_later.discard(run_id)
    elif run_id in _ended_later:
        return
    if not result.pending or run_id in _reported:
        return
    _reported.add(run_id)
    spool = Spool(run_id, uri)
    try:
        waiting = spool.pending()
    except SoiInputError:  # a damaged spool: the send's count
        waiting = []
    count = len(waiting) or result.pending
    print(
        f"soi-mlflow: run {run_id} is INCOMPLETE in {uri}: {count} spooled entries "
        f"({_kinds(waiting) or 'trace files, metrics'}) did not get through "
        f"({result.error or 'not sent yet'}). They are kept in {spool.folder}; when the "
        f"server is back, send them with: soi-mlflow sync --run-id {run_id}",
        file=sys.stderr,
        flush=True,
    )


def _kinds(entries: list[dict[str, Any]]) -> str:
    """What ``entries`` are, in words: ``3 files, 2 metric batches, the run's end``."""
    files = sum(e["kind"] == "artifact" for e in entries)
    batches = sum(e["kind"] == "metrics" for e in entries)
    parts = [f"{files} file{'s' * (files != 1)}"] if files else []
    parts += [f"{batches} metric batch{'es' * (batches != 1)}"] if batches else []
    parts += ["the run's end"] if any(e["kind"] == "end" for e in entries) else []
    return ", ".join(parts)

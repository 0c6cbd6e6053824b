"""The upload spool of a run: what the tracking store has not received yet, kept on disk.

Trace files, metric batches, example tables and the run's end go into the spool first and
are sent from it in order, each deleted once the store has it. While the tracking server
is away they wait there and training goes on; the recorder's writer thread
(:class:`SpoolWriter`) tries again every :func:`retry_interval` seconds and at every
write, the end of training tries once more, and ``soi-mlflow sync`` sends what is left.
The spool of a run is ``$SOI_MLFLOW_CACHE/runs/<run_id>/spool/`` (default
``~/.cache/soi_mlflow/...``)::

    spool.json          {"run_id", "tracking_uri"}: where the entries go
    manifest.jsonl      one JSON object a line: an entry ({"seq", "kind", ...}) when added,
                        {"sent": seq} once the store has it, {"failed": seq, "error", "time"}
                        for each try that did not get through
    files/<seq>/<name>  an artifact entry's file (Parquet, JSON): written under a temporary
                        name and renamed, then named in the manifest

Plain Parquet and JSON, never pickle. A SIGKILLed process leaves a readable spool: a file
is named in the manifest only once it is whole, a manifest line cut by the crash is
ignored, and an entry sent just before the crash but not yet marked is sent again (an
artifact overwrites itself; a metric keeps its timestamp, so the store holds one point).
Processes take turns through an ``flock`` on the run's folder.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import first_line, probe_http
from soi_mlflow.tracking.local import run_folder, soi_home

try:  # POSIX; elsewhere one process at a time is assumed
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MANIFEST = "manifest.jsonl"
HEADER = "spool.json"
KINDS = ("artifact", "metrics", "end")
METRICS_PER_REQUEST = 1000  # MLflow's log_batch limit
# While entries wait, the writer thread sends again after this many seconds without a
# write. A try against a dead server costs one /health probe (probe_http; refused: ~1 ms;
# a hung server: PROBE_TIMEOUT_S, so at most 2 s of every 15 on the writer thread) and,
# against a server that answers but fails uploads, one manifest line (~240 an hour). A
# server that comes back gets the entries within 15 s, well inside the 30 min after
# which a run without a heartbeat counts as stale, and usually before the next epoch.
RETRY_S = 15.0
RETRY_ENV = "SOI_MLFLOW_SPOOL_RETRY_S"  # overrides RETRY_S
RETRY_BOUNDS_S = (0.1, 86400.0)  # no busy loop; at least one try a day

_reported: set[str] = set()  # run ids this process already called incomplete
_ended_later: set[str] = set()  # run ids whose end a caller spools after the recorder closes


@dataclass
class SendResult:
    """What one round of sending left: entries still waiting, and why."""

    sent: int
    pending: int
    error: str | None = None


class Spool:
    """The spool of ``run_id``, whose entries go to ``tracking_uri``."""

    def __init__(self, run_id: str, tracking_uri: str) -> None:
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.folder = run_folder(run_id) / "spool"

    @classmethod
    def of_run(cls, run_id: str, tracking_uri: str | None = None) -> Spool:
        """The spool of ``run_id`` on this machine, sent to ``tracking_uri`` (default: the
        URI it was filled for)."""
        spool = cls(run_id, tracking_uri or "")
        header = spool.folder / HEADER
        if tracking_uri is None:
            if not header.is_file():
                raise SoiInputError(f"run {run_id}: nothing spooled on this machine ({header})")
            spool.tracking_uri = _read_json(header)["tracking_uri"]
        return spool

    # -- adding ---------------------------------------------------------------------
    def put_artifact(self, name: str, artifact_path: str, write: Callable[[Path], Any]) -> int:
        """Add a file for ``<artifact_path>/<name>``: ``write(path)`` writes it to a
        temporary path, renamed once whole. Returns the entry's number."""
        if "/" in name or name.startswith("."):
            raise SoiInputError(f"spool: artifact name {name!r} must be a plain file name")
        with self._locked():
            seq = self._next_seq()
            folder = self.folder / "files" / f"{seq:06d}"
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.tmp"
            write(tmp)
            os.replace(tmp, folder / name)
            rel = f"files/{seq:06d}/{name}"
            self._append({"seq": seq, "kind": "artifact", "file": rel, "path": artifact_path})
            return seq

    def put_file(self, source: Path, artifact_path: str) -> int:
        """Add a copy of ``source`` for ``<artifact_path>/<its name>``."""
        return self.put_artifact(source.name, artifact_path, lambda p: shutil.copyfile(source, p))

    def put_metrics(self, metrics: Mapping[str, float], step: int, heartbeat: bool = True) -> int:
        """Add a batch of metrics at ``step``, time-stamped now (and, with ``heartbeat``,
        the run's ``soi.heartbeat`` tag at that time)."""
        values = {str(k): float(v) for k, v in metrics.items()}
        record = {"kind": "metrics", "metrics": values, "step": int(step)}
        record |= {"timestamp": int(time.time() * 1000), "heartbeat": heartbeat}
        with self._locked():
            seq = self._next_seq()
            self._append({"seq": seq, **record})
            return seq

    def put_end(self, status: str, reason: str | None = None, terminate: bool = True) -> int:
        """Add the run's end: the ``soi.end_reason`` tag if ``reason``, then ``status``
        (unless not ``terminate``: a run of ``mlflow run`` is ended by MLflow)."""
        record = {"kind": "end", "status": status, "reason": reason, "terminate": terminate}
        record["timestamp"] = int(time.time() * 1000)
        with self._locked():
            seq = self._next_seq()
            self._append({"seq": seq, **record})
            return seq

    # -- reading --------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        """Every manifest line; a last line cut short by a crash is left out."""
        path = self.folder / MANIFEST
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        out = []
        for i, line in enumerate(lines):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    break  # the process died while appending this line
                raise SoiInputError(
                    f"spool manifest {path}: line {i + 1} is not JSON; the spool is damaged"
                ) from None
            if not isinstance(record, dict):
                raise SoiInputError(f"spool manifest {path}: line {i + 1} is not an object")
            out.append(record)
        return out

    def pending(self) -> list[dict[str, Any]]:
        """Entries not yet in the store, oldest first."""
        records = self.records()
        sent = {r["sent"] for r in records if "sent" in r}
        entries = [r for r in records if "kind" in r and r["seq"] not in sent]
        for entry in entries:
            if entry["kind"] not in KINDS:
                raise SoiInputError(
                    f"spool {self.folder}: entry {entry['seq']} has unknown kind "
                    f"{entry['kind']!r} (written by a newer soi-mlflow?)"
                )
        return sorted(entries, key=lambda r: r["seq"])

    def last_error(self) -> str | None:
        failed = [r for r in self.records() if "failed" in r]
        return failed[-1]["error"] if failed else None

    # -- sending --------------------------------------------------------------------
    def send(self, client: Any = None) -> SendResult:
        """Send the pending entries in order; stop at the first that does not get through
        (it stays, and so does everything after it). Never raises for the store's sake."""
        if not self.folder.is_dir():
            return SendResult(0, 0)
        with self._locked():
            entries = self.pending()
            if not entries:
                self._remove()
                return SendResult(0, 0)
            if probe_http(self.tracking_uri) is not None:
                return SendResult(0, len(entries), f"{self.tracking_uri} does not answer")
            if client is None:
                from mlflow import MlflowClient

                client = MlflowClient(self.tracking_uri)
            for done, entry in enumerate(entries):
                try:
                    self._send_one(client, entry)
                except Exception as exc:  # noqa: BLE001 - kept and tried again later
                    error = first_line(exc)
                    self._append({"failed": entry["seq"], "error": error, "time": time.time()})
                    return SendResult(done, len(entries) - done, error)
                self._append({"sent": entry["seq"]})
                if entry["kind"] == "artifact":
                    shutil.rmtree((self.folder / entry["file"]).parent, ignore_errors=True)
            self._remove()
            return SendResult(len(entries), 0)

    def _send_one(self, client: Any, entry: dict[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        from soi_mlflow.tracking.health import END_REASON_TAG, HEARTBEAT_TAG

        if entry["kind"] == "artifact":
            path = self.folder / entry["file"]
            if not path.is_file():
                raise SoiInputError(f"spool {self.folder}: {entry['file']} is missing")
            client.log_artifact(self.run_id, str(path), entry["path"])
        elif entry["kind"] == "metrics":
            stamp, step = entry["timestamp"], entry["step"]
            items = [Metric(k, v, stamp, step) for k, v in entry["metrics"].items()]
            tags = [RunTag(HEARTBEAT_TAG, str(stamp // 1000))] if entry.get("heartbeat") else []
            for start in range(0, max(len(items), 1), METRICS_PER_REQUEST):
                chunk = items[start : start + METRICS_PER_REQUEST]
                client.log_batch(self.run_id, metrics=chunk, tags=tags if not start else [])
        else:
            if entry.get("reason"):
                client.log_batch(self.run_id, tags=[RunTag(END_REASON_TAG, entry["reason"])])
            if entry.get("terminate", True):
                client.set_terminated(self.run_id, entry["status"], end_time=entry["timestamp"])

    # -- the folder -----------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the run folder's lock (other processes and threads wait)."""
        folder = self.folder.parent
        folder.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _next_seq(self) -> int:
        header = self.folder / HEADER
        if not header.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_json(header, {"run_id": self.run_id, "tracking_uri": self.tracking_uri})
        seqs = [r["seq"] for r in self.records() if "seq" in r]
        return max(seqs, default=-1) + 1

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with open(self.folder / MANIFEST, "a", encoding="utf-8") as f:
            f.write(line)  # one write: a crash keeps the line whole or cuts the last one

    def _remove(self) -> None:
        """Everything is sent: the spool goes."""
        shutil.rmtree(self.folder, ignore_errors=True)


def spooled_runs() -> list[str]:
    """Run ids with a spool on this machine."""
    root = soi_home() / "runs"
    if not root.is_dir():
        return []
    # the header's id: a folder name may be a shortened id (local.run_folder_name)
    headers = root.glob(f"*/spool/{HEADER}")
    return sorted(_read_json(p).get("run_id", p.parent.parent.name) for p in headers)


def end_run(
    client: Any, uri: str, run_id: str, exc: BaseException | None, terminate: bool = True
) -> SendResult:
    """End ``run_id`` through its spool, after anything still waiting there: the status
    ``exc`` calls for (:func:`~soi_mlflow.tracking.health.end_status`: FINISHED, FAILED,
    KILLED), the reason in the ``soi.end_reason`` tag, and, unless not ``terminate`` (a
    run of ``mlflow run`` is MLflow's to end), the run terminated. The one way runs end:
    training runs and study parents alike, so in an outage the end waits in the spool for
    ``soi-mlflow sync``. Never raises; says so on stderr when the run could not be
    completed."""
    from soi_mlflow.tracking.health import end_reason, end_status

    try:
        spool = Spool(run_id, uri)
        spool.put_end(end_status(exc), end_reason(exc) if exc is not None else None, terminate)
        result = spool.send(client)
    except Exception as error:  # noqa: BLE001 - the original error matters more
        return SendResult(0, 1, first_line(error))
    report_incomplete(run_id, uri, result, final=True)
    return result


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


@dataclass
class SyncSettings:
    """Which spooled runs to send (every run spooled on this machine by default)."""

    run_id: str | None = None
    """send only this run's spool"""
    tracking_uri: str | None = None
    """send to this tracking URI instead of the one each spool was filled for"""


def sync(settings: SyncSettings) -> dict[str, SendResult]:
    """Send the spools of ``settings`` in order; print one line per run. Raises
    :class:`SoiInputError` if something is still waiting afterwards."""
    from soi_mlflow.tracking.health import check_tracking

    runs = [settings.run_id] if settings.run_id else spooled_runs()
    if not runs:
        print(f"nothing to send: no spooled runs under {soi_home() / 'runs'}")
        return {}
    results: dict[str, SendResult] = {}
    for run_id in runs:
        spool = Spool.of_run(run_id, settings.tracking_uri)
        waiting = len(spool.pending())
        if probe_http(spool.tracking_uri) is not None:
            raise SoiInputError(
                f"tracking server {spool.tracking_uri} does not answer: nothing was sent, "
                f"the spool of run {run_id} stays in {spool.folder}. Run soi-mlflow sync "
                "again once the server is up (or --tracking-uri where the run lives now)."
            )
        check_tracking(spool.tracking_uri)  # a store that answers but cannot be used
        result = spool.send()
        results[run_id] = result
        state = "complete" if not result.pending else f"{result.pending} still waiting"
        print(
            f"run {run_id}: sent {result.sent} of {waiting} spooled entries to "
            f"{spool.tracking_uri} ({state})"
        )
    left = {r: res for r, res in results.items() if res.pending}
    if left:
        first = next(iter(left.values()))
        raise SoiInputError(
            f"{len(left)} run(s) still incomplete ({', '.join(left)}): {first.error}; "
            "run soi-mlflow sync again later"
        )
    return results


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SoiInputError(f"spool header {path}: unreadable ({exc})") from None
    if not isinstance(value, dict) or "tracking_uri" not in value:
        raise SoiInputError(f"spool header {path}: expected {{'run_id', 'tracking_uri'}}")
    return value


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)

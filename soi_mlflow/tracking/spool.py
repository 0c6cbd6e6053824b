"""The upload spool of a run: what the tracking store has not received yet, kept on disk.

Trace files, metric batches, example tables and the run's end go into the spool first and
are sent from it in order, each deleted once the store has it. While the tracking server
is away they wait there and training goes on; the recorder's writer thread
(:class:`~soi_mlflow.tracking.spool_writer.SpoolWriter`) tries again every
:func:`~soi_mlflow.tracking.spool_writer.retry_interval` seconds and at every write, the
end of training tries once more (:mod:`soi_mlflow.tracking.run_end`), and ``soi-mlflow
sync`` sends what is left (:mod:`soi_mlflow.tracking.sync`).
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

This module keeps the spool on disk and sends it; the names that moved out of it
(:data:`MOVED`) are still importable from here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import END_REASON_TAG, HEARTBEAT_TAG, first_line, probe_http
from soi_mlflow.tracking.local import run_folder, soi_home
from soi_mlflow.tracking.store import client_for

try:  # POSIX; elsewhere one process at a time is assumed
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MANIFEST = "manifest.jsonl"
HEADER = "spool.json"
KINDS = ("artifact", "metrics", "end")
METRICS_PER_REQUEST = 1000  # MLflow's log_batch limit

# names once defined here, now in the module of their job: still importable from here
MOVED = {
    "soi_mlflow.tracking.spool_writer": (
        "RETRY_S",
        "RETRY_ENV",
        "RETRY_BOUNDS_S",
        "retry_interval",
        "SpoolWriter",
    ),
    "soi_mlflow.tracking.run_end": ("end_run", "end_follows", "report_incomplete"),
    "soi_mlflow.tracking.sync": ("SyncSettings", "sync"),
}


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
                client = client_for(self.tracking_uri)
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


def __getattr__(name: str) -> Any:
    """The moved names (:data:`MOVED`), imported from their new module when first asked."""
    import importlib

    for module, names in MOVED.items():
        if name in names:
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Fail fast on the tracking store, end every run with a reason, and spot stale runs.

- :func:`check_tracking` probes a tracking URI before any data is loaded: an HTTP server
  must answer within :data:`PROBE_TOTAL_S` seconds, a SQLite file must sit in a writable
  folder. :func:`bound_http_retries` bounds MLflow's own HTTP retries
  (:data:`HTTP_RETRY_DEFAULTS`), which by default wait minutes on a dead server, in the
  command's process only.
- :func:`get_run` / :func:`check_experiment_name` turn MLflow's "not found" into a
  :class:`~soi_mlflow.errors.SoiInputError` naming the id and the store.
- :func:`end_status` / :func:`end_reason`: how a run ends after an exception (runs end
  through their spool: :func:`soi_mlflow.tracking.run_end.end_run`).
- :func:`probe_http`: the one probe of an HTTP server's ``/health``; :data:`RUN_ID_PATTERN`
  and :func:`check_run_id`: the one run-id rule (``first_line``, an error in one line, is
  :func:`soi_mlflow.errors.first_line`, imported here for this module's callers).
- :func:`is_stale`: a RUNNING run whose last sign of progress (the ``soi.heartbeat`` tag the
  recorder sends with an epoch's metrics, at most every :data:`HEARTBEAT_S`, else its
  start) is older than :func:`stale_after_s`.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from soi_mlflow.errors import SoiInputError, first_line
from soi_mlflow.tracking.store import client_for
from soi_mlflow.tracking.tags import END_REASON, HEARTBEAT

# MLflow's defaults (7 retries, backoff factor 2, 120 s timeout) wait ~4 minutes on a dead
# server. These bounds, used unless the user set the variables: at most 2 retries 1-2 s
# apart and 10 s per request, so a refused connection fails in < 5 s and a hung one in < 40 s.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
PROBE_ATTEMPTS = 3  # tries of the pre-flight probe of an HTTP server ...
PROBE_TIMEOUT_S = 2.0  # ... each waiting at most this long ...
PROBE_PAUSE_S = 1.0  # ... with this pause between them: PROBE_TOTAL_S at most
PROBE_TOTAL_S = PROBE_ATTEMPTS * PROBE_TIMEOUT_S + (PROBE_ATTEMPTS - 1) * PROBE_PAUSE_S
STALE_AFTER_S = 1800.0  # default; SOI_MLFLOW_STALE_AFTER (seconds) overrides
# A recorder's metrics carry the heartbeat tag at most this often (a tag costs the store
# a write per epoch): far inside STALE_AFTER_S, so a live run never looks stale.
HEARTBEAT_S = 60.0
HEARTBEAT_TAG = HEARTBEAT  # tracking/tags.py
END_REASON_TAG = END_REASON

# MLflow's own rule for run ids (mlflow/utils/validation.py, _RUN_ID_REGEX), in ASCII
# (MLflow's \w also takes other scripts' letters; its own ids are 32 hex digits): an id that
# passes cannot be "." or "..", a path or a shell word, so it may name a folder (local.py)
RUN_ID_PATTERN = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$", re.ASCII)

_checked: dict[str, float] = {}  # tracking URI -> when it last passed check_tracking


class TrackingUnavailable(SoiInputError):
    """The tracking store cannot be reached or written; the message says what to do."""


class RunTerminated(SystemExit):
    """Raised in the main thread on SIGTERM, so a scheduler's stop ends the run KILLED."""

    def __init__(self) -> None:
        super().__init__(143)


def bound_http_retries() -> None:
    """Bound MLflow's HTTP retries (see :data:`HTTP_RETRY_DEFAULTS`) unless already set.

    For the ``soi-mlflow`` command's own process only: the library leaves the environment
    as it finds it (its sends are guarded by the probe below instead)."""
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)


def check_tracking(uri: str, *, force: bool = False) -> None:
    """Fail within :data:`PROBE_TOTAL_S` s unless the store at ``uri`` can be used.

    Checked once per URI and process (a later call returns at once unless ``force``)."""
    if not force and uri in _checked:
        return
    db = None
    if uri.startswith(("http://", "https://")):
        _probe_http(uri)
    elif uri.startswith("sqlite:"):
        db = _check_sqlite(uri)
    elif uri.startswith("file:") or "://" not in uri:
        _check_folder(Path(uri.removeprefix("file://").removeprefix("file:")), uri)
    with _creation_lock(db):
        _api_call(uri)
    _checked[uri] = time.time()


@contextmanager
def _creation_lock(db: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``.<db name>.lock`` beside a SQLite database while MLflow
    first opens it: two processes that start on a new database at once would otherwise
    both create its tables, and one fails ("table experiments already exists")."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        fcntl = None
    if db is None or fcntl is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / f".{db.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def probe_http(uri: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """One try at ``<uri>/health``: None if something answers (any HTTP status: a proxy
    without ``/health`` too; the request that follows decides), else why not. Stores that
    are not HTTP servers: None."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):  # noqa: S310
            return None
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc)) or type(exc).__name__


def _probe_http(uri: str) -> None:
    last = ""
    start = time.monotonic()
    for attempt in range(PROBE_ATTEMPTS):
        error = probe_http(uri)
        if error is None:
            return
        last = error
        if attempt + 1 < PROBE_ATTEMPTS:
            time.sleep(PROBE_PAUSE_S)
    # the time really taken: ~2 s for a refused connection (the pauses), up to
    # PROBE_TOTAL_S for one that is accepted but never answered (the timeouts too)
    elapsed = time.monotonic() - start
    raise TrackingUnavailable(
        f"tracking server {uri} is not reachable ({last}; {PROBE_ATTEMPTS} tries in "
        f"{elapsed:.1f} s). Start it (e.g. `mlflow server --host 127.0.0.1 --port "
        f"{uri.rsplit(':', 1)[-1].strip('/')}`), fix --tracking-uri / MLFLOW_TRACKING_URI, or "
        "log locally with --tracking-uri sqlite:///mlflow.db. Nothing was loaded or trained."
    )


def _check_sqlite(uri: str) -> Path | None:
    """The database file of a SQLite URI, once its folder is known to be writable."""
    path = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else ""
    if not path or path == ":memory:":
        return None
    path = "/" + path.lstrip("/") if uri.startswith("sqlite:////") else path
    db = Path(path)
    if db.exists() and not os.access(db, os.W_OK):
        raise TrackingUnavailable(f"tracking store {uri}: the file {db} is not writable")
    _check_folder(db.parent, uri)
    return db


def _check_folder(folder: Path, uri: str) -> None:
    existing = folder.resolve()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise TrackingUnavailable(
            f"tracking store {uri}: the folder {existing} is not writable; pick another "
            "--tracking-uri"
        )


def _api_call(uri: str) -> None:
    """One cheap read through MLflow itself (creates a fresh SQLite store's tables)."""
    from mlflow.exceptions import MlflowException

    try:
        client_for(uri).search_experiments(max_results=1)
    except MlflowException as exc:
        raise TrackingUnavailable(
            f"tracking store {uri} refused a request: {first_line(exc)}. Check the URI, "
            "the server's log and its credentials (MLFLOW_TRACKING_TOKEN / _USERNAME)."
        ) from None
    except Exception as exc:  # requests' errors after MLflow's bounded retries
        raise TrackingUnavailable(
            f"tracking store {uri} did not answer: {first_line(exc)}"
        ) from None


def get_run(client: Any, run_id: Any, uri: str, what: str = "run id") -> Any:
    """``client.get_run(run_id)``, or a clear error naming the id, the store and what to do."""
    from mlflow.exceptions import MlflowException

    run_id = check_run_id(run_id, what)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise SoiInputError(
                f"{what} {run_id!r}: no such run in the tracking store {uri}. List runs with "
                "`mlflow runs list --experiment-id <id>` or soi_mlflow.find_runs(), and check "
                "--tracking-uri."
            ) from None
        raise TrackingUnavailable(f"tracking store {uri}: {first_line(exc)}") from None
    if run.info.lifecycle_stage == "deleted":
        raise SoiInputError(f"{what} {run_id}: the run is deleted; restore it first")
    return run


def check_run_id(run_id: Any, what: str = "run id") -> str:
    """A run id a user typed, stripped; refused unless it is shaped like one (MLflow's
    rule: letters, digits, ``_`` and ``-``, e.g. 32 hex digits), before any store is asked."""
    text = run_id.strip() if isinstance(run_id, str) else ""
    if not RUN_ID_PATTERN.fullmatch(text):
        raise SoiInputError(
            f"{what} {run_id!r}: expected an MLflow run id (32 hex digits, as the run page "
            "or `mlflow runs list` shows it)"
        )
    return text


def check_experiment_name(name: Any) -> str:
    """An experiment name a user typed: non-empty text of at most 500 characters."""
    if not isinstance(name, str) or not name.strip() or len(name) > 500 or "\x00" in name:
        raise SoiInputError(
            f"experiment name {name!r}: expected 1-500 characters of text (not only spaces)"
        )
    return name


def end_status(exc: BaseException | None) -> str:
    """FINISHED without an exception; KILLED for Ctrl-C and SIGTERM; FAILED otherwise."""
    if exc is None:
        return "FINISHED"
    if isinstance(exc, (KeyboardInterrupt, RunTerminated)) or type(exc).__name__ == (
        "SIGTERMException"
    ):
        return "KILLED"
    return "FAILED"


def end_reason(exc: BaseException) -> str:
    """A tag-sized reason: the exception type and the first line of its message."""
    if isinstance(exc, RunTerminated) or type(exc).__name__ == "SIGTERMException":
        return "SIGTERM"
    if isinstance(exc, KeyboardInterrupt):  # a subclass may say why it stopped the run
        told = str(exc).strip() if type(exc) is not KeyboardInterrupt else ""
        return told[:1000] or "KeyboardInterrupt (Ctrl-C)"
    return first_line(exc, 1000)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises :class:`RunTerminated`,
    so ``finally`` blocks and run endings run as on Ctrl-C. Lightning's own SIGTERM
    handling during ``fit`` calls this handler too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise RunTerminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stale_after_s() -> float:
    """Seconds without progress after which a RUNNING run counts as stale."""
    value = os.environ.get("SOI_MLFLOW_STALE_AFTER")
    try:
        return float(value) if value else STALE_AFTER_S
    except ValueError:
        raise SoiInputError(
            f"SOI_MLFLOW_STALE_AFTER={value!r}: expected a number of seconds"
        ) from None


def last_progress(run: Any) -> float:
    """Unix seconds of the run's last sign of life: its heartbeat tag, else its start."""
    beat = run.data.tags.get(HEARTBEAT_TAG)
    try:
        return max(float(beat), run.info.start_time / 1000) if beat else run.info.start_time / 1000
    except ValueError:
        return run.info.start_time / 1000


def is_stale(run: Any, now: float | None = None) -> bool:
    """RUNNING, but no progress for :func:`stale_after_s` seconds (a killed process)."""
    if run.info.status != "RUNNING":
        return False
    return (now or time.time()) - last_progress(run) > stale_after_s()


def stale_message(run: Any) -> str:
    age = (time.time() - last_progress(run)) / 60
    return (
        f"run {run.info.run_id} is RUNNING but has shown no progress for {age:.0f} min "
        f"(stale after {stale_after_s() / 60:.0f} min): its process probably died. Its "
        "finished epochs are usable; resume it with `soi-mlflow train --resume "
        f"{run.info.run_id}` or end it: MlflowClient().set_terminated(run_id, 'KILLED')."
    )

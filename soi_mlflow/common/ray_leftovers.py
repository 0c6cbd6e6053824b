"""Ray processes a dead local cluster left behind, found and ended before a new one starts.

A local Ray cluster whose driver is killed (SIGKILL, an out-of-memory kill) loses its
raylet and GCS server, but the raylet's two agents (``ray::DashboardAgent``,
``ray::RuntimeEnvAgent``, about 185 MB together) live on and ignore SIGTERM. What is
ended here, and only that (Linux ``/proc``; elsewhere nothing is done):

- a process of this user, running Ray's own code (titled ``ray::...``, or a program of
  the installed ``ray`` package),
- that holds a file open inside a Ray session folder (``.../session_<date>_<pid>/``: its
  logs),
- whose session has neither a ``raylet`` nor a ``gcs_server`` left: no process on this
  machine names that session on its command line as either program does. Sessions are
  compared by their folder's name (``session_<date>_<pid>``, unique), not its path: a
  raylet names the folder under the temp dir as given (``--temp-dir``, ``RAY_TMPDIR``),
  open files name it with links resolved, and a link in that path must not make a live
  session look dead;
- and whose session folder lies in the Ray temp folder a new local cluster of this
  process would use (``$RAY_TMPDIR/ray``, else ``$TMPDIR/ray``, else ``/tmp/ray``: Ray's
  own rule), so clusters under another temp folder are never looked at.

A live cluster (another user's, another driver's, ``ray start --head``) always has its
raylet and GCS server, so nothing of it is touched; nor is any driver (a Python program
that imports Ray runs no program of the ``ray`` package).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
SESSION = re.compile(r"^(.*/session_\d{4}-\d{2}-\d{2}_[\d_-]+)(?:/|$)")
CORE = ("raylet", "gcs_server")  # a session is alive while one of these runs


def ray_temp_root() -> Path:
    """The folder a local Ray cluster started from this process puts its sessions in, by
    Ray's rule (``ray._common.utils.get_default_ray_temp_dir``), links resolved."""
    system = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return (Path(system) / "ray").resolve()


@dataclass(frozen=True)
class Leftover:
    """A process of a dead Ray session: its pid, title and session folder."""

    pid: int
    title: str
    session: str


def _ray_folders() -> tuple[str, ...]:
    """The installed ``ray`` package's folder, as found and with links resolved."""
    spec = importlib.util.find_spec("ray")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        return ()
    return tuple({str(Path(locations[0])) + os.sep, str(Path(locations[0]).resolve()) + os.sep})


def _argv(pid: str) -> list[str]:
    with contextlib.suppress(OSError):
        raw = (PROC / pid / "cmdline").read_bytes()
        return [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    return []


def _sessions_open(pid: str) -> set[str]:
    """The Ray session folders the process holds a file open in."""
    found = set()
    with contextlib.suppress(OSError):
        for fd in (PROC / pid / "fd").iterdir():
            with contextlib.suppress(OSError):
                match = SESSION.match(os.readlink(fd))
                if match:
                    found.add(match[1])
    return found


def _owner(pid: str) -> int | None:
    with contextlib.suppress(OSError):
        return (PROC / pid).stat().st_uid
    return None


def find_leftovers(temp_root: str | Path | None = None) -> list[Leftover]:
    """Processes of this user that dead local Ray sessions under ``temp_root`` (default
    :func:`ray_temp_root`) left (see the module)."""
    root = Path(temp_root).resolve() if temp_root is not None else ray_temp_root()
    ray = _ray_folders()
    if not ray or not PROC.is_dir():
        return []
    live: set[str] = set()  # names of sessions with a raylet or GCS server still running
    candidates: list[tuple[int, str, set[str]]] = []
    me = os.getuid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        argv = _argv(entry.name)
        if not argv:
            continue
        if Path(argv[0]).name in CORE:
            live.update(Path(m[1]).name for a in argv if (m := SESSION.search(a.split("=", 1)[-1])))
            continue
        is_ray = argv[0].startswith("ray::") or any(a.startswith(ray) for a in argv[:2])
        if is_ray and _owner(entry.name) == me:
            sessions = {s for s in _sessions_open(entry.name) if Path(s).parent == root}
            if sessions:
                candidates.append((int(entry.name), " ".join(argv)[:80], sessions))
    return [
        Leftover(pid, title, min(sessions))
        for pid, title, sessions in candidates
        if not {Path(s).name for s in sessions} & live
    ]


def end_leftovers(grace_s: float = 2.0, temp_root: str | Path | None = None) -> list[Leftover]:
    """End the processes :func:`find_leftovers` names: SIGTERM, then SIGKILL those still
    there after ``grace_s`` (Ray's agents ignore SIGTERM). Returns what was ended."""
    found = find_leftovers(temp_root)
    for leftover in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(leftover.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    waiting = list(found)
    while waiting and time.monotonic() < deadline:
        time.sleep(0.1)
        waiting = [p for p in waiting if _alive(p.pid)]
    for leftover in waiting:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(leftover.pid, signal.SIGKILL)
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, already ended, does not)."""
    with contextlib.suppress(OSError):
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    return False

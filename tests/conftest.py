"""Shared test set-up: every test gets its own token cache, and no test reaches the hub."""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# One torch thread per test process, set before anything imports torch (training
# subprocesses inherit it): pytest-xdist runs a process per core, and a second intra-op
# thread in each only oversubscribes the cores, its OpenMP threads spinning while they
# wait on the other process's work. Set OMP_NUM_THREADS yourself to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Temporary folders (every test's SQLite store, servers' stores, downloads) in memory where
# there is room: an SQLite commit waits for fsync, 15 ms on this machine's disk and 0.05 ms
# on tmpfs, and MLflow commits a few dozen times per run. SOI_TESTS_RAM_TMP=0 (or
# --basetemp, or a TMPDIR of your own) keeps the default.
RAM = Path("/dev/shm")
RAM_MIN_FREE = 4 * 2**30
RAM_TMP = pytest.StashKey[Path]()


def _ram_has_room() -> bool:
    try:
        stat = os.statvfs(RAM)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize >= RAM_MIN_FREE and os.access(RAM, os.W_OK)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """On the controller (pytest-xdist's workers inherit TMPDIR): a fresh folder on
    /dev/shm as the temporary directory of the run and of every process it starts."""
    if hasattr(config, "workerinput") or config.option.basetemp or "TMPDIR" in os.environ:
        return
    if os.environ.get("SOI_TESTS_RAM_TMP") == "0" or not _ram_has_room():
        return
    folder = Path(tempfile.mkdtemp(prefix="soi-tests-", dir=RAM))
    folder.chmod(0o1777)  # as /tmp: tests/postgres.py's cluster belongs to user postgres
    config.stash[RAM_TMP] = folder
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected: count what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files marked ``long`` first, then the others by their number of tests, most first
    (what pytest-xdist's own reordering does; it cannot put a long file of two tests
    first): a study of minutes starts with the run instead of running alone at its end,
    while the other process sits idle. Each file's tests keep their order."""
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)

    def first(tests: list[pytest.Item]) -> tuple[bool, int]:
        return not any(t.get_closest_marker("long") for t in tests), -len(tests)

    items[:] = [t for tests in sorted(files.values(), key=first) for t in tests]


def pytest_unconfigure(config: pytest.Config) -> None:
    """The in-memory folder goes with the run (pytest keeps no older ones there). Then the
    process leaves out of the interpreter's last garbage collections what it holds now
    (``gc.freeze``, as the ``soi-mlflow`` script does, bench/cli_exit.py): with torch,
    Lightning and MLflow loaded they take 2-5 s at exit in each xdist process."""
    folder = config.stash.get(RAM_TMP, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("TMPDIR", None)
        tempfile.tempdir = None
    gc.freeze()


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOI_MLFLOW_CACHE", str(tmp_path_factory.getbasetemp() / "soi-cache"))


def separate_store(folder: Path, mp: pytest.MonkeyPatch) -> Iterator[str]:
    """A SQLite store in ``folder/store`` while the working directory is ``folder/work``.

    The store never coincides with MLflow's default (``./mlflow.db``), so code that loses
    the URI it was given fails here as it does for users; a ``mlflow.db`` that appears in
    the working directory fails the test. Artifacts of new experiments land in
    ``folder/work/mlruns`` (MLflow's convention for SQLite stores)."""
    work, db = folder / "work", folder / "store"
    work.mkdir()
    db.mkdir()
    mp.chdir(work)
    mp.delenv("MLFLOW_RUN_ID", raising=False)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield f"sqlite:///{db}/mlflow.db"
    stray = work / "mlflow.db"
    assert not stray.exists(), f"a stray {stray} appeared: something used MLflow's default"


@pytest.fixture(autouse=True)
def _process_state_restored() -> Iterator[None]:
    """Tests that act as a user's script (``mlflow.set_tracking_uri``, ``start_run``)
    change MLflow's globals and the environment: put both back after each test, so no
    test runs on another's leftovers."""
    env = dict(os.environ)
    yield
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        # `mlflow.set_experiment` has no public undo; a test acting as a user's script
        # (tests/test_transformers_trace.py) would leave its experiment id to whichever
        # test file pytest-xdist runs next in this process, in another store
        fluent = sys.modules.get("mlflow.tracking.fluent")
        if fluent is not None and hasattr(fluent, "_active_experiment_id"):
            fluent._active_experiment_id = None
    os.environ.clear()
    os.environ.update(env)


@pytest.fixture
def store(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite tracking store, outside the working directory (see separate_store)."""
    yield from separate_store(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SQLite tracking store for a whole test module (creating one costs ~3 s)."""
    with pytest.MonkeyPatch.context() as mp:
        yield from separate_store(tmp_path_factory.mktemp("store"), mp)


def _fault_tally() -> dict[str, int] | None:
    faults = sys.modules.get("faulthelp")
    return dict(faults.SUMMARY) if faults is not None and faults.SUMMARY["faults"] else None


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands its fault tally to the controller."""
    tally = _fault_tally()
    if tally and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["fault_tally"] = tally


def pytest_testnodedown(node, error) -> None:
    """The controller adds up the workers' fault tallies (pytest-xdist's hook)."""
    tally = getattr(node, "workeroutput", {}).get("fault_tally")
    if tally:
        for key, value in tally.items():
            WORKER_FAULTS[key] = WORKER_FAULTS.get(key, 0) + value


WORKER_FAULTS: dict[str, int] = {}


def pytest_terminal_summary(terminalreporter) -> None:
    """The fault-injection suite's one-line summary (docs/reliability.md quotes it), from
    this process or, under pytest-xdist, summed over the workers."""
    s = _fault_tally() or WORKER_FAULTS
    if s.get("faults"):
        terminalreporter.write_line(
            f"fault injection: {s['faults']} faults injected, {s['recovered']} runs "
            f"recovered, {s['rows']} trace rows compared, rows lost: {s['lost']}"
        )

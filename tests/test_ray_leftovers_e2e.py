"""What a SIGKILLed driver's local Ray cluster leaves, for real: its raylet's two agents
outlive it (they ignore SIGTERM); the next local cluster the executor starts ends them,
and leaves a live cluster of another driver alone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from faulthelp import wait_for

from soi_mlflow.common.ray_leftovers import find_leftovers

pytest.importorskip("ray")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform != "linux", reason="/proc")]

DRIVER = """
import os, sys
from soi_mlflow.common.executor import ExecutorSettings, make_executor
with make_executor(ExecutorSettings(executor="ray")) as ex:
    print("MAPPED", ex.map(lambda x: x * 2, [1, 2]), flush=True)
    print("READY", flush=True)
    for line in sys.stdin:  # each line: map again (the cluster still works), "end": stop
        if line.strip() == "end":
            break
        print("MAPPED", ex.map(lambda x: x + 1, [1]), flush=True)
"""


def _env(temp: Path) -> dict[str, str]:
    """A driver's environment: its local cluster's sessions under ``temp``/ray, this
    test's own Ray temp folder, so that a cluster another test starts meanwhile (which
    ends leftovers under /tmp/ray) never touches this test's (a short path: Ray's socket
    paths must stay under 108 bytes)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return env | {"RAY_TMPDIR": str(temp)}


def _driver(tmp_path: Path, temp: Path, name: str) -> tuple[subprocess.Popen, Path]:
    """A driver process that starts a local cluster through the executor and waits."""
    log = tmp_path / f"{name}.log"
    env = _env(temp)
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        stdin=subprocess.PIPE,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    wait_for(lambda: "READY" in log.read_text(), 180, f"{name}'s cluster", proc)
    return proc, log


def _session_processes(temp: Path, session_pid: int) -> list[int]:
    """Pids of the processes whose session folder the driver ``session_pid`` named
    (Ray names a session folder after the process that started it)."""
    found = find_leftovers(temp / "ray")
    return [p.pid for p in found if p.session.endswith(f"_{session_pid}")]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_next_local_cluster_ends_what_a_killed_driver_left(tmp_path) -> None:
    temp = Path(tempfile.mkdtemp(prefix="rl", dir="/tmp"))
    live, live_log = _driver(tmp_path, temp, "live")  # another driver's cluster, in use
    killed, _ = _driver(tmp_path, temp, "killed")
    try:
        assert not _session_processes(temp, killed.pid)  # its raylet runs: nothing is left over
        assert not _session_processes(temp, live.pid)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        agents = {"ray::DashboardAgent", "ray::RuntimeEnvAgent"}

        def left_over() -> list:
            found = find_leftovers(temp / "ray")
            found = [p for p in found if p.session.endswith(f"_{killed.pid}")]
            return found if agents <= {p.title.split()[0] for p in found} else []

        # its raylet and GCS server end with it; its agents stay (others may linger a while)
        left = wait_for(left_over, 120, "the killed driver's agents, left over")
        next_one = subprocess.run(
            [sys.executable, "-c", DRIVER],
            input="end\n",
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=_env(temp),
        )
        assert next_one.returncode == 0, next_one.stdout[-3000:] + next_one.stderr[-3000:]
        assert "ended " in next_one.stdout and Path(left[0].session).name in next_one.stdout
        assert not [p.pid for p in left if _alive(p.pid)]
        assert "MAPPED [2, 4]" in next_one.stdout  # and its own cluster started and worked
        live.stdin.write("again\n")
        live.stdin.flush()
        wait_for(lambda: "MAPPED [2]" in live_log.read_text(), 60, "the live cluster", live)
    finally:
        for proc in (live, killed):
            if proc.poll() is None:
                proc.stdin.write("end\n")
                proc.stdin.flush()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(temp, ignore_errors=True)
    assert live.returncode == 0, live_log.read_text()[-3000:]
    assert not _session_processes(temp, live.pid)  # shut down cleanly: nothing left

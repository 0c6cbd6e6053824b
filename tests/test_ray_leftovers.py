"""Which processes ``find_leftovers`` names, with stand-ins for Ray's (fast; the real
thing is in test_ray_leftovers_e2e.py): an agent of a session whose raylet runs is never
named, even when the raylet names its session folder through a link; nor one under
another Ray temp folder. The stand-ins live in this test's own temp folder, so a local
cluster that another test starts meanwhile (which ends leftovers under ``/tmp/ray``)
never sees them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from faulthelp import wait_for

from soi_mlflow.common.ray_leftovers import find_leftovers

pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc")

HOLD = "import sys, time; f = open(sys.argv[1], 'a'); print('open', flush=True); time.sleep(120)"
SLEEP = "import time; time.sleep(120)"


def _start(argv0: str, *args: str) -> subprocess.Popen:
    """Python, titled ``argv0`` on its command line, running ``-c`` ``args``."""
    return subprocess.Popen(
        [argv0, "-c", *args], executable=sys.executable, stdout=subprocess.PIPE, text=True
    )


def test_a_session_whose_raylet_names_it_through_a_link_is_live(tmp_path) -> None:
    session = f"session_2000-01-01_00-00-00_000000_{os.getpid()}"
    logs = tmp_path / "real" / session / "logs"
    logs.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")  # the temp dir as a raylet is given it
    raylet = _start(str(tmp_path / "raylet"), SLEEP, f"--session_dir={tmp_path}/link/{session}")
    agent = _start("ray::FakeAgent", HOLD, str(tmp_path / "link" / session / "logs" / "a.log"))
    try:
        assert agent.stdout.readline().strip() == "open"
        wait_for(lambda: Path(f"/proc/{raylet.pid}/cmdline").read_bytes(), 30, "the raylet")
        temp = tmp_path / "link"  # the Ray temp folder, as a raylet is given it
        assert agent.pid not in [p.pid for p in find_leftovers(temp)]  # its raylet runs
        raylet.kill()
        raylet.wait(timeout=30)
        assert agent.pid not in [p.pid for p in find_leftovers()]  # not under /tmp/ray
        (left,) = [p for p in find_leftovers(temp) if p.pid == agent.pid]  # left over
        assert left.title.startswith("ray::FakeAgent") and Path(left.session).name == session
    finally:
        for proc in (raylet, agent):
            proc.kill()
            proc.wait(timeout=30)

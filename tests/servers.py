"""A real ``mlflow server`` on 127.0.0.1 for tests, started and stopped by the test."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPO = Path(__file__).resolve().parents[1]


def plugin_path(folder: Path) -> str:
    """A ``PYTHONPATH`` under which ``mlflow`` finds soi-mlflow's entry points.

    ``pip install -e .`` (``make setup``) registers them; a checkout used without
    installing gets the same entry points, read from ``pyproject.toml``, as package
    metadata in ``folder`` (only the child processes given this path see it)."""
    from importlib.metadata import entry_points

    import tomllib

    parts = [str(REPO)]
    if "soi" not in entry_points(group="mlflow.app").names:
        project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
        info = folder / "soi_mlflow_checkout-0.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: soi-mlflow-checkout\nVersion: 0\n"
        )
        lines = []
        for group, points in project["entry-points"].items():
            lines.append(f"[{group}]")
            lines += [f"{name} = {target}" for name, target in points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        parts.insert(0, str(folder))
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 with proxied artifacts in ``folder`` (SQLite
    there unless ``backend_uri``), optionally ``--app-name APP`` with soi-mlflow's entry
    points visible. :meth:`stop` and :meth:`start` again keep its port and its store, as
    a restarted server would."""

    def __init__(
        self,
        folder: Path,
        app_name: str | None = None,
        backend_uri: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            backend_uri or f"sqlite:///{folder}/server.db",
            "--artifacts-destination",
            str(folder / "artifacts"),
        ]
        # MLflow's job runner (GenAI scorers) starts a dozen worker processes: not needed here
        self.env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
        if app_name:
            self.cmd += ["--app-name", app_name]
            self.env["PYTHONPATH"] = plugin_path(folder / "plugin")
        self.proc: subprocess.Popen | None = None
        self.log_path = folder / "server.log"

    def start(self, timeout_s: float = 90) -> str:
        """Start (again) and wait until ``/health`` answers; return the URI."""
        log = open(self.log_path, "a")  # noqa: SIM115 - the child holds it; closed by stop
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.folder,
            env=self.env,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self.uri
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow server did not start: {self.log()[-2000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop the server (its whole process group) and wait until it has gone."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def mlflow_server(
    folder: Path,
    timeout_s: float = 90,
    app_name: str | None = None,
    backend_uri: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Start a :class:`MlflowServer` in ``folder``; yield its URI; stop it."""
    server = MlflowServer(folder, app_name, backend_uri, env)
    try:
        yield server.start(timeout_s)
    finally:
        server.stop()

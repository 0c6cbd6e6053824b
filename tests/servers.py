"""A real ``mlflow server`` on 127.0.0.1 for tests, started and stopped by the test."""

from __future__ import annotations

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


@contextmanager
def mlflow_server(
    folder: Path,
    timeout_s: float = 90,
    app_name: str | None = None,
    backend_uri: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Start a server with proxied artifacts in ``folder`` (SQLite there unless
    ``backend_uri``), optionally ``--app-name APP`` with soi-mlflow's entry points
    visible; yield its URI."""
    port = free_port()
    log = open(folder / "server.log", "w")  # noqa: SIM115 - closed below
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend_uri or f"sqlite:///{folder}/server.db",
        "--artifacts-destination",
        str(folder / "artifacts"),
    ]
    # MLflow's job runner (GenAI scorers) starts a dozen worker processes: not needed here
    child_env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    if app_name:
        cmd += ["--app-name", app_name]
        child_env["PYTHONPATH"] = plugin_path(folder / "plugin")
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=folder,
        env=child_env,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()

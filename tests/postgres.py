"""A real PostgreSQL server on 127.0.0.1 for tests (Debian's ``postgresql`` package).

Run as root (as CI does), the cluster belongs to the ``postgres`` user the package
creates; otherwise to the current user. Without the binaries the caller skips, saying why.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from servers import free_port


def pg_bindir() -> str | None:
    """Folder of ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return str(Path(found[-1]).parent)
    initdb = shutil.which("initdb")
    return str(Path(initdb).parent) if initdb else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throwaway cluster; yield a SQLAlchemy URI of its database; remove it after.

    The cluster lives in its own folder under the system temp folder, since the
    ``postgres`` user cannot enter pytest's root-only temp folders."""
    bindir = pg_bindir()
    assert bindir, "PostgreSQL is not installed"
    folder = Path(tempfile.mkdtemp(prefix="soi-pg-"))
    data = folder / "pgdata"
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    run(f"{bindir}/initdb", "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8")
    opts = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off"
    run(
        f"{bindir}/pg_ctl", "-D", str(data), "-o", opts, "-l", str(folder / "pg.log"), "-w", "start"
    )
    try:
        run(f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow")
        yield f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        run(f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)

"""A DuckDB connection with a memory limit and a bounded spill folder, removed afterwards.

The memory limit is the analysing process's: DuckDB gets a share of it
(:data:`DUCKDB_SHARE`), since its own limit covers its buffers, not the process. DuckDB
keeps its working memory under ``memory_limit`` and spills the rest to
``temp_directory``; ``max_temp_directory_size`` bounds the spill, so a query that would
need more fails with DuckDB's out-of-disk error instead of filling the disk. The folder
is a fresh temporary one, removed when the connection closes (a library leaves the
process, and the disk, as it found them).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from soi_mlflow.errors import SoiInputError

_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b)\s*$", re.IGNORECASE)
MIN_MEMORY = 32 * 2**20  # DuckDB needs a few buffers per thread to run at all
DEFAULT_SHARE = 4  # the default memory limit: a quarter of the machine's memory
# The memory limit bounds the whole analysing process; DuckDB's buffers get this share of
# it (cli/analyze.py's help says 40 %). The rest is for what DuckDB's limit does not cover:
# Python and the libraries (~0.15 GB), each run's result tables, and what DuckDB's
# allocator keeps after a query (0.2-0.4 GB). bench/analysis_scale.py, 20 runs of 1M
# examples, --memory-limit 1GB: peak 0.80 GiB (1.44 GiB when DuckDB had all of it).
DUCKDB_SHARE = 0.4


def parse_size(text: str | int, field: str, minimum: int = 1) -> int:
    """Bytes from ``"2GB"``, ``"512MiB"``, ``"1.5 GB"`` (or an int of bytes); a clear
    error naming ``field`` otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        found = _SIZE.match(str(text))
        if found is None or found.group(2).lower() not in _UNITS:
            raise SoiInputError(
                f"{field}: expected a size with a unit, such as 512MB, 2GB or 1.5GiB; got {text!r}"
            )
        size = int(float(found.group(1)) * _UNITS[found.group(2).lower()])
    if size < minimum:
        raise SoiInputError(
            f"{field}: expected at least {minimum // 2**20} MiB, got {text!r}"
            if minimum >= 2**20
            else f"{field}: expected a positive size, got {text!r}"
        )
    return size


def machine_memory() -> int:
    """This machine's memory in bytes, or its container's limit when that is smaller."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for cgroup in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(cgroup).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


@dataclass(frozen=True)
class Limits:
    """The analysis's bounds: ``memory`` (the process's, DuckDB's buffers taking
    :data:`DUCKDB_SHARE` of it) and ``spill`` in bytes (None: the defaults, a quarter
    of the machine's memory and half the free disk of the temporary folder), ``threads``
    (None: DuckDB's default, one per core) and the folder the spill folder is made in."""

    memory: int | None = None
    spill: int | None = None
    threads: int | None = None
    temp_root: str | None = None

    @classmethod
    def parse(cls, memory: str | None = None, spill: str | None = None, **kw) -> Limits:
        """From option values such as ``"2GB"``; errors name ``--memory-limit`` and
        ``--spill-limit``."""
        return cls(
            memory=None if memory is None else parse_size(memory, "--memory-limit", MIN_MEMORY),
            spill=None if spill is None else parse_size(spill, "--spill-limit", MIN_MEMORY),
            **kw,
        )

    @property
    def memory_bytes(self) -> int:
        """The whole process's budget."""
        return self.memory if self.memory is not None else machine_memory() // DEFAULT_SHARE

    @property
    def duckdb_bytes(self) -> int:
        """DuckDB's ``memory_limit``: :data:`DUCKDB_SHARE` of the budget, at least
        :data:`MIN_MEMORY`."""
        return max(MIN_MEMORY, int(self.memory_bytes * DUCKDB_SHARE))

    def spill_bytes(self, folder: str) -> int:
        return self.spill if self.spill is not None else shutil.disk_usage(folder).free // 2


def _config(limits: Limits, folder: str) -> dict[str, object]:
    config: dict[str, object] = {
        "memory_limit": f"{limits.duckdb_bytes // 2**10}KiB",
        "temp_directory": folder,
        "max_temp_directory_size": f"{limits.spill_bytes(folder) // 2**10}KiB",
        "preserve_insertion_order": False,  # lets aggregations stream instead of buffering
    }
    if limits.threads is not None:
        config["threads"] = limits.threads
    return config


def open_connection(limits: Limits | None = None):
    """A DuckDB connection under ``limits`` whose spill folder is removed when the
    connection is closed or collected (for a relation handed to the caller)."""
    import duckdb

    limits = limits or Limits()
    folder = tempfile.mkdtemp(prefix="soi-duckdb-", dir=limits.temp_root)
    try:
        con = duckdb.connect(":memory:", config=_config(limits, folder))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(con, shutil.rmtree, folder, True)
    return con


@contextmanager
def connection(limits: Limits | None = None) -> Iterator:
    """:func:`open_connection` for the length of a ``with`` block: closed and its spill
    folder removed on the way out, whatever happened inside."""
    limits = limits or Limits()
    folder = tempfile.mkdtemp(prefix="soi-duckdb-", dir=limits.temp_root)
    try:
        import duckdb

        con = duckdb.connect(":memory:", config=_config(limits, folder))
        try:
            yield con
        finally:
            con.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

"""10 million trace rows analysed by DuckDB under a 51.2 MB memory limit (its share of a
128 MB limit for the process: ``analysis/duck/limits.py``) equal the in-memory path's
table to 1e-6.

1M examples x 10 epochs (the ratio of rows to memory of 50M rows under 256 MB, which this
test ran before at five times the cost: the limit, not the size, makes DuckDB group per
example-id range, and the test checks it did), each epoch holding a random 95% of the
examples (the sparse path: unobserved epochs). The in-memory side is today's code
(``soi_from_matrix``) on the same arrays the files were written from.
"""

from __future__ import annotations

import pytest
from synthtraces import assert_same_table, write_run

from soi_mlflow.analysis.duck.dynamics import soi_from_files
from soi_mlflow.analysis.duck.engine import Engine
from soi_mlflow.analysis.duck.files import file_rows
from soi_mlflow.analysis.duck.limits import connection
from soi_mlflow.analysis.from_traces import soi_from_matrix


@pytest.mark.e2e
def test_ten_million_rows_in_51_mb_equal_the_in_memory_table(tmp_path) -> None:
    paths, tm = write_run(tmp_path / "traces", 1_000_000, 10, seed=3, visited=0.95, keep=True)
    expected = soi_from_matrix(tm)
    del tm
    engine = Engine.parse("duckdb", "128MB")
    with connection(engine.limits) as con:
        limit = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
        got = soi_from_files(con, file_rows(paths), max_groups=engine.max_groups())
    assert limit == "48.8 MiB"  # 51.2 MB: DuckDB's share of the 128 MB
    assert got.attrs["chunks"] > 1  # grouped per example-id range, not all at once
    assert len(got) == len(expected) > 980_000
    assert (got["n_observed"] < 10).mean() > 0.3  # the sparse path ran: unobserved epochs
    assert_same_table(expected, got)

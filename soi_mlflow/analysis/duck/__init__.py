"""The analysis on DuckDB: trace files read out of core, in bounded memory.

- :mod:`.files`: a run's trace files as (run, epoch, path) rows, shards included;
- :mod:`.limits`: the memory limit and the bounded spill folder of a DuckDB connection;
- :mod:`.dynamics`: per-example dynamics and SOI tables of one run, grouped per run
  and per example-id range, equal to the in-memory path (``matrix.py``) to 1e-6;
- :mod:`.relation`: :func:`traces`, many runs' traces as one relation for users' SQL;
- :mod:`.engine`: which engine ``analyze`` uses for a run (``auto|memory|duckdb``).
"""

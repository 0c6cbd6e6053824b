"""The single-vs-multi study (study kind ``compare``, the ``compare`` command):
``study.py`` (each member alone and the mixture of all, per seed, as child runs; the
summary's table) and ``reanalysis.py`` (the children analysed again, for ``analyze
--parent-run-id``). Its analysis, the transitions between single and multi runs, is
``analysis/report.log_single_vs_multi``: it works on any runs. The names callers use are
imported from here."""

from soi_mlflow.studies.single_vs_multi.study import (
    SingleVsMultiResult,
    SingleVsMultiSettings,
    run,
    summary_rows,
    validate,
)

__all__ = ["SingleVsMultiResult", "SingleVsMultiSettings", "run", "summary_rows", "validate"]

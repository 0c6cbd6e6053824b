"""Analysis: runs and traces read back from MLflow, SOI, cartography, transitions.

Imports neither the model nor Lightning: it needs only traces and run metadata, so it runs
on a laptop against runs trained elsewhere.
"""

from soi_mlflow.analysis.from_traces import soi_from_traces
from soi_mlflow.analysis.runs import (
    find_runs,
    load_examples,
    load_traces,
    soi_table,
    transitions,
)
from soi_mlflow.analysis.soi import DEFAULT, Taxonomy, get_taxonomy, register_taxonomy

__all__ = [
    "DEFAULT",
    "compare_runs",
    "Taxonomy",
    "find_runs",
    "get_taxonomy",
    "load_examples",
    "load_traces",
    "register_taxonomy",
    "soi_from_traces",
    "soi_table",
    "traces",
    "transitions",
]


def __getattr__(name: str):
    """``compare_runs`` draws figures: imported (with matplotlib) only when asked for;
    ``traces`` (many runs' traces as a DuckDB relation) with its reader only when asked for."""
    if name == "compare_runs":
        from soi_mlflow.analysis.two_runs import compare_runs  # deferred: matplotlib

        return compare_runs
    if name == "traces":
        # deferred (not heavy): the DuckDB reader and the executors, ~35 ms of imports
        from soi_mlflow.analysis.duck.relation import traces

        return traces
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

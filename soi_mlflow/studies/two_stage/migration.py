"""Stage 2's SOI migration: where the selected examples went, from their SOI in stage 1
to their SOI over stage 2's epochs, counted per selection and summed over seeds (seed k's
stage 1 with seed k's stage 2: example-pairs, as ``aggregate="pairs"`` counts them)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from soi_mlflow.analysis.soi import Taxonomy
from soi_mlflow.analysis.transition_tables import row_normalised, transition_matrix


def migration_counts(
    pairs: Sequence[tuple[pd.DataFrame, pd.DataFrame]], taxonomy: str | Taxonomy = "default"
) -> pd.DataFrame:
    """Counts by (SOI in stage 1, SOI in stage 2), summed over the (stage-1 table,
    stage-2 table) pairs of one selection; only examples in both tables of a pair count
    (stage 2 traces exactly its selected examples). ``attrs["matched"]``: their number."""
    total: pd.DataFrame | None = None
    matched = 0
    for a, b in pairs:
        counts = transition_matrix(a, b, taxonomy=taxonomy)
        matched += counts.attrs["coverage"]["matched"]
        counts = counts.astype(int)
        if total is None:
            total = counts
            continue
        rows = list(dict.fromkeys([*total.index, *counts.index]))
        cols = list(dict.fromkeys([*total.columns, *counts.columns]))
        total = (
            total.reindex(index=rows, columns=cols, fill_value=0)
            + counts.reindex(index=rows, columns=cols, fill_value=0)
        ).astype(int)
    if total is None:
        total = pd.DataFrame()
    total.index.name, total.columns.name = "soi_stage1", "soi_stage2"
    total.attrs["matched"] = matched
    return total


def migration_rows(selection: str, counts: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """One selection's counts as long rows (selection, soi_stage1, soi_stage2, examples,
    fraction of its stage-1 row, seeds), leaving out stage-1 subsets with no example."""
    fractions = row_normalised(counts)
    rows = [
        {
            "selection": selection,
            "soi_stage1": str(a),
            "soi_stage2": str(b),
            "examples": int(counts.loc[a, b]),
            "fraction_of_row": float(fractions.loc[a, b]),
            "seeds": seeds,
        }
        for a in counts.index
        if counts.loc[a].sum() > 0
        for b in counts.columns
    ]
    cols = ["selection", "soi_stage1", "soi_stage2", "examples", "fraction_of_row", "seeds"]
    return pd.DataFrame(rows, columns=cols)

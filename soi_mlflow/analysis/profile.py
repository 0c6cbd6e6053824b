"""SOI and cartography broken down by an example-table column (``planted``, ``label_name``...)."""

from __future__ import annotations

import pandas as pd

from soi_mlflow.analysis.cartography import regions
from soi_mlflow.analysis.runs import load_examples, soi_table
from soi_mlflow.errors import SoiInputError


def profile_by(
    run_id: str, column: str = "planted", split: str = "train", tracking_uri: str | None = None
) -> pd.DataFrame:
    """Per value of ``column``: its share in each subset and region, ``never_or_forgotten``,
    the count ``n`` and the mean confidence and variability."""
    table = soi_table(run_id, split, tracking_uri=tracking_uri)
    table["region"] = regions(table)
    examples = load_examples(run_id, split, tracking_uri=tracking_uri)
    if column not in examples.columns:
        raise SoiInputError(
            f"the example table of run {run_id} has no column {column!r}; "
            f"columns: {', '.join(examples.columns)}"
        )
    table = table.merge(examples[["example_id", column]], on="example_id")
    soi = pd.crosstab(table[column], table["soi"].astype(str), normalize="index")
    region = pd.crosstab(table[column], table["region"].astype(str), normalize="index")
    out = pd.concat([soi, region], axis=1)
    out["never_or_forgotten"] = out.get("never_learned", 0.0) + out.get("forgotten", 0.0)
    out["n"] = table[column].value_counts()
    out["confidence"] = table.groupby(column)["confidence"].mean()
    out["variability"] = table.groupby(column)["variability"].mean()
    return out

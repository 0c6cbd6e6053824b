"""Figures of what explains transfer (``analysis/transfer_factors.py``): the asymmetry
T - T^T as a diverging heatmap and the top factors against T, one scatter panel each."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from soi_mlflow.analysis.transfer import source_target_heatmap
from soi_mlflow.analysis.transfer_factors import KEYS


def asymmetry_heatmap(square: pd.DataFrame, title: str):
    """T - T^T, rows sources, columns targets; blue, as in the transfer matrix, where the
    row transfers more."""
    values = square.to_numpy(dtype=float)

    def text(i: int, j: int) -> str:
        return "—" if np.isnan(values[i, j]) else f"{values[i, j]:+.3f}"

    labels = ("target", "source", "T[source, target] - T[target, source]")
    written = text if len(square) <= 12 else None
    return source_target_heatmap(square, written, title, labels, cell=(1.2, 1.0))


def factor_scatter(
    factors: pd.DataFrame, means: pd.DataFrame, table: pd.DataFrame, title: str, top: int = 6
):
    """The ``top`` identified factors by |rho| with T (``factor_correlations`` rows with
    ``against`` "T"), each against T over the pairs (``means``: source, target, T); rho
    and its interval in each panel's title. None when no factor is identified."""
    from soi_mlflow.analysis.figures import subplots  # deferred: matplotlib

    rows = table[(table["against"] == "T") & table["problem"].isna()].head(top)
    if rows.empty:
        return None
    data = means.merge(factors, on=KEYS, how="inner")
    cols = min(3, len(rows))
    nrows = math.ceil(len(rows) / cols)
    fig, axes = subplots(nrows, cols, figsize=(4 * cols, 3.4 * nrows + 0.6), squeeze=False)
    for ax, row in zip(axes.flat, rows.itertuples(), strict=False):
        ax.scatter(data[row.factor], data["T"], s=14, color="tab:blue", alpha=0.8)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel(row.factor, fontsize=8)
        ax.set_ylabel("T[source, target]", fontsize=8)
        ax.set_title(
            f"rho = {row.rho:+.2f} [{row.low:+.2f}, {row.high:+.2f}], n={row.n}", fontsize=8
        )
    for ax in list(axes.flat)[len(rows) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig

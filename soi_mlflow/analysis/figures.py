"""Figures (matplotlib): titled, labelled, with counts written where they help.

Made as ``matplotlib.figure.Figure`` objects, without pyplot (matplotlib's way for
libraries and servers): no backend is chosen or switched and pyplot's figure list is not
touched, so a user's notebook keeps its own backend. Saving to PNG needs no backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from soi_mlflow.analysis.cartography import DEFAULT_THRESHOLDS, RegionThresholds
from soi_mlflow.analysis.transition_tables import row_normalised
from soi_mlflow.tracking.artifacts import free_figures

MAX_POINTS = 20_000


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """A figure and its axes, as ``pyplot.subplots`` gives them, without pyplot."""
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(nrows, ncols, **kwargs)


def colormap(name: str) -> Any:
    return mpl.colormaps[name]


def _colors(names: list[str]) -> dict[str, tuple]:
    cmap = colormap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def soi_distribution(table: pd.DataFrame, title: str) -> Figure:
    """Share of each subset per member, with the count on each bar."""
    subsets = [str(c) for c in table["soi"].cat.categories if (table["soi"] == c).any()]
    members = sorted(table["member"].astype(str).unique())
    fig, ax = subplots(figsize=(max(6, 1.6 * len(subsets)), 4))
    width = 0.8 / len(members)
    for k, m in enumerate(members):
        part = table[table["member"].astype(str) == m]
        counts = part["soi"].astype(str).value_counts().reindex(subsets, fill_value=0)
        x = np.arange(len(subsets)) + k * width
        bars = ax.bar(x, counts / max(len(part), 1), width, label=f"{m} (n={len(part)})")
        ax.bar_label(bars, labels=[str(c) for c in counts], fontsize=7)
    ax.set_xticks(np.arange(len(subsets)) + 0.4 - width / 2, subsets, rotation=20)
    ax.set_ylabel("fraction of examples")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def data_map(
    table: pd.DataFrame, title: str, thresholds: RegionThresholds = DEFAULT_THRESHOLDS
) -> Figure:
    """Variability (x) against confidence (y), one point per example, coloured by SOI."""
    shown = table.sample(MAX_POINTS, random_state=0) if len(table) > MAX_POINTS else table
    subsets = [str(c) for c in table["soi"].cat.categories]
    colors = _colors(subsets)
    fig, ax = subplots(figsize=(6.5, 5))
    for name in subsets:
        part = shown[shown["soi"].astype(str) == name]
        if len(part):
            ax.scatter(
                part["variability"],
                part["confidence"],
                s=6,
                alpha=0.6,
                color=colors[name],
                label=f"{name} ({int((table['soi'] == name).sum())})",
            )
    ax.axvline(thresholds.ambiguous_variability, color="grey", lw=0.8, ls="--")
    ax.axhline(thresholds.easy_confidence, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("variability (std of gold probability over epochs)")
    ax.set_ylabel("confidence (mean gold probability)")
    ax.set_xlim(0, 0.5)
    ax.set_ylim(0, 1)
    note = f" (sample of {MAX_POINTS})" if len(table) > MAX_POINTS else ""
    ax.set_title(title + note)
    ax.legend(fontsize=7, markerscale=2, loc="lower right")
    fig.tight_layout()
    return fig


def text_color(value: float, bound: float) -> str:
    """The colour of a value written on a heatmap cell: white on the darkest cells (beyond
    60 % of ``bound``, the colour scale's end, either way on a diverging map), else black."""
    return "white" if np.isfinite(value) and abs(value) > 0.6 * bound else "black"


def _heatmap(ax, matrix: pd.DataFrame, fmt: str, title: str) -> None:
    values = matrix.to_numpy(dtype=float)
    ax.imshow(values, cmap="Blues")
    bound = values.max() or 1
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(
                j,
                i,
                format(values[i, j], fmt),
                ha="center",
                va="center",
                fontsize=7,
                color=text_color(values[i, j], bound),
            )
    ax.set_xticks(
        range(len(matrix.columns)), [str(c) for c in matrix.columns], rotation=35, ha="right"
    )
    ax.set_yticks(range(len(matrix.index)), [str(c) for c in matrix.index])
    ax.set_xlabel(matrix.columns.name or "")
    ax.set_ylabel(matrix.index.name or "")
    ax.set_title(title, fontsize=9)


def transition_heatmap(counts: pd.DataFrame, label_a: str, label_b: str, title: str) -> Figure:
    """The transition matrix twice: counts, and fractions of each row."""
    rows = row_normalised(counts)
    counts = counts.rename_axis(index=f"SOI in {label_a}", columns=f"SOI in {label_b}")
    rows = rows.rename_axis(index=f"SOI in {label_a}", columns=f"SOI in {label_b}")
    fig, axes = subplots(1, 2, figsize=(12, 5))
    _heatmap(axes[0], counts, ".0f", "examples (counts)")
    _heatmap(axes[1], rows, ".2f", "row-normalised")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def side_by_side(fractions: pd.DataFrame, title: str, ylabel: str) -> Figure:
    """Grouped bars: rows of ``fractions`` on the x axis, one bar per column."""
    fig, ax = subplots(figsize=(max(6, 1.4 * len(fractions)), 4))
    width = 0.8 / max(len(fractions.columns), 1)
    for k, col in enumerate(fractions.columns):
        bars = ax.bar(np.arange(len(fractions)) + k * width, fractions[col], width, label=str(col))
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in fractions[col]], fontsize=7)
    ax.set_xticks(
        np.arange(len(fractions)) + 0.4 - width / 2, [str(i) for i in fractions.index], rotation=20
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def close(figures: Mapping[str, Figure]) -> None:
    """Free figures that were not logged (logging frees them: ``log_figures``)."""
    free_figures(figures)


def detector_scores(summary: pd.DataFrame, title: str) -> Figure:
    """AUROC, average precision and precision at k per detector (mean, std as error bars),
    with the noise share: the AP and precision of a random order."""
    metrics = [("auroc", "AUROC"), ("ap", "average precision"), ("p_at_k", "precision at k")]
    detectors = list(summary.index)
    fig, ax = subplots(figsize=(max(6.5, 1.3 * len(detectors)), 4.2))
    width = 0.8 / len(metrics)
    x = np.arange(len(detectors))
    for k, (key, label) in enumerate(metrics):
        std = summary[f"{key}_std"].fillna(0.0)
        bars = ax.bar(
            x + k * width, summary[f"{key}_mean"], width, yerr=std, capsize=2, label=label
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.axhline(summary["base_rate"].iloc[0], color="grey", ls="--", lw=1, label="noise share")
    ax.set_xticks(x + width, detectors, rotation=15)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("score (higher is better)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper center", ncol=4)
    fig.tight_layout()
    return fig

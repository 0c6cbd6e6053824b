"""The side effects' figure (``analysis/side_effects.py``): one small heatmap of the mean
row-normalised confusion delta per (source, target), in a grid of sources by targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def side_effects_figure(summary: pd.DataFrame, title: str, order: Sequence[str] = ()):
    """One small heatmap of the mean row-normalised delta per (source, target): rows
    sources, columns targets (members in ``order`` first), gold classes down and
    predicted classes across."""
    from soi_mlflow.analysis.figures import subplots  # deferred: matplotlib

    good = summary[summary["problem"].isna() & (summary["gold"] != "")]
    sources = [m for m in order if m in set(good["source"])]
    sources += [m for m in dict.fromkeys(good["source"]) if m not in sources]
    targets = [m for m in order if m in set(good["target"])]
    targets += [m for m in dict.fromkeys(good["target"]) if m not in targets]
    values = good["mean"].to_numpy(float)
    bound = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    bound = bound or 1.0
    side = 2.4
    fig, axes = subplots(
        len(sources),
        len(targets),
        figsize=(side * len(targets) + 1.8, side * len(sources) + 1.2),
        squeeze=False,
    )
    image = None
    for i, source in enumerate(sources):
        for j, target in enumerate(targets):
            ax = axes[i][j]
            cell = good[(good["source"] == source) & (good["target"] == target)]
            if cell.empty:
                ax.axis("off")
                continue
            image = _cell_heatmap(ax, cell, bound)
            ax.set_title(f"{_short(source, 14)} → {_short(target, 14)}", fontsize=7)
            ax.set_xlabel("predicted", fontsize=6, labelpad=1)
    fig.subplots_adjust(hspace=0.6, wspace=0.6)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="rate with − rate alone (row share)")
    fig.suptitle(title, fontsize=9, wrap=True)
    return fig


def _short(name: str, width: int = 8) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _cell_heatmap(ax: Any, cell: pd.DataFrame, bound: float) -> Any:
    """One (source, target) delta heatmap on ``ax``; values written in up to 4 classes."""
    from soi_mlflow.analysis.figures import text_color  # deferred: matplotlib

    names = list(dict.fromkeys(cell["gold"]))
    grid = cell.pivot(index="gold", columns="pred", values="mean")
    grid = grid.reindex(index=names, columns=names).to_numpy(float)
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-bound, vmax=bound)
    if len(names) <= 4:
        for g in range(len(names)):
            for p in range(len(names)):
                if np.isfinite(grid[g, p]):
                    color = text_color(grid[g, p], bound)
                    ax.text(
                        p,
                        g,
                        f"{grid[g, p]:+.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color=color,
                    )
    short = [_short(n) for n in names]
    ax.set_xticks(range(len(names)), short, rotation=45, ha="right", fontsize=6)
    ax.set_yticks(range(len(names)), short, fontsize=6)
    return image

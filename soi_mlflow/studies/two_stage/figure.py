"""The two-stage study's interval figure: per selection, each paired difference (mean
over seeds and its interval) per member, ID and OOD side by side, a line at 0."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def intervals_figure(table: pd.DataFrame, title: str) -> Any:
    """Two panels (ID, OOD) of horizontal intervals, one row per selection, contrast and
    member (``contrasts.intervals`` rows); a filled dot where the interval excludes 0."""
    from soi_mlflow.analysis import figures  # deferred: matplotlib

    labels = []
    for r in table.itertuples(index=False):
        alone = f" v {r.alone} alone" if r.alone and r.alone != r.member else ""
        missing = " (not identified)" if isinstance(getattr(r, "problem", None), str) else ""
        labels.append(f"{r.selection or 'stage 1'} | {r.contrast} | {r.member}{alone}{missing}")
    sides = [("test", "in distribution (test)"), ("ood", "out of distribution")]
    present = [(s, name) for s, name in sides if (table["split"] == s).any()] or sides[:1]
    height = max(3.0, 0.32 * max((table["split"] == s).sum() for s, _ in present) + 1.5)
    fig, axes = figures.subplots(1, len(present), figsize=(7.5 * len(present), height))
    axes = np.atleast_1d(axes)
    colors = figures.colormap("tab10")
    contrasts = list(dict.fromkeys(table["contrast"]))
    for ax, (split, name) in zip(axes, present, strict=True):
        part = table[table["split"] == split]
        names = [labels[i] for i in np.flatnonzero(table["split"].to_numpy() == split)]
        y = np.arange(len(part))[::-1]
        for k, r in enumerate(part.itertuples(index=False)):
            color = colors(contrasts.index(r.contrast) % 10)
            if not np.isnan(r.low):
                ax.plot([r.low, r.high], [y[k], y[k]], color=color, lw=2)
            if not np.isnan(r.mean):
                ax.plot(r.mean, y[k], "o", color=color, mfc=color if r.excludes_0 else "white")
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.set_yticks(y, names, fontsize=7)
        ax.set_xlabel("accuracy difference (mean over seeds)")
        ax.set_title(name, fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig

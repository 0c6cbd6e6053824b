"""Transfer matrices (docs/design.md, "Transfer") and their latent traits.

T[i, j] = score(j | trained with source i) - score(j | trained on j alone), per seed,
then mean and sample standard deviation (ddof=1) over seeds. Rows are sources, columns
targets; the diagonal is undefined (NaN). Latent traits: PCA of T (the diagonal read as
0, any other missing cell refused, columns centred):
explained variance, the sources' scores and the targets' loadings, and a biplot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from soi_mlflow.analysis.identified import with_problems
from soi_mlflow.errors import SoiInputError


def transfer_deltas(scores: pd.DataFrame) -> pd.DataFrame:
    """Per seed and (source, target): ``delta`` = score with the source - score alone, from
    rows ``seed, source, target, score`` (``source`` None for a target trained alone);
    NaN, with the reason in ``problem``, where a score is missing."""
    alone = scores[scores["source"].isna()].set_index(["seed", "target"])["score"]
    pairs = scores[scores["source"].notna()]
    deltas = []
    for _, row in pairs.iterrows():
        base = alone.get((row["seed"], row["target"]))
        missing = base is None or pd.isna(base) or pd.isna(row["score"])
        deltas.append(
            {
                "seed": row["seed"],
                "source": row["source"],
                "target": row["target"],
                "delta": np.nan if missing else row["score"] - base,
                "problem": _missing_score(row, base) if missing else None,
            }
        )
    return pd.DataFrame(deltas, columns=["seed", "source", "target", "delta", "problem"])


def _missing_score(row: pd.Series, base: object) -> str:
    if base is None or pd.isna(base):
        return f"no single-member score of {row['target']!r} for seed {row['seed']}"
    return f"no score of {row['target']!r} trained with {row['source']!r}, seed {row['seed']}"


def transfer_matrix(scores: pd.DataFrame, members: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and std of T over seeds (see ``transfer_deltas`` for the rows expected)."""
    frame = transfer_deltas(scores)
    grouped = frame.groupby(["source", "target"])["delta"]
    mean = grouped.mean().unstack().reindex(index=members, columns=members)
    # the sample standard deviation (ddof=1): the seeds are a sample of possible runs;
    # NaN with one seed
    std = grouped.std(ddof=1).unstack().reindex(index=members, columns=members)
    mean.index.name, mean.columns.name = "source", "target"
    std.index.name, std.columns.name = "source", "target"
    return mean, std


def transfer_intervals(scores: pd.DataFrame, method: str = "t", level: float = 0.95):
    """Each cell's mean over seeds with its interval and whether it excludes 0."""
    from soi_mlflow.analysis.intervals import summarize  # deferred: scipy

    deltas = transfer_deltas(scores)
    by = ["source", "target"]
    return with_problems(summarize(deltas, by, "delta", method, level), deltas, by, "delta")


def latent_traits(mean: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """PCA of the transfer matrix: ``explained`` (variance ratio per component),
    ``source_scores`` (rows: sources) and ``target_loadings`` (rows: targets).

    The diagonal is read as 0; any other missing cell is refused (reading it as 0 would
    invent a "no transfer" measurement)."""
    x = mean.to_numpy(dtype=float).copy()
    np.fill_diagonal(x, 0.0)
    rows, cols = np.nonzero(np.isnan(x))
    missing = [f"{mean.index[i]} -> {mean.columns[j]}" for i, j in zip(rows, cols, strict=True)]
    if missing:
        raise SoiInputError(
            f"the transfer matrix has {len(missing)} missing cell(s) ({', '.join(missing)}); "
            "PCA needs every source-target pair: train the missing pairs or drop the member"
        )
    centred = x - x.mean(axis=0, keepdims=True)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    total = float((s**2).sum())
    explained = (s**2) / total if total > 0 else np.zeros_like(s)
    names = [f"PC{k + 1}" for k in range(len(s))]
    return {
        "explained": pd.DataFrame({"component": names, "explained_variance": explained}),
        "source_scores": pd.DataFrame(u * s, index=mean.index, columns=names),
        "target_loadings": pd.DataFrame(vt.T, index=mean.columns, columns=names),
    }


def source_target_heatmap(
    values: pd.DataFrame,
    text: Callable[[int, int], str] | None,
    title: str,
    labels: tuple[str, str, str],
    cmap: str = "RdBu",
    cell: tuple[float, float] = (1.6, 1.3),
):
    """A diverging heatmap of a source x target frame (rows sources), symmetric about 0,
    ``text(i, j)`` written in each cell when given; ``labels``: the x axis, the y axis
    and the colour bar. The transfer matrix and its asymmetry are drawn by it."""
    from soi_mlflow.analysis.figures import subplots, text_color  # deferred: matplotlib

    data = values.to_numpy(dtype=float)
    finite = np.abs(data[np.isfinite(data)])
    bound = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    fig, ax = subplots(figsize=(cell[0] * len(values) + 3, cell[1] * len(values) + 2))
    im = ax.imshow(data, cmap=cmap, vmin=-bound, vmax=bound)
    if text is not None:
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                color = text_color(data[i, j], bound)
                ax.text(j, i, text(i, j), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(values.columns)), values.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(values.index)), values.index)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label=labels[2])
    fig.tight_layout()
    return fig


def heatmap(mean: pd.DataFrame, std: pd.DataFrame, title: str):
    """T with mean ± std written in each cell (the mean alone where the std is not defined:
    one seed)."""
    values = mean.to_numpy(dtype=float)

    def text(i: int, j: int) -> str:
        v, sd = values[i, j], std.iat[i, j]
        if np.isnan(v):
            return "—"
        return f"{v:+.3f}" if np.isnan(sd) else f"{v:+.3f}\n±{sd:.3f}"

    labels = (
        "target (scored on its test set)",
        "source (trained with)",
        "accuracy change vs target alone",
    )
    return source_target_heatmap(mean, text, title, labels)


def biplot(
    traits: dict[str, pd.DataFrame],
    title: str,
    aligned: Mapping[str, list[tuple[str, float]]] | None = None,
):
    """Sources' scores (points) and targets' loadings (arrows) on PC1-PC2; ``aligned``
    (``transfer_factors.aligned_factors``: trait -> [(factor, rho)]) names under each axis
    the factors most aligned with that trait."""
    from soi_mlflow.analysis.figures import subplots  # deferred: matplotlib

    scores, loadings = traits["source_scores"], traits["target_loadings"]
    explained = traits["explained"]["explained_variance"].to_numpy()
    second = scores.shape[1] > 1
    fig, ax = subplots(figsize=(6, 5))
    ys = scores["PC2"] if second else np.zeros(len(scores))
    ax.scatter(scores["PC1"], ys, color="tab:blue")
    for name, x, y in zip(scores.index, scores["PC1"], ys, strict=True):
        ax.annotate(f"source {name}", (x, y), fontsize=8, color="tab:blue")
    scale = max(np.abs(scores.to_numpy()).max(), 1e-9)
    for name, row in loadings.iterrows():
        lx, ly = row["PC1"] * scale, (row["PC2"] * scale if second else 0.0)
        ax.arrow(0, 0, lx, ly, color="tab:red", head_width=0.02 * scale, length_includes_head=True)
        ax.annotate(f"target {name}", (lx, ly), fontsize=8, color="tab:red")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)" + _aligned(aligned, "PC1"))
    ax.set_ylabel(
        (f"PC2 ({explained[1]:.0%} of variance)" if second else "PC2") + _aligned(aligned, "PC2")
    )
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _aligned(aligned: Mapping[str, list[tuple[str, float]]] | None, pc: str) -> str:
    """A second axis-label line: the factors most aligned with ``pc`` and their rho."""
    if not aligned or not aligned.get(pc):
        return ""
    return "\naligned: " + ", ".join(f"{name} ({rho:+.2f})" for name, rho in aligned[pc])

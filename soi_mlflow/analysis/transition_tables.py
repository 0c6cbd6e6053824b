"""Transitions between runs (docs/design.md): how examples move between SOI from run A to B.

Examples are matched by ``example_id``; only those present in both runs count, and the
coverage is reported (``DataFrame.attrs["coverage"]``). With several seeds per setting,
``aggregate="majority"`` gives each example its most frequent subset per setting and
counts examples once; when two or more subsets share the most votes (with an even number
of seeds this is common) the example is in the explicit ``tie`` category, never given to
whichever subset the taxonomy lists first; ``aggregate="pairs"``
sums the matrices of seed pairs (seed k of A with seed k of B) and counts example-pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from soi_mlflow.analysis.soi import TOO_FEW, UNASSIGNED, Taxonomy, get_taxonomy
from soi_mlflow.errors import SoiInputError

AGGREGATES = ("majority", "pairs")
TIE = "tie"  # majority over seeds: several subsets share the most votes


def _subsets(taxonomy: str | Taxonomy, *frames: pd.DataFrame) -> list[str]:
    names = list(get_taxonomy(taxonomy).subsets)
    for extra in (UNASSIGNED, TOO_FEW, TIE):
        if any((f["soi"].astype(str) == extra).any() for f in frames):
            names.append(extra)
    return names


def row_normalised(counts: pd.DataFrame) -> pd.DataFrame:
    """Each row divided by its sum; rows without examples stay zero."""
    return counts.astype(float).div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)


def transition_matrix(
    a: pd.DataFrame,
    b: pd.DataFrame,
    member: str | None = None,
    normalize: str | None = None,
    taxonomy: str | Taxonomy = "default",
) -> pd.DataFrame:
    """Counts of examples by (SOI in ``a``, SOI in ``b``) from two SOI tables."""
    if normalize not in (None, "row"):
        raise SoiInputError(f"normalize: expected None or 'row', got {normalize!r}")
    if member is not None:
        known = set(a["member"].astype(str)) | set(b["member"].astype(str))
        if member not in known:
            raise SoiInputError(
                f"member {member!r} is in neither run; members: {', '.join(sorted(known))}"
            )
        a = a[a["member"].astype(str) == member]
        b = b[b["member"].astype(str) == member]
    merged = a[["example_id", "soi"]].merge(
        b[["example_id", "soi"]], on="example_id", suffixes=("_a", "_b")
    )
    names = _subsets(taxonomy, a, b)
    counts = pd.crosstab(
        pd.Categorical(merged["soi_a"].astype(str), categories=names),
        pd.Categorical(merged["soi_b"].astype(str), categories=names),
        dropna=False,
    )
    counts.index.name, counts.columns.name = "soi_a", "soi_b"
    out = (
        counts.astype(float).div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
        if normalize
        else counts
    )
    out.attrs["coverage"] = {
        "matched": int(len(merged)),
        "only_a": int(len(a) - len(merged)),
        "only_b": int(len(b) - len(merged)),
        "fraction_of_a": float(len(merged) / len(a)) if len(a) else 0.0,
        "fraction_of_b": float(len(merged) / len(b)) if len(b) else 0.0,
    }
    return out


def majority_soi(
    tables: Sequence[pd.DataFrame], taxonomy: str | Taxonomy = "default"
) -> pd.DataFrame:
    """One SOI per example over several seeds: the most frequent, or ``tie`` when several
    subsets share the most votes. Only examples present in every table are kept."""
    names = _subsets(taxonomy, *tables)
    ids = tables[0]["example_id"].to_numpy()
    for t in tables[1:]:
        ids = np.intersect1d(ids, t["example_id"].to_numpy())
    votes = np.zeros((len(ids), len(names)), dtype=np.int32)
    for t in tables:
        t = t.set_index("example_id").loc[ids]
        codes = pd.Categorical(t["soi"].astype(str), categories=names).codes
        np.add.at(votes, (np.arange(len(ids)), codes), 1)
    top = votes.max(axis=1, keepdims=True)
    tied = (votes == top).sum(axis=1) > 1
    winner = votes.argmax(axis=1)
    categories = [*names, TIE] if TIE not in names else names
    winner[tied] = categories.index(TIE)
    first = tables[0].set_index("example_id").loc[ids]
    out = pd.DataFrame(
        {
            "example_id": ids,
            "member": first["member"].to_numpy(),
            "soi": pd.Categorical.from_codes(winner, categories=categories),
        }
    )
    out.attrs["ties"] = int(tied.sum())
    return out


def seed_transitions(
    runs_a: Sequence[pd.DataFrame],
    runs_b: Sequence[pd.DataFrame],
    member: str | None = None,
    normalize: str | None = None,
    aggregate: str = "majority",
    taxonomy: str | Taxonomy = "default",
) -> pd.DataFrame:
    """Transitions with several seeds per setting; ``attrs`` say how they were aggregated."""
    if aggregate not in AGGREGATES:
        raise SoiInputError(
            f"aggregate: expected one of {', '.join(AGGREGATES)}, got {aggregate!r}"
        )
    if not runs_a or not runs_b:
        raise SoiInputError("transitions need at least one run on each side")
    if aggregate == "majority":
        a, b = majority_soi(runs_a, taxonomy), majority_soi(runs_b, taxonomy)
        out = transition_matrix(a, b, member, normalize, taxonomy)
        out.attrs["ties"] = (
            int((a["soi"].astype(str) == TIE).sum()),
            int((b["soi"].astype(str) == TIE).sum()),
        )
    else:
        if len(runs_a) != len(runs_b):
            raise SoiInputError(
                "aggregate='pairs' needs as many runs on each side "
                f"({len(runs_a)} vs {len(runs_b)})"
            )
        mats = [
            transition_matrix(a, b, member, None, taxonomy)
            for a, b in zip(runs_a, runs_b, strict=True)
        ]
        counts = sum(mats[1:], mats[0])
        out = (
            counts.astype(float).div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
            if normalize
            else counts
        )
        out.attrs["coverage"] = {"matched": int(sum(m.attrs["coverage"]["matched"] for m in mats))}
    out.attrs["aggregate"] = aggregate
    out.attrs["seeds"] = (len(runs_a), len(runs_b))
    return out

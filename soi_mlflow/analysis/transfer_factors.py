"""What explains transfer (docs/design.md 2.5, "Why transfer happens"): each pair's
factors (surface similarity, proxy transfer, the source's and the target's profiles)
rank-correlated with T and with its latent traits, with bootstrap intervals over seeds and
pairs, and the asymmetry T - T^T.

Pure cores on DataFrames: ``pair_factors`` (the factors of each ordered pair; built in
``analysis/pair_factors.py``, importable from here), ``factor_correlations`` (Spearman's
rho, interval, n, verdict) and ``asymmetry``. A study too small to tell says so in the
``problem`` column ("not identified: ...", ``analysis/identified.py``) instead of ranking
noise. The figures are in ``analysis/transfer_factor_figures.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from soi_mlflow.analysis.identified import not_identified
from soi_mlflow.analysis.pair_factors import KEYS, pair_factors
from soi_mlflow.common.console import counted
from soi_mlflow.errors import SoiInputError

__all__ = [
    "KEYS",
    "asymmetry",
    "factor_correlations",
    "pair_factors",
    "pair_means",
    "factor_table_problems",
]

# at least 4 members (12 ordered pairs) before T is correlated with anything: the pairs of
# 3 members share members, so their 6 "points" are far fewer independent ones
MIN_PAIRS = 12
# at least 5 points (members) for a trait: with 4, even a perfect rank order has an exact
# two-sided p of 2/24 > 0.05, so no interval could mean anything
MIN_MEMBERS = 5
N_BOOT = 1000
LEVEL = 0.95
COLUMNS = [
    "factor",
    "kind",
    "against",
    "rho",
    "low",
    "high",
    "excludes_zero",
    "n",
    "n_seeds",
    "n_boot",
    "rank",
    "verdict",
    "problem",
]


def factor_correlations(
    deltas: pd.DataFrame,
    factors: pd.DataFrame,
    traits: dict[str, pd.DataFrame] | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
    components: int = 2,
    against: str = "T",
) -> pd.DataFrame:
    """Spearman's rho of every factor with T (the mean of ``delta`` over seeds, per
    off-diagonal pair of ``deltas``: ``seed, source, target, delta``) and, given
    ``traits`` (``latent_traits``), of each ``source.<f>`` with the sources' PC scores and
    each ``target.<f>`` with the targets' PC loadings (the first ``components`` PCs).

    Interval (``level``, percentile): ``n_boot`` replicates, each resampling the seeds
    with replacement and recomputing T (a pair whose resampled seeds are all missing keeps
    its full-sample T), then resampling the members with replacement and recomputing rho
    over every ordered pair of two drawn (distinct) members: pairs that share a member are
    not independent, so resampling the pairs themselves would give too narrow intervals
    for member factors. For traits, the PCA of each replicate's T is recomputed (each PC's
    sign matched to the original's), then the members resampled.

    One row per (factor, against), ``against`` "T" or "PC<k>", ranked by |rho| within
    ``against``; ``verdict`` "excludes 0", "includes 0", "too small to tell" (fewer than
    ``MIN_PAIRS`` pairs or ``MIN_MEMBERS`` members: no rank, the reason in ``problem``)
    or "constant". ``against``: the name of what ``delta`` measures (another per-pair
    effect than T, e.g. ``analysis/shift_factors.py``'s shift)."""
    if n_boot < 1:
        raise SoiInputError(f"n_boot: expected at least 1 bootstrap replicate, got {n_boot}")
    if not 0 < level < 1:
        raise SoiInputError(f"level: expected a coverage between 0 and 1, got {level}")
    if any(c not in factors.columns for c in KEYS):
        raise SoiInputError("factors: expected the columns source, target (see pair_factors)")
    table, seeds = _pair_seed_table(deltas)
    factors = factors.drop_duplicates(KEYS).set_index(KEYS)
    common = table.index.intersection(factors.index)
    d = table.loc[common].to_numpy(float)
    t = np.nanmean(np.where(np.isfinite(d), d, np.nan), axis=1) if d.size else np.zeros(0)
    keep = np.isfinite(t)
    pairs_index, d, t = common[keep], d[keep], t[keep]
    f = factors.loc[pairs_index].select_dtypes("number")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, max(len(seeds), 1), size=(n_boot, len(seeds)))
    boot_t = _resampled_t(d, t, picks)  # (B, P)
    rows = []
    values = f.to_numpy(float)
    members = sorted(set(pairs_index.get_level_values(0)) | set(pairs_index.get_level_values(1)))
    draws = rng.integers(0, max(len(members), 1), size=(n_boot, len(members)))
    for names, mask in _mask_groups(values, np.isfinite):
        x, n = values[:, names][mask], int(mask.sum())
        idx = _member_pairs(pairs_index[mask], members, draws) if n else None
        boot = None if idx is None else _boot_rho(boot_t[:, mask], x, idx)
        for k, col in enumerate(names):
            rho = _spearman(x[:, k], t[mask])
            b = None if boot is None else boot[:, k]
            rows.append(_row(str(f.columns[col]), against, rho, b, n, level))
    if traits is not None and "source_scores" in traits:
        rows += _trait_rows(d, t, pairs_index, f, traits, picks, rng, level, components)
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("n_seeds", "n_boot")])
    out.insert(out.columns.get_loc("n") + 1, "n_seeds", len(seeds))
    out.insert(out.columns.get_loc("n_seeds") + 1, "n_boot", n_boot)
    return _ranked(out)


def factor_table_problems(
    table: pd.DataFrame,
    name: str,
    per_against: bool = True,
    constant: str = "constant over the study's pairs",
) -> dict[str, str]:
    """The not-identified rows of a factor table (``factor_correlations``) for a study's
    report, keyed ``<name> vs <against>: ...`` (``per_against``) or ``<name>: ...``: one
    entry per reason, naming the factors only when they are few, and one for all the
    constant factors (``constant`` says what is constant), not one each."""
    out: dict[str, str] = {}
    bad = table[table["problem"].notna()]
    is_constant = bad["verdict"] == "constant"

    def key(against: str) -> str:
        return f"{name} vs {against}" if per_against else name

    for (against, reason), group in bad[~is_constant].groupby(["against", "problem"], sort=False):
        names = list(group["factor"])
        which = ", ".join(names) if len(names) <= 3 else f"{len(names)} factors"
        out[f"{key(against)}: {which}"] = str(reason)
    for against, group in bad[is_constant].groupby("against", sort=False):
        names = ", ".join(group["factor"])
        out[f"{key(against)}: {len(group)} constant factor(s)"] = (
            f"not identified: {constant}, nothing to correlate ({names})"
        )
    return out


def pair_means(deltas: pd.DataFrame) -> pd.DataFrame:
    """``source, target, T``: the mean ``delta`` over seeds of each off-diagonal pair."""
    table, _ = _pair_seed_table(deltas)
    t = table.mean(axis=1, skipna=True).rename("T")
    return t.reset_index()


def _pair_seed_table(deltas: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    missing = [c for c in ["seed", *KEYS, "delta"] if c not in deltas.columns]
    if missing:
        raise SoiInputError(f"deltas: no column(s) {missing}; expected seed, source, target, delta")
    off = deltas[deltas["source"].notna() & (deltas["source"] != deltas["target"])]
    table = off.pivot_table(index=KEYS, columns="seed", values="delta", aggfunc="mean")
    return table, list(table.columns)


def _resampled_t(d: np.ndarray, t: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """T of each replicate of the seeds: (replicates, pairs)."""
    if d.shape[1] == 0:
        return np.broadcast_to(t, (len(picks), len(t))).copy()
    chosen = d[:, picks]  # (P, B, S)
    finite = np.isfinite(chosen)
    counts = finite.sum(axis=2)
    sums = np.where(finite, chosen, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = np.where(counts > 0, sums / np.maximum(counts, 1), t[:, None])
    return boot.T


def _mask_groups(values: np.ndarray, ok) -> list[tuple[list[int], np.ndarray]]:
    """Columns grouped by which rows are finite, so that each group is resampled at once."""
    groups: dict[bytes, tuple[list[int], np.ndarray]] = {}
    finite = ok(values)
    for k in range(values.shape[1]):
        key = finite[:, k].tobytes()
        groups.setdefault(key, ([], finite[:, k]))[0].append(k)
    return groups.values()  # type: ignore[return-value]


def ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank, from 1) along the last axis, any batch
    shape: what scipy.stats.rankdata gives, for all replicates at once."""
    n = x.shape[-1]
    order = np.argsort(x, axis=-1, kind="stable")
    s = np.take_along_axis(x, order, axis=-1)
    pos = np.broadcast_to(np.arange(n), x.shape)
    start = np.ones(x.shape, bool)
    start[..., 1:] = s[..., 1:] != s[..., :-1]
    end = np.ones(x.shape, bool)
    end[..., :-1] = start[..., 1:]
    first = np.maximum.accumulate(np.where(start, pos, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(end, pos, n), -1), axis=-1), -1)
    out = np.empty(x.shape, float)
    np.put_along_axis(out, order, (first + last) / 2.0 + 1.0, axis=-1)
    return out


def rank_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis over the entries finite in both (NaN in ``a``
    and ``b`` at the same places: left out); NaN where either side is constant."""
    ra, rb = ranks(a), ranks(b)
    ra = np.where(np.isnan(a), np.nan, ra)
    rb = np.where(np.isnan(b), np.nan, rb)
    count = np.maximum(np.isfinite(ra).sum(-1, keepdims=True), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ra = ra - np.nansum(ra, axis=-1, keepdims=True) / count
        rb = rb - np.nansum(rb, axis=-1, keepdims=True) / count
        den = np.sqrt(np.nansum(ra**2, -1) * np.nansum(rb**2, -1))
        num = np.nansum(ra * rb, -1)
        return np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), np.nan)


def _member_pairs(pairs: pd.MultiIndex, members: list[str], draws: np.ndarray) -> np.ndarray:
    """Each replicate's pairs (B, m(m-1)), -1 where none: ``draws`` (B, m) resamples the
    members with replacement; every ordered pair of two draws of different members whose
    pair is in ``pairs`` (rows of the arrays ``pairs`` indexes) is taken once per draw."""
    pos = {name: i for i, name in enumerate(members)}
    lookup = np.full((len(members), len(members)), -1)
    for p, (src, tgt) in enumerate(pairs):
        lookup[pos[src], pos[tgt]] = p
    i, j = np.nonzero(~np.eye(len(members), dtype=bool))
    return lookup[draws[:, i], draws[:, j]]  # the diagonal of lookup is -1: same member


def _boot_rho(boot_y: np.ndarray, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """rho of each column of ``x`` with ``y`` per replicate: (B, K); ``idx`` (B, n')
    resamples the rows (-1: none), ``boot_y`` (B, n) is y in each replicate before that."""
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    y = np.where(valid, np.take_along_axis(boot_y, safe, axis=1), np.nan)  # (B, n')
    xs = np.where(valid[:, :, None], x[safe], np.nan)  # (B, n', K)
    return rank_corr(np.moveaxis(xs, 1, 2), y[:, None, :])


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr  # deferred: scipy

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _kind(name: str) -> str:
    return name.split(".", 1)[0] if name.startswith(("source.", "target.")) else "pair"


def _row(name, against, rho, boot, n, level, minimum=MIN_PAIRS, unit="pairs") -> dict:
    low = high = float("nan")
    if boot is not None and np.isfinite(boot).any():
        tail = (1 - level) / 2 * 100
        low, high = np.nanpercentile(boot, [tail, 100 - tail])
    problem = None
    if n < minimum:
        verdict = "too small to tell"
        problem = not_identified(
            f"too small to tell: {counted(n, unit)} "
            f"(at least {minimum} needed; see docs/studies.md)"
        )
    elif not np.isfinite(rho):
        verdict = "constant"
        problem = not_identified(f"{name} or {against} is constant over the {counted(n, unit)}")
    else:
        verdict = "excludes 0" if (low > 0 or high < 0) else "includes 0"
    return {
        "factor": name,
        "kind": _kind(name),
        "against": against,
        "rho": rho,
        "low": float(low),
        "high": float(high),
        "excludes_zero": verdict == "excludes 0",
        "n": int(n),
        "rank": None,
        "verdict": verdict,
        "problem": problem,
    }


def _trait_rows(d, t, pairs_index, f, traits, picks, rng, level, components) -> list[dict]:
    """Member factors against the PC scores (sources) and loadings (targets)."""
    scores, loadings = traits["source_scores"], traits["target_loadings"]
    members = list(scores.index)
    pcs = list(scores.columns[: max(components, 0)])
    boot_scores, boot_loadings = _boot_pca(d, t, pairs_index, members, loadings, picks, len(pcs))
    rows = []
    for side, trait, boot_trait in (
        ("source", scores, boot_scores),
        ("target", loadings, boot_loadings),
    ):
        cols = [c for c in f.columns if c.startswith(f"{side}.")]
        if not cols:
            continue
        per_member = (
            f[cols].reset_index().groupby(side)[cols].first().reindex(members).to_numpy(float)
        )
        for names, mask in _mask_groups(per_member, np.isfinite):
            x = per_member[:, names][mask]
            m = int(mask.sum())
            idx = rng.integers(0, m, size=(len(picks), m)) if m else None
            for k, pc in enumerate(pcs):
                y = trait[pc].to_numpy(float)[mask]
                boot = None if idx is None else _boot_rho(boot_trait[:, mask, k], x, idx)
                for j, col in enumerate(names):
                    name = cols[col]
                    rho = _spearman(x[:, j], y)
                    b = None if boot is None else boot[:, j]
                    rows.append(_row(name, pc, rho, b, m, level, MIN_MEMBERS, "members"))
    return rows


def _boot_pca(d, t, pairs_index, members, loadings, picks, k) -> tuple[np.ndarray, np.ndarray]:
    """Sources' scores and targets' loadings of the first ``k`` PCs of each replicate's T,
    signs matched to the original loadings: (B, members, k) each."""
    pos = {m: i for i, m in enumerate(members)}
    m = len(members)
    boot_t = _resampled_t(d, t, picks)
    mats = np.zeros((len(picks), m, m))
    for p, (src, tgt) in enumerate(pairs_index):
        if src in pos and tgt in pos:
            mats[:, pos[src], pos[tgt]] = boot_t[:, p]
    centred = mats - mats.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    v = np.moveaxis(vt, 1, 2)[:, :, :k]  # (B, m, k) targets' loadings
    sc = (u * s[:, None, :])[:, :, :k]
    ref = loadings.reindex(members).to_numpy(float)[:, :k]
    sign = np.sign(np.einsum("bmk,mk->bk", v, ref))
    sign[sign == 0] = 1.0
    return sc * sign[:, None, :], v * sign[:, None, :]


def _ranked(out: pd.DataFrame) -> pd.DataFrame:
    """Sorted by ``against`` (T first) then |rho|; ``rank`` only where identified."""
    order = {a: i for i, a in enumerate(["T", *sorted(set(out["against"]) - {"T"})])}
    out = out.assign(_a=out["against"].map(order), _r=-out["rho"].abs().fillna(-1.0)).sort_values(
        ["_a", "_r", "factor"], kind="stable"
    )
    ok = out["problem"].isna()
    out.loc[ok, "rank"] = out[ok].groupby("against").cumcount() + 1
    out["rank"] = out["rank"].astype("Int64")
    return out.drop(columns=["_a", "_r"]).reset_index(drop=True)


def asymmetry(mean: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """T - T^T: ``square`` (antisymmetric, rows sources, NaN diagonal) and ``long`` (each
    unordered pair once, oriented so that ``asymmetry`` = T[source, target] -
    T[target, source] >= 0, sorted by it, largest first; ``t_forward`` and
    ``t_backward`` are the two cells)."""
    if list(mean.index) != list(mean.columns):
        raise SoiInputError(
            "mean: the transfer matrix must have the same members as rows and columns"
        )
    x = mean.to_numpy(float)
    a = x - x.T
    np.fill_diagonal(a, np.nan)
    square = pd.DataFrame(a, index=mean.index, columns=mean.columns)
    rows = []
    names = list(mean.index)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            fwd, back = (i, j) if not a[i, j] < 0 else (j, i)
            rows.append(
                {
                    "source": names[fwd],
                    "target": names[back],
                    "t_forward": x[fwd, back],
                    "t_backward": x[back, fwd],
                    "asymmetry": a[fwd, back],
                }
            )
    long = pd.DataFrame(rows, columns=["source", "target", "t_forward", "t_backward", "asymmetry"])
    long = long.sort_values("asymmetry", ascending=False, na_position="last", kind="stable")
    return {"square": square, "long": long.reset_index(drop=True)}


def aligned_factors(table: pd.DataFrame, per_trait: int = 2) -> dict[str, list[tuple[str, float]]]:
    """The ``per_trait`` factors most aligned (|rho|, identified rows only) with each
    latent trait (``against`` PC1, PC2, ...) of a ``factor_correlations`` table."""
    ok = table[(table["against"] != "T") & table["problem"].isna() & table["rho"].notna()]
    out: dict[str, list[tuple[str, float]]] = {}
    for pc, group in ok.groupby("against", sort=True):
        top = group.reindex(group["rho"].abs().sort_values(ascending=False).index)[:per_trait]
        out[str(pc)] = [(str(r.factor), float(r.rho)) for r in top.itertuples()]
    return out

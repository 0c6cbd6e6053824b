"""What the factor analysis of transfer costs (analysis/transfer_factors.py): a 10x10
study, 3 seeds, 17 member factors (source and target: 34 columns) and 6 pair factors,
the default bootstrap (1000 replicates), with the latent traits (PC1, PC2).

Prints the seconds of ``factor_correlations`` and of the side effects' factor table
(``shift_factor_table``: the same factors against the shift toward the source's class, the
10 members on one 2-class head with positive shares from 0.3 to 0.9), both tables
together being what a study logs (target: under 5 s); and, for the
correlations with T alone, the vectorised bootstrap against a loop over replicates that
calls scipy.stats.spearmanr per replicate and factor (timed on ``LOOP_BOOT`` replicates
and scaled), with their ratio. Run: ``python bench/transfer_factors.py``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from soi_mlflow.analysis import transfer_factors as tf
from soi_mlflow.analysis.shift_factors import shift_factor_table
from soi_mlflow.analysis.transfer import latent_traits

MEMBERS, SEEDS, MEMBER_FACTORS, PAIR_FACTORS = 10, 3, 17, 6
LOOP_BOOT = 100


def study(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Deltas, pair factors and T of a synthetic study where one source factor drives T."""
    names = [f"m{i}" for i in range(MEMBERS)]
    profiles = pd.DataFrame(
        rng.normal(size=(MEMBERS, MEMBER_FACTORS)),
        index=names,
        columns=[f"f{k}" for k in range(MEMBER_FACTORS)],
    )
    pairs = [(a, b) for a in names for b in names if a != b]
    sim = pd.DataFrame(
        [(a, b, *rng.normal(size=PAIR_FACTORS)) for a, b in pairs],
        columns=["source", "target", *[f"s{k}" for k in range(PAIR_FACTORS)]],
    )
    rows = [
        (s, a, b, profiles.loc[a, "f0"] + rng.normal(0, 0.3), None)
        for s in range(SEEDS)
        for a, b in pairs
    ]
    deltas = pd.DataFrame(rows, columns=["seed", "source", "target", "delta", "problem"])
    factors = tf.pair_factors(profiles, sim, pairs)
    mean = tf.pair_means(deltas).set_index(["source", "target"])["T"].unstack()
    return deltas, factors, mean.reindex(index=names, columns=names)


def shift_frames(
    deltas: pd.DataFrame, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``prediction_shift``'s per-seed frame and ``class_shares`` for the study's pairs:
    one 2-class head, positive shares from 0.3 to 0.9, shifts that follow the gap."""
    names = sorted(set(deltas["source"]))
    positive = dict(zip(names, np.linspace(0.3, 0.9, len(names)), strict=True))
    shares = pd.DataFrame(
        [(m, c, p if c == "positive" else 1 - p) for m, p in positive.items()
         for c in ("positive", "negative")],
        columns=["member", "label_name", "share"],
    )  # fmt: skip
    rows = []
    for seed, a, b in deltas[["seed", "source", "target"]].itertuples(index=False):
        move = 0.2 * (positive[a] - positive[b]) + rng.normal(0, 0.02)
        rows += [(seed, a, b, "positive", move), (seed, a, b, "negative", -move)]
    shift = pd.DataFrame(rows, columns=["seed", "source", "target", "pred", "shift"])
    return shift, shares


def loop_t(deltas: pd.DataFrame, factors: pd.DataFrame, n_boot: int, seed: int = 0) -> float:
    """The correlations with T, one replicate and one factor at a time (same resampling)."""
    table = deltas.pivot_table(index=["source", "target"], columns="seed", values="delta")
    f = factors.set_index(["source", "target"]).loc[table.index].select_dtypes("number")
    members = sorted(set(table.index.get_level_values(0)))
    pos = {(a, b): p for p, (a, b) in enumerate(table.index)}
    d, x = table.to_numpy(float), f.to_numpy(float)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(n_boot):
        t = d[:, rng.integers(0, d.shape[1], d.shape[1])].mean(axis=1)
        drawn = [members[i] for i in rng.integers(0, len(members), len(members))]
        idx = [pos[(a, b)] for a in drawn for b in drawn if a != b]
        for k in range(x.shape[1]):
            spearmanr(x[idx, k], t[idx])
    return time.perf_counter() - start


def main() -> None:
    rng = np.random.default_rng(0)
    deltas, factors, mean = study(rng)
    traits = latent_traits(mean)
    tf.factor_correlations(deltas, factors, traits, n_boot=10)  # warm-up (scipy import)
    start = time.perf_counter()
    table = tf.factor_correlations(deltas, factors, traits)
    full = time.perf_counter() - start
    shift, shares = shift_frames(deltas, rng)
    start = time.perf_counter()
    shift_table = shift_factor_table(shift, shares, factors)
    on_shift = time.perf_counter() - start
    start = time.perf_counter()
    tf.factor_correlations(deltas, factors)
    vec_t = time.perf_counter() - start
    loop = loop_t(deltas, factors, LOOP_BOOT) * tf.N_BOOT / LOOP_BOOT
    n_factors = factors.shape[1] - 2
    print(
        f"{MEMBERS}x{MEMBERS} study, {SEEDS} seeds, {n_factors} factor columns, "
        f"{tf.N_BOOT} replicates, {len(table)} correlations"
    )
    print(f"factor_correlations with traits: {full:.2f} s")
    print(f"shift_factor_table (side effects): {on_shift:.2f} s, n = {shift_table['n'].max()}")
    both = full + on_shift
    print(f"the study's factor analysis, both tables: {both:.2f} s (target < 5 s: {both < 5})")
    print(f"correlations with T: vectorised {vec_t:.2f} s, per-replicate loop {loop:.1f} s")
    print(f"loop / vectorised: {loop / vec_t:.0f}x")
    top = table[table["against"] == "T"].iloc[0]
    print(
        f"top factor: {top['factor']} rho={top['rho']:+.2f} [{top['low']:+.2f}, {top['high']:+.2f}]"
    )


if __name__ == "__main__":
    main()

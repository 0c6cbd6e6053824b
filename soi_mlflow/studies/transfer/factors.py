"""What explains a transfer study's T (``analysis/transfer_factors.py``), logged to its
parent: the asymmetry T - T^T always (it needs only T), and the factor table and figures
when the members' profiles are given; without them, a one-line reason in the tag
``soi.transfer_factors`` instead of an error."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from soi_mlflow.analysis.transfer import transfer_deltas
from soi_mlflow.analysis.transfer_factor_figures import asymmetry_heatmap, factor_scatter
from soi_mlflow.analysis.transfer_factors import (
    MIN_PAIRS,
    aligned_factors,
    asymmetry,
    factor_correlations,
    factor_table_problems,
    pair_factors,
    pair_means,
)
from soi_mlflow.common.console import counted
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.artifacts import log_figures, log_table
from soi_mlflow.tracking.run import RunHandle

ASYMMETRY = "transfer_asymmetry"  # table (long, sorted) and figure
ASYMMETRY_MATRIX = "transfer_asymmetry_matrix"  # table: T - T^T, square
PAIR_FACTORS = "transfer_pair_factors"  # table: each pair's factors and T
FACTORS = "transfer_factors"  # table: rho, interval, n, verdict; figure: the scatter grid
NO_PROFILES = "no profiles: the members' profiles were not given, so no factor analysis"


@dataclass
class FactorResult:
    """What ``log_transfer_factors`` logged: the factor table (None without profiles),
    the not-identified reasons for the study's report, the factors most aligned with each
    latent trait (for the biplot), the one-line statement of the tag and each pair's
    factors (for what explains the side effects)."""

    table: pd.DataFrame | None
    problems: dict[str, str] = field(default_factory=dict)
    aligned: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    statement: str = ""
    factors: pd.DataFrame | None = None


def log_transfer_factors(
    parent: RunHandle,
    scores: pd.DataFrame,
    mean: pd.DataFrame,
    traits: dict[str, pd.DataFrame] | None,
    profiles: pd.DataFrame | None = None,
    similarity: pd.DataFrame | None = None,
    mode: str = "",
    proxy: pd.DataFrame | None = None,
) -> FactorResult:
    """Asymmetry table and figure; then, given ``profiles``, the factor tables and the
    scatter grid; the statement in the tag ``soi.transfer_factors``."""
    client, run_id = parent.client, parent.run_id
    asym = asymmetry(mean)
    log_table(client, run_id, asym["long"], ASYMMETRY)
    log_table(client, run_id, asym["square"], ASYMMETRY_MATRIX)
    figs = {ASYMMETRY: asymmetry_heatmap(asym["square"], f"Asymmetry T - T^T ({mode})")}
    if profiles is None or profiles.empty:
        result = FactorResult(None, statement=NO_PROFILES)
    else:
        deltas = transfer_deltas(scores)
        means = pair_means(deltas)
        factors = pair_factors(profiles, similarity, means, proxy)
        table = factor_correlations(deltas, factors, traits)
        log_table(client, run_id, means.merge(factors, on=["source", "target"]), PAIR_FACTORS)
        log_table(client, run_id, table, FACTORS)
        result = FactorResult(
            table, _problems(table), aligned_factors(table), _statement(table), factors
        )
        grid = factor_scatter(factors, means, table, f"Factors against T ({mode})")
        if grid is not None:
            figs[FACTORS] = grid
    log_figures(client, run_id, figs)
    client.set_tag(run_id, tags.TRANSFER_FACTORS, result.statement[:5000])
    return result


def _problems(table: pd.DataFrame) -> dict[str, str]:
    """One entry per (trait, reason), naming the factors only when they are few; the
    factors the members do not vary (or a constant T) in one entry per trait."""
    return factor_table_problems(table, FACTORS)


def _statement(table: pd.DataFrame) -> str:
    """One line: n, how many intervals exclude 0 and the top factor, or too small."""
    on_t = table[table["against"] == "T"]
    if on_t.empty:
        return "no factor: no numeric factor for the study's pairs"
    n, seeds = int(on_t["n"].max()), int(on_t["n_seeds"].iloc[0])
    if n < MIN_PAIRS:
        return (
            f"too small to tell: {counted(n, 'pairs')} over {counted(seeds, 'seeds')}, at least "
            f"{MIN_PAIRS} needed (4 members); the factor table lists rho without ranking it"
        )
    ranked = on_t[on_t["problem"].isna()]
    hits = int(ranked["excludes_zero"].sum())
    line = f"{len(on_t)} factors, up to {n} pairs, {seeds} seed(s): {hits} intervals exclude 0"
    if not ranked.empty:
        top = ranked.iloc[0]
        line += (
            f"; top {top['factor']} rho={top['rho']:+.2f} [{top['low']:+.2f}, {top['high']:+.2f}]"
        )
    return line

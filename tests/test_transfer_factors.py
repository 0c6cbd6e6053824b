"""What explains transfer (analysis/transfer_factors.py): known answers on hand-built
frames, and what log_transfer puts in a real SQLite parent run."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata, spearmanr

from soi_mlflow.analysis import transfer_factors as tf
from soi_mlflow.analysis.transfer import biplot, heatmap, latent_traits
from soi_mlflow.analysis.transfer_factor_figures import asymmetry_heatmap, factor_scatter
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.transfer.factors import _problems as factor_problems


def _members(m: int) -> list[str]:
    return [f"m{i:02d}" for i in range(m)]


def _deltas(cells: dict[tuple[str, str], float], seeds: int = 3, noise: float = 0.0, rng=None):
    rng = rng or np.random.default_rng(0)
    rows = [
        (s, a, b, v + (rng.normal(0, noise) if noise else 0.0), None)
        for s in range(seeds)
        for (a, b), v in cells.items()
    ]
    return pd.DataFrame(rows, columns=["seed", "source", "target", "delta", "problem"])


def _pairs(members: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for a in members for b in members if a != b]


def test_ranks_and_rank_correlation_match_scipy_with_ties_and_gaps() -> None:
    x = np.random.default_rng(1).integers(0, 4, size=(6, 9)).astype(float)
    assert np.allclose(tf.ranks(x), rankdata(x, axis=-1))
    a, b = x[0], x[1]
    assert tf.rank_corr(a, b) == pytest.approx(spearmanr(a, b).statistic)
    gap_a, gap_b = a.copy(), b.copy()
    gap_a[[2, 5]] = gap_b[[2, 5]] = np.nan  # left out where both are NaN
    keep = ~np.isnan(gap_a)
    assert tf.rank_corr(gap_a, gap_b) == pytest.approx(spearmanr(a[keep], b[keep]).statistic)
    assert np.isnan(tf.rank_corr(np.ones(5), np.arange(5.0)))


def test_pair_factors_has_pair_and_both_members_columns_and_reads_similarity_both_ways() -> None:
    members = _members(3)
    profiles = pd.DataFrame({"size": [10.0, 20.0, 30.0], "name": ["a", "b", "c"]}, index=members)
    sim = pd.DataFrame({"source": ["m00"], "target": ["m01"], "vocab_jaccard": [0.5]})
    pairs = [*_pairs(members), ("m00", "m00")]
    out = tf.pair_factors(profiles, sim, pairs)
    assert list(out.columns) == ["source", "target", "vocab_jaccard", "source.size", "target.size"]
    assert len(out) == 6  # ordered, off-diagonal
    row = out.set_index(["source", "target"])
    assert row.loc[("m01", "m00"), "vocab_jaccard"] == 0.5  # the other direction
    assert np.isnan(row.loc[("m00", "m02"), "vocab_jaccard"])
    assert (
        row.loc[("m02", "m01"), "source.size"] == 30
        and row.loc[("m02", "m01"), "target.size"] == 20
    )


def test_a_monotone_function_of_t_has_rho_one_and_an_interval_excluding_zero() -> None:
    members = _members(6)
    rng = np.random.default_rng(3)
    cells = {p: float(rng.normal()) for p in _pairs(members)}
    deltas = _deltas(cells, seeds=3, noise=1e-4, rng=rng)
    means = tf.pair_means(deltas)
    factors = means[["source", "target"]].assign(cube=means["T"] ** 3 + 7)
    table = tf.factor_correlations(deltas, factors, n_boot=300, seed=1)
    row = table.set_index("factor").loc["cube"]
    assert row["rho"] == pytest.approx(1.0)
    assert row["low"] > 0.9 and row["excludes_zero"] and row["verdict"] == "excludes 0"
    assert row["n"] == 30 and row["n_seeds"] == 3 and row["rank"] == 1 and row["problem"] is None


def test_a_random_factor_with_many_pairs_has_an_interval_including_zero() -> None:
    members = _members(15)
    rng = np.random.default_rng(5)
    profile = pd.DataFrame({"noise": rng.normal(size=15)}, index=members)
    cells = {p: float(rng.normal()) for p in _pairs(members)}
    deltas = _deltas(cells, seeds=2, noise=0.1, rng=rng)
    sim = pd.DataFrame(
        [(a, b, rng.normal()) for a, b in _pairs(members)], columns=["source", "target", "sim"]
    )
    factors = tf.pair_factors(profile, sim, tf.pair_means(deltas))
    table = tf.factor_correlations(deltas, factors, n_boot=400, seed=2).set_index("factor")
    for name in ["sim", "source.noise", "target.noise"]:
        row = table.loc[name]
        assert row["n"] == 210 and row["low"] < 0 < row["high"], name
        assert row["verdict"] == "includes 0" and not row["excludes_zero"]
    # a member factor's interval is wider than a pair factor's: 15 members, not 210 pairs
    width = table["high"] - table["low"]
    assert width["source.noise"] > width["sim"]


def test_a_two_member_study_is_declared_too_small_and_not_ranked() -> None:
    cells = {("a", "b"): 0.2, ("b", "a"): -0.1}
    deltas = _deltas(cells, seeds=2)
    profiles = pd.DataFrame({"size": [1.0, 2.0]}, index=["a", "b"])
    factors = tf.pair_factors(profiles, None, list(cells))
    table = tf.factor_correlations(deltas, factors, n_boot=50)
    assert set(table["verdict"]) == {"too small to tell"}
    assert table["rank"].isna().all() and not table["excludes_zero"].any()
    assert table["problem"].str.startswith("not identified: too small to tell: 2 pairs").all()
    # one pair is "1 pair" (a targeted study into one member of two)
    one = tf.factor_correlations(_deltas({("a", "b"): 0.2}, seeds=2), factors, n_boot=50)
    assert one["problem"].str.startswith("not identified: too small to tell: 1 pair (").all()
    with pytest.raises(SoiInputError, match="n_boot"):
        tf.factor_correlations(deltas, factors, n_boot=0)
    with pytest.raises(SoiInputError, match="factors: expected the columns"):
        tf.factor_correlations(deltas, factors.drop(columns="source"))


def test_source_factors_are_correlated_with_the_sources_pc_scores() -> None:
    members = _members(7)
    rng = np.random.default_rng(8)
    strength = pd.Series(np.arange(7.0), index=members)  # a source's pull on every target
    cells = {(a, b): strength[a] + rng.normal(0, 0.05) for a, b in _pairs(members)}
    deltas = _deltas(cells, seeds=2, noise=0.01, rng=rng)
    mean = tf.pair_means(deltas).set_index(["source", "target"])["T"].unstack()
    mean = mean.reindex(index=members, columns=members)
    traits = latent_traits(mean)
    profiles = pd.DataFrame({"pull": strength, "noise": rng.normal(size=7)}, index=members)
    factors = tf.pair_factors(profiles, None, _pairs(members))
    table = tf.factor_correlations(deltas, factors, traits, n_boot=200)
    pc1 = table[table["against"] == "PC1"].set_index("factor")
    assert abs(pc1.loc["source.pull", "rho"]) == pytest.approx(1.0)
    assert pc1.loc["source.pull", "n"] == 7 and pc1.loc["source.pull", "excludes_zero"]
    assert tf.aligned_factors(table)["PC1"][0][0] == "source.pull"
    assert table[table["against"] == "T"].iloc[0]["factor"] == "source.pull"


def test_asymmetry_is_antisymmetric_and_names_the_most_asymmetric_pair_first() -> None:
    members = ["a", "b", "c"]
    t = pd.DataFrame(
        [[np.nan, 0.30, 0.05], [-0.10, np.nan, 0.02], [0.00, 0.01, np.nan]],
        index=members,
        columns=members,
    )
    out = tf.asymmetry(t)
    square = out["square"].to_numpy()
    off = ~np.eye(3, dtype=bool)
    assert np.allclose(square[off], -square.T[off]) and np.isnan(np.diag(square)).all()
    top = out["long"].iloc[0]
    assert (top["source"], top["target"]) == ("a", "b")
    assert top["asymmetry"] == pytest.approx(0.40)
    assert (top["t_forward"], top["t_backward"]) == (0.30, -0.10)
    assert len(out["long"]) == 3 and (out["long"]["asymmetry"] >= 0).all()


def test_the_figures_draw_and_the_biplot_keeps_its_old_call() -> None:
    members = _members(5)
    rng = np.random.default_rng(4)
    cells = {p: float(rng.normal()) for p in _pairs(members)}
    deltas = _deltas(cells, seeds=2, noise=0.05, rng=rng)
    means = tf.pair_means(deltas)
    mean = means.set_index(["source", "target"])["T"].unstack().reindex(members, columns=members)
    traits = latent_traits(mean)
    profiles = pd.DataFrame({"size": rng.normal(size=5)}, index=members)
    factors = tf.pair_factors(profiles, None, means).assign(twice=means["T"] * 2)
    table = tf.factor_correlations(deltas, factors, traits, n_boot=100)
    aligned = tf.aligned_factors(table)
    assert set(aligned) == {"PC1", "PC2"}
    figs = [
        biplot(traits, "old call"),
        biplot(traits, "annotated", aligned),
        asymmetry_heatmap(tf.asymmetry(mean)["square"], "asym"),
        factor_scatter(factors, means, table, "scatter"),
    ]
    label = figs[1].axes[0].get_xlabel()
    assert "aligned: " + aligned["PC1"][0][0] in label
    assert "aligned" not in figs[0].axes[0].get_xlabel()
    assert "rho = +1.00" in figs[3].axes[0].get_title()
    for fig in figs:
        fig.savefig(io.BytesIO(), format="png")


def test_log_transfer_puts_asymmetry_and_factor_tables_in_the_parent(store) -> None:
    from mlflow import MlflowClient

    from soi_mlflow.studies.transfer import log_transfer
    from soi_mlflow.studies.transfer.factors import ASYMMETRY, FACTORS, NO_PROFILES, PAIR_FACTORS
    from soi_mlflow.tracking import tags
    from soi_mlflow.tracking.run import RunHandle, ensure_experiment

    members = _members(5)
    rng = np.random.default_rng(6)
    alone = {m: 0.6 + 0.05 * i for i, m in enumerate(members)}
    rows = [(s, None, m, alone[m] + rng.normal(0, 0.01), "r") for s in range(2) for m in members]
    rows += [
        (s, a, b, alone[b] + 0.02 * members.index(a) + rng.normal(0, 0.01), "r")
        for s in range(2)
        for a, b in _pairs(members)
    ]
    scores = pd.DataFrame(rows, columns=["seed", "source", "target", "score", "run_id"])
    profiles = pd.DataFrame({"size": np.arange(5.0) * 100}, index=members)
    sim = pd.DataFrame(
        [(a, b, rng.random()) for a, b in _pairs(members) if a < b],
        columns=["source", "target", "vocab_jaccard"],
    )
    client = MlflowClient(store)
    exp = ensure_experiment(client, "factors-tests")
    handles = []
    for given in (True, False):
        run = client.create_run(exp)
        handle = RunHandle(client, run.info.run_id, exp, store, created=True)
        extra = {"profiles": profiles, "similarity": sim} if given else {}
        log_transfer(handle, scores, members, "joint", 2, **extra)
        client.set_terminated(run.info.run_id)
        handles.append(handle)
    with_profiles, without = (h.run_id for h in handles)

    def names(run_id: str, folder: str) -> set[str]:
        return {a.path.split("/")[-1] for a in client.list_artifacts(run_id, folder)}

    tables = names(with_profiles, "tables")
    for name in (ASYMMETRY, FACTORS, PAIR_FACTORS):
        assert f"{name}.parquet" in tables and f"{name}.json" in tables
    assert {f"{ASYMMETRY}.png", f"{FACTORS}.png", "transfer_biplot.png"} <= names(
        with_profiles, "figures"
    )
    statement = client.get_run(with_profiles).data.tags[tags.TRANSFER_FACTORS]
    assert "20 pairs, 2 seed(s)" in statement and "top source.size" in statement
    local = client.download_artifacts(with_profiles, f"tables/{FACTORS}.parquet")
    table = pd.read_parquet(local)
    top = table[table["against"] == "T"].iloc[0]
    assert top["factor"] == "source.size" and top["rho"] > 0.9

    assert f"{ASYMMETRY}.parquet" in names(without, "tables")
    assert f"{FACTORS}.parquet" not in names(without, "tables")
    assert f"{ASYMMETRY}.png" in names(without, "figures")
    assert client.get_run(without).data.tags[tags.TRANSFER_FACTORS] == NO_PROFILES


def test_constant_factors_are_one_not_identified_entry_per_trait() -> None:
    """Factors the members do not vary (the same size for all, one label set) are
    reported once, naming them, not one printed line each."""
    members = _members(5)
    rng = np.random.default_rng(4)
    deltas = _deltas({p: float(rng.normal()) for p in _pairs(members)}, seeds=2, rng=rng)
    means = tf.pair_means(deltas)
    factors = means[["source", "target"]].assign(
        size=100.0, n_classes=2.0, three=3.0, four=4.0, varies=means["T"]
    )
    table = tf.factor_correlations(deltas, factors, n_boot=50, seed=0)
    problems = factor_problems(table)
    constant = {k: v for k, v in problems.items() if "constant" in k}
    assert list(constant) == ["transfer_factors vs T: 4 constant factor(s)"]
    assert all(name in constant[list(constant)[0]] for name in ("size", "n_classes", "four"))
    assert not any("varies" in k or "varies" in v for k, v in problems.items())


def test_the_transfer_heatmap_writes_readable_cells_with_one_seed_or_many() -> None:
    members = ["a", "b", "c"]
    mean = pd.DataFrame(
        [[np.nan, 0.30, -0.02], [-0.30, np.nan, 0.01], [0.0, 0.25, np.nan]],
        index=members,
        columns=members,
    )
    one_seed = heatmap(mean, mean * np.nan, "one seed")  # no std: the mean alone
    texts = {t.get_text(): t.get_color() for t in one_seed.axes[0].texts}
    assert "+0.300" in texts and not any("nan" in t for t in texts)
    # the darkest cells (either end of the diverging scale) get white text, the rest black
    assert texts["+0.300"] == texts["-0.300"] == "white"
    assert texts["-0.020"] == texts["+0.010"] == "black"
    many = heatmap(mean, mean.abs() / 10, "seeds")
    assert "+0.300\n±0.030" in {t.get_text() for t in many.axes[0].texts}
    for fig in (one_seed, many):
        fig.savefig(io.BytesIO(), format="png")

"""The two-stage study's pure parts: the --stage2 SPEC parser, the settings' selections,
the control's draw, the paired differences and their intervals (on hand-built frames with
answers computed by hand) and the SOI migration counts."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.cli.main import COMMANDS
from soi_mlflow.cli.options import parse
from soi_mlflow.common.console import print_frame
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.two_stage import (
    DEFAULT_SUBSETS,
    TwoStageSettings,
    control_ids,
    parse_spec,
    select_per_seed,
    two_stage_headline,
)
from soi_mlflow.studies.two_stage.analysis import labelled, wide_table
from soi_mlflow.studies.two_stage.contrasts import (
    METHOD,
    accuracy,
    intervals,
    paired,
    terminal,
)
from soi_mlflow.studies.two_stage.migration import migration_counts, migration_rows
from soi_mlflow.studies.two_stage.terminal import accuracy_view

T_975_2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (tables)


def test_every_spec_form_parses_to_its_selection() -> None:
    assert parse_spec("subsets:forgettable,never_learned").subsets == DEFAULT_SUBSETS
    assert parse_spec("forgettable, never_learned").describe() == (
        "subsets:forgettable,never_learned"
    )
    assert parse_spec("region:hard_to_learn").region == "hard_to_learn"
    top = parse_spec("top:variability:0.3")
    assert (top.metric, top.fraction, top.highest) == ("variability", 0.3, True)
    bottom = parse_spec("bottom:confidence:0.25")
    assert (bottom.metric, bottom.fraction, bottom.highest) == ("confidence", 0.25, False)
    assert bottom.describe() == "bottom:confidence:0.25"


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("region:tricky", "unknown region 'tricky'"),
        ("top:loss:0.3", "unknown metric 'loss'"),
        ("top:confidence", "no fraction"),
        ("bottom:confidence:much", "fraction 'much' is not a number"),
        ("top:confidence:1.5", r"fraction must be in \(0, 1\]"),
        ("sometimes", "unknown subset 'sometimes'"),
        ("forgettable,,never_learned", "an empty subset name"),
        ("best:confidence:0.3", "unknown kind 'best'"),
    ],
)
def test_a_bad_spec_names_itself_and_the_forms_expected(spec: str, why: str) -> None:
    with pytest.raises(SoiInputError, match=why) as caught:
        parse_spec(spec)
    assert f"bad SPEC {spec!r}" in str(caught.value)
    assert "region:NAME, top:METRIC:FRAC or bottom:METRIC:FRAC" in str(caught.value)


def test_settings_give_one_selection_per_spec_or_the_old_flags_one() -> None:
    specs = ("forgettable,never_learned", "region:ambiguous", "bottom:confidence:0.3")
    chosen = TwoStageSettings(stage2=specs).selections()
    assert [s.describe() for s in chosen] == [
        "subsets:forgettable,never_learned",
        "region:ambiguous",
        "bottom:confidence:0.3",
    ]
    assert [s.describe() for s in TwoStageSettings().selections()] == [
        "subsets:forgettable,never_learned"
    ]
    old = TwoStageSettings(stage2_top="variability:0.3").selections()
    assert [s.describe() for s in old] == ["top:variability:0.3"]


def test_both_kinds_of_selection_flags_duplicates_and_bad_seeds_are_refused() -> None:
    both = TwoStageSettings(stage2=("region:ambiguous",), stage2_region="hard_to_learn")
    with pytest.raises(SoiInputError, match="--stage2 SPEC .* or --stage2-region, not both"):
        both.check()
    twice = TwoStageSettings(stage2=("forgettable", "subsets:forgettable"))
    with pytest.raises(SoiInputError, match="subsets:forgettable is given twice"):
        twice.check()
    with pytest.raises(SoiInputError, match="seeds must be a positive integer"):
        TwoStageSettings(seeds=0).check()
    with pytest.raises(SoiInputError, match="an existing stage 1 .* is one seed's"):
        TwoStageSettings(seeds=2, stage1_run_id="abc").check()


def test_the_command_line_repeats_stage2_and_keeps_commas_inside_a_spec() -> None:
    argv = ["--stage2", "forgettable,never_learned", "--stage2=region:ambiguous", "--seeds", "3"]
    (_, settings), _ = parse(COMMANDS["two-stage"], argv)
    assert settings.stage2 == ("forgettable,never_learned", "region:ambiguous")
    assert settings.seeds == 3
    (_, settings), _ = parse(COMMANDS["two-stage"], ["--stage2", "top:variability:0.3"])
    assert settings.stage2 == ("top:variability:0.3",)


def test_controls_are_drawn_per_seed_from_their_own_stream_and_nested() -> None:
    ids = np.arange(100, 200)
    small, large = control_ids(ids, 0, 10), control_ids(ids, 0, 30)
    assert len(set(small)) == 10 and set(small) <= set(large) <= set(ids)
    assert list(control_ids(ids[::-1], 0, 10)) == list(small)  # row order does not matter
    assert set(control_ids(ids, 1, 10)) != set(small)  # another seed, another draw
    expected = np.random.default_rng([0, 0x2517]).permutation(ids)[:10]
    assert list(small) == list(expected)


def _runs(singles: bool = False) -> pd.DataFrame:
    """Three seeds: stage 1, two selections (sizes 5 and 8 in seeds 0 and 1; both 5 in
    seed 2, sharing one control), the controls, and optionally books and movies alone."""
    rows = []
    for seed in (0, 1, 2):
        rows.append((seed, "stage 1", "", "", f"s1-{seed}", np.nan))
        sizes = {"a": 5, "b": 8 if seed < 2 else 5}
        for name, size in sizes.items():
            rows.append((seed, "stage 2", name, "", f"s2{name}-{seed}", size))
        for size in sorted(set(sizes.values())):
            rows.append((seed, "control", f"random:{size}", "", f"c{size}-{seed}", size))
        for m in ("books", "movies") if singles else ():
            rows.append((seed, "single", "", m, f"{m}-{seed}", np.nan))
    cols = ["seed", "role", "selection", "member", "run_id", "size"]
    return pd.DataFrame(rows, columns=cols)


def _metrics(runs: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Planted accuracies: stage 1 0.5 + 0.01 seed; stage 2 'a' +0.1/+0.2/+0.3 over
    stage 1 (by seed), 'b' +0.05; every control 0.45 + size/100; alone 0.4, OOD 0.3."""
    out: dict[str, dict[str, float]] = {}
    for r in runs.itertuples(index=False):
        base = 0.5 + 0.01 * r.seed
        if r.role == "stage 2":
            base += (0.1 * (r.seed + 1)) if r.selection == "a" else 0.05
        elif r.role == "control":
            base = 0.45 + r.size / 100
        elif r.role == "single":
            out[r.run_id] = {f"test/{r.member}/acc": 0.4, "ood/restaurants/acc": 0.3}
            continue
        out[r.run_id] = {
            "test/books/acc": base,
            "test/movies/acc": base,
            "ood/restaurants/acc": base - 0.2,
        }
    return out


def test_paired_differences_match_their_hand_computed_intervals() -> None:
    runs = _runs()
    acc = accuracy(runs, _metrics(runs), ["books", "movies"], ["restaurants"])
    diffs = paired(acc)
    table = intervals(diffs)
    row = table[
        (table["selection"] == "a")
        & (table["contrast"] == "stage 2 - stage 1")
        & (table["member"] == "books")
    ].iloc[0]
    # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, half-width t(0.975, 2) * 0.1 / sqrt(3)
    half = T_975_2 * 0.1 / math.sqrt(3)
    assert row["mean"] == pytest.approx(0.2)
    assert (row["low"], row["high"]) == (pytest.approx(0.2 - half), pytest.approx(0.2 + half))
    assert row["seeds"] == 3 and not row["excludes_0"]  # 0.2 - 0.248 < 0
    assert row["method"] == METHOD and "Student t" in METHOD
    # 'b' in seeds 0, 1 has 8 examples: its control is the one of size 8 (0.53); in seed 2
    # it has 5, the control it shares with 'a' (0.50). Stage 2 'b' is 0.55, 0.56, 0.57.
    b = diffs[(diffs["selection"] == "b") & (diffs["contrast"] == "stage 2 - control")]
    b = b[(b["member"] == "books")].sort_values("seed")
    assert list(b["diff"]) == pytest.approx([0.55 - 0.53, 0.56 - 0.53, 0.57 - 0.50])
    ood = table[(table["split"] == "ood") & (table["contrast"] == "stage 2 - stage 1")]
    assert set(ood["member"]) == {"restaurants"} and len(ood) == 2
    # 'b' - stage 1 is 0.05 in every seed: a zero-width interval that excludes 0
    flat = table[(table["selection"] == "b") & (table["contrast"] == "stage 2 - stage 1")]
    assert flat["mean"].to_numpy() == pytest.approx(0.05) and flat["excludes_0"].all()


def test_members_alone_are_the_baseline_of_the_multi_setting_runs() -> None:
    runs = _runs(singles=True)
    acc = accuracy(runs, _metrics(runs), ["books", "movies"], ["restaurants"])
    table = intervals(paired(acc))
    alone = table[table["contrast"] == "stage 1 - alone"]
    # ID: each member against itself alone; OOD: restaurants against each member alone
    assert set(zip(alone["member"], alone["alone"], strict=True)) == {
        ("books", "books"),
        ("movies", "movies"),
        ("restaurants", "books"),
        ("restaurants", "movies"),
    }
    books = alone[alone["member"] == "books"].iloc[0]
    assert books["mean"] == pytest.approx(0.51 - 0.4)  # stage 1: 0.50, 0.51, 0.52
    ood = alone[alone["member"] == "restaurants"]
    assert ood["mean"].to_numpy() == pytest.approx([0.31 - 0.3] * 2)
    after = table[(table["contrast"] == "stage 2 - alone") & (table["selection"] == "a")]
    assert after[after["member"] == "movies"]["mean"].iloc[0] == pytest.approx(0.71 - 0.4)


def test_one_seed_gives_a_mean_without_interval() -> None:
    runs = _runs()
    runs = runs[runs["seed"] == 0]
    table = intervals(paired(accuracy(runs, _metrics(runs), ["books"], [])))
    assert table["low"].isna().all() and table["high"].isna().all()
    assert not table["excludes_0"].any() and (table["seeds"] == 1).all()


def test_the_terminal_view_stays_under_100_columns(capsys) -> None:
    runs = _runs(singles=True)
    runs.loc[runs["selection"] == "a", "selection"] = "subsets:forgettable,never_learned"
    acc = accuracy(runs, _metrics(runs), ["books", "movies"], ["restaurants"])
    shown = terminal(intervals(paired(acc)))
    assert list(shown) == ["stage 1", "subsets:forgettable,never_learned", "b"]
    for name, frame in shown.items():
        print_frame(frame, name)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) < 100
    assert any("restaurants (OOD) v books" in line for line in lines)


def test_labels_and_headline_metrics_of_several_selections() -> None:
    runs = _runs()
    acc = accuracy(runs, _metrics(runs), ["books"], [])
    rows = labelled(acc)
    assert list(dict.fromkeys(rows["run"])) == [
        "stage 1",
        "stage 2 a",
        "control a",
        "stage 2 b",
        "control b",
    ]
    headline = two_stage_headline(rows)
    # 'a': stage 2 0.6, 0.71, 0.82 against its size-5 controls (0.50 each)
    assert headline["summary/a/test_acc_stage2_minus_control"] == pytest.approx(0.71 - 0.5)
    assert headline["summary/stage_2_a/test_acc"] == pytest.approx(0.71)
    one = labelled(acc[acc["selection"].isin(["", "a", "random:5"])])
    assert list(dict.fromkeys(one["run"])) == ["stage 1", "stage 2", "control"]
    assert "summary/test_acc_stage2_minus_control" in two_stage_headline(one)
    # a study of two selections whose 'b' was empty everywhere keeps the names
    named = labelled(acc[acc["selection"].isin(["", "a", "random:5"])], named=True)
    assert list(dict.fromkeys(named["run"])) == ["stage 1", "stage 2 a", "control a"]
    assert "summary/a/test_acc_stage2_minus_control" in two_stage_headline(named)


def _soi(pairs: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"example_id": list(pairs), "member": "books", "soi": pd.Categorical(list(pairs.values()))}
    )


def test_migration_sums_seed_pairs_over_the_selected_examples_only() -> None:
    stage1 = _soi({1: "forgotten", 2: "never_learned", 3: "always_correct", 4: "relearned"})
    seed0 = (stage1, _soi({1: "always_correct", 2: "never_learned"}))
    seed1 = (stage1, _soi({1: "always_correct", 4: "forgotten"}))
    counts = migration_counts([seed0, seed1])
    assert counts.attrs["matched"] == 4
    assert counts.loc["forgotten", "always_correct"] == 2
    assert counts.loc["never_learned", "never_learned"] == 1
    assert counts.loc["relearned", "forgotten"] == 1
    assert counts.to_numpy().sum() == 4  # example 3 was not selected: never counted
    rows = migration_rows("forgettable", counts, 2)
    assert set(rows["soi_stage1"]) == {"forgotten", "never_learned", "relearned"}
    forgotten = rows[(rows["soi_stage1"] == "forgotten") & (rows["soi_stage2"] == "always_correct")]
    assert forgotten["fraction_of_row"].iloc[0] == 1.0 and (rows["seeds"] == 2).all()


def _stage1_table(soi: dict[int, str], variability: float) -> pd.DataFrame:
    """A hand-built stage-1 SOI table: every example with ``variability`` (0.3 and up is
    the ambiguous region) and confidence 0.9 (easy to learn otherwise)."""
    frame = _soi(soi)
    frame["confidence"], frame["variability"] = 0.9, variability
    return frame


def test_a_selection_empty_in_a_seed_is_dropped_there_only() -> None:
    tables = {
        0: _stage1_table({1: "forgotten", 2: "always_correct"}, 0.4),  # all ambiguous
        1: _stage1_table({1: "always_correct", 2: "always_correct"}, 0.4),  # no forgettable
        2: _stage1_table({1: "forgotten", 2: "never_learned"}, 0.0),  # none ambiguous
    }
    stage1 = {0: "r0", 1: "r1", 2: "r2"}
    selections = [parse_spec("forgettable"), parse_spec("region:ambiguous")]
    chosen, dropped = select_per_seed(selections, tables, stage1)
    assert {s: sorted(c) for s, c in chosen.items()} == {
        0: ["region:ambiguous", "subsets:forgettable"],
        1: ["region:ambiguous"],
        2: ["subsets:forgettable"],
    }
    assert list(chosen[0]["subsets:forgettable"]) == [1]
    assert list(chosen[1]["region:ambiguous"]) == [1, 2]
    pairs = zip(dropped["selection"], dropped["seed"], dropped["stage1_run_id"], strict=True)
    assert list(pairs) == [
        ("subsets:forgettable", 1, "r1"),
        ("region:ambiguous", 2, "r2"),
    ]
    assert dropped["problem"].str.startswith("not identified: the selection matches no").all()


def test_only_every_selection_empty_in_every_seed_is_an_error() -> None:
    tables = {s: _stage1_table({1: "always_correct"}, 0.0) for s in (0, 1)}
    selections = [parse_spec("forgettable"), parse_spec("region:ambiguous")]
    with pytest.raises(
        SoiInputError,
        match=r"selections subsets:forgettable, region:ambiguous match no training example "
        r"of stage-1 runs r0 \(seed 0\), r1 \(seed 1\); no stage-2 training was started",
    ):
        select_per_seed(selections, tables, {0: "r0", 1: "r1"})
    # one selection empty everywhere beside one that is not: dropped in both seeds
    tables[1] = _stage1_table({1: "always_correct"}, 0.5)
    chosen, dropped = select_per_seed(selections, tables, {0: "r0", 1: "r1"})
    assert chosen == {0: {}, 1: {"region:ambiguous": pytest.approx([1])}}
    assert len(dropped) == 3


def _drop(runs: pd.DataFrame, pairs: list[tuple[str, int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``runs`` without the stage 2 of the (selection, seed) ``pairs`` nor controls that
    no remaining stage 2 needs, and the dropped table."""
    keep = ~pd.Series(
        [(r.selection, r.seed) in pairs for r in runs.itertuples(index=False)], index=runs.index
    )
    runs = runs[keep]
    stage2 = runs[runs["role"] == "stage 2"]
    need = set(zip(stage2["seed"], stage2["size"], strict=True))
    control = runs["role"] == "control"
    used = [(s, z) in need for s, z in zip(runs["seed"], runs["size"], strict=True)]
    runs = runs[~control | pd.Series(used, index=runs.index)]
    dropped = pd.DataFrame(
        [(n, s, f"s1-{s}", "not identified: empty") for n, s in pairs],
        columns=["selection", "seed", "stage1_run_id", "problem"],
    )
    return runs, dropped


def test_intervals_use_the_seeds_that_have_the_selection() -> None:
    # 'b' empty in seed 2: 2 seeds left; 'a' empty in seeds 0 and 1: 1 seed left
    runs, dropped = _drop(_runs(), [("b", 2), ("a", 0), ("a", 1)])
    acc = accuracy(runs, _metrics(runs), ["books"], ["restaurants"])
    table = intervals(paired(acc), dropped=dropped)
    b = table[(table["selection"] == "b") & (table["contrast"] == "stage 2 - control")]
    # seeds 0, 1: 'b' 0.55, 0.56 against its size-8 control 0.53 each
    assert (b["seeds"] == 2).all() and b["problem"].isna().all()
    assert b[b["member"] == "books"]["mean"].iloc[0] == pytest.approx(0.025)
    a = table[table["selection"] == "a"]
    assert (a["seeds"] == 1).all() and a["low"].isna().all()
    assert a["problem"].str.contains("a matches no training example in seed.s. 0, 1; 1 seed").all()
    # stage 2 - stage 1 of 'a' in seed 2 alone: 0.3
    assert a[a["contrast"] == "stage 2 - stage 1"]["mean"].to_numpy() == pytest.approx([0.3] * 2)
    shown = terminal(table)
    assert set(shown["a"]["95% CI"]) == {"not identified"}
    assert "not identified" not in set(shown["b"]["95% CI"])


def test_a_selection_empty_in_every_seed_has_not_identified_rows() -> None:
    runs, dropped = _drop(_runs(), [("a", 0), ("a", 1), ("a", 2)])
    acc = accuracy(runs, _metrics(runs), ["books"], ["restaurants"])
    table = intervals(paired(acc), dropped=dropped)
    a = table[table["selection"] == "a"]
    b = table[table["selection"] == "b"]
    # the same contrasts, members and splits as 'b', with no estimate
    keys = ["contrast", "member", "split"]
    assert a[keys].to_numpy().tolist() == b[keys].to_numpy().tolist()
    assert a["mean"].isna().all() and (a["seeds"] == 0).all() and not a["excludes_0"].any()
    assert a["problem"].str.contains("in seed.s. 0, 1, 2; 0 seed.s. left").all()
    assert b["problem"].isna().all() and (b["seeds"] == 3).all()
    assert set(terminal(table)["a"]["mean"]) == {"n/a"}


def _experiment_selections() -> tuple[str, ...]:
    """The SPECs of experiments/two_stage_selections.py (experiments/ is no package)."""
    path = Path(__file__).resolve().parents[1] / "experiments" / "two_stage_selections.py"
    spec = importlib.util.spec_from_file_location("two_stage_selections", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(parse_spec(s).describe() for s in module.SELECTIONS)


@pytest.mark.parametrize("digits", [3, 4])  # the command's table, and analyze's
def test_the_accuracy_table_of_the_experiments_selections_fits_100_columns(digits, capsys) -> None:
    names = _experiment_selections()
    assert "subsets:forgettable,never_learned" in names
    members, ood = ["books", "movies", "electronics"], ["restaurants"]
    rows = []
    for seed in (0, 1, 2):
        rows.append((seed, "stage 1", "", "", f"s1-{seed}", np.nan))
        for m in members:
            rows.append((seed, "single", "", m, f"{m}-{seed}", np.nan))
        for k, name in enumerate(names):
            if name == "region:ambiguous" and seed == 2:
                continue  # empty in that seed: dropped
            rows.append((seed, "stage 2", name, "", f"s2-{k}-{seed}", 100 + k))
            rows.append((seed, "control", f"random:{100 + k}", "", f"c{k}-{seed}", 100 + k))
    runs = pd.DataFrame(rows, columns=["seed", "role", "selection", "member", "run_id", "size"])
    metrics = {
        r: {f"{s}/{m}/acc": 0.5 for s in ("test", "ood") for m in members + ood}
        for r in runs["run_id"]
    }
    wide = wide_table(labelled(accuracy(runs, metrics, members, ood)))
    table, legend = accuracy_view(wide.T, runs, digits)
    print_frame(table, "\n".join(["accuracy", *legend]), digits=digits)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) < 100
    # no label is folded onto a second line: every run has its one row
    body = lines[lines.index(next(x for x in lines if x.startswith("─"))) + 1 :]
    assert len(body) == len(table) and [x.split("  ")[0] for x in body] == list(table.index)
    assert "stage 2 [1]" in table.index and "control [4]" in table.index
    assert legend[0] == "[1] subsets:forgettable,never_learned: examples per seed 100/100/100"
    assert legend[2] == "[3] region:ambiguous: examples per seed 102/102/-"
    # labels that fit are kept whole
    keep = ["", "region:hard_to_learn", "random:101", "bottom:confidence:0.3", "random:103"]
    fits = runs[runs["selection"].isin(keep)]
    wide = wide_table(labelled(accuracy(fits, metrics, members, ood)))
    view, legend = accuracy_view(wide.T, fits, digits)
    assert legend == [] and "control bottom:confidence:0.3" in list(view.index)

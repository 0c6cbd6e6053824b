"""SOI of traces in hand (a DataFrame or a pyarrow Table), without MLflow, and the same
table as ``soi_table`` of a real run holding those traces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tracehelp import log_synthetic_run

import soi_mlflow.analysis as sa
from soi_mlflow.errors import SoiInputError

# correctness per epoch (4 epochs; split epoch ceil(4 / 2) = 2); None: not visited
KNOWN = {
    1: ([1, 1, 1, 1], "always_correct"),
    2: ([0, 0, 0, 0], "never_learned"),
    3: ([0, 1, 0, 0], "forgotten"),
    4: ([1, 0, 1, 1], "relearned"),
    5: ([0, 1, 1, 1], "early_learned"),
    6: ([0, 0, 1, 1], "late_learned"),
    7: ([1, 0, 1, 0], "forgotten"),
    8: ([None, None, 1, None], "too_few_epochs"),
}


def long_traces(known: dict[int, tuple[list, str]]) -> pd.DataFrame:
    """One row per visit: p_gold 0.9 when correct, 0.1 when wrong; member by parity."""
    rows = [
        {
            "example_id": i,
            "epoch": e,
            "member": "even" if i % 2 == 0 else "odd",
            "correct": bool(c),
            "p_gold": 0.9 if c else 0.1,
        }
        for i, (seq, _) in known.items()
        for e, c in enumerate(seq)
        if c is not None
    ]
    return pd.DataFrame(rows)


def test_a_hand_built_table_gets_its_known_subsets_cartography_and_forgetting() -> None:
    traces = long_traces(KNOWN)
    table = sa.soi_from_traces(traces).set_index("example_id")
    assert table["soi"].astype(str).to_dict() == {i: soi for i, (_, soi) in KNOWN.items()}
    assert table["forgetting_events"].to_dict() == {1: 0, 2: 0, 3: 1, 4: 1, 5: 0, 6: 0, 7: 2, 8: 0}
    assert table["first_learned_epoch"].tolist() == [1, 0, 2, 1, 2, 3, 1, 3]
    assert table["n_observed"].tolist() == [4, 4, 4, 4, 4, 4, 4, 1]
    assert table.loc[1, "confidence"] == pytest.approx(0.9) and table.loc[1, "variability"] < 1e-6
    assert table.loc[2, "confidence"] == pytest.approx(0.1)
    assert table.loc[7, "confidence"] == pytest.approx(0.5)
    assert table.loc[7, "variability"] == pytest.approx(0.4)
    assert table.loc[5, "correctness"] == 0.75
    assert np.isnan(table.loc[8, "confidence"])  # too few observations: no cartography
    assert table["member"].astype(str).to_dict()[4] == "even"
    assert table.attrs == {"epochs": 4, "min_observed": 2}


def test_every_input_form_gives_the_same_table() -> None:
    traces = long_traces(KNOWN)
    first = sa.soi_from_traces(traces)
    as_pred = traces.drop(columns="correct").assign(gold=2, pred=np.where(traces.correct, 2, 0))
    shuffled = traces.sample(frac=1.0, random_state=0)
    for other in (pa.Table.from_pandas(traces), as_pred, shuffled):
        pd.testing.assert_frame_equal(sa.soi_from_traces(other), first)
    plain = sa.soi_from_traces(traces.drop(columns="member"))
    assert set(plain["member"].astype(str)) == {"default"}
    pd.testing.assert_frame_equal(plain.drop(columns="member"), first.drop(columns="member"))
    again = pd.concat([traces.assign(correct=False, p_gold=0.3).head(4), traces])
    pd.testing.assert_frame_equal(sa.soi_from_traces(again), first)  # the last row counts


def test_options_reach_the_core() -> None:
    traces = long_traces(KNOWN)
    late = sa.soi_from_traces(traces, split_epoch=1).set_index("example_id")["soi"]
    assert late[5] == "late_learned"  # first learned at 2 > split epoch 1
    once = sa.soi_from_traces(traces, min_observed=1).set_index("example_id")["soi"]
    assert once[8] == "always_correct"
    mine = sa.Taxonomy("ever", (("learned", "n_correct > 0"), ("not", "n_correct == 0")))
    ever = sa.soi_from_traces(traces, taxonomy=mine).set_index("example_id")["soi"]
    assert ever[2] == "not" and ever[3] == "learned"
    listed = pd.DataFrame({"example_id": [*KNOWN, 9], "member": "odd"})
    table = sa.soi_from_traces(traces, examples=listed).set_index("example_id")
    assert table.loc[9, "soi"] == "too_few_epochs" and table.loc[9, "n_observed"] == 0
    assert len(table) == len(KNOWN) + 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="p_gold"), "lack column.s. p_gold;"),
        (lambda t: t.drop(columns="epoch"), "lack column.s. epoch;"),
        (lambda t: t.drop(columns="correct"), "lack column.s. pred, gold;"),
        (lambda t: t.drop(columns="correct").assign(pred=0), "lack column.s. gold;"),
        (lambda t: t.assign(example_id=t.example_id.astype(str)), "example_id must be integers"),
        (lambda t: t.assign(p_gold=t.p_gold.where(t.epoch > 0)), "p_gold has 7 missing"),
        (lambda t: t.head(0), "has no rows"),
        (lambda t: t.to_dict("records"), "pandas DataFrame or a pyarrow Table, got list"),
    ],
)
def test_bad_traces_are_refused_naming_the_problem(change, message) -> None:
    with pytest.raises(SoiInputError, match=message):
        sa.soi_from_traces(change(long_traces(KNOWN)))


def test_examples_without_ids_are_refused() -> None:
    with pytest.raises(SoiInputError, match="examples lack column.s. example_id"):
        sa.soi_from_traces(long_traces(KNOWN), examples=pd.DataFrame({"id": [1]}))


def test_soi_table_of_a_run_is_soi_from_traces_of_its_traces(store) -> None:
    correct = {i: seq for i, (seq, _) in KNOWN.items()}
    members = {i: "even" if i % 2 == 0 else "odd" for i in KNOWN}
    run = log_synthetic_run(store, correct, members, extra_examples={9: "odd"})
    traces = sa.load_traces(run, tracking_uri=store)
    for kwargs in ({}, {"split_epoch": 1, "min_observed": 1}):
        table = sa.soi_table(run, tracking_uri=store, **kwargs)
        mine = sa.soi_from_traces(
            traces, examples=sa.load_examples(run, tracking_uri=store), **kwargs
        )
        pd.testing.assert_frame_equal(table, mine)
        assert table.attrs == mine.attrs | {"run_id": run, "split": "train"}
    table = sa.soi_table(run, tracking_uri=store)
    expected = {i: soi for i, (_, soi) in KNOWN.items()} | {9: "too_few_epochs"}
    assert table.set_index("example_id")["soi"].astype(str).to_dict() == expected
    bare = sa.soi_from_traces(traces)  # without the example table: the traced examples
    traced = table[table.example_id != 9].reset_index(drop=True)
    pd.testing.assert_frame_equal(bare, traced, check_categorical=False)


def test_a_dense_run_keeps_its_declared_members_either_way(store) -> None:
    dense = {i: seq for i, (seq, _) in KNOWN.items() if i != 8}  # every example every epoch
    run = log_synthetic_run(store, dense, {i: "even" if i % 2 == 0 else "odd" for i in dense})
    table = sa.soi_table(run, tracking_uri=store)
    traces = sa.load_traces(run, tracking_uri=store)
    mine = sa.soi_from_traces(traces, examples=sa.load_examples(run, tracking_uri=store))
    pd.testing.assert_frame_equal(table, mine)
    assert list(mine["member"].cat.categories) == ["even", "m", "odd"]  # as the files declare
    as_correct = traces.drop(columns=["pred", "gold"]).assign(correct=traces.pred == traces.gold)
    pd.testing.assert_frame_equal(sa.soi_from_traces(as_correct), mine)

"""Terminal tables: narrow, and long column names wrapped where a reader expects."""

from __future__ import annotations

import pandas as pd

from soi_mlflow.analysis.soi import get_taxonomy
from soi_mlflow.common import console


def test_a_wide_soi_table_wraps_its_names_after_underscores(capsys) -> None:
    names = list(get_taxonomy("default").subsets) + ["too_few_epochs"]
    frame = pd.DataFrame([[0.125] * len(names)], index=pd.Index(["books"], name="member"))
    frame.columns = names
    console.print_frame(frame, "train: SOI fractions")
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= console.WIDTH
    header = [line.split() for line in lines[1:3]]
    pieces = {w for line in header for w in line}
    for name in names:  # every name is its own words, cut only after an underscore
        parts = [p + "_" for p in name.split("_")[:-1]] + [name.split("_")[-1]]
        assert name in pieces or all(any(part in w for w in pieces) for part in parts), name
    assert not any(w.endswith(("cor", "lea", "ep")) for w in pieces)  # no cut mid-word


def test_a_table_that_fits_keeps_its_names_whole(capsys) -> None:
    frame = pd.DataFrame(
        [[256, 1.0, 0]], columns=["examples", "coverage", "never_observed"]
    ).set_index(pd.Index(["books"], name="member"))
    console.print_frame(frame)
    assert "never_observed" in capsys.readouterr().out

"""The two-stage accuracy table as the terminal prints it: rows are runs (``stage 1``,
``<member> alone``, ``stage 2 <SPEC>``, ``control <SPEC>``), columns ``member (split)``.
Where a selection's label would not fit 100 columns beside the accuracies, every
selection is numbered (``stage 2 [1]``) and a legend above the table names it, with its
number of examples per seed (:func:`sizes`)."""

from __future__ import annotations

import pandas as pd

WIDTH = 99  # the longest line a command prints (tests ask for fewer than 100 columns)


def _label_room(columns: list[str], digits: int) -> int:
    """Columns left for the run labels beside accuracy columns printed with ``digits``
    (``0.123``) under their headers, two spaces between columns."""
    return WIDTH - sum(max(len(str(c)), digits + 2) + 2 for c in columns)


def sizes(runs: pd.DataFrame, name: str) -> str:
    """``246/253/-``: the selection's examples in each seed (``-``: empty, dropped)."""
    seeds = sorted(runs.loc[runs["role"] == "stage 1", "seed"].unique())
    own = runs[(runs["role"] == "stage 2") & (runs["selection"] == name)]
    size = dict(zip(own["seed"], own["size"], strict=True))
    return "/".join(str(int(size[s])) if s in size else "-" for s in seeds)


def accuracy_view(
    table: pd.DataFrame, runs: pd.DataFrame, digits: int = 3
) -> tuple[pd.DataFrame, list[str]]:
    """``table`` (rows: runs, as ``log_two_stage`` labels them) with labels that fit, and
    the legend lines ([] when the full labels fit). ``runs``: the study's runs table."""
    names = [n for n in dict.fromkeys(runs.loc[runs["role"] == "stage 2", "selection"]) if n]
    labels = [str(r) for r in table.index]
    if not names or max(map(len, labels)) <= _label_room(list(table.columns), digits):
        return table, []
    short = {}
    for k, name in enumerate(names, start=1):
        short |= {f"stage 2 {name}": f"stage 2 [{k}]", f"control {name}": f"control [{k}]"}
    legend = [f"[{k}] {n}: examples per seed {sizes(runs, n)}" for k, n in enumerate(names, 1)]
    legend = [line if len(line) <= WIDTH else line[: WIDTH - 1] + "~" for line in legend]
    return table.set_axis([short.get(label, label) for label in labels], axis=0), legend

"""How the commands print study tables and comparisons (through ``common.console``)."""

from __future__ import annotations

from typing import Any

from soi_mlflow.common import console


def on_screen(table: Any, columns: list[str] | None = None) -> Any:
    """A study table as the terminal shows it: what is not identified was printed in full
    above the tables, so the ``problem`` column is left out here (blank cells mark those
    rows); the logged table keeps it. ``columns`` picks the ones that fit 100 columns."""
    shown = table.drop(columns=[c for c in ("problem",) if c in table.columns])
    if columns is not None:
        shown = shown[[c for c in columns if c in shown.columns]]
    return shown


def print_study_table(table: Any, title: str) -> None:
    """One line for a table with nothing identified in it, else the table on screen."""
    if "problem" in table.columns and table["problem"].notna().all():
        print(f"{title}: not identified in any row (the reasons are above)")
    else:
        console.print_frame(on_screen(table), title, digits=4)


def print_comparison(summary: Any) -> None:
    """The single-vs-multi summary of a comparison study."""
    from soi_mlflow.studies.single_vs_multi import summary_rows  # deferred: datasets

    columns, rows = summary_rows(summary)
    console.print_table(
        rows,
        columns,
        "single vs multi: test accuracy (ID, OOD) and SOI fractions of the training set",
    )

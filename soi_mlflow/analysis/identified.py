"""Estimates a study's data cannot determine: reported as "not identified", with the
reason, instead of failing the study after its training.

An analysis that cannot estimate something (a worth the curves do not determine, an
interaction without its parts, a fit that does not converge, a PCA with missing cells)
puts ``not identified: <reason>`` in the ``problem`` column of its table. The study then
collects those reasons (:func:`table_problems`) and shows them in its figure titles
(:func:`title_note`) and in a "Not identified" section of the parent run's description
(:func:`report`), and the parent ends FINISHED.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from soi_mlflow.tracking.links import md_escape, set_description_section
from soi_mlflow.tracking.tags import NOT_IDENTIFIED

PREFIX = "not identified: "
PROBLEM = "problem"
SECTION = "Not identified"
TAG = NOT_IDENTIFIED  # tracking/tags.py
LISTED = 20  # reasons listed in the description (MLflow caps a tag's length)
# what estimating one of these from data may raise: scipy's curve_fit (RuntimeError when
# it does not converge, ValueError on an infeasible start), numpy.linalg (LinAlgError is
# a ValueError) and our own refusals (SoiInputError is a ValueError too)
ESTIMATION_ERRORS: tuple[type[BaseException], ...] = (ValueError, RuntimeError)


def not_identified(reason: object) -> str:
    """``"not identified: <reason>"`` (the prefix is not repeated)."""
    text = str(reason).strip()
    return text if text.startswith(PREFIX) else PREFIX + text


def is_reported(value: object) -> bool:
    """Whether a ``problem`` cell holds a reason (not None, NaN or empty)."""
    return isinstance(value, str) and bool(value.strip())


def reasons(problems: pd.Series) -> str:
    """The distinct reasons of ``problems`` (each clause once), joined with "; " (or "no
    finite estimate")."""
    parts = (part.strip() for p in problems if is_reported(p) for part in p.split("; "))
    return "; ".join(dict.fromkeys(parts)) or "no finite estimate"


def with_problems(summary: pd.DataFrame, frame: pd.DataFrame, by: list[str], value: str):
    """``summary`` (one row per group of ``by``) with a ``problem`` column: "not
    identified: <the reasons of the group's rows>" where no seed gave a finite ``value``."""
    if PROBLEM not in frame.columns:
        frame = frame.assign(**{PROBLEM: None})
    groups = frame.groupby(by, sort=True, dropna=False).agg(
        finite=(value, lambda v: bool(np.isfinite(v.to_numpy(float)).any())),
        why=(PROBLEM, reasons),
    )
    problems = [
        None if fin else not_identified(why)
        for fin, why in zip(groups["finite"], groups["why"], strict=True)
    ]
    out = summary.copy()
    out[PROBLEM] = problems if len(out) == len(problems) else None
    return out


def table_problems(tables: Mapping[str, pd.DataFrame], keys: int = 2) -> dict[str, str]:
    """``{"<table>: <key columns of the rows>": reason}`` for every table whose ``problem``
    column holds a reason; the rows that share a reason are listed together."""
    out: dict[str, str] = {}
    for name, frame in tables.items():
        if PROBLEM not in frame.columns:
            continue
        columns = list(frame.columns)
        stop = columns.index("mean") if "mean" in columns else len(columns)
        key_columns = [c for c in columns[: min(keys, stop)] if c != PROBLEM]
        rows: dict[str, list[str]] = {}  # reason -> where
        for label, row in frame.iterrows():
            reason = row[PROBLEM]
            if is_reported(reason):
                cells = [f"{c}={row[c]}" for c in key_columns]
                rows.setdefault(reason, []).append(", ".join(cells) or str(label))
        for reason, where in rows.items():
            out[f"{name}: {'; '.join(where)}"] = not_identified(reason)
    return out


def title_note(problems: Mapping[str, str], limit: int = 110) -> str:
    """A short line for a figure title: how many estimates are not identified and where
    to read why; empty when none."""
    if not problems:
        return ""
    first = next(iter(problems.values()))
    if len(problems) == 1 and len(first) <= limit:
        return f"\n{first}"
    return f"\n{len(problems)} estimate(s) not identified (see the run description)"


def report(client: Any, run_id: str, problems: Mapping[str, str]) -> None:
    """Write (or clear) the "Not identified" section of the run's description and the
    ``soi.not_identified`` tag (the count), and print one line per estimate."""
    client.set_tag(run_id, TAG, str(len(problems)))
    if not problems:
        set_description_section(client, run_id, SECTION, "Every estimate was identified.")
        return
    lines = [
        "These estimates are not determined by the study's data; everything else is "
        "logged as usual (the tables' `problem` column says the same):",
        "",
    ]
    items = list(problems.items())
    lines += [f"- **{md_escape(where)}**: {md_escape(why)}" for where, why in items[:LISTED]]
    if len(items) > LISTED:
        lines.append(f"- and {len(items) - LISTED} more: see the tables' `problem` column")
    set_description_section(client, run_id, SECTION, "\n".join(lines))
    for where, why in problems.items():
        print(f"{where}: {why}", flush=True)

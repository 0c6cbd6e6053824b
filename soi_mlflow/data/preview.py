"""A printed look at a mixture's data: the main job until training exists, and a quick
check of a suite or a preset on local files."""

from __future__ import annotations

import textwrap

import pandas as pd

from soi_mlflow.data.mixture import Mixture, MixtureSpec
from soi_mlflow.tracking.names import BUILTIN_SPLITS


def summary(mixture: Mixture) -> pd.DataFrame:
    """One row per (member, split): size, label counts, planted counts when present."""
    rows = []
    for split in BUILTIN_SPLITS:
        table = mixture.example_table(split)
        if table.empty:
            continue
        for member, part in table.groupby("member", sort=False):
            row = {"member": member, "split": split, "examples": len(part)}
            row["labels"] = ", ".join(
                f"{k}={v}" for k, v in part["label_name"].value_counts().sort_index().items()
            )
            if "planted" in part:
                row["planted"] = ", ".join(
                    f"{k}={v}" for k, v in part["planted"].value_counts().items()
                )
            rows.append(row)
    return pd.DataFrame(rows)


def print_preview(spec: MixtureSpec, examples: int = 2) -> None:
    mixture = Mixture(spec)
    setting = "single-setting" if len(spec.members) == 1 else "multi-setting"
    print(
        f"suite {mixture.suite.name!r}, axis {spec.axis!r}, {setting}: "
        f"train on {', '.join(spec.members)}; OOD: {', '.join(spec.ood) or 'none'}"
    )
    print(f"tasks: {', '.join(f'{t} ({len(n)} labels)' for t, n in mixture.tasks.items())}")
    print(
        f"sampling: {spec.sampling}; member weights: "
        + ", ".join(f"{m}={w:.2f}" for m, w in mixture.member_weights().items())
    )
    with pd.option_context("display.max_colwidth", 60, "display.width", 160):
        print(summary(mixture).to_string(index=False))
    if examples > 0:
        train = mixture.example_table("train")
        for member, part in train.groupby("member", sort=False):
            print(f"\n{member}:")
            for _, ex in part.head(examples).iterrows():
                pair = f" || {ex['text_pair']}" if isinstance(ex.get("text_pair"), str) else ""
                planted = f" [{ex['planted']}]" if "planted" in ex else ""
                line = (
                    f"  id={ex['example_id']} label={ex['label_name']}{planted}: {ex['text']}{pair}"
                )
                print(textwrap.shorten(line, 150))

"""How the built-in suite's planted kinds behave: SOI and cartography per kind.

Trains the tiny encoder on built-in members (each alone, and the three tasks together),
then joins each run's SOI table with its example table's ``planted`` column and prints,
per planted kind, the share in each subset and region. The figures in docs/analysis.md
come from this script:

    .venv/bin/python experiments/planted_kinds.py [--epochs 5] [--tracking-uri URI]
"""

from __future__ import annotations

import argparse
import warnings

from soi_mlflow.analysis.profile import profile_by
from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.training import TrainConfig, train

SETTINGS = [
    ("source", ("books",)),
    ("source", ("electronics",)),
    ("task", ("sentiment",)),
    ("task", ("sentiment", "paraphrase", "entailment")),
    ("lang", ("lang_a",)),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--tracking-uri", default="sqlite:///planted.db")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    cols = [
        "n",
        "always_correct",
        "never_learned",
        "forgotten",
        "never_or_forgotten",
        "easy_to_learn",
        "hard_to_learn",
        "ambiguous",
        "confidence",
        "variability",
    ]
    for axis, members in SETTINGS:
        spec = MixtureSpec("builtin", axis, members)
        result = train(
            TrainConfig(
                spec,
                epochs=args.epochs,
                progress=False,
                tracking_uri=args.tracking_uri,
                experiment="planted-kinds",
            )
        )
        profile = profile_by(result.run_id, "planted", tracking_uri=args.tracking_uri)
        print(f"\n{axis}: {'+'.join(members)} ({args.epochs} epochs, run {result.run_id})")
        print(profile.reindex(columns=cols).fillna(0).round(3).to_string())


if __name__ == "__main__":
    main()

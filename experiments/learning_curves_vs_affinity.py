"""Learning curves (full sweep and warm-start approximation) against lookahead affinity.

For a target and several auxiliary members of the built-in suite: the full learning-curve
sweep and its warm-start approximation (``--approx``) with each auxiliary member, their
transfer estimates (score with aux - score alone, per size), the rank correlation of the
two, their compute; then the lookahead affinity Z[aux -> target] measured during one
multi-task run, and whether both views rank the auxiliary members the same way. The
figures in docs/studies.md come from this script:

    .venv/bin/python experiments/learning_curves_vs_affinity.py
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd
from scipy.stats import spearmanr

from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.studies import learning_curve
from soi_mlflow.studies.learning_curve import CurveSettings
from soi_mlflow.training import TrainConfig, train


def transfer_by_size(points: pd.DataFrame) -> pd.Series:
    means = points.groupby(["curve", "n"])["score"].mean().unstack(0)
    return means["aux"] - means["alone"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default="entailment")
    parser.add_argument("--aux", default="sentiment,paraphrase")
    parser.add_argument("--sizes", default="50,100,200,400,800")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--tracking-uri", default="sqlite:///curves.db")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    aux_members = args.aux.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows, compute = [], []
    for aux in aux_members:
        for approx in (False, True):
            base = TrainConfig(
                MixtureSpec("builtin", "task", (args.target, aux)),
                epochs=args.epochs,
                progress=False,
                tracking_uri=args.tracking_uri,
                experiment="curves-vs-affinity",
            )
            settings = CurveSettings(
                args.target, (aux,), tuple(sizes), seeds=args.seeds, approx=approx
            )
            result = learning_curve.run(base, settings)
            for n, delta in transfer_by_size(result.points).items():
                rows.append({"aux": aux, "approx": approx, "n": n, "transfer": delta})
            ctx = result.fits[result.fits["curve"] == "contextual"].iloc[0]
            compute.append(
                {
                    "aux": aux,
                    "approx": approx,
                    "example_passes": int(result.points["example_passes"].sum()),
                    "seconds": round(float(result.points["seconds"].sum()), 1),
                    "worth_contextual": float(result.worth["worth_from_contextual"].iloc[0]),
                    "a_x/a_t": ctx["a_x"] / ctx["a_t"],
                }
            )
    estimates = pd.DataFrame(rows).pivot_table(
        index=["aux", "n"], columns="approx", values="transfer"
    )
    estimates.columns = ["full", "approx"]
    rho = spearmanr(estimates["full"], estimates["approx"]).statistic
    print("transfer estimates (score with aux - score alone), full sweep vs approximation:")
    print(estimates.round(3).to_string())
    print(f"Spearman rank correlation over (aux, size): {rho:.3f}")
    print(pd.DataFrame(compute).to_string(index=False))

    members = (args.target, *aux_members)
    result = train(
        TrainConfig(
            MixtureSpec("builtin", "task", members),
            epochs=args.epochs,
            progress=False,
            tracking_uri=args.tracking_uri,
            experiment="curves-vs-affinity",
            affinity_every=20,
        )
    )
    matrix = result.affinity.mean_matrix()
    print("\nlookahead affinity Z[i -> j], mean over epochs (every 20 steps):")
    print(matrix.round(5).to_string())
    by_affinity = matrix.loc[aux_members, args.target].sort_values(ascending=False)
    by_curves = estimates["full"].groupby(level="aux").mean().sort_values(ascending=False)
    print(
        f"\nauxiliary ranking by affinity to {args.target}: {list(by_affinity.index)} "
        f"({', '.join(f'{k}={v:+.5f}' for k, v in by_affinity.items())})"
    )
    print(
        f"auxiliary ranking by learning curves (mean transfer over sizes): {list(by_curves.index)} "
        f"({', '.join(f'{k}={v:+.3f}' for k, v in by_curves.items())})"
    )
    print("same ranking:", list(by_affinity.index) == list(by_curves.index))


if __name__ == "__main__":
    main()

"""Agreement against compute for the learning-curve approximations, on disjoint seeds.

Reads the studies of experiments/cheap_transfer.py (targets entailment and paraphrase,
the two other tasks as auxiliary members, target sizes 50-400, 1,000 examples per member,
3 epochs): the full sweep and the warm start with all auxiliary examples at seeds 0-5,
the 250-auxiliary-example variants at seeds 0-2. For every method, estimator and number
of seeds k, and every choice S of k of the method's seeds, it ranks the method's 16
transfer estimates (mean over S) against the full sweep's mean over the seeds NOT in S,
so no run is ever compared with itself or with its own seed (the warm start's smallest
size is the full sweep's own run at that seed). It reports the mean Spearman over the
choices of S with their 2.5-97.5 % range, against the method's compute as a fraction of
a 3-seed full sweep. The full sweep itself at k = 3 (3 seeds against 3 others) is how
well the reference agrees with itself: the ceiling for any approximation.

Estimators: ``raw`` (the gain at each size) and ``loglin`` (per seed, target and
auxiliary member, the gains fitted by a line in log n over the sizes, its values used:
it pools the sizes' noise, at the price of bending a curve that is not a line).

    python experiments/cheap_transfer.py --target entailment --variant full-all --first-seed 3
    python experiments/cheap_transfer.py --target paraphrase --variant full-all --first-seed 3
    python experiments/cheap_transfer.py --target entailment --variant warm-all --first-seed 3
    python experiments/cheap_transfer.py --target paraphrase --variant warm-all --first-seed 3
    python experiments/cheap_tradeoff.py       # table, figure and metrics in MLflow
"""

from __future__ import annotations

import argparse
import re
import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from cheap_transfer import EXPERIMENT, SMALL_AUX, _points

KEYS = ["target", "curve", "n"]


def loglin(gains: pd.DataFrame) -> pd.DataFrame:
    """Each (seed, target, curve)'s gains replaced by a least-squares line in log n."""
    parts = []
    for _, part in gains.groupby(["seed", "target", "curve"]):
        x = np.log(part["n"].to_numpy(float))
        fit = np.polyfit(x, part["value"].to_numpy(float), 1)
        parts.append(part.assign(value=np.polyval(fit, x)))
    return pd.concat(parts)


def load(args) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Per method: the per-seed gains (with a target column) and the runs' points."""
    from soi_mlflow.analysis.agreement import transfer_gains
    from soi_mlflow.analysis.runs import cache_for

    cache = cache_for(args.tracking_uri)
    client = cache.client
    points: dict[str, list[pd.DataFrame]] = {}
    for target in args.targets.split(","):

        def get(variant, first_seed=0, target=target):
            found = _points(client, cache, target, variant, False, first_seed)
            return None if found is None else found.assign(target=target)

        full = pd.concat([get("full"), get("full-all", 3)])
        alone = full[full["curve"] == "alone"]
        small = full[full["aux_size"] == SMALL_AUX]
        methods = {
            "full sweep": full[full["aux_size"] != SMALL_AUX],
            "warm start, all auxiliary": pd.concat([get("warm-all"), get("warm-all", 3)]),
            f"aux {SMALL_AUX}": pd.concat([alone[alone["seed"].isin(small["seed"])], small]),
            f"warm start, aux {SMALL_AUX}": get("warm"),
        }
        for name, frame in methods.items():
            points.setdefault(name, []).append(frame)
    points = {k: pd.concat(v) for k, v in points.items()}
    gains = {
        k: pd.concat(
            transfer_gains(p[p["target"] == t]).assign(target=t) for t in p["target"].unique()
        )
        for k, p in points.items()
    }
    return gains, points


def tradeoff(gains, points) -> pd.DataFrame:
    from soi_mlflow.analysis.agreement import spearman

    reference = gains["full sweep"]
    ref_seeds = sorted(reference["seed"].unique())
    full_cost = points["full sweep"].groupby("seed")[["example_passes", "seconds"]].sum().mean()
    rows = []
    for name, g in gains.items():
        cost = points[name].groupby("seed")[["example_passes", "seconds"]].sum().mean()
        seeds = sorted(g["seed"].unique())
        for estimator, values in (("raw", g), ("loglin", loglin(g))):
            for k in (1, 2, 3):
                rhos = []
                for chosen in combinations(seeds, k):
                    rest = [s for s in ref_seeds if s not in chosen]
                    mine = values[values["seed"].isin(chosen)].groupby(KEYS)["value"].mean()
                    ref = reference[reference["seed"].isin(rest)].groupby(KEYS)["value"].mean()
                    rhos.append(spearman(mine, ref))
                low, high = np.quantile(rhos, [0.025, 0.975])
                rows.append(
                    {
                        "method": name,
                        "estimator": estimator,
                        "seeds": k,
                        "spearman": float(np.mean(rhos)),
                        "low": float(low),
                        "high": float(high),
                        "choices": len(rhos),
                        "reference_seeds": f"{len(ref_seeds) - k}",
                        "example_passes": int(k * cost["example_passes"]),
                        "seconds": float(k * cost["seconds"]),
                        "passes_fraction": k
                        * cost["example_passes"]
                        / (3 * full_cost["example_passes"]),
                        "seconds_fraction": k * cost["seconds"] / (3 * full_cost["seconds"]),
                    }
                )
    return pd.DataFrame(rows)


def figure(table: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, column, label in (
        (axes[0], "passes_fraction", "training example-passes (fraction of a 3-seed full sweep)"),
        (axes[1], "seconds_fraction", "training seconds (fraction of a 3-seed full sweep)"),
    ):
        for (method, estimator), part in table.groupby(["method", "estimator"], sort=False):
            ax.errorbar(
                part[column],
                part["spearman"],
                yerr=[part["spearman"] - part["low"], part["high"] - part["spearman"]],
                fmt="-o" if estimator == "raw" else "--s",
                capsize=3,
                label=f"{method} ({estimator})",
            )
        ax.axhline(0.8, color="grey", lw=0.6, ls="--")
        ax.axvline(0.2, color="grey", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel(label, fontsize=8)
    axes[0].set_ylabel("Spearman vs the full sweep's other seeds\n(mean, 2.5-97.5 % over choices)")
    axes[1].legend(fontsize=6, loc="lower right")
    fig.suptitle("Learning-curve transfer: agreement against compute (1, 2, 3 seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default="entailment,paraphrase")
    parser.add_argument("--tracking-uri", default="sqlite:///cheap-transfer.db")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from soi_mlflow.analysis.report import log_figures, log_table
    from soi_mlflow.tracking.run import RunHandle

    gains, points = load(args)
    table = tradeoff(gains, points)
    print("seeds per method:", {k: sorted(v["seed"].unique()) for k, v in gains.items()})
    print(table.round(3).to_string(index=False))
    run = RunHandle.open(args.tracking_uri, EXPERIMENT, "approximation-tradeoff", {})
    for row in table.itertuples():
        key = re.sub(r"[^a-z0-9]+", "_", f"{row.method} {row.estimator} {row.seeds}".lower())
        run.log_metrics(
            {
                f"agreement/{key}/spearman": row.spearman,
                f"agreement/{key}/low": row.low,
                f"agreement/{key}/high": row.high,
                f"compute/{key}/passes_fraction": row.passes_fraction,
                f"compute/{key}/seconds_fraction": row.seconds_fraction,
            },
            step=0,
        )
    log_table(run.client, run.run_id, table, "approximation_tradeoff")
    log_figures(run.client, run.run_id, {"approximation_tradeoff_seeds": figure(table)})
    run.finish("FINISHED")
    print(f"logged to run {run.run_id}")


if __name__ == "__main__":
    main()

"""How cheaply can learning curves rank transfer like the full sweep?

For each target of the built-in task suite, with the other two tasks as auxiliary members
(each paired with the target), two learning-curve studies over the same seeds:

- ``full``: every target size from scratch, the auxiliary members at 250 and at all 1,000
  of their examples (``--aux-sizes 250,1000``). Its runs with all auxiliary examples are
  the reference sweep; its runs at 250 are the "small auxiliary" approximation.
- ``warm``: the warm-start approximation (``--approx``) with 250 auxiliary examples.
- ``warm-all``: the warm-start approximation with all 1,000 auxiliary examples.
- ``full-all``: the reference sweep alone (all 1,000 auxiliary examples, no 250), for
  more seeds (``--first-seed 3`` runs seeds 3-5; experiments/cheap_tradeoff.py uses them).

A transfer estimate is the test-accuracy gain of the target with one auxiliary member
over the target alone, per (target, auxiliary member, target size), averaged over seeds.
``--report`` ranks each approximation's estimates against the reference's (Spearman, with
a 95 % bootstrap interval over seeds), sets that against its compute (training
example-passes and seconds, each run timed), logs all of it to one MLflow run (metrics,
table, figure) and prints the table quoted in docs/learning.md. Run one study per call
(each a few minutes on 2 cores), then the report:

    python experiments/cheap_transfer.py --target entailment --variant full
    python experiments/cheap_transfer.py --target entailment --variant warm
    python experiments/cheap_transfer.py --target paraphrase --variant full
    python experiments/cheap_transfer.py --target paraphrase --variant warm
    python experiments/cheap_transfer.py --target entailment --variant warm-all
    python experiments/cheap_transfer.py --target paraphrase --variant warm-all
    python experiments/cheap_transfer.py --report
"""

from __future__ import annotations

import argparse
import re
import warnings

import pandas as pd

from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.studies import learning_curve
from soi_mlflow.studies.learning_curve import CurveSettings
from soi_mlflow.training import TrainConfig

TASKS = ("sentiment", "paraphrase", "entailment")
EXPERIMENT = "cheap-transfer"
SMALL_AUX = 250


def study(args) -> None:
    aux = tuple(t for t in TASKS if t != args.target)
    base = TrainConfig(
        MixtureSpec("builtin", "task", (args.target, *aux), max_examples=args.max_examples),
        epochs=args.epochs,
        progress=False,
        tracking_uri=args.tracking_uri,
        experiment=EXPERIMENT,
        run_name=study_name(args.variant, args.target, args.first_seed),
        seed=args.first_seed,
    )
    settings = CurveSettings(
        args.target,
        aux,
        tuple(int(s) for s in args.sizes.split(",")),
        aux_sizes={"full": (SMALL_AUX, args.max_examples), "warm": (SMALL_AUX,)}.get(
            args.variant, ()
        ),
        seeds=args.seeds,
        approx=args.variant.startswith("warm"),
        sets="pairwise",
    )
    result = learning_curve.run(base, settings)
    print(result.tables["learning_curve_worth_over_sizes"].round(2).to_string(index=False))
    print(result.tables["learning_curve_contextual"].T.to_string())
    print(result.compute)


def study_name(variant: str, target: str, first_seed: int = 0) -> str:
    """The run name of one study; studies of later seeds carry their first seed."""
    return f"{variant}-{target}" + (f"-s{first_seed}" if first_seed else "")


def _points(client, cache, target: str, variant: str, required: bool = True, first_seed=0):
    runs = client.search_runs(
        [client.get_experiment_by_name(EXPERIMENT).experiment_id],
        f"tags.`mlflow.runName` = '{study_name(variant, target, first_seed)}' "
        "and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        if not required:
            return None
        raise SystemExit(f"no finished {variant} study for {target}: run it first")
    return pd.read_parquet(cache.file(runs[0].info.run_id, "tables/learning_curve_points.parquet"))


def report(args) -> None:
    from soi_mlflow.analysis.agreement import rank_agreement, spearman, transfer_gains
    from soi_mlflow.analysis.report import log_figures, log_table
    from soi_mlflow.analysis.runs import cache_for
    from soi_mlflow.tracking.run import RunHandle

    cache = cache_for(args.tracking_uri)
    client = cache.client
    gains, costs = {}, {}
    for target in args.targets.split(","):
        full = _points(client, cache, target, "full").assign(target=target)
        warm = _points(client, cache, target, "warm").assign(target=target)
        warm_all = _points(client, cache, target, "warm-all", required=False)
        alone = full[full["curve"] == "alone"]
        variants = {
            "full sweep": pd.concat([alone, full[full["aux_size"] == args.max_examples]]),
            f"aux {SMALL_AUX}": pd.concat([alone, full[full["aux_size"] == SMALL_AUX]]),
            f"warm start, aux {SMALL_AUX}": warm,
        }
        if warm_all is not None:
            variants["warm start, all auxiliary"] = warm_all.assign(target=target)
        for name, points in variants.items():
            g = transfer_gains(points).assign(target=target)
            gains[name] = pd.concat([gains.get(name), g])
            cost = points[["example_passes", "seconds"]].sum()
            costs[name] = costs.get(name, 0) + cost
    reference = gains["full sweep"]
    rows = []
    for name, g in gains.items():
        rho, low, high = rank_agreement(g, reference, ["target", "curve", "n"])
        rows.append(
            {
                "method": name,
                "spearman": rho,
                "low": low,
                "high": high,
                "estimates": int(g.groupby(["target", "curve", "n"]).ngroups),
                "seeds": int(g["seed"].nunique()),
                "example_passes": int(costs[name]["example_passes"]),
                "seconds": float(costs[name]["seconds"]),
                "passes_fraction": costs[name]["example_passes"]
                / costs["full sweep"]["example_passes"],
                "seconds_fraction": costs[name]["seconds"] / costs["full sweep"]["seconds"],
            }
        )
    # One seed of a method against the full sweep's other seeds (leave one out): what a
    # third of the compute gives, and, for the full sweep itself, how well one seed
    # predicts the others (a ceiling for any approximation at one seed).
    keys = ["target", "curve", "n"]
    for name, g in gains.items():
        rhos = []
        for seed in sorted(reference["seed"].unique()):
            mine = g[g["seed"] == seed].groupby(keys)["value"].mean()
            rest = reference[reference["seed"] != seed].groupby(keys)["value"].mean()
            rhos.append(spearman(mine, rest))
        seeds = reference["seed"].nunique()
        rows.append(
            {
                "method": f"{name}, one seed vs the other seeds",
                "spearman": float(pd.Series(rhos).mean()),
                "low": float(min(rhos)),
                "high": float(max(rhos)),
                "estimates": int(g.groupby(keys).ngroups),
                "seeds": 1,
                "example_passes": int(costs[name]["example_passes"] / seeds),
                "seconds": float(costs[name]["seconds"] / seeds),
                "passes_fraction": costs[name]["example_passes"]
                / seeds
                / costs["full sweep"]["example_passes"],
                "seconds_fraction": costs[name]["seconds"] / seeds / costs["full sweep"]["seconds"],
            }
        )
    # Why wall time falls less than example-passes: a fixed cost per run (start-up,
    # MLflow run and example tables, evaluation of every member each epoch).
    import numpy as np

    runs = pd.concat(
        [
            _points(client, cache, t, v, required=False)
            for t in args.targets.split(",")
            for v in ("full", "warm", "warm-all")
        ]
    )
    slope, fixed = np.polyfit(runs["example_passes"], runs["seconds"], 1)
    print(
        f"per run: {fixed:.2f} s fixed + {1000 * slope:.2f} s per 1,000 example-passes "
        f"(least squares over {len(runs)} runs)"
    )
    table = pd.DataFrame(rows)
    print("low/high: 95 % bootstrap over seeds; for one seed, the range over the seeds")
    print(table.round(3).to_string(index=False))
    means = {k: v.groupby(["target", "curve", "n"])["value"].mean() for k, v in gains.items()}
    print(pd.DataFrame(means).round(3).to_string())
    run = RunHandle.open(args.tracking_uri, EXPERIMENT, "approximation-agreement", {})
    for row in rows:
        key = re.sub(r"[^a-z0-9]+", "_", row["method"].lower()).strip("_")
        run.log_metrics(
            {
                f"agreement/{key}/spearman": row["spearman"],
                f"agreement/{key}/low": row["low"],
                f"agreement/{key}/high": row["high"],
                f"compute/{key}/example_passes": row["example_passes"],
                f"compute/{key}/seconds": row["seconds"],
            },
            step=0,
        )
    run.log_metrics(
        {"compute/seconds_fixed_per_run": fixed, "compute/seconds_per_1000_passes": 1000 * slope},
        step=0,
    )
    log_table(run.client, run.run_id, table, "approximation_agreement")
    log_table(run.client, run.run_id, pd.DataFrame(means).reset_index(), "transfer_estimates")
    log_figures(run.client, run.run_id, {"approximation_tradeoff": _figure(table)})
    run.finish("FINISHED")
    print(f"logged to run {run.run_id}")


def _figure(table: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, column, label in (
        (axes[0], "passes_fraction", "training example-passes (fraction of the full sweep)"),
        (axes[1], "seconds_fraction", "training seconds (fraction of the full sweep)"),
    ):
        for _, row in table.iterrows():
            ax.errorbar(
                row[column],
                row["spearman"],
                yerr=[[row["spearman"] - row["low"]], [row["high"] - row["spearman"]]],
                fmt="o",
                capsize=3,
            )
            ax.annotate(row["method"], (row[column], row["spearman"]), fontsize=7)
        ax.axhline(0.8, color="grey", lw=0.6, ls="--")
        ax.axvline(0.2, color="grey", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel(label, fontsize=8)
    axes[0].set_ylabel("Spearman vs the full sweep (95 % bootstrap over seeds)")
    fig.suptitle("Learning-curve transfer: agreement against compute", fontsize=10)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default="entailment")
    parser.add_argument(
        "--variant", choices=("full", "warm", "warm-all", "full-all"), default="full"
    )
    parser.add_argument("--first-seed", type=int, default=0, help="seeds from this one on")
    parser.add_argument("--report", action="store_true", help="compare the finished studies")
    parser.add_argument("--targets", default="entailment,paraphrase", help="targets to report")
    parser.add_argument("--sizes", default="50,100,200,400")
    parser.add_argument("--max-examples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tracking-uri", default="sqlite:///cheap-transfer.db")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    report(args) if args.report else study(args)


if __name__ == "__main__":
    main()

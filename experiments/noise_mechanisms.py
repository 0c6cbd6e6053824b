"""How hard each planted-noise mechanism is: the noise benchmark once per mechanism.

Runs ``soi_mlflow.studies.noise_benchmark.run`` (trace detectors only, no cross-validation)
on the built-in ``sentiment`` member for uniform, boundary, asymmetric and duplicate noise
alone and all three harder ones together, at one mislabeled rate, and prints each
detector's AUROC and average precision (mean ± std over seeds). The comparison table in
docs/noise.md comes from this script:

    .venv/bin/python experiments/noise_mechanisms.py [--seeds 3] [--tracking-uri URI]
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd

from soi_mlflow.studies import noise_benchmark
from soi_mlflow.studies.noise_benchmark import HARDEST, NoiseBenchmarkSettings

SETTINGS = ("uniform", "boundary", "asymmetric", "duplicates", HARDEST)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.15)
    parser.add_argument("--tracking-uri", default="sqlite:///noise.db")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    rows = []
    for noise in SETTINGS:
        settings = NoiseBenchmarkSettings(
            noise=noise,
            mislabeled_rate=args.rate,
            seeds=args.seeds,
            cl_folds=0,
            tracking_uri=args.tracking_uri,
            experiment="noise-mechanisms",
        )
        result = noise_benchmark.run(settings.train_config(), settings)
        for detector, row in result.summary.iterrows():
            rows.append(
                {
                    "noise": noise,
                    "detector": detector,
                    "auroc": f"{row['auroc_mean']:.3f} ± {row['auroc_std']:.3f}",
                    "ap": f"{row['ap_mean']:.3f} ± {row['ap_std']:.3f}",
                    "noise_share": round(row["base_rate"], 3),
                }
            )
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(table.pivot(index="detector", columns="noise", values="ap").to_string())
        print(table.pivot(index="detector", columns="noise", values="auroc").to_string())
        print(table.groupby("noise")["noise_share"].first().to_string())


if __name__ == "__main__":
    main()

"""How often do the intervals over seeds cover the true value? (generated data, numpy)

For s seeds of a normally distributed per-seed estimate (and of a skewed one: lognormal),
the share of 2,000 replicates whose 95 % interval covers the true mean, for the Student-t
interval and the percentile bootstrap over seeds (``soi_mlflow.analysis.intervals``).
The table in docs/learning.md comes from:

    python experiments/interval_coverage.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from soi_mlflow.analysis.intervals import bootstrap_mean, t_interval


def main(replicates: int = 2000, level: float = 0.95) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for name, draw, truth in (
        ("normal", lambda s: rng.normal(0.1, 0.05, s), 0.1),
        ("lognormal", lambda s: rng.lognormal(0.0, 0.75, s), float(np.exp(0.75**2 / 2))),
    ):
        for seeds in (3, 5, 10, 20):
            hits = {"t": 0, "bootstrap": 0}
            for _ in range(replicates):
                values = draw(seeds)
                _, low, high = t_interval(values, level)
                hits["t"] += low <= truth <= high
                _, low, high = bootstrap_mean(values, level, samples=1000, rng=rng)
                hits["bootstrap"] += low <= truth <= high
            rows.append(
                {"data": name, "seeds": seeds, **{k: v / replicates for k, v in hits.items()}}
            )
    print(f"coverage of {level:.0%} intervals over {replicates} replicates")
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()

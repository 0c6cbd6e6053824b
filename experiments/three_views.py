"""Three views of transfer on the built-in task suite, on the same members and seeds.

Runs ``soi_mlflow.studies.views.run``: the joint transfer matrix, lookahead task
affinity (TAG's gradient step, every 10 steps) and pairwise learning curves (target sizes
50, 150, 450) for sentiment, paraphrase and entailment (600 training examples each,
3 epochs, 3 seeds, tiny encoder); then which ordered pairs each view finds significant
(95 % Student-t intervals over seeds), the views' rank agreement (Spearman with a 95 %
bootstrap interval over seeds) and each view's compute. The figures in docs/learning.md
come from:

    python experiments/three_views.py                    # every view 3 seeds
    python experiments/three_views.py --budget 99900 --lock /tmp/soi-heavy.lock

``--budget`` gives each view the same training example-passes: each runs as many seeds
as the budget pays for (here the curves 2, the transfer matrix 6, affinity 18).
``--lock FILE`` holds an exclusive ``flock`` on FILE around each view's training only
(one chunk per view, each under 5 minutes here), so a long study shares a machine;
do not also wrap the script in ``flock FILE`` (it would wait for itself).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import warnings

from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.studies import views
from soi_mlflow.studies.views import ViewsSettings
from soi_mlflow.training import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", default="sentiment,paraphrase,entailment")
    parser.add_argument("--max-examples", type=int, default=600)
    parser.add_argument("--sizes", default="50,150,450")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=0, help="example-passes per view")
    parser.add_argument("--lock", default=None, help="flock this file around each view")
    parser.add_argument("--tracking-uri", default="sqlite:///three-views.db")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    base = TrainConfig(
        MixtureSpec(
            "builtin", "task", tuple(args.members.split(",")), max_examples=args.max_examples
        ),
        epochs=args.epochs,
        progress=False,
        tracking_uri=args.tracking_uri,
        experiment="three-views",
    )
    settings = ViewsSettings(
        args.seeds, budget=args.budget, sizes=tuple(int(s) for s in args.sizes.split(","))
    )

    @contextlib.contextmanager
    def locked(view: str):
        with open(args.lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    result = views.run(base, settings, around_view=locked if args.lock else None)
    print("\nper view and ordered pair (mean over seeds, interval, significant):")
    print(result.significance.round(4).to_string(index=False))
    print("\nrank agreement between the views:")
    print(result.agreement.round(3).to_string(index=False))
    print("\ncompute per view:")
    print(result.compute.round(1).to_string(index=False))
    print(f"\nparent run id: {result.parent_run_id}")


if __name__ == "__main__":
    main()

"""The command line's options: shared flags, ``--config`` files, and the data and training
settings they build. Heavy libraries are imported inside the builders only."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from soi_mlflow.errors import SoiInputError


def csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def add_data_flags(p: argparse.ArgumentParser) -> None:
    """Flags that choose the data, shared by every command that loads a mixture."""
    g = p.add_argument_group("data")
    g.add_argument("--config", type=Path, help="YAML file with any of these options; flags win")
    g.add_argument(
        "--suite",
        default="builtin",
        help="builtin, a preset (glue_multitask, multisource_sentiment, massive_intent) "
        "or a suite YAML file (default: builtin)",
    )
    g.add_argument("--axis", help="task | source | lang (default: the suite's)")
    g.add_argument("--members", type=csv_list, help="comma-separated members; one = single-setting")
    g.add_argument(
        "--ood", type=csv_list, help="comma-separated members evaluated but not trained on"
    )
    g.add_argument("--max-examples", type=positive_int, help="training examples per member")
    g.add_argument(
        "--data-seed", type=int, default=0, help="seed of the max-examples draw (default 0)"
    )
    g.add_argument("--data-dir", type=Path, help="local copies of a preset's hub data sets")
    g.add_argument(
        "--sampling",
        default="proportional",
        choices=("proportional", "uniform", "temperature"),
        help="how members share a training epoch (default proportional)",
    )
    g.add_argument("--temperature", type=float, default=2.0, help="for --sampling temperature")


def _config_flags(sub: argparse.ArgumentParser, path: Path) -> list[str]:
    """The options of a ``--config`` YAML file, as flags of the sub-command ``sub``."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SoiInputError(
            f"cannot read config file {str(path)!r}: {exc.strerror or exc}"
        ) from exc
    except yaml.YAMLError as exc:
        raise SoiInputError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise SoiInputError(f"config file {str(path)!r}: expected a mapping of option: value")
    actions = {
        a.dest: a for a in sub._actions if a.option_strings and a.dest not in ("help", "config")
    }
    flags: list[str] = []
    for key, value in doc.items():
        action = actions.get(str(key).replace("-", "_"))
        if action is None:
            raise SoiInputError(
                f"config file {str(path)!r}: unknown option {key!r}; options are: "
                + ", ".join(sorted(a.option_strings[0][2:] for a in actions.values()))
            )
        flag = action.option_strings[0]
        if action.nargs == 0:  # store_true / store_false
            flags += [flag] if bool(value) == isinstance(action, argparse._StoreTrueAction) else []
        else:
            flags += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return flags


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; options from ``--config FILE`` come first, so flags win over them."""
    args = parser.parse_args(argv)
    config = getattr(args, "config", None)
    if config is None:
        return args
    position = argv.index(args.command)
    extra = _config_flags(args.subparser, config)
    return parser.parse_args([*argv[: position + 1], *extra, *argv[position + 1 :]])


def mixture_spec_from_args(args: argparse.Namespace):
    """A validated :class:`MixtureSpec` from the data flags and the suite's defaults."""
    from soi_mlflow.data.mixture import MixtureSpec, validate_mixture
    from soi_mlflow.data.suites import get_suite

    suite = get_suite(args.suite, args.data_dir)
    axis = args.axis or suite.defaults.get("axis")
    if axis is None:
        raise SoiInputError(f"--axis is needed: suite {suite.name!r} has no default axis")
    same_axis = suite.defaults.get("axis") == axis
    if args.members:
        members = args.members
    elif same_axis and suite.defaults.get("members"):
        members = suite.defaults["members"]
    else:
        members = suite.on_axis(axis)
    if args.ood is not None:
        ood = args.ood
    elif not args.members and same_axis:
        ood = suite.defaults.get("ood", [])
    else:
        ood = []
    spec = MixtureSpec(
        suite=suite,
        axis=axis,
        members=tuple(members),
        ood=tuple(ood),
        sampling=args.sampling,
        temperature=args.temperature,
        max_examples=args.max_examples,
        data_seed=args.data_seed,
    )
    validate_mixture(spec)
    return spec


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """Flags of one training run (with the data flags)."""
    add_data_flags(p)
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=3, help="training epochs (default 3)")
    g.add_argument(
        "--seed", type=int, default=0, help="training seed: initialisation, order (default 0)"
    )
    g.add_argument(
        "--model", default="tiny", help="tiny (default), a hub model name, or a local folder"
    )
    g.add_argument(
        "--capture",
        default="train_pass",
        choices=("train_pass", "eval_pass"),
        help="train trace from the training step's logits (default) or an extra eval pass",
    )
    g.add_argument("--batch-size", type=positive_int, default=32)
    g.add_argument("--max-length", type=positive_int, default=64, help="tokens per example")
    g.add_argument("--lr", type=float, help="learning rate (default 1e-3 tiny, 3e-5 pretrained)")
    g.add_argument("--accelerator", default="auto", help="Lightning accelerator (default auto)")
    g.add_argument("--devices", type=positive_int, default=1, help="processes/GPUs (DDP when > 1)")
    g.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default auto)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument(
        "--affinity-every",
        type=positive_int,
        nargs="?",
        const=20,
        metavar="K",
        help="measure lookahead task affinity every K steps (multi-member runs; K defaults to 20)",
    )
    m = p.add_argument_group("mlflow")
    m.add_argument(
        "--experiment", help="experiment name (default soi-mlflow; under `mlflow run`, MLflow's)"
    )
    m.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    m.add_argument("--run-name", help="default: <setting>-<members>-seed<seed>")


def train_config_from_args(args: argparse.Namespace):
    from soi_mlflow.training import TrainConfig

    strategy = args.strategy
    if args.devices > 1 and strategy == "auto":
        strategy = "ddp"
    return TrainConfig(
        mixture=mixture_spec_from_args(args),
        epochs=args.epochs,
        seed=args.seed,
        model=args.model,
        capture=args.capture,
        batch_size=args.batch_size,
        max_length=args.max_length,
        lr=args.lr,
        experiment=args.experiment,
        tracking_uri=args.tracking_uri,
        run_name=args.run_name,
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=strategy,
        progress=not args.no_progress,
        affinity_every=args.affinity_every,
    )


def int_list(value: str) -> list[int]:
    try:
        return [int(v) for v in csv_list(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {value!r}"
        ) from None

"""The ``soi-mlflow`` command. Heavy libraries are imported inside each command, so
``soi-mlflow --help`` answers at once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from soi_mlflow.errors import SoiInputError


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _positive_int(value: str) -> int:
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
    g.add_argument("--members", type=_csv, help="comma-separated members; one = single-setting")
    g.add_argument("--ood", type=_csv, help="comma-separated members evaluated but not trained on")
    g.add_argument("--max-examples", type=_positive_int, help="training examples per member")
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


def _cmd_preview(args: argparse.Namespace) -> int:
    from soi_mlflow.data.preview import print_preview

    print_preview(mixture_spec_from_args(args), examples=args.examples)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soi-mlflow",
        description="Subsets of Interest for multi-task, multi-source and multi-lingual "
        "fine-tuning, tracked in MLflow.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    preview = sub.add_parser("preview", help="show a mixture's data: sizes, labels, planted kinds")
    add_data_flags(preview)
    preview.add_argument("--examples", type=int, default=2, help="examples shown per member")
    preview.set_defaults(func=_cmd_preview, subparser=preview)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parse(parser, argv)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except SoiInputError as exc:
        print(f"soi-mlflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soi-mlflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

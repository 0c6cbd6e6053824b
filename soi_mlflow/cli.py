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


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """Flags of one training run (with the data flags)."""
    add_data_flags(p)
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=_positive_int, default=3, help="training epochs (default 3)")
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
    g.add_argument("--batch-size", type=_positive_int, default=32)
    g.add_argument("--max-length", type=_positive_int, default=64, help="tokens per example")
    g.add_argument("--lr", type=float, help="learning rate (default 1e-3 tiny, 3e-5 pretrained)")
    g.add_argument("--accelerator", default="auto", help="Lightning accelerator (default auto)")
    g.add_argument("--devices", type=_positive_int, default=1, help="processes/GPUs (DDP when > 1)")
    g.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default auto)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument(
        "--affinity-every",
        type=_positive_int,
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


def _cmd_train(args: argparse.Namespace) -> int:
    from soi_mlflow.training import train, validate_config

    config = train_config_from_args(args)
    validate_config(config)
    result = train(config)
    if result.run_id is not None:
        print(f"\nrun id: {result.run_id}")
        print(f"experiment id: {result.experiment_id}")
        print(f"open the MLflow UI: {result.ui_command}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from soi_mlflow.studies.compare import format_summary, run_compare, validate_compare

    config = train_config_from_args(args)
    validate_compare(config, args.seeds)
    result = run_compare(config, seeds=args.seeds)
    print("\nsingle vs multi (test accuracy in-distribution and OOD; SOI fractions on train):")
    print(format_summary(result.summary))
    print(f"\nparent run id: {result.parent_run_id}")
    print(f"open the MLflow UI: {result.ui_command}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    argv = [
        "compare",
        "--suite",
        "builtin",
        "--axis",
        "source",
        "--members",
        "books,movies,electronics",
        "--ood",
        "restaurants",
        "--epochs",
        str(args.epochs),
        "--seeds",
        str(args.seeds),
        "--experiment",
        args.experiment,
        "--no-progress",
    ]
    if args.tracking_uri:
        argv += ["--tracking-uri", args.tracking_uri]
    print("demo: the source-axis comparison on the built-in suite, tiny encoder: " + " ".join(argv))
    return _cmd_compare(build_parser().parse_args(argv))


def _cmd_analyze(args: argparse.Namespace) -> int:
    from soi_mlflow.analysis.report import analyze_run, compare
    from soi_mlflow.studies.children import comparison_of
    from soi_mlflow.studies.compare import format_summary

    if bool(args.run_id) == bool(args.parent_run_id):
        raise SoiInputError("give exactly one of --run-id or --parent-run-id")
    splits = args.split or ["train"]
    if args.run_id:
        tables = analyze_run(args.run_id, splits, args.taxonomy, args.tracking_uri)
        for split, table in tables.items():
            print(f"{split}: {len(table)} examples")
            print(
                table.groupby("member", observed=True)["soi"]
                .value_counts(normalize=True)
                .unstack()
                .round(3)
                .to_string()
            )
        return 0
    from soi_mlflow.analysis.runs import cache_for

    study = (
        cache_for(args.tracking_uri).client.get_run(args.parent_run_id).data.tags.get("soi.study")
    )
    if study == "transfer":
        from soi_mlflow.studies.transfer import reanalyze_transfer

        mean, _, _ = reanalyze_transfer(args.parent_run_id, args.tracking_uri)
        print("transfer matrix (rows: sources, columns: targets):")
        print(mean.round(3).to_string())
        return 0
    comparison = comparison_of(args.parent_run_id, args.tracking_uri)
    for run_id in [*comparison.multi, *(r for runs in comparison.single.values() for r in runs)]:
        analyze_run(run_id, splits, args.taxonomy, args.tracking_uri)
    summary = compare(
        args.parent_run_id, comparison, splits[0], args.taxonomy, args.aggregate, args.tracking_uri
    )
    print(format_summary(summary))
    return 0


def _selection_from_args(args: argparse.Namespace):
    from soi_mlflow.studies.two_stage import Selection, parse_top

    if args.stage2_top or args.stage2_bottom:
        metric, fraction = parse_top(args.stage2_top or args.stage2_bottom)
        return Selection(metric=metric, fraction=fraction, highest=bool(args.stage2_top))
    return Selection(subsets=tuple(args.stage2_subsets or ()), region=args.stage2_region)


def _cmd_two_stage(args: argparse.Namespace) -> int:
    from soi_mlflow.studies.two_stage import run_two_stage

    config = train_config_from_args(args)
    result = run_two_stage(
        config, _selection_from_args(args), args.stage2_epochs, args.stage1_run_id
    )
    print(
        f"\nstage 2 trained on {result.selected} selected examples; "
        "accuracy (test = ID, ood = OOD):"
    )
    print(result.table.round(3).to_string())
    print(f"\nparent run id: {result.parent_run_id}")
    print(f"open the MLflow UI: {result.ui_command}")
    return 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    from soi_mlflow.studies.transfer import run_transfer

    config = train_config_from_args(args)
    result = run_transfer(config, args.mode, args.seeds, reuse=args.reuse)
    print(
        f"\ntransfer matrix ({args.mode}; rows: sources, columns: targets; mean over "
        f"{args.seeds} seed(s)):"
    )
    print(result.mean.round(3).to_string())
    print(f"trained {result.trained} runs, reused {result.reused}")
    print(f"\nparent run id: {result.parent_run_id}")
    print(f"open the MLflow UI: {result.ui_command}")
    return 0


def _sizes(value: str) -> list[int]:
    try:
        return [int(v) for v in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {value!r}"
        ) from None


def _cmd_learning_curve(args: argparse.Namespace) -> int:
    from soi_mlflow.studies.learning_curve import run_learning_curve

    args.members = [args.target, *args.aux]
    config = train_config_from_args(args)
    result = run_learning_curve(
        config, args.target, args.aux, args.sizes, args.seeds, approx=args.approx
    )
    print("\nfits:")
    print(result.fits.round(5).to_string(index=False))
    print("\nwhat the auxiliary data is worth, in target examples:")
    print(result.worth.round(3).to_string(index=False))
    passes = int(result.points["example_passes"].sum())
    seconds = float(result.points["seconds"].sum())
    print(f"\ncompute: {passes:,} training example-passes, {seconds:.0f} s of training")
    print(f"\nparent run id: {result.parent_run_id}")
    print(f"open the MLflow UI: {result.ui_command}")
    return 0


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
    train = sub.add_parser("train", help="train one model (one member or a mixture) with traces")
    add_train_flags(train)
    train.set_defaults(func=_cmd_train, subparser=train)
    comp = sub.add_parser("compare", help="each member alone vs all together, analysed in MLflow")
    add_train_flags(comp)
    comp.add_argument(
        "--seeds", type=_positive_int, default=1, help="seeds per setting (default 1)"
    )
    comp.set_defaults(func=_cmd_compare, subparser=comp)
    two = sub.add_parser(
        "two-stage", help="stage 2 on SOI-selected examples, with a random control"
    )
    add_train_flags(two)
    g = two.add_argument_group("stage 2")
    g.add_argument(
        "--stage2-subsets", type=_csv, help="SOI names or groups, e.g. forgettable,never_learned"
    )
    g.add_argument(
        "--stage2-region", help="a cartography region: easy_to_learn, ambiguous, hard_to_learn"
    )
    g.add_argument(
        "--stage2-top", help="METRIC:FRACTION, the highest fraction by a cartography metric"
    )
    g.add_argument(
        "--stage2-bottom", help="METRIC:FRACTION, the lowest fraction by a cartography metric"
    )
    g.add_argument(
        "--stage2-epochs", type=_positive_int, default=2, help="stage-2 epochs (default 2)"
    )
    g.add_argument("--stage1-run-id", help="use this finished run (with a checkpoint) as stage 1")
    two.set_defaults(func=_cmd_two_stage, subparser=two)
    transfer = sub.add_parser(
        "transfer", help="transfer matrix between members, with its latent traits"
    )
    add_train_flags(transfer)
    transfer.add_argument("--mode", default="joint", choices=("joint", "sequential"))
    transfer.add_argument(
        "--seeds", type=_positive_int, default=1, help="seeds per run (default 1)"
    )
    transfer.add_argument("--reuse", action="store_true", help="reuse matching finished runs")
    transfer.set_defaults(func=_cmd_transfer, subparser=transfer)
    curve = sub.add_parser("learning-curve", help="target alone vs with auxiliary members, by size")
    add_train_flags(curve)
    curve.add_argument("--target", required=True, help="the member whose curve is measured")
    curve.add_argument("--aux", type=_csv, required=True, help="comma-separated auxiliary members")
    curve.add_argument(
        "--sizes",
        type=_sizes,
        default=[50, 100, 200, 400, 800],
        help="target training sizes (default 50,100,200,400,800)",
    )
    curve.add_argument("--seeds", type=_positive_int, default=1)
    curve.add_argument(
        "--approx",
        action="store_true",
        help="warm-start each size from the previous one (about one run per curve)",
    )
    curve.set_defaults(func=_cmd_learning_curve, subparser=curve)
    analyze = sub.add_parser("analyze", help="SOI, cartography and comparisons of existing runs")
    analyze.add_argument("--run-id", help="analyse one run")
    analyze.add_argument(
        "--parent-run-id", help="re-analyse a comparison study from its parent run"
    )
    analyze.add_argument("--split", type=_csv, help="splits to analyse (default train)")
    analyze.add_argument("--taxonomy", default="default", help="a registered SOI taxonomy")
    analyze.add_argument(
        "--aggregate",
        default="majority",
        choices=("majority", "pairs"),
        help="how seeds combine in transitions (default majority)",
    )
    analyze.add_argument(
        "--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db"
    )
    analyze.add_argument("--config", type=Path, help="YAML file with any of these options")
    analyze.set_defaults(func=_cmd_analyze, subparser=analyze)
    demo = sub.add_parser(
        "demo", help="the main job: the built-in source-axis comparison, end to end"
    )
    demo.add_argument("--epochs", type=_positive_int, default=5)
    demo.add_argument("--seeds", type=_positive_int, default=2)
    demo.add_argument("--experiment", default="soi-demo")
    demo.add_argument(
        "--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db"
    )
    demo.set_defaults(func=_cmd_demo, subparser=demo)
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

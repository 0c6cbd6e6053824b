"""The ``soi-mlflow`` command. Heavy libraries are imported inside each command, so
``soi-mlflow --help`` answers at once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from soi_mlflow.cli_options import (
    add_data_flags,
    add_train_flags,
    csv_list,
    int_list,
    mixture_spec_from_args,
    parse,
    positive_int,
    train_config_from_args,
)
from soi_mlflow.errors import SoiInputError


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
    comp.add_argument("--seeds", type=positive_int, default=1, help="seeds per setting (default 1)")
    comp.set_defaults(func=_cmd_compare, subparser=comp)
    two = sub.add_parser(
        "two-stage", help="stage 2 on SOI-selected examples, with a random control"
    )
    add_train_flags(two)
    g = two.add_argument_group("stage 2")
    g.add_argument(
        "--stage2-subsets",
        type=csv_list,
        help="SOI names or groups, e.g. forgettable,never_learned",
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
        "--stage2-epochs", type=positive_int, default=2, help="stage-2 epochs (default 2)"
    )
    g.add_argument("--stage1-run-id", help="use this finished run (with a checkpoint) as stage 1")
    two.set_defaults(func=_cmd_two_stage, subparser=two)
    transfer = sub.add_parser(
        "transfer", help="transfer matrix between members, with its latent traits"
    )
    add_train_flags(transfer)
    transfer.add_argument("--mode", default="joint", choices=("joint", "sequential"))
    transfer.add_argument("--seeds", type=positive_int, default=1, help="seeds per run (default 1)")
    transfer.add_argument("--reuse", action="store_true", help="reuse matching finished runs")
    transfer.set_defaults(func=_cmd_transfer, subparser=transfer)
    curve = sub.add_parser("learning-curve", help="target alone vs with auxiliary members, by size")
    add_train_flags(curve)
    curve.add_argument("--target", required=True, help="the member whose curve is measured")
    curve.add_argument(
        "--aux", type=csv_list, required=True, help="comma-separated auxiliary members"
    )
    curve.add_argument(
        "--sizes",
        type=int_list,
        default=[50, 100, 200, 400, 800],
        help="target training sizes (default 50,100,200,400,800)",
    )
    curve.add_argument("--seeds", type=positive_int, default=1)
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
    analyze.add_argument("--split", type=csv_list, help="splits to analyse (default train)")
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
    demo.add_argument("--epochs", type=positive_int, default=5)
    demo.add_argument("--seeds", type=positive_int, default=2)
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

"""Bad input everywhere a user types something (issue 11, item 5): run ids, experiment
names, seeds, member names, ``--config`` files with required options, unreadable trace
files. Each gives one clear line (exit 2 on the command line), before any work starts,
and writes nothing to the store. No test here trains a model."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from servers import free_port
from tracehelp import log_synthetic_run

from soi_mlflow.cli import COMMANDS, main
from soi_mlflow.cli.options import parse
from soi_mlflow.data import get_suite
from soi_mlflow.data.mixture import Mixture, MixtureSpec
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import PROBE_ATTEMPTS, TrackingUnavailable, check_tracking
from soi_mlflow.tracking.recorder import TraceRecorder
from soi_mlflow.training import TrainConfig, validate_config
from soi_mlflow.training.settings_io import nested_settings, option_fields

UNKNOWN = "0123456789abcdef0123456789abcdef"  # well formed, in no store


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids) if ids else []


def _cli(capsys, *args: str) -> tuple[int, str]:
    """``soi-mlflow ARGS`` in this process (what the console script calls): code, stderr."""
    code = main(list(args))
    return code, capsys.readouterr().err


# -- run ids and experiment names --------------------------------------------------------

ID_CASES = [
    (["analyze", "--run-id", "deadbeef"], "--run-id 'deadbeef': no such run in the tracking store"),
    (["analyze", "--run-id", "../x"], "--run-id '../x': expected an MLflow run id"),
    (["analyze", "--parent-run-id", UNKNOWN], f"--parent-run-id '{UNKNOWN}': no such run"),
    (["analyze", "--compare", f"{UNKNOWN},x y"], "--compare 'x y': expected an MLflow run id"),
    (["analyze", "--compare", f"{UNKNOWN},deadbeef"], f"run_a: no run '{UNKNOWN}'"),
    (["train", "--resume", "deadbeef"], "resume run id 'deadbeef': no such run"),
    (["train", "--resume", "a/b"], "resume run id 'a/b': expected an MLflow run id"),
    (["train", "--parent-run-id", UNKNOWN], f"parent run id '{UNKNOWN}': no such run"),
    (["train", "--experiment", " "], "experiment name ' ': expected 1-500 characters"),
    (
        ["two-stage", "--stage1-run-id", "deadbeef", "--stage2-subsets", "forgettable"],
        "stage-1 run id 'deadbeef': no such run",
    ),
    (
        ["transfer", "--members", "books,movies", "--parent-run-id", UNKNOWN],
        f"parent run id '{UNKNOWN}': no such run",
    ),
    (
        ["compare", "--members", "books,movies", "--parent-run-id", "'; drop"],
        "parent run id \"'; drop\": expected an MLflow run id",
    ),
    (
        ["learning-curve", "--axis", "task", "--target", "entailment", "--aux", "sentiment",
         "--parent-run-id", UNKNOWN],
        f"parent run id '{UNKNOWN}': no such run",
    ),
]  # fmt: skip


def test_unknown_or_malformed_ids_exit_2_with_one_line(module_store, capsys) -> None:
    for args, message in ID_CASES:
        code, err = _cli(capsys, *args, "--tracking-uri", module_store)
        assert code == 2, (args, err)
        assert message in err.splitlines()[0], (args, err)
        assert "Traceback" not in err
    assert _runs(module_store) == []  # no study parent, no run was opened


def test_a_deleted_experiment_and_a_stage1_run_without_checkpoint(store, capsys) -> None:
    client = MlflowClient(store)
    client.delete_experiment(client.create_experiment("gone"))
    code, err = _cli(capsys, "train", "--experiment", "gone", "--tracking-uri", store)
    assert code == 2 and "experiment 'gone' is deleted" in err
    run = client.create_run(client.create_experiment("mine")).info.run_id
    client.set_terminated(run)
    code, err = _cli(
        capsys, "two-stage", "--stage1-run-id", run, "--stage2-subsets", "forgettable",
        "--tracking-uri", store,
    )  # fmt: skip
    assert code == 2 and f"stage-1 run {run} has no checkpoint/ artifact" in err
    assert len(_runs(store)) == 1  # only the run made above: no study parent was opened


def test_python_api_names_the_id(store) -> None:
    from soi_mlflow.analysis import load_traces, soi_table

    with pytest.raises(SoiInputError, match="run id 'deadbeef': no such run"):
        soi_table("deadbeef", tracking_uri=store)
    with pytest.raises(SoiInputError, match=r"run id '\.\./\.\./etc': expected an MLflow run"):
        load_traces("../../etc", tracking_uri=store)  # never a path of the local cache
    with pytest.raises(SoiInputError, match="no experiment named 'nope'"):
        from soi_mlflow.analysis import find_runs

        find_runs("nope", tracking_uri=store)


# -- seeds -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [-1, 2**32, 10**20, True, 1.5])
def test_seeds_outside_numpy_and_lightning_range_are_refused(seed) -> None:
    with pytest.raises(SoiInputError, match=r"seed must be an integer in \[0, 4294967295\]"):
        validate_config(TrainConfig(seed=seed))
    with pytest.raises(SoiInputError, match=r"data_seed must be an integer in \[0, 4294967295\]"):
        Mixture(MixtureSpec(data_seed=seed))
    validate_config(TrainConfig(seed=2**32 - 1))  # the largest one is fine


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--seed", "-1"], "seed must be an integer in [0, 4294967295], got -1"),
        (["train", "--data-seed", "4294967296"], "data_seed must be an integer in"),
        (
            ["compare", "--members", "books,movies", "--seed", "4294967295", "--seeds", "2"],
            "seed 4294967295 with 2 seeds runs seeds up to 4294967296, past 4294967295",
        ),
        (["noise-benchmark", "--first-seed", "-5"], "first_seed must be an integer in"),
        (["noise-benchmark", "--seed", "3"], "unrecognized arguments: --seed 3"),  # not --seeds
    ],
)
def test_seed_options_are_named(capsys, args, message) -> None:
    code, err = _cli(capsys, *args)
    assert code == 2 and message in err, err


# -- member names ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["my books", "books,movies", "books/2024", "-x", "a" * 65])
def test_suite_member_names_that_would_need_escaping_are_refused(tmp_path, name) -> None:
    (tmp_path / "suite.yaml").write_text(
        textwrap.dedent(f"""\
        name: mine
        members:
          {name!r}:
            axis: source
            label_names: [neg, pos]
            files: {{train: train.csv}}
        """)
    )
    with pytest.raises(SoiInputError) as err:
        get_suite(tmp_path / "suite.yaml")
    message = str(err.value)
    assert "suite.yaml: field 'members." in message and "no commas, slashes or spaces" in message
    with pytest.raises(SoiInputError, match="members: member name .*expected 1-64 letters"):
        Mixture(MixtureSpec("builtin", "source", ("books", name)))


def test_recorder_member_names_are_escaped_in_metrics_and_kept_in_traces(store, tmp_path) -> None:
    """Names from a user's data reach the recorder as they are: kept in the trace file,
    escaped in metric names; two names that escape alike are refused up front."""
    from soi_mlflow.analysis.report import analyze_run
    from soi_mlflow.tracking.trace_format import read_trace

    with pytest.raises(SoiInputError, match="'en US' and 'en_US' both become 'en_US'"):
        TraceRecorder(tracking_uri=store, members=["en US", "en_US"])
    rec = TraceRecorder(tracking_uri=store, label_names=["neg", "pos"])
    ids = np.arange(8)
    for epoch in range(3):
        logits = np.random.default_rng(epoch).normal(size=(8, 2)).astype(np.float32)
        rec.add("train", ids, logits, ids % 2, member=["en US", "fr,FR/x"] * 4)
        rec.end_epoch()
    rec.close()
    metrics = MlflowClient(store).get_run(rec.run_id).data.metrics
    assert {"train/en_US/acc", "train/fr_FR_x/acc"} <= set(metrics)
    path = "traces/train/epoch=000.parquet"
    local = MlflowClient(store).download_artifacts(rec.run_id, path, str(tmp_path))
    assert set(read_trace(local)["member"].astype(str)) == {"en US", "fr,FR/x"}
    analyze_run(rec.run_id, ["train"], tracking_uri=store)
    metrics = MlflowClient(store).get_run(rec.run_id).data.metrics
    assert {"soi/train/en_US/coverage", "soi/train/fr_FR_x/coverage"} <= set(metrics)


# -- --config files that set required options --------------------------------------------


def _required(cls: type) -> list[str]:
    nested = nested_settings(cls)
    out = []
    for f in option_fields(cls):
        if f.name in nested:
            out += _required(nested[f.name])
        elif f.default is f.default_factory is __import__("dataclasses").MISSING:
            out.append(f.name)
    return out


# options a command cannot run without: the parser's required ones (fields without a
# default), plus the ones its code demands (one of them must be given)
NEEDED = {name: [o for c in cmd.settings_classes() for o in _required(c)] for name, cmd in
          COMMANDS.items()}  # fmt: skip
NEEDED["analyze"] += ["run_id"]
NEEDED["two-stage"] += ["stage2_subsets"]
VALUES = {"target": "entailment", "aux": ["sentiment"], "run_id": UNKNOWN,
          "stage2_subsets": ["forgettable"], "parents": [UNKNOWN]}  # fmt: skip


def test_only_these_commands_require_options() -> None:
    assert {name for name, needed in NEEDED.items() if needed} == {
        "learning-curve",
        "analyze",
        "two-stage",
        "recommend",
    }
    assert set(NEEDED["learning-curve"]) == {"target", "aux"}  # the case the issue names
    assert set(NEEDED["recommend"]) == {"target", "parents"}


@pytest.mark.parametrize("name", ["learning-curve", "analyze", "two-stage", "recommend"])
def test_config_file_may_set_every_required_option(tmp_path, name) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("".join(f"{k}: {VALUES[k]!r}\n".replace("'", '"') for k in NEEDED[name]))
    instances, _ = parse(COMMANDS[name], ["--config", str(config)])
    got = {k: getattr(i, k) for i in instances for k in NEEDED[name] if hasattr(i, k)}
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in got.items()} == {
        k: VALUES[k] for k in NEEDED[name]
    }


def test_learning_curve_config_reaches_the_checks_after_parsing(tmp_path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("axis: task\ntarget: entailment\naux: [sentiment]\nsizes: [5, 5]\n")
    code, err = _cli(capsys, "learning-curve", "--config", str(config))
    assert code == 2 and "--sizes: at least 3 sizes are needed" in err  # not "missing target"


# -- trace files that cannot be read -------------------------------------------------------


def _bad_files(tmp_path: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    (tmp_path / "truncated").mkdir(parents=True)
    (tmp_path / "truncated" / good.name).write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / good.name).write_bytes(b"not parquet at all")
    table = pq.read_table(good)
    meta = dict(table.schema.metadata)
    out = {"truncated": tmp_path / "truncated", "garbage": tmp_path / "garbage"}
    for case, version in (("future", b"99"), ("foreign", None)):
        (tmp_path / case).mkdir()
        if version is None:
            meta.pop(b"soi.trace_schema")
        else:
            meta[b"soi.trace_schema"] = version
        pq.write_table(table.replace_schema_metadata(meta), tmp_path / case / good.name)
        out[case] = tmp_path / case
    return out


PROBLEMS = {
    "truncated": "cannot be read (",
    "garbage": "it may be truncated (an upload or a copy cut short) or not a trace file",
    "future": "has trace schema version '99'; this soi-mlflow reads versions 1, 2, 3",
    "foreign": "has no trace schema version: not a soi-mlflow trace file",
}


def test_unreadable_trace_files_name_the_run_and_the_file(store, tmp_path, capsys) -> None:
    from soi_mlflow.analysis import load_traces, soi_table

    client = MlflowClient(store)
    correct = {i: [i % 2 == 0, True, i % 3 == 0] for i in range(12)}
    good = Path(
        client.download_artifacts(
            log_synthetic_run(store, correct), "traces/train/epoch=001.parquet", str(tmp_path)
        )
    )
    for case, folder in _bad_files(tmp_path / "bad", good).items():
        run = log_synthetic_run(store, correct, run_name=case)
        client.log_artifacts(run, str(folder), "traces/train")  # replaces epoch=001 for real
        expected = f"run {run}: trace file traces/train/epoch=001.parquet {PROBLEMS[case]}"
        for read in (soi_table, load_traces):
            with pytest.raises(SoiInputError) as err:
                read(run, tracking_uri=store)
            assert str(err.value).startswith(expected[:80]) and PROBLEMS[case] in str(err.value)
        code, err = _cli(capsys, "analyze", "--run-id", run, "--tracking-uri", store)
        assert code == 2 and f"run {run}: trace file traces/train/epoch=001.parquet" in err


# -- a study's parent run ends with a reason ---------------------------------------------


def test_a_study_whose_child_fails_leaves_its_parent_failed_with_the_reason(
    store, tmp_path, capsys
) -> None:
    """The children fail loading their data, after the parent opened; the parent ends
    FAILED with each child's error in ``soi.end_reason``, and the command exits 2."""
    pd.DataFrame({"text": ["x", "y"], "label": ["neg", "maybe"]}).to_csv(
        tmp_path / "a.csv", index=False
    )
    pd.DataFrame({"text": ["x", "y"], "label": ["neg", "pos"]}).to_csv(
        tmp_path / "b.csv", index=False
    )
    member = "    axis: source\n    label_names: [neg, pos]\n    files: {{train: {}}}\n"
    (tmp_path / "suite.yaml").write_text(
        "name: mine\nmembers:\n  a:\n" + member.format("a.csv") + "  b:\n" + member.format("b.csv")
    )
    code, err = _cli(
        capsys, "compare", "--suite", str(tmp_path / "suite.yaml"), "--axis", "source",
        "--members", "a,b", "--tracking-uri", store, "--no-progress",
    )  # fmt: skip
    assert code == 2 and "label 'maybe' in row 1" in err
    (parent,) = _runs(store)
    assert parent.data.tags["soi.study"] == "compare"
    assert parent.info.status == "FAILED"
    reason = parent.data.tags["soi.end_reason"]  # each failed child, named, with its error
    assert reason.startswith("ItemsRefused: ") and "single a seed 0: SoiInputError: " in reason
    assert "label 'maybe' in row 1" in reason


@pytest.mark.parametrize(
    ("stop", "status", "reason"),
    [
        # raised in this thread, inside the study's block: the handler runs before the
        # next line, with no poll or timer for the study's work to race
        (lambda: signal.raise_signal(signal.SIGTERM), "KILLED", "SIGTERM"),
        (lambda: (_ for _ in ()).throw(KeyboardInterrupt()), "KILLED", "KeyboardInterrupt"),
    ],
    ids=["sigterm", "ctrl-c"],
)
def test_a_stopped_study_leaves_its_parent_killed(store, stop, status, reason) -> None:
    from soi_mlflow.studies.parent import study_parent

    previous = signal.getsignal(signal.SIGTERM)
    with (
        pytest.raises((SystemExit, KeyboardInterrupt)),
        study_parent(TrainConfig(tracking_uri=store), "compare", "stopped", {}),
    ):
        stop()
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is put back
    (parent,) = _runs(store)
    assert parent.info.status == status
    assert parent.data.tags["soi.end_reason"].startswith(reason)


# -- a tracking server that is down ---------------------------------------------------------


def _suite_with_unreadable_data(tmp_path: Path) -> Path:
    """A suite whose data cannot be loaded: training that loaded it would fail on that."""
    (tmp_path / "train.parquet").write_bytes(b"loading this would fail")
    (tmp_path / "suite.yaml").write_text(
        "name: mine\nmembers:\n  mine:\n    axis: source\n    label_names: [neg, pos]\n"
        "    files: {train: train.parquet}\n"
    )
    return tmp_path / "suite.yaml"


@pytest.mark.e2e
def test_train_with_the_server_down_fails_before_loading_data(tmp_path, capsys) -> None:
    """``--tracking-uri`` on the command line, and ``MLFLOW_TRACKING_URI`` in a fresh
    process (as under ``mlflow run``): one line naming the URI and what to do; the data
    was never read (its error would be a different one). docs/reliability.md has times."""
    suite = str(_suite_with_unreadable_data(tmp_path))
    args = ["train", "--suite", suite, "--axis", "source", "--members", "mine"]
    code, err = _cli(capsys, *args, "--tracking-uri", "http://127.0.0.1:9")
    assert code == 2
    assert "tracking server http://127.0.0.1:9 is not reachable" in err
    assert "Nothing was loaded or trained" in err and "parquet" not in err
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
    env["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9"
    out = subprocess.run(
        [sys.executable, "-m", "soi_mlflow.cli", *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.startswith("soi-mlflow train: error: tracking server http://127.0.0.1:9")
    assert "Traceback" not in out.stderr and "parquet" not in out.stderr


def test_analyze_from_a_config_file_names_the_options(module_store, tmp_path, capsys) -> None:
    """``analyze --config FILE``: a run id there that is no run is named by its option,
    before any step line is printed; a file naming no run names the three options."""
    config = tmp_path / "analyze.yaml"
    config.write_text(f"run_id: {UNKNOWN}\ntracking_uri: {module_store}\n")
    code = main(["analyze", "--config", str(config)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(f"soi-mlflow analyze: error: --run-id '{UNKNOWN}': no such run"), err
    assert out == ""  # no "[1/1] analysing ..." line run into the error
    config.write_text(f"split: [train]\ntracking_uri: {module_store}\n")
    code, err = _cli(capsys, "analyze", "--config", str(config))
    assert code == 2
    assert "give exactly one of --run-id, --parent-run-id, --compare or --experiment" in err
    assert "run_id, parent_run_id, compare or experiment" in err  # the keys of --config


@pytest.mark.e2e
def test_the_probe_message_says_how_long_it_tried() -> None:
    """A refused port fails in about 2 s (the pauses between the tries), a port that
    accepts but never answers in about 8 s (the tries' timeouts too): the message says
    the tries and the time they really took, for both."""
    refused = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}"
        for uri, low, high in ((refused, 1.5, 4.0), (hung, 7.5, 10.0)):
            start = time.monotonic()
            with pytest.raises(TrackingUnavailable) as caught:
                check_tracking(uri, force=True)
            elapsed = time.monotonic() - start
            message = str(caught.value)
            found = re.search(r"; (\d+) tries in (\d+\.\d) s\)", message)
            assert found, message
            assert int(found[1]) == PROBE_ATTEMPTS
            assert -0.05 <= elapsed - float(found[2]) < 1.0, (message, elapsed)  # 0.1 s digits
            assert low < elapsed < high, (uri, elapsed)

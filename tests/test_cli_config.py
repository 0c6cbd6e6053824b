"""One source of configuration: options from the settings dataclasses, ``--config`` files,
``--print-config``, the MLproject, and repeating a run from its logged ``config.yaml``."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from tracehelp import cli_env, load_trace, trace_files

from soi_mlflow import cli
from soi_mlflow.cli import mlproject
from soi_mlflow.cli import options as cli_options
from soi_mlflow.training.settings_io import CONFIG_ARTIFACT, option_names

REPO = Path(__file__).resolve().parents[1]
# Options (flags) each command had before the dataclasses became the declaration.
OPTIONS_BEFORE = {
    "preview": 11,
    "train": 25,
    "compare": 26,
    "two-stage": 31,
    "transfer": 28,
    "learning-curve": 30,
    "analyze": 7,
    "demo": 4,
}
# A value for every option that has no default, per command.
REQUIRED = {
    "learning-curve": {"target": "entailment", "aux": ["sentiment"], "axis": "task"},
    "recommend": {"target": "entailment", "parents": ["0123abcd"]},
}


@pytest.fixture(autouse=True)
def _restore_quiet():
    """``main`` silences the libraries for the whole process; undo that after each test."""
    environ = dict(os.environ)
    yield
    logging.disable(logging.NOTSET)
    os.environ.clear()
    os.environ.update(environ)


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _required(command: cli_options.Command) -> set[str]:
    return {
        f.name
        for cls in command.settings_classes()
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.metadata.get("cli", True)
    }


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_config_file_sets_required_options_and_print_config_round_trips(
    name: str, capsys, tmp_path: Path
) -> None:
    command = cli.COMMANDS[name]
    given = REQUIRED.get(name, {})
    assert _required(command) <= set(given), f"{name}: give its required options in REQUIRED"
    first = tmp_path / "given.yaml"
    first.write_text(yaml.safe_dump(given))
    code, printed, err = _main(capsys, name, "--config", str(first), "--print-config")
    assert code == 0, err
    resolved = yaml.safe_load(printed)
    classes = command.settings_classes()
    names = [  # every option, in declaration order; a later class's replaces an earlier's
        n
        for i, cls in enumerate(classes)
        for n in option_names(cls)
        if not any(n in option_names(other) for other in classes[i + 1 :])
    ]
    assert list(resolved) == names
    assert {k: resolved[k] for k in given} == given
    again = tmp_path / "printed.yaml"
    again.write_text(printed)
    code, reprinted, err = _main(capsys, name, "--config", str(again), "--print-config")
    assert code == 0, err
    assert reprinted == printed


def test_required_options_are_refused_when_missing(capsys) -> None:
    code, _, err = _main(capsys, "learning-curve", "--axis", "task", "--print-config")
    assert code == 2 and "target" in err and "aux" in err and "Traceback" not in err


def test_flags_win_over_the_file_wherever_they_stand(capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("axis: lang\nmembers: [lang_a, lang_b]\nepochs: 7\nmax_examples: 30\n")
    code, out, err = _main(
        capsys, "train", "--epochs", "2", "--config", str(cfg), "--members", "lang_c",
        "--no-progress", "--no-analyze", "--print-config",
    )  # fmt: skip
    assert code == 0, err
    resolved = yaml.safe_load(out)
    assert resolved["epochs"] == 2 and resolved["members"] == ["lang_c"]
    assert resolved["axis"] == "lang" and resolved["max_examples"] == 30
    assert resolved["progress"] is False and resolved["ood"] == []
    assert resolved["analyze"] is False


def test_switches_lists_and_spellings_researchers_already_type(capsys) -> None:
    code, out, err = _main(
        capsys, "learning-curve", "--axis", "task", "--target", "entailment",
        "--aux=sentiment,paraphrase", "--approx", "--sizes", "20,40,80", "--max_examples", "50",
        "--no-progress", "--print-config",
    )  # fmt: skip
    assert code == 0, err
    resolved = yaml.safe_load(out)
    assert resolved["approx"] is True and resolved["progress"] is False
    assert resolved["aux"] == ["sentiment", "paraphrase"] and resolved["sizes"] == [20, 40, 80]
    assert resolved["max_examples"] == 50
    code, out, err = _main(
        capsys, "transfer", "--reuse", "--ood", "", "--affinity-every", "--print-config"
    )
    assert code == 0, err
    resolved = yaml.safe_load(out)
    assert resolved["reuse"] is True and resolved["ood"] == [] and resolved["affinity_every"] == 20
    for given, wanted in (
        ([], None),
        (["--trace-shards", "true"], True),
        (["--trace-shards", "false"], False),
    ):
        code, out, err = _main(capsys, "train", *given, "--print-config")
        assert code == 0, err
        assert yaml.safe_load(out)["trace_shards"] is wanted


@pytest.mark.parametrize(
    ("content", "flags", "key"),
    [
        ("epochz: 3\n", [], "epochz"),
        ("epochs: three\n", [], "epochs"),
        ("members: {a: 1}\n", [], "members"),
        ("", ["--batch-size", "1.5"], "batch_size"),
        ("", ["--capture", "both"], "capture"),
    ],
)
def test_unknown_keys_and_wrong_types_are_refused_by_name(
    content: str, flags: list[str], key: str, capsys, tmp_path: Path
) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(content or "{}\n")
    code, out, err = _main(capsys, "train", "--config", str(cfg), *flags, "--print-config")
    assert code == 2 and out == ""
    assert err.startswith("soi-mlflow train: error:") and key in err
    assert "Traceback" not in err


def test_option_count_per_command_is_unchanged_or_larger() -> None:
    for name, before in OPTIONS_BEFORE.items():
        parser, _, _ = cli_options.command_parser(cli.COMMANDS[name])
        flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]
        assert len(flags) >= before, name
    assert set(OPTIONS_BEFORE) <= set(cli.COMMANDS)


def test_mlproject_is_written_from_the_commands_options() -> None:
    from mlflow.projects._project_spec import load_project

    assert (REPO / "MLproject").read_text() == mlproject.render(), "run make mlproject"
    project = load_project(str(REPO))
    for name, command in cli.COMMANDS.items():
        entry = project.get_entry_point(name.replace("-", "_"))
        options = {n for cls in command.settings_classes() for n in option_names(cls)}
        assert set(entry.parameters) <= options
        assert _required(command) <= set(entry.parameters)
        for param in entry.parameters.values():
            assert param.type in ("int", "float", "path", "string")
    train = project.get_entry_point("train").parameters
    assert train["epochs"].type == "int" and train["epochs"].default == "3"
    assert train["temperature"].type == "float" and train["model"].default == "tiny"
    curve = project.get_entry_point("learning_curve").parameters
    assert curve["target"].default is None and curve["sizes"].default == "50,100,200,400,800"
    assert project.get_entry_point("main").command.startswith("soi-mlflow demo ")


def test_help_teaches(capsys) -> None:
    code, out, _ = _main(capsys, "--help")
    assert code == 0
    for name, command in cli.COMMANDS.items():
        assert sum(line.split()[:1] == [name] for line in out.splitlines()) == 1
        assert command.summary in out
    assert "Start with:" in out and out.count("  soi-mlflow ") == 3
    code, out, _ = _main(capsys, "--version")
    assert code == 0 and out.startswith("soi-mlflow ")
    for name, command in cli.COMMANDS.items():
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        text = capsys.readouterr().out.rstrip().splitlines()
        assert text[-3] == "examples:", name
        assert [line.strip() for line in text[-2:]] == list(command.examples)
        assert "--print-config" in "\n".join(text) and "--max_examples" not in "\n".join(text)


@pytest.mark.e2e
def test_a_run_repeats_from_its_logged_config_with_an_identical_trace(
    store: str, capsys, tmp_path: Path
) -> None:
    args = ["--members", "books,movies", "--ood", "restaurants", "--max-examples", "40",
            "--eval-max-examples", "30", "--epochs", "2", "--batch-size", "16", "--seed", "3",
            "--capture", "eval_pass", "--tracking-uri", store]  # fmt: skip
    # as a user runs it, output not on a terminal: quiet, plain, narrow
    out = subprocess.run(
        [sys.executable, "-m", "soi_mlflow.cli", "train", *args],
        capture_output=True, text=True, env=cli_env(store), cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr == ""  # no banner, tip or warning from the libraries
    lines = out.stdout.splitlines()
    assert [line.split()[:2] for line in lines if "epoch" in line][:2] == [
        ["epoch", "1/2"], ["epoch", "2/2"],
    ]  # fmt: skip
    assert max(len(line) for line in lines if "://" not in line) < 100  # links aside
    assert "\x1b" not in out.stdout and "\r" not in out.stdout  # no colours, no redraws
    assert any(line.split()[:1] == ["restaurants"] for line in lines)  # the accuracy table
    client = MlflowClient(store)
    (first,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    config = download_artifacts(
        run_id=first.info.run_id, artifact_path=CONFIG_ARTIFACT, tracking_uri=store,
        dst_path=str(tmp_path),
    )  # fmt: skip
    logged = yaml.safe_load(Path(config).read_text())
    assert logged["seed"] == 3 and logged["members"] == ["books", "movies"]
    assert logged["capture"] == "eval_pass" and logged["tracking_uri"] == store
    code, _, err = _main(capsys, "train", "--config", config)
    assert code == 0, err
    runs = client.search_runs([first.info.experiment_id], order_by=["attributes.start_time"])
    second = next(r for r in runs if r.info.run_id != first.info.run_id)
    assert second.data.params == first.data.params
    for split in ("train", "validation", "test", "ood"):
        files = trace_files(store, first.info.run_id, split)
        assert files and files == trace_files(store, second.info.run_id, split)
        for path in files:
            a, _ = load_trace(store, first.info.run_id, path)
            b, _ = load_trace(store, second.info.run_id, path)
            assert a.equals(b), (split, path)

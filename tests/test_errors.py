"""Bad input gets a clear error, naming what is wrong, before any work starts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from soi_mlflow.data import get_suite, load_member
from soi_mlflow.data.mixture import Mixture, MixtureSpec
from soi_mlflow.errors import SoiInputError


def _suite_file(
    tmp_path: Path, member_yaml: str, rows: dict | None = None, fmt: str = "csv"
) -> Path:
    if rows is not None:
        frame = pd.DataFrame(rows)
        if fmt == "csv":
            frame.to_csv(tmp_path / "train.csv", index=False)
        else:
            frame.to_json(tmp_path / "train.jsonl", orient="records", lines=True)
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: local\nmembers:\n  mine:\n" + textwrap.indent(textwrap.dedent(member_yaml), "    ")
    )
    return path


GOOD = """\
axis: task
label_names: [neg, pos]
files: {train: train.csv}
"""


def test_unknown_suite_lists_the_known_ones() -> None:
    with pytest.raises(
        SoiInputError, match=r"unknown suite 'nope'; expected one of builtin, glue_multitask"
    ):
        load_member("nope", "books", "train")
    with pytest.raises(SoiInputError, match="suite file 'missing.yaml' does not exist"):
        load_member("missing.yaml", "books", "train")


def test_unknown_member_lists_the_suite_members() -> None:
    with pytest.raises(
        SoiInputError, match=r"unknown member 'bookz' in suite 'builtin'; members are: books"
    ):
        load_member("builtin", "bookz", "train")


def test_member_on_the_wrong_axis() -> None:
    with pytest.raises(SoiInputError, match=r"member 'books' .* is on axis 'source', not 'lang'"):
        load_member("builtin", "books", "train", axis="lang")
    with pytest.raises(SoiInputError, match=r"'lang_a' .* not 'source'"):
        Mixture(MixtureSpec("builtin", "source", ("books", "lang_a")))
    with pytest.raises(SoiInputError, match="unknown axis 'language'"):
        Mixture(MixtureSpec("builtin", "language", ("lang_a",)))


def test_split_that_does_not_exist() -> None:
    with pytest.raises(
        SoiInputError, match="member 'books' has no split 'dev'; splits: train, validation, test"
    ):
        load_member("builtin", "books", "dev")


def test_missing_column_names_the_column_and_the_file(tmp_path: Path) -> None:
    path = _suite_file(
        tmp_path, GOOD + "columns: {text: sentence}\n", {"text": ["a"], "label": ["pos"]}
    )
    with pytest.raises(
        SoiInputError,
        match=r"train.csv\): missing column\(s\) 'sentence'; the data has: text, label",
    ):
        load_member(path, "mine", "train")


@pytest.mark.parametrize(
    ("labels", "pattern"),
    [
        (["pos", "maybe"], r"label 'maybe' in row 1 is outside the label names \['neg', 'pos'\]"),
        ([0, 5], r"label 5 in row 1 is outside the label names"),
        ([0, -1], r"label -1 in row 1 is outside the label names"),
    ],
)
def test_label_outside_label_names(tmp_path: Path, labels: list, pattern: str) -> None:
    path = _suite_file(tmp_path, GOOD, {"text": ["a", "b"], "label": labels})
    with pytest.raises(SoiInputError, match=pattern):
        load_member(path, "mine", "train")


def test_empty_text(tmp_path: Path) -> None:
    path = _suite_file(
        tmp_path, GOOD, {"text": ["fine", "   ", "x"], "label": ["neg", "pos", "neg"]}
    )
    with pytest.raises(SoiInputError, match=r"empty text in column 'text', row 1"):
        load_member(path, "mine", "train")
    path = _suite_file(tmp_path, GOOD, {"text": ["fine", None], "label": ["neg", "pos"]})
    with pytest.raises(SoiInputError, match=r"empty text in column 'text', row 1"):
        load_member(path, "mine", "train")


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "train.parquet").write_bytes(b"this is not parquet at all")
    path = _suite_file(tmp_path, GOOD.replace("train.csv", "train.parquet"))
    with pytest.raises(SoiInputError, match=r"cannot read parquet file '.*train.parquet'"):
        load_member(path, "mine", "train")
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "neg"}\n{oops\n')
    path = _suite_file(tmp_path, GOOD.replace("train.csv", "bad.jsonl"))
    with pytest.raises(SoiInputError, match=r"cannot read json file '.*bad.jsonl'"):
        load_member(path, "mine", "train")
    path = _suite_file(tmp_path, GOOD.replace("train.csv", "gone.csv"))
    with pytest.raises(SoiInputError, match=r"file '.*gone.csv' does not exist"):
        load_member(path, "mine", "train")


@pytest.mark.parametrize(
    ("member_yaml", "pattern"),
    [
        (
            "label_names: [a, b]\nfiles: {train: t.csv}\n",
            r"field 'members.mine.axis': expected one of task, source, lang",
        ),
        (
            "axis: task\nlabel_names: [a]\nfiles: {train: t.csv}\n",
            r"'members.mine.label_names': expected a list of at least 2",
        ),
        (
            "axis: task\nlabel_names: [a, b]\nfiles: {train: t.txt}\n",
            r"'members.mine.files.train': expected a file ending in",
        ),
        (
            "axis: task\nlabel_names: [a, b]\nfiles: {train: t.csv}\ncolums: {text: x}\n",
            r"expected only the keys .*got \['colums'\]",
        ),
        (
            "axis: task\nlabel_names: [a, b]\nhub: {path: x}\nfiles: {train: t.csv}\n",
            r"expected exactly one of 'hub' or 'files'",
        ),
        (
            "axis: task\nlabel_names: [a, b]\nhub: {path: x}\n"
            "splits: {train: {split: train, rows: [0, x]}}\n",
            r"'members.mine.splits.train.rows': expected \[start, stop\]",
        ),
        (
            "axis: task\nfiles: {train: t.csv}\n",
            r"'members.mine.label_names': expected label names",
        ),
        ("axis: task\nlabel_names: [no, yes]\nfiles: {train: t.csv}\n", r"quote them"),
        (
            "axis: task\nlabel_names: [a, b]\nlabel_aliases: {x: c}\nfiles: {train: t.csv}\n",
            r"label_aliases.x': expected one of label_names",
        ),
    ],
)
def test_suite_yaml_errors_name_the_file_and_field(
    tmp_path: Path, member_yaml: str, pattern: str
) -> None:
    path = _suite_file(tmp_path, member_yaml)
    with pytest.raises(SoiInputError, match=pattern) as err:
        get_suite(path)
    assert "suite.yaml" in str(err.value)


def test_invalid_yaml_and_max_examples(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("members: [unclosed\n")
    with pytest.raises(SoiInputError, match="is not valid YAML"):
        get_suite(bad)
    for value in (0, -3, 2.5, True):
        with pytest.raises(SoiInputError, match="max_examples must be a positive integer"):
            load_member("builtin", "books", "train", max_examples=value)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"members": ()}, "at least one member"),
        ({"members": ("books", "books")}, "listed twice: books"),
        ({"members": ("books",), "ood": ("books",)}, "cannot be both trained on and held out"),
        ({"members": ("books",), "ood": ("cooking",)}, "unknown member 'cooking'"),
        ({"members": ("books",), "sampling": "random"}, "sampling: expected one of proportional"),
        (
            {"members": ("books",), "sampling": "temperature", "temperature": 0},
            "temperature must be > 0",
        ),
    ],
)
def test_mixture_errors_come_before_loading(kwargs: dict, pattern: str) -> None:
    with pytest.raises(SoiInputError, match=pattern):
        Mixture(MixtureSpec("builtin", "source", **kwargs))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "soi_mlflow.cli", *args], capture_output=True, text=True
    )


def test_cli_reports_bad_input_without_a_traceback(tmp_path: Path) -> None:
    out = _cli("preview", "--axis", "lang", "--members", "books")
    assert out.returncode == 2
    assert "soi-mlflow preview: error: member 'books'" in out.stderr
    assert "Traceback" not in out.stderr
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("members: [books]\nepochz: 3\n")
    out = _cli("preview", "--config", str(cfg))
    assert out.returncode == 2 and "'epochz' is not accepted" in out.stderr
    out = _cli("preview", "--max-examples", "-5")
    assert out.returncode == 2 and "max_examples must be a positive integer" in out.stderr

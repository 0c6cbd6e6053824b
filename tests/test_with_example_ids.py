"""Stable example ids for a user's own ``datasets.Dataset`` (docs/design.md, "Example identity")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from soi_mlflow.data import get_suite, load_member, with_example_ids
from soi_mlflow.errors import SoiInputError


def _reviews(n: int = 40) -> Dataset:
    texts = [f"review number {i}" for i in range(n)]
    if n > 7:
        texts[7] = texts[3]  # one repeated text: content ids must still differ
    return Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(n)]})


def test_index_ids_are_unique_and_repeatable_in_another_process() -> None:
    ds = with_example_ids(_reviews(), name="my/reviews", split="train")
    ids = list(ds["example_id"])
    assert len(set(ids)) == len(ids) == 40
    assert ds.features["example_id"].dtype == "int64"
    code = (
        "import json\nfrom datasets import Dataset\n"
        "from soi_mlflow.data import with_example_ids\n"
        "ds = Dataset.from_dict({'text': ['x'] * 40, 'label': [0] * 40})\n"
        "out = with_example_ids(ds, name='my/reviews', split='train')\n"
        "print(json.dumps(list(out['example_id'])))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # index ids depend only on (name, config, split, row index), not on the rows' content
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ids
    other = with_example_ids(_reviews(), name="my/reviews", split="test")["example_id"]
    assert not set(other) & set(ids)


def test_content_ids_follow_the_text_through_a_shuffle() -> None:
    plain = with_example_ids(_reviews(), name="my/reviews", split="train", by="content")
    shuffled = with_example_ids(
        _reviews().shuffle(seed=3), name="my/reviews", split="train", by="content"
    )
    assert len(set(plain["example_id"])) == 40  # the repeated text got its occurrence number
    by_text = {}
    for text, i in zip(plain["text"], plain["example_id"], strict=True):
        by_text.setdefault(text, set()).add(i)
    for text, i in zip(shuffled["text"], shuffled["example_id"], strict=True):
        assert i in by_text[text]
    assert set(shuffled["example_id"]) == set(plain["example_id"])
    # the index ids of the shuffled rows would not match: that is what by="content" is for
    index = with_example_ids(_reviews().shuffle(seed=3), name="my/reviews", split="train")
    assert list(index["example_id"]) != list(plain["example_id"])


def test_ids_equal_soi_mlflows_own_for_the_same_hub_split(tmp_path: Path) -> None:
    n = 1100
    raw = Dataset.from_dict(
        {"sentence": [f"sentence {i}" for i in range(n)], "label": [i % 2 for i in range(n)]},
        features=Features(
            {"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"])}
        ),
    )
    (tmp_path / "sst2").mkdir()
    raw.to_parquet(str(tmp_path / "sst2" / "train.parquet"))
    raw.select(range(30)).to_parquet(str(tmp_path / "sst2" / "validation.parquet"))
    theirs = load_member(get_suite("glue_multitask", data_dir=tmp_path), "sst2", "train")
    mine = with_example_ids(raw, name="nyu-mll/glue", config="sst2", split="train")
    mine_by_text = dict(zip(mine["sentence"], mine["example_id"], strict=True))
    assert len(theirs) == 100
    assert [mine_by_text[t] for t in theirs["text"]] == list(theirs["example_id"])


def test_a_dataset_dict_gets_ids_per_split() -> None:
    dd = DatasetDict({"train": _reviews(), "validation": _reviews(10)})
    out = with_example_ids(dd, name="my/reviews")
    alone = with_example_ids(_reviews(), name="my/reviews", split="train")
    assert list(out["train"]["example_id"]) == list(alone["example_id"])
    assert not set(out["train"]["example_id"]) & set(out["validation"]["example_id"])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ds: with_example_ids(ds, name="x", split="train", by="hash"), "by: expected"),
        (lambda ds: with_example_ids(ds, name="", split="train"), "name: expected"),
        (lambda ds: with_example_ids(ds, name="x"), "split: expected"),
        (
            lambda ds: with_example_ids(ds, name="x", split="t", by="content", text_column="body"),
            "'body' is not a column",
        ),
        (
            lambda ds: with_example_ids(
                with_example_ids(ds, name="x", split="t"), name="x", split="t"
            ),
            "already has a column 'example_id'",
        ),
        (
            lambda ds: with_example_ids(ds.to_iterable_dataset(), name="x", split="t"),
            "IterableDataset",
        ),
        (
            lambda ds: with_example_ids(ds, name="x", split="t", by="content", text_column="label"),
            "content ids need text",
        ),
    ],
)
def test_bad_input_is_refused_clearly(call, message: str) -> None:
    with pytest.raises(SoiInputError, match=message):
        call(_reviews())


def test_ids_have_numpy_int64_values() -> None:
    ids = np.asarray(with_example_ids(_reviews(3), name="x", split="t")["example_id"])
    assert ids.dtype == np.int64

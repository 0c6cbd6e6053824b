"""Example identity (docs/design.md): stable across processes, subsets and mixtures."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from soi_mlflow.data import load_member
from soi_mlflow.data.ids import content_ids, index_ids, split_prefix, stable_id
from soi_mlflow.data.mixture import Mixture, MixtureSpec

MEMBERS = ["sentiment", "paraphrase", "entailment", "books", "restaurants", "lang_a", "lang_c"]


def _ids_in_fresh_process(member: str, split: str, max_examples: int | None) -> list[int]:
    code = (
        "import json, sys\n"
        "from soi_mlflow.data import load_member\n"
        f"ds = load_member('builtin', {member!r}, {split!r}, max_examples={max_examples!r})\n"
        "print(json.dumps([int(i) for i in ds['example_id']]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("member", ["books", "paraphrase"])
def test_ids_are_identical_in_a_separate_process(member: str) -> None:
    here = [int(i) for i in load_member("builtin", member, "train", max_examples=300)["example_id"]]
    there = _ids_in_fresh_process(member, "train", 300)
    assert here == there
    assert len(set(here)) == 300


@pytest.mark.parametrize("member", MEMBERS)
def test_ids_do_not_depend_on_max_examples(member: str) -> None:
    full = load_member("builtin", member, "train").to_pandas().set_index("example_id")
    for k in (1, 50, 777):
        part = load_member("builtin", member, "train", max_examples=k).to_pandas()
        assert len(part) == k
        assert part["example_id"].is_unique
        # each id in the subset names the very same example as in the full split
        same = full.loc[part["example_id"], ["text", "label"]].reset_index(drop=True)
        assert same.equals(part[["text", "label"]].reset_index(drop=True))


def test_max_examples_subsets_are_nested_and_seeded() -> None:
    small = set(load_member("builtin", "books", "train", seed=3, max_examples=100)["example_id"])
    large = set(load_member("builtin", "books", "train", seed=3, max_examples=400)["example_id"])
    other = set(load_member("builtin", "books", "train", seed=4, max_examples=100)["example_id"])
    assert small < large
    assert other != small


def test_ids_are_unique_across_members_and_splits() -> None:
    ids = np.concatenate(
        [
            np.asarray(load_member("builtin", m, s)["example_id"])
            for m in MEMBERS
            for s in ("train", "test")
        ]
    )
    assert len(np.unique(ids)) == len(ids)


def test_ids_match_between_single_and_multi_member_mixtures() -> None:
    single = Mixture(MixtureSpec("builtin", "source", ("books",), max_examples=200))
    multi = Mixture(
        MixtureSpec("builtin", "source", ("movies", "books", "electronics"), max_examples=200)
    )
    books_single = single.train.to_pandas().set_index("example_id")
    multi_df = multi.train.to_pandas()
    books_multi = multi_df[multi_df["member"] == "books"].set_index("example_id")
    assert sorted(books_single.index) == sorted(books_multi.index)
    assert (books_single.loc[books_multi.index, "text"] == books_multi["text"]).all()
    for (split, member), ds in multi.eval_sets().items():
        if member == "books":
            assert list(ds["example_id"]) == list(single.eval_set(split, "books")["example_id"])


def test_id_helpers_agree_and_handle_duplicate_content() -> None:
    ids = index_ids("d", "c", "train", [0, 7, 2**32 - 1])
    prefix = split_prefix("d", "c", "train")
    assert [(int(i) & 0xFFFFFFFF) for i in ids] == [0, 7, 2**32 - 1]
    assert {(int(i) >> 32) & 0xFFFFFFFF for i in ids} == {prefix}
    assert index_ids("d", "c", "test", [0])[0] != ids[0]
    assert stable_id("a", 1) == stable_id("a", 1) != stable_id("a", 2)
    ids = content_ids("d", "c", "train", ["same", "same", "other"], [None, None, None])
    assert len(set(ids.tolist())) == 3
    again = content_ids("d", "c", "train", ["same", "same", "other"], [None, None, None])
    assert ids.tolist() == again.tolist()

"""Mixtures: sampling across members, evaluation sets, cached tokenisation, batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value
from torch.utils.data import DataLoader

from soi_mlflow.data.batching import Collator, MixtureSampler, loader_view
from soi_mlflow.data.in_memory import in_memory_dataset
from soi_mlflow.data.mixture import Mixture, MixtureSpec
from soi_mlflow.data.tokenize import tokenize
from soi_mlflow.model.tokenizer import train_wordpiece


def _mixture(**kw) -> Mixture:
    base = {"suite": "builtin", "axis": "source", "members": ("books", "movies")}
    return Mixture(MixtureSpec(**{**base, **kw}))


def test_proportional_epochs_visit_every_example_once_in_a_new_order() -> None:
    mx = _mixture(max_examples=150)
    orders = [mx.epoch_order(e, seed=0) for e in range(3)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(300))
    assert not np.array_equal(orders[0], orders[1])
    assert np.array_equal(orders[0], mx.epoch_order(0, seed=0))
    assert not np.array_equal(orders[0], mx.epoch_order(0, seed=1))


def test_sampling_of_equal_members_keeps_the_epoch_whole() -> None:
    mx = _mixture(
        members=("books", "movies", "electronics"), sampling="temperature", temperature=1e9
    )
    weights = mx.member_weights()
    assert weights == pytest.approx({m: 1 / 3 for m in ("books", "movies", "electronics")})
    order = mx.epoch_order(0, seed=0)
    assert len(order) == len(mx.train)
    member = np.asarray(mx.train["member_idx"])[order]
    assert np.bincount(member).tolist() == [2000, 2000, 2000]


def test_unequal_members_get_their_temperature_share(tmp_path: Path) -> None:
    import pandas as pd

    for name, n in (("big", 900), ("small", 100)):
        pd.DataFrame(
            {"text": [f"{name} {i}" for i in range(n)], "label": ["a", "b"] * (n // 2)}
        ).to_csv(tmp_path / f"{name}.csv", index=False)
    (tmp_path / "suite.yaml").write_text(
        "members:\n"
        + "".join(
            f"  {m}:\n    axis: source\n    task: t\n    label_names: [a, b]\n"
            f"    files: {{train: {m}.csv}}\n"
            for m in ("big", "small")
        )
    )
    mx = Mixture(
        MixtureSpec(
            tmp_path / "suite.yaml",
            "source",
            ("big", "small"),
            sampling="temperature",
            temperature=2.0,
        )
    )
    w = mx.member_weights()
    assert w["small"] == pytest.approx(10 / (30 + 10))  # sqrt(100) / (sqrt(900) + sqrt(100))
    seen_small = []
    for epoch in range(4):
        order = mx.epoch_order(epoch, seed=0)
        assert len(order) == 1000
        members = np.asarray(mx.train["member_idx"])[order]
        assert abs(np.sum(members == 1) - 250) <= 1
        seen_small += order[members == 1].tolist()
    # the small member is cycled through whole passes: every example seen 10 times in 4 epochs
    assert np.bincount(np.asarray(seen_small) - 900, minlength=100).tolist() == [10] * 100
    uniform = Mixture(
        MixtureSpec(tmp_path / "suite.yaml", "source", ("big", "small"), sampling="uniform")
    )
    assert uniform.member_weights() == {"big": 0.5, "small": 0.5}


def test_evaluation_sets_and_ood_members() -> None:
    mx = _mixture(ood=("restaurants",), max_examples=50)
    sets = mx.eval_sets()
    assert set(sets) == {
        ("validation", "books"),
        ("validation", "movies"),
        ("test", "books"),
        ("test", "movies"),
        ("ood", "restaurants"),
    }
    assert len(sets[("ood", "restaurants")]) == 400
    assert "restaurants" not in set(mx.train["member"])
    assert set(sets[("ood", "restaurants")]["member_idx"]) == {2}
    assert mx.example_table("train")["planted"].notna().all()


def test_tokenisation_is_cached_and_batches_keep_identity(tmp_path: Path) -> None:
    mx = Mixture(MixtureSpec("builtin", "task", ("sentiment", "entailment"), max_examples=64))
    texts = list(mx.train["text"]) + [t for t in mx.train["text_pair"] if t]
    tok = train_wordpiece(texts, vocab_size=500)
    first = tokenize(mx.train, tok, max_length=48, cache=tmp_path)
    files = list((tmp_path / "tokens").glob("*.arrow"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    again = tokenize(mx.train, tok, max_length=48, cache=tmp_path)
    assert files[0].stat().st_mtime_ns == mtime, "second call read the cache"
    assert again["input_ids"] == first["input_ids"]
    tokenize(mx.train, tok, max_length=16, cache=tmp_path)
    assert len(list((tmp_path / "tokens").glob("*.arrow"))) == 2, "a new length is a new key"

    rows = first.to_pandas().set_index("example_id")
    loader = DataLoader(
        loader_view(first),
        batch_size=10,
        sampler=MixtureSampler(mx, seed=0),
        collate_fn=Collator(tok.pad_token_id),
    )
    seen = []
    for batch in loader:
        assert batch["input_ids"].shape == batch["attention_mask"].shape
        for k, ex_id in enumerate(batch["example_id"].tolist()):
            row = rows.loc[ex_id]
            assert batch["member_idx"][k] == row["member_idx"]
            assert batch["label"][k] == row["label"]
            n = int(batch["attention_mask"][k].sum())
            assert batch["input_ids"][k, :n].tolist() == list(row["input_ids"])
        seen += batch["example_id"].tolist()
    assert sorted(seen) == sorted(rows.index)
    pair_rows = rows[rows["member"] == "entailment"]
    assert all(max(t) == 1 for t in pair_rows["token_type_ids"]), "pairs carry segment ids"


def test_in_memory_datasets_equal_from_dict_and_are_named_by_their_content() -> None:
    """The fast builder gives from_dict's rows and features; its fingerprint, which names
    the tokenised cache, is the same for the same content and differs for any change."""
    features = Features(
        {
            "example_id": Value("int64"),
            "text": Value("string"),
            "text_pair": Value("string"),
            "label": ClassLabel(names=["neg", "pos"]),
        }
    )
    columns = {
        "example_id": [3, 1, 2],
        "text": ["a", "bb", "ccc"],
        "text_pair": [None, None, None],
        "label": [0, 1, "pos"],
    }
    fast, slow = in_memory_dataset(columns, features), Dataset.from_dict(columns, features)
    assert fast.features == slow.features
    assert fast.to_list() == slow.to_list()
    assert in_memory_dataset(columns, features)._fingerprint == fast._fingerprint
    changed = [
        {**columns, "text": ["a", "bb", "ccd"]},
        {**columns, "label": [0, 1, 0]},
        {**columns, "text_pair": [None, "x", None]},
        {key: values[:2] for key, values in columns.items()},
    ]
    prints = {in_memory_dataset(c, features)._fingerprint for c in changed}
    assert len(prints) == len(changed) and fast._fingerprint not in prints

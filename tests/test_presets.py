"""The real-data presets, loaded from small local files in the hub data sets' formats."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from soi_mlflow.data import get_suite, load_member
from soi_mlflow.data.hub import HubUnavailableError
from soi_mlflow.data.ids import index_ids
from soi_mlflow.errors import SoiInputError

NLI = ["entailment", "neutral", "contradiction"]


def _write_parquet(path: Path, data: dict, features: Features) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(data, features=features).to_parquet(str(path))


def _glue_dir(root: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(0)
    nli = Features(
        {
            "premise": Value("string"),
            "hypothesis": Value("string"),
            "label": ClassLabel(names=NLI),
            "idx": Value("int32"),
        }
    )
    for split, size in (("train", n), ("validation_matched", 20)):
        _write_parquet(
            root / "mnli" / f"{split}.parquet",
            {
                "premise": [f"{split} premise {i}" for i in range(size)],
                "hypothesis": [f"{split} hypothesis {i}" for i in range(size)],
                "label": rng.integers(0, 3, size).tolist(),
                "idx": list(range(size)),
            },
            nli,
        )
    mrpc = Features(
        {
            "sentence1": Value("string"),
            "sentence2": Value("string"),
            "label": ClassLabel(names=["not_equivalent", "equivalent"]),
            "idx": Value("int32"),
        }
    )
    sst2 = Features(
        {
            "sentence": Value("string"),
            "label": ClassLabel(names=["negative", "positive"]),
            "idx": Value("int32"),
        }
    )
    # MRPC's training split is larger than its 400 validation rows carved from it
    for split, size in (("train", 450), ("validation", 15)):
        _write_parquet(
            root / "mrpc" / f"{split}.parquet",
            {
                "sentence1": [f"s1 {split} {i}" for i in range(size)],
                "sentence2": [f"s2 {split} {i}" for i in range(size)],
                "label": (np.arange(size) % 2).tolist(),
                "idx": list(range(size)),
            },
            mrpc,
        )
    for split, size in (("train", 1100), ("validation", 30)):
        _write_parquet(
            root / "sst2" / f"{split}.parquet",
            {
                "sentence": [f"sentence {split} {i}" for i in range(size)],
                "label": (np.arange(size) % 2).tolist(),
                "idx": list(range(size)),
            },
            sst2,
        )
    return root


def test_glue_preset_maps_columns_labels_splits_and_ids(tmp_path: Path) -> None:
    suite = get_suite("glue_multitask", data_dir=_glue_dir(tmp_path))
    # MNLI's validation is 5,000 rows carved from its train split: 60 rows leave none
    with pytest.raises(SoiInputError, match="no rows"):
        load_member(suite, "mnli", "train")
    # train is the source's train split minus a fixed shuffled hold-out (validation)
    val = load_member(suite, "mrpc", "validation").to_pandas()
    tr = load_member(suite, "mrpc", "train").to_pandas()
    assert len(tr) == 50 and len(val) == 400
    assert not set(tr["text"]) & set(val["text"])
    assert set(tr["text"]) | set(val["text"]) == {f"s1 train {i}" for i in range(450)}
    # ids use the hub identity and the row's index in the original split
    rows = [int(t.split()[-1]) for t in tr["text"]]
    assert tr["example_id"].tolist() == index_ids("nyu-mll/glue", "mrpc", "train", rows).tolist()
    test = load_member(suite, "sst2", "test").to_pandas()
    assert test["text"].tolist() == [f"sentence validation {i}" for i in range(30)]
    assert test["label"].tolist() == (np.arange(30) % 2).tolist()
    mnli_test = load_member(suite, "mnli", "test")
    got = mnli_test.to_pandas()
    assert got.columns.tolist() == ["example_id", "member", "text", "text_pair", "label"]
    src = pd.read_parquet(tmp_path / "mnli" / "validation_matched.parquet")
    assert got["text"].tolist() == src["premise"].tolist()
    assert got["text_pair"].tolist() == src["hypothesis"].tolist()
    assert got["label"].tolist() == src["label"].tolist()
    assert mnli_test.features["label"].names == NLI


def test_multisource_preset_reads_csv_jsonl_and_parquet(tmp_path: Path) -> None:
    (tmp_path / "imdb").mkdir()
    pd.DataFrame(
        {"text": [f"review {i}" for i in range(3000)], "label": ["neg", "pos"] * 1500}
    ).to_csv(tmp_path / "imdb" / "train.csv", index=False)
    pd.DataFrame({"text": ["a fine film", "a dull film"], "label": ["pos", "neg"]}).to_csv(
        tmp_path / "imdb" / "test.csv", index=False
    )
    (tmp_path / "rotten_tomatoes").mkdir()
    pd.DataFrame({"text": ["good", "bad", "fine"], "label": [1, 0, 1]}).to_json(
        tmp_path / "rotten_tomatoes" / "test.jsonl", orient="records", lines=True
    )
    _write_parquet(
        tmp_path / "amazon_polarity" / "test.parquet",
        {"title": ["t1", "t2"], "content": ["great", "awful"], "label": [1, 0]},
        Features(
            {
                "title": Value("string"),
                "content": Value("string"),
                "label": ClassLabel(names=["negative", "positive"]),
            }
        ),
    )
    _write_parquet(
        tmp_path / "yelp_polarity" / "test.parquet",
        {"text": ["yum", "yuck"], "label": [1, 0]},
        Features({"text": Value("string"), "label": ClassLabel(names=["1", "2"])}),
    )
    suite = get_suite("multisource_sentiment", data_dir=tmp_path)
    imdb_test = load_member(suite, "imdb", "test").to_pandas()
    assert imdb_test["label"].tolist() == [1, 0]  # aliases pos/neg -> positive/negative
    imdb_val = load_member(suite, "imdb", "validation").to_pandas()
    assert len(imdb_val) == 2500 and 0.4 < imdb_val["label"].mean() < 0.6  # shuffled carve-out
    rt = load_member(suite, "rotten_tomatoes", "test").to_pandas()
    assert rt["text"].tolist() == ["good", "bad", "fine"] and rt["label"].tolist() == [1, 0, 1]
    amazon = load_member(suite, "amazon_polarity", "test").to_pandas()
    assert amazon.columns.tolist() == ["example_id", "member", "text", "label", "title"]
    assert amazon["text"].tolist() == ["great", "awful"]
    yelp = load_member(suite, "yelp_polarity", "test")
    assert yelp["label"] == [1, 0]  # ClassLabel "2" -> positive, "1" -> negative
    assert yelp.features["label"].names == ["negative", "positive"]


def test_massive_preset_matches_intents_by_name(tmp_path: Path) -> None:
    names = list(get_suite("massive_intent").member("fr").label_names)
    shuffled = names[::-1]  # the data's ClassLabel order need not be ours
    feats = Features(
        {
            "utt": Value("string"),
            "intent": ClassLabel(names=shuffled),
            "scenario": Value("string"),
            "locale": Value("string"),
        }
    )
    _write_parquet(
        tmp_path / "fr" / "train.parquet",
        {
            "utt": ["réveille-moi à sept heures", "allume la lumière"],
            "intent": [shuffled.index("alarm_set"), shuffled.index("iot_hue_lighton")],
            "scenario": ["alarm", "iot"],
            "locale": ["fr-FR", "fr-FR"],
        },
        feats,
    )
    (tmp_path / "fa").mkdir()
    pd.DataFrame(
        {"utt": ["هوا چطوره"], "intent": ["weather_query"], "scenario": ["weather"]}
    ).to_json(tmp_path / "fa" / "train.jsonl", orient="records", lines=True, force_ascii=False)
    suite = get_suite("massive_intent", data_dir=tmp_path)
    fr = load_member(suite, "fr", "train").to_pandas()
    assert [names[i] for i in fr["label"]] == ["alarm_set", "iot_hue_lighton"]
    assert fr["scenario"].tolist() == ["alarm", "iot"]
    fa = load_member(suite, "fa", "train", axis="lang").to_pandas()
    assert fa["text"].tolist() == ["هوا چطوره"] and names[fa["label"][0]] == "weather_query"
    assert fa["example_id"][0] == index_ids("AmazonScience/massive", "fa-IR", "train", [0])[0]


@pytest.mark.parametrize("offline_env", [True, False])
def test_unreachable_hub_fails_at_once_with_a_local_files_hint(
    offline_env: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    if offline_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    import datasets  # noqa: F401 - imported before the clock: only the hub's try is timed

    start = time.perf_counter()
    with pytest.raises(HubUnavailableError) as err:
        load_member("glue_multitask", "sst2", "train")
    assert time.perf_counter() - start < 10  # not the ~23 s of retries
    message = str(err.value)
    assert "not reachable" in message and "--data-dir" in message and "sst2" in message


def test_members_without_local_copies_still_name_the_hub(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    suite = get_suite("glue_multitask", data_dir=_glue_dir(tmp_path / "partial"))
    assert len(load_member(suite, "sst2", "validation")) == 1000
    (tmp_path / "empty").mkdir()
    with pytest.raises(HubUnavailableError, match="mnli"):
        load_member(get_suite("glue_multitask", data_dir=tmp_path / "empty"), "mnli", "train")

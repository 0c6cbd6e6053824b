"""The built-in suite's harder planted noise, checked example by example against its rules."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from soi_mlflow.data import BuiltinOptions, builtin_suite, load_member
from soi_mlflow.data.builtin import DOMAIN_NOISE
from soi_mlflow.data.lexicon import DOMAINS, INTENTS, lexicon
from soi_mlflow.data.suites import builtin_options
from soi_mlflow.errors import SoiInputError

LEX = lexicon(0)
SIZES = {"train": 600, "validation": 10, "test": 10}
MEMBERS = ["sentiment", "paraphrase", "entailment", "books", "lang_a"]


def _frame(member: str, noise: str, rate: float = 0.12, **kw) -> pd.DataFrame:
    options = BuiltinOptions(sizes=SIZES, noise=noise, mislabeled_rate=rate, **kw)
    return load_member(builtin_suite(options), member, "train").to_pandas()


def _top2(counts: Counter) -> tuple[object, object, int]:
    """(winner, runner-up, lead) of a count; runner-up None when only one key."""
    ranked = counts.most_common()
    runner = ranked[1] if len(ranked) > 1 else (None, 0)
    return ranked[0][0], runner[0], ranked[0][1] - runner[1]


def _polarity(words: list[str], member: str) -> Counter:
    pos, neg = set(LEX.positive), set(LEX.negative)
    if member in DOMAINS:
        pos |= set(LEX.domain_positive[member])
        neg |= set(LEX.domain_negative[member])
    return Counter({1: sum(w in pos for w in words), 0: sum(w in neg for w in words)}) + Counter()


def _topics(words: list[str]) -> Counter:
    return Counter(t for w in words for t, vocab in enumerate(LEX.topics) if w in vocab)


def read(member: str, ex: pd.Series) -> tuple[int, int | None, bool]:
    """What the rules say of one example: (label, runner-up label, near the boundary?).

    Near the boundary means the winning evidence leads the other by exactly one word."""
    words = ex["text"].split()
    if member in ("sentiment", *DOMAINS):
        label, rival, lead = _top2(_polarity(words, member))
        return int(label), rival, rival is not None and lead == 1
    if member == "paraphrase":
        (first,) = _topics(words)
        topic, other, lead = _top2(_topics(ex["text_pair"].split()))
        weak = other is not None and lead == 1
        return int(topic == first), 1 - int(topic == first), weak
    if member == "entailment":
        (premise_topic,) = _topics(words)
        premise_positive = _polarity(words, member)[1] > 0
        hyp = ex["text_pair"].split()
        topic, other_topic, topic_lead = _top2(_topics(hyp))
        polarity, other_polarity, polarity_lead = _top2(_polarity(hyp, member))
        agree = 0 if (polarity == 1) == premise_positive else 2
        if topic != premise_topic:
            return 1, agree, other_topic is not None and topic_lead == 1
        return agree, 2 - agree, other_polarity is not None and polarity_lead == 1
    word_to_intent = {w: k for k, (_, _, o) in enumerate(INTENTS) for w in LEX.objects[member][o]}
    intent, rival, lead = _top2(Counter(word_to_intent[w] for w in words if w in word_to_intent))
    return int(intent), rival, rival is not None and lead == 1


@pytest.mark.parametrize("member", MEMBERS)
def test_boundary_flips_fall_on_near_boundary_examples_and_pick_the_runner_up(member) -> None:
    df = _frame(member, "boundary")
    seen = Counter()
    for _, ex in df.iterrows():
        if ex["planted"] == "ambiguous":
            continue
        label, rival, weak = read(member, ex)
        assert weak == (ex["evidence"] == "weak"), ex.to_dict()
        if ex["planted"] == "clean":
            assert ex["label"] == label and ex["noise"] == ""
        else:
            assert ex["noise"] == "boundary" and weak
            assert ex["label"] == rival != label
        seen[(ex["evidence"], ex["planted"])] += 1
    # every kind occurs; flips are concentrated: a weak example is far likelier mislabeled
    assert min(seen.values()) >= 5 and len(seen) == 3, seen
    weak_flip = seen[("weak", "mislabeled")] / sum(
        seen[("weak", p)] for p in ("clean", "mislabeled")
    )
    rate = DOMAIN_NOISE.get(member, 0.12)
    assert abs(weak_flip - rate / (rate + 0.2)) < 0.1, seen


@pytest.mark.parametrize("member", MEMBERS)
def test_asymmetric_flips_only_odd_classes_to_their_partner(member) -> None:
    df = _frame(member, "asymmetric")
    for _, ex in df.iterrows():
        if ex["planted"] == "ambiguous":
            continue
        label, _, _ = read(member, ex)
        if ex["planted"] == "mislabeled":
            assert ex["noise"] == "asymmetric" and label % 2 == 1 and ex["label"] == label ^ 1
        else:
            assert ex["label"] == label
    share = (df["planted"] == "mislabeled").mean()
    rate = DOMAIN_NOISE.get(member, 0.12)  # a domain keeps its own noise rate
    assert 0.5 * rate < share < 1.5 * rate


@pytest.mark.parametrize("member", MEMBERS)
def test_duplicates_are_a_clean_original_and_a_near_copy_with_another_label(member) -> None:
    df = _frame(member, "duplicates")
    copies = df.index[df["planted"] == "mislabeled"]
    assert len(copies) > 5
    neutral = set(LEX.filler) | set(LEX.slots) | {w for f in LEX.function.values() for w in f}
    for i in copies:
        copy, original = df.loc[i], df.loc[i - 1]
        assert i % 2 == 1 and copy["noise"] == "duplicate"
        assert original["planted"] == "clean" and original["label"] == read(member, original)[0]
        assert copy["label"] != original["label"]
        a, b = original["text"].split(), copy["text"].split()
        changed = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        assert len(changed) == 1 and set(changed[0]) <= neutral, changed
        if "text_pair" in df:
            assert copy["text_pair"] == original["text_pair"]
    for _, ex in df[df["planted"] == "clean"].iterrows():
        assert ex["label"] == read(member, ex)[0]


def test_mechanisms_combine_and_share_the_rate() -> None:
    df = _frame("sentiment", "boundary+asymmetric+duplicates", rate=0.15)
    noise = Counter(df.loc[df["planted"] == "mislabeled", "noise"])
    assert set(noise) == {"boundary", "asymmetric", "duplicate"}
    assert all(15 < n < 60 for n in noise.values()), noise  # about 600 * 0.05 each
    assert list(df.columns[-3:]) == ["planted", "evidence", "noise"]


def test_defaults_and_ids_are_unchanged_and_noise_changes_ids() -> None:
    default = load_member(builtin_suite(BuiltinOptions(sizes=SIZES)), "sentiment", "train")
    explicit = load_member(
        builtin_suite(BuiltinOptions(sizes=SIZES, noise=["uniform"])), "sentiment", "train"
    )
    assert default.column_names[-1] == "planted"
    pd.testing.assert_frame_equal(default.to_pandas(), explicit.to_pandas())
    boundary = _frame("sentiment", "boundary")
    assert not set(boundary["example_id"]) & set(default["example_id"])


def test_noise_options_from_yaml_and_bad_values_refused() -> None:
    options = builtin_options({"noise": "duplicates, boundary", "boundary_share": 0.3})
    assert options.noise == ("boundary", "duplicates") and options.boundary_share == 0.3
    assert builtin_options({"noise": ["asymmetric"]}).noise == ("asymmetric",)
    with pytest.raises(SoiInputError, match="unknown noise mechanism.*'flips'"):
        builtin_options({"noise": "boundary+flips"})
    with pytest.raises(SoiInputError, match="boundary_share"):
        BuiltinOptions(boundary_share=0.9)
    with pytest.raises(SoiInputError, match="member 'entailment'.*asymmetric"):
        _frame("entailment", "asymmetric", rate=0.4)

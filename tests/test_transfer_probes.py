"""The built-in suite's transfer probes (option ``transfer_probes``, docs/data.md): their
data has the known answers #25 section 5 builds on, and the default suite is unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.profiles import member_profiles, pair_similarity
from soi_mlflow.analysis.proxy_transfer import PROXY_TRANSFER, proxy_transfer
from soi_mlflow.analysis.transfer_factors import pair_factors
from soi_mlflow.analysis.transfer_predict import PREDICTOR, ROW_MEAN, cross_predictions
from soi_mlflow.data import BuiltinOptions, builtin_suite, load_member
from soi_mlflow.data.builtin import PROBES
from soi_mlflow.data.builtin_tasks import DECOY_TARGET, SKEW
from soi_mlflow.data.lexicon import DOMAINS, lexicon
from soi_mlflow.data.mixture import Mixture, MixtureSpec
from soi_mlflow.data.suites import builtin_options
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.profiles import mixture_examples

PROBED = builtin_suite(BuiltinOptions(transfer_probes=True))
SOURCE = (*DOMAINS, "skewed", "decoy")
TASK_PROBES = ("polarity", "agreement")


def test_the_probes_are_opt_in_and_leave_every_other_member_as_it_was() -> None:
    plain = builtin_suite()
    assert not set(PROBES) & set(plain.members)
    assert set(PROBED.members) == set(plain.members) | set(PROBES)
    assert PROBED.defaults == plain.defaults
    for name in ("books", "sentiment", "lang_b"):
        assert PROBED.members[name] == plain.members[name]
        a = load_member(plain, name, "test").to_pandas()
        b = load_member(PROBED, name, "test").to_pandas()
        assert a.equals(b)
    # the probes' words come after all others: the lexicon's other words are unchanged
    lex = lexicon(0)
    probe_words = {*lex.probe_topic, *lex.probe_positive, *lex.probe_negative}
    probe_words |= {w for group in lex.decoy_markers for w in group}
    assert len(probe_words) == 12 + 10 + 10 + 12
    other = {*lex.positive, *lex.negative, *lex.filler, *lex.shift, *lex.slots}
    other |= {w for d in DOMAINS for w in lex.domain_topic[d] + lex.domain_positive[d]}
    assert not probe_words & other
    assert PROBED.members["skewed"].task == "review_sentiment"
    assert PROBED.members["decoy"].task == "decoy"
    assert {PROBED.members[p].axis for p in PROBES} == {"source", "task"}
    assert {PROBED.members[p].axis for p in TASK_PROBES} == {"task"}


def test_a_suite_file_turns_the_probes_on_and_refuses_a_non_flag() -> None:
    assert builtin_options({"transfer_probes": True}).transfer_probes
    assert not builtin_options({}).transfer_probes
    with pytest.raises(SoiInputError, match="transfer_probes"):
        builtin_options({"transfer_probes": "yes"})


def test_the_skewed_domain_is_85_percent_positive() -> None:
    labels = np.asarray(load_member(PROBED, "skewed", "train")["label"])
    n = len(labels)
    assert n == 2000
    share = float((labels == 1).mean())
    # 3 binomial standard errors (0.008 at n = 2000)
    assert abs(share - SKEW) <= 3 * np.sqrt(SKEW * (1 - SKEW) / n)
    profiles = member_profiles(_examples(("books", "skewed"), 2000))
    assert profiles.loc["skewed", "majority_share"] == pytest.approx(share)
    assert profiles.loc["skewed", "class_entropy"] < profiles.loc["books", "class_entropy"]


def test_the_decoy_and_its_target_are_the_most_similar_pair_of_all() -> None:
    similarity = pair_similarity(_examples(SOURCE, 400))
    pair = {DECOY_TARGET, "decoy"}
    is_pair = similarity.apply(lambda r: {r["source"], r["target"]} == pair, axis=1)
    for column in ("vocab_jaccard", "vocab_weighted_jaccard", "tfidf_cosine"):
        top = similarity.loc[is_pair, column].min()
        assert top > similarity.loc[~is_pair, column].max(), column
    assert (
        similarity.loc[is_pair, "unigram_jsd"].max() < similarity.loc[~is_pair, "unigram_jsd"].min()
    )
    # ... and its labels are not books' labels: nothing in common, no shared head
    assert (similarity.loc[is_pair, "label_overlap"] == 0).all()
    assert similarity.loc[is_pair, "class_distribution_l1"].isna().all()


def test_the_decoy_label_does_not_follow_the_polarity_of_its_words() -> None:
    lex = lexicon(0)
    frame = load_member(PROBED, "decoy", "train").to_pandas()
    frame = frame[frame["planted"] == "clean"]
    positive = set(lex.positive) | set(lex.domain_positive[DECOY_TARGET])
    has_positive = frame["text"].map(lambda t: bool(set(t.split()) & positive))
    agreement = float((has_positive == (frame["label"] == 1)).mean())
    assert abs(agreement - 0.5) < 0.05
    marker_b = set(lex.decoy_markers[1])
    assert (frame["text"].map(lambda t: bool(set(t.split()) & marker_b)) == frame["label"]).all()


def test_the_task_probes_are_decided_by_polarity_alone() -> None:
    lex = lexicon(0)
    polar = {w: 1 for w in lex.positive} | {w: 0 for w in lex.negative}

    def polarity(text: str) -> set[int]:
        return {polar[w] for w in text.split() if w in polar}

    frame = load_member(PROBED, "polarity", "train").to_pandas()
    clean = frame[frame["planted"] == "clean"]
    assert (clean["text"].map(polarity) == clean["label"].map(lambda y: {y})).all()
    assert not any(
        set(t.split()) & {w for topic in lex.topics for w in topic} for t in frame["text"]
    )
    frame = load_member(PROBED, "agreement", "train").to_pandas()
    clean = frame[frame["planted"] == "clean"]
    agree = [
        polarity(a) == polarity(b) and len(polarity(a)) == 1
        for a, b in zip(clean["text"], clean["text_pair"], strict=True)
    ]
    assert (np.asarray(agree) == (clean["label"] == 1)).all()
    assert PROBED.members["agreement"].label_names == ("disagree", "agree")


def _examples(members: tuple[str, ...], n: int):
    spec = MixtureSpec(PROBED, "source", members, max_examples=n)
    return mixture_examples(Mixture(spec))


# T of the task axis with the task probes (docs/studies.md, "Known answers on the built-in
# suite"): `soi-mlflow transfer --suite (builtin, transfer_probes: true) --axis task --members
# sentiment,paraphrase,entailment,polarity,agreement --mode joint --seeds 2 --epochs 3
# --max-examples 1000`, 30 runs (means over the 2 seeds).
MEASURED_T = {
    ("sentiment", "paraphrase"): 0.068,
    ("sentiment", "entailment"): 0.242,
    ("sentiment", "polarity"): 0.010,
    ("sentiment", "agreement"): 0.298,
    ("paraphrase", "sentiment"): -0.008,
    ("paraphrase", "entailment"): 0.013,
    ("paraphrase", "polarity"): 0.003,
    ("paraphrase", "agreement"): -0.025,
    ("entailment", "sentiment"): -0.003,
    ("entailment", "paraphrase"): 0.062,
    ("entailment", "polarity"): -0.003,
    ("entailment", "agreement"): 0.018,
    ("polarity", "sentiment"): -0.003,
    ("polarity", "paraphrase"): 0.046,
    ("polarity", "entailment"): 0.223,
    ("polarity", "agreement"): 0.426,
    ("agreement", "sentiment"): 0.003,
    ("agreement", "paraphrase"): 0.039,
    ("agreement", "entailment"): 0.042,
    ("agreement", "polarity"): -0.003,
}
TASKS = ("sentiment", "paraphrase", "entailment", "polarity", "agreement")


def test_the_documented_related_pair_is_predicted_above_the_unrelated_one() -> None:
    deltas = pd.DataFrame(
        [
            {"seed": 0, "source": s, "target": t, "delta": v, "problem": None}
            for (s, t), v in MEASURED_T.items()
        ]
    )
    examples = mixture_examples(Mixture(MixtureSpec(PROBED, "task", TASKS)))
    profiles, similarity = member_profiles(examples), pair_similarity(examples)
    proxy = proxy_transfer(examples)
    factors = pair_factors(profiles, similarity, list(MEASURED_T), proxy)
    held_out = cross_predictions(deltas, factors, "pair").set_index(["source", "target"])
    # the row mean cannot pass by construction: left out, each of the two is predicted by
    # the source's other pairs, which hold the other one, so the lower T gets the higher
    # prediction; the known answer asks the predictor
    rows = held_out[ROW_MEAN]
    assert rows[("sentiment", "entailment")] < rows[("sentiment", "paraphrase")]
    predicted = held_out[PREDICTOR]
    assert predicted[("sentiment", "entailment")] > predicted[("sentiment", "paraphrase")]
    # what tells them apart is the proxy transfer: without it, the surface and statistical
    # factors see agreement as paraphrase-shaped (measured: +0.110 vs +0.227, the wrong
    # order; docs/studies.md); with it the gap between the two is wider
    without = cross_predictions(deltas, factors.drop(columns=PROXY_TRANSFER), "pair")
    without = without.set_index(["source", "target"])[PREDICTOR]
    gap = predicted[("sentiment", "entailment")] - predicted[("sentiment", "paraphrase")]
    assert gap > without[("sentiment", "entailment")] - without[("sentiment", "paraphrase")]
    gain = proxy.set_index(["source", "target"])[PROXY_TRANSFER]
    assert gain[("sentiment", "entailment")] > 0.1 > abs(gain[("sentiment", "paraphrase")])


def test_positive_share_skews_a_review_domain_and_leaves_the_others_as_they_were() -> None:
    ladder = builtin_suite(builtin_options({"positive_share": {"movies": 0.9, "books": 0.7}}))
    plain = builtin_suite()
    shares = {
        m: float(np.mean(load_member(ladder, m, "train")["label"]))
        for m in ("movies", "books", "electronics")
    }
    # the share drawn, moved toward 1/2 by the domain's own label noise (2-8 %)
    assert 0.85 < shares["movies"] < 0.9 and 0.66 < shares["books"] < 0.72
    assert 0.45 < shares["electronics"] < 0.55
    # a skewed domain's examples are other examples: other ids (caches, run keys)
    assert ladder.members["movies"].identity != plain.members["movies"].identity
    assert ladder.members["electronics"] == plain.members["electronics"]
    a = load_member(plain, "electronics", "test").to_pandas()
    assert a.equals(load_member(ladder, "electronics", "test").to_pandas())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"sentiment": 0.9}, "positive_share: 'sentiment' is not a review domain"),
        ({"movies": 1.0}, r"positive_share of movies must be in \(0, 1\), got 1.0"),
        ({"movies": "high"}, "positive_share of movies must be a number, got 'high'"),
        ([0.9], "positive_share must be a mapping of review domain to share"),
    ],
)
def test_a_bad_positive_share_is_refused_naming_the_option(value, message) -> None:
    with pytest.raises(SoiInputError, match=message):
        builtin_options({"positive_share": value})

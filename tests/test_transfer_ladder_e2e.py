"""Known answer of #25 section 5: the source's class distribution ranks among the top
factors of the shift it causes in a shared-head target's predictions (docs/studies.md,
"A ladder of class distributions"). One skewed source cannot tell its class distribution
from its other traits, so the review domains take a ladder of positive shares (books and
restaurants 0.50, electronics 0.63, movies 0.87, skewed 0.88 in the 100 examples drawn);
the whole joint matrix, 4 seeds, 60 runs (~3 minutes here). Measured on two seed sets: the
source's class entropy and majority share rank 1st and 2nd of 26 factors with seeds 0-3
(this test) and 2nd and 3rd of 24 with seeds 4-7; on 4 members and 3 seeds the ranking is
not stable (14th, then 1st), which is why the test pays for 5 members."""

from __future__ import annotations

import pytest
from tracehelp import probes_study

pytestmark = [pytest.mark.e2e, pytest.mark.long]  # minutes: started first

MEMBERS = ("books", "restaurants", "electronics", "movies", "skewed")
# the setting of the skew's known answer (tests/test_transfer_probes_e2e.py): 100 examples
# a member leave books' decision open enough for a partner's balance to move it
SUITE = """builtin:
  transfer_probes: true
  ambiguous_rate: 0.3
  positive_share: {electronics: 0.7, movies: 0.9}
"""
SEEDS = 4
CLASS_DISTRIBUTION = ("source.class_entropy", "source.majority_share")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    with probes_study(tmp_path_factory, "ladder", SUITE, MEMBERS, seeds=SEEDS) as table:
        yield table


def test_the_ladder_draws_the_class_shares_it_was_given(study) -> None:
    shares = study("class_shares")
    positive = shares[shares["label_name"] == "positive"].set_index("member")["share"]
    assert positive["books"] == positive["restaurants"] == 0.5
    assert 0.5 < positive["electronics"] < positive["movies"]
    assert positive["skewed"] > 0.8 and positive["movies"] > 0.8


def test_the_source_class_distribution_ranks_among_the_top_shift_factors(study) -> None:
    factors = study("side_effects_shift_factors").dropna(subset=["rho"])
    # books-restaurants have equal distributions, so no direction: 20 - 2 pairs
    assert set(factors["n"]) == {18}
    ranked = factors.set_index("factor")
    assert len(ranked) >= 20  # ranked among many factors, not a short list
    best = ranked.loc[list(CLASS_DISTRIBUTION), "rank"].min()
    assert best <= 3, factors.head(6)[["factor", "rho", "rank"]].to_string()
    # balanced sources pull skewed targets back harder than skewed sources push balanced
    # ones: the shift toward the source's class grows with the source's class entropy
    assert ranked.loc["source.class_entropy", "rho"] > 0.3
    # and with how far the two distributions are apart
    assert ranked.loc["class_distribution_l1", "rho"] > 0.2

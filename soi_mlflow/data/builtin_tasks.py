"""How each task of the built-in suite writes one example from its random stream.

A family takes ``(rng, lexicon, kind)`` and returns an :class:`Example`; ``kind`` is the
planted kind to write (``clean``, ``ambiguous``, ``mislabeled`` before its flip, or
``weak``: a clean example near the decision boundary, with its runner-up label). The
suite (``builtin.py``) decides which kind each row gets and flips the mislabeled ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from soi_mlflow.data.lexicon import DOMAINS, INTENTS, LANGS, TOPICS, Lexicon

# Word order per language: the positions of (function, verb, function, object, slot).
WORD_ORDER = {"lang_a": (0, 1, 3, 2, 4), "lang_b": (4, 3, 0, 1, 2), "lang_c": (1, 0, 4, 2, 3)}


@dataclass
class Example:
    text: str
    label: int
    planted: str
    text_pair: str | None = None
    rival: int | None = None  # the runner-up label of a weak (near-boundary) example


def _pick(rng: np.random.Generator, words: Sequence[str], k: int) -> list[str]:
    return [words[i] for i in rng.choice(len(words), size=k, replace=False)]


def _render(
    rng: np.random.Generator, lex: Lexicon, words: list[str], fillers: tuple[int, int]
) -> str:
    words = words + _pick(rng, lex.filler, int(rng.integers(*fillers)))
    return " ".join(words[i] for i in rng.permutation(len(words)))


def _polar(lex: Lexicon, positive: bool) -> tuple[str, ...]:
    return lex.positive if positive else lex.negative


def _sentiment(rng, lex: Lexicon, kind: str) -> Example:
    y = int(rng.integers(2))
    topic = lex.topics[rng.integers(TOPICS)]
    if kind == "ambiguous":
        pol = _pick(rng, lex.positive, 2) + _pick(rng, lex.negative, 2)
    elif kind == "weak":  # n + 1 words of the label's polarity, n of the other
        n = int(rng.integers(1, 3))
        pol = _pick(rng, _polar(lex, y == 1), n + 1) + _pick(rng, _polar(lex, y == 0), n)
    else:
        pol = _pick(rng, _polar(lex, y == 1), int(rng.integers(2, 4)))
    text = _render(rng, lex, pol + _pick(rng, topic, 2), (3, 7))
    return _weak(Example(text, y, kind), kind, 1 - y)


def _weak(ex: Example, kind: str, rival: int) -> Example:
    """A near-boundary example is a clean one whose runner-up label is ``rival``."""
    if kind == "weak":
        ex.planted, ex.rival = "clean", rival
    return ex


SHIFT_CUE = 0.7  # chance that a topic change is marked by a shift word
POSITIVE_PREMISE = 0.7  # chance that an entailment premise is positive


def _topic_text(
    rng, lex: Lexicon, topics: list[int], counts: list[int], shift: bool = False
) -> str:
    words = [w for t, n in zip(topics, counts, strict=True) for w in _pick(rng, lex.topics[t], n)]
    words += _pick(rng, _polar(lex, bool(rng.integers(2))), 1)
    if shift:
        words += _pick(rng, lex.shift, 1)
    return _render(rng, lex, words, (2, 5))


def _paraphrase(rng, lex: Lexicon, kind: str) -> Example:
    y = int(rng.integers(2))
    ta, tb = (int(t) for t in rng.choice(TOPICS, size=2, replace=False))
    first = _topic_text(rng, lex, [ta], [3])
    if kind == "ambiguous":
        second = _topic_text(rng, lex, [ta, tb], [2, 2])
    elif kind == "weak":  # the second text's majority topic decides, by one word
        main, minor = (ta, tb) if y == 1 else (tb, ta)
        shift = y == 0 and rng.random() < SHIFT_CUE
        second = _topic_text(rng, lex, [main, minor], [2, 1], shift=shift)
        return _weak(Example(first, y, kind, second), kind, 1 - y)
    elif y == 1:
        second = _topic_text(rng, lex, [ta], [3])
    else:
        second = _topic_text(rng, lex, [tb], [3], shift=rng.random() < SHIFT_CUE)
    return Example(first, y, kind, second)


def _entailment(rng, lex: Lexicon, kind: str) -> Example:
    # labels: 0 entailment, 1 neutral, 2 contradiction
    y = int(rng.integers(3))
    t, other = (int(x) for x in rng.choice(TOPICS, size=2, replace=False))
    s = bool(rng.random() < POSITIVE_PREMISE)
    premise = _render(
        rng, lex, _pick(rng, lex.topics[t], 3) + _pick(rng, _polar(lex, s), 2), (2, 5)
    )
    if kind == "ambiguous":
        y = int(rng.choice([0, 2]))
        hyp_words = _pick(rng, lex.topics[t], 2) + _pick(rng, lex.positive, 1)
        hyp_words += _pick(rng, lex.negative, 1)
    elif kind == "weak" and y == 1:  # neutral by one topic word
        hyp_pos = bool(rng.integers(2))
        hyp_words = _pick(rng, lex.topics[other], 2) + _pick(rng, lex.topics[t], 1)
        hyp_words += _pick(rng, _polar(lex, hyp_pos), 2)
        hyp_words += _pick(rng, lex.shift, 1) if rng.random() < SHIFT_CUE else []
        rival = 0 if hyp_pos == s else 2
        return _weak(Example(premise, y, kind, _render(rng, lex, hyp_words, (1, 4))), kind, rival)
    elif kind == "weak":  # same topic; the hypothesis's polarity wins by one word
        agree = s == (y == 0)
        hyp_words = _pick(rng, lex.topics[t], 2) + _pick(rng, _polar(lex, agree), 2)
        hyp_words += _pick(rng, _polar(lex, not agree), 1)
        ex = Example(premise, y, kind, _render(rng, lex, hyp_words, (1, 4)))
        return _weak(ex, kind, 2 - y)
    elif y == 1:
        hyp_words = _pick(rng, lex.topics[other], 2)
        hyp_words += _pick(rng, _polar(lex, bool(rng.integers(2))), 2)
        hyp_words += _pick(rng, lex.shift, 1) if rng.random() < SHIFT_CUE else []
    else:
        hyp_words = _pick(rng, lex.topics[t], 2) + _pick(rng, _polar(lex, s == (y == 0)), 2)
    return Example(premise, y, kind, _render(rng, lex, hyp_words, (1, 4)))


def domain_sentiment(domain: str, positive: float | None = None) -> Callable[..., Example]:
    """The review family of ``domain``: balanced labels, or ``positive`` the share of
    positive ones (option ``positive_share``; the default draw is kept as it was, so
    balanced domains are the same examples with or without the option)."""

    def generate(rng, lex: Lexicon, kind: str) -> Example:
        y = int(rng.integers(2)) if positive is None else int(rng.random() < positive)
        pos, neg = lex.domain_positive[domain], lex.domain_negative[domain]
        if kind == "ambiguous":
            words = _pick(rng, lex.positive, 1) + _pick(rng, lex.negative, 1)
            words += _pick(rng, pos, 1) + _pick(rng, neg, 1)
        elif kind == "weak":  # one general and one domain word for the label, one against
            own, against = (pos, neg) if y == 1 else (neg, pos)
            words = _pick(rng, _polar(lex, y == 1), 1) + _pick(rng, own, 1)
            words += _pick(rng, _polar(lex, y == 0) if rng.random() < 0.5 else against, 1)
        else:
            words = _pick(rng, _polar(lex, y == 1), int(rng.integers(1, 3)))
            words += _pick(rng, pos if y == 1 else neg, int(rng.integers(1, 3)))
        words += _pick(rng, lex.domain_topic[domain], int(rng.integers(2, 4)))
        return _weak(Example(_render(rng, lex, words, (2, 5)), y, kind), kind, 1 - y)

    return generate


SKEW = 0.85  # share of positive labels of the skewed probe domain
DECOY_TARGET = "books"  # the member whose topic and polarity words the decoy shares


def _skewed(rng, lex: Lexicon, kind: str) -> Example:
    """A review domain of its own words, 85 % positive (the transfer probe ``skewed``)."""
    y = int(rng.random() < SKEW)
    pos, neg = lex.probe_positive, lex.probe_negative
    if kind == "ambiguous":
        words = _pick(rng, lex.positive, 1) + _pick(rng, lex.negative, 1)
        words += _pick(rng, pos, 1) + _pick(rng, neg, 1)
    else:
        words = _pick(rng, _polar(lex, y == 1), int(rng.integers(1, 3)))
        words += _pick(rng, pos if y == 1 else neg, int(rng.integers(1, 3)))
    words += _pick(rng, lex.probe_topic, int(rng.integers(2, 4)))
    return _weak(Example(_render(rng, lex, words, (2, 5)), y, kind), kind, 1 - y)


def _decoy(rng, lex: Lexicon, kind: str) -> Example:
    """A text in the words of ``books`` (topic and polarity, the polarity at random) whose
    label is which of two marker sets it holds: close in surface, unrelated in labels."""
    y = int(rng.integers(2))
    own = bool(rng.integers(2))  # the polarity of the words: no bearing on the label
    words = _pick(rng, _polar(lex, own), int(rng.integers(1, 3)))
    domain = lex.domain_positive if own else lex.domain_negative
    words += _pick(rng, domain[DECOY_TARGET], int(rng.integers(1, 3)))
    words += _pick(rng, lex.domain_topic[DECOY_TARGET], int(rng.integers(2, 4)))
    if kind == "ambiguous":
        words += _pick(rng, lex.decoy_markers[0], 1) + _pick(rng, lex.decoy_markers[1], 1)
    else:
        words += _pick(rng, lex.decoy_markers[y], 1)
    return _weak(Example(_render(rng, lex, words, (2, 5)), y, kind), kind, 1 - y)


def _polarity(rng, lex: Lexicon, kind: str) -> Example:
    """The polarity of general polarity words among filler, no topic words (the task probe
    ``polarity``): related to entailment through polarity, as sentiment is, in another
    surface (shorter, no topic words)."""
    y = int(rng.integers(2))
    if kind == "ambiguous":
        pol = _pick(rng, lex.positive, 2) + _pick(rng, lex.negative, 2)
    elif kind == "weak":
        n = int(rng.integers(1, 3))
        pol = _pick(rng, _polar(lex, y == 1), n + 1) + _pick(rng, _polar(lex, y == 0), n)
    else:
        pol = _pick(rng, _polar(lex, y == 1), int(rng.integers(2, 4)))
    return _weak(Example(_render(rng, lex, pol, (2, 5)), y, kind), kind, 1 - y)


def _agreement(rng, lex: Lexicon, kind: str) -> Example:
    """A pair on one topic, label 1 iff the two texts' polarities agree (the task probe
    ``agreement``): entailment's entailment-or-contradiction decision without its topics."""
    y = int(rng.integers(2))
    topic = lex.topics[rng.integers(TOPICS)]
    s = bool(rng.integers(2))
    first = _render(rng, lex, _pick(rng, topic, 3) + _pick(rng, _polar(lex, s), 2), (2, 5))
    words = _pick(rng, topic, 2)
    if kind == "ambiguous":
        words += _pick(rng, lex.positive, 1) + _pick(rng, lex.negative, 1)
    elif kind == "weak":  # the second text's polarity wins by one word
        words += _pick(rng, _polar(lex, s == (y == 1)), 2) + _pick(
            rng, _polar(lex, s != (y == 1)), 1
        )
    else:
        words += _pick(rng, _polar(lex, s == (y == 1)), 2)
    ex = Example(first, y, kind, _render(rng, lex, words, (1, 4)))
    return _weak(ex, kind, 1 - y)


def _intent(lang: str) -> Callable[..., Example]:
    def generate(rng, lex: Lexicon, kind: str) -> Example:
        y = int(rng.integers(len(INTENTS)))
        _, verb, obj = INTENTS[y]
        fn = _pick(rng, lex.function[lang], 2)
        if kind == "ambiguous":
            # Same verb, two objects of the two intents that share it.
            partner = y ^ 1
            y = int(rng.choice([y, partner]))
            objs = lex.objects[lang]
            obj_word = (
                _pick(rng, objs[obj], 1)[0] + " " + _pick(rng, objs[INTENTS[partner][2]], 1)[0]
            )
        elif kind == "weak":  # two words of the object, one of the partner's (same verb)
            objs = lex.objects[lang]
            both = _pick(rng, objs[obj], 2) + _pick(rng, objs[INTENTS[y ^ 1][2]], 1)
            obj_word = " ".join(both[i] for i in rng.permutation(3))
        else:
            obj_word = _pick(rng, lex.objects[lang][obj], 1)[0]
        verb_word = _pick(rng, lex.verbs[lang][verb], 1)[0]
        slot = _pick(rng, lex.slots, 1)[0] if rng.random() < 0.6 else ""
        parts = [fn[0], verb_word, fn[1], obj_word, slot]
        text = " ".join(p for p in (parts[i] for i in WORD_ORDER[lang]) if p)
        return _weak(Example(text, y, kind), kind, y ^ 1)

    return generate


FAMILIES: dict[str, Callable[..., Example]] = {
    "sentiment": _sentiment,
    "paraphrase": _paraphrase,
    "entailment": _entailment,
    **{f"domain:{d}": domain_sentiment(d) for d in DOMAINS},
    **{f"intent:{lang}": _intent(lang) for lang in LANGS},
    "probe:skewed": _skewed,
    "probe:decoy": _decoy,
    "probe:polarity": _polarity,
    "probe:agreement": _agreement,
}

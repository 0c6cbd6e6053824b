"""Pseudo-word vocabularies for the built-in suite, generated deterministically from a seed.

The built-in suite's "languages" are made of pseudo-words so that nothing has to be
downloaded and so that which words carry which signal is known exactly. Every word is
unique across the whole suite except where a word is shared on purpose (anchors).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Syllable inventories: the shared English-like language of the task and source axes, and
# three synthetic languages of the lang axis with different sounds (so different surfaces).
INVENTORIES = {
    "common": ("bdfgklmnprstvz", "aeiou"),
    "lang_a": ("ptkmn", "aiu"),
    "lang_b": ("bdgrl", "eoy"),
    "lang_c": ("szfhw", "aeo"),
}

TOPICS = 6
DOMAINS = ("books", "movies", "electronics", "restaurants")
INTENTS = (
    ("set_alarm", "set", "alarm"),
    ("set_lights", "set", "lights"),
    ("play_music", "play", "music"),
    ("play_radio", "play", "radio"),
    ("query_weather", "query", "weather"),
    ("query_calendar", "query", "calendar"),
    ("order_food", "order", "food"),
    ("order_taxi", "order", "taxi"),
)
VERBS = ("set", "play", "query", "order")
# Objects whose word is the same in every language: the cross-lingual anchors.
ANCHOR_OBJECTS = ("alarm", "radio", "weather", "taxi")
LANGS = ("lang_a", "lang_b", "lang_c")


class _WordMaker:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 0x51E])
        self.used: set[str] = set()

    def words(self, n: int, inventory: str) -> tuple[str, ...]:
        consonants, vowels = INVENTORIES[inventory]
        out: list[str] = []
        while len(out) < n:
            syllables = int(self.rng.integers(2, 4))
            word = "".join(
                consonants[self.rng.integers(len(consonants))]
                + vowels[self.rng.integers(len(vowels))]
                for _ in range(syllables)
            )
            if word not in self.used:
                self.used.add(word)
                out.append(word)
        return tuple(out)


@dataclass(frozen=True)
class Lexicon:
    """All word lists of the built-in suite for one seed."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]
    topics: tuple[tuple[str, ...], ...]
    filler: tuple[str, ...]
    shift: tuple[str, ...]  # "topic shift" words: a cue of non-paraphrase and neutral pairs
    domain_topic: dict[str, tuple[str, ...]]
    domain_positive: dict[str, tuple[str, ...]]
    domain_negative: dict[str, tuple[str, ...]]
    verbs: dict[str, dict[str, tuple[str, ...]]]  # lang -> verb -> surface words
    objects: dict[str, dict[str, tuple[str, ...]]]  # lang -> object -> surface words
    function: dict[str, tuple[str, ...]]  # lang -> function words
    slots: tuple[str, ...]  # shared slot values (numbers, names): anchors with no intent signal
    # Words of the transfer probes (option ``transfer_probes``), made after all others so
    # that every word above is the same with or without them.
    probe_topic: tuple[str, ...] = ()  # the skewed domain's topic words
    probe_positive: tuple[str, ...] = ()  # the skewed domain's own polarity words
    probe_negative: tuple[str, ...] = ()
    decoy_markers: tuple[tuple[str, ...], ...] = ()  # the decoy's label cues, one set a label


@lru_cache(maxsize=8)
def lexicon(seed: int) -> Lexicon:
    """The lexicon for ``seed``; the same seed always gives the same words."""
    wm = _WordMaker(seed)
    positive, negative = wm.words(30, "common"), wm.words(30, "common")
    topics = tuple(wm.words(10, "common") for _ in range(TOPICS))
    filler = wm.words(80, "common")
    shift = wm.words(10, "common")
    domain_topic = {d: wm.words(12, "common") for d in DOMAINS}
    domain_positive = {d: wm.words(10, "common") for d in DOMAINS}
    domain_negative = {d: wm.words(10, "common") for d in DOMAINS}
    anchors = {obj: wm.words(1, "common") for obj in ANCHOR_OBJECTS}
    verbs, objects, function = {}, {}, {}
    for lang in LANGS:
        verbs[lang] = {v: wm.words(2, lang) for v in VERBS}
        objects[lang] = {obj: wm.words(2, lang) + anchors.get(obj, ()) for _, _, obj in INTENTS}
        function[lang] = wm.words(8, lang)
    slots = tuple(str(n) for n in range(1, 13)) + wm.words(8, "common")
    probe_topic, probe_positive, probe_negative = (wm.words(n, "common") for n in (12, 10, 10))
    decoy_markers = (wm.words(6, "common"), wm.words(6, "common"))
    return Lexicon(
        positive,
        negative,
        topics,
        filler,
        shift,
        domain_topic,
        domain_positive,
        domain_negative,
        verbs,
        objects,
        function,
        slots,
        probe_topic,
        probe_positive,
        probe_negative,
        decoy_markers,
    )

"""How the built-in suite plants label noise: today's uniform flips and three harder kinds.

A mislabeled example's rate is split equally among the chosen mechanisms:

- ``uniform`` (the default): any example, flipped to a uniformly drawn other label.
- ``boundary`` (instance-dependent): a share of examples is generated *near the decision
  boundary* (weak evidence: the winning label leads the runner-up by one word); the flips
  fall only on such examples, and go to the runner-up label, as an annotator's misreading.
- ``asymmetric`` (class-conditional): only examples of the odd-numbered classes are
  flipped, each to its partner class ``y ^ 1`` (positive -> negative; neutral ->
  entailment; an intent -> the intent sharing its verb), at a rate scaled so that the
  member's overall share stays the chosen one.
- ``duplicates``: rows come in blocks of two (rows 2k, 2k+1); in a chosen block, row 2k is a
  clean example and row 2k+1 its near duplicate (one neutral word replaced) with a
  conflicting label. The copy is the planted ``mislabeled`` one.

Each example keeps its own random stream, so example *i* does not depend on the split size;
the duplicate decision of a block has a stream of its own. With ``uniform`` alone the
draws are exactly today's, so the default suite is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from soi_mlflow.errors import SoiInputError

MECHANISMS = ("uniform", "boundary", "asymmetric", "duplicates")
DEFAULT_NOISE = ("uniform",)
_DUPLICATE_STREAM = 0xD0


def parse_noise(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"boundary+duplicates"``, ``"boundary,duplicates"`` or a list -> a sorted tuple."""
    if isinstance(value, str):
        value = [v for v in value.replace("+", ",").split(",")]
    names = [str(v).strip() for v in value]
    if not names or not all(names):
        raise SoiInputError(
            f"builtin suite: noise must name one or more of {', '.join(MECHANISMS)}, got {value!r}"
        )
    unknown = [n for n in names if n not in MECHANISMS]
    if unknown:
        raise SoiInputError(
            f"builtin suite: unknown noise mechanism(s) {', '.join(map(repr, unknown))}; "
            f"expected {', '.join(MECHANISMS)}"
        )
    return tuple(m for m in MECHANISMS if m in names)


@dataclass(frozen=True)
class NoisePlan:
    """Per-mechanism rates of one member; ``rate`` is the member's mislabeled share."""

    mechanisms: tuple[str, ...]
    rate: float
    ambiguous: float
    boundary_share: float
    n_labels: int

    @property
    def each(self) -> float:
        return self.rate / len(self.mechanisms)

    def uses(self, mechanism: str) -> bool:
        return mechanism in self.mechanisms

    def asymmetric_flip_rate(self, member: str) -> float:
        """P(flip | odd class): scaled by C / #odd classes so the overall share is ``each``."""
        odd = self.n_labels // 2
        p = self.each * self.n_labels / odd
        if p >= 1:
            raise SoiInputError(
                f"builtin suite, member {member!r}: asymmetric noise at mislabeled rate "
                f"{self.each:.3f} per mechanism needs P(flip | class) = {p:.2f} >= 1 "
                f"with {self.n_labels} classes; lower mislabeled_rate"
            )
        return p

    def kind(self, rng: np.random.Generator) -> tuple[str, str]:
        """(generator kind, noise) of one example from its first draw.

        Generator kinds: ``ambiguous``, ``mislabeled`` (uniform flip), ``weak`` (near the
        boundary; flipped when noise is ``boundary``), ``clean``."""
        u = rng.random()
        edge = self.ambiguous
        if u < edge:
            return "ambiguous", ""
        if self.uses("uniform"):
            edge += self.each
            if u < edge:
                return "mislabeled", "uniform"
        if self.uses("boundary"):
            edge += self.each
            if u < edge:
                return "weak", "boundary"
            edge += self.boundary_share
            if u < edge:
                return "weak", ""
        return "clean", ""


def flip_uniform(rng: np.random.Generator, label: int, n_labels: int) -> int:
    return int((label + rng.integers(1, n_labels)) % n_labels)


def duplicate_block(
    seed: int, member_code: int, split_code: int, row: int, plan: NoisePlan
) -> bool:
    """Whether row ``row`` lies in a block (rows 2k, 2k+1) of an original and its copy."""
    if not plan.uses("duplicates"):
        return False
    rng = np.random.default_rng([seed, member_code, split_code, row // 2, _DUPLICATE_STREAM])
    return bool(rng.random() < 2 * plan.each)


def near_duplicate(rng: np.random.Generator, text: str, neutral: Sequence[Sequence[str]]) -> str:
    """``text`` with one neutral word (filler, slot value, function word) replaced by
    another word of the same list that the text does not hold."""
    words = text.split()
    spots = [(i, vocab) for i, w in enumerate(words) for vocab in neutral if w in vocab]
    i, vocab = spots[int(rng.integers(len(spots)))]
    choices = [w for w in vocab if w not in words]
    words[i] = choices[int(rng.integers(len(choices)))]
    return " ".join(words)

"""The built-in offline suite: generated data with known structure and planted examples.

Every example is generated from its own random stream, seeded by (suite seed, member,
split, index), so example *i* is the same whatever the split size or ``max_examples``.

Axis ``task`` (one shared pseudo-English vocabulary):
- ``sentiment`` (text, 2 labels): the label is the polarity of the polarity words.
- ``paraphrase`` (pair, 2 labels): paraphrase iff both texts are about the same topic.
  Polarity words appear in both texts but are irrelevant to the label.
- ``entailment`` (pair, 3 labels): neutral if the hypothesis is about another topic,
  otherwise entailment if the polarities agree and contradiction if they differ.
  Related pairs: sentiment-entailment share the polarity lexicon; paraphrase-entailment
  share topic matching. Unrelated pair: sentiment-paraphrase (polarity vs topic).

Axis ``source``: sentiment in four domains. Each text holds general polarity words
(shared by all domains) and domain-only polarity and topic words; domains differ in their
label-noise rate. A model trained on several domains leans more on the general words, and
so transfers better to an unseen domain than a model trained on one.

Axis ``lang``: intent classification (8 intents = verb x object) in three synthetic
languages with their own surface words and word order. Four object words (anchors) and the
slot values are identical in every language.

Transfer probes (option ``transfer_probes``, off by default; docs/data.md): members
whose transfer is known in advance. ``skewed`` is a review
domain of its own words on the shared ``review_sentiment`` head, 85 % positive: trained
with another domain it pushes that domain's predictions toward positive. ``decoy`` is
written in the topic and polarity words of ``books`` but has its own task and labels
(which of two marker word sets a text holds): the most similar pair in surface, with no
transfer to expect.
On the task axis, ``polarity`` (general polarity words, no topic words) and ``agreement``
(pairs on one topic, agree iff their polarities agree) relate to entailment through
polarity as sentiment does; their label noise is ``mislabeled_rate``.

Planted kinds (column ``planted``): ``clean``; ``ambiguous``, whose evidence is balanced
between two labels and whose gold label is one of them at random; ``mislabeled``, a clean
example whose gold label was flipped to another label. Option ``noise`` picks how flips
are planted (``noise.py``): uniformly (the default) or near the decision boundary,
class-conditionally, and as near duplicates with conflicting labels.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from soi_mlflow.data.builtin_tasks import FAMILIES, Example, domain_sentiment
from soi_mlflow.data.lexicon import DOMAINS, INTENTS, LANGS, lexicon
from soi_mlflow.data.noise import (
    DEFAULT_NOISE,
    NoisePlan,
    duplicate_block,
    flip_uniform,
    near_duplicate,
    parse_noise,
)
from soi_mlflow.data.spec import BuiltinSource, MemberSpec, SplitSource, SuiteSpec
from soi_mlflow.errors import SoiInputError

PLANTED = ("clean", "ambiguous", "mislabeled")
# Label noise (share of mislabeled examples) per domain of the source axis.
DOMAIN_NOISE = {"books": 0.02, "movies": 0.04, "electronics": 0.08, "restaurants": 0.03}
_SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}
# The transfer probes: what each is for (docs/data.md), and their label noise (none, so the
# skewed domain's label share is its generator's).
PROBES = {
    "skewed": "review domain of its own words, 85 % positive, on the shared head: "
    "shifts a target's predictions toward positive",
    "decoy": "written in the words of books, labels unrelated (which marker set a text "
    "holds), own task: most similar to books in surface, no transfer",
    "polarity": "task axis: the polarity of general polarity words, no topic words: "
    "related to entailment through polarity, as sentiment is",
    "agreement": "task axis: pairs on one topic, agree iff their polarities agree: "
    "related to entailment through polarity",
}
PROBE_NOISE = {"skewed": 0.0, "decoy": 0.0}


@dataclass(frozen=True)
class BuiltinOptions:
    """Size and generation settings of the built-in suite (all documented defaults)."""

    seed: int = 0
    sizes: dict[str, int] = field(
        default_factory=lambda: {"train": 2000, "validation": 400, "test": 400}
    )
    ambiguous_rate: float = 0.04
    mislabeled_rate: float = 0.04
    noise: tuple[str, ...] = DEFAULT_NOISE  # mechanisms sharing mislabeled_rate (noise.py)
    boundary_share: float = 0.2  # clean near-boundary examples, with noise "boundary"
    transfer_probes: bool = False  # add the members ``skewed`` and ``decoy`` (PROBES)
    # review domain -> its share of positive labels (default: balanced): a ladder of class
    # distributions on one head, for what a source's class balance does to its targets
    positive_share: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise", parse_noise(self.noise))
        if not 0.0 <= self.boundary_share < 0.5:
            raise SoiInputError(
                f"builtin suite: boundary_share must be in [0, 0.5), got {self.boundary_share!r}"
            )
        for split, n in self.sizes.items():
            if split not in _SPLIT_CODE:
                raise SoiInputError(
                    f"builtin suite: unknown split {split!r} in sizes; "
                    f"expected {', '.join(_SPLIT_CODE)}"
                )
            if not isinstance(n, int) or n <= 0:
                raise SoiInputError(
                    f"builtin suite: size of split {split!r} must be > 0, got {n!r}"
                )
        for member, share in self.positive_share.items():
            if member not in DOMAINS:
                raise SoiInputError(
                    f"builtin suite: positive_share: {member!r} is not a review domain; "
                    f"expected one of {', '.join(DOMAINS)}"
                )
            if isinstance(share, bool) or not isinstance(share, (int, float)):
                raise SoiInputError(
                    f"builtin suite: positive_share of {member} must be a number, got {share!r}"
                )
            if not 0.0 < share < 1.0:
                raise SoiInputError(
                    f"builtin suite: positive_share of {member} must be in (0, 1), got {share!r}"
                )
        for name in ("ambiguous_rate", "mislabeled_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate < 0.5:
                raise SoiInputError(f"builtin suite: {name} must be in [0, 0.5), got {rate!r}")


def _member(
    options: BuiltinOptions,
    name: str,
    axis: str,
    task: str,
    labels: Sequence[str],
    family: str,
    pair: bool = False,
) -> MemberSpec:
    return MemberSpec(
        name=name,
        axis=axis,
        task=task,
        label_names=tuple(labels),
        source=BuiltinSource(family),
        splits={s: SplitSource(s) for s in _SPLIT_CODE},
        identity=(f"soi-builtin/{name}", _config_name(options) + _share_name(options, name)),
        text_pair_column="text_pair" if pair else None,
        metadata_columns=("planted",) if options.noise == DEFAULT_NOISE else NOISE_COLUMNS,
    )


NOISE_COLUMNS = ("planted", "evidence", "noise")


def _config_name(options: BuiltinOptions) -> str:
    """Part of every id: other noise mechanisms make other examples, so other ids."""
    name = f"v1-seed{options.seed}"
    if options.noise != DEFAULT_NOISE:
        name += f"-noise-{'+'.join(options.noise)}-b{options.boundary_share:g}"
    return name


def _share_name(options: BuiltinOptions, member: str) -> str:
    """Part of a skewed domain's ids: its examples are other examples."""
    share = options.positive_share.get(member)
    return "" if share is None else f"-pos{share:g}"


BINARY = ["negative", "positive"]
DECOY_LABELS = ["marker_a", "marker_b"]


def builtin_suite(options: BuiltinOptions | None = None) -> SuiteSpec:
    """The built-in suite's members; ``options`` sets its seed, sizes and planted rates."""
    options = options or BuiltinOptions()
    intents = [name for name, _, _ in INTENTS]
    members = [
        _member(options, "sentiment", "task", "sentiment", BINARY, "sentiment"),
        _member(
            options,
            "paraphrase",
            "task",
            "paraphrase",
            ["not_paraphrase", "paraphrase"],
            "paraphrase",
            True,
        ),
        _member(
            options,
            "entailment",
            "task",
            "entailment",
            ["entailment", "neutral", "contradiction"],
            "entailment",
            True,
        ),
        *(
            _member(options, d, "source", "review_sentiment", BINARY, f"domain:{d}")
            for d in DOMAINS
        ),
        *(_member(options, lang, "lang", "intent", intents, f"intent:{lang}") for lang in LANGS),
    ]
    description = "Generated offline suite with planted clean, ambiguous, mislabeled examples."
    if options.transfer_probes:
        members += [
            _member(options, "skewed", "source", "review_sentiment", BINARY, "probe:skewed"),
            _member(options, "decoy", "source", "decoy", DECOY_LABELS, "probe:decoy"),
            _member(options, "polarity", "task", "polarity", BINARY, "probe:polarity"),
            _member(
                options,
                "agreement",
                "task",
                "agreement",
                ["disagree", "agree"],
                "probe:agreement",
                True,
            ),
        ]
        description += " Transfer probes: " + "; ".join(f"{k}: {v}" for k, v in PROBES.items())
    return SuiteSpec(
        name="builtin",
        members={m.name: m for m in members},
        description=description,
        defaults={"axis": "source", "members": ["books", "movies"], "ood": ["restaurants"]},
        options={"builtin": options},
    )


def generate(
    spec: MemberSpec, split: str, indices: np.ndarray, options: BuiltinOptions
) -> dict[str, list]:
    """The rows ``indices`` of one member's split, as columns."""
    assert isinstance(spec.source, BuiltinSource)
    plan = NoisePlan(
        options.noise,
        {**DOMAIN_NOISE, **PROBE_NOISE}.get(spec.name, options.mislabeled_rate),
        options.ambiguous_rate,
        options.boundary_share,
        len(spec.label_names or ()),
    )
    rows = _Rows(spec, split, options, plan)
    cols: dict[str, list] = {c: [] for c in ("text", "label", *spec.metadata_columns)}
    if spec.is_pair:
        cols["text_pair"] = []
    for i in indices:
        ex, label, evidence, noise = rows.row(int(i))
        cols["text"].append(ex.text)
        cols["label"].append(label)
        cols["planted"].append(ex.planted)
        if "noise" in cols:
            cols["evidence"].append(evidence)
            cols["noise"].append(noise)
        if spec.is_pair:
            cols["text_pair"].append(ex.text_pair)
    return cols


class _Rows:
    """One member split's rows: example, label, evidence strength and noise mechanism."""

    def __init__(
        self, spec: MemberSpec, split: str, options: BuiltinOptions, plan: NoisePlan
    ) -> None:
        assert isinstance(spec.source, BuiltinSource)
        self.make = FAMILIES[spec.source.family]
        if spec.name in options.positive_share:
            self.make = domain_sentiment(spec.name, options.positive_share[spec.name])
        self.lex = lexicon(options.seed)
        self.key = (options.seed, zlib.crc32(spec.name.encode()), _SPLIT_CODE[split])
        self.plan = plan
        self.flip_odd = plan.asymmetric_flip_rate(spec.name) if plan.uses("asymmetric") else 0.0
        lex = self.lex
        self.neutral = (lex.filler, lex.slots, *lex.function.values())

    def _rng(self, row: int) -> np.random.Generator:
        return np.random.default_rng([*self.key, row])

    def row(self, i: int) -> tuple[Example, int, str, str]:
        if duplicate_block(*self.key, i, self.plan):
            return self._duplicate(i)
        rng = self._rng(i)
        kind, noise = self.plan.kind(rng)
        ex = self.make(rng, self.lex, kind)
        label = ex.label
        if kind == "mislabeled":
            label = flip_uniform(rng, label, self.plan.n_labels)
        elif noise == "boundary":
            assert ex.rival is not None
            label, ex.planted = ex.rival, "mislabeled"
        elif (
            self.flip_odd and kind != "ambiguous" and label % 2 == 1
        ) and rng.random() < self.flip_odd:
            label, ex.planted, noise = label ^ 1, "mislabeled", "asymmetric"
        evidence = {"ambiguous": "balanced", "weak": "weak"}.get(kind, "strong")
        return ex, label, evidence, noise

    def _duplicate(self, i: int) -> tuple[Example, int, str, str]:
        """Row 2k: a clean original; row 2k+1: its near copy with another label."""
        rng = self._rng(i - i % 2)
        rng.random()  # the kind draw, unused: an original is always clean
        original = self.make(rng, self.lex, "clean")
        if i % 2 == 0:
            return original, original.label, "strong", ""
        rng = self._rng(i)
        text = near_duplicate(rng, original.text, self.neutral)
        label = flip_uniform(rng, original.label, self.plan.n_labels)
        copy = Example(text, label, "mislabeled", original.text_pair)
        return copy, label, "strong", "duplicate"

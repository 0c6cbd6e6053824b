"""Mixtures: several members of one axis trained together, plus evaluation-only OOD members.

A mixture with one member is the single-setting case; everything else is the same.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
from datasets import Dataset, Features, Value, concatenate_datasets

from soi_mlflow.common.seeds import check_seed
from soi_mlflow.data.in_memory import in_memory_dataset
from soi_mlflow.data.loaders import load_member
from soi_mlflow.data.spec import SuiteSpec, check_axis, check_member_name
from soi_mlflow.data.suites import SuiteRef, get_suite
from soi_mlflow.errors import SoiInputError

Sampling = Literal["proportional", "uniform", "temperature"]
SAMPLING: tuple[str, ...] = get_args(Sampling)
# Evaluation splits: ID members' validation and test sets, OOD members' test sets.
EVAL_SPLITS = ("validation", "test", "ood")
_COMMON = Features(
    {
        "example_id": Value("int64"),
        "member": Value("string"),
        "text": Value("string"),
        "text_pair": Value("string"),
        "label": Value("int64"),
        "member_idx": Value("int32"),
        "task_idx": Value("int32"),
    }
)


@dataclass(frozen=True)
class MixtureSpec:
    """What to train on: members of one axis, OOD members, sampling and subsampling.

    Left out, ``axis``, ``members`` and ``ood`` come from the suite's defaults (its
    ``defaults:`` block, else every member of the axis), so ``MixtureSpec()`` is the
    built-in suite's default mixture. The field docstrings are the command line's help."""

    suite: SuiteRef = "builtin"
    """builtin, a preset (glue_multitask, multisource_sentiment, massive_intent) or a suite
    YAML file"""
    axis: str | None = None
    """task, source or lang (default: the suite's)"""
    members: tuple[str, ...] | None = None
    """members trained on together; one member = single-setting (default: the suite's)"""
    ood: tuple[str, ...] | None = None
    """members evaluated but not trained on (default: the suite's when members are too)"""
    sampling: Sampling = "proportional"
    """how members share a training epoch: proportional, uniform or temperature"""
    temperature: float = 2.0
    """sampling temperature, for sampling: temperature"""
    max_examples: int | None = None
    """training examples per member (default: all)"""
    data_seed: int = 0
    """seed of the max_examples draw"""
    data_dir: str | Path | None = None
    """folder with local copies of a preset's hub data sets"""
    eval_max_examples: int | None = None
    """validation/test/OOD examples per member (default: all)"""
    train_ids: frozenset[int] | None = field(default=None, metadata={"cli": False})
    """keep only these training examples (stage 2)"""
    member_max_examples: tuple[tuple[str, int], ...] = field(default=(), metadata={"cli": False})
    """per-member max_examples overrides (learning curves)"""

    def __post_init__(self) -> None:
        if self.axis is None or self.members is None or self.ood is None:
            _fill_from_suite(self)

    @property
    def setting(self) -> str:
        return "single" if len(self.members) == 1 else "multi"


def _fill_from_suite(spec: MixtureSpec) -> None:
    """Fill a spec's left-out axis, members and ood from its suite's defaults."""
    suite = get_suite(spec.suite, spec.data_dir)
    axis = spec.axis or suite.defaults.get("axis")
    if axis is None:
        raise SoiInputError(f"axis is needed: suite {suite.name!r} has no default axis")
    same_axis = suite.defaults.get("axis") == axis
    members = spec.members
    if members is None:
        members = tuple(
            suite.defaults["members"]
            if same_axis and suite.defaults.get("members")
            else suite.on_axis(axis)
        )
    ood = spec.ood
    if ood is None:
        ood = tuple(suite.defaults.get("ood", ())) if spec.members is None and same_axis else ()
    object.__setattr__(spec, "axis", axis)
    object.__setattr__(spec, "members", tuple(members))
    object.__setattr__(spec, "ood", tuple(ood))


def validate_mixture(spec: MixtureSpec) -> SuiteSpec:
    """Check every name in ``spec`` before anything is loaded; returns the suite."""
    check_axis(spec.axis)
    suite = get_suite(spec.suite, spec.data_dir)
    if not spec.members:
        raise SoiInputError("members: at least one member is needed")
    for group, names in (("members", spec.members), ("ood", spec.ood)):
        dupes = sorted({m for m in names if names.count(m) > 1})
        if dupes:
            raise SoiInputError(f"{group}: member(s) listed twice: {', '.join(dupes)}")
        for m in names:
            check_member_name(m, group)
            suite.member(m, spec.axis)
    both = sorted(set(spec.members) & set(spec.ood))
    if both:
        raise SoiInputError(f"ood: {', '.join(both)} cannot be both trained on and held out")
    if spec.sampling not in SAMPLING:
        raise SoiInputError(
            f"sampling: expected one of {', '.join(SAMPLING)}, got {spec.sampling!r}"
        )
    for name in ("max_examples", "eval_max_examples"):
        value = getattr(spec, name)
        if value is not None and value <= 0:
            raise SoiInputError(f"{name} must be a positive integer, got {value!r}")
    check_seed(spec.data_seed, "data_seed")
    if not spec.temperature > 0:
        raise SoiInputError(f"temperature must be > 0, got {spec.temperature!r}")
    return suite


class Mixture:
    """The loaded data of a :class:`MixtureSpec`: train set, evaluation sets, tasks."""

    def __init__(self, spec: MixtureSpec) -> None:
        self.spec = spec
        self.suite = validate_mixture(spec)
        self._loaded: dict[tuple[str, str], Dataset] = {}

    # -- names ------------------------------------------------------------------------
    @property
    def all_members(self) -> tuple[str, ...]:
        """Trained members first, then OOD members: the order of member indices."""
        return self.spec.members + self.spec.ood

    @cached_property
    def tasks(self) -> dict[str, tuple[str, ...]]:
        """Task name -> label names, in first-seen order; source/lang members share one."""
        out: dict[str, tuple[str, ...]] = {}
        for m in self.all_members:
            ds = self._load(m, "train" if m in self.spec.members else "test")
            names = tuple(ds.features["label"].names)
            task = self.suite.member(m).task
            if task in out and out[task] != names:
                raise SoiInputError(
                    f"members of task {task!r} disagree on label names: {out[task]} vs {names}"
                )
            out.setdefault(task, names)
        return out

    def member_index(self, member: str) -> int:
        return self.all_members.index(member)

    def task_index(self, member: str) -> int:
        return list(self.tasks).index(self.suite.member(member).task)

    # -- data -------------------------------------------------------------------------
    def _load(self, member: str, split: str) -> Dataset:
        key = (member, split)
        cache = self._loaded
        if key not in cache:
            overrides = dict(self.spec.member_max_examples)
            limit = (
                overrides.get(member, self.spec.max_examples)
                if split == "train"
                else self.spec.eval_max_examples
            )
            cache[key] = load_member(
                self.suite, member, split, seed=self.spec.data_seed, max_examples=limit
            )
        return cache[key]

    def _view(self, ds: Dataset, member: str) -> Dataset:
        """The columns the model needs, the same for every member, so members mix."""
        n = len(ds)
        columns = ds.column_names
        data = {
            "example_id": ds["example_id"],
            "member": ds["member"],
            "text": ds["text"],
            "text_pair": ds["text_pair"] if "text_pair" in columns else [None] * n,
            "label": ds["label"],
            "member_idx": [self.member_index(member)] * n,
            "task_idx": [self.task_index(member)] * n,
        }
        return in_memory_dataset(data, _COMMON)

    @cached_property
    def train(self) -> Dataset:
        """All trained members' training examples, member after member."""
        parts = [self._view(self._load(m, "train"), m) for m in self.spec.members]
        train = concatenate_datasets(parts)
        if self.spec.train_ids is not None:
            keep = np.isin(
                np.asarray(train["example_id"]), np.fromiter(self.spec.train_ids, np.int64)
            )
            if not keep.any():
                raise SoiInputError("the selected training examples are not in this mixture")
            train = train.select(np.flatnonzero(keep))
        ids = np.asarray(train["example_id"])
        if len(np.unique(ids)) != len(ids):
            raise SoiInputError(
                "the training examples do not have unique example ids (duplicated content "
                "with id_from: content, or two data sets with the same identity)"
            )
        return train

    def eval_set(self, split: str, member: str) -> Dataset:
        """``validation``/``test`` for a trained member, ``ood`` (its test split) for an OOD one."""
        if split not in EVAL_SPLITS:
            raise SoiInputError(
                f"unknown evaluation split {split!r}; expected {', '.join(EVAL_SPLITS)}"
            )
        wanted = self.spec.ood if split == "ood" else self.spec.members
        if member not in wanted:
            raise SoiInputError(f"member {member!r} is not in the {split!r} evaluation sets")
        source = "test" if split == "ood" else split
        return self._view(self._load(member, source), member)

    def eval_keys(self) -> list[tuple[str, str]]:
        """The (split, member) of every evaluation set, in order, without building them."""
        return [
            (split, m)
            for split in EVAL_SPLITS
            for m in (self.spec.ood if split == "ood" else self.spec.members)
        ]

    def eval_sets(self) -> dict[tuple[str, str], Dataset]:
        """Every evaluation set, keyed by (split, member)."""
        return {(split, m): self.eval_set(split, m) for split, m in self.eval_keys()}

    def example_table(self, split: str) -> pd.DataFrame:
        """The examples of one split with label names and metadata (the run's example table)."""
        if split == "train":
            pairs = [(m, "train") for m in self.spec.members]
        elif split == "ood":
            pairs = [(m, "test") for m in self.spec.ood]
        elif split in EVAL_SPLITS:
            pairs = [(m, split) for m in self.spec.members]
        else:
            raise SoiInputError(
                f"unknown split {split!r}; expected train or {', '.join(EVAL_SPLITS)}"
            )
        frames = []
        for member, source in pairs:
            ds = self._load(member, source)
            frame = ds.to_pandas()
            if split == "train" and self.spec.train_ids is not None:
                frame = frame[frame["example_id"].isin(self.spec.train_ids)].reset_index(drop=True)
            frame.insert(
                frame.columns.get_loc("label") + 1,
                "label_name",
                [ds.features["label"].names[i] for i in frame["label"]],
            )
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    # -- sampling ---------------------------------------------------------------------
    def member_sizes(self) -> dict[str, int]:
        counts = np.bincount(np.asarray(self.train["member_idx"]), minlength=len(self.spec.members))
        return {m: int(counts[i]) for i, m in enumerate(self.spec.members)}

    def member_weights(self) -> dict[str, float]:
        """Sampling probability of each trained member."""
        sizes = np.array(list(self.member_sizes().values()), dtype=float)
        if self.spec.sampling == "proportional":
            w = sizes
        elif self.spec.sampling == "uniform":
            w = np.ones_like(sizes)
        else:
            w = sizes ** (1.0 / self.spec.temperature)
        return dict(zip(self.spec.members, (w / w.sum()).tolist(), strict=True))

    def epoch_order(self, epoch: int, seed: int) -> np.ndarray:
        """Positions in :attr:`train` for one epoch, shuffled.

        Proportional sampling visits every example once. Uniform and temperature sampling
        keep the epoch length and give each member its share; a member then cycles through
        its own shuffled examples across epochs, so every example keeps being visited.
        """
        rng = np.random.default_rng([seed, epoch, 0xE0C])
        total = len(self.train)
        if self.spec.sampling == "proportional":
            return rng.permutation(total)
        sizes = self.member_sizes()
        offsets = np.cumsum([0, *sizes.values()])[:-1]
        weights = self.member_weights()
        quotas = _quotas([weights[m] for m in self.spec.members], total)
        chosen = []
        for k, m in enumerate(self.spec.members):
            n, q = sizes[m], quotas[k]
            start = epoch * q
            laps = range(start // n, (start + q - 1) // n + 1) if q else range(0)
            stream = (
                np.concatenate(
                    [
                        np.random.default_rng([seed, zlib.crc32(m.encode()), lap]).permutation(n)
                        for lap in laps
                    ]
                )
                if q
                else np.empty(0, dtype=np.int64)
            )
            first = start - (start // n) * n
            chosen.append(offsets[k] + stream[first : first + q])
        order = np.concatenate(chosen)
        return order[rng.permutation(len(order))]


def _quotas(weights: list[float], total: int) -> list[int]:
    """Integer shares of ``total`` proportional to ``weights`` (largest remainders)."""
    raw = np.asarray(weights) * total
    base = np.floor(raw).astype(int)
    rest = total - base.sum()
    base[np.argsort(-(raw - base), kind="stable")[:rest]] += 1
    return base.tolist()

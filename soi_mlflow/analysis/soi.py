"""Subsets of Interest (docs/design.md): taxonomies as data, the default one, assignment.

A taxonomy is an ordered list of (subset name, rule). A rule is a boolean expression over
the per-example features of ``cartography.dynamics`` plus ``epochs`` and ``split`` (the
split epoch): comparisons, ``and``/``or``/``not``, arithmetic, names and numbers, evaluated
on whole columns by a small safe evaluator (no calls, no attributes). The first rule that
holds names the subset, so a taxonomy always partitions the examples (those no rule
matches are ``unassigned``). Features are computed over the epochs an example was
observed in (``n_observed``; every epoch unless sampling skips examples, see
``matrix.py``); an example with fewer observations than the stated minimum is put in
``too_few_epochs`` before any rule runs, so it is counted, never dropped. ``epochs`` is the
run's number of epochs; a rule that means "every observed epoch" should compare with
``n_observed``, as the default taxonomy does.
Register your own with :func:`register_taxonomy`; every analysis takes a taxonomy name.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from soi_mlflow.analysis.matrix import MIN_OBSERVED, required_observations
from soi_mlflow.errors import SoiInputError

UNASSIGNED = "unassigned"
TOO_FEW = "too_few_epochs"  # observed in fewer epochs than the stated minimum
FEATURES = (
    "confidence",
    "variability",
    "correctness",
    "forgetting_events",
    "first_learned_epoch",
    "n_correct",
    "last_correct",
    "n_observed",
    "epochs",
    "split",
)


@dataclass(frozen=True)
class Taxonomy:
    """A named, ordered set of rules; ``groups`` name unions of subsets (``forgettable``)."""

    name: str
    rules: tuple[tuple[str, str], ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def subsets(self) -> list[str]:
        return [name for name, _ in self.rules]

    def resolve(self, names: list[str]) -> list[str]:
        """Subset names, with group names expanded; unknown names are refused."""
        groups = dict(self.groups)
        out: list[str] = []
        for name in names:
            if name in groups:
                out += list(groups[name])
            elif name in self.subsets:
                out.append(name)
            else:
                known = ", ".join([*self.subsets, *groups])
                raise SoiInputError(
                    f"unknown subset {name!r} in taxonomy {self.name!r}; known: {known}"
                )
        return list(dict.fromkeys(out))


DEFAULT = Taxonomy(
    "default",
    (
        ("always_correct", "n_correct == n_observed"),
        ("never_learned", "n_correct == 0"),
        (
            "early_learned",
            "forgetting_events == 0 and first_learned_epoch > 1 and first_learned_epoch <= split",
        ),
        ("late_learned", "forgetting_events == 0 and first_learned_epoch > split"),
        ("forgotten", "forgetting_events > 0 and not last_correct"),
        ("relearned", "forgetting_events > 0 and last_correct"),
    ),
    groups=(("forgettable", ("forgotten", "relearned")), ("unlearned", ("never_learned",))),
)

_REGISTRY: dict[str, Taxonomy] = {"default": DEFAULT}


def register_taxonomy(taxonomy: Taxonomy) -> Taxonomy:
    """Make ``taxonomy`` available by name; its rules are checked on a small example."""
    probe = pd.DataFrame(
        {
            "confidence": [0.5],
            "variability": [0.1],
            "correctness": [0.5],
            "forgetting_events": [1],
            "first_learned_epoch": [1],
            "n_correct": [1],
            "last_correct": [True],
            "n_observed": [2],
        }
    )
    for name, rule in taxonomy.rules:
        try:
            _evaluate(probe, rule, epochs=2, split=1)
        except Exception as exc:
            raise SoiInputError(
                f"taxonomy {taxonomy.name!r}: rule of {name!r} ({rule!r}) fails: {exc}"
            ) from exc
    _REGISTRY[taxonomy.name] = taxonomy
    return taxonomy


def get_taxonomy(name: str | Taxonomy) -> Taxonomy:
    if isinstance(name, Taxonomy):
        return name
    if name not in _REGISTRY:
        raise SoiInputError(f"unknown taxonomy {name!r}; registered: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def default_split(epochs: int) -> int:
    """The split epoch between early and late learning: ceil(E / 2)."""
    return math.ceil(epochs / 2)


_COMPARE = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
_ARITH = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}


def _evaluate(features: pd.DataFrame, rule: str, epochs: int, split: int) -> np.ndarray:
    """A rule's truth value for every row; refuses anything but the allowed syntax."""
    scalars = {"epochs": epochs, "split": split}

    def value(node: ast.AST):
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.BoolOp):
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = value(node.values[0])
            for item in node.values[1:]:
                out = combine(out, value(item))
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return np.logical_not(value(node.operand))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return np.negative(value(node.operand))
        if isinstance(node, ast.Compare):
            out, left = None, value(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = value(right_node)
                part = _COMPARE[type(op)](left, right)
                out = part if out is None else np.logical_and(out, part)
                left = right
            return out
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return _ARITH[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.Name):
            if node.id in scalars:
                return scalars[node.id]
            if node.id in features.columns:
                return features[node.id].to_numpy()
            raise SoiInputError(f"unknown feature {node.id!r}; features: {', '.join(FEATURES)}")
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
            return node.value
        raise SoiInputError(f"rule {rule!r}: {type(node).__name__} is not allowed in a rule")

    try:
        tree = ast.parse(rule, mode="eval")
    except SyntaxError as exc:
        raise SoiInputError(f"rule {rule!r} is not a valid expression: {exc.msg}") from exc
    return np.broadcast_to(np.asarray(value(tree), dtype=bool), (len(features),))


def assign(
    features: pd.DataFrame,
    epochs: int,
    taxonomy: str | Taxonomy = "default",
    split: int | None = None,
    min_observed: int = MIN_OBSERVED,
) -> pd.Categorical:
    """The subset of each example (a categorical in the taxonomy's order, then
    ``unassigned`` and ``too_few_epochs``)."""
    tax = get_taxonomy(taxonomy)
    split = default_split(epochs) if split is None else split
    if not 0 <= split <= epochs:
        raise SoiInputError(
            f"split must be between 0 and the number of epochs ({epochs}), got {split}"
        )
    if min_observed < 1:
        raise SoiInputError(f"min_observed must be at least 1, got {min_observed}")
    if "n_observed" not in features.columns:  # a frame of fully observed examples
        features = features.assign(n_observed=epochs)
    codes = np.full(len(features), len(tax.rules), dtype=np.int16)
    free = features["n_observed"].to_numpy() >= required_observations(min_observed, epochs)
    codes[~free] = len(tax.rules) + 1
    for k, (_, rule) in enumerate(tax.rules):
        hit = free & _evaluate(features, rule, epochs, split)
        codes[hit] = k
        free &= ~hit
    categories = [*tax.subsets, UNASSIGNED, TOO_FEW]
    return pd.Categorical.from_codes(codes, categories=categories)

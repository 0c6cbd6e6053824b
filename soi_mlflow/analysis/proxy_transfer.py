"""Proxy transfer: how much a source's labels, learnt by a linear word model, help a linear
model of the target: an estimate of T from the data alone, before any training
(docs/studies.md, "Proxy transfer").

Surface similarity says whether two members *look* alike; it cannot tell a source whose
labels the target needs from one that merely shares its shape (pairs, two labels, topic
words). This factor asks the labels. Per member, on up to ``max_examples`` training
examples (a seeded sample), binary bag-of-words features over its ``max_words`` most
frequent words (the simple tokenisation of ``analysis/profiles.py``):

- a source's *scorer* is ridge regression of its centred one-hot labels (every class but
  the last) on its features, fitted on all its sampled examples;
- a target's *alone* proxy is the ``folds``-fold cross-validated accuracy of a ridge
  classifier (one-hot least squares, argmax) on the target's own features; *with* the
  source, the same classifier given the source scorer's outputs too, standardised: for a
  single text u = scorer(text); for a pair, as sentence-pair classifiers combine two
  encodings (InferSent's u, v, u * v, |u - v|), the four of scorer(text) and
  scorer(text_pair);
- ``proxy_transfer`` = with - alone (the folds are the same, so the difference is paired).

Positive when the source's labels say something about the target's labels that the
target's own words, linearly, do not: a sentiment source gives an entailment target the
polarity of premise and hypothesis, whose agreement a bag of words cannot express. A
target learnt alone already (its proxy near its ceiling) gets none, as trained transfer
does. It is a linear proxy: what a network learns from a source beyond its label-bearing
words (syntax, better representations of shared words) it does not see.

The extra features are few, so each fold's ridge solve reuses the Cholesky factor of the
target's own Gram matrix (a block solve): one factorisation per target and fold, whatever
the number of sources. Pure core on a frame of examples, no MLflow.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from soi_mlflow.analysis.profiles import _check, _split, _strings
from soi_mlflow.errors import SoiInputError

PROXY_TRANSFER = "proxy_transfer"  # the table the studies log, and the factor's column
COLUMNS = ["source", "target", "proxy_alone", "proxy_with_source", PROXY_TRANSFER, "n_target"]
MAX_EXAMPLES = 2000
MAX_WORDS = 1000
FOLDS = 3
RIDGE = 1.0  # the penalty of every ridge fit, on binary word features and z-scored scores
MIN_EXAMPLES = 12  # fewer examples in a member: its pairs are NaN


@dataclass
class _Member:
    """One member's sampled examples: token ids of text and pair, labels, its vocabulary."""

    text: tuple[np.ndarray, np.ndarray]  # (token ids, row of each token)
    pair: tuple[np.ndarray, np.ndarray] | None
    labels: np.ndarray  # class codes 0..k-1
    k: int
    vocab: np.ndarray  # the member's feature words (global ids), most frequent first
    local: np.ndarray  # global id -> feature column, -1 where not a feature

    @property
    def n(self) -> int:
        return len(self.labels)

    @cached_property
    def own_features(self) -> np.ndarray:
        """Text and pair over the member's own words: its scorer's and its classifier's
        input, built once."""
        return self.features()

    def features(self, which: str = "joined", of: _Member | None = None) -> np.ndarray:
        """Binary features (rows of ``self``) over ``of``'s vocabulary (default its own):
        of the text, the pair, or both ("joined")."""
        of = of or self
        parts = [self.text] if which == "text" else [self.pair] if which == "pair" else []
        if which == "joined":
            parts = [self.text] + ([self.pair] if self.pair is not None else [])
        out = np.zeros((self.n, len(of.vocab)))
        for part in parts:
            if part is None:
                continue
            ids, rows = part
            col = of.local[ids]
            hit = col >= 0
            out[rows[hit], col[hit]] = 1.0
        return out


def proxy_transfer(
    examples: pd.DataFrame,
    max_examples: int = MAX_EXAMPLES,
    max_words: int = MAX_WORDS,
    folds: int = FOLDS,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per ordered pair of distinct members of ``examples`` (``member, text,
    label_name``, optional ``text_pair``) with a labelled row: :data:`COLUMNS`,
    ``proxy_alone`` and ``proxy_with_source`` the target's cross-validated proxy
    accuracies, ``n_target`` the target examples used. NaN for a pair whose source or
    target has one class or fewer than :data:`MIN_EXAMPLES` examples. Rows without a
    ``label_name`` are left out (an unlabelled row teaches nothing)."""
    _check(examples)
    for name, value, low in (("max_examples", max_examples, MIN_EXAMPLES), ("folds", folds, 2)):
        if int(value) != value or value < low:
            raise SoiInputError(f"{name}: expected an integer of at least {low}, got {value!r}")
    if int(max_words) != max_words or max_words < 1:
        raise SoiInputError(f"max_words: expected a positive integer, got {max_words!r}")
    labelled = examples[examples["label_name"].notna()]  # an unlabelled row teaches nothing
    if labelled.empty:
        raise SoiInputError("examples: no row has a label_name")
    members = _members(labelled, int(max_examples), int(max_words), seed)
    scorers = {name: _scorer(m) for name, m in members.items()}
    rows = []
    for t_name, target in members.items():
        others = [s for s in members if s != t_name]
        usable = target.n >= MIN_EXAMPLES and target.k > 1
        if not usable:
            rows += [[s, t_name, np.nan, np.nan, np.nan, target.n] for s in others]
            continue
        extra = {s: _source_features(target, members[s], scorers[s]) for s in others}
        alone, withs = _cross_validated(target, extra, int(folds), seed)
        for s in others:
            gain = withs[s] - alone if np.isfinite(withs[s]) else np.nan
            rows.append([s, t_name, alone, withs[s], gain, target.n])
    return pd.DataFrame(rows, columns=COLUMNS)


def _members(examples: pd.DataFrame, cap: int, max_words: int, seed: int) -> dict[str, _Member]:
    """Sample, tokenise (one dictionary for all), and pick each member's feature words.
    A member's sample, and so each of its pairs' values, depends on its own rows, the seed
    and its name only, not on which other members the frame holds: the same pair gives
    the same value in every study."""
    picked = []
    for name, rows in examples.groupby("member", sort=False).indices.items():
        if len(rows) > cap:
            rng = np.random.default_rng([seed, zlib.crc32(str(name).encode("utf-8"))])
            rows = rows[np.sort(rng.choice(len(rows), size=cap, replace=False))]
        picked.append(rows)
    sample = examples.iloc[np.concatenate(picked)]
    texts = _strings(sample["text"].reset_index(drop=True))
    has_pair = "text_pair" in sample.columns
    pairs = _strings(sample["text_pair"].reset_index(drop=True)) if has_pair else None
    n = len(sample)
    both = pa.concat_arrays([texts, pairs]) if pairs is not None else texts
    flat, per_text = _split(pc.utf8_lower(pc.fill_null(both, "")))
    encoded = pc.dictionary_encode(flat)
    ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    words = np.asarray(pc.utf8_length(flat).to_numpy(zero_copy_only=False)) > 0
    owner = np.repeat(np.arange(len(both)), per_text)
    ids, owner = ids[words], owner[words]
    n_words = len(encoded.dictionary)
    # ties in frequency go by the word itself, not by where the dictionary met it first
    spelling = np.argsort(np.argsort(encoded.dictionary.to_numpy(zero_copy_only=False)))
    in_pair = owner >= n
    row = np.where(in_pair, owner - n, owner)
    codes, member_names = pd.factorize(sample["member"], sort=False)
    out: dict[str, _Member] = {}
    start = 0
    for code, name in enumerate(member_names):
        size = int(np.sum(codes == code))
        stop = start + size
        mine = (row >= start) & (row < stop)
        labels, _ = pd.factorize(sample["label_name"].iloc[start:stop], sort=True)
        counts = np.bincount(ids[mine], minlength=n_words)
        vocab = np.lexsort((spelling, -counts))[: min(max_words, int(np.sum(counts > 0)))]
        local = np.full(n_words, -1)
        local[vocab] = np.arange(len(vocab))
        text = mine & ~in_pair
        pair = mine & in_pair
        out[str(name)] = _Member(
            text=(ids[text], row[text] - start),
            pair=(ids[pair], row[pair] - start) if has_pair and pair.any() else None,
            labels=labels.astype(np.int64),
            k=int(labels.max()) + 1 if size else 0,
            vocab=vocab,
            local=local,
        )
        start = stop
    return out


def _onehot(labels: np.ndarray, k: int) -> np.ndarray:
    """One column per class, 1 in each row's class."""
    return np.eye(k)[labels]


def _scorer(member: _Member) -> tuple[np.ndarray, np.ndarray] | None:
    """(feature means, coefficients): ridge of the centred one-hot labels (all classes but
    the last: they sum to zero) on the member's features; None when it cannot score."""
    if member.n < MIN_EXAMPLES or member.k < 2 or len(member.vocab) == 0:
        return None
    x = member.own_features
    mean = x.mean(axis=0)
    xc = x - mean
    y = _onehot(member.labels, member.k)[:, :-1]
    y = y - y.mean(axis=0)
    gram = xc.T @ xc
    gram[np.diag_indices_from(gram)] += RIDGE
    return mean, np.linalg.solve(gram, xc.T @ y)


def _source_features(
    target: _Member, source: _Member, scorer: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray | None:
    """The source scorer's outputs on the target's rows, z-scored (constant columns
    dropped): u of the text, or u, v, u * v, |u - v| of a pair."""
    if scorer is None:
        return None
    mean, coef = scorer
    u = (target.features("text", of=source) - mean) @ coef
    if target.pair is None:
        feats = u
    else:
        v = (target.features("pair", of=source) - mean) @ coef
        feats = np.hstack([u, v, u * v, np.abs(u - v)])
    std = feats.std(axis=0)
    keep = std > 1e-9
    if not keep.any():
        return None
    return (feats[:, keep] - feats[:, keep].mean(axis=0)) / std[keep]


def _cross_validated(
    target: _Member, extra: dict[str, np.ndarray | None], folds: int, seed: int
) -> tuple[float, dict[str, float]]:
    """The target's proxy accuracy alone and with each source's features, over the same
    seeded folds; the ridge with extra columns is solved by blocks on the alone fit's
    Cholesky factor."""
    from scipy.linalg import cho_factor, cho_solve  # deferred: scipy

    x = target.own_features
    y = _onehot(target.labels, target.k)
    fold = np.random.default_rng(seed).permutation(target.n) % folds
    hits_alone = 0
    hits = {s: 0 for s in extra}
    for f in range(folds):
        train, test = fold != f, fold == f
        xm, ym = x[train].mean(axis=0), y[train].mean(axis=0)
        xc, yc = x[train] - xm, y[train] - ym
        gram = xc.T @ xc
        gram[np.diag_indices_from(gram)] += RIDGE
        factor = cho_factor(gram)
        xty = xc.T @ yc
        w = cho_solve(factor, xty)
        xt = x[test] - xm
        truth = target.labels[test]
        hits_alone += int(np.sum(np.argmax(xt @ w + ym, axis=1) == truth))
        for s, feats in extra.items():
            if feats is None:
                continue
            fm = feats[train].mean(axis=0)
            beta_x, beta_f = block_ridge(factor, xc, xty, w, feats[train] - fm, yc)
            scores = xt @ beta_x + (feats[test] - fm) @ beta_f + ym
            hits[s] += int(np.sum(np.argmax(scores, axis=1) == truth))
    alone = hits_alone / target.n
    return alone, {s: (hits[s] / target.n if extra[s] is not None else np.nan) for s in extra}


def block_ridge(
    factor: Any, xc: np.ndarray, xty: np.ndarray, w: np.ndarray, fc: np.ndarray, yc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge (penalty :data:`RIDGE`) of ``yc`` on the centred columns ``[xc, fc]``, given
    ``factor`` (the Cholesky factor of ``xc'xc + RIDGE I``), ``xty`` = ``xc'yc`` and ``w``
    (the fit on ``xc`` alone): the coefficients of ``xc`` and of ``fc``, by the Schur
    complement of the few extra columns, without factorising the joined matrix."""
    from scipy.linalg import cho_solve  # deferred: scipy

    cross = xc.T @ fc  # (words, extra)
    a_inv_b = cho_solve(factor, cross)
    schur = fc.T @ fc - cross.T @ a_inv_b
    schur[np.diag_indices_from(schur)] += RIDGE
    beta_f = np.linalg.solve(schur, fc.T @ yc - a_inv_b.T @ xty)
    return w - a_inv_b @ beta_f, beta_f

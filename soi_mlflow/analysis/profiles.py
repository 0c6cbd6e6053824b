"""Member profiles and pair similarity: the statistics of each member's training data (its
class distribution, lengths, vocabulary, linguistic rates) and the surface similarity of
each ordered pair of members, which the transfer study correlates with its matrix
(docs/design.md 2.5, "Why transfer happens"; docs/studies.md, "Member profiles").

Pure cores on a frame of examples (``member``, ``text``, ``text_pair`` (optional, may be
None), ``label_name``, optional ``task``), vectorised with pyarrow.compute and SciPy sparse
matrices: no Python loop over examples. Words are the documented simple tokenisation
(:data:`WORD_SPLIT`): the text (and its pair) lowercased, split into maximal runs of
Unicode letters (with their combining marks), digits and underscore. Logarithms: class
entropy in bits (log 2), the Jensen-Shannon divergence in nats (natural log, so at most
ln 2).

The factors from each member's own single run (``difficulty_error``,
``never_learned_share``, ``noise_share``) are in :mod:`~soi_mlflow.analysis.run_factors`:
they read runs, these read data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from soi_mlflow.errors import SoiInputError

# RE2 (pyarrow.compute): what separates words besides ASCII white space (everything that is
# not a Unicode letter, combining mark, digit, underscore or ASCII white space, Unicode
# spaces included), replaced by a space before the text is split at ASCII white space (the
# fast split). Scripts written without spaces (Chinese, Japanese, Thai) give one "word" per
# run of letters.
WORD_SPLIT = r"[^\p{L}\p{M}\p{N}_ \t\n\r\f\v]+"
QUESTION = r"[?¿？؟]"


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Negation words per language (ISO 639-1), matched as whole lowercased words; English
# also matches the contraction "n't". Another language code gives NaN negation_rate.
NEGATION: dict[str, frozenset[str]] = {
    "en": _word_set("not no never none nothing nobody nowhere neither nor cannot without"),
    "de": _word_set(
        "nicht kein keine keinen keinem keiner keines nie niemals nichts niemand "
        "nirgends nirgendwo weder ohne"
    ),
    "fr": _word_set("ne n pas jamais rien aucun aucune ni sans nul nulle guère"),
    "es": _word_set("no nunca jamás nada nadie ninguno ninguna ningún ni tampoco sin"),
}
# the tables the transfer study logs into its parent (tables/<name>.parquet and .json)
MEMBER_PROFILES, CLASS_SHARES, PAIR_SIMILARITY = (
    "member_profiles",
    "class_shares",
    "pair_similarity",
)
PROFILE_COLUMNS = (
    "size",
    "n_classes",
    "class_entropy",
    "majority_share",
    "tokens_mean",
    "tokens_median",
    "tokens_p90",
    "chars_mean",
    "pair_share",
    "vocab_size",
    "type_token_ratio",
    "question_rate",
    "negation_rate",
    "digit_rate",
    "uppercase_rate",
    "punctuation_rate",
)
PAIR_COLUMNS = (
    "vocab_jaccard",
    "vocab_weighted_jaccard",
    "unigram_jsd",
    "tfidf_cosine",
    "label_overlap",
    "class_distribution_l1",
)


def _check(examples: pd.DataFrame) -> None:
    if not isinstance(examples, pd.DataFrame):
        raise SoiInputError(f"examples must be a pandas DataFrame, got {type(examples).__name__}")
    missing = [c for c in ("member", "text", "label_name") if c not in examples.columns]
    if missing:
        raise SoiInputError(f"examples: missing column(s) {', '.join(missing)}")
    if examples.empty:
        raise SoiInputError("examples: no rows")


def _strings(values: pd.Series) -> pa.Array:
    try:
        array = pa.array(values, type=pa.large_string(), from_pandas=True)
        return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SoiInputError(f"examples: column {values.name!r} must hold strings") from exc


def _split(lower: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The words of each text of ``lower`` (:data:`WORD_SPLIT`): flat, and per text."""
    spaced = pc.ascii_trim_whitespace(pc.replace_substring_regex(lower, WORD_SPLIT, " "))
    lists = pc.ascii_split_whitespace(spaced)
    return pc.list_flatten(lists), pc.list_value_length(lists).to_numpy(zero_copy_only=False)


def _split_in_threads(lower: pa.Array, parts: int) -> tuple[pa.Array, np.ndarray]:
    """:func:`_split` on ``parts`` slices at once (pyarrow's kernels release the GIL)."""
    if parts < 2 or len(lower) < 20_000:
        return _split(lower)
    step = -(-len(lower) // parts)
    slices = [lower.slice(i, step) for i in range(0, len(lower), step)]
    with ThreadPoolExecutor(max_workers=parts) as pool:
        done = list(pool.map(_split, slices))
    return pa.concat_arrays([f for f, _ in done]), np.concatenate([c for _, c in done])


class _Words:
    """The tokenised frame: member codes, per-example word lists as sparse counts."""

    def __init__(self, examples: pd.DataFrame) -> None:
        from scipy import sparse  # deferred: scipy

        _check(examples)
        self.codes, uniques = pd.factorize(examples["member"], sort=False)
        self.members = list(uniques)
        n, k = len(examples), len(self.members)
        text = pc.fill_null(_strings(examples["text"]), "")
        if "text_pair" in examples.columns:
            pair = _strings(examples["text_pair"])
            self.has_pair = pc.fill_null(pc.greater(pc.utf8_length(pair), 0), False)
            pair = pc.fill_null(pair, "")
            self.joined = pc.if_else(
                self.has_pair,
                pc.binary_join_element_wise(text, pair, pa.scalar("\n", pa.large_string())),
                text,
            )
        else:
            self.has_pair = pa.array(np.zeros(n, bool))
            self.joined = text
        self.lower = pc.utf8_lower(self.joined)
        flat, per_text = _split_in_threads(self.lower, min(4, os.cpu_count() or 1))
        lengths = pc.utf8_length(flat).to_numpy(zero_copy_only=False)
        encoded = pc.dictionary_encode(flat)
        self.vocab = encoded.dictionary.to_numpy(zero_copy_only=False)
        token = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)  # writable
        parent = np.repeat(np.arange(n), per_text)
        keep = lengths > 0  # an empty text splits into one empty string
        if not keep.all():
            token, parent, lengths = token[keep], parent[keep], lengths[keep]
        self.parent, self.token = parent, token
        self.words = np.bincount(parent, minlength=n)
        self.word_chars = np.bincount(parent, weights=lengths, minlength=n)
        # example x word counts (rows in order: CSR built directly), member x word counts
        indptr = np.concatenate([[0], np.cumsum(self.words)])
        shape = (n, len(self.vocab))
        self.x = sparse.csr_matrix((np.ones(len(token)), token, indptr), shape=shape)
        self.x.sum_duplicates()
        member = sparse.csr_matrix((np.ones(n), (self.codes, np.arange(n))), shape=(k, n))
        self.counts = (member @ self.x).tocsr()


def _per_member(values: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``values`` per member code."""
    return np.bincount(codes, weights=values, minlength=k) / np.bincount(codes, minlength=k)


def _negation(words: _Words, languages: str | Mapping[str, str]) -> np.ndarray:
    """Per example: 1 if it has a negation word of its member's language, NaN for a
    language without a list."""
    lang = [
        languages if isinstance(languages, str) else languages.get(m, "en") for m in words.members
    ]
    n = len(words.codes)
    hit = np.zeros(n)
    unknown = np.array([code not in NEGATION for code in lang])
    vocab = pa.array(words.vocab, type=pa.large_string())
    for code in sorted(set(lang) & set(NEGATION)):
        in_list = pc.is_in(vocab, pa.array(sorted(NEGATION[code]))).to_numpy(zero_copy_only=False)
        member_has = np.array([lang_m == code for lang_m in lang])
        tokens = in_list[words.token] & member_has[words.codes[words.parent]]
        hit += np.bincount(words.parent[tokens], minlength=n)
        if code == "en":
            rows = member_has[words.codes]
            contraction = pc.match_substring_regex(words.lower, r"n['’]t\b").to_numpy(
                zero_copy_only=False
            )
            hit += contraction & rows
    out = (hit > 0).astype(float)
    out[unknown[words.codes]] = np.nan
    return out


def class_shares(examples: pd.DataFrame) -> pd.DataFrame:
    """Long table ``member, label_name, count, share`` (share of the member's examples)."""
    _check(examples)
    counts = examples.groupby(["member", "label_name"], sort=False).size().rename("count")
    out = counts.reset_index()
    out["share"] = out["count"] / out.groupby("member", sort=False)["count"].transform("sum")
    return out


def member_profiles(
    examples: pd.DataFrame,
    token_lengths: Sequence[float] | np.ndarray | pd.Series | None = None,
    languages: str | Mapping[str, str] = "en",
) -> pd.DataFrame:
    """One row per member (index ``member``, first-seen order), one numeric column per
    factor (:data:`PROFILE_COLUMNS`; docs/studies.md, "Member profiles").

    ``token_lengths``: one length per example (the model tokenizer's tokens), else the
    word counts of the simple tokenisation. ``languages``: a language code for every
    member, or member -> code (missing members: ``en``); it selects the negation list."""
    return _profiles(_Words(examples), examples, token_lengths, languages)


def profile_tables(
    examples: pd.DataFrame,
    token_lengths: Sequence[float] | np.ndarray | pd.Series | None = None,
    languages: str | Mapping[str, str] = "en",
) -> dict[str, pd.DataFrame]:
    """:func:`member_profiles`, :func:`class_shares` and :func:`pair_similarity` of
    ``examples`` with one tokenisation, keyed by those names."""
    words = _Words(examples)
    return {
        MEMBER_PROFILES: _profiles(words, examples, token_lengths, languages),
        CLASS_SHARES: class_shares(examples),
        PAIR_SIMILARITY: _pairs(words, examples),
    }


def _profiles(words: _Words, examples: pd.DataFrame, token_lengths, languages) -> pd.DataFrame:
    k, codes = len(words.members), words.codes
    n = len(examples)
    if token_lengths is None:
        tokens = words.words.astype(float)
    else:
        tokens = np.asarray(token_lengths, dtype=float)
        if tokens.shape != (n,):
            raise SoiInputError(f"token_lengths: expected {n} lengths, got {tokens.shape}")
    shares = class_shares(examples)
    p = shares["share"].to_numpy()
    shares = shares.assign(h=p * np.log2(1.0 / p))
    by_member = shares.groupby("member", sort=False)
    frame = pd.DataFrame({"member": codes, "tokens": tokens, "chars": _chars(examples)}).groupby(
        "member"
    )
    length = pc.utf8_length(words.joined).to_numpy(zero_copy_only=False).astype(float)
    upper = _count(words.joined, r"\p{Lu}")
    punct = _count(words.joined, r"\p{P}")
    vocab = np.asarray((words.counts > 0).sum(axis=1)).ravel().astype(float)
    total_words = np.bincount(codes, weights=words.words, minlength=k)
    out = pd.DataFrame(
        {
            "size": np.bincount(codes, minlength=k).astype(float),
            "n_classes": by_member.size().reindex(words.members).to_numpy(dtype=float),
            "class_entropy": by_member["h"].sum().reindex(words.members).to_numpy(),
            "majority_share": by_member["share"].max().reindex(words.members).to_numpy(),
            "tokens_mean": frame["tokens"].mean().to_numpy(),
            "tokens_median": frame["tokens"].median().to_numpy(),
            "tokens_p90": frame["tokens"].quantile(0.9).to_numpy(),
            "chars_mean": frame["chars"].mean().to_numpy(),
            "pair_share": _per_member(
                words.has_pair.to_numpy(zero_copy_only=False).astype(float), codes, k
            ),
            "vocab_size": vocab,
            "type_token_ratio": np.divide(
                vocab, total_words, out=np.full(k, np.nan), where=total_words > 0
            ),
            "question_rate": _per_member(_matches(words.joined, QUESTION), codes, k),
            "negation_rate": _per_member(_negation(words, languages), codes, k),
            "digit_rate": _per_member(_matches(words.joined, r"\p{Nd}"), codes, k),
            "uppercase_rate": _ratio(upper, words.word_chars, codes, k),
            "punctuation_rate": _ratio(punct, length, codes, k),
        },
        index=pd.Index(words.members, name="member"),
    )
    return out


def _chars(examples: pd.DataFrame) -> np.ndarray:
    chars = pc.utf8_length(pc.fill_null(_strings(examples["text"]), "")).to_numpy()
    if "text_pair" in examples.columns:
        pair = pc.utf8_length(pc.fill_null(_strings(examples["text_pair"]), "")).to_numpy()
        chars = chars + pair
    return chars.astype(float)


def _count(text: pa.Array, pattern: str) -> np.ndarray:
    return pc.count_substring_regex(text, pattern).to_numpy(zero_copy_only=False).astype(float)


def _matches(text: pa.Array, pattern: str) -> np.ndarray:
    return pc.match_substring_regex(text, pattern).to_numpy(zero_copy_only=False).astype(float)


def _ratio(num: np.ndarray, den: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """Sum of ``num`` over sum of ``den`` per member (NaN where ``den`` sums to 0)."""
    top = np.bincount(codes, weights=num, minlength=k)
    bottom = np.bincount(codes, weights=den, minlength=k)
    return np.divide(top, bottom, out=np.full(k, np.nan), where=bottom > 0)


def _tfidf_centroids(words: _Words) -> np.ndarray:
    """Per member, the mean of its examples' TF-IDF vectors (raw counts times smoothed IDF
    ln((1 + n) / (1 + df)) + 1 over all examples of the frame, each row L2-normalised, as
    scikit-learn's TfidfVectorizer defaults), dense (members x words)."""
    from scipy import sparse  # deferred: scipy

    x = words.x.copy()
    n = x.shape[0]
    df = np.bincount(x.indices, minlength=x.shape[1])
    x.data = x.data * (np.log((1.0 + n) / (1.0 + df)) + 1.0)[x.indices]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    x = sparse.diags(np.divide(1.0, norms, out=np.zeros(n), where=norms > 0)) @ x
    k = len(words.members)
    sizes = np.bincount(words.codes, minlength=k).astype(float)
    member = sparse.csr_matrix((1.0 / sizes[words.codes], (words.codes, np.arange(n))), (k, n))
    return np.asarray((member @ x).todense())


def _heads(examples: pd.DataFrame, members: list[str], labels: dict[str, set]) -> list:
    """Each member's head: its ``task`` (first value), else its set of label names."""
    if "task" in examples.columns:
        task = examples.groupby("member", sort=False)["task"].first()
        return [task[m] for m in members]
    return [frozenset(labels[m]) for m in members]


def pair_similarity(examples: pd.DataFrame) -> pd.DataFrame:
    """One row per ordered pair (source, target) of distinct members, columns
    ``source, target`` then :data:`PAIR_COLUMNS` (docs/studies.md, "Member profiles")."""
    return _pairs(_Words(examples), examples)


def _pairs(words: _Words, examples: pd.DataFrame) -> pd.DataFrame:
    members, k = words.members, len(words.members)
    counts = words.counts
    totals = np.asarray(counts.sum(axis=1)).ravel()
    probs = np.asarray(counts.todense()) / np.where(totals > 0, totals, 1)[:, None]
    present = probs > 0
    centroids = _tfidf_centroids(words)
    norms = np.linalg.norm(centroids, axis=1)
    shares = class_shares(examples)
    dist = shares.pivot(index="member", columns="label_name", values="share").fillna(0.0)
    labels = {m: set(g["label_name"]) for m, g in shares.groupby("member", sort=False)}
    heads = _heads(examples, members, labels)
    rows = []
    for i in range(k):
        for j in range(k):
            if i == j:
                continue
            p, q = probs[i], probs[j]
            union = np.sum(present[i] | present[j])
            m = (p + q) / 2
            rows.append(
                {
                    "source": members[i],
                    "target": members[j],
                    "vocab_jaccard": np.sum(present[i] & present[j]) / union if union else np.nan,
                    "vocab_weighted_jaccard": (
                        np.minimum(p, q).sum() / np.maximum(p, q).sum() if union else np.nan
                    ),
                    "unigram_jsd": 0.5 * _kl(p, m) + 0.5 * _kl(q, m) if union else np.nan,
                    "tfidf_cosine": (
                        centroids[i] @ centroids[j] / (norms[i] * norms[j])
                        if norms[i] > 0 and norms[j] > 0
                        else np.nan
                    ),
                    "label_overlap": len(labels[members[i]] & labels[members[j]])
                    / len(labels[members[j]]),
                    "class_distribution_l1": (
                        float(np.abs(dist.loc[members[i]] - dist.loc[members[j]]).sum())
                        if heads[i] == heads[j]
                        else np.nan
                    ),
                }
            )
    return pd.DataFrame(rows, columns=["source", "target", *PAIR_COLUMNS])


def _kl(p: np.ndarray, m: np.ndarray) -> float:
    """KL(p || m) in nats, over p's support (m > 0 there)."""
    s = p > 0
    return float(np.sum(p[s] * np.log(p[s] / m[s])))

"""Cost of member profiles and pair similarity (``soi_mlflow.analysis.profiles``) and of
the proxy transfer (``soi_mlflow.analysis.proxy_transfer``).

Synthetic members (Zipf-distributed words from a shared vocabulary, a few with a text
pair, capitals, digits, questions and negations), profiled with the vectorised cores;
then a plain per-example Python loop over one member's first examples, for comparison
(extrapolated to the same number of examples). Target (issue #25): 10 members x 100k
examples in under 30 s on 2 CPU cores.

    .venv/bin/python bench/profiles.py [--members 10] [--examples 100000] [--naive 10000]
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
import pandas as pd

from soi_mlflow.analysis.profiles import NEGATION, member_profiles, pair_similarity, profile_tables
from soi_mlflow.analysis.proxy_transfer import MAX_EXAMPLES, proxy_transfer


def synthetic(members: int, examples: int, seed: int = 0) -> pd.DataFrame:
    """``members`` x ``examples`` examples of 4 to 30 words, member-specific word skew."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(30_000)] + ["not", "never", "Why", "42", "?"])
    frames = []
    for m in range(members):
        lengths = rng.integers(4, 31, examples)
        ids = (rng.zipf(1.3, lengths.sum()) + 37 * m) % len(vocab)
        words = vocab[ids]
        cuts = np.cumsum(lengths)[:-1]
        text = [" ".join(w) for w in np.split(words, cuts)]
        pair = np.where(rng.random(examples) < 0.2 * (m % 2), "a second text, here", None)
        label = rng.choice(["neg", "pos", "neutral"][: 2 + m % 2], examples)
        frames.append(
            pd.DataFrame({"member": f"m{m}", "text": text, "text_pair": pair, "label_name": label})
        )
    return pd.concat(frames, ignore_index=True)


def naive(examples: pd.DataFrame) -> dict:
    """The per-example profile of one member with a Python loop (the reference cost)."""
    vocab: set[str] = set()
    n_words = questions = negations = 0
    for text, pair in zip(examples["text"], examples["text_pair"], strict=True):
        full = text if not isinstance(pair, str) else f"{text}\n{pair}"
        words = re.findall(r"[^\W]+", full.lower())
        vocab.update(words)
        n_words += len(words)
        questions += "?" in full
        negations += any(w in NEGATION["en"] for w in words)
    return {"vocab": len(vocab), "words": n_words, "q": questions, "neg": negations}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--examples", type=int, default=100_000, help="examples per member")
    parser.add_argument("--naive", type=int, default=10_000, help="examples in the loop")
    args = parser.parse_args()
    start = time.perf_counter()
    frame = synthetic(args.members, args.examples)
    print(f"built {len(frame):,} examples in {time.perf_counter() - start:.1f} s")
    profile_tables(frame.head(1000))  # warm-up: SciPy's import, pyarrow's kernels
    start = time.perf_counter()
    profiles = member_profiles(frame)
    t_profiles = time.perf_counter() - start
    start = time.perf_counter()
    pairs = pair_similarity(frame)
    t_pairs = time.perf_counter() - start
    total = t_profiles + t_pairs
    print(
        f"member_profiles {t_profiles:.1f} s, pair_similarity {t_pairs:.1f} s "
        f"({len(pairs)} ordered pairs): {total:.1f} s for {args.members} x "
        f"{args.examples:,} examples ({len(frame) / total:,.0f} examples/s)"
    )
    part = frame[frame["member"] == "m0"].head(args.naive)
    start = time.perf_counter()
    naive(part)
    t_naive = (time.perf_counter() - start) * len(frame) / len(part)
    print(
        f"a per-example Python loop (words, vocabulary, question and negation only), "
        f"extrapolated from {len(part):,} examples: {t_naive:.1f} s for all "
        f"({t_naive / t_profiles:.1f}x member_profiles)"
    )
    start = time.perf_counter()
    profile_tables(frame)
    t_tables = time.perf_counter() - start
    print(f"profile_tables (both, one tokenisation): {t_tables:.1f} s")
    start = time.perf_counter()
    gains = proxy_transfer(frame)
    t_proxy = time.perf_counter() - start
    print(
        f"proxy_transfer ({len(gains)} ordered pairs, {MAX_EXAMPLES:,} examples a member): "
        f"{t_proxy:.1f} s; what a study logs (profile_tables + proxy_transfer): "
        f"{t_tables + t_proxy:.1f} s (target: under 30 s)"
    )
    print(profiles.iloc[:3, :8].round(3).to_string())


if __name__ == "__main__":
    main()

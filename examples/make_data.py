"""The examples' data: book reviews from soi-mlflow's built-in suite, written as CSV files
(``text``, ``label``) the way a user's own data set would arrive.

``SOI_EXAMPLES_N`` sets the number of training examples (default 256; validation gets
half as many): the tests run the examples with fewer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from soi_mlflow.data import load_member

SIZE = int(os.environ.get("SOI_EXAMPLES_N", "256"))
EPOCHS = 2
MAX_LENGTH = 32


def make_data(folder: str = "example_data", size: int = SIZE) -> dict[str, str]:
    """Write ``<folder>/train.csv`` and ``validation.csv``; return them by split."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    files = {}
    for split, n in (("train", size), ("validation", max(size // 2, 1))):
        ds = load_member("builtin", "books", split, max_examples=n)
        names = ds.features["label"].names
        frame = pd.DataFrame({"text": ds["text"], "label": [names[i] for i in ds["label"]]})
        files[split] = str(Path(folder) / f"{split}.csv")
        frame.to_csv(files[split], index=False)
    return files

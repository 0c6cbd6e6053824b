"""What the commands print: quiet by default, plain when not on a terminal.

- :func:`quiet` turns off the libraries' banners, tips and warnings unless ``--verbose``.
- :func:`step` prints one line per unit of a long job (``[3/8] single books seed 1``).
- :func:`print_table` prints a table that fits 100 columns (rich; no colour codes and no
  redraws when the output is a file or a CI log).
- :func:`counted` writes a count with its noun: "1 pair", "3 pairs".
"""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

WIDTH = 99  # tables and bars fit in 100 columns


def counted(n: int, plural: str) -> str:
    """``n`` and the noun, singular for one: ``counted(1, "pairs")`` is "1 pair"."""
    return f"{n} {plural[:-1] if n == 1 and plural.endswith('s') else plural}"


# Loggers whose INFO lines are banners ("GPU available: False", "💡 Tip: ...").
_CHATTY_LOGGERS = (
    "lightning",
    "lightning.pytorch",
    "lightning.fabric",
    "pytorch_lightning",
    "lightning_fabric",
    "mlflow",
    "datasets",
    "transformers",
    "alembic",
    "httpx",
)


def quiet(verbose: bool = False) -> None:
    """Silence the libraries' banners, tips and warnings unless ``verbose``."""
    if verbose:
        return
    # Lightning sets its own logger to INFO when imported, after this runs: switch the
    # INFO level off everywhere instead (this package prints, it does not log).
    logging.disable(logging.INFO)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DATASETS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    # Child processes (DDP workers) inherit the filter through PYTHONWARNINGS.
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.simplefilter("ignore")


def on_terminal(stream: Any = None) -> bool:
    """Whether ``stream`` (stdout) is an interactive terminal that may redraw."""
    stream = stream or sys.stdout
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def step(k: int, n: int, what: str) -> None:
    """One progress line of a long job: ``[k/n] what``."""
    print(f"[{k}/{n}] {what}", flush=True)


def _render(renderable: Any) -> str:
    """``renderable`` as plain text at most ``WIDTH`` columns wide, lines right-stripped."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=WIDTH, no_color=True, highlight=False, emoji=False)
    with console.capture() as captured:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.{digits}f}"
    return str(value)


def _header(name: str, width: int = 10) -> str:
    """A long snake_case column name over lines broken after its underscores, so that a
    narrow table wraps ``always_correct`` as ``always_`` / ``correct``, not mid-word."""
    if len(name) <= width or "_" not in name:
        return name
    lines = [""]
    for part in name.replace("_", "_\n").split("\n"):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def print_table(
    rows: Iterable[Sequence[Any]],
    columns: Sequence[str],
    title: str = "",
    digits: int = 3,
    caption: str = "",
) -> None:
    """Print ``rows`` under ``columns`` in at most 100 columns; floats get ``digits``."""
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
    )
    wrap = sum(len(str(name)) + 2 for name in columns) > WIDTH  # headers would not fit
    for i, name in enumerate(columns):
        header = _header(str(name)) if wrap and i > 0 else name
        table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v, digits) for v in row))
    # title and caption as lines of their own: rich would wrap them to the table's width
    print("\n".join(filter(None, [title, _render(table), caption])), flush=True)


def print_frame(frame: Any, title: str = "", digits: int = 3, caption: str = "") -> None:
    """A pandas frame through :func:`print_table`: its index as the first column, or a
    column per level of a MultiIndex."""
    levels = frame.index.nlevels
    names = [str(n) if n is not None else "" for n in frame.index.names]
    values = frame.itertuples(index=False)
    keys = (idx if levels > 1 else (idx,) for idx in frame.index)
    rows = [(*key, *row) for key, row in zip(keys, values, strict=True)]
    print_table(rows, [*names, *map(str, frame.columns)], title, digits, caption)


def print_accuracy(metrics: dict[str, float], title: str) -> None:
    """``<split>/<member>/acc`` metrics as one row per member, one column per split."""
    splits = ("train", "val", "test", "ood")
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        split, _, rest = key.partition("/")
        member, _, name = rest.rpartition("/")
        if name == "acc" and split in splits and member:
            table.setdefault(member, {})[split] = value
    used = [s for s in splits if any(s in row for row in table.values())]
    rows = [[m, *(row.get(s, float("nan")) for s in used)] for m, row in table.items()]
    print_table(rows, ["member", *used], title)


def print_links(run_ids: Sequence[tuple[str, str]], ui_command: str | None) -> None:
    """The runs a command made (label, run id) and how to open them."""
    for label, run_id in run_ids:
        print(f"{label}: {run_id}")
    if ui_command:
        print(f"open: {ui_command}")

"""``load_member``: one member's split as a ``datasets.Dataset`` with stable example ids."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset, Features, Value, load_dataset

from soi_mlflow.data.builtin import BuiltinOptions, generate
from soi_mlflow.data.hub import hub_access
from soi_mlflow.data.ids import content_ids, index_ids
from soi_mlflow.data.in_memory import in_memory_dataset, inferred_features
from soi_mlflow.data.spec import (
    FILE_FORMATS,
    BuiltinSource,
    FileSource,
    HubSource,
    MemberSpec,
    SplitSource,
)
from soi_mlflow.data.suites import SuiteRef, get_suite
from soi_mlflow.errors import SoiInputError

_SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}


def select_indices(
    n: int, member: str, split: str, seed: int, max_examples: int | None
) -> np.ndarray:
    """Row positions kept by ``max_examples``: a seeded random subset, in original order.

    For one seed the subsets are nested: the first K of a larger draw are the smaller draw.
    """
    if max_examples is None or max_examples >= n:
        return np.arange(n)
    code = zlib.crc32(f"{member}/{split}".encode())
    perm = np.random.default_rng([seed, code]).permutation(n)
    return np.sort(perm[:max_examples])


def _check_max_examples(max_examples: int | None) -> None:
    if max_examples is None:
        return
    if (
        isinstance(max_examples, bool)
        or not isinstance(max_examples, (int, np.integer))
        or max_examples <= 0
    ):
        raise SoiInputError(f"max_examples must be a positive integer, got {max_examples!r}")


def _local_hint(spec: MemberSpec) -> str:
    return (
        "Point the suite at local copies with `--data-dir DIR` (Python: "
        f"get_suite(..., data_dir=DIR)) holding DIR/{spec.name}/<split>.parquet|jsonl|csv with "
        "the hub's column names, or give the member a `files:` section in a suite YAML."
    )


def _read_hub(spec: MemberSpec, src: HubSource, split: str) -> Dataset:
    what = f"member {spec.name!r} ({src.path}" + (f", {src.name}" if src.name else "") + ")"
    with hub_access(what, _local_hint(spec)):
        try:
            return load_dataset(src.path, src.name, split=split, revision=src.revision)
        except ValueError as exc:
            if "split" in str(exc).lower():
                raise SoiInputError(f"{what}: split {split!r} does not exist: {exc}") from exc
            raise


def _read_file(spec: MemberSpec, src: FileSource, split: str) -> tuple[Dataset, str]:
    path = src.files.get(split)
    if path is None:
        raise SoiInputError(
            f"member {spec.name!r}: no local file for source split {split!r}; "
            f"files are given for: {', '.join(sorted(src.files)) or 'none'}"
        )
    if not path.is_file():
        raise SoiInputError(f"member {spec.name!r}: file {str(path)!r} does not exist")
    fmt = FILE_FORMATS[path.suffix.lower()]
    try:
        ds = load_dataset(fmt, data_files={"data": str(path)}, split="data")
    except Exception as exc:  # parse errors come as several exception types
        cause = exc.__cause__ or exc
        raise SoiInputError(
            f"member {spec.name!r}: cannot read {fmt} file {str(path)!r}: "
            f"{type(cause).__name__}: {cause}"
        ) from exc
    return ds, str(path)


def _slice(n: int, split: SplitSource) -> np.ndarray:
    """Original row indices of a split: a slice of the source, or of a fixed permutation."""
    rows = (
        np.arange(n)
        if split.shuffle is None
        else np.random.default_rng(split.shuffle).permutation(n)
    )
    picked = rows[slice(split.start, split.stop)]
    return picked if split.shuffle is None else np.sort(picked)


def _label_names(spec: MemberSpec, raw: Dataset) -> tuple[str, ...]:
    feature = raw.features.get(spec.label_column)
    if isinstance(feature, ClassLabel):
        if spec.label_names is None:
            return tuple(feature.names)
        unknown = sorted(
            {spec.label_aliases.get(n, n) for n in feature.names} - set(spec.label_names)
        )
        if unknown:
            raise SoiInputError(
                f"member {spec.name!r}: the data's labels {unknown} are not among label_names "
                f"{list(spec.label_names)}"
            )
    if spec.label_names is None:
        raise SoiInputError(
            f"member {spec.name!r}: label_names are needed (column {spec.label_column!r} is not "
            "a ClassLabel)"
        )
    return spec.label_names


def _encode_labels(
    values: Sequence[Any],
    names: tuple[str, ...],
    feature: Any,
    aliases: dict[str, str],
    where: str,
    rows: np.ndarray,
) -> list[int]:
    """Label names or indices -> indices into ``names``; ClassLabel ints go by their name."""
    index = {n: i for i, n in enumerate(names)}
    index.update({raw: index[target] for raw, target in aliases.items()})
    out: list[int] = []
    for value, row in zip(values, rows, strict=True):
        if isinstance(feature, ClassLabel) and isinstance(value, (int, np.integer)):
            value = feature.names[value] if 0 <= value < feature.num_classes else value
        if isinstance(value, str) and value in index:
            out.append(index[value])
        elif (
            isinstance(value, (int, np.integer, float))
            and not isinstance(value, bool)
            and float(value).is_integer()
            and 0 <= int(value) < len(names)
        ):
            out.append(int(value))
        else:
            raise SoiInputError(
                f"{where}: label {value!r} in row {int(row)} is outside the label names "
                f"{list(names)} (expected a name or an index 0..{len(names) - 1})"
            )
    return out


def _check_texts(values: Sequence[Any], column: str, where: str, rows: np.ndarray) -> list[str]:
    for value, row in zip(values, rows, strict=True):
        if not isinstance(value, str) or not value.strip():
            raise SoiInputError(
                f"{where}: empty text in column {column!r}, row {int(row)} (got {value!r})"
            )
    return list(values)


def _output(
    spec: MemberSpec,
    columns: dict[str, list],
    ids: np.ndarray,
    labels: list[int],
    names: tuple[str, ...],
) -> Dataset:
    data: dict[str, Any] = {
        "example_id": ids,
        "member": [spec.name] * len(ids),
        "text": columns["text"],
    }
    if spec.is_pair:
        data["text_pair"] = columns["text_pair"]
    data["label"] = labels
    for col in spec.metadata_columns:
        data[col] = columns[col]
    feats = inferred_features(data)
    feats.update(
        {
            "example_id": Value("int64"),
            "member": Value("string"),
            "text": Value("string"),
            "label": ClassLabel(names=list(names)),
        }
    )
    if spec.is_pair:
        feats["text_pair"] = Value("string")
    return in_memory_dataset(data, Features(feats))


def _load_builtin(
    spec: MemberSpec, split: str, seed: int, max_examples: int | None, options: BuiltinOptions
) -> Dataset:
    n = options.sizes[split]
    idx = select_indices(n, spec.name, split, seed, max_examples)
    cols = generate(spec, split, idx, options)
    ids = index_ids(*spec.identity, split, idx)
    assert spec.label_names is not None
    return _output(spec, cols, ids, cols["label"], spec.label_names)


def _load_external(spec: MemberSpec, split: str, seed: int, max_examples: int | None) -> Dataset:
    source_split = spec.splits[split]
    if isinstance(spec.source, HubSource):
        raw, origin = _read_hub(spec, spec.source, source_split.split), spec.source.path
    else:
        assert isinstance(spec.source, FileSource)
        raw, origin = _read_file(spec, spec.source, source_split.split)
    where = f"member {spec.name!r}, split {split!r} ({origin})"
    wanted = [spec.text_column, spec.label_column, *spec.metadata_columns]
    if spec.text_pair_column:
        wanted.append(spec.text_pair_column)
    missing = [c for c in wanted if c not in raw.column_names]
    if missing:
        raise SoiInputError(
            f"{where}: missing column(s) {', '.join(map(repr, missing))}; "
            f"the data has: {', '.join(raw.column_names)}"
        )
    names = _label_names(spec, raw)
    rows = _slice(len(raw), source_split)
    if len(rows) == 0:
        raise SoiInputError(f"{where}: no rows (source split {source_split.split!r} is empty)")
    rows = rows[select_indices(len(rows), spec.name, split, seed, max_examples)]
    picked = raw.select(rows.tolist()).select_columns(list(dict.fromkeys(wanted)))
    table = picked.to_dict()
    columns = {"text": _check_texts(table[spec.text_column], spec.text_column, where, rows)}
    if spec.text_pair_column:
        columns["text_pair"] = _check_texts(
            table[spec.text_pair_column], spec.text_pair_column, where, rows
        )
    for col in spec.metadata_columns:
        columns[col] = table[col]
    labels = _encode_labels(
        table[spec.label_column],
        names,
        raw.features.get(spec.label_column),
        spec.label_aliases,
        where,
        rows,
    )
    if spec.id_from == "content":
        ids = content_ids(
            *spec.identity,
            source_split.split,
            columns["text"],
            columns.get("text_pair") or [None] * len(rows),
        )
    else:
        ids = index_ids(*spec.identity, source_split.split, rows)
    return _output(spec, columns, ids, labels, names)


def load_member(
    suite: SuiteRef,
    member: str,
    split: str,
    seed: int = 0,
    max_examples: int | None = None,
    *,
    axis: str | None = None,
    data_dir: str | Path | None = None,
) -> Dataset:
    """Load one member's split with columns ``example_id``, ``member``, ``text``, ``label``
    (``text_pair`` for pair tasks) and the suite's metadata columns.

    ``seed`` draws the ``max_examples`` subset (nested across sizes); it never changes an
    example's content or id. ``axis``, when given, must be the member's axis.
    """
    spec_suite = get_suite(suite, data_dir)
    spec = spec_suite.member(member, axis)
    if split not in spec.splits:
        raise SoiInputError(
            f"member {member!r} has no split {split!r}; splits: {', '.join(spec.splits)}"
        )
    _check_max_examples(max_examples)
    if isinstance(spec.source, BuiltinSource):
        options = spec_suite.options.get("builtin") or BuiltinOptions()
        return _load_builtin(spec, split, seed, max_examples, options)
    return _load_external(spec, split, seed, max_examples)

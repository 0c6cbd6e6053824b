"""The trace recorder's name space: tasks with their class names, and members, each a
growing table of names mapped to the integer indices a trace row carries; the checks that
a batch's or an epoch's indices and labels lie inside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.names import DEFAULT_TASK
from soi_mlflow.tracking.run import metric_safe
from soi_mlflow.tracking.trace_rows import is_tensor, on_host, to_device, to_numpy


@dataclass
class _Names:
    """A growing table of names (members or tasks) and their indices. With ``escaped``,
    two names that :func:`~soi_mlflow.tracking.run.metric_safe` makes equal (``a b`` and
    ``a_b``) are refused: their metrics would overwrite each other. Member names are data
    (a user's ``member`` column): kept as they are in the trace files, escaped wherever
    they name a metric, a table or a figure."""

    names: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    escaped: dict[str, str] | None = None  # metric-safe form -> the name that has it

    def add(self, name: str) -> int:
        if name not in self.index:
            if self.escaped is not None:
                safe = metric_safe(name)
                other = self.escaped.setdefault(safe, name)
                if other != name:
                    raise SoiInputError(
                        f"member names {other!r} and {name!r} both become {safe!r} in metric "
                        "and file names (only letters, digits, '_', '.', '-' are kept); "
                        "rename one"
                    )
            self.index[name] = len(self.names)
            self.names.append(name)
        return self.index[name]


class LabelSpace:
    """Tasks (with their class counts and label names) and members of one recorder.

    Args:
        label_names: class names of one task (a list) or of several (``{task: [...]}``);
            without them a task's classes are ``"0".."C-1"`` from the logits' width, and
            tasks are declared as rows name them.
        members: member names declared up front (integer ``member`` values index them).
    """

    def __init__(
        self,
        label_names: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        members: Sequence[str] | None = None,
    ) -> None:
        self.tasks = _Names()
        self.classes: list[int | None] = []
        self._counts = np.zeros(0, dtype=np.int64)  # class_counts' last answer
        self._label_index: list[dict[str, int] | None] = []
        self._label_names: dict[str, list[str]] = {}
        self._explicit_labels = label_names is not None
        if isinstance(label_names, Mapping):
            for task, names in label_names.items():
                self.declare_task(str(task), [str(n) for n in names])
        elif label_names is not None:
            if isinstance(label_names, str):
                raise SoiInputError("label_names: expected a list of class names, got a string")
            self.declare_task(DEFAULT_TASK, [str(n) for n in label_names])
        self.members = _Names(escaped={})
        for name in members or ():
            self.members.add(str(name))

    # -- declaring names ------------------------------------------------------------
    def declare_task(self, task: str, names: list[str] | None) -> int:
        idx = self.tasks.add(task)
        if idx == len(self.classes):
            self.classes.append(len(names) if names is not None else None)
            self._label_index.append({n: i for i, n in enumerate(names)} if names else None)
            if names is not None:
                self._label_names[task] = names
        return idx

    def ensure_task(self) -> None:
        """Rows that name no task, with no task declared, belong to the default task."""
        if not self.tasks.names:
            self.declare_task(DEFAULT_TASK, None)

    def class_counts(self, width: int) -> np.ndarray:
        """Class count per task; a task without label names has as many classes as its
        first logits have columns (``width``)."""
        if len(self._counts) != len(self.classes) or None in self.classes:  # else as before
            self.classes = [c if c is not None else width for c in self.classes]
            self._counts = np.array(self.classes, dtype=np.int64)
        return self._counts

    def label_names(self) -> dict[str, list[str]]:
        """Class names per task, as written into each file's metadata."""
        out = {}
        for t, task in enumerate(self.tasks.names):
            count = self.classes[t]
            out[task] = self._label_names.get(task) or [str(i) for i in range(count or 0)]
        return out

    # -- a batch's indices ------------------------------------------------------------
    def task_indices(self, task: Any, n: int, check: bool) -> Any:
        if task is None:
            if len(self.tasks.names) > 1:
                raise SoiInputError(
                    f"task: label_names declares tasks {self.tasks.names}; say which task "
                    "each row belongs to (task=<name> or one name per row)"
                )
            return np.zeros(n, dtype=np.int32)
        return self._name_indices(
            task, n, "task", self.tasks, declare=not self._explicit_labels, check=check
        )

    def member_indices(self, member: Any, task_idx: Any, n: int, check: bool) -> Any:
        """Row indices into the members; without a member, each row's member is its task."""
        if member is not None:
            return self._name_indices(member, n, "member", self.members, check=check)
        mapping = np.array([self.members.add(t) for t in self.tasks.names], dtype=np.int32)
        if is_tensor(task_idx):
            return to_device(mapping, task_idx.device)[task_idx]
        return mapping[task_idx]

    def _name_indices(
        self,
        values: Any,
        n: int,
        what: str,
        table: _Names,
        declare: bool = True,
        check: bool = True,
    ) -> Any:
        """Row indices into ``table`` from one name, a name per row, or int indices (an
        integer tensor stays on its device, unchecked unless ``check`` and it is in host
        memory: a device's indices are checked at the epoch's end, without a host sync)."""
        if isinstance(values, str):
            if values not in table.index and not declare:
                raise SoiInputError(f"{what} {values!r} is not one of {table.names}")
            idx = self.declare_task(values, None) if what == "task" else table.add(values)
            return np.full(n, idx, dtype=np.int32)
        if (
            is_tensor(values)
            and not values.dtype.is_floating_point
            and not (check and on_host(values))
        ):
            return values.detach().long()  # checked on the split's first batch and at epoch end
        if isinstance(values, list) and len(values) == n:
            # a name per row, as a collate function gives a string column: names already
            # known are looked up at once (a new one goes the long way, declared in order)
            known = [table.index.get(v) if isinstance(v, str) else None for v in values]
            if None not in known:
                return np.array(known, dtype=np.int32)
        arr = to_numpy(values)
        if arr.shape != (n,):
            raise SoiInputError(f"{what}: expected one value per row ({n}), got shape {arr.shape}")
        if arr.dtype.kind in "iu":
            if n and (arr.min() < 0 or arr.max() >= len(table.names)):
                raise SoiInputError(
                    f"{what}: integer indices must lie in [0, {len(table.names)}) "
                    f"(the declared {what}s {table.names}), got {arr.min()}..{arr.max()}"
                )
            return arr.astype(np.int32)
        out = np.empty(n, dtype=np.int32)
        for i, value in enumerate(arr.tolist()):
            name = str(value)
            if name not in table.index and not declare:
                raise SoiInputError(f"{what} {name!r} is not one of {table.names}")
            out[i] = self.declare_task(name, None) if what == "task" else table.add(name)
        return out

    def gold(self, labels: Any, task_idx: np.ndarray, n: int, split: str) -> Any:
        """Gold class indices, on the labels' own device when they are a tensor."""
        if is_tensor(labels):
            if labels.shape != (n,):
                raise SoiInputError(
                    f"split {split!r}: labels must have one value per id ({n}), got shape "
                    f"{tuple(labels.shape)}"
                )
            return labels.long()
        arr = to_numpy(labels)
        if arr.shape != (n,):
            raise SoiInputError(
                f"split {split!r}: labels must have one value per id ({n}), got shape {arr.shape}"
            )
        if arr.dtype.kind in "iu":
            return arr.astype(np.int64)
        out = np.empty(n, dtype=np.int64)
        tasks = to_numpy(task_idx).tolist()
        for i, (value, t) in enumerate(zip(arr.tolist(), tasks, strict=True)):
            index = self._label_index[t]
            if index is None or str(value) not in index:
                known = list(index) if index else "none (pass label_names=...)"
                raise SoiInputError(
                    f"split {split!r}: label {value!r} of task {self.tasks.names[t]!r} is not "
                    f"one of its label names: {known}"
                )
            out[i] = index[str(value)]
        return out

    # -- checks -----------------------------------------------------------------------
    def check_first(
        self, split: str, gold: Any, task_idx: np.ndarray, classes: np.ndarray, width: int
    ) -> None:
        """Full checks on a split's first batch (later batches are checked at epoch end).
        Labels or tasks still on a device are checked at the epoch's end only: reading
        them here would make the host wait for the device."""
        for t, count in enumerate(self.classes):
            if count is not None and count > width:
                raise SoiInputError(
                    f"split {split!r}: task {self.tasks.names[t]!r} has {count} label names "
                    f"but the logits have only {width} columns"
                )
        if not (on_host(gold) and on_host(task_idx)):
            return
        g, task_idx = to_numpy(gold), to_numpy(task_idx)
        bad = (g < 0) | (g >= classes[task_idx])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SoiInputError(
                f"split {split!r}: label {int(g[i])} (row {i}) lies outside the "
                f"{int(classes[task_idx[i]])} classes of task {self.tasks.names[task_idx[i]]!r}"
            )

    def check_rows(self, split: str, rows: dict[str, np.ndarray]) -> None:
        """An epoch's rows of ``split``: indices inside the tables, labels inside their
        task's classes, finite statistics."""
        for key, table in (("member_idx", self.members), ("task_idx", self.tasks)):
            values = rows[key]
            if values.min() < 0 or values.max() >= len(table.names):
                what = key.split("_")[0]
                raise SoiInputError(
                    f"split {split!r}: integer {what} indices must lie in "
                    f"[0, {len(table.names)}) (the declared {what}s {table.names}), got "
                    f"{values.min()}..{values.max()}"
                )
        classes = np.array(
            [c if c is not None else np.iinfo(np.int32).max for c in self.classes], np.int64
        )
        outside = (rows["gold"] < 0) | (rows["gold"] >= classes[rows["task_idx"]])
        if outside.any() or np.isnan(rows["p_gold"]).any():
            bad = rows["example_id"][outside | np.isnan(rows["p_gold"])][:5].tolist()
            raise SoiInputError(
                f"split {split!r}: labels outside the classes of their task or non-finite "
                f"logits for example ids {bad}"
            )

    # -- other ranks' names -------------------------------------------------------------
    def adopt(self, members: list[str], tasks: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """This space's indices of another rank's member and task names, in its order."""
        member_map = np.array([self.members.add(m) for m in members], dtype=np.int32)
        task_map = np.array([self.declare_task(t, None) for t in tasks], dtype=np.int32)
        return member_map, task_map

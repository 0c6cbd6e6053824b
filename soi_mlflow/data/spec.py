"""Member and suite specifications, and their parsing from YAML with clear errors.

A *member* is one data set on one axis (docs/design.md): a task (``task``), a data source of one
task (``source``) or a language of one task (``lang``). A *suite* is a named collection of
members: the built-in offline suite, a preset shipped with the package, or a YAML file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from soi_mlflow.errors import SoiInputError

AXES = ("task", "source", "lang")
SPLITS = ("train", "validation", "test")
FILE_FORMATS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
ID_MODES = ("index", "content")
# A member name is typed in comma lists (--members a,b), joined into the soi.members tag,
# and used as is in metric names (val/<member>/acc), artifact file names and filter
# strings: letters, digits, '_', '.', '-' only, so it never needs escaping anywhere.
MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MEMBER_NAME_RULE = (
    "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit (no commas, "
    "slashes or spaces: the name enters tags, metric names and file names)"
)


def check_member_name(name: Any, where: str = "member name") -> str:
    """``name`` if it follows :data:`MEMBER_NAME`; a :class:`SoiInputError` naming
    ``where`` (the file and field, or the option) otherwise."""
    if not isinstance(name, str) or not MEMBER_NAME.match(name):
        raise SoiInputError(f"{where}: member name {name!r}: expected {MEMBER_NAME_RULE}")
    return name


@dataclass(frozen=True)
class SplitSource:
    """Where one split of a member comes from: a split of the source, optionally sliced."""

    split: str
    start: int | None = None
    stop: int | None = None
    shuffle: int | None = None  # slice a fixed permutation (this seed) of a sorted source


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face data set, loaded with ``datasets.load_dataset(path, name)``."""

    path: str
    name: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class FileSource:
    """Local CSV, JSONL or Parquet files, one per source split."""

    files: dict[str, Path]


@dataclass(frozen=True)
class BuiltinSource:
    """A member of the generated offline suite (see ``soi_mlflow.data.builtin``)."""

    family: str
    domain: str | None = None


Source = HubSource | FileSource | BuiltinSource


@dataclass(frozen=True)
class MemberSpec:
    """Everything needed to load one member and to tell where each example came from."""

    name: str
    axis: str
    task: str
    label_names: tuple[str, ...] | None
    source: Source
    splits: dict[str, SplitSource]
    identity: tuple[str, str]
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    metadata_columns: tuple[str, ...] = ()
    id_from: str = "index"
    label_aliases: dict[str, str] = field(default_factory=dict)  # data's name -> label name

    @property
    def is_pair(self) -> bool:
        return self.text_pair_column is not None


@dataclass(frozen=True)
class SuiteSpec:
    """A named set of members plus the defaults a study uses when flags are left out."""

    name: str
    members: dict[str, MemberSpec]
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def member(self, name: str, axis: str | None = None) -> MemberSpec:
        """The member called ``name``; with ``axis``, it must lie on that axis."""
        if name not in self.members:
            raise SoiInputError(
                f"unknown member {name!r} in suite {self.name!r}; "
                f"members are: {', '.join(sorted(self.members))}"
            )
        spec = self.members[name]
        if axis is not None:
            check_axis(axis)
            if spec.axis != axis:
                on_axis = sorted(m for m, s in self.members.items() if s.axis == axis)
                raise SoiInputError(
                    f"member {name!r} of suite {self.name!r} is on axis {spec.axis!r}, "
                    f"not {axis!r}; members on axis {axis!r}: {', '.join(on_axis) or 'none'}"
                )
        return spec

    def on_axis(self, axis: str) -> list[str]:
        check_axis(axis)
        return [m for m, s in self.members.items() if s.axis == axis]


def check_axis(axis: str) -> str:
    if axis not in AXES:
        raise SoiInputError(f"unknown axis {axis!r}; expected one of: {', '.join(AXES)}")
    return axis


# ---------------------------------------------------------------------------------------
# Parsing


class _Field:
    """A cursor into a YAML document that names the file and the field in its errors."""

    def __init__(self, origin: str, path: str = "") -> None:
        self.origin = origin
        self.path = path

    def at(self, key: str) -> _Field:
        return _Field(self.origin, f"{self.path}.{key}" if self.path else key)

    def fail(self, expected: str, got: Any = None) -> SoiInputError:
        seen = "" if got is None else f", got {got!r}"
        return SoiInputError(f"{self.origin}: field '{self.path}': expected {expected}{seen}")


def _mapping(node: Any, where: _Field) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise where.fail("a mapping", node)
    return node


def _string(node: Any, where: _Field) -> str:
    if not isinstance(node, str) or not node.strip():
        raise where.fail("a non-empty string", node)
    return node


def _opt_string(node: Any, where: _Field) -> str | None:
    return None if node is None else _string(node, where)


def _parse_split(node: Any, where: _Field) -> SplitSource:
    if isinstance(node, str):
        return SplitSource(node)
    node = _mapping(node, where)
    rows = node.get("rows")
    start = stop = None
    if rows is not None:
        ok = isinstance(rows, list) and len(rows) == 2
        ok = ok and all(r is None or (isinstance(r, int) and not isinstance(r, bool)) for r in rows)
        if not ok:
            raise where.at("rows").fail("[start, stop] with integers or null", rows)
        start, stop = rows
    shuffle = node.get("shuffle")
    if shuffle is not None and (not isinstance(shuffle, int) or isinstance(shuffle, bool)):
        raise where.at("shuffle").fail("an integer seed", shuffle)
    return SplitSource(_string(node.get("split"), where.at("split")), start, stop, shuffle)


def _parse_files(node: Any, where: _Field, base_dir: Path) -> FileSource:
    node = _mapping(node, where)
    files: dict[str, Path] = {}
    for split_name, raw in node.items():
        path = Path(_string(raw, where.at(split_name)))
        path = path if path.is_absolute() else base_dir / path
        if path.suffix.lower() not in FILE_FORMATS:
            raise where.at(split_name).fail(
                f"a file ending in one of {', '.join(FILE_FORMATS)}", str(path)
            )
        files[split_name] = path
    if not files:
        raise where.fail("at least one split file")
    return FileSource(files)


MEMBER_KEYS = {
    "axis",
    "task",
    "label_names",
    "label_aliases",
    "columns",
    "hub",
    "files",
    "identity",
    "splits",
    "id_from",
    "metadata_columns",
}
SUITE_KEYS = {"name", "description", "defaults", "members"}


def _no_unknown_keys(node: dict[str, Any], allowed: set[str], where: _Field) -> None:
    unknown = sorted(k for k in node if k not in allowed and not str(k).startswith("x-"))
    if unknown:
        raise where.fail(f"only the keys {', '.join(sorted(allowed))}", unknown)


def parse_member(name: str, node: Any, where: _Field, base_dir: Path) -> MemberSpec:
    """One member from its YAML mapping."""
    node = _mapping(node, where)
    _no_unknown_keys(node, MEMBER_KEYS, where)
    axis = node.get("axis")
    if axis not in AXES:
        raise where.at("axis").fail(f"one of {', '.join(AXES)}", axis)
    labels = node.get("label_names")
    if labels is not None and (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(x, str) for x in labels)
    ):
        hint = (
            " (YAML reads yes/no/on/off as booleans: quote them)"
            if isinstance(labels, list) and any(isinstance(x, bool) for x in labels)
            else ""
        )
        raise where.at("label_names").fail(f"a list of at least 2 label names{hint}", labels)
    if labels is not None and len(set(labels)) != len(labels):
        raise where.at("label_names").fail("distinct label names", labels)
    columns = _mapping(node.get("columns", {}), where.at("columns"))
    sources = [k for k in ("hub", "files") if k in node]
    if len(sources) != 1:
        raise where.fail("exactly one of 'hub' or 'files'", sorted(node))
    if "hub" in node:
        hub = _mapping(node["hub"], where.at("hub"))
        source: Source = HubSource(
            _string(hub.get("path"), where.at("hub.path")),
            _opt_string(hub.get("name"), where.at("hub.name")),
            _opt_string(hub.get("revision"), where.at("hub.revision")),
        )
        identity = (source.path, source.name or "default")
    else:
        source = _parse_files(node["files"], where.at("files"), base_dir)
        identity = (f"files/{name}", "default")
    ident = node.get("identity")
    if ident is not None:
        ident = _mapping(ident, where.at("identity"))
        identity = (
            _string(ident.get("dataset"), where.at("identity.dataset")),
            str(ident.get("config", "default")),
        )
    splits_node = node.get("splits")
    if splits_node is None:
        if isinstance(source, FileSource):
            splits_node = {s: s for s in source.files}
        else:
            splits_node = {s: s for s in SPLITS}
    splits_node = _mapping(splits_node, where.at("splits"))
    splits = {k: _parse_split(v, where.at(f"splits.{k}")) for k, v in splits_node.items()}
    if "train" not in splits:
        raise where.at("splits").fail("a 'train' split", sorted(splits))
    if isinstance(source, FileSource):
        for split_name, split in splits.items():
            if split.split not in source.files:
                raise where.at(f"splits.{split_name}").fail(
                    f"a split named in 'files' ({', '.join(source.files)})", split.split
                )
    id_from = node.get("id_from", "index")
    if id_from not in ID_MODES:
        raise where.at("id_from").fail(f"one of {', '.join(ID_MODES)}", id_from)
    if isinstance(source, FileSource) and labels is None:
        raise where.at("label_names").fail("label names for a member read from local files")
    aliases = _mapping(node.get("label_aliases", {}), where.at("label_aliases"))
    aliases = {str(k): v for k, v in aliases.items()}
    for raw, target in aliases.items():
        if labels is None or target not in labels:
            raise where.at(f"label_aliases.{raw}").fail(f"one of label_names {labels}", target)
    metadata = node.get("metadata_columns", [])
    if not isinstance(metadata, list) or not all(isinstance(c, str) for c in metadata):
        raise where.at("metadata_columns").fail("a list of column names", metadata)
    return MemberSpec(
        name=name,
        axis=axis,
        task=_string(node.get("task", name), where.at("task")),
        label_names=tuple(labels) if labels is not None else None,
        source=source,
        splits=splits,
        identity=identity,
        text_column=_string(columns.get("text", "text"), where.at("columns.text")),
        text_pair_column=_opt_string(columns.get("text_pair"), where.at("columns.text_pair")),
        label_column=_string(columns.get("label", "label"), where.at("columns.label")),
        metadata_columns=tuple(metadata),
        id_from=id_from,
        label_aliases=aliases,
    )


def parse_suite(doc: Any, origin: str, base_dir: Path) -> SuiteSpec:
    """A suite from a parsed YAML document; ``origin`` names the file in errors."""
    top = _Field(origin)
    doc = _mapping(doc, top)
    _no_unknown_keys(doc, SUITE_KEYS, top)
    name = _string(doc.get("name", Path(origin).stem), top.at("name"))
    members_node = _mapping(doc.get("members"), top.at("members"))
    if not members_node:
        raise top.at("members").fail("at least one member")
    for m in members_node:
        if not isinstance(m, str) or not MEMBER_NAME.match(m):
            raise top.at(f"members.{m}").fail(f"a member name of {MEMBER_NAME_RULE}", m)
    members = {
        m: parse_member(m, node, top.at(f"members.{m}"), base_dir)
        for m, node in members_node.items()
    }
    defaults = _mapping(doc.get("defaults", {}), top.at("defaults"))
    suite = SuiteSpec(name, members, str(doc.get("description", "")), dict(defaults))
    for key in ("members", "ood"):
        for m in defaults.get(key, []) or []:
            suite.member(m)
    return suite


def with_local_files(suite: SuiteSpec, data_dir: str | Path) -> SuiteSpec:
    """Point every hub member of ``suite`` at local copies in ``data_dir``.

    Files are looked up as ``<data_dir>/<member>/<source split>.<parquet|jsonl|json|csv>``,
    with the hub's own column names. Example ids keep the hub identity, so runs on local
    copies and runs on the hub agree.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SoiInputError(f"data directory {str(data_dir)!r} does not exist")
    members = {}
    for name, spec in suite.members.items():
        if not isinstance(spec.source, HubSource):
            members[name] = spec
            continue
        files = {}
        for split in {s.split for s in spec.splits.values()}:
            tried = [data_dir / name / f"{split}{ext}" for ext in FILE_FORMATS]
            found = [p for p in tried if p.is_file()]
            if found:
                files[split] = found[0]
        if files:
            members[name] = replace(spec, source=FileSource(files))
        else:
            members[name] = spec
    return replace(suite, members=members)

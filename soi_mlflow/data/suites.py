"""Finding a suite by name: ``builtin``, a preset shipped with the package, or a YAML file."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from soi_mlflow.data.builtin import BuiltinOptions, builtin_suite
from soi_mlflow.data.spec import SuiteSpec, parse_suite, with_local_files
from soi_mlflow.errors import SoiInputError

SuiteRef = str | Path | SuiteSpec


def preset_names() -> list[str]:
    """Names of the presets shipped in ``soi_mlflow/data/presets``."""
    folder = resources.files("soi_mlflow.data") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def known_suites() -> list[str]:
    return ["builtin", *preset_names()]


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SoiInputError(f"cannot read suite file {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SoiInputError(f"suite file {str(path)!r} is not valid YAML: {exc}") from exc


def suite_from_file(path: str | Path) -> SuiteSpec:
    """A suite from a YAML file: either members (see the presets) or ``builtin:`` options."""
    path = Path(path)
    doc = _read_yaml(path)
    if isinstance(doc, dict) and "builtin" in doc:
        return builtin_suite(builtin_options(doc["builtin"], origin=str(path)))
    return parse_suite(doc, str(path), path.parent)


def builtin_options(node: Any, origin: str = "builtin options") -> BuiltinOptions:
    """Built-in suite options from a mapping (``seed``, ``sizes``, ``*_rate``, ``noise``,
    ``boundary_share``, ``transfer_probes``, ``positive_share``)."""
    if node is None:
        return BuiltinOptions()
    if isinstance(node, BuiltinOptions):
        return node
    if not isinstance(node, dict):
        raise SoiInputError(f"{origin}: 'builtin' must be a mapping, got {node!r}")
    allowed = {
        "seed",
        "sizes",
        "ambiguous_rate",
        "mislabeled_rate",
        "noise",
        "boundary_share",
        "transfer_probes",
        "positive_share",
    }
    unknown = sorted(set(node) - allowed)
    if unknown:
        raise SoiInputError(
            f"{origin}: unknown builtin option(s) {', '.join(unknown)}; "
            f"expected {', '.join(sorted(allowed))}"
        )
    defaults = BuiltinOptions()  # the one place the defaults live
    return BuiltinOptions(
        seed=int(node.get("seed", defaults.seed)),
        sizes={**defaults.sizes, **(node.get("sizes") or {})},
        ambiguous_rate=float(node.get("ambiguous_rate", defaults.ambiguous_rate)),
        mislabeled_rate=float(node.get("mislabeled_rate", defaults.mislabeled_rate)),
        noise=node.get("noise", defaults.noise),
        boundary_share=float(node.get("boundary_share", defaults.boundary_share)),
        transfer_probes=_flag(node.get("transfer_probes", defaults.transfer_probes), origin),
        positive_share=_shares(node.get("positive_share"), origin),
    )


def _shares(value: Any, origin: str) -> dict[str, float]:
    """``positive_share``: a mapping of review domain to share (checked by the options)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SoiInputError(
            f"{origin}: positive_share must be a mapping of review domain to share, got {value!r}"
        )
    return {str(k): v for k, v in value.items()}


def _flag(value: Any, origin: str) -> bool:
    if not isinstance(value, bool):
        raise SoiInputError(f"{origin}: transfer_probes must be true or false, got {value!r}")
    return value


@lru_cache(maxsize=32)
def _named_suite(name: str) -> SuiteSpec:
    if name == "builtin":
        return builtin_suite()
    if name in preset_names():
        path = resources.files("soi_mlflow.data") / "presets" / f"{name}.yaml"
        with resources.as_file(path) as real:
            return parse_suite(_read_yaml(real), f"preset {name}", real.parent)
    raise SoiInputError(
        f"unknown suite {name!r}; expected one of {', '.join(known_suites())} "
        "or the path of a suite YAML file"
    )


def _suite(name: str) -> SuiteSpec:
    """Named suites are cached; files are read again each time, so edits are seen."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise SoiInputError(f"suite file {name!r} does not exist")
        return suite_from_file(path)
    return _named_suite(name)


def get_suite(suite: SuiteRef, data_dir: str | Path | None = None) -> SuiteSpec:
    """Resolve ``suite`` to a spec; ``data_dir`` points hub members at local copies."""
    spec = suite if isinstance(suite, SuiteSpec) else _suite(str(suite))
    return with_local_files(spec, data_dir) if data_dir is not None else spec

"""Data layer: member and suite specs, loaders, the built-in offline suite, mixtures."""

from soi_mlflow.data.builtin import BuiltinOptions, builtin_suite
from soi_mlflow.data.ids import with_example_ids
from soi_mlflow.data.loaders import load_member
from soi_mlflow.data.spec import AXES, MemberSpec, SuiteSpec
from soi_mlflow.data.suites import get_suite, known_suites, preset_names

__all__ = [
    "AXES",
    "BuiltinOptions",
    "MemberSpec",
    "SuiteSpec",
    "builtin_suite",
    "get_suite",
    "known_suites",
    "load_member",
    "preset_names",
    "with_example_ids",
]

"""The range of a seed a user gives: what numpy and Lightning's ``seed_everything`` take.

Lightning silently replaces a seed outside [0, 2**32) by a random one, and numpy refuses a
negative one deep inside data loading; both are refused here, naming the option, before
anything is loaded. A study that runs seeds ``seed, seed + 1, ...`` checks its last one too.
"""

from __future__ import annotations

from typing import Any

from soi_mlflow.errors import SoiInputError

SEED_MAX = 2**32 - 1


def check_seed(seed: Any, option: str = "seed", count: int = 1) -> int:
    """``seed`` if it and the ``count - 1`` seeds after it lie in [0, :data:`SEED_MAX`]."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= SEED_MAX:
        raise SoiInputError(f"{option} must be an integer in [0, {SEED_MAX}], got {seed!r}")
    if count > 1 and seed + count - 1 > SEED_MAX:
        raise SoiInputError(
            f"{option} {seed} with {count} seeds runs seeds up to {seed + count - 1}, past "
            f"{SEED_MAX}; pick a {option} of at most {SEED_MAX - count + 1}"
        )
    return seed

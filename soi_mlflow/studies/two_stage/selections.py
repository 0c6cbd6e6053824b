"""Which stage-1 training examples a two-stage study's second stage trains on: a
:class:`Selection` (SOI subsets, a cartography region, or the top or bottom fraction by a
cartography metric), the ``--stage2 SPEC`` text that names one (:func:`parse_spec`), the
random control of the same size (:func:`control_ids`) and each seed's selected examples,
a selection that is empty in a seed dropped as not identified (:func:`select_per_seed`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from soi_mlflow.analysis.cartography import REGIONS, forgetting_rank, regions
from soi_mlflow.analysis.identified import not_identified
from soi_mlflow.analysis.soi import Taxonomy, get_taxonomy
from soi_mlflow.errors import SoiInputError

METRICS = ("confidence", "variability", "correctness", "forgetting_events")
TIE_STREAM = 0x71E5  # the random stream that breaks ties in a top/bottom selection
CONTROL_STREAM = 0x2517  # the random stream of the control's subset


@dataclass(frozen=True)
class Selection:
    """Which stage-1 training examples stage 2 trains on: subsets of a registered SOI
    taxonomy, a region, or the top (or bottom) fraction by a cartography metric."""

    subsets: tuple[str, ...] = ()
    region: str | None = None
    metric: str | None = None
    fraction: float | None = None
    highest: bool = True
    taxonomy: str | Taxonomy = "default"

    def validate(self) -> None:
        kinds = sum([bool(self.subsets), self.region is not None, self.metric is not None])
        if kinds != 1:
            raise SoiInputError(
                "give exactly one stage-2 selection: subsets, a region, or a top fraction"
            )
        tax = get_taxonomy(self.taxonomy)
        if self.subsets:
            tax.resolve(list(self.subsets))
        if self.region is not None and self.region not in REGIONS:
            raise SoiInputError(f"unknown region {self.region!r}; regions: {', '.join(REGIONS)}")
        if self.metric is not None:
            if self.metric not in METRICS:
                raise SoiInputError(
                    f"unknown metric {self.metric!r}; metrics: {', '.join(METRICS)}"
                )
            if self.fraction is None or not 0 < self.fraction <= 1:
                raise SoiInputError(f"the top fraction must be in (0, 1], got {self.fraction!r}")

    def describe(self) -> str:
        if self.subsets:
            name = get_taxonomy(self.taxonomy).name
            return "subsets:" + ",".join(self.subsets) + ("" if name == "default" else f"@{name}")
        if self.region is not None:
            return f"region:{self.region}"
        return f"{'top' if self.highest else 'bottom'}:{self.metric}:{self.fraction}"

    def select(self, table: pd.DataFrame, seed: int = 0) -> np.ndarray:
        """The selected example ids of a stage-1 SOI table (computed with this
        selection's taxonomy). A top/bottom fraction ranks the examples that have the
        metric (too few observed epochs: NaN, not ranked) and breaks ties by a random
        draw seeded by ``seed``, so tied examples of every member are equally likely."""
        if self.subsets:
            names = get_taxonomy(self.taxonomy).resolve(list(self.subsets))
            keep = table["soi"].astype(str).isin(names)
            return table.loc[keep, "example_id"].to_numpy()
        if self.region is not None:
            return table.loc[regions(table).astype(str) == self.region, "example_id"].to_numpy()
        ranked = table.sort_values("example_id")  # the draw must not depend on row order
        values = (
            forgetting_rank(ranked)
            if self.metric == "forgetting_events"
            else ranked[self.metric].to_numpy(dtype=float)
        )
        has = ~np.isnan(values)
        ids, values = ranked["example_id"].to_numpy()[has], values[has]
        k = max(1, int(round(self.fraction * len(ids)))) if len(ids) else 0
        ties = np.random.default_rng([seed, TIE_STREAM]).random(len(ids))
        order = np.lexsort((ties, -values if self.highest else values))
        return ids[order[:k]]


def parse_top(value: str) -> tuple[str, float]:
    """``METRIC:FRACTION`` (``variability:0.3``)."""
    metric, _, fraction = value.partition(":")
    try:
        return metric, float(fraction)
    except ValueError:
        raise SoiInputError(
            f"expected METRIC:FRACTION such as variability:0.3, got {value!r}"
        ) from None


DEFAULT_SUBSETS = ("forgettable", "never_learned")
"""Stage 2's selection when none is given (with the default taxonomy), docs/design.md 2.6."""


SPEC_FORMS = "subsets:a,b (or a,b), region:NAME, top:METRIC:FRAC or bottom:METRIC:FRAC"


def parse_spec(spec: str, taxonomy: str | Taxonomy = "default") -> Selection:
    """One ``--stage2`` SPEC as a checked :class:`Selection`: ``subsets:a,b`` (or bare
    ``a,b``), ``region:NAME``, ``top:METRIC:FRAC`` or ``bottom:METRIC:FRAC``."""
    text = str(spec).strip()
    kind, sep, rest = text.partition(":")
    try:
        if sep and kind in ("top", "bottom"):
            metric, colon, fraction = rest.partition(":")
            if not colon:
                raise SoiInputError("no fraction")
            try:
                value = float(fraction)
            except ValueError:
                raise SoiInputError(f"fraction {fraction!r} is not a number") from None
            out = Selection(metric=metric, fraction=value, highest=kind == "top", taxonomy=taxonomy)
        elif sep and kind == "region":
            out = Selection(region=rest, taxonomy=taxonomy)
        elif sep and kind != "subsets":
            raise SoiInputError(f"unknown kind {kind!r}")
        else:
            names = tuple(n.strip() for n in (rest if sep else text).split(","))
            if not all(names):
                raise SoiInputError("an empty subset name")
            out = Selection(subsets=names, taxonomy=taxonomy)
        out.validate()
    except SoiInputError as exc:
        raise SoiInputError(
            f"stage2: bad SPEC {text!r} ({exc}); expected one of {SPEC_FORMS}"
        ) from None
    return out


def control_ids(ids: np.ndarray, seed: int, size: int) -> np.ndarray:
    """The random control of ``size`` examples among ``ids`` for ``seed``: the first
    ``size`` of one permutation drawn from the seed's own stream (:data:`CONTROL_STREAM`),
    so controls of one seed are nested (a smaller one is part of a larger one) and
    selections of equal size share one control."""
    order = np.sort(np.asarray(ids))  # the draw must not depend on row order
    return np.random.default_rng([seed, CONTROL_STREAM]).permutation(order)[:size]


EMPTY = (
    "the selection matches no training example of this seed's stage 1: no stage 2 and no "
    "control were trained for it"
)
"""The reason a (selection, seed) is not identified (``two_stage_not_identified``)."""
DROPPED_COLUMNS = ["selection", "seed", "stage1_run_id", "problem"]


def _runs(pairs: list[tuple[int, str]]) -> str:
    """``stage-1 run R (seed s)``, or ``stage-1 runs R0 (seed 0), R1 (seed 1)``."""
    many = "s" if len(pairs) > 1 else ""
    return f"stage-1 run{many} " + ", ".join(f"{run} (seed {seed})" for seed, run in pairs)


def select_per_seed(
    selections: list[Selection],
    tables: Mapping[int, pd.DataFrame],
    stage1: Mapping[int, str],
) -> tuple[dict[int, dict[str, np.ndarray]], pd.DataFrame]:
    """Each seed's selected example ids per selection (``tables``: each seed's stage-1 SOI
    table; ``stage1``: its run id), and the (selection, seed) pairs that select nothing,
    dropped as not identified (columns :data:`DROPPED_COLUMNS`). Only when every selection
    is empty in every seed is it an error: no stage 2 can be trained."""
    chosen: dict[int, dict[str, np.ndarray]] = {}
    dropped = []
    for seed, table in tables.items():
        chosen[seed] = {}
        for selection in selections:
            ids = selection.select(table, seed)
            if len(ids):
                chosen[seed][selection.describe()] = ids
            else:
                dropped.append((selection.describe(), seed, stage1[seed], not_identified(EMPTY)))
    if not any(chosen.values()):
        names = [s.describe() for s in selections]
        many = len(names) > 1
        raise SoiInputError(
            f"the stage-2 selection{'s' if many else ''} {', '.join(names)} "
            f"{'match' if many else 'matches'} no training example of "
            f"{_runs(list(stage1.items()))}; no stage-2 training was started"
        )
    return chosen, dropped_frame(dropped)


def dropped_frame(rows: list[tuple] | None = None) -> pd.DataFrame:
    """The dropped (selection, seed) pairs as a table of :data:`DROPPED_COLUMNS`."""
    return pd.DataFrame(rows or [], columns=DROPPED_COLUMNS).astype({"seed": "int64"})

"""Each ordered pair's factors, the frame that the factor analysis (``transfer_factors.py``)
and the transfer predictor (``transfer_predict.py``) take: the pair's surface similarity,
its proxy transfer, and the source's and the target's member profiles side by side."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from soi_mlflow.analysis.proxy_transfer import PROXY_TRANSFER
from soi_mlflow.errors import SoiInputError

KEYS = ["source", "target"]


def pair_factors(
    member_profiles: pd.DataFrame,
    pair_similarity: pd.DataFrame | None,
    pairs: pd.DataFrame | Iterable[tuple[str, str]],
    proxy: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per ordered off-diagonal (source, target) of ``pairs`` (a frame with
    ``source, target`` or (source, target) tuples): ``source, target``, the pair columns of
    ``pair_similarity`` (looked up in the other direction when only that one is there: the
    measures are symmetric; NaN when neither is), ``proxy_transfer`` of ``proxy``
    (``analysis/proxy_transfer.py``; this direction only: it is asymmetric), then
    ``source.<f>`` and ``target.<f>`` for each numeric column ``f`` of
    ``member_profiles`` (indexed by member)."""
    wanted = _pairs(pairs)
    out = wanted.copy()
    if pair_similarity is not None and len(pair_similarity):
        missing = [c for c in KEYS if c not in pair_similarity.columns]
        if missing:
            raise SoiInputError(f"pair_similarity: no column(s) {missing}; expected source, target")
        sim = pair_similarity.drop_duplicates(KEYS).set_index(KEYS)
        sim = sim.select_dtypes("number")
        direct = sim.reindex(pd.MultiIndex.from_frame(wanted))
        back = sim.reindex(pd.MultiIndex.from_frame(wanted[["target", "source"]]))
        merged = direct.to_numpy(float)
        merged = np.where(np.isnan(merged), back.to_numpy(float), merged)
        out = pd.concat([out, pd.DataFrame(merged, columns=sim.columns)], axis=1)
    if proxy is not None:
        missing = [c for c in (*KEYS, PROXY_TRANSFER) if c not in proxy.columns]
        if missing:
            raise SoiInputError(
                f"proxy: no column(s) {missing}; expected source, target, {PROXY_TRANSFER} "
                "(see proxy_transfer)"
            )
        known = proxy[proxy[PROXY_TRANSFER].notna()]  # a study's NaN does not hide another's
        gain = known.drop_duplicates(KEYS).set_index(KEYS)[PROXY_TRANSFER].astype(float)
        out[PROXY_TRANSFER] = gain.reindex(pd.MultiIndex.from_frame(wanted)).to_numpy()
    profiles = member_profiles.select_dtypes("number")
    for side in KEYS:
        values = profiles.reindex(wanted[side].to_numpy())
        values.columns = [f"{side}.{c}" for c in profiles.columns]
        out = pd.concat([out, values.reset_index(drop=True)], axis=1)
    return out


def _pairs(pairs: pd.DataFrame | Iterable[tuple[str, str]]) -> pd.DataFrame:
    if isinstance(pairs, pd.DataFrame):
        if any(c not in pairs.columns for c in KEYS):
            raise SoiInputError("pairs: expected the columns source, target")
        frame = pairs[KEYS]
    else:
        frame = pd.DataFrame(list(pairs), columns=KEYS)
    frame = frame.dropna().drop_duplicates()
    return frame[frame["source"] != frame["target"]].reset_index(drop=True)

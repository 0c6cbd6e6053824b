"""Spread over seeds, PCA of transfer matrices with missing cells, curve fits that cannot
start: the small aggregate fixes of issue 10, each on a case with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.curves import best_fit
from soi_mlflow.analysis.transfer import latent_traits, transfer_matrix
from soi_mlflow.errors import SoiInputError


def test_spread_over_seeds_is_the_sample_standard_deviation() -> None:
    scores = pd.DataFrame(
        [
            {"seed": s, "source": src, "target": "b", "score": v}
            for s, (alone, joint) in enumerate([(0.5, 0.6), (0.5, 0.8)])
            for src, v in ((None, alone), ("a", joint))
        ]
    )
    mean, std = transfer_matrix(scores, ["a", "b"])
    assert mean.loc["a", "b"] == pytest.approx(0.2)
    assert std.loc["a", "b"] == pytest.approx(np.std([0.1, 0.3], ddof=1))  # 0.141, not 0.1


def test_pca_refuses_a_transfer_matrix_with_missing_cells() -> None:
    names = ["a", "b", "c"]
    mean = pd.DataFrame(
        [[np.nan, 0.1, 0.2], [0.3, np.nan, np.nan], [0.0, -0.1, np.nan]], index=names, columns=names
    )
    with pytest.raises(SoiInputError, match=r"missing cell.*b -> c"):
        latent_traits(mean)
    mean.loc["b", "c"] = 0.05
    assert latent_traits(mean)["explained"]["explained_variance"].sum() == pytest.approx(1.0)


def test_a_curve_fit_that_cannot_start_is_refused_clearly() -> None:
    # scores in percent: both forms' starting points lie outside their bounds (c <= 2)
    with pytest.raises(SoiInputError, match="neither curve form could be fitted"):
        best_fit([50, 100, 200, 400], [61.0, 70.0, 76.0, 79.0])

"""The built-in suite's planted kinds behave as designed once a tiny encoder trains."""

from __future__ import annotations

import pytest

from soi_mlflow.analysis.profile import profile_by
from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.errors import SoiInputError
from soi_mlflow.training import TrainConfig, train

pytestmark = pytest.mark.e2e


def test_mislabeled_examples_stand_out(store) -> None:
    result = train(
        TrainConfig(
            MixtureSpec("builtin", "source", ("books",)),
            epochs=5,
            progress=False,
            tracking_uri=store,
        )
    )
    profile = profile_by(result.run_id, "planted", tracking_uri=store)
    clean, mislabeled, ambiguous = (profile.loc[k] for k in ("clean", "mislabeled", "ambiguous"))
    assert mislabeled["n"] >= 20 and ambiguous["n"] >= 20
    # far more mislabeled examples are never learned or forgotten, and hard to learn
    assert mislabeled["never_or_forgotten"] >= 0.7 and clean["never_or_forgotten"] <= 0.05
    assert mislabeled["hard_to_learn"] >= 0.5 and clean["hard_to_learn"] <= 0.05
    assert clean["always_correct"] >= 0.5 and mislabeled["always_correct"] <= 0.05
    # ambiguous examples sit between: less confident than clean, more variable
    assert mislabeled["confidence"] < ambiguous["confidence"] < clean["confidence"]
    assert ambiguous["variability"] > clean["variability"]
    with pytest.raises(SoiInputError, match="has no column 'quality'"):
        profile_by(result.run_id, "quality", tracking_uri=store)

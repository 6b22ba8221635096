"""Acceptance on real OASIS: affect probes of an ImageNet CNN vs raw pixels under LOTO and LOCO."""
from __future__ import annotations

import numpy as np
import pytest

from core.affect import TARGETS, cross_validated_predictions, metrics_table
from core.datasets import oasis
from core.extract import extract
from core.store import FeatureStore


@pytest.mark.slow
def test_real_model_beats_pixels_and_loses_r2_on_unseen_categories(oasis_root, isolated_cache) -> None:
    image_set = oasis(oasis_root)
    store = FeatureStore(isolated_cache / "features")
    targets = image_set.metadata[list(TARGETS)].to_numpy(dtype=float)
    groups = {"loto": image_set.metadata["group"].to_numpy(dtype=str),
              "loco": image_set.metadata["category"].to_numpy(dtype=str)}
    r2 = {}
    for spec in ("bundled:efficientnet_lite0", "pixels:32"):
        features = np.asarray(extract(image_set, spec, ["final"], store)["final"].features)
        for scheme, labels in groups.items():
            table = metrics_table(cross_validated_predictions(features, targets, labels, scheme)).set_index("target")
            r2[spec, scheme] = table["r2"].to_dict()
            print(spec, scheme, table[["r", "r2", "r2_lo", "r2_hi", "rmse"]].round(3).to_dict("index"))
    for scheme in groups:
        assert r2["bundled:efficientnet_lite0", scheme]["valence"] > r2["pixels:32", scheme]["valence"]
    assert r2["bundled:efficientnet_lite0", "loco"]["valence"] < r2["bundled:efficientnet_lite0", "loto"]["valence"]
    assert 0.2 < r2["bundled:efficientnet_lite0", "loto"]["valence"] < 0.9

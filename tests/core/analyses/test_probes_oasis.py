"""Acceptance on real OASIS: valence R² curve of the bundled EfficientNet-Lite0 over all its blocks (LOTO)."""
from __future__ import annotations

import numpy as np
import pytest

from core.analyses.affect import cross_validated_predictions, metrics_table
from core.analyses.cv import CrossValidation
from core.analyses.probes import ProbeSettings, layer_probe_curves, summary_table
from core.data.datasets import oasis
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore

SPEC = "bundled:efficientnet_lite0"


@pytest.mark.slow
def test_bundled_valence_curve_rises_with_depth_under_loto(oasis_root, isolated_cache) -> None:
    image_set = oasis(oasis_root)
    store = FeatureStore(isolated_cache / "features")
    final = np.asarray(extract(image_set, describe(SPEC), "all", store)["final"].features)
    curves = layer_probe_curves(image_set, [describe(SPEC)], store, settings=ProbeSettings(scheme="loto"), probes=("valence",))
    print(curves[["layer", "depth", "score", "ci_lo", "ci_hi", "fold_sd"]].round(3).to_string())
    summary = summary_table(curves).iloc[0]
    print(summary.to_dict())
    assert list(curves["layer"]) == ["stem", *(f"blocks.{i}" for i in range(7)), "final"]
    score = curves.set_index("layer")["score"]
    assert score["stem"] < 0.05 < score["blocks.3"] < score["blocks.5"]  # affect emerges with depth
    assert summary["peak_depth"] >= 0.5 and summary["centre_of_mass"] > 0.6 and summary["late_fraction"] > 0.5
    metadata = image_set.metadata
    affect = metrics_table(cross_validated_predictions(final, metadata[["valence", "arousal"]].to_numpy(float),
                                                       metadata["group"].to_numpy(str), CrossValidation("loto")))
    assert score["final"] == affect.set_index("target").loc["valence", "r2"]  # the Affect page's number

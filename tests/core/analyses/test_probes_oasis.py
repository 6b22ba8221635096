"""Acceptance on real OASIS: valence R² curve of the bundled EfficientNet-Lite0 over all its blocks (LOTO)."""
from __future__ import annotations

import pytest

from core.analyses.affect import metrics_table
from core.analyses.probes import ProbeSettings, layer_probe_curves, summary_table
from core.data.datasets import oasis
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from tests.core.analyses.test_affect_oasis import EFFICIENTNET as SPEC
from tests.core.analyses.test_affect_oasis import oasis_predictions


@pytest.mark.slow
def test_bundled_valence_curve_rises_with_depth_under_loto(oasis_root, isolated_cache) -> None:
    image_set = oasis(oasis_root)
    store = FeatureStore(isolated_cache / "features")
    extract(image_set, describe(SPEC), "all", store)  # a no-op after the affect test, which extracts every layer
    curves = layer_probe_curves(image_set, [describe(SPEC)], store, settings=ProbeSettings(scheme="loto"),
                                probes=("valence",))
    print(curves[["layer", "depth", "score", "ci_lo", "ci_hi", "fold_sd"]].round(3).to_string())
    summary = summary_table(curves).iloc[0]
    print(summary.to_dict())
    # Measured: stem -0.018, blocks.3 0.118, blocks.5 0.263 (peak), blocks.6 0.245, final 0.227; peak depth 0.75,
    # centre of mass 0.750, late fraction 0.649.
    assert list(curves["layer"]) == ["stem", *(f"blocks.{i}" for i in range(7)), "final"]
    score = curves.set_index("layer")["score"]
    assert score["stem"] < 0.05 < score["blocks.3"] < score["blocks.5"]  # affect emerges with depth
    assert summary["peak_depth"] >= 0.5 and summary["centre_of_mass"] > 0.6 and summary["late_fraction"] > 0.5
    # The Affect page's number: its LOTO predictions from the affect test (computed here if it did not run).
    affect = metrics_table(oasis_predictions(oasis_root, isolated_cache, SPEC, "loto"))
    assert score["final"] == affect.set_index("target").loc["valence", "r2"]

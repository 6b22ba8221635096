"""The Similarity page on the 92-image folder: pixels:32 against the human IT group, given as RDMs only. RSA equals
`core.analyses.rsa` on the layer's RDM and the group's mean RDM; CKA says it does not apply, never a blank."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.analyses.rdm import rdm
from core.analyses.rsa import compare_rdms, condensed
from core.data.datasets import load_dataset
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from tests.views.pages import open_page, press_and_wait

ENCODER, LAYER, GROUP = "pixels:32", "pixels:32 · final", "rdm · hIT"


@pytest.fixture(scope="module")
def pixels(kriegeskorte92: Path, isolated_cache: Path):
    image_set = load_dataset(f"neural:{kriegeskorte92}", isolated_cache)
    features = extract(image_set, describe(ENCODER), ["final"], FeatureStore(isolated_cache / "features"))
    return image_set, np.asarray(features["final"].features)


def test_a_layer_against_human_it_given_as_rdms(pixels, kriegeskorte92: Path) -> None:
    image_set, features = pixels
    app = press_and_wait(open_page("views/similarity.py", {
        "dataset_kind": "neural", "dataset_path_neural": str(kriegeskorte92), "encoders": [ENCODER],
        "similarity.measures": ["rsa_pearson", "rsa_spearman", "cka_linear"], "similarity.matrix": "reference",
        "similarity.references": [GROUP], "similarity.rdm_metric": "correlation"}), "Compute")
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    assert len(charts) == 2  # a depth curve per RSA measure; CKA not applicable
    assert any("Linear CKA" in info.value and "rdm · hIT is given as RDMs only" in info.value for info in app.info)
    table = next(frame.value for frame in app.dataframe if "measure" in frame.value.columns).set_index("measure")
    layer = condensed(rdm(features, "correlation", dtype=np.float64)[None])
    group = condensed(image_set.rdm_reference("hIT").mean[None])
    for measure, method in (("rsa_pearson", "corr"), ("rsa_spearman", "spearman")):
        assert table.loc[measure, "value"] == pytest.approx(compare_rdms(layer, group, method)[0, 0], abs=1e-9)
    assert np.isnan(table.loc["cka_linear", "value"])
    assert table.loc["cka_linear", "note"] == "not applicable: rdm · hIT is given as RDMs only"

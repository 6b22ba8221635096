"""The Similarity page through AppTest on the demo: the human embedding vs raw pixels (the demo's human embedding is
the images' coarse colour layout, so the two are strongly alike), every figure, bootstrap CIs, stored results."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.analyses.similarity import compare
from core.data.datasets import demo
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from tests.paths import APP
from tests.views.pages import open_page, press_and_wait

ENCODER = "pixels:32"
HUMAN = "human · demo human"
PIXELS = f"{ENCODER} · final"


@pytest.fixture(scope="module")
def pixel_features(isolated_cache: Path):
    image_set = demo(isolated_cache)
    features = extract(image_set, describe(ENCODER), ["final"], FeatureStore(isolated_cache / "features"))
    return image_set, np.asarray(features["final"].features)


def run_page(**state) -> AppTest:
    return open_page("views/similarity.py", {"encoders": [ENCODER], **state})


def compute(app: AppTest, timeout_s: float = 240) -> AppTest:
    return press_and_wait(app, "Compute", timeout_s)


@pytest.mark.slow
def test_all_pairs_matrix_shows_every_measure_with_controls_and_is_stored(pixel_features) -> None:
    image_set, pixels = pixel_features
    measures = ["cka_linear", "rsa_spearman", "procrustes"]
    app = run_page(**{"similarity.measures": measures, "similarity.matrix": "pairs",
                      "similarity.sources": [HUMAN, PIXELS]})
    assert any("press **Compute**" in info.value for info in app.info)
    compute(app)
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    assert len(charts) == 4  # a heatmap per measure and the agreement plot
    cka = charts[0]["data"][0]
    assert cka["x"] == [HUMAN, PIXELS, "control: rotation", "control: self", "control: shuffle"]
    expected = compare({HUMAN: image_set.reference_embedding, PIXELS: pixels}, measures=measures)
    table = next(frame.value for frame in app.dataframe if "measure" in frame.value.columns)
    cell = table[(table["measure"] == "cka_linear") & (table["row"] == HUMAN) & (table["column"] == PIXELS)]
    assert cell["value"].iloc[0] == pytest.approx(expected.value("cka_linear", HUMAN, PIXELS), rel=1e-6)
    assert cell["value"].iloc[0] > 0.9  # measured 0.999: the human embedding is the pixels' colour layout plus noise
    identity = table[(table["row"] == table["column"]) & (table["measure"] == "procrustes")]["value"]
    np.testing.assert_allclose(identity, 0.0, atol=1e-6)
    assert all(widget.help for widget in [*app.main.button, *app.multiselect, *app.number_input])
    # Stored: a new session opens the same matrix without computing it again.
    again = run_page(**{"similarity.measures": measures, "similarity.matrix": "pairs",
                        "similarity.sources": [HUMAN, PIXELS]})
    assert len(again.get("plotly_chart")) == 4
    assert next(button for button in again.main.button if button.label == "Compute").disabled


def test_depth_curve_vs_the_reference_with_bootstrap_and_paired_rows(pixel_features) -> None:
    app = run_page(**{"similarity.measures": ["cka_linear"], "similarity.matrix": "reference",
                      "similarity.references": [HUMAN], "similarity.bootstrap_on": True, "similarity.bootstrap": 30})
    compute(app)
    curve = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert curve["layout"]["title"]["text"].startswith("Linear CKA vs the reference")
    table = next(frame.value for frame in app.dataframe if "measure" in frame.value.columns)
    assert (table["ci_low"] <= table["value"]).all() and (table["value"] <= table["ci_high"]).all()


def test_with_one_source_the_page_says_what_to_do(isolated_cache: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state["encoders"] = ["untrained:timm:resnet50"]
    app.switch_page("views/similarity.py").run()
    assert not app.exception
    assert any("needs two representations" in info.value for info in app.info)

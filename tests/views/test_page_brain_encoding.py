"""The Brain page's encoding section through AppTest on simulated response patterns (tests/simulated_patterns.py):
it computes in the background, its numbers are the encoding step's, both figures draw, every widget has help."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.data.datasets import load_dataset
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from core.studies.analyses.encoding import EncodingSettings, compute
from tests.simulated_patterns import write_pattern_folder
from tests.views.pages import press_and_wait
from tests.views.test_page_brain import run_page as brain_page

ENCODER = "pixels:8"


@pytest.fixture(scope="module")
def folder(tmp_path_factory, isolated_cache: Path) -> Path:
    root = write_pattern_folder(tmp_path_factory.mktemp("encoding_page") / "sim", n_items=20, n_units=10, seed=4)
    extract(load_dataset(f"neural:{root}", isolated_cache), describe(ENCODER), ["final"],
            FeatureStore(isolated_cache / "features"))
    return root


def run_page(folder: Path, **state) -> AppTest:
    return brain_page(folder, encoders=[ENCODER], **state)


def test_the_encoding_section_computes_and_draws_the_step_s_numbers(folder: Path, isolated_cache: Path) -> None:
    app = run_page(folder, **{"encoding.n_splits": 4, "encoding.view_group": "IT"})
    assert any("press **Compute encoding models**" in info.value for info in app.info)
    press_and_wait(app, "Compute encoding models", 120)
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    titles = [chart["layout"]["title"]["text"] for chart in charts]
    assert len(charts) == 2 and titles[0].startswith("Encoding models of IT") and "r against the ceiling" in titles[1]
    panels = [annotation["text"] for annotation in charts[0]["layout"]["annotations"]]
    assert any("raw" in text for text in panels) and any("noise-ceiling-normalised" in text for text in panels)
    assert any(text.startswith("ceiling: median √reliability") for text in panels)
    shown = next(frame.value for frame in app.dataframe if "median_r_normalised" in frame.value.columns)
    image_set = load_dataset(f"neural:{folder}", isolated_cache)
    features = {(ENCODER, "final"): extract(image_set, describe(ENCODER), ["final"],
                                            FeatureStore(isolated_cache / "features"))["final"].features}
    expected = compute(EncodingSettings(n_splits=4), image_set, features, {ENCODER: ["final"]})["layers"]
    expected = expected[expected["group"] == "IT"]
    np.testing.assert_allclose(shown["median_r"], expected["median_r"], atol=1e-12)
    assert (shown["median_r"] > 0.6).all()
    widgets = [*app.main.button, *app.multiselect, *app.selectbox, *app.number_input, *app.toggle]
    assert all(widget.help for widget in widgets if widget.key and widget.key.startswith("encoding")), \
        [widget.key for widget in widgets if not widget.help]
    assert not any("neural:<folder>" in info.value for info in app.info)  # patterns alone open the page


def test_too_many_folds_for_the_items_say_so(folder: Path) -> None:
    app = run_page(folder, **{"encoding.n_splits": 15})
    assert any("at most 10 folds" in warning.value for warning in app.warning)


def test_a_link_with_the_encoding_settings_draws_them(folder: Path) -> None:
    """As tests/views/test_settings_in_url.py does for every page: each encoding setting from the URL is shown."""
    from tests.views.test_settings_in_url import another_value, drawn, settings_widgets, shown

    state = {"dataset_kind": "neural", "dataset_path_neural": str(folder)}
    widgets = settings_widgets(drawn("views/brain.py", state=state), "encoding")
    assert {"encoding.n_splits", "encoding.min_reliability", "encoding.alpha_grid", "encoding.alpha_per_unit",
            "encoding.seed", "encoding.pattern_groups"} <= set(widgets), sorted(widgets)
    changed = {key: another_value(kind, widget) for key, (kind, widget) in widgets.items()}
    linked = settings_widgets(drawn("views/brain.py", {key: url for key, (url, _) in changed.items()}, state),
                              "encoding")
    assert {key: shown(*linked[key]) for key in changed} == {key: value for key, (_, value) in changed.items()}


def test_a_dataset_with_rdms_and_patterns_shows_both_parts(tmp_path: Path, isolated_cache: Path) -> None:
    from scipy.spatial.distance import pdist, squareform

    root = write_pattern_folder(tmp_path / "both", n_items=12, n_units=4, subjects=1, noise_group=False)
    (root / "rdms").mkdir()
    rng = np.random.default_rng(0)
    np.save(root / "rdms" / "IT_subjects.npy", np.array([squareform(pdist(rng.normal(size=(12, 3))))
                                                         for _ in range(3)]))
    extract(load_dataset(f"neural:{root}", isolated_cache), describe(ENCODER), ["final"],
            FeatureStore(isolated_cache / "features"))
    app = run_page(root, **{"encoding.n_splits": 4})
    labels = [button.label for button in app.main.button]
    assert "Compute encoding models" in labels and "Compute" in labels

"""The Layer probes page through AppTest: demo, an untrained ViT and the bundled EfficientNet."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.datasets import demo
from core.extract import extract
from core.store import FeatureStore

APP = str(Path(__file__).resolve().parents[1] / "app.py")
VIT = "untrained:timm:vit_tiny_patch16_224"
ENCODERS = ["bundled:efficientnet_lite0", VIT]


@pytest.fixture(scope="module")
def all_layers(isolated_cache: Path):
    image_set = demo(isolated_cache)
    for spec in ENCODERS:
        extract(image_set, spec, "all", FeatureStore(isolated_cache / "features"))
    return image_set


def values(array) -> np.ndarray:
    """A plotly JSON array: plain list or plotly's typed-array dict {dtype, bdata}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def run_page(page: str, **state) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["extra_encoders"] = [VIT]
    app.session_state["encoders"] = ENCODERS
    for key, value in state.items():
        app.session_state[key] = value
    app.switch_page(page).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


@pytest.mark.slow
def test_probe_page_draws_both_views_and_summaries_and_matches_the_affect_page(all_layers) -> None:
    app = run_page("views/probes.py", probes_scheme="kfold", probes_category_scheme="kfold", probes_k=3)
    depth_chart, index_chart = (json.loads(chart.proto.spec) for chart in app.get("plotly_chart"))
    lines = [trace for trace in depth_chart["data"] if trace.get("mode") == "lines+markers"]
    assert len(lines) == 2 * 3  # two encoders x (valence, arousal, category)
    bands = [trace for trace in depth_chart["data"] if trace.get("fill") == "toself"]
    assert len(bands) == len(lines)
    vit_valence = next(trace for trace in lines if trace["name"] == VIT and trace["xaxis"] == "x")
    depth = values(vit_valence["x"])
    assert len(depth) == 13 and depth[0] == 0 and depth[-1] == 1
    assert vit_valence["customdata"][0][0] == "blocks.0"  # hover names the layer
    index_lines = [trace for trace in index_chart["data"] if trace.get("mode") == "lines+markers"]
    assert max(values(trace["x"]).max() for trace in index_lines) == 12  # ViT-Tiny: 12 blocks + final

    summaries = next(frame.value for frame in app.dataframe if "centre_of_mass" in frame.value.columns)
    assert len(summaries) == 6 and summaries["centre_of_mass"].between(0, 1).all()
    assert set(summaries["n_layers"]) == {9, 13}

    affect = run_page("views/affect.py", affect_schemes=["kfold"], affect_k=3)
    r2_bars = [trace for trace in json.loads(affect.get("plotly_chart")[0].proto.spec)["data"] if trace["type"] == "bar"]
    for target, bars in zip(("valence", "arousal"), r2_bars):
        affect_r2 = dict(zip(values(bars["x"]), values(bars["y"])))
        for spec in ENCODERS:
            final = next(trace for trace in lines if trace["name"] == spec and trace["xaxis"] ==
                         ("x" if target == "valence" else "x2"))
            np.testing.assert_allclose(values(final["y"])[-1], affect_r2[f"{spec} [final]"], rtol=0, atol=1e-12)


def test_page_without_extracted_layers_says_what_to_do(isolated_cache: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state["encoders"] = ["untrained:timm:resnet50"]
    app.switch_page("views/probes.py").run()
    assert not app.exception
    assert any("all its layers extracted" in info.value for info in app.info)

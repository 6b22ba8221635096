"""The Layer probes page through AppTest: demo, an untrained ViT, the bundled EfficientNet and raw pixels.

Probe fits run as a background job started by "Compute probe curves"; the tests poll with
app.run() until the curves appear, as a user waits for the progress bar.
"""
from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.analyses.probes import ProbeSettings, fit_rate_key, pending_fits
from core.data.datasets import demo
from core.data.demo import DEMO_FOLDER
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from core.jobs import RATES_FILE, RateStore
from tests.paths import APP
from views.ui import resources

VIT = "untrained:timm:vit_tiny_patch16_224"
SMALL_ENCODER = "untrained:timm:test_vit"  # 6 blocks + final at 160 px: extracted in seconds
ENCODERS = ["bundled:efficientnet_lite0", VIT]
PIXELS_POOLING = describe("pixels:8").poolings[0]  # what the sidebar's default pooling resolves to for pixels


@pytest.fixture(scope="module")
def all_layers(isolated_cache: Path):
    image_set = demo(isolated_cache)
    for spec in ENCODERS:
        extract(image_set, describe(spec), "all", FeatureStore(isolated_cache / "features"))
    return image_set


@pytest.fixture(scope="module")
def pixels(isolated_cache: Path):
    image_set = demo(isolated_cache)
    extract(image_set, describe("pixels:8"), "all", FeatureStore(isolated_cache / "features"))
    return image_set


def values(array) -> np.ndarray:
    """A plotly JSON array: plain list or plotly's typed-array dict {dtype, bdata}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def run_page(page: str, encoders=tuple(ENCODERS), **state) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["extra_encoders"] = [VIT]
    app.session_state["encoders"] = list(encoders)
    for key, value in state.items():
        app.session_state[key] = value
    app.switch_page(page).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def compute_button(app: AppTest):
    return next((button for button in app.main.button if button.label.startswith("Compute probe curves")), None)


def compute_curves(app: AppTest, timeout_s: float = 600) -> AppTest:
    """Press Compute probe curves, then wait for the curves."""
    compute_button(app).click().run()
    return wait_for_curves(app, timeout_s)


def wait_for_curves(app: AppTest, timeout_s: float = 600) -> AppTest:
    """Rerun (as the progress fragment does when the jobs end) until every encoder's curves are drawn.

    An encoder whose job ends first is drawn while the others still compute, under the button.
    """
    deadline = time.time() + timeout_s
    while (compute_button(app) is not None or not app.get("plotly_chart")) and time.time() < deadline:
        assert not app.exception, [exception.value for exception in app.exception]
        assert not app.error, [error.value for error in app.error]
        time.sleep(0.5)
        app.run()
    assert compute_button(app) is None and app.get("plotly_chart"), "curves not all drawn within the timeout"
    return app


@pytest.mark.slow
def test_probe_page_draws_both_views_and_summaries_and_matches_the_affect_page(all_layers) -> None:
    app = compute_curves(run_page("views/probes.py", **{"probes.scheme": "kfold", "probes.category_scheme": "kfold",
                                                         "probes.n_splits": 3}))
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

    affect = run_page("views/affect.py", **{"affect.schemes": ["kfold"], "affect.n_splits": 3})
    r2_bars = [trace for trace in json.loads(affect.get("plotly_chart")[0].proto.spec)["data"] if trace["type"] == "bar"]
    for target, bars in zip(("valence", "arousal"), r2_bars):
        affect_r2 = dict(zip(values(bars["x"]), values(bars["y"])))
        for spec in ENCODERS:
            final = next(trace for trace in lines if trace["name"] == spec and trace["xaxis"] ==
                         ("x" if target == "valence" else "x2"))
            np.testing.assert_allclose(values(final["y"])[-1], affect_r2[f"{spec} [final]"], rtol=0, atol=1e-12)


@pytest.fixture()
def fresh_cache(isolated_cache: Path, tmp_path: Path, monkeypatch) -> Path:
    """A cache with the demo and nothing extracted (the session's holds other tests' features and scores)."""
    demo(isolated_cache)
    shutil.copytree(isolated_cache / DEMO_FOLDER, tmp_path / DEMO_FOLDER)
    monkeypatch.setenv("REPSCOPE_CACHE", str(tmp_path))
    return tmp_path


def test_the_default_button_names_the_extraction_and_every_encoder(fresh_cache: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=120)
    app.switch_page("views/probes.py").run()  # the sidebar's default encoders, nothing extracted
    assert not app.exception, [exception.value for exception in app.exception]
    assert compute_button(app).label == ("Compute probe curves: extract all 9 layers of bundled:efficientnet_lite0, "
                                         "then 18 fits; extract pixels:32 (one layer), then 2 fits")
    assert not compute_button(app).disabled and "extracted first" in compute_button(app).help
    assert any("Press **Compute probe curves**: it extracts what is missing" in info.value for info in app.info)
    assert not any("Waiting for" in caption.value for caption in app.caption) and not app.get("plotly_chart")


@pytest.mark.slow  # 27-38 s on two busy cores: 384 images through a small ViT, then 16 fits
def test_one_press_extracts_the_missing_layers_then_fits_as_one_job_per_encoder(fresh_cache: Path) -> None:
    encoders = ["pixels:8", SMALL_ENCODER]
    app = run_page("views/probes.py", encoders=encoders, **{"probes.scheme": "kfold", "probes.category_scheme": "kfold",
                                                            "probes.n_splits": 3})
    assert compute_button(app).label == (f"Compute probe curves: extract pixels:8 (one layer), then 2 fits; extract "
                                         f"all 7 layers of {SMALL_ENCODER}, then 14 fits")
    registry = resources.job_registry()
    earlier = {status.key for status in registry.statuses()}
    wait_for_curves(compute_button(app).click().run(), timeout_s=300)  # one press, nothing else
    depth_chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    lines = [trace for trace in depth_chart["data"] if trace.get("mode") == "lines+markers"]
    points = {(trace["name"], trace["xaxis"]): len(values(trace["x"])) for trace in lines}
    assert points == {(spec, axis): 7 if spec == SMALL_ENCODER else 1  # valence, arousal, category of each
                      for spec in encoders for axis in ("x", "x2", "x3")}
    jobs = [status for status in registry.statuses() if status.key not in earlier]
    # one job per encoder, its progress counting the 384 images extracted, then (a stage of its own) the folds
    assert sorted((job.label, job.state, job.stage, job.done, job.total) for job in jobs) == [
        ("pixels:8", "done", "fitting", 2 * 3, 2 * 3), (SMALL_ENCODER, "done", "fitting", 14 * 3, 14 * 3)]


def test_pixels_alone_fit_in_the_background_then_draw_at_once_from_the_cache(pixels, isolated_cache: Path) -> None:
    state = {"probes.scheme": "kfold", "probes.category_scheme": "kfold", "probes.n_splits": 4}
    app = run_page("views/probes.py", encoders=["pixels:8"], **state)
    assert not app.get("plotly_chart")  # nothing is fitted in the foreground
    button = compute_button(app)
    assert button.label == "Compute probe curves: 2 fits of pixels:8" and not button.disabled and button.help
    assert any("No estimate yet" in caption.value for caption in app.caption)
    assert any("Press **Compute probe curves**" in info.value for info in app.info)

    compute_button(app).click().run()
    assert compute_button(app).disabled  # the job runs: no second start
    app.radio(key="probes.band").set_value("ci").run()  # a widget change and a page switch leave the job running
    app.switch_page("views/features.py").run()
    wait_for_curves(app.switch_page("views/probes.py").run())
    depth_chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    pixel_lines = [trace for trace in depth_chart["data"] if trace.get("mode") == "lines+markers"]
    assert [list(values(trace["x"])) for trace in pixel_lines] == [[1.0]] * 3  # one layer, the final one: depth 1
    low, high = depth_chart["layout"]["xaxis"]["range"]
    assert -0.05 < low < 0 and 1 < high < 1.05  # was plotly's [0, 2] around the lone point
    rates = RateStore(isolated_cache / RATES_FILE)
    key = fit_rate_key(pixels, "pixels:8", [("final", "affect"), ("final", "category")],
                       ProbeSettings("kfold", "kfold", 4), PIXELS_POOLING)
    deadline = time.time() + 30  # the curves draw once both fits are cached, a moment before the job records its rate
    while rates.seconds_per_unit(key) is None and time.time() < deadline:
        time.sleep(0.2)
    assert 0 < rates.seconds_per_unit(key) < 30  # seconds per fold of this run, kept for the next estimate

    again = run_page("views/probes.py", encoders=["pixels:8"], **state)  # a new session: everything is cached
    assert compute_button(again) is None and len(again.get("plotly_chart")) == 2


def test_the_button_shows_the_estimate_from_the_last_measured_rate(pixels, isolated_cache: Path) -> None:
    state = {"probes.scheme": "kfold", "probes.category_scheme": "kfold", "probes.n_splits": 7}
    settings = ProbeSettings("kfold", "kfold", 7)
    fits = pending_fits(pixels, describe("pixels:8"), settings=settings, probes=("valence", "arousal", "category"))
    RateStore(isolated_cache / RATES_FILE).record(fit_rate_key(pixels, "pixels:8", fits, settings, PIXELS_POOLING),
                                                  40.0)
    app = run_page("views/probes.py", encoders=["pixels:8"], **state)
    assert any(caption.value == "Estimate — pixels:8: about 9 min 20 s (last measured 40 s per fold)"
               for caption in app.caption)  # 2 fits x 7 folds x 40 s

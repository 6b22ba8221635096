"""Every page, once it has results, shows a "Provenance" expander naming the encoder spec and the dataset fingerprint,
and every download button on it carries the provenance (AppTest on the demo, raw-pixel encoders for speed)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data.datasets import ImageSet, demo
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from core.lab.runs import TrainConfig
from tests.paths import APP

PIXELS = "pixels:32"


@pytest.fixture(scope="module")
def demo_pixels(isolated_cache: Path) -> ImageSet:
    """The demo with the final layer of pixels:32 (every page's features) and all layers of pixels:8 (probes)."""
    image_set = demo(isolated_cache)
    store = FeatureStore(isolated_cache / "features")
    extract(image_set, describe(PIXELS), ["final"], store)
    extract(image_set, describe("pixels:8"), "all", store)
    return image_set


def open_page(page: str, encoders: list[str], **state) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["encoders"] = encoders
    for key, value in state.items():
        app.session_state[key] = value
    app.switch_page(page).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def press_and_wait(app: AppTest, label: str, done, timeout_s: float = 240) -> AppTest:
    """Press the button whose label starts with `label`, then rerun (as the job fragment does) until `done(app)`."""
    next(button for button in app.main.button if button.label.startswith(label)).click().run()
    deadline = time.time() + timeout_s
    while not done(app) and time.time() < deadline:
        assert not app.exception, [exception.value for exception in app.exception]
        time.sleep(0.5)
        app.run()
    assert done(app), f"no result within {timeout_s} s after pressing {label!r}"
    return app


def provenance_tables(app: AppTest) -> list[tuple[str, pd.DataFrame | None, dict]]:
    """(caption text, feature-set table or None, parameters) of every "Provenance" expander on the page."""
    found = []
    for expander in app.expander:
        if expander.label == "Provenance":
            frames = [frame.value for frame in expander.dataframe]
            found.append(("\n".join(caption.value for caption in expander.caption), frames[0] if frames else None,
                          json.loads(expander.json[0].value) if len(expander.json) else {}))
    return found


def assert_provenance(app: AppTest, spec: str, fingerprint: str, *, at_least: int) -> pd.DataFrame:
    """At least `at_least` expanders, each naming the dataset fingerprint; the rows of `spec` in their tables."""
    shown = provenance_tables(app)
    assert len(shown) >= at_least
    assert all(f"fingerprint `{fingerprint}`" in caption for caption, _, _ in shown)
    rows = pd.concat([table[table["encoder"] == spec] for _, table, _ in shown if table is not None])
    buttons = app.main.download_button
    assert buttons and all("provenance" in button.help for button in buttons), [b.label for b in buttons]
    return rows


def test_features_page(demo_pixels: ImageSet) -> None:
    app = open_page("views/features.py", [PIXELS])
    rows = assert_provenance(app, PIXELS, demo_pixels.fingerprint, at_least=4)  # 3 dataset figures + extraction
    assert list(rows["resolution"]) == ["32x32"] and list(rows["images_fingerprint"]) == [demo_pixels.fingerprint]
    assert provenance_tables(app)[0][2] == {"dataset_spec": "demo", "images": 384}


def test_affect_page(demo_pixels: ImageSet) -> None:
    app = open_page("views/affect.py", [PIXELS], **{"affect.schemes": ["kfold"], "affect.geometry_scheme": "kfold",
                                                    "affect.n_splits": 3})
    rows = assert_provenance(app, PIXELS, demo_pixels.fingerprint, at_least=4)  # R², error field, occupancy, rose
    assert set(rows["crop"]) == {"none (whole image resized)"} and set(rows["view"]) == {"clean"}
    assert provenance_tables(app)[0][2]["cross_validation"] == ["kfold|3|0"]


def test_probes_page(demo_pixels: ImageSet) -> None:
    app = open_page("views/probes.py", ["pixels:8"], **{"probes.scheme": "kfold", "probes.category_scheme": "kfold",
                                                        "probes.n_splits": 3})
    press_and_wait(app, "Compute probe curves", lambda app: len(app.get("plotly_chart")) == 2)
    rows = assert_provenance(app, "pixels:8", demo_pixels.fingerprint, at_least=2)  # one per tab
    assert set(rows["resolution"]) == {"8x8"}
    assert provenance_tables(app)[0][2]["category_scheme"] == "kfold"


def test_alignment_page(demo_pixels: ImageSet) -> None:
    app = open_page("views/alignment.py", [PIXELS], **{
        "alignment.n_eps": 2, "alignment.n_inits": 1, "alignment.metric": "euclidean", "alignment.normalise": True,
        "alignment.eps_low.euclidean": 1e-2, "alignment.eps_high.euclidean": 1e-1})
    press_and_wait(app, "Run alignment", lambda app: bool(app.get("plotly_chart")))
    rows = assert_provenance(app, PIXELS, demo_pixels.fingerprint, at_least=5)
    assert set(rows["layer"]) == {"final"}
    parameters = provenance_tables(app)[0][2]
    assert parameters["source"] == "reference|human · demo human||" and parameters["eps_range"] == [1e-2, 1e-1]


def test_manifolds_page(demo_pixels: ImageSet) -> None:
    app = open_page("views/manifolds.py", [PIXELS], **{"manifolds.m": 2, "manifolds.images_per_class": 2,
                                                      "manifolds.map_parameter": 2})
    press_and_wait(app, "Extract views", lambda app: bool(app.get("plotly_chart")))
    rows = assert_provenance(app, PIXELS, demo_pixels.fingerprint, at_least=7)  # 2 per encoder, 4 shared, metrics
    assert rows["view"].str.startswith("clamp(size=224,").all() and rows["view"].str.endswith("|m=2|seed=0").all()
    assert provenance_tables(app)[0][2]["views_per_image"] == 2


def test_inductive_bias_page(demo_pixels: ImageSet) -> None:
    app = open_page("views/inductive_bias.py", [PIXELS], **{
        "inductive_bias.images_per_class": 4, "inductive_bias.families": ["gamma"],
        "inductive_bias.levels.gamma": [0.5], "inductive_bias.scheme": "kfold", "inductive_bias.n_splits": 2,
        "inductive_bias.k": 3})
    press_and_wait(app, "Run (", lambda app: len(app.get("plotly_chart")) == 4)
    rows = assert_provenance(app, PIXELS, demo_pixels.fingerprint, at_least=5)  # gallery, 3 curves, metrics
    assert sorted(set(rows["view"])) == ["clean", "corrupt:gamma_0.5"]
    assert provenance_tables(app)[-1][2]["corruptions"] == ["gamma_0.5"]


def test_lab_page(demo_pixels: ImageSet) -> None:
    settings = dict(epochs=1, max_images=16, image_size=32, batch_size=16)
    app = open_page("views/lab.py", [PIXELS], **{"lab.objectives": ["supervised"],
                                                 **{f"lab.{name}": value for name, value in settings.items()}})
    run_id = TrainConfig("supervised", **settings).run_id
    label = f"supervised · {run_id}"

    def trained(app: AppTest) -> bool:
        """The loss curves' provenance names the run's finished weights."""
        return any(parameters.get("runs", {}).get(label, {}).get("weights", "").startswith("sha256:")
                   for _, _, parameters in provenance_tables(app))

    press_and_wait(app, "Train", trained)
    caption, table, parameters = provenance_tables(app)[0]
    assert f"fingerprint `{demo_pixels.fingerprint}`" in caption and table is None  # a run, not stored features
    run = parameters["runs"][label]
    assert run["spec"] == f"lab:{run_id}" and run["image_size"] == 32 and run["epochs_done"] == 1
    assert all("provenance" in button.help for button in app.main.download_button)

"""The Affect page through AppTest: demo with two encoders and both schemes; inputs it cannot analyse."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.analyses.affect import ceiling_table
from core.data.datasets import demo, manifest
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from tests.paths import APP

ENCODERS = ["bundled:efficientnet_lite0", "pixels:32"]


def affect_page(**sidebar) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=300)
    app.switch_page("views/affect.py").run()
    for key, value in sidebar.items():
        getattr(app.sidebar, "selectbox" if key == "dataset_kind" else "text_input")(key=key).set_value(value)
        app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


@pytest.fixture(scope="module")
def demo_features(isolated_cache: Path):
    image_set = demo(isolated_cache)
    for spec in ENCODERS:
        extract(image_set, describe(spec), ["final"], FeatureStore(isolated_cache / "features"))
    return image_set


@pytest.mark.slow
def test_affect_page_renders_every_figure_for_two_encoders_and_both_schemes(demo_features) -> None:
    app = affect_page()
    assert app.multiselect(key="affect.schemes").value == ["loto", "loco"]
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    assert len(charts) == 4  # R² summary, error field, occupancy, error rose
    bars = [trace for trace in charts[0]["data"] if trace["type"] == "bar"]
    assert {trace["name"] for trace in bars} == {"Leave-One-Theme-Out", "Leave-One-Category-Out"}
    assert len(bars) == 4  # 2 targets x 2 schemes, each bar trace holding both encoders
    assert any(note["text"].startswith("Δ ") for note in charts[0]["layout"]["annotations"])
    ceilings = ceiling_table(demo_features.metadata).set_index("target")["ceiling"]
    dashes = [trace for trace in charts[0]["data"] if trace.get("name") == "reliability ceiling"]
    drawn = [np.frombuffer(base64.b64decode(trace["y"]["bdata"]), dtype=trace["y"]["dtype"]) for trace in dashes]
    assert np.allclose(sorted(np.concatenate(drawn)), sorted(list(ceilings) * len(ENCODERS)))
    table = next(frame.value for frame in app.dataframe if "share_explainable" in frame.value.columns)
    assert len(table) == 8 and np.allclose(table["ceiling"], table["target"].map(ceilings))
    assert np.allclose(table["share_explainable"], table["r2"] / table["ceiling"])
    assert any("decorations" in caption.value for caption in app.caption)  # the demo's SD/N are not its noise
    assert any(trace["type"] == "heatmap" for trace in charts[2]["data"])
    assert any(trace["type"] == "barpolar" for trace in charts[3]["data"])
    per_group = next(frame.value for frame in app.dataframe if "group" in frame.value.columns)
    loto_groups = per_group[(per_group["scheme"] == "loto") & (per_group["target"] == "valence")]
    assert loto_groups["group"].nunique() == 48 and (loto_groups["n"] == 8).all()
    measures = app.dataframe[-1].value
    assert list(measures["model"]) == [f"{spec} [final]" for spec in ENCODERS]
    assert measures["trajectory_entropy"].between(0, 1).all() and measures["error_ed"].between(1, 2).all()
    app.toggle(key="affect.zscore").set_value(True).run()  # re-render from the memo, no refit
    assert not app.exception


def test_a_dataset_without_ratings_is_explained(tmp_path: Path) -> None:
    from PIL import Image
    for category in ("a", "b"):
        (tmp_path / category).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / category / "x.png")
    app = affect_page(dataset_kind="folder", dataset_path_folder=str(tmp_path))
    assert any("no valence/arousal" in info.value for info in app.info)


@pytest.mark.slow
def test_loco_on_a_single_category_is_explained_not_a_traceback(demo_features, tmp_path: Path) -> None:
    table = demo_features.metadata.assign(path=[str(path) for path in demo_features.paths], category="all")
    csv = tmp_path / "one_category.csv"
    table[["path", "image_id", "category", "group", "valence", "arousal"]].to_csv(csv, index=False)
    extract(manifest(csv), describe("pixels:32"), ["final"], FeatureStore(Path(demo_features.root).parent / "features"))
    app = affect_page(dataset_kind="manifest", dataset_path_manifest=str(csv))
    assert any("at least two categories" in warning.value for warning in app.warning)
    assert app.get("plotly_chart")  # LOTO still analysed
    assert any("No reliability ceiling for valence and arousal" in caption.value for caption in app.caption)


@pytest.mark.slow
def test_unusable_rater_sd_drops_only_the_ceiling(isolated_cache: Path, tmp_path: Path) -> None:
    image_set = demo(isolated_cache)
    rows = image_set.metadata.index[image_set.metadata["category"].isin(image_set.categories[:2])][::4]
    table = image_set.metadata.loc[rows].assign(path=[str(image_set.paths[row]) for row in rows])
    table.loc[rows[3], "Valence_SD"] = -1.0
    csv = tmp_path / "bad_sd.csv"
    table[["path", "image_id", "category", "group", "valence", "arousal", "Valence_SD", "Valence_N"]].to_csv(
        csv, index=False)
    extract(manifest(csv), describe("pixels:32"), ["final"], FeatureStore(isolated_cache / "features"))
    app = affect_page(dataset_kind="manifest", dataset_path_manifest=str(csv))
    bad_image = table.loc[rows[3], "image_id"]
    assert any(f"column Valence_SD has 1 unusable value(s) (images {bad_image})" in caption.value
               for caption in app.caption)
    chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert {trace["type"] for trace in chart["data"]} == {"bar"}  # R² bars of LOTO and LOCO, no ceiling dash


def decoded(array) -> np.ndarray:
    """A figure JSON array (plotly 6+ writes numpy arrays as base64 `bdata`, 2-D ones with a shape)."""
    if not isinstance(array, dict):
        return np.asarray(array)
    values = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return values.reshape([int(n) for n in array["shape"].split(",")]) if "shape" in array else values


@pytest.mark.slow
def test_a_click_on_a_prediction_opens_the_items_card_with_its_ratings(demo_features) -> None:
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["encoders"] = ["pixels:32"]
    app.session_state["affect.schemes"] = ["kfold"]
    app.switch_page("views/affect.py").run()
    assert not app.exception, [exception.value for exception in app.exception]
    field = next(json.loads(chart.proto.spec) for chart in app.get("plotly_chart")
                 if json.loads(chart.proto.spec)["layout"]["title"]["text"].startswith("Prediction errors"))
    dots = next(trace for trace in field["data"] if trace["mode"] == "markers")
    index = 3
    row = int(decoded(dots["customdata"])[index, 0])
    predicted = decoded(dots["x"])[index], decoded(dots["y"])[index]
    image_id = demo_features.metadata["image_id"].iloc[row]
    assert dots["text"][index] == image_id
    app.session_state["affect.error_field_click"] = {"selection": {
        "points": [{"customdata": [row], "x": predicted[0], "y": predicted[1]}], "point_indices": [index], "box": [],
        "lasso": []}}
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert any(markdown.value.startswith(f"**{image_id}** · ") for markdown in app.markdown)
    ratings = next(frame.value for frame in app.dataframe if "source" in frame.value.columns
                   and "valence" in frame.value.columns).set_index("source")
    truth = demo_features.metadata.iloc[row]
    assert ratings.loc["true (human ratings)"].tolist() == pytest.approx([truth["valence"], truth["arousal"]])
    assert ratings.loc["predicted · pixels:32 [final]"].tolist() == pytest.approx(predicted)
    assert any(markdown.value.startswith("**pixels:32 [final]** · 6 nearest by cosine") for markdown in app.markdown)

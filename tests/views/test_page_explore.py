"""The Explore page through AppTest on the demo: raw pixels (map A) vs the demo's human embedding (map B), linked
selections, an item's neighbours against brute force, the disagreement table against item_agreement, saving a
selection as a dataset, and an `embeddings:` set without images."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from streamlit.testing.v1 import AppTest

from core.analyses.explore import item_agreement, nearest_neighbours
from core.data.datasets import demo
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from tests.paths import APP

ENCODER = "pixels:32"
PIXELS = f"{ENCODER} · final"
HUMAN = "human · demo human"
CAPTION = re.compile(r"^(?:★ )?(\d+)\. (.+) · d [0-9.]+$")


@pytest.fixture(scope="module")
def arrays(isolated_cache: Path):
    image_set = demo(isolated_cache)
    features = extract(image_set, describe(ENCODER), ["final"], FeatureStore(isolated_cache / "features"))
    return image_set, {PIXELS: np.asarray(features["final"].features), HUMAN: image_set.reference_embedding}


def run_page(**state) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["encoders"] = [ENCODER]
    for key, value in state.items():
        app.session_state[key] = value
    app.switch_page("views/explore.py").run()
    assert_clean(app)
    return app


def assert_clean(app: AppTest) -> None:
    assert not app.exception, [exception.value for exception in app.exception]
    assert not app.error, [error.value for error in app.error]


def maps(app: AppTest) -> list[dict]:
    return [spec for spec in (json.loads(chart.proto.spec) for chart in app.get("plotly_chart"))
            if spec["data"][0]["type"] == "scattergl"]


def overlay_rows(spec: dict) -> list[int]:
    overlay = [trace for trace in spec["data"] if trace["name"].startswith("highlighted")]
    return sorted(int(custom[0]) for custom in overlay[0]["customdata"]) if overlay else []


def event(rows) -> dict:
    return {"selection": {"points": [{"customdata": [row, "id", "value"]} for row in rows], "point_indices": [],
                          "box": [], "lasso": []}}


def listed_neighbours(app: AppTest, ids: np.ndarray, k: int) -> list[list[int]]:
    """The neighbour grids' captions (per representation, nearest first) as item rows."""
    row_of = {item: row for row, item in enumerate(ids)}
    found = [CAPTION.match(image.caption) for element in app.get("image") for image in element.proto.imgs]
    ranked = [(int(match.group(1)), row_of[match.group(2)]) for match in found if match]
    # Each grid is read column by column (ranks 1, 7, 2, … for k = 7 in 6 columns): order each by rank.
    return [[row for _, row in sorted(ranked[start:start + k])] for start in range(0, len(ranked), k)]


def table(app: AppTest, column: str) -> pd.DataFrame:
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


def test_the_page_draws_two_linked_webgl_maps_and_the_agreement_with_defaults(arrays) -> None:
    image_set, features = arrays
    app = run_page()
    specs = maps(app)
    assert len(specs) == 2 and all(trace["type"] == "scattergl" for spec in specs for trace in spec["data"])
    assert specs[0]["layout"]["title"]["text"].startswith(f"A: {PIXELS}")
    assert specs[1]["layout"]["title"]["text"].startswith(f"B: {HUMAN}")
    # PCA axes carry their share of the variance, as scikit-learn's PCA of the same features gives it.
    for spec, name in zip(specs, (PIXELS, HUMAN)):
        shares = PCA(n_components=2).fit(features[name].astype(np.float64)).explained_variance_ratio_
        assert [spec["layout"][axis]["title"]["text"] for axis in ("xaxis", "yaxis")] == [
            f"PC{axis} ({100 * share:.1f} % variance)" for axis, share in enumerate(shares, 1)]
    # The four demo categories: four legend entries, each its own colour + symbol.
    assert len({(trace["marker"]["color"], trace["marker"]["symbol"]) for trace in specs[0]["data"]}) == 4
    assert {trace["type"] for spec in map(json.loads, (c.proto.spec for c in app.get("plotly_chart")))
            for trace in spec["data"]} == {"scattergl", "histogram"}
    widgets = [*app.main.selectbox, *app.main.multiselect, *app.main.number_input, *app.main.text_input,
               *app.main.button]
    assert all(widget.help for widget in widgets), [widget.label for widget in widgets if not widget.help]


def test_a_click_on_map_a_opens_the_items_card_with_its_brute_force_neighbours(arrays) -> None:
    image_set, features = arrays
    app = run_page(**{"explore.k": 7})
    app.session_state["explore.map_a"] = event([5])
    app.run()
    assert_clean(app)
    assert app.selectbox(key="explore.item").value == 5
    ids = image_set.metadata["image_id"].astype(str).to_numpy()
    expected = [nearest_neighbours(features[label], 7, queries=[5]).indices[0].tolist() for label in (PIXELS, HUMAN)]
    assert listed_neighbours(app, ids, 7) == expected
    assert overlay_rows(maps(app)[1]) == [5]  # the clicked item is ringed in the other map


def test_a_lasso_in_map_b_is_ringed_in_map_a_and_listed_with_the_agreement_of_a_and_b(arrays) -> None:
    _, features = arrays
    rows = [3, 40, 41, 200]
    app = run_page()
    app.session_state["explore.map_b"] = event(rows)
    app.run()
    assert_clean(app)
    assert app.session_state["explore.active"]["rows"] == rows
    assert overlay_rows(maps(app)[0]) == rows
    listed = table(app, "knn_overlap")
    assert listed["row"].tolist() == rows
    agreement = item_agreement(features[PIXELS], features[HUMAN], k=10, metric="cosine").iloc[rows]
    np.testing.assert_allclose(listed["knn_overlap"], agreement["knn_overlap"])
    np.testing.assert_allclose(listed["rdm_row_spearman"], agreement["rdm_row_spearman"])
    # An unchanged or reset (empty) map event changes nothing: the reruns settle, the selection stays.
    app.session_state["explore.map_b"] = event([])
    app.run()
    assert app.session_state["explore.active"]["rows"] == rows and overlay_rows(maps(app)[0]) == rows
    app.session_state["explore.map_a"] = event([7])  # the most recent selection wins
    app.run()
    assert app.session_state["explore.active"]["rows"] == [7] and overlay_rows(maps(app)[1]) == [7]


def test_the_disagreement_table_ranks_items_as_item_agreement_and_opens_a_card(arrays) -> None:
    image_set, features = arrays
    app = run_page(**{"explore.k": 5, "explore.metric": "euclidean"})
    shown = table(app, "disagreement_rank")
    expected = item_agreement(features[PIXELS], features[HUMAN], k=5, metric="euclidean")
    expected = expected.sort_values("disagreement_rank").head(50)
    assert shown["row"].tolist() == expected.index.tolist()
    assert shown["disagreement_rank"].tolist() == list(range(1, 51))
    np.testing.assert_allclose(shown["rdm_row_spearman"], expected["rdm_row_spearman"])
    np.testing.assert_allclose(shown["knn_overlap"], expected["knn_overlap"])
    worst = int(expected.index[0])
    app.selectbox(key="explore.disagreement_item").set_value(worst).run()
    assert_clean(app)
    ids = image_set.metadata["image_id"].astype(str).to_numpy()
    assert listed_neighbours(app, ids, 5) == [
        nearest_neighbours(features[label], 5, queries=[worst]).indices[0].tolist() for label in (PIXELS, HUMAN)]


def test_a_source_against_itself_disagrees_on_no_item(arrays) -> None:
    app = run_page(**{"explore.source_a": HUMAN, "explore.source_b": HUMAN})
    shown = table(app, "disagreement_rank")
    np.testing.assert_allclose(shown["rdm_row_spearman"], 1.0)
    np.testing.assert_allclose(shown["knn_overlap"], 1.0)


def test_search_selects_the_matches_and_a_selection_is_saved_and_opened_as_a_dataset(arrays) -> None:
    image_set, _ = arrays
    app = run_page()
    app.text_input(key="explore.search").input("GRATING").run()
    assert_clean(app)
    metadata = image_set.metadata
    text = metadata[[c for c in metadata.columns if not pd.api.types.is_numeric_dtype(metadata[c])]].astype(str)
    expected = np.flatnonzero(text.apply(lambda column: column.str.lower().str.contains("grating")).any(axis=1))
    assert len(expected) >= 96 and app.session_state["explore.active"]["rows"] == expected.tolist()
    assert overlay_rows(maps(app)[0]) == expected.tolist()
    app.text_input(key="explore.selection_name").input("gratings").run()
    next(button for button in app.main.button if button.label == "Save as dataset").click().run()
    assert_clean(app)
    success = next(message.value for message in app.success)
    path = Path(re.search(r"manifest:(.+?)`", success).group(1))
    assert path.name == "gratings.csv" and len(pd.read_csv(path)) == len(expected)
    next(button for button in app.main.button if button.label == "Open it in the sidebar").click().run()
    assert_clean(app)
    assert app.session_state["dataset_kind"] == "manifest" and app.session_state["dataset_path_manifest"] == str(path)
    assert any("Explore needs a representation" in info.value for info in app.info)  # the new set: nothing extracted


def test_an_embeddings_set_without_images_has_maps_but_no_thumbnails_or_saving(tmp_path) -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 5))
    np.save(tmp_path / "first.npy", base)
    np.save(tmp_path / "second.npy", base @ np.linalg.qr(rng.normal(size=(5, 5)))[0])  # a rotated copy
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["dataset_kind"] = "embeddings"
    app.session_state["dataset_path_embeddings"] = str(tmp_path)
    app.session_state["explore.map_a"] = event([1, 2])
    app.switch_page("views/explore.py").run()
    assert_clean(app)
    assert len(maps(app)) == 2
    assert "thumbnail" not in table(app, "knn_overlap").columns
    assert not [button for button in app.main.button if button.label == "Save as dataset"]
    shown = table(app, "disagreement_rank")  # a representation vs its rotated copy: no disagreement anywhere
    np.testing.assert_allclose(shown["rdm_row_spearman"], 1.0)
    np.testing.assert_allclose(shown["knn_overlap"], 1.0)

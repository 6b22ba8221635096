"""The Manifolds page through AppTest on the demo with two encoders: presets, extract views, then every figure."""
from __future__ import annotations

import json
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.analyses.manifolds import MANIFOLD_PRESETS
from tests.paths import APP

ENCODERS = ["bundled:efficientnet_lite0", "pixels:32"]


def manifolds_page() -> AppTest:
    """The Manifolds page run once with small settings (4 views of 4 images per class, UMAP/t-SNE parameter 5)."""
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["encoders"] = ENCODERS
    app.session_state["manifolds.m"] = 4
    app.session_state["manifolds.images_per_class"] = 4
    app.session_state["manifolds.map_parameter"] = 5
    return app.switch_page("views/manifolds.py").run()


def test_manifold_page_extracts_views_and_draws_every_figure(isolated_cache: Path) -> None:
    app = manifolds_page()
    assert not app.exception, [exception.value for exception in app.exception]
    assert any("Extract views" in info.value for info in app.info)
    next(button for button in app.main.button if button.label.startswith("Extract views")).click().run()
    deadline = time.time() + 240
    while not app.get("plotly_chart") and time.time() < deadline:
        time.sleep(0.5)
        app.run()
        assert not app.exception, [exception.value for exception in app.exception]
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    titles = [chart["layout"]["title"]["text"] for chart in charts]
    assert len(charts) == 2 * 2 + 4  # per encoder: map and class distances; then 4 shared figures
    assert sum(title.startswith("Sub-manifold centroids") for title in titles) == 2
    centroid_map = charts[0]
    assert len(centroid_map["layout"]["shapes"]) == 16  # a radius circle per image (4 categories x 4)
    metrics = next(frame.value for frame in app.dataframe if "uniformity" in frame.value.columns)
    assert list(metrics["encoder"]) == [f"{spec} · final" for spec in ENCODERS]
    assert metrics["uniformity"].gt(0).all() and metrics["mean_radius"].gt(0).all()
    assert all(button.help for button in app.main.button)


def test_defaults_are_the_quick_preset_and_the_full_one_is_one_click_away(isolated_cache: Path) -> None:
    quick = MANIFOLD_PRESETS["quick"]
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state["encoders"] = ENCODERS
    app.switch_page("views/manifolds.py").run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert (app.number_input(key="manifolds.m").value, app.number_input(key="manifolds.images_per_class").value) == (
        quick.m, quick.per_class)
    extract = next(button for button in app.main.button if button.label.startswith("Extract views"))
    assert extract.label == f"Extract views ({4 * quick.per_class} images × {quick.m} views, 2 encoder layer(s))"
    assert any(caption.value.startswith(("Estimate — ", "No estimate yet")) for caption in app.caption)  # a rate from an earlier test
    assert app.button(key="manifolds.preset_quick").disabled and not app.button(key="manifolds.preset_full").disabled
    app.button(key="manifolds.preset_full").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert (app.number_input(key="manifolds.m").value,
            app.number_input(key="manifolds.images_per_class").value) == (16, 25)
    assert any(button.label.startswith("Extract views (100 images × 16 views") for button in app.main.button)
    assert app.button(key="manifolds.preset_full").disabled and not app.button(key="manifolds.preset_quick").disabled


def test_a_click_on_the_centroid_map_opens_the_items_card(isolated_cache: Path) -> None:
    """The views of the first test's settings are on disk (the session shares one cache), else extracted here."""
    app = manifolds_page()
    extract = next(button for button in app.main.button if button.label.startswith(("Extract views", "All views")))
    if not extract.disabled:
        extract.click().run()
    deadline = time.time() + 240
    while not app.get("plotly_chart") and time.time() < deadline:
        time.sleep(0.5)
        app.run()
    centroid_map = json.loads(app.get("plotly_chart")[0].proto.spec)
    point = centroid_map["data"][0]["customdata"][0]  # [row, image_id, radius, neighbours]
    row, image_id = int(point[0]), point[1]
    assert not any(f"**{image_id}**" in markdown.value for markdown in app.markdown)
    # What Streamlit's plotly selection event holds after a click on that dot.
    app.session_state[f"manifolds.map_click.{ENCODERS[0]} · final"] = {
        "selection": {"points": [{"customdata": point}], "point_indices": [0], "box": [], "lasso": []}}
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert any(markdown.value.startswith(f"**{image_id}** · ") for markdown in app.markdown)
    grids = [markdown.value for markdown in app.markdown if "nearest by cosine" in markdown.value]
    assert [grid.split("** · ")[0] for grid in grids] == [f"**{spec} · final" for spec in ENCODERS]
    assert 0 <= row < 16  # a row of the 16-image subset

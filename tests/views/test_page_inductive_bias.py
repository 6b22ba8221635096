"""The Inductive bias page through AppTest on the demo: presets; two encoders, two corruption families, every figure."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.analyses.inductive_bias import BIAS_PRESETS
from tests.paths import APP

ENCODERS = ["bundled:efficientnet_lite0", "pixels:32"]


@pytest.mark.slow  # ~20 s unloaded: extracts 4 conditions for EfficientNet-Lite0 and fits both probes
def test_inductive_bias_page_runs_and_draws_every_figure(isolated_cache: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["encoders"] = ENCODERS
    app.session_state["inductive_bias.images_per_class"] = 8
    app.session_state["inductive_bias.families"] = ["glo", "gamma"]
    app.session_state["inductive_bias.levels.glo"] = [2, 8]
    app.session_state["inductive_bias.levels.gamma"] = [0.5]
    app.switch_page("views/inductive_bias.py").run()
    assert not app.exception, [exception.value for exception in app.exception]
    gallery = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert [annotation["text"] for annotation in gallery["layout"]["annotations"]] == [
        "clean", "glo_2", "glo_8", "gamma_0.5"]
    run = next(button for button in app.main.button if button.label.startswith("Run ("))
    assert run.label.startswith("Run (32 images × 4 conditions, 2 encoder · layer)")
    run.click().run()
    deadline = time.time() + 240
    while len(app.get("plotly_chart")) < 4 and time.time() < deadline:
        time.sleep(0.5)
        app.run()
        assert not app.exception, [exception.value for exception in app.exception]
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    assert len(charts) == 4
    accuracy = charts[1]
    assert {trace["name"] for trace in accuracy["data"]} == {f"{spec} · final" for spec in ENCODERS}
    assert len(accuracy["data"]) == 2 * 2 * 2  # k-NN and linear rows x glo and gamma columns x two encoders
    metrics = next(frame.value for frame in app.dataframe if "knn_accuracy" in frame.value.columns)
    assert len(metrics) == 2 * 4 and list(metrics["corruption"][:4]) == ["clean", "glo_2", "glo_8", "gamma_0.5"]
    clean = metrics[metrics["corruption"] == "clean"]
    assert (clean["clean_similarity"] > 0.999).all() and (clean["knn_drop"] == 0).all()
    assert metrics["linear_balanced_accuracy"].between(0, 1).all() and metrics["uniformity"].gt(0).all()
    assert all(button.help for button in app.main.button)
    assert all(widget.help for widget in [*app.main.multiselect, *app.main.number_input, *app.main.selectbox])

    app.radio(key="inductive_bias.view").set_value("relative drop").run()
    drops = json.loads(app.get("plotly_chart")[1].proto.spec)
    assert drops["layout"]["yaxis"]["title"]["text"] == "k-NN relative drop"


def test_defaults_are_the_quick_preset_and_the_full_one_is_one_click_away(isolated_cache: Path) -> None:
    quick, full = BIAS_PRESETS["quick"], BIAS_PRESETS["full"]
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state["encoders"] = ENCODERS
    app.switch_page("views/inductive_bias.py").run()
    assert not app.exception, [exception.value for exception in app.exception]
    run = next(button for button in app.main.button if button.label.startswith("Run ("))
    assert run.label == f"Run ({4 * quick.per_class} images × {len(quick.corruptions()) + 1} conditions, 2 encoder · layer)"
    assert run.label.startswith("Run (100 images × 5 conditions")  # 25 per class, clean + glo/loc 2 and 8
    assert app.number_input(key="inductive_bias.n_splits").value == quick.n_splits
    assert any(caption.value.startswith(("Estimate — ", "No estimate yet")) for caption in app.caption)  # a rate from an earlier test
    quick_button, full_button = "inductive_bias.preset_quick", "inductive_bias.preset_full"
    assert app.button(key=quick_button).disabled and not app.button(key=full_button).disabled
    app.button(key=full_button).click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.number_input(key="inductive_bias.images_per_class").value == full.per_class
    assert app.multiselect(key="inductive_bias.levels.glo").value == [2, 4, 8]
    assert any(button.label.startswith("Run (200 images × 7 conditions") for button in app.main.button)
    assert app.button(key=full_button).disabled and not app.button(key=quick_button).disabled
    # An edit leaves both presets one click away.
    app.number_input(key="inductive_bias.images_per_class").set_value(20).run()
    assert not app.button(key=full_button).disabled and not app.button(key=quick_button).disabled

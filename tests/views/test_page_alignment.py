"""The Alignment page through AppTest on the demo: human embedding vs raw pixels (a known answer), and uploads."""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.analyses.explore import confident_wrong_matches, transport_targets
from core.analyses.gwot_search import load_alignment
from core.data.datasets import demo
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.results import ResultStore
from core.features.store import FeatureStore
from tests.paths import APP
from tests.views.pages import press_and_wait

ENCODER = "pixels:32"
# A small search the tests share: the first to run it stores it, the others open it (one cache per session).
SEARCH = {"alignment.n_eps": 3, "alignment.n_inits": 2, "alignment.metric": "euclidean", "alignment.normalise": True,
          "alignment.anneal": False, "alignment.eps_low.euclidean": 1e-3, "alignment.eps_high.euclidean": 1e-1}


@pytest.fixture(scope="module")
def pixel_features(isolated_cache: Path):
    image_set = demo(isolated_cache)
    extract(image_set, describe(ENCODER), ["final"], FeatureStore(isolated_cache / "features"))
    return image_set


def run_page(**state) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["encoders"] = [ENCODER]
    for key, value in state.items():
        app.session_state[key] = value
    app.switch_page("views/alignment.py").run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def run_until_done(app: AppTest, button_label: str, timeout_s: float = 240) -> AppTest:
    return press_and_wait(app, button_label, timeout_s)


def test_alignment_page_runs_a_search_and_draws_every_figure(pixel_features) -> None:
    app = run_page(**SEARCH)
    assert [box.value for box in app.selectbox if box.key in ("alignment.source", "alignment.target")] == [
        "human · demo human", f"{ENCODER} · final"]
    assert any("press **Run alignment**" in info.value for info in app.info)
    run_until_done(app, "Run alignment")
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    assert len(charts) == 6  # RDMs, plan, category confusion, epsilon search, matching rates, per category
    search = next(chart for chart in charts if chart["layout"]["title"]["text"] == "Epsilon search")["data"]
    stars = [trace for trace in search if trace["name"] == "selected"]
    assert len(stars) == 2 and len([trace for trace in search if trace["name"].startswith("init")]) == 4
    top1 = next(metric for metric in app.metric if metric.label == "Top-1 matching")
    assert 0 <= float(top1.value.rstrip("%")) <= 100
    comparison = next(frame.value for frame in app.dataframe if "rsa" in frame.value.columns)
    assert comparison["gwot"].tolist() == ["done"] and -1 <= comparison["rsa"].iloc[0] <= 1
    assert all(button.help for button in app.main.button)
    run_button = next(button for button in app.main.button if button.label == "Run alignment")
    assert run_button.disabled  # same settings: the finished result is shown, not recomputed
    # The Similarity page reads this pair's matching from the result cache (never re-running GWOT).
    similarity = AppTest.from_file(APP, default_timeout=300)
    similarity.session_state["encoders"] = [ENCODER]
    similarity.session_state["similarity.sources"] = ["human · demo human", f"{ENCODER} · final"]
    similarity.session_state["similarity.measures"] = ["cka_linear"]
    similarity.switch_page("views/similarity.py").run()
    next(button for button in similarity.main.button if button.label == "Compute").click().run()
    deadline = time.time() + 120
    while not similarity.get("plotly_chart") and time.time() < deadline:
        time.sleep(0.5)
        similarity.run()
    stored = next(frame.value for frame in similarity.dataframe if "top1_matching" in frame.value.columns)
    assert stored["top1_matching"].iloc[0] == pytest.approx(float(top1.value.rstrip("%")) / 100, abs=5e-4)


@pytest.mark.slow
def test_the_demo_defaults_show_the_known_item_level_answer(pixel_features) -> None:
    # The demo's human embedding is the images' 4 x 4 colour layout (core/data/demo.py): with every setting at
    # its default, GWOT against raw pixels recovers most items (measured: top-1 64.8 %, category 89.8 %).
    app = run_page()
    assert app.selectbox(key="alignment.target").value == f"{ENCODER} · final"
    run_until_done(app, "Run alignment")
    metrics = {metric.label: metric.value for metric in app.metric}
    assert float(metrics["Top-1 matching"].rstrip("%")) >= 50  # chance 0.26 %
    assert float(metrics["Category matching"].rstrip("%")) >= 80  # chance 25 %
    assert float(metrics["RSA (Spearman)"]) > 0.9
    # The default range reaches the plateau of the GW distance (ε from 1e-5): no edge warning, nor any other.
    assert float(metrics["Selected ε"]) <= 1e-4
    assert not app.warning, [warning.value for warning in app.warning]


def test_an_uploaded_shuffled_copy_is_reordered_and_recovered(pixel_features) -> None:
    image_set = pixel_features
    ids = image_set.metadata["image_id"].astype(str).to_numpy()
    order = np.random.default_rng(0).permutation(len(ids))
    rows = [",".join([ids[row], *(f"{value:.7f}" for value in image_set.reference_embedding[row])]) for row in order]
    app = run_page(**{"alignment.metric": "euclidean", "alignment.normalise": True, "alignment.n_eps": 2,
                      "alignment.n_inits": 1, "alignment.eps_low.euclidean": 1e-3,
                      "alignment.eps_high.euclidean": 1e-2})
    app.file_uploader(key="alignment.upload").upload("shuffled.csv", "\n".join(rows).encode(), "text/csv")
    app.run()
    app.selectbox(key="alignment.target").set_value("upload · shuffled.csv").run()
    run_until_done(app, "Run alignment")
    # Annealing (the page default) finds the identity up to near-duplicate layouts (measured 97.4 %).
    top1 = next(metric for metric in app.metric if metric.label == "Top-1 matching").value
    assert float(top1.rstrip("%")) >= 95
    assert next(metric for metric in app.metric if metric.label == "RSA (Spearman)").value == "1.000"


def test_a_wrong_upload_says_what_is_wrong(pixel_features) -> None:
    app = run_page()
    app.file_uploader(key="alignment.upload").upload("small.csv", b"1,2\n3,4\n", "text/csv")
    app.run()
    assert not app.exception
    assert any("small.csv has 2 rows but the dataset has 384 items" in error.value and "OASIS.csv" in error.value
               for error in app.error)
    assert "upload · small.csv" not in app.selectbox(key="alignment.source").options


def test_alignment_page_without_two_sources_says_what_to_do(isolated_cache: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state["encoders"] = ["untrained:timm:resnet50"]
    app.switch_page("views/alignment.py").run()
    assert not app.exception
    assert any("needs two sources" in info.value for info in app.info)


@pytest.mark.slow
def test_switching_pooling_changes_the_rdm(isolated_cache: Path, tmp_path: Path) -> None:
    """Issue 16's bug: the cached RDM of a ViT block ignored the sidebar's pooling (cls -> mean kept cls)."""
    from core.analyses.rdm import rdm, rsa
    from core.data.datasets import load_dataset

    source = demo(isolated_cache)
    rows = [row for category in sorted(set(source.metadata["category"]))
            for row in np.flatnonzero(source.metadata["category"].to_numpy() == category)[:4]]
    manifest = tmp_path / "sixteen.csv"
    source.metadata.iloc[rows].assign(path=[str(source.paths[row]) for row in rows])[
        ["path", "category", "image_id"]].to_csv(manifest, index=False)
    image_set = load_dataset(f"manifest:{manifest}", isolated_cache)
    vit, store = "untrained:timm:vit_tiny_patch16_224", FeatureStore(isolated_cache / "features")
    expected = {}
    for pooling in ("cls", "mean"):
        block = extract(image_set, describe(vit), ["blocks.0"], store, pooling=pooling)["blocks.0"].features
        pixels = extract(image_set, describe(ENCODER), ["final"], store)["final"].features
        expected[pooling] = rsa(rdm(block, "cosine"), rdm(pixels, "cosine"))
    assert abs(expected["cls"] - expected["mean"]) > 0.01  # the two poolings really differ
    state = dict(dataset_kind="manifest", dataset_path_manifest=str(manifest), pooling="cls",
                 **{"alignment.source": f"{vit} · blocks.0", "alignment.target": f"{ENCODER} · final",
                    "alignment.n_eps": 1})
    state[f"layers::{vit}"] = ["blocks.0"]
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["encoders"] = [vit, ENCODER]
    for key, value in state.items():
        app.session_state[key] = value
    app.switch_page("views/alignment.py").run()
    for pooling in ("cls", "mean"):
        app.sidebar.selectbox(key="pooling").set_value(pooling).run()
        run_until_done(app, "Run alignment")
        rsa_shown = float(next(metric.value for metric in app.metric if metric.label == "RSA (Spearman)"))
        assert rsa_shown == pytest.approx(expected[pooling], abs=1e-3), pooling


@pytest.mark.slow
def test_the_demo_human_embedding_matches_mean_colour_only_coarsely(pixel_features, isolated_cache: Path) -> None:
    """The demo's second known answer: human vs pixels:1 (each image's mean colour) shares the coarse geometry
    (high RSA) but not the items (top-1 a few per cent) — the RSA-vs-GWOT table's "high RSA, low top-1" case."""
    from core.analyses.gwot import DEFAULT_EPS
    from core.analyses.gwot_search import align
    from core.analyses.matching import top_k_matching_rate
    from core.analyses.rdm import rdm, rsa

    image_set = pixel_features
    mean_colour = extract(image_set, describe("pixels:1"), ["final"], FeatureStore(isolated_cache / "features"))["final"]
    human, colour = rdm(image_set.reference_embedding, "cosine"), rdm(mean_colour.features, "cosine")
    alignment = align(human, colour, eps_range=DEFAULT_EPS["cosine"], n_eps=10, n_inits=1, warm_start=True, seed=0)
    top1 = top_k_matching_rate(alignment.transport_plan, 1)
    assert rsa(human, colour) > 0.5  # measured 0.635
    assert 1 / len(image_set) < top1 < 0.1  # measured 2.6 %: above chance (0.26 %), far from pixels:32's 65 %


def test_a_study_alignment_opens_on_the_page_after_a_restart_without_a_job(pixel_features, isolated_cache, tmp_path):
    """A headless study stores the alignment; a fresh server (caches cleared) shows it at once, nothing re-run."""
    import streamlit as st

    from core.features.results import ResultStore
    from core.studies.run import STEP_KIND
    from tests.studies import run_tiny_alignment_study
    from views.ui import resources

    status = run_tiny_alignment_study(tmp_path, isolated_cache)
    st.cache_resource.clear()  # a server restart: no job registry, no memo; only the disk
    app = run_page(**{"alignment.n_eps": 2, "alignment.n_inits": 1, "alignment.metric": "euclidean",
                      "alignment.normalise": True, "alignment.anneal": False, "alignment.eps_low.euclidean": 1e-3,
                      "alignment.eps_high.euclidean": 1e-1})
    assert len(app.get("plotly_chart")) == 6, "the stored alignment is drawn on the first run"
    assert not resources.job_registry().statuses(), "no job was started"
    assert next(button for button in app.main.button if button.label == "Run alignment").disabled
    study_record = ResultStore(isolated_cache / "results").get(STEP_KIND, status.key).table("matching")
    top1 = next(metric for metric in app.metric if metric.label == "Top-1 matching")
    assert float(top1.value.rstrip("%")) / 100 == pytest.approx(study_record["top-1"].iloc[0], abs=5e-4)


def decoded(array) -> np.ndarray:
    """A figure JSON array (plotly 6+ writes numpy arrays as base64 `bdata`, 2-D ones with a shape)."""
    if not isinstance(array, dict):
        return np.asarray(array)
    values = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return values.reshape([int(n) for n in array["shape"].split(",")]) if "shape" in array else values


def test_the_drill_down_shows_where_a_clicked_or_picked_item_goes(pixel_features, isolated_cache: Path) -> None:
    app = run_until_done(run_page(**SEARCH), "Run alignment")
    stored = next(meta for meta in ResultStore(isolated_cache / "results").entries("alignment")
                  if (meta["source"], meta["target"]) == ("human · demo human", f"{ENCODER} · final")
                  and meta["metric"] == "euclidean" and meta["search_settings"]["n_eps"] == 3
                  and meta["search_settings"]["n_inits"] == 2 and not meta["search_settings"]["warm_start"])
    plan = load_alignment(ResultStore(isolated_cache / "results"), stored["key"]).transport_plan
    wrong = confident_wrong_matches(plan, 20)

    def targets_table():
        return next(frame.value for frame in app.dataframe if "correct" in frame.value.columns)

    box = app.selectbox(key="alignment.drill_source")
    assert box.help and box.value == wrong["source"].iloc[0]  # the default: the most confident wrong match
    assert targets_table()["target"].tolist() == transport_targets(plan, box.value)["target"].tolist()
    pairs = next(frame.value for frame in app.dataframe if "own_mass" in frame.value.columns)
    assert pairs[["source", "target"]].values.tolist() == wrong[["source", "target"]].values.tolist()
    assert pairs["mass"].to_numpy() == pytest.approx(wrong["mass"].to_numpy())
    charts = {json.loads(chart.proto.spec)["layout"]["title"]["text"]: json.loads(chart.proto.spec)
              for chart in app.get("plotly_chart")}
    confusion = charts["Category confusion of the plan (row-normalised)"]["data"][0]
    assert len(confusion["y"]) == len(confusion["x"]) == 4  # the demo's categories

    # A click on the plan: the point on a row's largest entry, as Streamlit's selection event holds it.
    clickable = charts["Selected transport plan"]["data"][1]
    source, target = (int(value) for value in decoded(clickable["customdata"])[7])
    assert target == plan[source].argmax()
    app.session_state["alignment.plan_click"] = {"selection": {"points": [{"customdata": [source, target]}],
                                                              "point_indices": [7], "box": [], "lasso": []}}
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.selectbox(key="alignment.drill_source").value == source
    listed = targets_table()
    expected = transport_targets(plan, source)
    assert listed["target"].tolist() == expected["target"].tolist()
    assert listed["mass"].to_numpy() == pytest.approx(expected["mass"].to_numpy())
    assert listed["correct"].tolist() == (expected["target"] == source).tolist()
    image_id = pixel_features.metadata["image_id"].iloc[source]
    assert any(markdown.value.startswith(f"**{image_id}** · ") for markdown in app.markdown)  # the item's card
    # A later pick in the box stands: the same click, still in the event, is not applied again.
    other = (source + 1) % len(plan)
    app.selectbox(key="alignment.drill_source").set_value(other).run()
    assert app.selectbox(key="alignment.drill_source").value == other
    assert targets_table()["target"].tolist() == transport_targets(plan, other)["target"].tolist()

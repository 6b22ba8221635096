"""The Brain page through AppTest on the 92-image folder (Kriegeskorte et al. 2008): pixels:32 and the dataset's RDMs
against human IT; the page's numbers are evaluate_rsa's, every figure draws, every widget has help."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.analyses.rsa import condensed
from core.analyses.rsa_inference import evaluate_rsa
from core.data.datasets import load_dataset, neural
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from tests.paths import APP
from tests.views.pages import open_page, press_and_wait

ENCODER = "pixels:32"


@pytest.fixture(scope="module")
def folder(kriegeskorte92: Path, isolated_cache: Path) -> Path:
    image_set = load_dataset(f"neural:{kriegeskorte92}", isolated_cache)
    extract(image_set, describe(ENCODER), ["final"], FeatureStore(isolated_cache / "features"))
    return kriegeskorte92


def run_page(folder: Path, **state) -> AppTest:
    return open_page("views/brain.py", {"dataset_kind": "neural", "dataset_path_neural": str(folder),
                                        "encoders": [ENCODER], **state})


def compute(app: AppTest, timeout_s: float = 240) -> AppTest:
    return press_and_wait(app, "Compute", timeout_s)


def test_the_page_s_numbers_are_evaluate_rsa_s_and_every_figure_draws(folder: Path) -> None:
    app = run_page(folder, **{"brain.reference_groups": ["hIT"], "brain.n_bootstrap": 50})
    assert any("press **Compute**" in info.value for info in app.info)
    compute(app)
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    titles = [chart["layout"]["title"]["text"] for chart in charts]
    assert len(charts) == 4, titles  # models, layer curves, RDMs by category, MDS
    assert titles[0].startswith("Models of hIT") and titles[1].startswith("Encoder layers vs hIT")
    table = next(frame.value for frame in app.dataframe if "ceiling_normalised" in frame.value.columns)
    monkey = table[table["model"] == "rdm · mIT_674neurons"].iloc[0]
    assert monkey["mean"] == pytest.approx(0.3335, abs=5e-5)
    image_set = neural(folder)
    human_it = next(group for group in image_set.rdm_references if group.name == "hIT")
    mit = next(group for group in image_set.rdm_references if group.name == "mIT_674neurons")
    expected = evaluate_rsa(condensed(mit.rdms), condensed(human_it.rdms), "corr")
    assert monkey["mean"] == pytest.approx(float(expected.mean[0]), abs=1e-12)
    ceilings = next(frame.value for frame in app.dataframe if "upper" in frame.value.columns)
    row = ceilings.set_index("reference").loc["hIT"]
    assert (round(row["lower"], 4), round(row["upper"], 4)) == (0.3944, 0.6804)
    assert "pixels:32 · final" in set(table["model"])
    assert (table["ci_low"] <= table["mean"] + 1e-12).all() and (table["mean"] <= table["ci_high"] + 1e-12).all()
    best = next(frame.value for frame in app.dataframe if "in_sample_layer" in frame.value.columns)
    assert best.set_index("encoder").loc[ENCODER, "layer"] == "final"  # one layer: held out, it is the only choice
    assert any("other half" in caption.value for caption in app.caption)
    widgets = [*app.main.button, *app.multiselect, *app.selectbox, *app.number_input, *app.toggle]
    assert all(widget.help for widget in widgets if widget.key and widget.key.startswith("brain")), \
        [widget.key for widget in widgets if not widget.help]
    again = run_page(folder, **{"brain.reference_groups": ["hIT"], "brain.n_bootstrap": 50})
    assert len(again.get("plotly_chart")) == 4  # stored: opens without computing again


def test_a_dataset_without_rdm_groups_says_what_to_do(isolated_cache: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=120)
    app.switch_page("views/brain.py").run()
    assert not app.exception
    assert any("neural:<folder>" in info.value for info in app.info)


def test_a_study_step_opens_on_the_page_with_its_stored_result(folder: Path, isolated_cache: Path, tmp_path) -> None:
    """The step stores under the page's key: the widgets its entry sets draw its figures without computing again."""
    from core.studies import analyses
    from core.studies.engines import LocalEngine
    from core.studies.run import run_study
    from core.studies.spec import load_study

    toml = tmp_path / "brain.toml"
    toml.write_text(f'name = "b"\ndatasets = ["neural:{folder}"]\nencoders = ["{ENCODER}"]\n\n[[steps]]\n'
                    f'analysis = "brain"\nmethod = "spearman"\nn_bootstrap = 20\nresample = "subjects"\n')
    study = load_study(toml, isolated_cache)
    [status] = run_study(study, isolated_cache, LocalEngine())
    assert status.state == "done", status.error
    state, notes = analyses.get("brain").opening_state(study.steps[0].settings, {})
    app = run_page(folder, **state)
    assert len(app.get("plotly_chart")) == 4 and not notes
    assert next(button for button in app.main.button if button.label == "Compute").disabled


def test_an_rdm_only_folder_compares_its_groups_without_encoders(tmp_path: Path) -> None:
    """Two groups of noisy copies of one geometry, no images: each group is the other's model, near its ceiling."""
    from scipy.spatial.distance import pdist, squareform

    rng = np.random.default_rng(0)
    points = rng.normal(size=(15, 4))
    (tmp_path / "rdms").mkdir()
    for name in ("V4", "IT"):
        stack = [squareform(pdist(points + rng.normal(scale=0.3, size=points.shape))) for _ in range(4)]
        np.save(tmp_path / "rdms" / f"{name}_subjects.npy", np.array(stack))
    app = run_page(tmp_path, **{"brain.bootstrap_on": False})
    compute(app)
    assert not app.exception and len(app.get("plotly_chart")) == 3  # no layers: no layer curves
    table = next(frame.value for frame in app.dataframe if "ceiling_normalised" in frame.value.columns)
    assert set(table["model"]) == {"rdm · V4", "rdm · IT"} and (table["mean"] > 0.5).all()

"""The Objective lab page's learning dynamics on stored runs (synthetic epochs written with `write_epoch`): every
figure draws the stored numbers, the epoch picks the class-distance matrix, the space picks the stored geometries."""
from __future__ import annotations

import base64
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.features.results import ResultStore
from core.figures.lab import run_label
from core.lab.dynamics import EpochGeometry, write_epoch
from core.lab.runs import lab_dir
from core.studies.analyses.lab import LabSettings, train_configs
from core.studies.context import STEP_KIND
from tests.paths import APP
from views.ui.study_openers import opening

EPOCHS = 3
CLASSES = ("animal", "object")
SETTINGS = {"lab.objectives": ["supervised", "clamp"], "lab.epochs": EPOCHS, "lab.image_size": 32,
            "lab.max_images": 32, "lab.batch_size": 16}


def geometry(objective: str, epoch: int, space: str) -> EpochGeometry:
    """Known numbers: uniformity = epoch + offset of the objective, class distances = epoch on the diagonal."""
    offset = {"supervised": 0.0, "clamp": 10.0}[objective] + (100.0 if space == "embedding" else 0.0)
    centroids = np.random.default_rng(epoch).normal(size=(6, 8)) * (0.01 + epoch)
    return EpochGeometry(epoch, space, {"uniformity": epoch + offset, "radius_mean": 1.0 / (1 + epoch),
                                        "neighbours_mean": 5.0 - epoch, "linear_probe_accuracy": 0.5 + 0.1 * epoch},
                         CLASSES, {"animal": 0.1 * epoch, "object": 0.2 * epoch},
                         np.array([[epoch, 2.0 * epoch + 1], [2.0 * epoch + 1, epoch]], dtype=float), centroids,
                         np.full(6, 0.1), tuple(np.repeat(CLASSES, 3)), 0.01)


@pytest.fixture
def stored_runs(isolated_cache: Path) -> dict[str, str]:
    """The page's two runs (its settings above), stopped after EPOCHS epochs with their dynamics: objective -> label."""
    settings = LabSettings(objectives=("supervised", "clamp"), epochs=EPOCHS, image_size=32, max_images=32,
                           batch_size=16)
    labels = {}
    for objective, config in train_configs(settings, "demo").items():
        run = lab_dir(isolated_cache) / config.run_id
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(asdict(config)))
        spaces = ("backbone",) if objective == "supervised" else ("backbone", "embedding")
        for epoch in range(EPOCHS + 1):
            write_epoch(run, [geometry(objective, epoch, space) for space in spaces])
        labels[objective] = run_label(objective, config.run_id)
    return labels


def lab_page(state: dict) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    for key, value in {**SETTINGS, **state}.items():
        app.session_state[key] = value
    app.switch_page("views/lab.py").run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def charts(app: AppTest) -> dict[str, dict]:
    """The page's plotly figures by title."""
    found = {}
    for chart in app.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        found[spec["layout"]["title"]["text"]] = spec
    return found


def decoded(array) -> list:
    """A figure's array as a list (plotly 6+ sends arrays as base64 `bdata`, with their shape)."""
    if isinstance(array, dict):
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
        shape = [int(size) for size in str(array.get("shape", len(flat))).split(",")]
        return flat.reshape(shape).tolist()
    return list(array)


def values(trace: dict) -> list[float]:
    return decoded(trace["y"])


@pytest.mark.slow  # a full app run: about 1 min on a loaded 2-core machine
def test_the_stored_dynamics_draw_on_the_page(stored_runs: dict[str, str]) -> None:
    app = lab_page({"lab.dynamics_run": stored_runs["clamp"], "lab.dynamics_epoch": 1})
    figures = charts(app)
    uniformity = next(spec for title, spec in figures.items() if title.startswith("uniformity"))
    overall = {trace["name"]: values(trace) for trace in uniformity["data"] if trace.get("showlegend", True)}
    assert overall == {stored_runs["supervised"]: [0.0, 1.0, 2.0, 3.0], stored_runs["clamp"]: [10.0, 11.0, 12.0, 13.0]}
    assert len(uniformity["data"]) == 2 * (1 + len(CLASSES))  # each run over its classes' thin lines
    assert any(title.startswith("mean neighbour count") for title in figures)
    # The class distances at the chosen epoch, of the chosen run.
    heatmap = next(spec for title, spec in figures.items() if title.startswith("Class feature distances"))
    title = heatmap["layout"]["title"]["text"]
    assert "epoch 1" in title and stored_runs["clamp"] in title
    assert decoded(heatmap["data"][0]["z"]) == [[1.0, 3.0], [3.0, 1.0]]
    sub_manifolds = next(spec for title, spec in figures.items() if title.startswith("Probe-set sub-manifolds"))
    assert [frame["name"] for frame in sub_manifolds["frames"]] == [str(epoch) for epoch in range(EPOCHS + 1)]
    assert all(button.help for button in app.main.button) and all(widget.help for widget in app.main.radio)
    assert app.radio(key="lab.dynamics_space").help and app.multiselect(key="lab.dynamics_measures").help

    # The embedding: only the clamp run has one (supervised's head gives class logits).
    app.radio(key="lab.dynamics_space").set_value("embedding").run()
    assert not app.exception, [exception.value for exception in app.exception]
    uniformity = next(spec for title, spec in charts(app).items() if title.startswith("uniformity"))
    assert {trace["name"]: values(trace) for trace in uniformity["data"] if trace.get("showlegend", True)} == {
        stored_runs["clamp"]: [110.0, 111.0, 112.0, 113.0]}


@pytest.mark.slow  # a full app run
def test_a_stored_lab_step_opens_on_the_page_with_its_runs(stored_runs: dict[str, str]) -> None:
    """A study's lab step opens on the Objective lab page (Studies' "Open on its page") with its settings, so the
    page builds the same run ids and shows the study's runs."""
    settings = {"objectives": ["supervised", "clamp"], "epochs": EPOCHS, "image_size": 32, "max_images": 32,
                "batch_size": 16}
    opened = opening(STEP_KIND, {"analysis": "lab", "dataset": "demo", "settings": settings, "encoders": [],
                                 "layers": {}, "pooling": "auto"}, ResultStore(Path("unused")))
    assert opened.page == "views/lab.py" and opened.state["lab.epochs"] == EPOCHS
    app = AppTest.from_file(APP, default_timeout=120)
    for key, value in opened.state.items():
        app.session_state[key] = list(value) if isinstance(value, tuple) else value
    app.switch_page(opened.page).run()
    assert not app.exception, [exception.value for exception in app.exception]
    uniformity = next(spec for title, spec in charts(app).items() if title.startswith("uniformity"))
    assert {trace["name"] for trace in uniformity["data"] if trace.get("showlegend", True)} == set(stored_runs.values())

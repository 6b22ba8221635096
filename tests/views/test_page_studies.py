"""The Studies page through AppTest: study files and their steps' state, a stored step opened on its page, and
"Add to study" on the Alignment, Manifolds and Inductive bias pages writing steps the CLI reads back."""
from __future__ import annotations

import json
import math
import shutil
import time
import tomllib
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.data.datasets import demo
from core.data.demo import DEMO_FOLDER
from core.studies.engines import LocalEngine
from core.studies.run import run_study, study_status
from core.features.results import ResultStore
from core.studies import analyses
from core.studies.spec import StudyError, load_study
from tests.paths import APP, REPO_ROOT
from views.ui import resources
from views.ui.sidebar import Selection
from core.studies.files import toml_value
from views.ui.studies import append_step, entries_table
from views.ui.study_openers import OpenError, opening

ENCODER = "pixels:32"
ALIGNMENT = dict(source="human · demo human", targets=[f"{ENCODER} · final"], metric="euclidean", normalise=True,
                 eps_range=[1e-3, 1e-1], n_eps=2, n_inits=1, anneal=False)
# The Alignment page's widgets for the same search (eps_<metric> are per-metric keys).
PAGE_STATE = {"alignment.n_eps": 2, "alignment.n_inits": 1, "alignment.metric": "euclidean",
              "alignment.normalise": True, "alignment.anneal": False, "alignment.eps_low.euclidean": 1e-3,
              "alignment.eps_high.euclidean": 1e-1}
BROKEN = """name = "broken"
datasets = ["demo"]
encoders = ["pixels:32"]

[[steps]]
analysis = "alignment"
source = "human · demo human"
targets = ["pixels:32 · final"]
n_eps = 500
"""


@pytest.fixture(scope="module")
def tiny_study(isolated_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """A one-step study (human vs raw pixels, two ε, one init: seconds), run headless as `study run` would."""
    path = tmp_path_factory.mktemp("studies") / "tiny.toml"
    path.write_text(f'datasets = ["demo"]\nencoders = ["{ENCODER}"]\n\n[[steps]]\nanalysis = "alignment"\n'
                    + "".join(f"{key} = {toml_value(value)}\n" for key, value in ALIGNMENT.items()))
    [status] = run_study(load_study(path, isolated_cache), isolated_cache, LocalEngine())
    assert status.state == "done", status.error
    return path, status


def studies_page(**state) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=300)
    for key, value in state.items():
        app.session_state[key] = value
    app.switch_page("views/studies.py").run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def steps_tables(app: AppTest) -> list:
    return [frame.value for frame in app.dataframe if "step" in frame.value.columns]


def test_the_page_lists_the_demo_study_pending_and_a_broken_file_as_an_error(isolated_cache, tmp_path, monkeypatch):
    fresh = tmp_path / "cache"  # a fresh cache (the session's may hold results of other tests); the demo copied over
    demo(isolated_cache)
    shutil.copytree(isolated_cache / DEMO_FOLDER, fresh / DEMO_FOLDER)
    monkeypatch.setenv("REPSCOPE_CACHE", str(fresh))
    broken = fresh / "studies" / "broken.toml"
    broken.parent.mkdir(parents=True)
    broken.write_text(BROKEN)
    app = studies_page()
    assert app.title[0].value == "Studies"
    expected = [step.label for step in load_study(REPO_ROOT / "studies" / "demo.toml", fresh).steps]
    demo_steps = next(table for table in steps_tables(app) if list(table["step"]) == expected)
    assert set(demo_steps["state"]) == {"pending"}
    assert {"analysis", "dataset", "summary", "settings"} <= set(demo_steps.columns)
    assert any("study run studies/demo.toml" in code.value and "--engine ray" in code.value for code in app.code)
    # The broken file: its first problem with the file and line, never a traceback.
    assert any(f"{broken}:9: steps[1].n_eps" in error.value and "from 1 to 50" in error.value for error in app.error)
    assert not any(str(broken) in code.value for code in app.code)
    assert any("No stored results yet" in info.value for info in app.info)


def test_an_example_without_its_data_says_what_to_set_and_a_users_own_bad_path_stays_an_error(
        isolated_cache, tmp_path, monkeypatch) -> None:
    missing = tmp_path / "no_oasis_here"
    # The repository's examples, only the OASIS one (seconds, not the demo study's validation), its /data/oasis
    # replaced by a path sure to be absent.
    examples = tmp_path / "repository" / "studies"
    examples.mkdir(parents=True)
    shipped = (REPO_ROOT / "studies" / "oasis_clip_vs_in21k.toml").read_text()
    (examples / "oasis_clip_vs_in21k.toml").write_text(shipped.replace("/data/oasis", str(missing)))
    monkeypatch.setattr("views.ui.studies.REPO_STUDIES", examples)
    monkeypatch.setenv("REPSCOPE_CACHE", str(tmp_path / "cache"))
    mine = tmp_path / "cache" / "studies" / "mine.toml"  # the user's own studies: in the cache, or named by path
    mine.parent.mkdir(parents=True)
    mine.write_text(f'datasets = ["oasis:{missing}"]\nencoders = ["pixels:32"]\n\n[[steps]]\nanalysis = "affect"\n')
    shutil.copy(mine, tmp_path / "mine_too.toml")
    app = studies_page(studies_other_path=str(tmp_path / "mine_too.toml"))
    assert [info.value for info in app.info if "oasis_clip_vs_in21k" in info.value] == [
        f"An example that needs data this machine does not have: it looked for `{missing}`. To run it, set "
        "`datasets` on line 10 of `studies/oasis_clip_vs_in21k.toml` to where your copy of that data is."]
    assert not any("oasis_clip_vs_in21k" in error.value for error in app.error)
    own = [error.value for error in app.error if "datasets: " in error.value]
    assert len(own) == 2 and all(f"{missing} is not an existing folder" in error for error in own)
    assert any(error.startswith(f"{mine}:1: datasets: ") for error in own)
    assert not any("mine" in info.value for info in app.info)


def duplicate_value_warnings(monkeypatch) -> list[str]:
    """The widget keys of Streamlit's "created with a default value but also had its value set via the Session State
    API" warnings from now on (Streamlit logs it once per process; the test sees every one)."""
    from streamlit.elements.lib import policies

    keys: list[str] = []
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    monkeypatch.setattr(policies._LOGGER, "warning", lambda message, key, **_: keys.append(key))
    return keys


def test_a_stored_study_step_opens_on_the_alignment_page_at_once(tiny_study, monkeypatch) -> None:
    path, status = tiny_study
    warned = duplicate_value_warnings(monkeypatch)
    st.cache_resource.clear()  # a fresh server: no job registry, no memo; only the disk
    app = studies_page(studies_other_path=str(path))
    tiny = next(table for table in steps_tables(app) if list(table["step"]) == ["1. alignment · demo"]
                and table["settings"].iloc[0].startswith("source=human · demo human"))
    assert list(tiny["state"]) == ["done"] and "top-1" in tiny["summary"].iloc[0]
    results = next(frame.value for frame in app.dataframe if "kind" in frame.value.columns)
    assert status.key in set(results["key"]) and {"study_step", "alignment"} <= set(results["kind"])
    # The settings column tells stored results apart (the session's cache also holds other tests' alignments).
    settings = results.set_index("key")["settings"]
    assert settings[status.key].startswith("source=human · demo human")
    assert "n_eps=2" in settings[study_alignment_key(status)]
    app.selectbox(key="studies_result").set_value(f"study_step/{status.key}").run()
    assert any("Opens the **Alignment** page" in caption.value for caption in app.caption)
    # The button's callback sets the sidebar's and the page's widgets; the Studies page then calls st.switch_page
    # (Streamlit cannot switch from a callback: st.navigation has not registered the pages yet at that point of
    # the rerun), and AppTest follows that switch within this run.
    next(button for button in app.main.button if button.label == "Open on its page").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.title[0].value == "Alignment"
    assert app.session_state["encoders"] == [ENCODER] and app.session_state["dataset_kind"] == "demo"
    assert app.selectbox(key="alignment.metric").value == "euclidean"
    assert len(app.get("plotly_chart")) == 6, "the stored alignment is drawn on the first run"
    assert next(button for button in app.main.button if button.label == "Run alignment").disabled
    assert not resources.job_registry().statuses(), "no job was started"
    search = next(json.loads(chart.proto.spec) for chart in app.get("plotly_chart")
                  if json.loads(chart.proto.spec)["layout"]["title"]["text"] == "Epsilon search")
    assert len([trace for trace in search["data"] if trace["name"].startswith("init")]) == 2  # 1 init: 2 traces
    assert not warned, "the opened page's widgets had a default and a value set by the Session State API"


def study_alignment_key(status) -> str:
    """The stored alignment the tiny study's step made (its matching table names it)."""
    from core.features.results import ResultStore
    from core.paths import cache_root
    stored = ResultStore(cache_root() / "results").get("study_step", status.key)
    return stored.table("matching")["alignment_key"].iloc[0]


def test_the_alignment_result_itself_opens_with_its_study_settings(tiny_study) -> None:
    path, status = tiny_study
    app = studies_page()
    app.selectbox(key="studies_result").set_value(f"alignment/{study_alignment_key(status)}").run()
    next(button for button in app.main.button if button.label == "Open on its page").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.title[0].value == "Alignment" and len(app.get("plotly_chart")) == 6


def test_add_to_study_on_the_alignment_page_appends_steps_the_cli_reads_back(tiny_study, isolated_cache) -> None:
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["encoders"] = [ENCODER]
    for key, value in PAGE_STATE.items():
        app.session_state[key] = value
    app.switch_page("views/alignment.py").run()
    assert app.selectbox(key="study_add_file").value == ""  # a new file, by default in <cache>/studies/
    app.text_input(key="study_add_name").input("from the page").run()
    app.button(key="study_add_alignment").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    written = isolated_cache / "studies" / "from_the_page.toml"
    assert any(str(written) in success.value and "step 1" in success.value for success in app.success)
    study = load_study(written, isolated_cache)
    assert study.name == "from the page" and study.datasets == ("demo",) and study.encoders == (ENCODER,)
    [step] = study.steps
    expected = {**ALIGNMENT, "targets": tuple(ALIGNMENT["targets"]), "eps_range": tuple(ALIGNMENT["eps_range"]),
                "init": "random", "search": "grid", "backend": "numpy", "max_iter": 1000}
    assert step.analysis == "alignment" and dict(step.settings) == expected
    assert app.selectbox(key="study_add_file").value == str(written)  # the next step goes to the same file
    app.number_input(key="alignment.n_eps").set_value(3).run()
    app.button(key="study_add_alignment").click().run()
    assert any("step 2" in success.value for success in app.success)
    first, second = load_study(written, isolated_cache).steps
    assert dict(first.settings) == expected and dict(second.settings) == {**expected, "n_eps": 3}
    # The same settings are the same study step: the tiny study's stored result counts as this step's.
    assert study_status(load_study(written, isolated_cache), isolated_cache)[0].key == tiny_study[1].key


def page_with(page: str, **state) -> AppTest:
    """A page on the demo with raw pixels in the sidebar and `state` set, run once (no features extracted)."""
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["encoders"] = [ENCODER]
    for key, value in state.items():
        app.session_state[key] = value
    app.switch_page(page).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def add_step_from(app: AppTest, analysis: str, name: str) -> None:
    app.text_input(key="study_add_name").input(name).run()
    app.button(key=f"study_add_{analysis}").click().run()
    assert not app.exception, [exception.value for exception in app.exception]


def test_add_to_study_on_the_manifolds_page_writes_its_settings(isolated_cache) -> None:
    app = page_with("views/manifolds.py", **{"manifolds.m": 4, "manifolds.images_per_class": 3,
                                             "manifolds.radius_scale": 7.0, "manifolds.map": "UMAP",
                                             "manifolds.map_parameter": 5})
    assert not any("augmentation pipeline" in warning.value for warning in app.warning)  # CLAMP's defaults
    add_step_from(app, "manifolds", "manifolds from the page")
    written = isolated_cache / "studies" / "manifolds_from_the_page.toml"
    assert any(str(written) in success.value and "step 1" in success.value for success in app.success)
    [step] = load_study(written, isolated_cache).steps
    expected = dict(m=4, images_per_class=3, radius_scale=7.0, map="UMAP", map_parameter=5)
    assert step.analysis == "manifolds" and dict(step.settings) == expected and step.encoders == (ENCODER,)
    # Jitter other than CLAMP's: the popover says the study step uses the defaults; the step is still written.
    app.number_input(key="manifolds.brightness").set_value(0.6).run()
    assert any("default augmentation pipeline" in warning.value for warning in app.warning)
    app.button(key="study_add_manifolds").click().run()
    assert any("step 2" in success.value for success in app.success)
    assert dict(load_study(written, isolated_cache).steps[1].settings) == expected


def test_add_to_study_on_the_inductive_bias_page_writes_its_corruptions(isolated_cache) -> None:
    app = page_with("views/inductive_bias.py", **{
        "inductive_bias.images_per_class": 6, "inductive_bias.families": ["glo", "gamma"],
        "inductive_bias.levels.glo": [8, 2], "inductive_bias.levels.gamma": [0.5], "inductive_bias.scheme": "kfold",
        "inductive_bias.n_splits": 3, "inductive_bias.k": 7, "inductive_bias.train_on": "clean",
        "inductive_bias.per_image": True})
    add_step_from(app, "inductive_bias", "bias from the page")
    written = isolated_cache / "studies" / "bias_from_the_page.toml"
    assert any(str(written) in success.value and "step 1" in success.value for success in app.success)
    [step] = load_study(written, isolated_cache).steps
    assert step.analysis == "inductive_bias" and step.encoders == (ENCODER,)
    assert dict(step.settings) == dict(corruptions=("glo_2_rand", "glo_8_rand", "gamma_0.5"), images_per_class=6,
                                       scheme="kfold", n_splits=3, k=7, train_on="clean")
    # A permutation seed a study step cannot take: the button is disabled and says why; nothing more is written.
    before = written.read_text()
    app.number_input(key="inductive_bias.seed").set_value(7).run()
    assert app.button(key="study_add_inductive_bias").disabled
    assert any("permutation seed 42" in warning.value and "seed 7" in warning.value for warning in app.warning)
    assert written.read_text() == before


def test_the_stored_results_table_tells_results_apart_by_their_settings() -> None:
    entries = [{"kind": "study_step", "key": "a", "settings": {"m": 4, "radius_scale": 8.5, "encoders": None}},
               {"kind": "alignment", "key": "b", "metric": "euclidean", "normalise": True,
                "search_settings": {"eps_range": [0.001, 0.1], "n_eps": 2}},
               {"kind": "affect_predictions", "key": "c", "scheme": "loco", "dataset_name": "demo"},
               {"kind": "alignment", "key": "d"}]
    table = entries_table(entries)
    assert list(table["settings"]) == [
        "m=4; radius_scale=8.5", "metric=euclidean; normalise=True; eps_range=[0.001, 0.1]; n_eps=2", "scheme=loco",
        ""]
    assert table["dataset"].iloc[2] == "demo"  # predictions a page stored name their dataset


def test_a_step_that_does_not_validate_writes_nothing(isolated_cache, tmp_path) -> None:
    selection = Selection(None, "", (ENCODER,), {ENCODER: ("final",)}, "auto", "cpu", 32, "demo")
    target = tmp_path / "new.toml"
    with pytest.raises(StudyError, match=rf"{target}:\d+: steps\[1\]\.targets: no source 'upload · x.csv'"):
        append_step(target, "alignment", {**ALIGNMENT, "targets": ["upload · x.csv"]}, selection)
    assert not target.exists()
    target.write_text(BROKEN.replace("500", "5"))
    before = target.read_text()
    with pytest.raises(StudyError, match="n_eps"):
        append_step(target, "alignment", {**ALIGNMENT, "n_eps": 99}, selection)
    assert target.read_text() == before
    added = append_step(target, "affect", {"schemes": ["loto"], "bins": 12, "zscore": True, "ignored": 1}, selection)
    assert added.step == 2 and not added.created
    assert load_study(target, isolated_cache).steps[-1].settings["bins"] == 12


SMALL = """datasets = ["demo"]
encoders = ["pixels:8"]

[[steps]]
analysis = "similarity"
measures = ["cka_linear", "rsa_spearman"]

[[steps]]
analysis = "affect"
schemes = ["gkfold"]
n_splits = 3

[[steps]]
analysis = "probes"
scheme = "gkfold"
n_splits = 3

[[steps]]
analysis = "manifolds"
m = 2
images_per_class = 3
map_parameter = 5

[[steps]]
analysis = "inductive_bias"
corruptions = ["glo_2", "gamma_0.5"]
images_per_class = 6
n_splits = 3
"""
TITLES = {"similarity": "Similarity", "affect": "Affect", "probes": "Layer probes", "manifolds": "Manifolds",
          "inductive_bias": "Inductive bias"}


@pytest.fixture(scope="module")
def small_study(isolated_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every other analysis at tiny settings on raw 8 × 8 pixels (about 15 s on two CPU cores), run headless."""
    path = tmp_path_factory.mktemp("studies") / "small.toml"
    path.write_text(SMALL)
    statuses = run_study(load_study(path, isolated_cache), isolated_cache, LocalEngine())
    assert all(status.state == "done" for status in statuses), [status.error for status in statuses]
    return {status.step.analysis: status for status in statuses}


@pytest.mark.slow
@pytest.mark.parametrize("analysis", list(TITLES))
def test_every_analysis_step_opens_on_its_page_with_its_stored_result(small_study, isolated_cache, analysis) -> None:
    """The widget keys each opener sets give the page the same stored keys as the study: nothing is recomputed."""
    app = studies_page()
    app.selectbox(key="studies_result").set_value(f"study_step/{small_study[analysis].key}").run()
    next(button for button in app.main.button if button.label == "Open on its page").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.title[0].value == TITLES[analysis]
    buttons = {button.label: button for button in app.main.button}
    if analysis == "similarity":
        assert buttons["Compute"].disabled  # the study's matrix, found under the page's key
    elif analysis == "probes":
        assert not any(label.startswith("Compute probe curves") for label in buttons)  # every layer's scores stored
    elif analysis == "manifolds":
        assert buttons["All views extracted"].disabled
    elif analysis == "inductive_bias":
        # This page draws only what its own background run returns: Run finds every feature array and probe score
        # of the study stored, so it extracts and fits nothing.
        features = sorted((isolated_cache / "features").rglob("*.npy"))
        app.switch_page("views/inductive_bias.py")  # AppTest's next runs stay on the page it was last told
        next(button for button in app.main.button if button.label.startswith("Run")).click().run()
        deadline = time.time() + 60
        while len(app.get("plotly_chart")) < 2 and time.time() < deadline:
            time.sleep(0.3)
            app.run()
        assert sorted((isolated_cache / "features").rglob("*.npy")) == features
    assert len(app.get("plotly_chart")) >= 1


def test_results_the_pages_stored_open_with_what_they_record(tmp_path) -> None:
    store = ResultStore(tmp_path)  # no study step: nothing tells these results' full settings
    alignment = opening("alignment", {"kind": "alignment", "key": "abc", "source": "human · demo human",
                                      "target": f"{ENCODER} · final", "dataset": "demo", "metric": "euclidean"}, store)
    assert alignment.page == "views/alignment.py" and alignment.state["dataset_kind"] == "demo"
    assert alignment.state["encoders"] == [ENCODER] and alignment.state[f"layers::{ENCODER}"] == ["final"]
    assert alignment.state["alignment.metric"] == "euclidean" and "alignment.n_eps" not in alignment.state
    assert any("without its search settings" in note for note in alignment.notes)
    predictions = opening("affect_predictions", {"kind": "affect_predictions", "key": "def", "scheme": "loco",
                                                 "label": f"{ENCODER} [final] · Leave-One-Category-Out"}, store)
    assert predictions.page == "views/affect.py" and predictions.state["affect.schemes"] == ["loco"]
    assert predictions.state["encoders"] == [ENCODER] and "dataset_kind" not in predictions.state
    # Predictions stored now record their encoder, layer and K: they open from those fields, K included.
    recorded = opening("affect_predictions", {"kind": "affect_predictions", "key": "g", "scheme": "kfold",
                                              "label": "renamed", "encoder": ENCODER, "layer": "final",
                                              "n_splits": 7}, store)
    assert recorded.state["encoders"] == [ENCODER] and recorded.state[f"layers::{ENCODER}"] == ["final"]
    assert recorded.state["affect.n_splits"] == 7 and not any("record K" in note for note in recorded.notes)
    with pytest.raises(OpenError, match="uploaded"):
        opening("alignment", {"kind": "alignment", "key": "x", "source": "upload · a.csv", "target": "b"}, store)
    assert all(Path(entry.page).name for entry in analyses.analyses())  # every analysis a study runs has its page


def test_values_are_written_as_toml() -> None:
    values = {"text": 'a "quoted" \\ back\tslash\n · ünï\x7f', "small": 1e-05, "big": 1e16, "third": 1 / 3,
              "yes": True, "no": False, "count": 7, "items": ["a", 2.5, [1, 2]]}
    text = "".join(f"{key} = {toml_value(value)}\n" for key, value in values.items())
    assert tomllib.loads(text) == values
    assert toml_value(True) == "true" and toml_value(0.1) == "0.1"
    assert math.isnan(tomllib.loads(f"x = {toml_value(float('nan'))}")["x"])


def test_every_widget_on_the_studies_page_has_help(tiny_study) -> None:
    app = studies_page()
    widgets = [*app.main.text_input, *app.main.selectbox, *app.main.button]
    assert {widget.key for widget in widgets} >= {"studies_other_path", "studies_result"}
    for widget in widgets:
        assert widget.help, f"{widget.label} has no help text"
    assert any(expander.label == "How to read this" for expander in app.expander)

"""The Scoreboard page through AppTest on a small study of two pixel encoders (run once here): the table shows the
stored numbers, the bars, heatmap, scatter and rank-stability figures draw, a pending study shows missing cells, and
every widget has help; the source "every stored result of this dataset" gathers the stored steps; a model a step left
out is one click from its cell (Add to study appends the step with it; the step's page opens with its settings)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.analyses.scoreboard import cell_text
from core.data.datasets import demo
from core.studies.scoreboard import dataset_scoreboard, study_scoreboard
from core.studies.spec import load_study
from tests.views.pages import open_page
from tests.studies import run_one_step_study, run_scoreboard_study
from views.ui.studies import shown_path

TOP1 = "gwot_top1 vs human · demo human"
pytestmark = pytest.mark.slow  # the study runs once for the module (about 20 s of CPU with the demo's images)


@pytest.fixture(scope="module")
def study_path(isolated_cache: Path) -> Path:
    folder = isolated_cache / "studies"  # the user's studies folder: the page lists it
    folder.mkdir(exist_ok=True)
    return run_scoreboard_study(folder, isolated_cache)


def run_page(**state) -> AppTest:
    return open_page("views/scoreboard.py", state, 120)


def test_the_table_holds_the_stored_numbers_and_every_figure_draws(study_path: Path, isolated_cache: Path) -> None:
    app = run_page(**{"scoreboard.study": shown_path(study_path), "scoreboard.measure": TOP1})
    board = study_scoreboard(load_study(study_path, isolated_cache), isolated_cache)
    shown = app.dataframe[0].value
    shown = shown.data if hasattr(shown, "data") else shown  # a Styler
    assert list(shown["model"]) == ["pixels:32", "pixels:1"]
    header = next(column for column in shown.columns if column.startswith("GWOT top-1"))
    indexed = board.cells.set_index(["model", "measure"])
    assert list(shown[header]) == [cell_text(indexed, model, TOP1) for model in ("pixels:32", "pixels:1")]
    assert shown[header].iloc[0] == f"{board.cell('pixels:32', TOP1)['value']:.3f}"
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    titles = [chart["layout"]["title"]["text"] for chart in charts]
    assert len(charts) == 4, titles  # bars, heatmap, scatter, rank stability
    assert titles[0].startswith("GWOT top-1") and titles[1].startswith("Every model") \
        and titles[3].startswith("Rank stability")
    assert any("chance" in str(annotation.get("text")) for annotation in charts[0]["layout"]["annotations"])
    assert any("fixed layer" in caption.value for caption in app.caption)
    app.selectbox(key="scoreboard.measure").set_value("rsa_spearman vs human · demo human").run()
    assert not app.exception, [exception.value for exception in app.exception]
    test = next(text.value for text in app.markdown if "two-sided bootstrap p" in text.value)
    difference = board.cell("pixels:32", "rsa_spearman vs human · demo human")["value"] - \
        board.cell("pixels:1", "rsa_spearman vs human · demo human")["value"]
    assert test.startswith(f"pixels:32 − pixels:1 = **{difference:.4g}**")
    for widget in [*app.selectbox, *app.button]:
        assert widget.help, widget.label


def test_a_step_never_run_shows_missing_cells(study_path: Path) -> None:
    never_run = study_path.with_name("never_run.toml")  # the same steps with another bootstrap: none stored
    never_run.write_text(study_path.read_text().replace("bootstrap = 20", "bootstrap = 30"))
    app = run_page(**{"scoreboard.study": shown_path(never_run)})
    shown = app.dataframe[0].value
    shown = shown.data if hasattr(shown, "data") else shown
    # its other steps are the run study's (same settings, same stored result); its similarity step never ran
    pending = [column for column in shown.columns if " vs demo human" in column and not column.startswith("GWOT")]
    assert len(pending) == 2 and (shown[pending] == "missing").all().all()
    assert shown[next(column for column in shown.columns if column.startswith("GWOT top-1"))].str.match(r"0\.\d+").all()
    assert any("4 missing" in caption.value for caption in app.caption)


def test_permutation_nulls_run_in_the_background_and_show_beside_the_cells(study_path: Path) -> None:
    app = run_page(**{"scoreboard.study": shown_path(study_path), "scoreboard.n_perm": 100})
    next(button for button in app.main.button if button.label == "Compute permutation nulls").click().run()
    deadline = time.time() + 240
    while not any("verdict" in frame.value.columns for frame in app.dataframe if hasattr(frame.value, "columns")) \
            and time.time() < deadline:
        time.sleep(0.5)
        app.run()
        assert not app.exception, [exception.value for exception in app.exception]
    verdicts = next(frame.value for frame in app.dataframe if hasattr(frame.value, "columns")
                    and "verdict" in frame.value.columns)
    assert len(verdicts) == 4 and set(verdicts["model"]) == {"pixels:32", "pixels:1"}
    rsa = verdicts.set_index(["model", "measure"]).loc[("pixels:32", "rsa_spearman vs human · demo human")]
    assert rsa["null_p"] == pytest.approx(1 / 101) and rsa["verdict"].startswith("beats")
    shown = app.dataframe[0].value
    shown = shown.data if hasattr(shown, "data") else shown
    header = next(column for column in shown.columns if column.startswith("rsa_spearman"))
    assert shown[header].iloc[0].endswith(f" · null p {1 / 101:.3f}")


def shown_table(app: AppTest):
    shown = app.dataframe[0].value
    return shown.data if hasattr(shown, "data") else shown  # a Styler


def test_every_stored_result_of_the_dataset_is_one_scoreboard(study_path: Path, isolated_cache: Path) -> None:
    app = run_page()
    app.radio(key="scoreboard.source").set_value("dataset").run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.radio(key="scoreboard.source").help and not any(box.key == "scoreboard.study" for box in app.selectbox)
    board = dataset_scoreboard(demo(isolated_cache), isolated_cache)
    shown = shown_table(app)
    assert {"pixels:32", "pixels:1"} <= set(shown["model"])
    header = next(column for column in shown.columns if column.startswith("GWOT top-1"))
    indexed = board.cells.set_index(["model", "measure"])
    rows = list(shown["model"])
    assert shown[header].iloc[rows.index("pixels:32")] == cell_text(indexed, "pixels:32", TOP1)
    assert any("stored steps" in caption.value for caption in app.caption)
    assert any("newest is shown" in caption.value for caption in app.caption)
    assert len(app.get("plotly_chart")) >= 3  # bars, heatmap, scatter (and rank stability where resampled)


def test_a_model_left_out_of_a_step_is_one_click_from_its_cell(study_path: Path, isolated_cache: Path) -> None:
    path = study_path.with_name("left_out.toml")
    run_one_step_study(path, isolated_cache, '''name = "left out"
datasets = ["demo"]
encoders = ["pixels:32", "pixels:4"]

[[steps]]
analysis = "manifolds"
encoders = ["pixels:32"]
m = 2
images_per_class = 3
''')
    state = {"scoreboard.study": shown_path(path), "scoreboard_table": {
        "selection": {"rows": [], "columns": [], "cells": []}}}
    app = run_page(**state)
    shown = shown_table(app)
    header = next(column for column in shown.columns if column.startswith("uniformity"))
    row = list(shown["model"]).index("pixels:4")
    assert shown[header].iloc[row] == "missing"
    app.session_state["scoreboard_table"] = {"selection": {"rows": [], "columns": [], "cells": [[row, header]]}}
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    labels = {button.label: button for button in app.main.button}
    assert labels["Open manifolds with pixels:4 added"].help and labels["Add to study"].help
    labels["Add to study"].click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    last = load_study(path, isolated_cache).steps[-1]
    assert (last.index, last.analysis, last.encoders) == (1, "manifolds", ("pixels:32", "pixels:4"))
    assert (last.settings["m"], last.settings["images_per_class"]) == (2, 3)
    assert any("Appended step 2" in message.value for message in app.success)
    app.session_state["scoreboard_table"] = {"selection": {"rows": [], "columns": [], "cells": [[row, header]]}}
    app.run()
    # the cell is now the appended step's, never run: its page opens with its settings (Compute there fills it)
    assert "never run" in app.caption[-1].value or any("never run" in text.value for text in app.caption)
    opener = next(button for button in app.main.button if button.label == "Open step 2. manifolds · demo on its page")
    opener.click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.title[0].value == "Manifolds"
    assert "pixels:4" in app.session_state["encoders"]

"""The Objective lab page through AppTest: a tiny training run through the UI, then open it on Manifolds."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.lab.runs import TrainConfig
from tests.paths import APP
from views.ui import background, resources

OWNER = "test.owner"  # a test session's own id, for `distinct_sessions`


def test_a_tiny_run_trains_through_the_page_and_opens_on_manifolds(isolated_cache: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["lab.objectives"] = ["supervised", "clamp"]
    app.session_state["lab.epochs"] = 1
    app.session_state["lab.max_images"] = 32
    app.session_state["lab.image_size"] = 32
    app.session_state["lab.batch_size"] = 16
    app.switch_page("views/lab.py").run()
    assert not app.exception, [exception.value for exception in app.exception]
    train = next(button for button in app.main.button if button.label.startswith("Train"))
    assert train.label == "Train 2 objective(s)"
    train.click().run()
    # The page's settings, so the runs can be found among others in the session's cache.
    specs = [f"lab:{TrainConfig(objective, epochs=1, max_images=32, image_size=32, batch_size=16).run_id}"
             for objective in ("supervised", "clamp")]
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        app.run()
        assert not app.exception, [exception.value for exception in app.exception]
        table = next((frame.value for frame in app.dataframe if "objective" in frame.value.columns), None)
        runs = None if table is None else table[table["spec"].isin(specs)]
        trained = any(button.label.startswith("All selected") for button in app.main.button)
        if runs is not None and len(runs) == 2 and runs["finished"].all() and trained:
            break  # the button follows the runs' end one rerun later on a loaded machine
    assert sorted(runs["objective"]) == ["clamp", "supervised"] and list(runs["epochs"]) == ["1/1", "1/1"]
    assert (runs["images"] == 32).all() and runs["final_loss"].notna().all()
    curves = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert len(curves["data"]) == 2  # a loss curve per run
    assert next(b for b in app.main.button if b.label.startswith("All selected")).disabled
    assert all(button.help for button in app.main.button)

    app.multiselect(key="lab.chosen_runs").set_value(list(runs["spec"])).run()
    next(button for button in app.main.button if button.label == "Open").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert set(runs["spec"]) <= set(app.session_state["encoders"])
    assert app.title[0].value == "Manifolds"
    assert app.multiselect(key="manifolds.layers").value == [f"{spec} · final" for spec in runs["spec"]]
    assert "extraction_jobs" not in app.session_state  # Manifolds extracts its own views

    # Affect's figures need the runs' cached features: Open starts their extraction and says so.
    app.switch_page("views/lab.py").run()
    app.selectbox(key="lab.open_page").set_value("Affect").run()
    next(button for button in app.main.button if button.label == "Open").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.title[0].value == "Affect"
    assert len(app.session_state["extraction_jobs"]) == 2
    assert "in the background" in app.toast[0].value and all(spec in app.toast[0].value for spec in runs["spec"])
    app.switch_page("views/affect.py")  # AppTest's next runs stay on the page it was last told
    deadline = time.time() + 120
    while app.session_state["extraction_jobs"] and time.time() < deadline:
        time.sleep(0.5)
        app.run()
        assert not app.exception, [exception.value for exception in app.exception]
    table = next(frame.value for frame in app.dataframe if "state" in frame.value.columns)
    assert list(table[table["encoder"].isin(runs["spec"])]["state"]) == ["cached", "cached"]


def lab_session(epochs: int, owner: str) -> AppTest:
    """A session on the Objective lab page set to train the supervised objective for `epochs` tiny epochs; `owner`
    is its session id (see `distinct_sessions`)."""
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state[OWNER] = owner
    app.session_state["lab.objectives"] = ["supervised"]
    app.session_state["lab.epochs"] = epochs
    app.session_state["lab.max_images"] = 32
    app.session_state["lab.image_size"] = 32
    app.session_state["lab.batch_size"] = 16
    app.switch_page("views/lab.py").run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


@pytest.fixture
def distinct_sessions(monkeypatch) -> None:
    """AppTest gives every session the same id ("test session id"): each test session names its own instead."""
    monkeypatch.setattr(background, "session_id", lambda: st.session_state[OWNER])


@pytest.mark.slow
def test_a_second_session_that_joined_a_training_job_cancels_it_within_seconds(isolated_cache: Path,
                                                                                distinct_sessions) -> None:
    """Issue 30: a session that joined a running training job pressed Cancel and the job went on (the session that
    started it still owned it), holding a job slot for 15 min. Now Cancel from any sharer stops it for all."""
    key = f"lab|{TrainConfig('supervised', epochs=200, max_images=32, image_size=32, batch_size=16).run_id}"
    registry = resources.job_registry()
    first, second, onlooker = lab_session(200, "first"), lab_session(200, "second"), lab_session(200, "onlooker")
    next(button for button in first.main.button if button.label.startswith("Train")).click().run()
    next(button for button in second.main.button if button.label.startswith("Train")).click().run()  # joins
    assert not second.exception, [exception.value for exception in second.exception]
    assert registry.status(key).owners == {"first", "second"} and registry.status(key).origin == "Objective lab"
    deadline = time.time() + 120
    while registry.status(key).done <= registry.status(key).skipped and time.time() < deadline:
        time.sleep(0.2)  # until it trains (a step reported)
    second.run()
    onlooker.run()
    # Every page's sidebar lists the job; Cancel is offered to the sessions that share it, not to the onlooker.
    assert "Jobs: 1 of" in second.expander(key="jobs.panel").label
    captions = " ".join(caption.value for caption in second.sidebar.caption)
    assert "running, " in captions and " · you + 1 other session" in captions, captions
    assert onlooker.button(key=f"jobs.cancel.{key}").disabled
    assert not second.button(key=f"cancel_{key}").disabled  # the page's own row, as in the issue
    cancel = second.button(key=f"jobs.cancel.{key}")
    assert not cancel.disabled and "every session that shares it" in cancel.help
    cancel.click().run()
    requested, requested_at = registry.status(key), time.time()
    assert requested.cancel_requested and requested.cancelled_by == "second"
    status = registry.wait(key, 60)
    # It stops at its next step (16 images), wherever the cancel fell; seconds depend on the machine's load.
    assert status.state == "cancelled" and status.done <= requested.done + 16, (status, requested.done)
    assert status.finished_at - requested_at < 20  # one step: 0.2 s alone, several s on a loaded 2-core machine
    for app in (first, second):
        app.run()
        assert not app.exception, [exception.value for exception in app.exception]
    assert any("by another session that shared it" in error.value for error in first.error)
    assert not any("by another session" in error.value for error in second.error)
    assert "Jobs: 0 of" in second.expander(key="jobs.panel").label


def runs_row(app: AppTest, run_id: str):
    """The Runs table's row of `run_id` (a pandas Series), or None while the table does not list it."""
    table = next((frame.value for frame in app.dataframe if "objective" in frame.value.columns), None)
    rows = None if table is None else table[table["spec"] == f"lab:{run_id}"]
    return None if rows is None or rows.empty else rows.iloc[0]


def test_running_runs_are_listed_in_every_session_and_not_offered_again(isolated_cache: Path,
                                                                         distinct_sessions) -> None:
    """Issue 30: the tab that pressed Train said "No runs yet" while its runs trained, and a fresh tab showed no
    progress and offered Train again. Now both list the run as training (epochs, progress, since when), and the
    fresh tab is offered to join it, not to start it."""
    config = TrainConfig("supervised", epochs=100, max_images=32, image_size=32, batch_size=16)
    key, registry = f"lab|{config.run_id}", resources.job_registry()
    first = lab_session(100, "first")
    try:
        next(button for button in first.main.button if button.label.startswith("Train")).click().run()
        assert not first.exception, [exception.value for exception in first.exception]
        # The rerun of the click: the job was just submitted (its folder may not exist yet), and in a browser the
        # page does not rerun until the job ends: the run must be listed now.
        row = runs_row(first, config.run_id)
        assert row is not None and row["state"] in ("queued", "training") and row["objective"] == "supervised"
        assert not any(info.value.startswith("No runs yet") for info in first.info)
        assert next(b for b in first.main.button if b.label.startswith("Training")).disabled
        deadline = time.time() + 120
        while registry.status(key).done <= registry.status(key).skipped and time.time() < deadline:
            time.sleep(0.2)  # until it trains (a step reported)
        assert registry.status(key).state == "running"

        second = lab_session(100, "second")  # a fresh tab of the same server that did not start it
        for app in (first, second):
            app.run()
            assert not app.exception, [exception.value for exception in app.exception]
            row = runs_row(app, config.run_id)
            assert row is not None, app.dataframe
            assert row["state"] == "training" and not row["finished"]
            assert row["epochs"].endswith("/100") and 0 < row["progress"] < 1
            assert "(" in row["since"]  # "11:02 (12 s)"
            assert any(bar.proto.text.startswith(f"supervised · {config.run_id} — running")
                       for bar in app.get("progress")), [bar.proto.text for bar in app.get("progress")]
        # The fresh tab is not offered to start the run again: it may join it (then Cancel is its to press too).
        assert not any(button.label.startswith("Train") for button in second.main.button)
        join = next(button for button in second.main.button if button.label.startswith("Join"))
        assert join.label == "Join 1 running run(s)" and not join.disabled and "running" in join.help
        join.click().run()
        assert not second.exception, [exception.value for exception in second.exception]
        assert registry.status(key).owners == {"first", "second"}
        assert next(b for b in second.main.button if b.label.startswith("Training")).disabled
    finally:
        registry.cancel(key, "first")
        registry.wait(key, 60)

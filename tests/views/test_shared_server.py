"""A shared server: sessions asking for the same extraction share one job and one result; jobs beyond the
server's cap wait in a queue that the pages show."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.paths import APP
from tests.views.test_extraction_panel import extract_button, extraction_table, manifests, wait_for_jobs
from views.ui import extraction, resources


def progress_texts(app: AppTest) -> list[str]:
    return [element.proto.text for element in app.get("progress")]


@pytest.mark.slow
def test_two_sessions_share_one_queued_extraction(tmp_path: Path, monkeypatch) -> None:
    good, _ = manifests(tmp_path / "data")
    registry = resources.job_registry()  # the process-wide registry every session's pages use
    hold = threading.Event()
    for slot in range(registry.max_workers):  # every worker busy: the next job queues
        registry.submit(f"busy {slot}", "busy", lambda report: hold.wait(60), owner="another session")
    calls = []
    real_extract = extraction.extract
    monkeypatch.setattr(extraction, "extract", lambda *args, **kwargs: (calls.append(1), real_extract(*args, **kwargs)))
    sessions = [AppTest.from_file(APP, default_timeout=180) for _ in range(2)]
    try:
        for app in sessions:
            app.session_state["encoders"] = ["pixels:32"]
            app.session_state["dataset_kind"] = "manifest"
            app.session_state["dataset_path_manifest"] = str(good)
            app.run()
            extract_button(app).click().run()
            assert not app.exception, [exception.value for exception in app.exception]
        queued = [status for status in registry.statuses() if status.label == "pixels:32" and status.state == "queued"]
        assert len(queued) == 1 and queued[0].ahead == 0
        for app in sessions:
            app.run()
            assert any("pixels:32 — queued, 0 ahead" in text for text in progress_texts(app)), progress_texts(app)
    finally:
        hold.set()
    for app in sessions:
        wait_for_jobs(app)
        assert list(extraction_table(app)["state"]) == ["cached"]
    assert len(calls) == 1  # one extraction for both sessions


@pytest.mark.parametrize("address, roots, warned", [("0.0.0.0", "", True), ("", "", True), ("0.0.0.0", "/data", False),
                                                    ("localhost", "", False)])
def test_a_server_bound_beyond_localhost_without_data_roots_warns(address, roots, warned, monkeypatch) -> None:
    from streamlit import config

    monkeypatch.setenv("REPSCOPE_DATA_ROOTS", roots)
    previous = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        app = AppTest.from_file(APP, default_timeout=120)
        app.run()
        assert not app.exception, [exception.value for exception in app.exception]
        banners = [warning.value for warning in app.warning if "REPSCOPE_DATA_ROOTS" in warning.value]
        assert bool(banners) == warned
    finally:
        config.set_option("server.address", previous)

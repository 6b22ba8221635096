"""What page tests share: pressing a page's button that starts a background job and waiting for its figures."""
from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from tests.paths import APP


def press_and_wait(app: AppTest, label: str, timeout_s: float = 240) -> AppTest:
    """Press the main-area button whose label starts with `label` (unless it is greyed: the result is stored on disk
    already, the session's cache being shared), then rerun until a figure appears, as a user waits for the job."""
    button = next(button for button in app.main.button if button.label.startswith(label))
    if not button.disabled:
        button.click().run()
    deadline = time.time() + timeout_s
    while not app.get("plotly_chart") and time.time() < deadline:
        time.sleep(0.5)
        app.run()
        assert not app.exception, [exception.value for exception in app.exception]
    return app


def open_page(page: str, state: dict, timeout_s: float = 300) -> AppTest:
    """A fresh app with session `state` set, switched to `page` (e.g. "views/brain.py") and run without exception."""
    app = AppTest.from_file(APP, default_timeout=timeout_s)
    for key, value in state.items():
        app.session_state[key] = value
    app.switch_page(page).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app

"""Issue 30 item 4: every page's settings live in the URL, so a reload or a shared link reproduces the page.

Each page is drawn once to find its settings' widgets (keys `<page>.<setting>`), then drawn again in a new session
whose URL holds another value for every one of them: each widget must show the URL's value. (AppTest cannot show the
URL the browser writes back; tests/browser/test_settings_browser.py changes widgets, reloads and finds the result.)
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.datasets import demo
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from core.studies import analyses
from tests.paths import APP
from tests.studies import run_scoreboard_study
from views.ui.studies import shown_path

ENCODER = "pixels:32"
CHOICES = ("selectbox", "radio", "multiselect")
NUMBERS = ("number_input", "slider")
SWITCHES = ("toggle", "checkbox")
# Not settings: item pickers that follow clicks on a figure or a table, and what the lab's Open / Delete act on.
NOT_SETTINGS = ("explore.item", "explore.disagreement_item", "alignment.drill_source", "lab.chosen_runs",
                "lab.open_page")
# Page scripts and the prefix of their settings' keys: every analysis's page (its first entry: a section such as
# encoding on the Brain page has its own test), and the two pages no study step runs.
PAGES = {**{entry.page: entry.name for entry in reversed(analyses.analyses())}, "views/explore.py": "explore",
         "views/lab.py": "lab", "views/scoreboard.py": "scoreboard"}


@pytest.fixture(scope="module")
def pixel_features(isolated_cache: Path):
    image_set = demo(isolated_cache)
    extract(image_set, describe(ENCODER), "all", FeatureStore(isolated_cache / "features"))
    return image_set


@pytest.fixture(scope="module")
def scoreboard_study(isolated_cache: Path) -> Path:
    folder = isolated_cache / "studies"  # the user's studies folder: the Scoreboard lists it
    folder.mkdir(exist_ok=True)
    return run_scoreboard_study(folder, isolated_cache)


def drawn(page: str, query: dict | None = None, state: dict | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=300)
    app.session_state["encoders"] = [ENCODER]
    for key, value in (state or {}).items():
        app.session_state[key] = value
    for key, value in (query or {}).items():
        app.query_params[key] = value
    app.switch_page(page).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def settings_widgets(app: AppTest, prefix: str) -> dict:
    """The page's settings' widgets by key."""
    return {widget.key: (kind, widget) for kind in (*CHOICES, *NUMBERS, *SWITCHES) for widget in getattr(app, kind)
            if widget.key and widget.key.startswith(f"{prefix}.") and not widget.disabled
            and widget.key not in NOT_SETTINGS}


def another_value(kind: str, widget) -> tuple[str | list[str], object]:
    """(what the URL says, what the widget must then show) for a value other than the widget's current one; a choice
    is named by its label, as the URL names it."""
    if kind in CHOICES:
        options, now = list(widget.options), shown(kind, widget)
        if kind == "multiselect":
            wanted = [options[-1]] if now != [options[-1]] else [options[0]]
            return wanted, wanted
        wanted = options[-1] if now != options[-1] else options[0]
        return wanted, wanted
    if kind in SWITCHES:
        return str(not widget.value).lower(), not widget.value
    proto = widget.proto
    value = widget.value
    step = proto.step or (1 if isinstance(value, int) else 0.1)
    bounded = getattr(proto, "has_max", True)  # a slider always has a maximum
    wanted = value + step if not bounded or value + step <= proto.max else value - step
    wanted = type(value)(round(wanted, 6))
    return str(wanted), wanted


def shown(kind: str, widget):
    """What the widget shows: the label(s) of a choice, else its value."""
    if kind == "multiselect":
        return [widget.options[index] for index in widget.indices]
    if kind in CHOICES:
        return None if widget.index is None else widget.options[widget.index]
    return widget.value


def offered(kind: str, widget, wanted) -> bool:
    """Whether the linked page still offers the wanted value (another setting in the link can change the options:
    fewer images per class, another scheme)."""
    if kind not in CHOICES:
        return True
    return set([wanted] if isinstance(wanted, str) else wanted) <= set(widget.options)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_link_with_the_pages_settings_draws_them(pixel_features, page: str, request) -> None:
    prefix = PAGES[page]
    # The Brain page needs neural / behavioural RDM groups, which the demo has none of: the 92-image folder has them.
    state = ({"dataset_kind": "neural", "dataset_path_neural": str(request.getfixturevalue("kriegeskorte92"))}
             if page == "views/brain.py" else None)
    # The Scoreboard draws its view settings once results are stored: a small study of the demo, picked first; the
    # link's other source (every stored result of the dataset) holds the same steps, so the same measures.
    first = ({"scoreboard.study": shown_path(request.getfixturevalue("scoreboard_study"))}
             if page == "views/scoreboard.py" else state)
    widgets = settings_widgets(drawn(page, state=first), prefix)
    changeable = {key: another_value(kind, widget) for key, (kind, widget) in widgets.items()
                  if kind not in CHOICES or len(widget.options) > 1}
    assert len(changeable) >= 3, f"{page}: {sorted(widgets)}"
    linked = settings_widgets(drawn(page, {key: url for key, (url, _) in changeable.items()}, state), prefix)
    # A value can hide or replace another setting (another map method has its own parameter): those are not drawn.
    compared = {key: (changeable[key][1], shown(*linked[key])) for key in changeable
                if key in linked and offered(*linked[key], changeable[key][1])}
    assert len(compared) >= 0.6 * len(changeable), f"{page}: {sorted(changeable)} -> {sorted(linked)}"
    wrong = {key: pair for key, pair in compared.items() if pair[0] != pair[1]}
    assert not wrong, f"{page}: (wanted, shown) {wrong}"

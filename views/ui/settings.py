"""A page's widget for one setting of its analysis: default, bounds, choices and help from the registry's Settings.

`setting_input(entry, "n_splits", "K (folds)")` draws the widget under the key `"<analysis>.<setting>"` (the rule
`study_openers` follows to reopen a stored result), with the default, bounds or choices and help text the analysis
declares once (`core.studies.analyses`). Every such widget keeps its value across page switches
(`persist_state="session"`). Where session state already holds a value (set by "Open on its page" or a preset),
the widget is drawn without a default, so Streamlit never sees two competing values.
"""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from core.analyses.registry import Analysis


def setting_input(entry: Analysis, name: str, label: str, *, container=None, options: list | None = None,
                  format_func: Callable[[Any], str] | None = None, widget: str = "", help: str = "",
                  **kwargs) -> Any:
    """Draw the widget of setting `name` of `entry` in `container` (default: the page) and return its value.

    `options` narrows a choice to what the page can offer now (e.g. the sources it has); `widget` picks "radio",
    "checkbox", "slider" or "toggle" instead of the usual selectbox / multiselect / number_input / toggle; `help`
    adds to the declared help text; the rest goes to the Streamlit widget (e.g. `disabled`, `step`, `format`).
    """
    container = container or st
    described, default = entry.settings.describe(name), entry.settings.default(name)
    key = entry.widget_key(name)
    common = {"key": key, "persist_state": "session", "help": " ".join(filter(None, (described.help, help))),
              **kwargs}
    if format_func is not None:
        common["format_func"] = format_func
    preset = key in st.session_state
    if described.choices or options is not None:
        choices = list(options if options is not None else described.choices)
        if described.many:
            if not preset:
                common["default"] = [value for value in (default or ()) if value in choices]
            return tuple(container.multiselect(label, choices, **common))
        if not preset and default in choices:
            common["index"] = choices.index(default)
        draw = container.radio if widget == "radio" else container.selectbox
        return draw(label, choices, **common)
    if isinstance(default, bool):
        draw = {"checkbox": container.checkbox}.get(widget, container.toggle)
        return draw(label, **({} if preset else {"value": default}), **common)
    bounds = {"min_value": type(default)(described.low), "max_value": type(default)(described.high)}
    draw = container.slider if widget == "slider" else container.number_input
    return draw(label, **bounds, **({} if preset else {"value": default}), **common)


def settings_from(entry: Analysis, **values: Any):
    """The entry's Settings from a page's widget values (numbers as the types the analysis declares)."""
    kept = {}
    for name, value in values.items():
        default = entry.settings.default(name)
        kept[name] = type(default)(value) if isinstance(default, (int, float)) and not isinstance(default, bool) \
            and value is not None else value
    return entry.settings(**kept)

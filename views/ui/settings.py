"""A page's widget for one setting of its analysis: default, bounds, choices and help from the registry's Settings.

`setting_input(entry, "n_splits", "K (folds)")` draws the widget under the key `"<analysis>.<setting>"` (the rule
`study_openers` follows to reopen a stored result), with the default, bounds or choices and help text the analysis
declares once (`core.studies.analyses`). Every such widget keeps its value across page switches
(`persist_state="session"`) and lives in the URL (`bind="query-params"`), so a reload or a shared link reproduces the
page and finds its stored result. Where a callback has just set its value (`set_choice`: "Open on its page", a
preset), the widget is drawn without a default, so Streamlit never sees two competing values. A page's other
view settings (which map is A, the colour, the bootstrap test's rows) follow the same rule through `in_url`.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import streamlit as st

from core.analyses.registry import Analysis

IN_URL = {"persist_state": "session", "bind": "query-params"}  # a setting: kept across page switches, in the URL
SET_BY_CALLBACK = "set_by_callback"  # widget keys a callback set since their widget was last drawn


def set_choice(key: str, value: Any) -> None:
    """Set a widget's value from a callback ("Open on its page", a preset, the lab's Open): its widget is then drawn
    once without its default, so Streamlit never sees two competing values (the default stays passed otherwise: a
    bound widget leaves its URL parameter out when the value equals the default it was given)."""
    st.session_state[key] = value
    st.session_state.setdefault(SET_BY_CALLBACK, set()).add(key)


def set_choices(values: Mapping[str, Any]) -> None:
    """`set_choice` for each {widget key: value} (a button's callback)."""
    for key, value in values.items():
        set_choice(key, value)


def set_by_callback(key: str) -> bool:
    """Whether a callback set `key` since its widget was last drawn (asked once per drawing of the widget)."""
    waiting = st.session_state.get(SET_BY_CALLBACK, set())
    if key in waiting:
        waiting.discard(key)
        return True
    return False


def in_url(key: str, **default: Any) -> dict[str, Any]:
    """The keyword arguments of a page setting's widget: its `key`, kept across page switches and in the URL, and
    its `default` (`value=`, `index=` or `default=`) unless a callback has just set its value."""
    return {"key": key, **IN_URL, **({} if set_by_callback(key) else default)}


def setting_input(entry: Analysis, name: str, label: str, *, container=None, options: list | None = None,
                  format_func: Callable[[Any], str] | None = None, widget: str = "", help: str = "",
                  default: Any = None, **kwargs) -> Any:
    """Draw the widget of setting `name` of `entry` in `container` (default: the page) and return its value.

    `options` narrows a choice to what the page can offer now (e.g. the sources it has) and `default` replaces the
    declared default with one that depends on them; `widget` picks "radio", "checkbox", "slider" or "toggle"
    instead of the usual selectbox / multiselect / number_input / toggle; `help` adds to the declared help text;
    the rest goes to the Streamlit widget (e.g. `disabled`, `step`, `format`).
    """
    container = container or st
    described = entry.settings.describe(name)
    default = entry.settings.default(name) if default is None else default
    key = entry.widget_key(name)
    common = {"key": key, **IN_URL, "help": " ".join(filter(None, (described.help, help))), **kwargs}
    if format_func is not None:
        common["format_func"] = format_func
    preset = set_by_callback(key)
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

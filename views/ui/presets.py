"""Preset buttons: one click sets a group of a page's widgets (Quick / Full), greyed while they already match."""
from __future__ import annotations

from typing import Any, Mapping

import streamlit as st

from views.ui.settings import set_choices


def preset_buttons(analysis: str, presets: Mapping[str, tuple[str, Mapping[str, Any], str]]) -> None:
    """A button per preset {name: (label, widget values by session-state key, help)}, keyed `<analysis>.preset_<name>`.

    The first preset holds the widgets' own defaults (their analysis's Settings, or `in_url(key, default=...)`);
    a button's callback sets its values before the widgets are drawn (`set_choice`), greyed while they match.
    """
    defaults = next(iter(presets.values()))[1]
    for column, (name, (label, values, help_text)) in zip(st.columns(len(presets)), presets.items()):
        column.button(label, key=f"{analysis}.preset_{name}", on_click=set_choices, args=(dict(values),),
                      disabled=all(st.session_state.get(key, defaults[key]) == value for key, value in values.items()),
                      help=help_text)

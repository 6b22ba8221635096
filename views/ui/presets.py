"""Preset buttons: one click sets a group of a page's widgets (Quick / Full), greyed while they already match."""
from __future__ import annotations

from typing import Any, Mapping

import streamlit as st


def preset_buttons(analysis: str, presets: Mapping[str, tuple[str, Mapping[str, Any], str]]) -> None:
    """A button per preset {name: (label, widget values by session-state key, help)}, keyed `<analysis>.preset_<name>`.

    The widgets take their defaults from the first preset through session state, so they are created
    without `value=` and a button's callback may set them before they are drawn.
    """
    for key, value in next(iter(presets.values()))[1].items():
        st.session_state.setdefault(key, value)
    for column, (name, (label, values, help_text)) in zip(st.columns(len(presets)), presets.items()):
        column.button(label, key=f"{analysis}.preset_{name}", on_click=st.session_state.update, args=(dict(values),),
                      disabled=all(st.session_state.get(key) == value for key, value in values.items()),
                      help=help_text)

"""The Explore page's linked selection: the items picked on either map or by search, shared by both maps.

The active selection is kept in session state as {"rows": [...], "origin": "map A" | "map B" | "search", "dataset":
fingerprint}; each source's rows as last seen are kept too, so that only a new event changes the selection.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.datasets import ImageSet
from views.ui.items import selected_rows

MAP_KEYS = {"A": "explore.map_a", "B": "explore.map_b"}  # the maps' selection events (st.plotly_chart keys)
ACTIVE = "explore.active"  # the selection both maps share (see module doc)
SEEN = "explore.seen"  # each event's rows as last seen: map A, map B, the search, the disagreement table
ITEM, SEARCH = "explore.item", "explore.search"  # the item whose card is shown; the search box


def keep_valid(key: str, options) -> None:
    """Forget a remembered choice that is no longer offered (another dataset, fewer sources) before its widget."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def seen_rows() -> dict:
    """Each selection source's rows as last seen (updated in place as they are read)."""
    return st.session_state.setdefault(SEEN, {})


def activate(image_set: ImageSet, rows: list[int], origin: str) -> None:
    """Make `rows` the active selection; a single item also becomes the item shown in the card."""
    st.session_state[ACTIVE] = {"rows": rows, "origin": origin, "dataset": image_set.fingerprint}
    if len(rows) == 1:
        st.session_state[ITEM] = rows[0]


def clear_selection(image_set: ImageSet) -> None:
    """Button callback: no active selection, no search."""
    st.session_state[ACTIVE] = {"rows": [], "origin": "", "dataset": image_set.fingerprint}
    st.session_state[SEARCH] = ""


def map_selection(image_set: ImageSet) -> dict:
    """The active selection after the maps' latest events (read before anything is drawn).

    The most recent new event of either map wins. A map whose figure changes (new highlights) comes back with an
    empty selection; empty events never change anything, so a reset cannot trigger another change, and reruns
    settle after one pass."""
    seen = seen_rows()
    for name, key in MAP_KEYS.items():
        rows = selected_rows(st.session_state.get(key), len(image_set.metadata))
        if rows and rows != seen.get(name):
            activate(image_set, rows, f"map {name}")
        seen[name] = rows
    active = st.session_state.get(ACTIVE) or {}
    if active.get("dataset") != image_set.fingerprint:  # a selection made on another dataset
        active = {"rows": [], "origin": "", "dataset": image_set.fingerprint}
    return active


def search_selection(image_set: ImageSet, search: str, active: dict) -> tuple[list[int], dict]:
    """(the rows matching `search` in any text column, the active selection): a new search selects its matches."""
    metadata = image_set.metadata
    text_columns = [column for column in metadata.columns if not pd.api.types.is_numeric_dtype(metadata[column])]
    matches = []
    if search:
        found = metadata[text_columns].astype(str).apply(lambda column: column.str.contains(search, case=False,
                                                                                           regex=False)).any(axis=1)
        matches = [int(row) for row in found.to_numpy().nonzero()[0]]
    seen = seen_rows()
    if search != seen.get("search"):
        seen["search"] = search
        if search:
            activate(image_set, matches, "search")
            active = st.session_state[ACTIVE]
    if search and not matches:
        st.warning(f"No item matches “{search}” in {', '.join(text_columns)}.")
    return matches, active

"""The Explore page's tables: the selected items (saved as a dataset), the items A and B disagree on most, and what
an item's card adds from other pages (the Affect page's out-of-fold predictions)."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.affect_report import load_predictions, predictions_key
from core.analyses.cv import SCHEMES, CrossValidation
from core.analyses.explore import item_agreement
from core.analyses.representation import Representation
from core.data.datasets import AFFECT_COLUMNS, ImageSet
from core.data.selections import SELECTIONS_FOLDER, save_selection, selection_manifest
from core.export import export_filename
from core.paths import cache_root
from core.provenance import Provenance
from core.studies import analyses
from views.ui import resources
from views.ui.export_row import table_download
from views.ui.explore_selection import keep_valid, seen_rows
from views.ui.items import item_panel, thumbnail_urls

PICKED, TABLE = "explore.disagreement_item", "explore.disagreement_table"
NAME, SAVED = "explore.selection_name", "explore.saved"  # the saved dataset's name; where it was saved, or why not
THUMBNAIL_ROWS = 200  # thumbnails in a table beyond this many rows would slow every rerun
TOP_DISAGREEMENTS = 50
IMAGE_COLUMNS = {"thumbnail": st.column_config.ImageColumn("image", width="small"),
                 "rdm_row_spearman": st.column_config.NumberColumn("ρ (RDM row)", format="%.3f"),
                 "knn_overlap": st.column_config.NumberColumn("k-NN overlap", format="%.2f")}


def predicted_ratings(image_set: ImageSet, sources: Mapping[str, Representation], row: int, labels) -> dict:
    """Valence and arousal the Affect page's stored out-of-fold probes predicted for the item, per representation
    and scheme (K as on the Affect page); none where that page has not run."""
    if not image_set.has_affect:
        return {}
    affect = analyses.get("affect")
    n_splits = int(st.session_state.get(affect.widget_key("n_splits"), affect.settings.default("n_splits")))
    store, found = resources.result_store(), {}
    for label in labels:
        feature_key = sources[label].feature_key
        for scheme in SCHEMES if feature_key else ():
            cv = CrossValidation(scheme, n_splits)
            stored = load_predictions(store, predictions_key(feature_key.digest, cv))
            if stored is not None and set(AFFECT_COLUMNS) <= set(stored.target_names):
                found[f"{label} · {cv.label}"] = stored.predictions[row, [stored.target_names.index(name)
                                                                           for name in AFFECT_COLUMNS]]
    return found


def item_card(image_set: ImageSet, sources: Mapping[str, Representation], row: int,
              arrays: Mapping[str, np.ndarray], k: int) -> None:
    """The item's card with its k nearest neighbours in each shown representation and its predicted ratings."""
    item_panel(image_set, row, arrays, k=k, predicted=predicted_ratings(image_set, sources, row, arrays))


@st.cache_data(show_spinner=False, max_entries=16)
def agreement_table(first_fingerprint: str, second_fingerprint: str, k: int, metric: str, _first, _second):
    """item_agreement of two representations, cached by their fingerprints (the arrays are not hashed)."""
    return item_agreement(_first, _second, k=k, metric=metric)


def with_thumbnails(image_set: ImageSet, table: pd.DataFrame) -> pd.DataFrame:
    """The table with a `thumbnail` column first (data URLs of its first THUMBNAIL_ROWS rows) when there are images."""
    if not image_set.has_images:
        return table
    urls = thumbnail_urls(image_set, table["row"].iloc[:THUMBNAIL_ROWS]) + [None] * max(len(table) - THUMBNAIL_ROWS, 0)
    return table.assign(thumbnail=urls)[["thumbnail", *table.columns]]


def save_as_dataset(image_set: ImageSet, rows: list[int]) -> None:
    """Button callback: the selection as a manifest CSV under the cache's selections folder."""
    try:
        path = save_selection(selection_manifest(image_set, rows), cache_root() / SELECTIONS_FOLDER,
                              st.session_state.get(NAME) or "selection")
        st.session_state[SAVED] = {"path": str(path), "error": ""}
    except (ValueError, OSError) as error:
        st.session_state[SAVED] = {"path": "", "error": str(error)}


def open_saved(path: str) -> None:
    """Button callback: the sidebar opens the saved manifest (set before its widgets are drawn)."""
    st.session_state["dataset_kind"] = "manifest"
    st.session_state["dataset_path_manifest"] = path


def selected_items(image_set: ImageSet, items: pd.DataFrame, rows: list[int], agreement: pd.DataFrame | None,
                   provenance: Provenance) -> None:
    """The selected items' metadata (with A vs B's agreement), their CSV, and saving them as a dataset."""
    st.subheader("Selected items")
    if not rows:
        st.caption("Nothing selected yet.")
        return
    chosen = items.iloc[rows]
    if agreement is not None:
        chosen = chosen.join(agreement[["rdm_row_spearman", "knn_overlap"]])
    chosen = chosen[["row", *[column for column in chosen.columns if column != "row"]]]
    st.dataframe(with_thumbnails(image_set, chosen), hide_index=True, width="stretch", column_config=IMAGE_COLUMNS)
    if len(chosen) > THUMBNAIL_ROWS and image_set.has_images:
        st.caption(f"Thumbnails for the first {THUMBNAIL_ROWS} of {len(chosen)} items.")
    actions = st.columns([1, 2, 1])
    table_download("Selection (CSV)", chosen, provenance, container=actions[0],
                   file_stem=export_filename("explore", "selection", image_set.name, ext=""),
                   help="The selected items' metadata" + (", with their RDM-row ρ and k-NN overlap of A vs B."
                                                          if agreement is not None else "."))
    if not image_set.has_images:
        return
    actions[1].text_input("Dataset name", value=f"{image_set.name}_selection", key=NAME, persist_state="session",
                          label_visibility="collapsed",
                          help="File name of the manifest (letters, digits, _ . -; others become _).")
    actions[2].button("Save as dataset", on_click=save_as_dataset, args=(image_set, rows),
                      help=f"Writes a manifest CSV (absolute image paths + metadata) to "
                           f"{cache_root() / SELECTIONS_FOLDER}; open it as a dataset of its own.")
    saved = st.session_state.get(SAVED)
    if saved and saved["error"]:
        st.error(f"Not saved: {saved['error']}")
    elif saved:
        st.success(f"Saved as the dataset `manifest:{saved['path']}`.")
        st.button("Open it in the sidebar", on_click=open_saved, args=(saved["path"],),
                  help="Switches the sidebar's dataset to this manifest (features are extracted anew for it).")


def disagreement_table(image_set: ImageSet, items: pd.DataFrame, agreement: pd.DataFrame) -> int | None:
    """The TOP_DISAGREEMENTS items A and B disagree on most, selectable; returns the item picked (row or None)."""
    top = items[["row", "image_id", "category"]].join(agreement).sort_values("disagreement_rank").head(
        TOP_DISAGREEMENTS)[["disagreement_rank", "row", "image_id", "category", "rdm_row_spearman", "knn_overlap"]]
    event = st.dataframe(with_thumbnails(image_set, top), hide_index=True, width="stretch",
                         column_config=IMAGE_COLUMNS, key=TABLE, on_select="rerun", selection_mode="single-row")
    seen = seen_rows()
    positions = list(event.selection.rows) if event else []
    if positions and positions != seen.get("table"):
        st.session_state[PICKED] = int(top["row"].iloc[positions[0]])
    seen["table"] = positions
    top_options = {int(row): f"#{rank} · {image_id}" for row, rank, image_id in
                   top[["row", "disagreement_rank", "image_id"]].itertuples(index=False)}
    keep_valid(PICKED, top_options)
    return st.selectbox("Disagreement item", list(top_options), format_func=top_options.get, index=None, key=PICKED,
                        persist_state="session", placeholder="Pick a row of the table",
                        help="Its card with the nearest neighbours in A and in B, to see what each representation "
                             "groups it with.")

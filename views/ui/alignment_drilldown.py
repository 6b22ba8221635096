"""The Alignment page's drill-down into the selected plan: where one source item's mass goes, the most confident
wrong matches, and which categories the plan confuses (docs/science.md §9)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.explore import category_confusion, confident_wrong_matches, transport_targets
from core.analyses.representation import Representation
from core.data.datasets import ImageSet
from core.export import export_filename
from core.figures.alignment import MAX_PIXELS, category_confusion_figure
from core.provenance import Provenance
from views.ui.alignment_sources import layer_features
from views.ui.export_row import figure_block, table_download
from views.ui.items import item_options, item_panel, selected_rows, thumbnail_urls

SOURCE_KEY = "alignment.drill_source"
LAST_CLICK_KEY = "alignment.drill_last_click"  # the plan click already applied to the select box
TOP_TARGETS = 10
TOP_WRONG = 20
THUMBNAIL = st.column_config.ImageColumn("thumbnail", width="small")


@st.cache_data(max_entries=8, show_spinner=False)
def plan_summaries(plan_key: str, _plan: np.ndarray, _categories: np.ndarray):
    """The plan's most confident wrong matches and category confusion; `plan_key` names the stored alignment
    (hashing an (N, N) plan would sample it, so the key, not the array, identifies it)."""
    return confident_wrong_matches(_plan, TOP_WRONG), category_confusion(_plan, _categories)


def item_vectors(image_set: ImageSet, representation: Representation) -> np.ndarray | None:
    """(N, d) vectors of a representation in the dataset's order for neighbours, or None for an upload (it may be an
    RDM, or rows in its own order)."""
    if representation.kind == "encoder_layer":
        return layer_features(image_set, representation)
    return representation.matrix if representation.kind == "reference" else None


def follow_click(event: Any, n_items: int) -> None:
    """A new click on the plan picks its source item in the select box; a later pick in the box then stands
    until the next click (the same selection event arrives on every rerun, also after the dataset changed: a row
    outside this one's items is ignored)."""
    clicked = selected_rows(event, n_items)
    if clicked and clicked[0] != st.session_state.get(LAST_CLICK_KEY):
        st.session_state[SOURCE_KEY] = clicked[0]
    st.session_state[LAST_CLICK_KEY] = clicked[0] if clicked else None


def item_table(image_set: ImageSet, rows: np.ndarray, prefix: str = "") -> pd.DataFrame:
    """image_id, category and thumbnail of item rows, the columns named with `prefix`."""
    metadata = image_set.metadata.iloc[np.asarray(rows, dtype=int)]
    return pd.DataFrame({f"{prefix}image_id": metadata["image_id"].astype(str).to_numpy(),
                         f"{prefix}category": metadata["category"].astype(str).to_numpy(),
                         f"{prefix}thumbnail": thumbnail_urls(image_set, rows)})


def alignment_drilldown(image_set: ImageSet, plan: np.ndarray, event: Any, *, plan_key: str,
                        representations: Mapping[str, Representation], names: tuple[str, str], label: str,
                        provenance: Provenance) -> None:
    """Below the plan figure: pick a source item (select box or a click on the plan), see its targets and its card;
    then the plan's confident wrong matches and its category confusion. Tables download without thumbnails."""
    categories = image_set.metadata["category"].astype(str).to_numpy()
    stem = lambda name: export_filename("alignment", name, image_set.name, label, ext="")  # noqa: E731
    wrong, (row_names, column_names, shares) = plan_summaries(plan_key, plan, categories)

    st.subheader("Where does one item go?")
    options = item_options(image_set)
    if st.session_state.get(SOURCE_KEY) not in options:  # first visit, or a row of another dataset persisted
        st.session_state[SOURCE_KEY] = int(wrong["source"].iloc[0]) if len(wrong) else 0
    follow_click(event, len(options))
    source = st.selectbox(
        "Source item", list(options), format_func=options.get, key=SOURCE_KEY, persist_state="session",
        help=f"An item of {names[0]} (type to search by image_id or category); the default is the source of the "
             "plan's most confident wrong match. "
             + ("A click on the plan above picks the item of the clicked row (the point on its largest entry)."
                if len(plan) <= MAX_PIXELS else
                f"The plan above is block-averaged ({len(plan)} items > {MAX_PIXELS}), so a click there is not one "
                "item: pick it here."))
    targets = transport_targets(plan, source, TOP_TARGETS)
    table = pd.concat([targets, item_table(image_set, targets["target"])], axis=1)
    st.caption(f"The {TOP_TARGETS} items of {names[1]} that {options[source]} sends the most mass to (share of its "
               "row); **correct** marks its own partner (the same item).")
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "mass": st.column_config.ProgressColumn("mass", format="%.3f", min_value=0.0, max_value=1.0),
        "correct": st.column_config.CheckboxColumn("correct"), "thumbnail": THUMBNAIL})
    table_download("Targets (CSV)", table.drop(columns="thumbnail"), provenance, key="alignment.drill_targets_csv",
                   file_stem=stem(f"targets_{image_set.metadata['image_id'].astype(str).iloc[source]}"),
                   help="The targets above (rows in the dataset's order, image_id, category, share of the source "
                        "item's mass, correct) without thumbnails.")
    vectors = {name: features for name in dict.fromkeys(names)
               if (features := item_vectors(image_set, representations[name])) is not None}
    item_panel(image_set, source, vectors)

    st.subheader("Most confident wrong matches")
    pairs = pd.concat([wrong[["source", "target"]], item_table(image_set, wrong["source"], "source_"),
                       item_table(image_set, wrong["target"], "target_"), wrong[["mass", "own_mass"]]], axis=1)
    st.caption(f"The {TOP_WRONG} largest plan entries off the diagonal: a source item sending this share of its mass "
               "to another item (own_mass: the share it keeps on its own partner).")
    st.dataframe(pairs, hide_index=True, width="stretch", column_config={
        "source_thumbnail": st.column_config.ImageColumn("source", width="small"),
        "target_thumbnail": st.column_config.ImageColumn("target", width="small"),
        **{column: st.column_config.NumberColumn(format="%.3f") for column in ("mass", "own_mass")}})
    table_download("Wrong matches (CSV)", pairs.drop(columns=["source_thumbnail", "target_thumbnail"]), provenance,
                   key="alignment.drill_wrong_csv", file_stem=stem("wrong_matches"),
                   help="The table above without thumbnails: source and target rows in the dataset's order, ids, "
                        "categories, mass and own_mass.")

    confusion = pd.DataFrame(shares, index=pd.Index(row_names, name="source_category"), columns=column_names)
    figure_block(category_confusion_figure(row_names, column_names, shares),
                 confusion.reset_index().melt(id_vars="source_category", var_name="target_category",
                                              value_name="share"),
                 page="alignment", figure="category_confusion", dataset=image_set.name, encoder=label,
                 provenance=provenance, how_to_read=(
                     "Row: a source category; each cell is the share of that category's plan mass sent to items of "
                     "the target category (rows sum to 1). A plan that permutes items only within categories is "
                     "diagonal; off-diagonal mass = categories confused. The diagonal's mean weighted by category "
                     "size is the plan's mass-weighted category match (not the argmax rate in the bars above)."))

"""Explore: the items on two linked 2-D maps (one per representation): click, box, lasso or search items, see an
item's card and nearest neighbours, save a selection as a dataset, find the items two representations disagree on."""
import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.affect_report import load_predictions, predictions_key
from core.analyses.cv import SCHEMES, CrossValidation
from core.analyses.explore import MAP_METHODS, item_agreement, stored_map
from core.analyses.rdm import RDM_METRIC_LABELS, RDM_METRICS
from core.data.datasets import AFFECT_COLUMNS
from core.data.selections import SELECTIONS_FOLDER, save_selection, selection_manifest
from core.export import export_filename
from core.figures.explore import agreement_histogram_figure, map_figure
from core.paths import cache_root
from core.provenance import provenance_from_keys
from views.ui import resources
from views.ui.export_row import figure_block, table_download
from views.ui.items import item_options, item_panel, selected_rows, thumbnail_urls
from views.ui.similarity_sources import dataset_sources, load_features
from views.ui.sidebar import page_start

MAP_KEYS = {"A": "explore_map_a", "B": "explore_map_b"}  # the maps' selection events (st.plotly_chart keys)
ACTIVE = "explore_active"  # {"rows": [...], "origin": "map A" | "map B" | "search"}: the selection both maps share
SEEN = "explore_seen"  # each event's rows as last seen, so that only a new event changes the active selection
ITEM, PICKED, TABLE = "explore_item", "explore_disagreement_item", "explore_disagreement_table"
THUMBNAIL_ROWS = 200  # thumbnails in a table beyond this many rows would slow every rerun
TOP_DISAGREEMENTS = 50
PARAMETERS = {"t-SNE": ("Perplexity", 2, 100, 30), "UMAP": ("n_neighbors", 2, 200, 15)}

selection, image_set = page_start(
    "Explore",
    "The items themselves, on 2-D maps of two representations side by side: click a point for its image and nearest "
    "neighbours, box or lasso many (they light up in the other map too), search the metadata, save a selection as a "
    "dataset, and list the items the two representations disagree on most (docs/science.md §9).", needs_images=False)
metadata = image_set.metadata

sources = dataset_sources(image_set, selection)
if not sources:
    st.info("Explore needs a representation of the items: extract encoder layers (Features above; pick encoders and "
            "layers in the sidebar) or use a dataset with a human embedding (the demo has one).")
    st.stop()


def keep_valid(key: str, options) -> None:
    """Forget a remembered choice that is no longer offered (another dataset, fewer sources) before its widget."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def activate(rows: list[int], origin: str) -> None:
    """Make `rows` the active selection; a single item also becomes the item shown in the card."""
    st.session_state[ACTIVE] = {"rows": rows, "origin": origin, "dataset": image_set.fingerprint}
    if len(rows) == 1:
        st.session_state[ITEM] = rows[0]


def clear_selection() -> None:
    """Button callback: no active selection, no search."""
    st.session_state[ACTIVE] = {"rows": [], "origin": "", "dataset": image_set.fingerprint}
    st.session_state["explore_search"] = ""


# Linked selection: the most recent new event of either map wins (read before anything is drawn). A map whose
# figure changes (new highlights) comes back with an empty selection; empty events never change anything, so a
# reset cannot trigger another change, and reruns settle after one pass.
seen = st.session_state.setdefault(SEEN, {})
for name, key in MAP_KEYS.items():
    rows = selected_rows(st.session_state.get(key), len(metadata))
    if rows and rows != seen.get(name):
        activate(rows, f"map {name}")
    seen[name] = rows
active = st.session_state.get(ACTIVE) or {}
if active.get("dataset") != image_set.fingerprint:  # a selection made on another dataset
    active = {"rows": [], "origin": "", "dataset": image_set.fingerprint}

names = list(sources)
for key in ("explore_source_a", "explore_source_b"):
    keep_valid(key, names)
pick = st.columns(2)
first = pick[0].selectbox("Map A: representation", names, key="explore_source_a", persist_state="session",
                          help="Extracted encoder layers (sidebar + Features above) and the dataset's human "
                               "embeddings. Map A and B show the same items, linked.")
second = pick[1].selectbox("Map B: representation", names, index=min(1, len(names) - 1), key="explore_source_b",
                           persist_state="session", disabled=len(names) < 2,
                           help="Compared with map A item by item; with a single representation only map A is drawn.")
shown = {"A": first} if len(names) < 2 else {"A": first, "B": second}
settings = st.columns(5)
method = settings[0].selectbox("Map method", MAP_METHODS, key="explore_method", persist_state="session",
                               help="PCA: the two directions of largest variance, instant. t-SNE / UMAP keep "
                                    "neighbourhoods; computed once per representation and setting, then stored on "
                                    "disk (a minute or more for 10,000 items).")
parameter = 0.0
if method in PARAMETERS:
    label, low, high, default = PARAMETERS[method]
    parameter = settings[1].number_input(label, low, high, default, key=f"explore_parameter_{method}",
                                         persist_state="session",
                                         help="t-SNE perplexity / UMAP n_neighbors: how many neighbours shape each "
                                              "point's place (capped below the number of items).")
# row, x and y name the map's own columns (item row, coordinates): a metadata column of that name cannot colour it.
colour_options = [column for column in metadata.columns if column not in ("image_id", "row", "x", "y")]
keep_valid("explore_colour", colour_options)
colour = settings[2].selectbox("Colour by", colour_options, key="explore_colour", persist_state="session",
                               help="Any metadata column: a colour per value for labels (one colour per point, no "
                                    "legend, past 20 values), a colour scale for numbers (valence, arousal, …).")
k = int(settings[3].number_input("k neighbours", 1, 100, 10, key="explore_k", persist_state="session",
                                 help="Nearest neighbours (cosine) in an item's card and in the k-NN overlap of A "
                                      "and B."))
metric = settings[4].selectbox("RDM metric", RDM_METRICS, format_func=RDM_METRIC_LABELS.get, key="explore_metric",
                               persist_state="session",
                               help="Dissimilarity behind each item's RDM row, whose Spearman ρ between A and B "
                                    "measures how alike the item sees the rest of the dataset in both.")
filters = st.columns([2, 2, 1])
search = filters[0].text_input("Search", key="explore_search", persist_state="session",
                               placeholder="image id, category, any text field",
                               help="Case-insensitive substring of the image id, category or any text column. The "
                                    "matches are highlighted on both maps and become the selection.").strip()
categories = filters[1].multiselect("Categories shown", image_set.categories, key="explore_categories",
                                    persist_state="session", placeholder="All categories",
                                    help="Draw only these categories (empty: all). Hidden items stay selectable "
                                         "through search and the Item box.")
filters[2].button("Clear selection", on_click=clear_selection, help="Forget the selection and the search.")

text_columns = [column for column in metadata.columns if not pd.api.types.is_numeric_dtype(metadata[column])]
matches = []
if search:
    found = metadata[text_columns].astype(str).apply(lambda column: column.str.contains(search, case=False,
                                                                                       regex=False)).any(axis=1)
    matches = [int(row) for row in found.to_numpy().nonzero()[0]]
if search != seen.get("search"):
    seen["search"] = search
    if search:
        activate(matches, "search")
        active = st.session_state[ACTIVE]
if search and not matches:
    st.warning(f"No item matches “{search}” in {', '.join(text_columns)}.")
highlighted = sorted(set(active["rows"]) | set(matches))

arrays = {label: load_features(image_set, sources[label]) for label in dict.fromkeys(shown.values())}
keys = [sources[label].feature_key for label in arrays if sources[label].feature_key]
provenance = provenance_from_keys(keys, {"sources": list(shown.values()), "method": method, "parameter": parameter,
                                         "seed": 0, "k": k, "rdm_metric": metric},
                                  dataset=image_set.name, dataset_fingerprint=image_set.fingerprint,
                                  store=resources.feature_store())
items = metadata.reset_index(drop=True).assign(row=range(len(metadata)))
drawn = items[items["category"].isin(categories)] if categories else items

map_columns = st.columns(len(shown))
for column, (name, label) in zip(map_columns, shown.items()):
    try:
        with st.spinner(f"{method} map of {label} …", show_time=True):
            xy = stored_map(resources.result_store(), sources[label].fingerprint, arrays[label], method, parameter)
    except (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError) as error:
        advice = "Check the features (NaN or constant?)." if method == "PCA" else "Choose PCA or a smaller parameter."
        st.error(f"{label}: the {method} map could not be computed ({error}). {advice}")
        st.stop()
    shown_rows = drawn["row"].to_numpy()
    points = drawn[["row", "image_id", colour]].assign(x=xy[shown_rows, 0], y=xy[shown_rows, 1])
    with column:
        figure_block(
            map_figure(points, colour, f"{name}: {label} · {method}", highlighted), points, page="explore",
            figure=f"map_{name.lower()}", dataset=image_set.name, encoder=sources[label].encoder,
            layer=sources[label].layer, provenance=provenance, select_key=MAP_KEYS[name], how_to_read=(
                f"Each point is an item, placed by {method} of the {label} features, coloured by {colour}. Click a "
                "point for its card below; box or lasso (toolbar) selects many. The selection is ringed in black on "
                "both maps, so you see where the same items lie in the other representation; search matches are "
                "ringed too. In t-SNE/UMAP only neighbourhoods mean something: the distance between clusters and "
                "their sizes do not. PCA keeps distances along its two axes but drops the rest of the variance."))

st.caption(f"Selection: {len(active['rows'])} item(s)" + (f" from {active['origin']}" if active["rows"] else
           " — click, box or lasso on a map, or search"))
options = item_options(image_set)
keep_valid(ITEM, options)
item = st.selectbox("Item", list(options), format_func=options.get, index=None, key=ITEM, persist_state="session",
                    placeholder="Click a point on a map, or type to search an item",
                    help="The item whose card (image, metadata, ratings) and nearest neighbours in the map's "
                         "representations are shown below; a click on a single point picks it here.")


def predicted_ratings(row: int, labels) -> dict:
    """Valence and arousal the Affect page's stored out-of-fold probes predicted for the item, per representation
    and scheme (K as on the Affect page); none where that page has not run."""
    if not image_set.has_affect:
        return {}
    store, found = resources.result_store(), {}
    n_splits = int(st.session_state.get("affect_k", 5))
    for label in labels:
        feature_key = sources[label].feature_key
        for scheme in SCHEMES if feature_key else ():
            cv = CrossValidation(scheme, n_splits)
            stored = load_predictions(store, predictions_key(feature_key.digest, cv))
            if stored is not None and set(AFFECT_COLUMNS) <= set(stored.target_names):
                found[f"{label} · {cv.label}"] = stored.predictions[row, [stored.target_names.index(name)
                                                                           for name in AFFECT_COLUMNS]]
    return found


if item is not None:
    item_panel(image_set, item, arrays, k=k, predicted=predicted_ratings(item, arrays))


@st.cache_data(show_spinner=False, max_entries=16)
def agreement_table(first_fingerprint: str, second_fingerprint: str, k: int, metric: str, _first, _second):
    """item_agreement of two representations, cached by their fingerprints (the arrays are not hashed)."""
    return item_agreement(_first, _second, k=k, metric=metric)


agreement = None
if len(shown) == 2:
    with st.spinner("Agreement of A and B per item …", show_time=True):
        agreement = agreement_table(sources[first].fingerprint, sources[second].fingerprint, k, metric,
                                    arrays[first], arrays[second])


def with_thumbnails(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a `thumbnail` column first (data URLs of its first THUMBNAIL_ROWS rows) when there are images."""
    if not image_set.has_images:
        return table
    urls = thumbnail_urls(image_set, table["row"].iloc[:THUMBNAIL_ROWS]) + [None] * max(len(table) - THUMBNAIL_ROWS, 0)
    return table.assign(thumbnail=urls)[["thumbnail", *table.columns]]


IMAGE_COLUMNS = {"thumbnail": st.column_config.ImageColumn("image", width="small"),
                 "rdm_row_spearman": st.column_config.NumberColumn("ρ (RDM row)", format="%.3f"),
                 "knn_overlap": st.column_config.NumberColumn("k-NN overlap", format="%.2f")}


def save_as_dataset(rows: list[int]) -> None:
    """Button callback: the selection as a manifest CSV under the cache's selections folder."""
    try:
        path = save_selection(selection_manifest(image_set, rows), cache_root() / SELECTIONS_FOLDER,
                              st.session_state.get("explore_selection_name") or "selection")
        st.session_state["explore_saved"] = {"path": str(path), "error": ""}
    except (ValueError, OSError) as error:
        st.session_state["explore_saved"] = {"path": "", "error": str(error)}


def open_saved(path: str) -> None:
    """Button callback: the sidebar opens the saved manifest (set before its widgets are drawn)."""
    st.session_state["dataset_kind"] = "manifest"
    st.session_state["dataset_path_manifest"] = path


st.subheader("Selected items")
if active["rows"]:
    chosen = items.iloc[active["rows"]]
    if agreement is not None:
        chosen = chosen.join(agreement[["rdm_row_spearman", "knn_overlap"]])
    chosen = chosen[["row", *[column for column in chosen.columns if column != "row"]]]
    st.dataframe(with_thumbnails(chosen), hide_index=True, width="stretch", column_config=IMAGE_COLUMNS)
    if len(chosen) > THUMBNAIL_ROWS and image_set.has_images:
        st.caption(f"Thumbnails for the first {THUMBNAIL_ROWS} of {len(chosen)} items.")
    actions = st.columns([1, 2, 1])
    table_download("Selection (CSV)", chosen, provenance, container=actions[0],
                   file_stem=export_filename("explore", "selection", image_set.name, ext=""),
                   help="The selected items' metadata" + (", with their RDM-row ρ and k-NN overlap of A vs B."
                                                          if agreement is not None else "."))
    if image_set.has_images:
        actions[1].text_input("Dataset name", value=f"{image_set.name}_selection", key="explore_selection_name",
                              persist_state="session", label_visibility="collapsed",
                              help="File name of the manifest (letters, digits, _ . -; others become _).")
        actions[2].button("Save as dataset", on_click=save_as_dataset, args=(active["rows"],),
                          help=f"Writes a manifest CSV (absolute image paths + metadata) to "
                               f"{cache_root() / SELECTIONS_FOLDER}; open it as a dataset of its own.")
        saved = st.session_state.get("explore_saved")
        if saved and saved["error"]:
            st.error(f"Not saved: {saved['error']}")
        elif saved:
            st.success(f"Saved as the dataset `manifest:{saved['path']}`.")
            st.button("Open it in the sidebar", on_click=open_saved, args=(saved["path"],),
                      help="Switches the sidebar's dataset to this manifest (features are extracted anew for it).")
else:
    st.caption("Nothing selected yet.")

if agreement is not None:
    st.subheader("Where A and B disagree")
    figure_block(agreement_histogram_figure(agreement), agreement.assign(row=items["row"], image_id=items["image_id"]),
                 page="explore", figure="agreement", dataset=image_set.name, provenance=provenance, how_to_read=(
                     f"Per item, **ρ** is the Spearman correlation of its dissimilarities ({metric}) to every other "
                     f"item in {first} and in {second} (its RDM rows): 1 = it sees the rest of the dataset in the "
                     f"same order in both. **k-NN overlap** is the share of its {k} nearest neighbours (cosine) the "
                     "two have in common (its mean over items is the mutual k-NN score, §8). Items low on both are "
                     "where the representations disagree; rank 1 = lowest ρ, ties by lowest overlap. A "
                     "representation against itself or a rotated copy of itself disagrees on no item (ρ = 1 and "
                     "overlap = 1 for every item with cosine or euclidean), so any spread here is a real "
                     "difference of geometry, not of axes."))
    top = items[["row", "image_id", "category"]].join(agreement).sort_values("disagreement_rank").head(
        TOP_DISAGREEMENTS)[["disagreement_rank", "row", "image_id", "category", "rdm_row_spearman", "knn_overlap"]]
    event = st.dataframe(with_thumbnails(top), hide_index=True, width="stretch", column_config=IMAGE_COLUMNS,
                         key=TABLE, on_select="rerun", selection_mode="single-row")
    positions = list(event.selection.rows) if event else []
    if positions and positions != seen.get("table"):
        st.session_state[PICKED] = int(top["row"].iloc[positions[0]])
    seen["table"] = positions
    top_options = {int(row): f"#{rank} · {image_id}" for row, rank, image_id in
                   top[["row", "disagreement_rank", "image_id"]].itertuples(index=False)}
    keep_valid(PICKED, top_options)
    picked = st.selectbox("Disagreement item", list(top_options), format_func=top_options.get, index=None, key=PICKED,
                          persist_state="session", placeholder="Pick a row of the table",
                          help="Its card with the nearest neighbours in A and in B, to see what each "
                               "representation groups it with.")
    if picked is not None:
        item_panel(image_set, picked, arrays, k=k, predicted=predicted_ratings(picked, arrays))
    table_download("Agreement of every item (CSV)", items[["row", "image_id", "category"]].join(agreement), provenance,
                   file_stem=export_filename("explore", "agreement", image_set.name, ext=""),
                   help="Every item's RDM-row ρ, k-NN overlap and disagreement rank, A vs B.")

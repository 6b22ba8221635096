"""Explore: the items on two linked 2-D maps (one per representation): click, box, lasso or search items, see an
item's card and nearest neighbours, save a selection as a dataset, find the items two representations disagree on."""
import numpy as np
import streamlit as st

from core.analyses.explore import MAP_METHODS, stored_map
from core.analyses.rdm import RDM_METRIC_LABELS, RDM_METRICS
from core.figures.explore import MAX_CATEGORIES, agreement_histogram_figure, map_axis_titles, map_figure
from core.export import export_filename
from core.provenance import provenance_from_keys
from views.ui import resources
from views.ui.explore_selection import (ITEM, MAP_KEYS, SEARCH, clear_selection, keep_valid, map_selection,
                                        search_selection)
from views.ui.explore_tables import agreement_table, disagreement_table, item_card, selected_items
from views.ui.export_row import built_once, figure_block, table_download
from views.ui.items import item_options
from views.ui.settings import in_url
from views.ui.similarity_sources import dataset_sources, load_features
from views.ui.sidebar import page_start

PARAMETERS = {"t-SNE": ("Perplexity", 2, 100, 30), "UMAP": ("n_neighbors", 2, 200, 15)}

selection, image_set = page_start(
    "Explore",
    "The items themselves, on 2-D maps of two representations side by side: click a point for its image and nearest "
    "neighbours, box or lasso many (they light up in the other map too), search the metadata, save a selection as a "
    "dataset, and list the items the two representations disagree on most (docs/science.md §9).", needs_images=False)

sources = dataset_sources(image_set, selection)
if not sources:
    st.info("Explore needs a representation of the items: extract encoder layers (Features above; pick encoders and "
            "layers in the sidebar) or use a dataset with a human embedding (the demo has one).")
    st.stop()
active = map_selection(image_set)

names = list(sources)
for key in ("explore.source_a", "explore.source_b"):
    keep_valid(key, names)
pick, settings = st.columns(2), st.columns(5)
first = pick[0].selectbox("Map A: representation", names, **in_url("explore.source_a"),
                          help="Extracted encoder layers (sidebar + Features above) and the dataset's human "
                               "embeddings. Map A and B show the same items, linked.")
second = pick[1].selectbox("Map B: representation", names, **in_url("explore.source_b", index=min(1, len(names) - 1)),
                           disabled=len(names) < 2,
                           help="Compared with map A item by item; with a single representation only map A is drawn.")
shown = {"A": first} if len(names) < 2 else {"A": first, "B": second}
method = settings[0].selectbox("Map method", MAP_METHODS, **in_url("explore.method"),
                               help="PCA: the two directions of largest variance, instant. t-SNE / UMAP keep "
                                    "neighbourhoods; computed once per representation and setting, then stored on "
                                    "disk (a minute or more for 10,000 items).")
parameter = 0.0
if method in PARAMETERS:
    label, low, high, default = PARAMETERS[method]
    parameter = settings[1].number_input(label, low, high, **in_url(f"explore.parameter_{method}", value=default),
                                         help="t-SNE perplexity / UMAP n_neighbors: how many neighbours shape each "
                                              "point's place (capped below the number of items).")
# row, x and y name the map's own columns (item row, coordinates): a metadata column of that name cannot colour it.
colour_options = [column for column in image_set.metadata.columns if column not in ("image_id", "row", "x", "y")]
keep_valid("explore.colour", colour_options)
colour = settings[2].selectbox("Colour by", colour_options, **in_url("explore.colour"),
                               help=f"Any metadata column: a colour + symbol per label, named in the legend (past "
                                    f"{MAX_CATEGORIES} labels a colour per point), a colour scale for numbers.")
k = int(settings[3].number_input("k neighbours", 1, 100, **in_url("explore.k", value=10),
                                 help="Nearest neighbours (cosine) in an item's card and in the k-NN overlap of A "
                                      "and B."))
metric = settings[4].selectbox("RDM metric", RDM_METRICS, format_func=RDM_METRIC_LABELS.get, **in_url("explore.metric"),
                               help="Dissimilarity behind each item's RDM row, whose Spearman ρ between A and B "
                                    "measures how alike the item sees the rest of the dataset in both.")
filters = st.columns([2, 2, 1])
search = filters[0].text_input("Search", **in_url(SEARCH),
                               placeholder="image id, category, any text field",
                               help="Case-insensitive substring of the image id, category or any text column. The "
                                    "matches are highlighted on both maps and become the selection.").strip()
categories = filters[1].multiselect("Categories shown", image_set.categories, **in_url("explore.categories"),
                                    placeholder="All categories",
                                    help="Draw only these categories (empty: all). Hidden items stay selectable "
                                         "through search and the Item box.")
filters[2].button("Clear selection", on_click=clear_selection, args=(image_set,),
                  help="Forget the selection and the search.")
matches, active = search_selection(image_set, search, active)
highlighted = sorted(set(active["rows"]) | set(matches))

arrays = {label: load_features(image_set, sources[label]) for label in dict.fromkeys(shown.values())}
keys = [sources[label].feature_key for label in arrays if sources[label].feature_key]
provenance = provenance_from_keys(keys, {"sources": list(shown.values()), "method": method, "parameter": parameter,
                                         "seed": 0, "k": k, "rdm_metric": metric},
                                  dataset=image_set.name, dataset_fingerprint=image_set.fingerprint,
                                  skipped_images=image_set.skipped_labels,
                                  store=resources.feature_store())
items = image_set.metadata.reset_index(drop=True).assign(row=range(len(image_set.metadata)))
drawn = items[items["category"].isin(categories)] if categories else items

for column, (name, label) in zip(st.columns(len(shown)), shown.items()):
    try:
        with st.spinner(f"{method} map of {label} …", show_time=True):
            item_map = stored_map(resources.result_store(), sources[label].fingerprint, arrays[label], method,
                                  parameter)
    except (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError) as error:
        advice = "Check the features (NaN or constant?)." if method == "PCA" else "Choose PCA or a smaller parameter."
        st.error(f"{label}: the {method} map could not be computed ({error}). {advice}")
        st.stop()
    shown_rows = drawn["row"].to_numpy()
    points = drawn[["row", "image_id", colour]].assign(x=item_map.xy[shown_rows, 0], y=item_map.xy[shown_rows, 1])
    layer = sources[label].layer
    title = f"{name}: {label} · {method}"
    fig = built_once((sources[label].fingerprint, method, parameter, colour, tuple(categories), title,
                      tuple(highlighted)),
                     lambda: map_figure(points, colour, title, highlighted, map_axis_titles(item_map)))
    with column:
        figure_block(
            fig, points, page="explore",
            figure=f"map_{name.lower()}", dataset=image_set.name, encoder=sources[label].encoder,
            layer=layer.layer if layer else "", provenance=provenance, select_key=MAP_KEYS[name], how_to_read=(
                f"Each point is an item, placed by {method} of the {label} features, coloured by {colour}. Click a "
                "point for its card below; box or lasso (toolbar) selects many. The selection is ringed in black on "
                "both maps, so you see where the same items lie in the other representation; search matches are "
                "ringed too. In t-SNE/UMAP only neighbourhoods mean something: the distance between clusters and "
                "their sizes do not. PCA keeps distances along its two axes but drops the rest of the variance (each "
                "axis title gives its share)."))

st.caption(f"Selection: {len(active['rows'])} item(s)" + (f" from {active['origin']}" if active["rows"] else
           " — click, box or lasso on a map, or search"))
options = item_options(image_set)
keep_valid(ITEM, options)
item = st.selectbox("Item", list(options), format_func=options.get, index=None, key=ITEM, persist_state="session",
                    placeholder="Click a point on a map, or type to search an item",
                    help="The item whose card (image, metadata, ratings) and nearest neighbours in the map's "
                         "representations are shown below; a click on a single point picks it here.")
if item is not None:
    item_card(image_set, sources, item, arrays, k)

agreement = None
if len(shown) == 2:
    with st.spinner("Agreement of A and B per item …", show_time=True):
        agreement = agreement_table(sources[first].fingerprint, sources[second].fingerprint, k, metric,
                                    arrays[first], arrays[second])
selected_items(image_set, items, active["rows"], agreement, provenance)

if agreement is not None:
    st.subheader("Where A and B disagree")
    figure_block(built_once((sources[first].fingerprint, sources[second].fingerprint, k, metric, "agreement"),
                            lambda: agreement_histogram_figure(agreement)),
                 agreement.assign(row=items["row"], image_id=items["image_id"]),
                 page="explore", figure="agreement", dataset=image_set.name, provenance=provenance, how_to_read=(
                     f"Per item, **ρ** is the Spearman correlation of its dissimilarities ({metric}) to every other "
                     f"item in {first} and in {second} (its RDM rows): 1 = it sees the rest of the dataset in the "
                     f"same order in both. **k-NN overlap** is the share of its {k} nearest neighbours (cosine) the "
                     "two have in common (its mean over items is the mutual k-NN score, §8). Items low on both are "
                     "where the representations disagree; rank 1 = lowest ρ, ties by lowest overlap. A "
                     "representation against itself or a rotated copy of itself disagrees on no item (ρ = 1 and "
                     "overlap = 1 for every item with cosine or euclidean), so any spread here is a real "
                     "difference of geometry, not of axes."))
    picked = disagreement_table(image_set, items, agreement)
    if picked is not None:
        item_card(image_set, sources, picked, arrays, k)
    table_download("Agreement of every item (CSV)", items[["row", "image_id", "category"]].join(agreement), provenance,
                   file_stem=export_filename("explore", "agreement", image_set.name, ext=""),
                   help="Every item's RDM-row ρ, k-NN overlap and disagreement rank, A vs B.")

"""Features: the dataset at a glance, and cached extraction of the selected encoders x layers."""
import numpy as np
import streamlit as st

from core.data.images import load_image
from core.features.extract import feature_keys
from core.figures import features as figures
from core.provenance import Provenance, provenance_from_keys
from views.ui import resources
from views.ui.export_row import built_once, figure_block, provenance_expander
from views.ui.extraction import extraction_panel
from views.ui.sidebar import render_sidebar, require_images

THUMBNAILS_PER_CATEGORY = 4

selection = render_sidebar("Features")
st.title("Features")
if selection.image_set is None:
    st.info(selection.dataset_error)
    st.stop()
image_set = selection.image_set
require_images(image_set, "Features")
metadata = image_set.metadata

st.subheader(f"Dataset: {image_set.name}")
counts = st.columns(4)
counts[0].metric("Images", len(image_set))
counts[1].metric("Categories", metadata["category"].nunique())
counts[2].metric("Theme groups", metadata["group"].nunique(),
                 help="Images sharing a theme (OASIS: the Theme without its number). Leave-One-Theme-Out "
                      "cross-validation holds out one group at a time (docs/science.md §1, §2).")
counts[3].metric("Targets", "valence, arousal" if image_set.has_affect else "none")


@st.cache_data(show_spinner="Making thumbnails…", max_entries=4)
def thumbnails(fingerprint: str, rows: tuple[int, ...]) -> list:
    images = []
    for row in rows:
        image = load_image(image_set.paths[row])
        image.thumbnail((160, 160))
        images.append(image)
    return images


rows = tuple(int(row) for _, members in metadata.groupby("category", sort=True)
             for row in members.index[np.linspace(0, len(members) - 1, THUMBNAILS_PER_CATEGORY).astype(int)].unique())
try:
    st.image(thumbnails(image_set.fingerprint, rows), width=110,
             caption=[f"{metadata.at[row, 'image_id']} · {metadata.at[row, 'category']}" for row in rows])
except ValueError as error:  # DatasetError names the unreadable file
    st.warning(f"Thumbnails unavailable: {error}")

# The overview figures come from the dataset's metadata alone: their provenance is the dataset.
dataset_provenance = Provenance(image_set.name, image_set.fingerprint,
                                parameters={"dataset_spec": selection.dataset_spec, "images": len(image_set)},
                                skipped_images=image_set.skipped_labels)
overview = {"category_counts": ("Images per category", figures.category_counts_figure, figures.category_counts_table),
            "group_sizes": ("Theme group sizes", figures.group_sizes_figure, figures.group_sizes_table)}
if image_set.has_affect:
    overview["ratings"] = ("Ratings", figures.target_histograms_figure, figures.target_histograms_table)
for tab, (name, (_, draw, tabulate)) in zip(st.tabs([title for title, _, _ in overview.values()]), overview.items()):
    with tab:
        fig, table = built_once((image_set.fingerprint, name),
                                lambda draw=draw, tabulate=tabulate: (draw(metadata), tabulate(metadata)))
        figure_block(fig, table, page="features", figure=name, dataset=image_set.name, provenance=dataset_provenance)

st.subheader("Extraction")
if not selection.encoders:
    st.info("Pick at least one encoder in the sidebar.")
    st.stop()
cached = [status for status in extraction_panel(image_set, selection) if status.state == "cached"]
if cached:
    provenance_expander(provenance_from_keys(
        [feature_keys(image_set, resources.encoder_info(status.encoder), [status.layer],
                      selection.pooling_of(status.encoder))[status.layer] for status in cached],
        {"pooling": selection.pooling}, dataset=image_set.name, dataset_fingerprint=image_set.fingerprint,
        skipped_images=image_set.skipped_labels,
        store=resources.feature_store()))

with st.expander("How to read this"):
    st.markdown(
        "- **Thumbnails** show four images spread across each category, before the encoders' preprocessing.\n"
        "- **Extraction status**: one row per encoder × layer. Features are stored as float32 arrays keyed by "
        "encoder spec, weight identity, layer, pooling, preprocessing and a fingerprint of the dataset; change "
        "any of them and a new array is extracted.\n"
        "- **Pooling**: `cls` = class token, `mean` = average of patch tokens, `gap` = global average of a CNN "
        "map, `model` = the encoder's own final embedding (CLIP: the projected image embedding).\n"
        "- Block outputs are taken before any final normalisation layer.")

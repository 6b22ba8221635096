"""Features: the dataset at a glance, and cached extraction of the selected encoders x layers."""
import numpy as np
import pandas as pd
import streamlit as st

from core import figures
from core.datasets import load_image
from core.extract import extract, layer_statuses
from pages.ui import resources
from pages.ui.export_row import export_row
from pages.ui.sidebar import effective_pooling, render_sidebar

THUMBNAILS_PER_CATEGORY = 4

selection = render_sidebar()
st.title("Features")
if selection.image_set is None:
    st.info(selection.dataset_error)
    st.stop()
image_set = selection.image_set
metadata = image_set.metadata

st.subheader(f"Dataset: {image_set.name}")
counts = st.columns(4)
counts[0].metric("Images", len(image_set))
counts[1].metric("Categories", metadata["category"].nunique())
counts[2].metric("Theme groups", metadata["group"].nunique(),
                 help="Images sharing a theme (OASIS: the Theme without its number). Leave-One-Theme-Out "
                      "cross-validation holds out one group at a time.")
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

overview = st.tabs(["Images per category", "Theme group sizes"] + (["Ratings"] if image_set.has_affect else []))
with overview[0]:
    figure = figures.category_counts_figure(metadata)
    st.plotly_chart(figure, width="stretch")
    export_row(figure, figures.category_counts_table(metadata), page="features", figure="category_counts",
               dataset=image_set.name, key="export_category_counts")
with overview[1]:
    figure = figures.group_sizes_figure(metadata)
    st.plotly_chart(figure, width="stretch")
    export_row(figure, figures.group_sizes_table(metadata), page="features", figure="group_sizes",
               dataset=image_set.name, key="export_group_sizes")
if image_set.has_affect:
    with overview[2]:
        figure = figures.target_histograms_figure(metadata)
        st.plotly_chart(figure, width="stretch")
        export_row(figure, figures.target_histograms_table(metadata), page="features", figure="ratings",
                   dataset=image_set.name, key="export_ratings")

st.subheader("Extraction")
if not selection.encoders:
    st.info("Pick at least one encoder in the sidebar.")
    st.stop()
store = resources.feature_store()
statuses = [status for spec in selection.encoders
            for status in layer_statuses(image_set, spec, selection.layers[spec], store,
                                         effective_pooling(spec, selection.pooling))]
st.dataframe(pd.DataFrame([vars(status) for status in statuses]), hide_index=True, width="stretch",
             column_config={"state": st.column_config.TextColumn(help="cached = stored on disk, loads in "
                                                                     "milliseconds; missing = press Extract; "
                                                                     "unavailable = cannot be loaded here")})
todo = sorted({status.encoder for status in statuses if status.state == "missing"})
registry = resources.job_registry()


def job_key(spec: str) -> str:
    return f"extract|{image_set.fingerprint}|{spec}|{','.join(selection.layers[spec])}|" \
           f"{effective_pooling(spec, selection.pooling)}"


def start_extraction() -> None:
    for spec in todo:
        layers, pooling = selection.layers[spec], effective_pooling(spec, selection.pooling)

        def work(report, spec=spec, layers=layers, pooling=pooling):
            extract(image_set, spec, layers, store, pooling=pooling, device=selection.device,
                    batch_size=selection.batch_size,
                    progress=lambda p: report(p.done, p.total, f"{p.images_per_s:.1f} images/s"))

        registry.submit(job_key(spec), spec, work)
        st.session_state.setdefault("extraction_jobs", []).append(job_key(spec))


st.button(f"Extract {len(todo)} encoder(s)" if todo else "Everything selected is cached", type="primary",
          disabled=not todo, on_click=start_extraction,
          help="Runs in the background: all selected layers of an encoder in one forward pass per batch, written "
               "to the cache chunk by chunk. Changing widgets does not stop it; an interrupted run resumes.")


@st.fragment(run_every=1.0)
def extraction_progress() -> None:
    keys = st.session_state.get("extraction_jobs", [])
    jobs = [status for status in (registry.status(key) for key in keys) if status is not None]
    for job in jobs:
        st.progress(job.fraction, text=f"{job.label} — {job.state}: {job.done}/{job.total} images · {job.message}")
    if jobs and all(job.state not in ("queued", "running") for job in jobs):
        st.session_state["extraction_errors"] = [f"{job.label}: {job.error}" for job in jobs if job.state == "failed"]
        st.session_state["extraction_jobs"] = []
        st.rerun(scope="app")  # refresh the status table above


if st.session_state.get("extraction_jobs"):
    extraction_progress()
for message in st.session_state.get("extraction_errors", []):
    st.error(message)

with st.expander("How to read this"):
    st.markdown(
        "- **Thumbnails** show four images spread across each category, before the encoders' preprocessing.\n"
        "- **Extraction status**: one row per encoder × layer. Features are stored as float32 arrays keyed by "
        "encoder spec, weight identity, layer, pooling, preprocessing and a fingerprint of the dataset; change "
        "any of them and a new array is extracted.\n"
        "- **Pooling**: `cls` = class token, `mean` = average of patch tokens, `gap` = global average of a CNN "
        "map, `model` = the encoder's own final embedding (CLIP: the projected image embedding).\n"
        "- Block outputs are taken before any final normalisation layer.")
